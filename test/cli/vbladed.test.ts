// vbladed end to end, with the stub worker (no packet sockets):
// started from a pseudo-terminal it detaches (own session, no tty) and
// survives the terminal closing; killing the worker gives a logged restart;
// a second vbladed for the same instance or export/interface refuses;
// SIGHUP reloads (adds one export, removes one) and persisted state survives
// worker restarts; `vblade ctl` and metrics work; SIGTERM stops cleanly and
// removes the pid file. In the foreground under a fake NOTIFY_SOCKET it
// speaks sd_notify.

// First: the whole file runs in a network namespace of its own.
import '../helpers/private-netns';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { DgramSink, dgramSinkUnavailable } from '../helpers/dgram-sink';

const ROOT = path.join(__dirname, '..', '..', '..');
const VBLADED = path.join(ROOT, 'bin', 'vbladed.js');
const STUB = path.join(__dirname, '..', 'helpers', 'stub-worker.js');
const CTL = path.join(ROOT, 'dist', 'src', 'cli', 'ctl.js');

const noScript =
  spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'script(1) from util-linux is not installed';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 10000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ps(pid: number): { sid: number; tty: string; ppid: number } | undefined {
  const r = spawnSync('ps', ['-o', 'sid=,tty=,ppid=', '-p', String(pid)], { encoding: 'utf8' });
  const f = r.stdout.trim().split(/\s+/);
  if (f.length < 3) return undefined;
  return { sid: Number(f[0]), tty: f[1], ppid: Number(f[2]) };
}

function children(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => n > 0);
}

function ctl(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(
    process.execPath,
    ['-e', `require(${JSON.stringify(CTL)}).runCtl(process.argv.slice(1)).then((c) => process.exit(c))`, '--', ...args],
    { encoding: 'utf8' },
  );
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

function logRecords(file: string): Array<Record<string, unknown>> {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const CONFIG = (exports: string[], metricsPort: number): string => `[daemon]
metrics = 127.0.0.1:${metricsPort}

${exports
  .map(
    (e) => `[export ${e}]
null-store = yes
null-sectors = 2048
interfaces = vt-a vt-b
`,
  )
  .join('\n')}`;

t.test('detached vbladed from a pseudo-terminal', { skip: noScript }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-'));
  const run = path.join(dir, 'run');
  const logFile = path.join(dir, 'vbladed.log');
  const conf = path.join(dir, 'exports.conf');
  const port = 20000 + (process.pid % 20000);
  fs.writeFileSync(conf, CONFIG(['e7.1', 'e7.2'], port));
  const pids = new Set<number>();
  t.teardown(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const common = ['--run-dir', run, '--state-dir', path.join(dir, 'state'), '--log-file', logFile, '--worker', STUB];

  // Start it inside a pty; the terminal (script's session) ends right after.
  const cmd = [process.execPath, VBLADED, '--config', conf, ...common].map((a) => `'${a}'`).join(' ');
  const sc = spawnSync('script', ['-qfec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 20000 });
  t.equal(sc.status, 0, `launcher exit status (stderr: ${sc.stderr}${sc.stdout})`);
  const pid = Number(/^([0-9]+)\r?$/m.exec(sc.stdout)?.[1]);
  t.ok(pid > 0, `printed the supervisor pid: ${JSON.stringify(sc.stdout)}`);
  pids.add(pid);
  t.equal(fs.readFileSync(path.join(run, 'exports.pid'), 'utf8'), `${pid}\n`, 'the pid file holds the pid alone');

  await new Promise((r) => setTimeout(r, 300));
  t.ok(alive(pid), 'still running after the terminal closed');
  const p = ps(pid)!;
  t.equal(p.sid, pid, 'its own session (setsid)');
  t.equal(p.tty, '?', 'no controlling terminal');
  const workers = await until('the worker', () => {
    const c = children(pid);
    return c.length ? c : undefined;
  });
  for (const w of workers) pids.add(w);
  t.equal(ps(workers[0])!.tty, '?', 'the worker has no terminal either');
  t.equal(ps(workers[0])!.sid, pid, 'the worker is in the daemon session');
  const fd0 = fs.readlinkSync(`/proc/${pid}/fd/0`);
  t.equal(fd0, '/dev/null', 'stdin is /dev/null');
  t.equal(fs.readlinkSync(`/proc/${pid}/fd/1`), logFile, 'stdout goes to the log file');
  t.equal(fs.readlinkSync(`/proc/${pid}/cwd`), '/', 'does not keep the start directory busy');
  for (const f of ['e7.1@vt-a.lock', 'e7.1@vt-b.lock', 'e7.2@vt-a.lock', 'e7.2@vt-b.lock', 'exports.sock'])
    t.ok(fs.existsSync(path.join(run, f)), f);
  t.equal(fs.statSync(path.join(run, 'exports.sock')).mode & 0o777, 0o660, 'control socket mode 0660');

  // A second vbladed for the same instance, or for an export/interface already served, refuses.
  const again = spawnSync(process.execPath, [VBLADED, '--config', conf, ...common], { encoding: 'utf8' });
  t.equal(again.status, 1);
  t.equal(
    again.stderr,
    `vbladed: vbladed is already running for instance exports (pid ${pid}, ${path.join(run, 'exports.pid')}); stop it first (kill ${pid}) or choose another shelf.slot or interface\n`,
  );
  const clash = spawnSync(process.execPath, [VBLADED, ...common, '7', '2', 'vt-b', '/dev/null'], { encoding: 'utf8' });
  t.equal(clash.status, 1);
  t.equal(
    clash.stderr,
    `vbladed: vbladed is already running for e7.2 on vt-b (pid ${pid}, ${path.join(run, 'e7.2@vt-b.lock')}); stop it first (kill ${pid}) or choose another shelf.slot or interface\n`,
  );

  // ctl: list shows both exports and the state the stub set.
  const list1 = ctl('--run-dir', run, 'list');
  t.equal(list1.code, 0, list1.err);
  t.match(
    list1.out,
    /^worker [0-9]+ serving, 0 restarts\ne7\.1\tvt-a,vt-b\trw\tnull:2048\n\tmask: \(empty: everyone\)\n\treserve: 52:54:00:00:00:0a\n\tconfig: "set-by-[0-9]+"\ne7\.2\t/,
  );
  const firstConfig = /config: "(set-by-[0-9]+)"/.exec(list1.out)![1];
  t.equal(ctl('--run-dir', run, 'clear-reserve', 'e7.2').out, 'e7.2: reservation released and saved\n');
  t.equal(ctl('--run-dir', run, 'show-reserve').out, 'e7.1\t52:54:00:00:00:0a\ne7.2\t(not reserved)\n');
  t.equal(
    ctl('--run-dir', run, 'set-reserve', 'e7.2', '52:54:00:00:00:0B', '525400000001').out,
    'e7.2: reservation saved: 52:54:00:00:00:0b 52:54:00:00:00:01\n',
  );
  t.equal(ctl('--run-dir', run, 'add-mask', 'e7.1', '52:54:00:00:00:0c').out, 'e7.1: mask saved: 52:54:00:00:00:0c\n');
  t.equal(
    ctl('--run-dir', run, 'del-mask', 'e7.1', '52:54:00:00:00:0c').out,
    'e7.1: mask saved: (empty: every initiator is allowed)\n',
  );
  const noMacs = ctl('--run-dir', run, 'set-mask', 'e7.1');
  t.equal(noMacs.code, 2, 'set-mask without addresses is a usage error');
  t.equal(ctl('--run-dir', run, 'clear-reserve', 'e7.2').code, 0);
  const bad = ctl('--run-dir', run, 'show-mask', 'e9.9');
  t.equal(bad.code, 1);
  t.equal(bad.err, 'vblade ctl show-mask: no export e9.9; "vblade ctl list" shows the exports\n');

  // Metrics.
  const m = await get(`http://127.0.0.1:${port}/metrics`);
  t.equal(m.status, 200);
  t.match(m.body, /^vblade_up 1$/m);
  t.match(m.body, /^vblade_export_reads_total\{export="e7\.1"\} 5$/m);
  t.match(m.body, /^vblade_export_latency_seconds_bucket\{export="e7\.2",le="\+Inf"\} 5$/m);

  // Kill the worker: a logged restart, and the saved state comes back.
  const w1 = workers[0];
  process.kill(w1, 'SIGKILL');
  const restartLog = await until('the restart log line', () =>
    logRecords(logFile).find((r) => typeof r.msg === 'string' && r.msg.startsWith(`worker ${w1} was killed by SIGKILL`)),
  );
  t.match(restartLog.msg, /^worker [0-9]+ was killed by SIGKILL after [0-9.]+ s; restarting in 1 s \(restart 1\)$/);
  const w2 = await until('a new worker', () => children(pid).find((c) => c !== w1), 8000);
  pids.add(w2);
  await until(
    'the new worker serving',
    () => logRecords(logFile).some((r) => r.msg === `worker ${w2} is serving e7.1 e7.2`),
    8000,
  );
  const list2 = ctl('--run-dir', run, 'list');
  t.match(
    list2.out,
    /^worker [0-9]+ serving, 1 restarts; last: worker was killed by SIGKILL at [0-9-]+T[0-9:.]+Z\n/,
    "the restart and the last worker's end",
  );
  t.ok(list2.out.includes(`config: "${firstConfig}"`), 'config string restored from the state dir');
  t.equal(ctl('--run-dir', run, 'show-reserve', 'e7.2').out, 'e7.2\t(not reserved)\n', 'cleared reserve stays cleared');

  // Reload: add e7.3, remove e7.2, keep e7.1.
  fs.writeFileSync(conf, CONFIG(['e7.1', 'e7.3'], port));
  process.kill(pid, 'SIGHUP');
  const reloaded = await until('the reload', () =>
    logRecords(logFile).find((r) => typeof r.msg === 'string' && r.msg.startsWith('reloaded:')),
  );
  t.equal(reloaded.msg, 'reloaded: 1 added (e7.3), 1 removed (e7.2), 0 changed, 0 resized');
  t.match(ctl('--run-dir', run, 'list').out, /\ne7\.1\t[^]*\ne7\.3\t/);
  t.notOk(fs.existsSync(path.join(run, 'e7.2@vt-a.lock')), 'lock of the removed export released');
  t.ok(fs.existsSync(path.join(run, 'e7.3@vt-b.lock')), 'lock of the added export taken');
  t.equal(children(pid)[0], w2, 'the worker was not restarted by the reload');

  // A daemon setting that only a restart applies: the reload says so.
  fs.writeFileSync(conf, CONFIG(['e7.1', 'e7.3'], port).replace('[daemon]\n', '[daemon]\nspin-us = 5\n'));
  const restartOnly = ctl('--run-dir', run, 'reload');
  t.equal(
    restartOnly.out,
    'reloaded; added: -; removed: -; changed: -; resized: -\nneeds a restart: spin-us\n' +
      'warning: changed daemon settings take effect at the next start: spin-us; restart the service to apply them\n',
    restartOnly.err,
  );
  t.ok(logRecords(logFile).some((r) => r.msg === 'reloaded: 0 added, 0 removed, 0 changed, 0 resized; needs a restart: spin-us'));

  // A broken config on reload: refused and logged, the old one keeps serving.
  fs.writeFileSync(conf, '[export e7.1]\nfile = /x\n');
  const refused = ctl('--run-dir', run, 'reload');
  t.equal(refused.code, 1);
  t.match(refused.err, /^vblade ctl reload: reload refused, nothing changed: .*has no interfaces/);
  const refusal = logRecords(logFile).find(
    (r) => typeof r.msg === 'string' && r.msg.startsWith('reload refused, nothing changed: '),
  );
  t.match(refusal, { level: 50, msg: /has no interfaces/ });
  t.notOk(refusal && 'err' in refusal, 'no stack trace in the log');
  t.match(ctl('--run-dir', run, 'list').out, /\ne7\.3\t/);

  // SIGTERM: clean stop, files removed.
  process.kill(pid, 'SIGTERM');
  await until('exit', () => !alive(pid));
  t.notOk(alive(w2), 'worker gone');
  const stopped = logRecords(logFile).find((r) => r.msg === 'stopped');
  t.match(stopped, { code: 0 });
  t.same(fs.readdirSync(run), [], 'pid file, locks and socket removed');
  t.ok(logRecords(logFile).some((r) => r.msg === 'worker stopped: in-flight requests finished and state saved'));
});

t.test('a launch that fails to serve says so and keeps retrying', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-fail-'));
  let pid = 0;
  t.teardown(() => {
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const r = spawnSync(
    process.execPath,
    [
      VBLADED,
      '--run-dir',
      dir,
      '--state-dir',
      'none',
      '--log-file',
      path.join(dir, 'log'),
      '--worker',
      STUB,
      '1',
      '2',
      'vt-x',
      '/dev/null',
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, STUB_FAIL_START: 'vt-x: no such interface' },
    },
  );
  t.equal(r.status, 0);
  pid = Number(r.stdout.trim());
  t.ok(pid > 0);
  t.equal(
    r.stderr,
    `vbladed: logging to ${path.join(dir, 'log')}\nvbladed: pid ${pid} started, but serving failed: vt-x: no such interface\nvbladed: it keeps retrying with back-off; stop it with "kill ${pid}"\n`,
  );
  t.ok(fs.existsSync(path.join(dir, 'e1.2@vt-x.pid')), 'single-export instance name e1.2@vt-x');
  process.kill(pid, 'SIGTERM');
  await until('exit', () => !alive(pid));
});

t.test('usage errors go to the terminal with exit 1', async (t) => {
  const r = spawnSync(process.execPath, [VBLADED, '-b', '0', '1', '2', 'vt-u', 'f'], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.equal(
    r.stderr,
    'vbladed: -b: buffer count 0 is out of range; use 1..65535\nusage: vbladed [daemon options] [-b bufcnt] [-d] [-s] [-r] [-m mac[,mac...]] [-o offset] [-l length] shelf slot netif file\n',
  );
  const c = spawnSync(process.execPath, [VBLADED, '--config', '/nonexistent/vblade.conf'], { encoding: 'utf8' });
  t.equal(c.status, 1);
  t.equal(
    c.stderr,
    "vbladed: cannot read /nonexistent/vblade.conf: ENOENT: no such file or directory, open '/nonexistent/vblade.conf'; create it (see vblade.conf(5) and systemd/vblade.conf.example)\n",
  );
  const m = spawnSync(process.execPath, [VBLADED, '--metrics', 'localhost', '1', '2', 'vt-u', 'f'], { encoding: 'utf8' });
  t.equal(m.stderr.split('\n')[0], 'vbladed: --metrics: "localhost" is not HOST:PORT; write e.g. 127.0.0.1:9469 or [::1]:9469');
});

t.test('foreground under systemd: READY, WATCHDOG, RELOADING, STOPPING', { skip: dgramSinkUnavailable() }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-fg-'));
  const sink = await DgramSink.start(path.join(dir, 'notify'));
  const child = spawn(
    process.execPath,
    [
      VBLADED,
      '--foreground',
      '--run-dir',
      path.join(dir, 'run'),
      '--state-dir',
      'none',
      '--log',
      'stderr',
      '--worker',
      STUB,
      '3',
      '4',
      'vt-a',
      '/dev/null',
    ],
    {
      env: { ...process.env, NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '400000' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    sink.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await until('READY=1', () => sink.messages.find((m) => m.startsWith('READY=1')), 10000);
  t.ok(
    sink.messages.some((m) => m === 'READY=1\nSTATUS=serving e3.4'),
    JSON.stringify(sink.messages),
  );
  await until('WATCHDOG=1', () => sink.messages.filter((m) => m === 'WATCHDOG=1').length >= 2, 3000);
  child.kill('SIGHUP');
  await until('RELOADING then READY', () => {
    const i = sink.messages.findIndex((m) => m.startsWith('RELOADING=1'));
    return i >= 0 && sink.messages.slice(i).some((m) => m.startsWith('READY=1'));
  });
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  t.equal(code, 0, stderr);
  await new Promise((r) => setTimeout(r, 200)); // let the sink read what is queued
  const stop = sink.messages.findIndex((m) => m.startsWith('STOPPING=1'));
  t.ok(stop >= 0, 'STOPPING=1 sent');
  t.same(sink.messages.slice(stop + 1), [], 'nothing after STOPPING=1');
  t.match(stderr, /"msg":"stopped"/);
});
