// Where a detached vbladed's logs go on a machine without /dev/log, and what
// a reload with a broken config file logs. The socket paths are pointed at names that do not
// exist (AOET_TEST_LOG_SOCKETS), standing for such a machine:
//  - no /dev/log, no journal socket: the launcher says "logging to FILE" and
//    the daemon's records are in that file; a reload of a config file with a
//    mistake and a NUL byte in it is logged as the message alone: no stack
//    trace, no raw control character;
//  - no /dev/log, a journal socket: records go there in journald's native
//    form, and the launcher says so.
// vbladed runs with the stub worker (no packet sockets), inside a network
// namespace of the test's own.

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { pidAlive, sleep } from '../../lab/common';
import { DgramSink } from '../helpers/dgram-sink';
import { tempDir } from '../helpers/files';
import { createNetns, requireRoot, type Netns } from '../../lab/netns';
import type { TestLike } from '../../lab/common';

const ROOT = path.join(__dirname, '..', '..', '..');
const VBLADED = path.join(ROOT, 'bin', 'vbladed.js');
const STUB = path.join(__dirname, '..', 'helpers', 'stub-worker.js');

const CONFIG = '[export e7.1]\nnull-store = yes\nnull-sectors = 2048\ninterfaces = vt-a\n';

async function until<T>(what: string, fn: () => T | undefined | false, ms = 10000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Socket paths that do not exist (a machine without /dev/log and journald), and AOET_TEST_LOG_SOCKETS for them. */
function missingSockets(dir: string): { noSyslog: string; noJournal: string; sockets: string } {
  const noSyslog = path.join(dir, 'no-dev-log');
  const noJournal = path.join(dir, 'no-journal-socket');
  return { noSyslog, noJournal, sockets: `${noSyslog}:${noJournal}` };
}

/**
 * Launches a detached vbladed in `ns` serving `source` (default: --config
 * with CONFIG); returns the launcher's output and the daemon's pid (killed in teardown).
 */
async function launch(
  t: TestLike,
  ns: Netns,
  dir: string,
  sockets: string,
  extra: string[],
  source?: string[],
): Promise<{ pid: number; stderr: string; conf: string }> {
  const conf = path.join(dir, 'exports.conf');
  fs.writeFileSync(conf, CONFIG);
  const r = await ns.run(
    process.execPath,
    [
      VBLADED,
      ...(source ?? ['--config', conf]),
      '--run-dir',
      path.join(dir, 'run'),
      '--state-dir',
      'none',
      '--control-socket',
      'none',
      '--worker',
      STUB,
      ...extra,
    ],
    { env: { AOET_TEST_LOG_SOCKETS: sockets }, timeoutMs: 20000 },
  );
  const pid = Number(r.stdout.trim());
  if (r.code !== 0 || !(pid > 0)) throw new Error(`vbladed did not start: exit ${r.code}\n${r.stdout}${r.stderr}`);
  t.teardown(async () => {
    if (!pidAlive(pid)) return;
    process.kill(pid, 'SIGTERM');
    await until('the daemon to stop', () => !pidAlive(pid)).catch(() => process.kill(pid, 'SIGKILL'));
  });
  return { pid, stderr: r.stderr, conf };
}

if (requireRoot(t)) {
  t.test('no /dev/log and no journal: the logs go to the fallback file, and the launcher says so', async (t) => {
    const ns = await createNetns(t, 'vbladed-log');
    const dir = tempDir(t, 'vbladed-log');
    const noSyslog = path.join(dir, 'no-dev-log');
    const noJournal = path.join(dir, 'no-journal-socket');
    const logFile = path.join(dir, 'fallback', 'vbladed.log');
    const { pid, stderr, conf } = await launch(t, ns, dir, `${noSyslog}:${noJournal}`, [
      '--log',
      'syslog',
      '--log-file',
      logFile,
      '--log-format',
      'text',
    ]);
    t.equal(stderr, `vbladed: logging to ${logFile} (there is no ${noSyslog} or ${noJournal})\n`, 'the launcher says where');
    const read = (): string => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'latin1') : '');
    await until('the start-up record in the file', () => read().includes(`vbladed exports starting (pid ${pid})`));

    // A config file gone bad: a misspelt key and a line with a NUL byte.
    fs.writeFileSync(conf, CONFIG + 'bogus-key = 1\nfile\u0000 = x\n');
    process.kill(pid, 'SIGHUP');
    const text = await until('the failed reload in the file', () => {
      const s = read();
      return s.includes('reload refused') && s;
    });
    const line = text.split('\n').find((l) => l.includes('reload refused'))!;
    t.match(line, /ERROR \[\d+\] reload refused, nothing changed: .*unknown key "bogus-key"/);
    t.match(line, /\\u0000/, 'the NUL is written as \\u0000');
    t.notOk(text.includes('\u0000'), 'no NUL byte anywhere in the log');
    t.notOk(/^\s+at /m.test(text), 'no stack trace for a config mistake');
    t.ok(pidAlive(pid), 'still serving');
  });

  t.test('no /dev/log, a journal socket: the logs go to the journal', async (t) => {
    const ns = await createNetns(t, 'vbladed-journal');
    const dir = tempDir(t, 'vbladed-journal');
    const noSyslog = path.join(dir, 'no-dev-log');
    const journal = await DgramSink.start(path.join(dir, 'journal-socket'));
    t.teardown(() => journal.close());
    const { pid, stderr } = await launch(t, ns, dir, `${noSyslog}:${journal.path}`, []);
    t.equal(
      stderr,
      `vbladed: logging to the journal through ${journal.path} (tag vbladed); there is no ${noSyslog}\n`,
      'the launcher says where',
    );
    const start = await until('the start-up record in the journal', () =>
      journal.messages.find((m) => m.includes(`vbladed exports starting (pid ${pid})`)),
    );
    t.match(
      start,
      new RegExp(`^PRIORITY=6\nSYSLOG_FACILITY=3\nSYSLOG_IDENTIFIER=vbladed\nSYSLOG_PID=${pid}\nMESSAGE=\\{"level":30,`),
    );
  });
}

if (requireRoot(t)) {
  t.test('log = stdout when detached: one line says where the records go instead, and they are there', async (t) => {
    const ns = await createNetns(t, 'vbladed-log-stdout');
    const dir = tempDir(t, 'vbladed-log-stdout');
    const { noSyslog, noJournal, sockets } = missingSockets(dir);
    const logFile = path.join(dir, 'fallback', 'vbladed.log');
    const { pid, stderr } = await launch(t, ns, dir, sockets, ['--log', 'stdout', '--log-file', logFile]);
    t.equal(
      stderr,
      `vbladed: logging to ${logFile} (there is no ${noSyslog} or ${noJournal}) instead of stdout, which a detached daemon does not have (--foreground keeps the log on stdout)\n`,
      'one line, and it does not contradict itself',
    );
    await until('the start-up record in the file', () =>
      fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').includes(`(pid ${pid})`) : false,
    );
  });

  t.test('--check says where the log goes: the route start would take, not only the key', async (t) => {
    const ns = await createNetns(t, 'vbladed-log-check');
    await ns.ip(['link', 'add', 'vt-a', 'type', 'veth', 'peer', 'name', 'vt-b']);
    const dir = tempDir(t, 'vbladed-log-check');
    const conf = path.join(dir, 'exports.conf');
    fs.writeFileSync(conf, CONFIG);
    const { noSyslog, noJournal, sockets } = missingSockets(dir);
    const env = { AOET_TEST_LOG_SOCKETS: sockets };
    const check = (extra: string[]) =>
      ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run'), ...extra], { env });
    const syslog = await check(['--log', 'syslog', '--name', 'lab']);
    t.equal(syslog.code, 0, syslog.stderr);
    t.match(
      syslog.stdout,
      `, log to /var/log/vblade/lab.log (there is no ${noSyslog} or ${noJournal})\n`,
      'syslog without a socket: the fallback file, and why',
    );
    const stdout = await check(['--log', 'stdout', '--log-file', path.join(dir, 'x.log')]);
    t.match(
      stdout.stdout,
      `, log to stdout with --foreground; detached, ${path.join(dir, 'x.log')} (there is no ${noSyslog} or ${noJournal})\n`,
    );
    const file = await check(['--log', 'file', '--log-file', path.join(dir, 'y.log')]);
    t.match(file.stdout, new RegExp(`, log to ${path.join(dir, 'y.log')}\\n$`));
  });
}

if (requireRoot(t)) {
  t.test('a Debian fragment started by hand: the ionice warning says what it would have done, once in the log', async (t) => {
    const ns = await createNetns(t, 'vbladed-log-debian');
    const dir = tempDir(t, 'vbladed-log-debian');
    const image = path.join(dir, 'disk1.img');
    fs.writeFileSync(image, Buffer.alloc(1024 * 1024));
    const fragment = path.join(dir, 'disk1.conf');
    fs.writeFileSync(fragment, `shelf=7\nslot=1\nnetif=vt-a\nfilename=${image}\nionice='-c3'\n`);
    const logFile = path.join(dir, 'vbladed.log');
    const { pid, stderr } = await launch(t, ns, dir, '', ['--log', 'file', '--log-file', logFile], ['--debian-config', fragment]);
    const warning = `${fragment}:5: ionice='-c3' is not applied: vbladed does not run ionice, as Debian's unit did (it would have set idle I/O); to get it, run vbladed under "ionice -c3" or start it with "systemctl start vblade@NAME", whose unit sets best-effort I/O priority 7`;
    t.equal(stderr, `vbladed: warning: ${warning}\nvbladed: logging to ${logFile}\n`, 'no unit is named: none is in use');
    const records = (): Array<{ msg: string }> =>
      fs
        .readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string });
    await until('the start-up record', () => records().some((x) => x.msg.includes(`(pid ${pid})`)));
    for (let n = 1; n <= 2; n++) {
      process.kill(pid, 'SIGHUP');
      await until(`reload ${n}`, () => records().filter((x) => x.msg.startsWith('reloaded')).length >= n);
    }
    t.equal(records().filter((x) => x.msg === warning).length, 1, 'logged at start, not again at each reload');
  });
}
