// The duplicate-address guard against a local user and a forged reply: a
// local user (nobody) cannot connect to a claim, cannot take it first and
// cannot make a target refuse its export; one forged Query Config reply to
// the start-up probe does not keep an export from serving; vbladed reports
// a refused export as not served, serves it once its address is free, and
// checks an export added by a reload the same way.
//
// Network safety: targets, the local user's programs and the forged replies
// run only inside the namespaces this test creates, on its veth pair.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AoeClient } from '../../src/client';
import type { TestLike } from '../../lab/common';
import { createNetnsPair, requireRoot, type Netns, type NetnsPair } from '../../lab/netns';
import { native, DrainLayout } from '../../src/native/addon';
import { patternFile, tempDir } from '../helpers/files';
import { REPO, startTarget, waitLinkUp } from '../helpers/targets';

const SHELF = 63;
const SLOT = 4;
const KEY = `e${SHELF}.${SLOT}`;
const VBLADE = path.join(REPO, 'bin', 'vblade.js');
const VBLADED = path.join(REPO, 'bin', 'vbladed.js');
// tap's hooks reach every Node child through NODE_OPTIONS, and cannot write their files as nobody.
const AS_NOBODY = ['-u', 'NODE_OPTIONS', 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];

/** The abstract socket name a claim used to listen on (the scripts try it as is and NUL-padded to sun_path's 108 bytes, as Node binds it). */
function abstractName(ifname: string): string {
  return `aoe-target/${ifname}/${KEY}`;
}

/** Abstract names from a bare name, in the scripts below. */
const NAMES = `const abstract = (n) => ['\\0' + n, ('\\0' + n).padEnd(108, '\\0')];`;

/** Connects `count` times to each name and holds the connections for `holdMs`; prints how many were accepted. */
const CONNECT = `${NAMES}
const net = require('node:net');
const [count, holdMs, name] = process.argv.slice(1);
const names = abstract(name);
let ok = 0, failed = '';
const tries = [];
for (const name of names) for (let i = 0; i < Number(count); i++) {
  tries.push(new Promise((resolve) => {
    const s = net.connect({ path: name }, () => { ok++; resolve(); });
    s.on('error', (e) => { failed = e.code; resolve(); });
  }));
}
Promise.all(tries).then(() => {
  console.log('connected ' + ok + ' ' + failed);
  setTimeout(() => process.exit(0), Number(holdMs));
});`;

/** Binds the abstract names, then tries to make and lock the claim file; prints what it got, then holds on. */
const SQUAT = `${NAMES}
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const [file, name] = process.argv.slice(1);
const names = abstract(name);
let bound = 0;
Promise.all(names.map((n) => new Promise((resolve) => {
  const s = net.createServer();
  s.on('error', () => resolve());
  s.listen(n, () => { bound++; resolve(); });
}))).then(() => {
  let made = 'made';
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.closeSync(fs.openSync(file, 'a'));
  } catch (e) { made = e.code; }
  console.log('squatting ' + bound + ' ' + made);
  setInterval(() => {}, 1000);
});`;

/** Opens `file` for reading; prints the outcome. */
const OPEN = `try { require('node:fs').openSync(process.argv[1], 'r'); console.log('opened'); } catch (e) { console.log(e.code); }`;

async function pair(t: TestLike): Promise<NetnsPair> {
  const net = await createNetnsPair(t, { mtu: 1500 });
  await waitLinkUp(net.target, net.targetIf);
  await waitLinkUp(net.init, net.initIf);
  return net;
}

/** Where the claim of `key` on `ifname` lives for a root process in `ns` (docs/reliability.md §7). */
function claimFile(ns: Netns, ifname: string, key = KEY): string {
  return `/run/aoe-target/claims/net-${fs.statSync(ns.path).ino}/${key}@${ifname}.lock`;
}

function nodeAsNobody(ns: Netns, code: string, args: string[], timeoutMs = 30000) {
  return ns.run('env', [...AS_NOBODY, process.execPath, '-e', code, ...args], { timeoutMs });
}

/** Whether a client on the initiator side finds `shelf.slot` (a Query Config answer). */
async function answers(net: NetnsPair, shelf: number, slot: number): Promise<boolean> {
  const c = AoeClient.open(net.initIf, { netns: net.init.path, timeoutMs: 400, retries: 2 });
  try {
    await c.find(shelf, slot, 1500);
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

if (requireRoot(t)) {
  t.test('a local user connecting to the claim reaches nothing, and the target keeps serving', async (t) => {
    const net = await pair(t);
    const file = await patternFile(t, 64);
    const target = await startTarget(t, net.target, [String(SHELF), String(SLOT), net.targetIf, file]);
    const before = openFds(target.pid);
    // A limit the flood below would pass by far.
    const limit = before + 100;
    await net.target.exec('prlimit', ['--pid', String(target.pid), `--nofile=${limit}:${limit}`]);
    const r = await nodeAsNobody(net.target, CONNECT, ['200', '1500', abstractName(net.targetIf)]);
    t.match(r.stdout, /^connected 0 /m, `nobody's 400 connections: ${r.stdout.trim()} ${r.stderr.trim()}`);
    t.ok(target.proc.running, 'the target is still running');
    t.ok(openFds(target.pid) <= before + 2, `its descriptors: ${before} before, ${openFds(target.pid)} after`);
    t.ok(await answers(net, SHELF, SLOT), `${KEY} still answers`);
  });

  t.test('a local user cannot take a claim first, nor read it', async (t) => {
    const net = await pair(t);
    const file = await patternFile(t, 64);
    const claim = claimFile(net.target, net.targetIf);
    const squatter = net.target.spawn(t, 'env', [...AS_NOBODY, process.execPath, '-e', SQUAT, claim, abstractName(net.targetIf)]);
    const squat = await squatter.waitFor(/^squatting (\d+) (\S+)$/m, { timeoutMs: 20000 });
    t.not(squat[2], 'made', `nobody cannot make the claim file (${squat[0]})`);
    const target = await startTarget(t, net.target, [String(SHELF), String(SLOT), net.targetIf, file]);
    t.ok(target.proc.running, `${KEY} is served whatever nobody bound (${squat[0]})`);
    const st = fs.lstatSync(claim);
    t.same(
      { file: st.isFile(), mode: (st.mode & 0o777).toString(8), uid: st.uid },
      { file: true, mode: '600', uid: 0 },
      'the claim is a file of root, mode 0600',
    );
    for (let dir = path.dirname(claim); dir !== '/run'; dir = path.dirname(dir)) {
      const d = fs.lstatSync(dir);
      t.same(
        { dir: d.isDirectory(), writable: (d.mode & 0o022).toString(8), uid: d.uid },
        { dir: true, writable: '0', uid: 0 },
        dir,
      );
    }
    t.equal(fs.readFileSync(claim, 'utf8'), `${target.pid}\n`, 'it holds the pid of the target');
    const open = await nodeAsNobody(net.target, OPEN, [claim]);
    t.equal(open.stdout.trim(), 'EACCES', 'nobody cannot open it (so cannot lock it)');
  });

  t.test('one forged reply to the start-up probe does not keep an export from serving', async (t) => {
    const net = await pair(t);
    const file = await patternFile(t, 64);
    const forger = '02:00:00:de:ad:be';
    const forged = answerProbes(net, forger, 1);
    t.teardown(() => forged.stop());
    const target = await startTarget(t, net.target, ['--log-level', 'warn', String(SHELF), String(SLOT), net.targetIf, file]);
    t.equal(forged.sent(), 1, 'the forger answered the probe once');
    t.ok(target.proc.running, `${KEY} is served`);
    const warned = target.proc.lines.map((l) => l.text).join('\n');
    t.match(warned, forger, `the log names who answered: ${warned.slice(0, 400)}`);
  });

  t.test(
    'vbladed: a refused export is not reported as serving, is served once free, and a reload checks the same way',
    async (t) => {
      const net = await pair(t);
      const dir = tempDir(t, 'claims-vbladed');
      const files = [await patternFile(t, 64), await patternFile(t, 64), await patternFile(t, 64)];
      // Another of our processes serves e63.4 on the same interface.
      const holder = await startTarget(t, net.target, [String(SHELF), String(SLOT), net.targetIf, files[0]], { label: 'holder' });
      const conf = path.join(dir, 'vblade.conf');
      const socket = path.join(dir, 'ctl.sock');
      const section = (slot: number, f: string): string =>
        `[export e${SHELF}.${slot}]\nfile = ${f}\ninterfaces = ${net.targetIf}\n`;
      const head = `[daemon]\ncontrol-socket = ${socket}\nduplicate-retry-s = 1\n\n`;
      fs.writeFileSync(conf, head + section(SLOT, files[1]) + section(SLOT + 1, files[2]));
      const daemon = net.target.spawn(t, process.execPath, [
        VBLADED,
        '--foreground',
        '--config',
        conf,
        '--run-dir',
        path.join(dir, 'run'),
        '--state-dir',
        'none',
        '--log',
        'stderr',
      ]);
      const serving = await daemon.waitFor(/worker [0-9]+ is serving [^"]*/, { timeoutMs: 60000 });
      t.equal(
        serving[0].replace(/worker [0-9]+/, 'worker N'),
        `worker N is serving e${SHELF}.${SLOT + 1}`,
        'the log names only what serves',
      );
      const ctl = (...args: string[]) =>
        net.target.run(process.execPath, [VBLADE, 'ctl', '--socket', socket, ...args], { timeoutMs: 20000 });
      const listed = await ctl('list');
      t.match(
        listed.stdout,
        `\tnot served: another aoe-target process on this host already serves ${KEY} on ${net.targetIf} (pid ${holder.pid})`,
        `ctl list says why: ${listed.stdout}`,
      );

      holder.proc.child.kill('SIGTERM');
      await holder.proc.exited;
      await daemon.waitFor(new RegExp(`${KEY}: its address is free again; serving it`), { timeoutMs: 20000 });
      t.ok(await answers(net, SHELF, SLOT), `${KEY} answers once the other process is gone`);
      t.notMatch((await ctl('list')).stdout, 'not served', 'ctl list: nothing left out');

      // A reload adds e63.6 while another process serves it: refused the same way.
      const other = await startTarget(t, net.target, ['--null', String(SHELF), String(SLOT + 2), net.targetIf, '1M'], {
        label: 'other',
      });
      fs.writeFileSync(conf, head + section(SLOT, files[1]) + section(SLOT + 1, files[2]) + section(SLOT + 2, files[0]));
      const reload = await ctl('reload');
      t.match(reload.stdout, `not served: e${SHELF}.${SLOT + 2}`, `ctl reload says so: ${reload.stdout} ${reload.stderr}`);
      t.match(
        (await ctl('list')).stdout,
        `\tnot served: another aoe-target process on this host already serves e${SHELF}.${SLOT + 2} on ${net.targetIf} (pid ${other.pid})`,
      );
      other.proc.child.kill('SIGTERM');
      await other.proc.exited;
      await daemon.waitFor(new RegExp(`e${SHELF}\\.${SLOT + 2}: its address is free again; serving it`), { timeoutMs: 20000 });
    },
  );
}

/**
 * A forger on the initiator's side: answers up to `times` of the target's
 * probe queries (Query Config reads with the tag's high bit set) with a
 * Query Config reply from `mac`, as anyone on the segment could.
 */
function answerProbes(net: NetnsPair, mac: string, times: number): { sent(): number; stop(): void } {
  const sock = native.openPacket(net.initIf, { frameSize: 2048, frameCount: 64, netns: net.init.path, accept: 'requests' });
  const src = Uint8Array.from(mac.split(':').map((h) => parseInt(h, 16)));
  const rx = new Uint32Array(64 * DrainLayout.Stride);
  const out = new Uint8Array(64);
  let sent = 0;
  sock.startPolling(() => {
    const n = sock.drain(rx, 64);
    for (let i = 0; i < n; i++) {
      const o = rx[i * DrainLayout.Stride + DrainLayout.Offset];
      const f = sock.ring;
      // Command 1 (Query Config), tag's high bit set, our address (AoE header: major 16-17, minor 18, command 19, tag 20-23).
      const isProbe = f[o + 19] === 1 && (f[o + 20] & 0x80) !== 0 && f[o + 16] * 256 + f[o + 17] === SHELF && f[o + 18] === SLOT;
      if (isProbe && sent < times) {
        out.fill(0);
        out.set(f.subarray(o + 6, o + 12), 0); // to the prober
        out.set(src, 6);
        out.set(f.subarray(o + 12, o + 24), 12); // type, version, shelf, slot, command, tag
        out[14] = 0x18; // version 1, response
        out[24] = 0; // buffer count 16
        out[25] = 16;
        out[28] = 2; // sector count, then version and command
        out[29] = 0x10;
        sock.send(out, Uint32Array.from([0, 60]), 1);
        sent++;
      }
      sock.release(rx[i * DrainLayout.Stride + DrainLayout.Slot]);
    }
  });
  return {
    sent: () => sent,
    stop: () => {
      sock.stopPolling();
      sock.close();
    },
  };
}
