// Log sinks: the readable form, syslog framing to a fake /dev/log, and a
// log file reopened after rotation.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import {
  createLogger,
  createSink,
  formatText,
  lineSplitter,
  syslogFrame,
  syslogRoute,
  workerLogLine,
  wrapForeignLine,
} from '../../src/service/log';
import { DgramSink, dgramSinkUnavailable } from '../helpers/dgram-sink';
import { StoreError } from '../../src/backend/file-store';
import { parseConfigFile } from '../../src/config/config-file';
import { loadExports } from '../../src/config/load';
import { UsageError } from '../../src/config/vblade-args';
import { AlreadyRunningError } from '../../src/service/pidfile';
import { ConfigError as ServerConfigError } from '../../src/target/server';

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vblade-log-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('formatText', async (t) => {
  const time = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
  t.equal(
    formatText(
      JSON.stringify({
        level: 30,
        time,
        pid: 12,
        hostname: 'h',
        msg: 'export added',
        export: 'e1.1',
        file: '/srv/a b.img',
        n: 3,
      }),
    ),
    '2025-01-02T03:04:05.678Z INFO  [12] export added export=e1.1 file="/srv/a b.img" n=3',
  );
  t.equal(
    formatText(JSON.stringify({ level: 50, time, pid: 1, msg: 'boom', err: { message: 'bad', stack: 'Error: bad\n    at x' } })),
    '2025-01-02T03:04:05.678Z ERROR [1] boom err=bad\n    Error: bad\n        at x',
  );
  t.equal(formatText('not json'), 'not json');
});

t.test('syslogFrame', async (t) => {
  const now = new Date(2025, 0, 2, 3, 4, 5);
  t.equal(syslogFrame('hello', 30, 42, { tag: 'vbladed', format: 'rfc3164', now }), '<30>Jan  2 03:04:05 vbladed[42]: hello');
  t.equal(syslogFrame('bad', 50, 42, { tag: 'vbladed', format: 'rfc3164', now }), '<27>Jan  2 03:04:05 vbladed[42]: bad');
  t.equal(
    syslogFrame('x', 40, 7, { tag: 'vbladed', format: 'rfc5424', now, hostname: 'host' }),
    `<28>1 ${now.toISOString()} host vbladed 7 - - x`,
  );
  t.equal(syslogFrame('x', 20, 7, { tag: 'vbladed', format: 'rfc3164', now }).slice(0, 4), '<31>');
  t.equal(syslogFrame('x', 60, 7, { tag: 'vbladed', format: 'rfc3164', now }).slice(0, 4), '<26>');
});

t.test('lineSplitter and foreign lines', async (t) => {
  const lines: string[] = [];
  const feed = lineSplitter((l) => lines.push(l));
  feed('a\nb');
  feed('c\n\nd\n');
  t.same(lines, ['a', 'bc', 'd']);
  const w = JSON.parse(wrapForeignLine('TypeError: x', 50, 9, { stream: 'stderr' })) as Record<string, unknown>;
  t.match(w, { level: 50, pid: 9, stream: 'stderr', msg: 'TypeError: x' });
  t.equal(wrapForeignLine('{"level":30,"msg":"a"}', 50, 9), '{"level":30,"msg":"a"}');
});

t.test('syslog sink sends one datagram per record to /dev/log', { skip: dgramSinkUnavailable() }, async (t) => {
  const dir = tmpdir(t);
  const sink = await DgramSink.start(path.join(dir, 'log'));
  t.teardown(() => sink.close());
  const { logger } = createLogger({ destination: 'syslog', syslogPath: sink.path, format: 'json', level: 'info' });
  logger.info({ export: 'e1.1' }, 'export added');
  logger.error('link down');
  logger.debug('not logged');
  const got = await sink.waitFor(2);
  t.match(
    got[0],
    new RegExp(
      `^<30>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} vbladed\\[${process.pid}\\]: \\{"level":30,.*"export":"e1.1","msg":"export added"\\}$`,
    ),
  );
  t.match(got[1], /^<27>.* vbladed\[[0-9]+\]: \{"level":50,.*"msg":"link down"\}$/);

  const text = createSink({
    destination: 'syslog',
    syslogPath: sink.path,
    format: 'text',
    level: 'info',
    syslogFormat: 'rfc5424',
  });
  text.writeLine(JSON.stringify({ level: 40, time: 0, pid: 77, msg: 'careful' }));
  const got2 = await sink.waitFor(3);
  t.match(got2[2], /^<28>1 \S+ \S+ vbladed 77 - - 1970-01-01T00:00:00.000Z WARN {2}\[77\] careful$/);
});

t.test('file sink appends and reopens after rotation', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'sub', 'vblade.log');
  const { logger, sink } = createLogger({ destination: 'file', file, format: 'text', level: 'info' });
  logger.info('first');
  fs.renameSync(file, file + '.1');
  logger.info('second'); // still goes to the renamed file
  sink.reopen();
  logger.info('third');
  sink.flushSync();
  t.match(fs.readFileSync(file + '.1', 'utf8'), /INFO {2}\[[0-9]+\] first\n.*second\n$/);
  t.match(fs.readFileSync(file, 'utf8'), /^\S+ INFO {2}\[[0-9]+\] third\n$/);
});

t.test('a log file is made 0640 in a directory made 0750, and again 0640 when made after rotation', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'logs', 'vblade.log');
  const umask = process.umask(0o022);
  t.teardown(() => process.umask(umask));
  const { logger, sink } = createLogger({ destination: 'file', file, format: 'json', level: 'info' });
  logger.info('first');
  t.equal(fs.statSync(path.dirname(file)).mode & 0o7777, 0o750, 'the missing log directory is made 0750');
  t.equal(fs.statSync(file).mode & 0o7777, 0o640, 'the file 0640');
  fs.renameSync(file, `${file}.1`);
  sink.reopen();
  logger.info('second');
  sink.flushSync();
  t.equal(fs.statSync(file).mode & 0o7777, 0o640, 'the file made after rotation 0640 too');
  t.match(fs.readFileSync(file, 'utf8'), /"msg":"second"/);
});

t.test('a log directory whose parent is missing is not made, nor its parent', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'var', 'log', 'vblade.log');
  t.throws(() => createLogger({ destination: 'file', file, format: 'json', level: 'info' }), {
    message: `${path.join(dir, 'var')} does not exist; create ${path.join(dir, 'var', 'log')} (mode 0750) or choose another log-file`,
  });
  t.notOk(fs.existsSync(path.join(dir, 'var')), 'nothing made');
});

t.test('a FIFO or a link where the log file goes is refused without blocking or following it', async (t) => {
  const dir = tmpdir(t);
  const fifo = path.join(dir, 'fifo.log');
  spawnSync('mkfifo', [fifo]);
  t.throws(() => createLogger({ destination: 'file', file: fifo, format: 'json', level: 'info' }), {
    message: `log file ${fifo} is a FIFO, not a regular file; it is not used: remove it`,
  });
  const victim = path.join(dir, 'victim');
  fs.writeFileSync(victim, 'mine\n');
  const link = path.join(dir, 'link.log');
  fs.symlinkSync(victim, link);
  // The syslog fallback too: with neither socket there, records would go to the file; they go to stderr instead.
  const sink = createSink({
    destination: 'syslog',
    format: 'json',
    level: 'info',
    syslogPath: path.join(dir, 'no-log'),
    journalPath: path.join(dir, 'no-journal'),
    fallbackFile: link,
  });
  sink.writeLine(JSON.stringify({ level: 30, time: 0, pid: 1, msg: 'record' }));
  sink.reopen();
  sink.writeLine(JSON.stringify({ level: 30, time: 0, pid: 1, msg: 'record after SIGHUP' }));
  t.equal(fs.readFileSync(victim, 'utf8'), 'mine\n', 'the linked file is unchanged');
});

t.test('user errors are logged with their message only; programming errors keep the stack', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'json.log');
  const { logger, sink } = createLogger({ destination: 'file', file, format: 'json', level: 'info' });
  let parseError: unknown;
  try {
    parseConfigFile('[export e1.1]\nfile = /a\ninterfaces = eth1\nbogus = 1\n', '/etc/vblade.conf');
  } catch (e) {
    parseError = e;
  }
  const userErrors: unknown[] = [
    parseError,
    new UsageError('-b: buffer count 0 is out of range; use 1..65535'),
    new StoreError('cannot open /srv/a.img: no such file; create it or fix the path'),
    new ServerConfigError('interface eth9 not found; list interfaces with `ip link`'),
    new AlreadyRunningError('instance x is already running as pid 1', 1, '/run/vblade/x.pid'),
  ];
  try {
    loadExports({ mode: 'config', vbladeArgv: [], configFile: path.join(dir, 'missing.conf') });
  } catch (e) {
    userErrors.push(e); // "cannot read FILE: ENOENT ...", a plain Error caused by the failed open
  }
  for (const err of userErrors) logger.error({ err }, 'failed');
  logger.error({ err: new TypeError('x is not a function') }, 'bug');
  sink.flushSync();
  const recs = fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { err: { type: string; message: string; stack?: string } });
  t.equal(recs.length, 7);
  for (const r of recs.slice(0, 6)) {
    t.notOk('stack' in r.err, `${r.err.type}: no stack`);
    t.ok(r.err.message.length > 0, `${r.err.type}: the message is there`);
  }
  t.match(recs[0].err.message, /unknown key "bogus"/);
  t.match(
    recs[5].err.message,
    /^cannot read .*missing\.conf: ENOENT[^\n]*create it \(see vblade\.conf\(5\)[^:]*$/,
    'its own message, once',
  );
  t.match(recs[6].err, { type: 'TypeError', message: 'x is not a function', stack: /^TypeError: x is not a function\n\s+at / });

  const text = path.join(dir, 'text.log');
  const tl = createLogger({ destination: 'file', file: text, format: 'text', level: 'info' });
  tl.logger.error({ err: userErrors[1] }, 'failed');
  tl.sink.flushSync();
  t.match(fs.readFileSync(text, 'utf8'), /^\S+ ERROR \[\d+\] failed err="-b: buffer count 0 is out of range; use 1..65535"\n$/);
});

t.test('the text format escapes control characters', async (t) => {
  const time = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
  const out = formatText(
    JSON.stringify({
      level: 50,
      time,
      pid: 1,
      msg: 'bad line "a\u0000b" in\nfile',
      key: 'x\u0000y',
      err: { message: 'm\u0001', stack: 'Error: m\u0001\n    at x' },
    }),
  );
  const controls = [...out].filter((c) => c !== '\n' && (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f));
  t.same(controls, [], 'no control character but the line breaks before the stack');
  t.equal(
    out,
    '2025-01-02T03:04:05.678Z ERROR [1] bad line "a\\u0000b" in\\nfile key="x\\u0000y" err="m\\u0001"\n    Error: m\\u0001\n        at x',
  );
  t.equal(formatText('raw \u0000 text\u001b[31m'), 'raw \\u0000 text\\u001b[31m', 'a line that is not a record too');
});

t.test('C1 controls, DEL and other non-printables are escaped too (a config string set over the wire)', async (t) => {
  const wire = 'A\x1b[31mB\x9b31mC\x9d0;pwned\x07D\x7f\u202e\u2028';
  const out = formatText(JSON.stringify({ level: 30, time: 0, pid: 1, msg: 'config set', config: wire }));
  // eslint-disable-next-line no-control-regex
  t.notMatch(out, /[\u0000-\u001f\u007f-\u009f\u202e\u2028]/, 'nothing raw');
  t.equal(
    out,
    '1970-01-01T00:00:00.000Z INFO  [1] config set config="A\\u001b[31mB\\u009b31mC\\u009d0;pwned\\u0007D\\u007f\\u202e\\u2028"',
  );
});

t.test('the JSON format escapes C1 controls too, and stays JSON', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'vblade.log');
  const { logger, sink } = createLogger({ destination: 'file', file, format: 'json', level: 'info' });
  logger.info({ config: 'A\x9b31mB\x7f' }, 'config \x9d0;x\x07');
  sink.flushSync();
  const line = fs.readFileSync(file, 'utf8');
  t.notMatch(line, /[\u007f-\u009f]/, 'no raw DEL or C1');
  t.match(line, '"config":"A\\u009b31mB\\u007f"');
  t.match(JSON.parse(line), { config: 'A\x9b31mB\x7f', msg: 'config \x9d0;x\x07' }, 'reads back as written');
});

t.test("a worker's log lines are re-written as the worker's, never passed through", async (t) => {
  const forged = workerLogLine(
    '{"level":50,"time":5,"pid":1,"role":"supervisor","name":"x","msg":"stopping","key":"e1.1"}',
    30,
    77,
  );
  t.match(JSON.parse(forged), { level: 50, time: 5, pid: 77, role: 'worker', msg: 'stopping', key: 'e1.1' });
  t.equal((JSON.parse(forged) as { name?: string }).name, undefined, 'fields that are ours are not taken from it');
  const text = workerLogLine('{"level":"x"} \x9b31m', 50, 77, { stream: 'stderr' });
  t.notMatch(text, /[\u007f-\u009f]/, 'the JSON line carries no raw C1');
  t.match(JSON.parse(text), {
    level: 50,
    pid: 77,
    role: 'worker',
    stream: 'stderr',
    msg: 'worker output',
    text: '{"level":"x"} \x9b31m',
  });
  t.match(formatText(text), / ERROR \[77\] worker output stream=stderr role=worker text="\{\\"level\\":\\"x\\"\} \\u009b31m"$/);
});

t.test('syslog without /dev/log or the journal socket: the fallback file; a failing socket hands over', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'var-log', 'x.log');
  const none = { syslogPath: path.join(dir, 'no-dev-log'), journalPath: path.join(dir, 'no-journal') };
  t.same(syslogRoute({ ...none, fallbackFile: file }), { kind: 'file', path: file });
  const { logger, sink } = createLogger({ destination: 'syslog', ...none, fallbackFile: file, format: 'text', level: 'info' });
  logger.info('kept');
  sink.flushSync();
  t.match(fs.readFileSync(file, 'utf8'), /^\S+ INFO {2}\[\d+\] kept\n$/);
});

t.test('a syslog socket that stops taking records hands over to the fallback file until SIGHUP', async (t) => {
  const dir = tmpdir(t);
  const devLog = await DgramSink.start(path.join(dir, 'dev-log'));
  t.teardown(() => devLog.close());
  const file = path.join(dir, 'fallback.log');
  let failing = false;
  const sent: string[] = [];
  const send = (_p: string, m: string): void => {
    if (failing) throw new Error('connect ECONNREFUSED');
    sent.push(m);
  };
  const opts = { syslogPath: devLog.path, journalPath: path.join(dir, 'no-journal'), fallbackFile: file };
  t.same(syslogRoute(opts), { kind: 'syslog', path: devLog.path });
  const { logger, sink } = createLogger({ destination: 'syslog', ...opts, format: 'text', level: 'info', send });
  logger.info('one');
  failing = true;
  logger.info('two');
  logger.info('three');
  sink.flushSync();
  t.equal(sent.length, 1, 'the first record went to /dev/log');
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, 3, 'a notice, then the records');
  t.match(
    lines[0],
    `WARN  [${process.pid}] cannot log to ${devLog.path} (connect ECONNREFUSED); logging to ${file} until SIGHUP`,
  );
  t.match(lines[1], / INFO {2}\[\d+\] two$/);
  t.match(lines[2], / INFO {2}\[\d+\] three$/);
  failing = false;
  sink.reopen();
  logger.info('four');
  t.equal(sent.length, 2, 'after SIGHUP (reopen) /dev/log is used again');
  t.match(sent[1], /four$/);
});
