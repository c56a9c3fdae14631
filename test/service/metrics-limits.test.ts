// The metrics listener cannot be used to exhaust the daemon: a flood of idle
// and slow-header connections leaves the supervisor's descriptors bounded,
// a real scrape still gets its page, the control socket still answers, and
// idle connections are closed after a few seconds. Scrapes share one stats
// request to the worker and its rendered page for a second.

// First: the whole file runs in a network namespace of its own.
import '../helpers/private-netns';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { MetricsServer, METRICS_LIMITS } from '../../src/service/metrics';

const ROOT = path.join(__dirname, '..', '..', '..');
const VBLADED = path.join(ROOT, 'bin', 'vbladed.js');
const STUB = path.join(__dirname, '..', 'helpers', 'stub-worker.js');
const CTL = path.join(ROOT, 'dist', 'src', 'cli', 'ctl.js');

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 10000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

function ctl(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(
    process.execPath,
    ['-e', `require(${JSON.stringify(CTL)}).runCtl(process.argv.slice(1)).then((c) => process.exit(c))`, '--', ...args],
    { encoding: 'utf8', timeout: 10000 },
  );
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Opens `n` TCP connections to `port`; `first` is written on each once it is connected (slow headers), or nothing (idle). */
async function flood(port: number, n: number, first?: string): Promise<{ sockets: net.Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets: net.Socket[] = [];
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve) => {
          const s = net.connect(port, '127.0.0.1');
          sockets.push(s);
          s.on('error', () => undefined);
          s.on('close', () => {
            closed++;
            resolve();
          });
          s.on('connect', () => {
            if (first !== undefined) s.write(first);
            resolve();
          });
        }),
    ),
  );
  return { sockets, closed: () => closed };
}

t.test('idle and slow-header connections neither exhaust vbladed nor keep a scrape or vblade ctl out', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-metrics-'));
  const run = path.join(dir, 'run');
  const port = 20000 + ((process.pid + 7) % 20000);
  const conf = path.join(dir, 'm.conf');
  fs.writeFileSync(
    conf,
    `[daemon]\nmetrics = 127.0.0.1:${port}\n\n[export e5.1]\nnull-store = yes\nnull-sectors = 2048\ninterfaces = vt-a\n`,
  );
  const child = spawn(
    process.execPath,
    [VBLADED, '--foreground', '--config', conf, '--run-dir', run, '--state-dir', 'none', '--log', 'stderr', '--worker', STUB],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const sockets: net.Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await until('the metrics listener and the worker', () => /metrics at http/.test(stderr) && /is serving/.test(stderr), 15000);
  const first = await get(`http://127.0.0.1:${port}/metrics`);
  t.equal(first.status, 200, 'a scrape before the flood');
  await new Promise((r) => setTimeout(r, 300));
  const before = openFds(child.pid!);

  const idle = await flood(port, 300);
  const slow = await flood(port, 100, 'GET /metrics HTTP/1.1\r\nHost: x\r\n');
  sockets.push(...idle.sockets, ...slow.sockets);
  await new Promise((r) => setTimeout(r, 500));
  const during = openFds(child.pid!);
  t.ok(
    during <= before + METRICS_LIMITS.maxConnections + 4,
    `vbladed holds ${during} descriptors during a flood of 400 connections (${before} before; at most ${METRICS_LIMITS.maxConnections} connections kept)`,
  );

  const scrape = await get(`http://127.0.0.1:${port}/metrics`);
  t.equal(scrape.status, 200, 'a real scrape during the flood gets its page');
  t.match(scrape.body, /^vblade_up 1$/m, 'the page says the worker serves');
  const list = ctl('--socket', path.join(run, 'm.sock'), 'list');
  t.equal(list.code, 0, `vblade ctl list during the flood: ${list.err}`);
  t.match(list.out, /^e5\.1\t/m, 'and lists the export');

  // What is left of the flood is closed after the header timeout.
  await until(
    'the idle connections to be closed',
    () => idle.closed() + slow.closed() === 400,
    METRICS_LIMITS.headersTimeoutMs + METRICS_LIMITS.checkIntervalMs + 3000,
  );
  t.pass('every idle and slow-header connection was closed by the daemon');
  t.ok(openFds(child.pid!) <= before + 2, 'and their descriptors are given back');
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  t.equal(code, 0, code === 0 ? 'vbladed stops cleanly' : stderr.slice(-2000));
});

t.test('concurrent scrapes share one stats request, and its page for a second', async (t) => {
  let calls = 0;
  const source = {
    stats: async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 100));
      return { exports: [{ key: 'e1.1', counters: { reads: calls } }] };
    },
    supervisor: () => ({ ready: true }),
  };
  const m = await MetricsServer.listen(source, { host: '127.0.0.1', port: 0 }, pino({ level: 'silent' }));
  t.teardown(() => m.close());
  const url = `http://127.0.0.1:${m.address.port}/metrics`;
  const pages = await Promise.all(Array.from({ length: 10 }, () => get(url)));
  t.same(
    pages.map((p) => p.status),
    Array(10).fill(200),
  );
  t.equal(calls, 1, '10 concurrent scrapes asked the worker once');
  t.ok(
    pages.every((p) => /^vblade_export_reads_total\{export="e1\.1"\} 1$/m.test(p.body)),
    'and all got its figures',
  );
  await get(url);
  t.equal(calls, 1, 'a scrape right after gets the same page');
  await new Promise((r) => setTimeout(r, METRICS_LIMITS.pageCacheMs + 50));
  const later = await get(url);
  t.equal(calls, 2, 'after the cache time a scrape asks again');
  t.match(later.body, /^vblade_export_reads_total\{export="e1\.1"\} 2$/m);
});

t.test('a metrics listener on every address is logged as a warning at start', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-metrics-'));
  const port = 20000 + ((process.pid + 11) % 20000);
  const conf = path.join(dir, 'w.conf');
  fs.writeFileSync(
    conf,
    `[daemon]\nmetrics = 0.0.0.0:${port}\n\n[export e5.2]\nnull-store = yes\nnull-sectors = 2048\ninterfaces = vt-a\n`,
  );
  const child = spawn(
    process.execPath,
    [
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
      '--worker',
      STUB,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await until('the metrics listener', () => /metrics at http/.test(stderr), 15000);
  const records = stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string });
  const warning = records.find((r) => r.level === 40 && /^metrics = 0\.0\.0\.0:/.test(r.msg));
  t.match(warning?.msg, /listens on every address of this host: anyone who can reach port \d+ can read the metrics/);
  t.match(warning?.msg, /bind 127\.0\.0\.1:\d+ .* set metrics-allow-remote = yes$/);
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
});
