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
