// `npm start`: a self-contained demonstration on an embedded default. It
// makes two network namespaces joined by a veth pair, exports a sparse 1 GiB
// image from one with our vblade, drives it from the other with the
// project's client (discovery, IDENTIFY, write/read-back, a few seconds of
// reads), prints what it saw, and removes everything it created.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AoeClient } from '../client/client';
import { runLoad } from '../client/load';
import { linkInfo } from '../client/transport';

const REPO = path.resolve(__dirname, '..', '..', '..');
const SHELF = 1;
const SLOT = 1;
const IMAGE_BYTES = 1 << 30;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

interface Setup {
  target: string;
  client: string;
  image: string;
  proc?: ChildProcess;
}

function tearDown(s: Setup): void {
  if (s.proc?.pid !== undefined && s.proc.exitCode === null) {
    try {
      process.kill(s.proc.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const ns of [s.target, s.client]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      /* never made or already gone */
    }
  }
  fs.rmSync(s.image, { force: true });
}

function waitForLine(proc: ChildProcess, re: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`vblade did not start within ${ms} ms:\n${err}`)), ms);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vblade exited with status ${code}:\n${err}`));
    });
  });
}

async function demo(s: Setup): Promise<void> {
  const say = (m: string): void => void process.stdout.write(m + '\n');
  say(`demo: namespaces ${s.target} and ${s.client}, veth pair demo-t <-> demo-c (MTU 9000)`);
  ip('netns', 'add', s.target);
  ip('netns', 'add', s.client);
  ip(
    'link',
    'add',
    'demo-t',
    'netns',
    s.target,
    'mtu',
    '9000',
    'type',
    'veth',
    'peer',
    'name',
    'demo-c',
    'netns',
    s.client,
    'mtu',
    '9000',
  );
  for (const [ns, dev] of [
    [s.target, 'demo-t'],
    [s.client, 'demo-c'],
  ]) {
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
  fs.writeFileSync(s.image, '');
  fs.truncateSync(s.image, IMAGE_BYTES);
  say(`demo: sparse 1 GiB image ${s.image}`);
  s.proc = spawn(
    'ip',
    [
      'netns',
      'exec',
      s.target,
      process.execPath,
      path.join(REPO, 'bin', 'vblade.js'),
      String(SHELF),
      String(SLOT),
      'demo-t',
      s.image,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  say(`target: ${await waitForLine(s.proc, /pid \d+: e\d+\.\d+, \d+ sectors O_RDWR/, 10000)}`);

  // The kernel reports carrier on a new veth pair a moment after it is up.
  for (let i = 0; i < 50 && !linkInfo('demo-c', `/run/netns/${s.client}`).up; i++) await new Promise((r) => setTimeout(r, 100));
  const client = AoeClient.open('demo-c', { netns: `/run/netns/${s.client}` });
  try {
    const found = await client.discover(0xffff, 0xff, 1000);
    for (const d of found) {
      say(
        `discovered: e${d.shelf}.${d.slot} at ${d.macText}, buffer count ${d.bufferCount}, ${d.sectorCount} sectors per frame, firmware 0x${d.firmware.toString(16)}`,
      );
    }
    const target = found.find((d) => d.shelf === SHELF && d.slot === SLOT);
    if (!target) throw new Error(`e${SHELF}.${SLOT} did not answer discovery`);
    const id = await client.identify(target);
    say(
      `identify: model "${id.model}", serial "${id.serial}", firmware "${id.firmwareRevision}", ${id.sectors} sectors (${(id.sectors * 512) / 2 ** 30} GiB)`,
    );

    const data = new Uint8Array(target.sectorCount * 512);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
    const lba = 123456;
    await client.write(target, lba, data);
    const back = await client.read(target, lba, target.sectorCount);
    const same = back.length === data.length && back.every((b, i) => b === data[i]);
    say(`write/read-back: ${data.length} bytes at LBA ${lba}: ${same ? 'identical' : 'DIFFERENT'}`);
    if (!same) throw new Error('read-back differs from what was written');

    client.pause();
    const result = await runLoad({
      socket: client.socket,
      srcMac: client.mac,
      target,
      op: 'read',
      pattern: 'seq',
      sectors: target.sectorCount,
      window: 16,
      lbaCount: IMAGE_BYTES / 512,
      durationMs: 3000,
      verify: 'none',
      progressMs: 1000,
      onProgress: (p) =>
        say(`throughput: ${(p.elapsedMs / 1000).toFixed(0)} s  ${Math.round(p.iops)} requests/s  ${p.mbps.toFixed(0)} MB/s`),
    });
    say(
      `throughput: ${result.ops} reads of ${target.sectorCount} sectors in ${(result.elapsedMs / 1000).toFixed(1)} s: ` +
        `${Math.round(result.iops)} requests/s, ${result.mbps.toFixed(0)} MB/s, latency p50 ${result.latency.p50.toFixed(0)} µs p99 ${result.latency.p99.toFixed(0)} µs, errors ${result.errors.aoe + result.errors.ata + result.errors.timeouts + result.errors.verify}`,
    );
  } finally {
    client.close();
  }
}

export async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm start needs root: it creates network namespaces and a raw-socket target (try: sudo npm start)\n');
    return 1;
  }
  const tag = `${process.pid}`;
  const s: Setup = {
    target: `aoedemo-${tag}-t`,
    client: `aoedemo-${tag}-c`,
    image: path.join(os.tmpdir(), `aoe-demo-${tag}.img`),
  };
  const cleanup = (): void => tearDown(s);
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    await demo(s);
    process.stdout.write('demo: done; removing namespaces, image and target\n');
    return 0;
  } catch (e) {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    return 1;
  } finally {
    cleanup();
  }
}
