// Pid files and export locks: creation, refusal with a clear message, stale
// files (dead owner, reused pid), removal.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import {
  AlreadyRunningError,
  ExportLocks,
  PidFile,
  processStartTime,
  readPidFile,
  startTimeFile,
} from '../../src/service/pidfile';

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vblade-pid-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A live process we started (killed in teardown), standing in for another vbladed. */
async function otherProcess(t: { teardown(fn: () => void): void }): Promise<number> {
  const p = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  const pid = p.pid!;
  t.teardown(() => {
    if (p.exitCode === null) process.kill(pid, 'SIGKILL');
  });
  await new Promise((r) => setTimeout(r, 100));
  return pid;
}

/** What another vbladed would have left: the pid file and its start-time file. */
function ownedBy(file: string, pid: number, start: string | undefined): void {
  fs.writeFileSync(file, `${pid}\n`);
  fs.writeFileSync(startTimeFile(file), `pid=${pid} start=${start}\n`);
}

t.test('create, content, release', async (t) => {
  const dir = path.join(tmp(t), 'run');
  const file = path.join(dir, 'vblade.pid');
  const pf = PidFile.acquire(file, { what: 'instance vblade' });
  t.equal(fs.readFileSync(file, 'utf8'), `${process.pid}\n`, 'the pid alone, as every daemon writes it');
  t.equal(startTimeFile(file), `${file}.start`);
  t.equal(fs.readFileSync(startTimeFile(file), 'utf8'), `pid=${process.pid} start=${processStartTime(process.pid)}\n`);
  t.same(readPidFile(file), { pid: process.pid, startTime: processStartTime(process.pid) });
  const r = spawnSync('sh', ['-c', `kill -0 $(cat ${file})`], { encoding: 'utf8' });
  t.same({ status: r.status, stderr: r.stderr }, { status: 0, stderr: '' }, 'kill $(cat FILE) works');
  pf.release();
  t.same(fs.readdirSync(dir), [], 'both files removed');
  pf.release(); // idempotent
});

t.test('a live owner: refused with a clear message', async (t) => {
  const file = path.join(tmp(t), 'e1.1@eth1.lock');
  const pid = await otherProcess(t);
  ownedBy(file, pid, processStartTime(pid));
  const err = t.throws(() => PidFile.acquire(file, { what: 'e1.1 on eth1' })) as AlreadyRunningError;
  t.type(err, AlreadyRunningError);
  t.equal(
    err.message,
    `vbladed is already running for e1.1 on eth1 (pid ${pid}, ${file}); stop it first (kill ${pid}) or choose another shelf.slot or interface`,
  );
  t.equal(err.pid, pid);
  t.ok(fs.existsSync(file), 'the owner keeps its file');
});

t.test('stale files are replaced', async (t) => {
  const dir = tmp(t);
  const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((r) => dead.on('exit', r));
  const live = await otherProcess(t);
  const rows: Array<[string, string, string?]> = [
    ['dead pid', `${dead.pid}\n`, `pid=${dead.pid} start=1\n`],
    ['pid reused by another process (start time differs)', `${live}\n`, `pid=${live} start=1\n`],
    ['foreign file without start time, pid not vblade', `${live}\n`],
    ['start-time file of an earlier pid, pid not vblade', `${live}\n`, `pid=${dead.pid} start=${processStartTime(live)}\n`],
    ['two-line file of an older version, pid reused', `${live}\nstart=1 vbladed\n`],
    ['garbage, old', 'garbage'],
  ];
  for (const [desc, content, start] of rows) {
    const file = path.join(dir, `${desc.replace(/\W+/g, '-')}.pid`);
    fs.writeFileSync(file, content);
    if (start !== undefined) fs.writeFileSync(startTimeFile(file), start);
    if (desc.startsWith('garbage')) fs.utimesSync(file, new Date(0), new Date(0));
    const stale: unknown[] = [];
    const pf = PidFile.acquire(file, { what: 'x', onStale: (i) => stale.push(i) });
    t.equal(fs.readFileSync(file, 'utf8'), `${process.pid}\n`, desc);
    t.equal(readPidFile(file)?.startTime, processStartTime(process.pid), `${desc}: the start-time file is ours now`);
    t.equal(stale.length, 1, `${desc}: reported as stale`);
    pf.release();
  }
});

t.test('an empty, fresh file is someone starting right now', async (t) => {
  const file = path.join(tmp(t), 'x.pid');
  fs.writeFileSync(file, '');
  t.throws(() => PidFile.acquire(file, { what: 'instance x' }), {
    message: `another vbladed is taking instance x right now (pid file ${file}); try again`,
  });
});

t.test('release leaves a file that is not ours', async (t) => {
  const file = path.join(tmp(t), 'x.pid');
  const pf = PidFile.acquire(file, { what: 'x' });
  ownedBy(file, 1, '5');
  pf.release();
  t.ok(fs.existsSync(file));
  t.equal(fs.readFileSync(startTimeFile(file), 'utf8'), 'pid=1 start=5\n', "the other owner's start-time file stays too");
});

t.test('export locks: all or nothing, and dropping what a reload removed', async (t) => {
  const dir = tmp(t);
  const other = await otherProcess(t);
  ownedBy(path.join(dir, 'e1.2@eth2.lock'), other, processStartTime(other));
  const locks = new ExportLocks(dir);
  locks.acquire([{ key: 'e1.1', interfaces: ['eth1', 'eth2'] }]);
  t.same(locks.names().sort(), ['e1.1@eth1', 'e1.1@eth2']);
  t.throws(
    () =>
      locks.acquire([
        { key: 'e1.1', interfaces: ['eth1'] },
        { key: 'e1.3', interfaces: ['eth1'] },
        { key: 'e1.2', interfaces: ['eth2'] },
      ]),
    {
      message: `vbladed is already running for e1.2 on eth2 (pid ${other}, ${path.join(dir, 'e1.2@eth2.lock')}); stop it first (kill ${other}) or choose another shelf.slot or interface`,
    },
  );
  t.notOk(fs.existsSync(path.join(dir, 'e1.3@eth1.lock')), 'the lock taken before the conflict is given back');
  const toDrop = locks.acquire([
    { key: 'e1.1', interfaces: ['eth1'] },
    { key: 'e1.3', interfaces: ['eth1'] },
  ]);
  t.same(toDrop, ['e1.1@eth2']);
  t.ok(fs.existsSync(path.join(dir, 'e1.1@eth2.lock')), 'kept until dropped');
  locks.drop(toDrop);
  t.notOk(fs.existsSync(path.join(dir, 'e1.1@eth2.lock')));
  locks.releaseAll();
  t.same(fs.readdirSync(dir).sort(), ['e1.2@eth2.lock', 'e1.2@eth2.lock.start']);
});
