// The foreground supervisor's start-up failure path (src/service/daemon.ts):
// when an export's lock is held by a live process, start-up stops with the
// lock's message and exit status 1, and gives back the pid file it had
// already taken, so the next start is not blocked by it. A pid file left by
// a crash whose pid now belongs to another process is replaced, and the log
// says so in words that hold.

// First: the whole file runs in a network namespace of its own.
import '../helpers/private-netns';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { createNetns, requireRoot } from '../../lab/netns';
import { PidFile, exportLockFile, startTimeFile } from '../../src/service/pidfile';

const ROOT = path.join(__dirname, '..', '..', '..');
const VBLADED = path.join(ROOT, 'bin', 'vbladed.js');
const VBLADE = path.join(ROOT, 'bin', 'vblade.js');
const STUB = path.join(__dirname, '..', 'helpers', 'stub-worker.js');

t.test('a held export lock: exit 1, the pid file given back, nothing else left behind', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-daemon-'));
  const run = path.join(dir, 'run');
  fs.mkdirSync(run);
  // This test process holds e3.4 on vt-b, as another vbladed would.
  const held = PidFile.acquire(exportLockFile(run, 'e3.4', 'vt-b'), { what: 'e3.4 on vt-b' });
  t.teardown(() => {
    held.release();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const conf = path.join(dir, 'two.conf');
  fs.writeFileSync(conf, '[export e3.4]\nnull-store = yes\nnull-sectors = 8\ninterfaces = vt-a vt-b\n');
  const r = spawnSync(
    process.execPath,
    [
      VBLADED,
      '--foreground',
      '--config',
      conf,
      '--run-dir',
      run,
      '--state-dir',
      'none',
      '--log',
      'stderr',
      '--control-socket',
      'none',
      '--worker',
      STUB,
    ],
    { encoding: 'utf8', timeout: 20000 },
  );
  t.equal(r.status, 1, 'exit status');
  const fatal = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .find((x) => x.level === 60);
  t.match(fatal?.msg, `vbladed is already running for e3.4 on vt-b (pid ${process.pid}`, 'the lock holder is named in the log');
  t.same(
    fs.readdirSync(run).sort(),
    ['e3.4@vt-b.lock', 'e3.4@vt-b.lock.start'],
    "the pid file and the lock on vt-a are gone; the other process's lock stays",
  );
});

t.test('a stale pid file whose pid now belongs to another process: replaced and logged', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'stalepid');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-stale-'));
  const run = path.join(dir, 'run');
  fs.mkdirSync(run);
  // A live process that is not vbladed, holding the pid the file names.
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => {
    other.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const pidFile = path.join(run, 'one.pid');
  fs.writeFileSync(pidFile, `${other.pid}\n`);
  fs.writeFileSync(startTimeFile(pidFile), `pid=${other.pid} start=1\n`);
  const conf = path.join(dir, 'one.conf');
  fs.writeFileSync(conf, '[export e3.5]\nnull-store = yes\nnull-sectors = 8\ninterfaces = vt-a\n');
  const args = ['--foreground', '--config', conf, '--run-dir', run, '--state-dir', 'none', '--log', 'stderr'];
  const p = ns.spawn(t, process.execPath, [VBLADED, ...args, '--control-socket', 'none', '--worker', STUB]);
  const line = (await p.waitFor(/^\{.*removed stale pid file.*$/))[0];
  const rec = JSON.parse(line) as { msg: string; pid: number };
  t.equal(rec.msg, `removed stale pid file ${pidFile} of pid ${other.pid}, which no longer runs vbladed`);
  t.equal(rec.pid, p.pid, "the record's pid is the daemon's own");
  await p.waitFor(/"msg":"vbladed one starting/);
  t.equal(fs.readFileSync(pidFile, 'utf8'), `${p.pid}\n`, 'the pid file is the new daemon');
  await p.stop();
});

t.test('a run or state directory others may write to is refused with the fix, before anything is taken', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-dirs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = path.join(dir, 'run');
  const state = path.join(dir, 'state');
  const start = (): { status: number | null; fatal?: string } => {
    const r = spawnSync(
      process.execPath,
      [
        VBLADED,
        '--foreground',
        '--run-dir',
        run,
        '--state-dir',
        state,
        '--log',
        'stderr',
        '--control-socket',
        'none',
        '--worker',
        STUB,
        '3',
        '4',
        'vt-a',
        '/dev/null',
      ],
      { encoding: 'utf8', timeout: 20000 },
    );
    const fatal = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .find((x) => x.level === 60);
    return { status: r.status, fatal: fatal?.msg };
  };
  fs.mkdirSync(run, { mode: 0o777 });
  fs.chmodSync(run, 0o777);
  t.same(start(), {
    status: 1,
    fatal: `run directory ${run} is writable by its group and others (mode 0777); another user could replace its files: chmod go-w ${run}`,
  });
  t.same(fs.readdirSync(run), [], 'no pid file taken');
  fs.chmodSync(run, 0o755);
  fs.mkdirSync(state, { mode: 0o750 });
  fs.chownSync(state, 65534, 65534);
  t.same(start(), {
    status: 1,
    fatal: `state directory ${state} belongs to uid 65534, not to the daemon's user (uid 0); that user could replace its files: chown 0 ${state}`,
  });
  t.same(fs.readdirSync(run), [], 'the pid file was given back');
});

t.test('a state directory under a directory another user owns is refused, naming that directory', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-parent-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  // nobody's directory: nobody could rename state away and put its own in its place.
  const shared = path.join(dir, 'shared');
  fs.mkdirSync(shared, { mode: 0o755 });
  fs.chownSync(shared, 65534, 65534);
  const state = path.join(shared, 'state');
  fs.mkdirSync(state, { mode: 0o750 });
  const r = spawnSync(
    process.execPath,
    [
      VBLADED,
      '--foreground',
      '--run-dir',
      path.join(dir, 'run'),
      '--state-dir',
      state,
      '--log',
      'stderr',
      '--control-socket',
      'none',
      '--worker',
      STUB,
      '3',
      '4',
      'vt-a',
      '/dev/null',
    ],
    { encoding: 'utf8', timeout: 20000 },
  );
  t.equal(r.status, 1, 'exit status 1');
  t.match(
    r.stderr,
    `${shared} (above ${state}) belongs to uid 65534, who could put another directory in place of ${state}; give it to root (chown root ${shared}) or choose a path whose parents only root can change`,
    'the message names the directory above and the fix',
  );
  t.notMatch(r.stderr, /chmod .*\/tmp/, 'and does not tell to chmod /tmp');
});

t.test("a log file planted as a link by the log directory's owner: refused, the linked file unchanged", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-logdir-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  const victim = path.join(dir, 'victim');
  fs.writeFileSync(victim, 'root-owned\n', { mode: 0o600 });
  // The log directory given to nobody (as an operator might for `user = nobody`); nobody plants the link.
  const logs = path.join(dir, 'logs');
  fs.mkdirSync(logs, { mode: 0o755 });
  fs.chownSync(logs, 65534, 65534);
  const log = path.join(logs, 'three.log');
  const plant = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'ln', '-s', victim, log]);
  t.equal(plant.status, 0, 'nobody planted the link');
  const run = (): ReturnType<typeof spawnSync> =>
    spawnSync(
      process.execPath,
      [
        VBLADED,
        '--foreground',
        '--run-dir',
        path.join(dir, 'run'),
        '--state-dir',
        'none',
        '--log',
        'file',
        '--log-file',
        log,
        '--control-socket',
        'none',
        '--worker',
        STUB,
        '3',
        '4',
        'vt-a',
        '/dev/null',
      ],
      { encoding: 'utf8', timeout: 20000 },
    );
  const r = run();
  t.equal(r.status, 1, 'exit status 1');
  t.match(
    r.stderr,
    `vbladed: log directory ${logs} belongs to uid 65534, not to the daemon's user (uid 0); that user could replace its files: chown 0 ${logs}`,
    'the message names the log directory and the fix',
  );
  t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  t.equal(fs.readFileSync(victim, 'utf8'), 'root-owned\n', 'the linked file is unchanged');
  // Even in a directory of root's, the link itself is refused, not followed.
  fs.chownSync(logs, 0, 0);
  const r2 = run();
  t.equal(r2.status, 1, 'exit status 1 with the link in a directory of root');
  t.match(r2.stderr, `vbladed: log file ${log} is a symbolic link, not a regular file; it is not used: remove it`);
  t.equal(fs.readFileSync(victim, 'utf8'), 'root-owned\n', 'the linked file is still unchanged');
});

/** Whether a process ends (or is a zombie left to its new parent) within 2 s. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    if (/^[0-9]+ \(.*\) Z /.test(stat)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** The hard RLIMIT_NOFILE of a process (the soft one goes back up to it without privilege). */
function hardFileLimit(pid: number): number {
  return Number(/^Max open files +[0-9]+ +([0-9]+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))![1]);
}

/** The highest open descriptor of a process, bar those a test runner may pass down far above (tap's at 200 and up). */
function highestFd(pid: number): number {
  return Math.max(
    ...fs
      .readdirSync(`/proc/${pid}/fd`)
      .map(Number)
      .filter((fd) => fd < 100),
  );
}

t.test('a worker that cannot be forked (EMFILE): logged and retried; the control socket answers; SIGTERM stops', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'emfile');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-emfile-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = path.join(dir, 'run');
  const socket = path.join(dir, 'ctl.sock');
  const conf = path.join(dir, 'one.conf');
  fs.writeFileSync(conf, '[export e3.6]\nnull-store = yes\nnull-sectors = 8\ninterfaces = lo\n');
  const args = ['--foreground', '--config', conf, '--run-dir', run, '--state-dir', 'none', '--log', 'stderr'];
  const p = ns.spawn(t, process.execPath, [VBLADED, ...args, '--control-socket', socket, '--worker', STUB]);
  const serving = await p.waitFor(/"msg":"worker ([0-9]+) is serving e3\.6"/, { timeoutMs: 20000 });
  await p.waitFor(/"msg":"control socket at /, { from: 0 });
  // No descriptor above those open now (the soft limit): the worker's pipes, once closed, leave too few for a fork.
  const lowered = await ns.run('prlimit', ['--pid', String(p.pid), `--nofile=${highestFd(p.pid) + 1}:`]);
  t.equal(lowered.code, 0, lowered.stderr);
  process.kill(Number(serving[1]), 'SIGKILL');
  const failed = await p.waitFor(/"msg":"cannot start a worker \(([^"]*)\); trying again in [0-9.]+ s"/, { timeoutMs: 10000 });
  t.match(failed[1], /EMFILE|ENFILE|could not be created/, 'the reason is given');
  await p.waitFor(/"msg":"cannot start a worker .*; trying again in /, { timeoutMs: 10000 });
  const ctl = await ns.run(process.execPath, [VBLADE, 'ctl', '--socket', socket, 'show-mask'], { timeoutMs: 20000 });
  t.match(
    ctl.stderr,
    /^vblade ctl show-mask: the worker is not serving right now \(last: cannot start a worker \([^\n]*\)\); next start in [0-9.]+ s\n$/,
    'ctl is answered',
  );
  t.notOk(
    p.lines.some((l) => /supervisor error|TypeError/.test(l.text)),
    'no exception in the supervisor',
  );
  // Descriptors back: the next try serves again.
  await ns.run('prlimit', ['--pid', String(p.pid), `--nofile=${hardFileLimit(p.pid)}:`]);
  await p.waitFor(/"msg":"worker [0-9]+ is serving e3\.6"/, { timeoutMs: 20000 });
  await ns.run('prlimit', ['--pid', String(p.pid), `--nofile=${highestFd(p.pid) + 1}:`]);
  const again = p.lines.filter((l) => /"msg":"worker [0-9]+ is serving e3\.6"/.test(l.text)).pop()!;
  process.kill(Number(/worker ([0-9]+) is serving/.exec(again.text)![1]), 'SIGKILL');
  await p.waitFor(/"msg":"cannot start a worker /, { timeoutMs: 10000 });
  const t0 = Date.now();
  p.signal('SIGTERM');
  const st = await p.waitExit(10000);
  t.equal(st.code, 0, 'SIGTERM with no worker running: a clean stop');
  t.ok(Date.now() - t0 < 5000, 'at once, not after the stop timeout');
});

t.test('a second SIGTERM while the worker is still stopping: the worker is killed and vbladed exits', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'twice');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-twice-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = path.join(dir, 'run');
  const conf = path.join(dir, 'one.conf');
  fs.writeFileSync(conf, '[export e3.7]\nnull-store = yes\nnull-sectors = 8\ninterfaces = lo\n');
  const args = ['--foreground', '--config', conf, '--run-dir', run, '--state-dir', 'none', '--log', 'stderr'];
  const p = ns.spawn(t, process.execPath, [VBLADED, ...args, '--control-socket', 'none', '--worker', STUB], {
    env: { STUB_STOP_DELAY: '60000' },
  });
  const serving = await p.waitFor(/"msg":"worker ([0-9]+) is serving e3\.7"/, { timeoutMs: 20000 });
  const worker = Number(serving[1]);
  p.signal('SIGTERM');
  await p.waitFor(/"msg":"stopping worker /);
  p.signal('SIGTERM');
  const st = await p.waitExit(5000);
  t.equal(st.code, 1, 'exit 1: the worker did not stop cleanly');
  t.ok(
    p.lines.some((l) => l.text.includes('"msg":"SIGTERM again while stopping: killing the worker and exiting now"')),
    'it says so',
  );
  t.ok(await gone(worker), 'the worker is gone');
  t.same(fs.readdirSync(run), [], 'pid file and locks given back');
});
