// What a person sees from the foreground `vblade`: readable log lines on a
// terminal (local time with its offset, level, message, key=value fields),
// JSON lines into a pipe, --log-format to choose; the option errors that
// name the long options; the warning for a file that is no whole number of
// sectors. Every run is inside a namespace of the test's own, on a veth
// pair made there.

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createNetns, requireRoot, type Netns } from '../../lab/netns';
import { OUR_VBLADE } from '../helpers/targets';
import { tempDir } from '../helpers/files';
import type { TestLike } from '../../lab/common';

/** Serves a few seconds (a worker starts within them on a loaded machine too), then SIGINT: the records of a start and a stop. */
const SERVE_FOR = 'timeout --foreground -s INT 4';

async function lab(t: TestLike): Promise<{ ns: Netns; dir: string }> {
  const ns = await createNetns(t, 'vblade-tty');
  await ns.ip(['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
  await ns.ip(['link', 'set', 'v0', 'up']);
  await ns.ip(['link', 'set', 'v1', 'up']);
  const dir = tempDir(t, 'vblade-tty');
  fs.writeFileSync(path.join(dir, 'odd.img'), Buffer.alloc(1000));
  fs.writeFileSync(path.join(dir, 'whole.img'), Buffer.alloc(1024 * 1024));
  return { ns, dir };
}

/** Runs vblade ARGS with a pseudo-terminal as its stdin, stdout and stderr (script(1)); returns what the terminal showed. */
async function onTerminal(ns: Netns, args: string[], tz = 'Asia/Kolkata'): Promise<string> {
  const command = `${SERVE_FOR} ${process.execPath} ${OUR_VBLADE} ${args.join(' ')}`;
  const r = await ns.run('script', ['-qec', command, '/dev/null'], { env: { TZ: tz } });
  return r.stdout.replace(/\r\n/g, '\n');
}

/** Runs vblade ARGS with stderr a pipe. */
async function onPipe(ns: Netns, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return ns.run('timeout', ['--foreground', '-s', 'INT', '1.5', process.execPath, OUR_VBLADE, ...args]);
}

if (requireRoot(t)) {
  t.test('on a terminal: readable lines in local time; into a pipe: JSON', async (t) => {
    const { ns, dir } = await lab(t);
    const odd = path.join(dir, 'odd.img');
    const before = Date.now();
    const screen = await onTerminal(ns, ['1', '1', 'v0', odd]);
    const lines = screen.split('\n').filter((l) => l !== '');
    t.notOk(
      lines.some((l) => l.startsWith('{')),
      'no JSON on the terminal',
    );
    const added = lines.find((l) => l.includes('export added'));
    t.match(
      added,
      /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:30) INFO {2}\[\d+\] vblade: export added export=e1\.1 file=\S+odd\.img sectors=1 /,
    );
    const when = Date.parse(/^\S+/.exec(added ?? '')![0]);
    t.ok(when >= before - 1000 && when <= Date.now() + 1000, 'the local time with its offset is the time now');
    t.match(
      screen,
      new RegExp(
        `WARN  \\[\\d+\\] vblade: e1\\.1: ${odd} is 1000 bytes, not a multiple of 512: its last 488 bytes are not served \\(initiators see 1 sector\\); to serve them, grow the file to whole sectors, e\\.g\\. truncate -s 1024 ${odd} export=e1\\.1 unservedBytes=488`,
      ),
      'the bytes not served are named at start',
    );
    t.match(screen, /pid \d+: e1\.1, 1 sectors O_RDWR/, 'the start-up line as vblade 25');
    t.match(screen, /INFO {2}\[\d+\] vblade: stopping: answering requests in flight signal=SIGINT/);

    const piped = await onPipe(ns, ['1', '1', 'v0', odd]);
    const records = piped.stderr
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string; name: string; time: number });
    t.ok(records.length >= 3, 'every line on the pipe is a JSON record');
    t.ok(records.some((r) => r.msg === 'export added' && r.name === 'vblade'));
    t.ok(records.some((r) => r.level === 40 && /its last 488 bytes are not served/.test(r.msg)));
  });

  t.test('--log-format chooses either way; a bad value says which ones there are', async (t) => {
    const { ns, dir } = await lab(t);
    const whole = path.join(dir, 'whole.img');
    const json = await onTerminal(ns, ['--log-format', 'json', '1', '2', 'v0', whole]);
    t.match(json, /^\{"level":30,.*"msg":"export added"\}$/m, 'JSON on a terminal when asked');
    t.notMatch(json, /not a multiple of 512/, 'no warning for a file of whole sectors');
    const text = await onPipe(ns, ['--log-format=text', '1', '2', 'v0', whole]);
    t.match(text.stderr, /^\S+ INFO {2}\[\d+\] vblade: export added export=e1\.2 /m, 'text into a pipe when asked');
    t.notMatch(text.stderr, /^\{/m);
    const bad = await ns.run(process.execPath, [OUR_VBLADE, '--log-format', 'xml', '1', '2', 'v0', whole]);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /^vblade: --log-format = "xml" is not one of json, text; pick one of them\nusage: vblade /);
  });

  t.test('vblade --config on a terminal: readable lines too, unless the config asks for JSON', async (t) => {
    const { ns, dir } = await lab(t);
    const whole = path.join(dir, 'whole.img');
    const conf = path.join(dir, 'lab.conf');
    const exportSection = `[export e1.3]\nfile = ${whole}\ninterfaces = v0\n`;
    const daemon = `[daemon]\nstate-dir = ${path.join(dir, 'state')}\nrun-dir = ${path.join(dir, 'run')}\n`;
    fs.writeFileSync(conf, daemon + exportSection);
    const screen = await onTerminal(ns, ['--config', conf]);
    t.notMatch(screen, /^\{"level"/m, 'no JSON on the terminal');
    t.match(screen, /^\S+ INFO {2}\[\d+\] export added .*export=e1\.3/m, 'a readable line names the export');
    fs.writeFileSync(conf, daemon + 'log-format = json\n' + exportSection);
    const asked = await onTerminal(ns, ['--config', conf]);
    t.match(asked, /^\{"level":30,/m, "the config's log-format = json wins over the terminal");
    const piped = await onPipe(ns, ['--config', conf]);
    t.match(piped.stderr, /^\{"level"/m, 'into a pipe: JSON');
  });

  t.test('option mistakes name the long options and the range of shelf and slot', async (t) => {
    const { ns, dir } = await lab(t);
    const whole = path.join(dir, 'whole.img');
    const typo = await ns.run(process.execPath, [OUR_VBLADE, '--log-fromat', 'text', '1', '1', 'v0', whole]);
    t.equal(typo.code, 1);
    t.match(
      typo.stderr,
      /^vblade: unknown option --log-fromat \(did you mean "--log-format"\?\); vblade's options are -b -d -s -r -m -o -l and --config .*--state-dir --user --log-level --log-format .*--help --version \(see vblade --help\)\n/,
    );
    const escape = await ns.run(process.execPath, [OUR_VBLADE, '--\u001b[2J', '1', '1', 'v0', whole]);
    t.match(
      escape.stderr,
      /^vblade: unknown option --\\u001b\[2J; /,
      'a control character of the command line is not echoed raw',
    );
    t.notOk(escape.stderr.includes('\u001b'));
    const negative = await ns.run(process.execPath, [OUR_VBLADE, '-1', '1', 'v0', whole]);
    t.equal(negative.code, 1);
    t.match(negative.stderr, /^vblade: shelf -1 is out of range; use 0\.\.65534\nusage: vblade /);
    const help = await ns.run(process.execPath, [OUR_VBLADE, '--help']);
    t.match(help.stdout, /--log-format F/, '--help lists --log-format');
  });
}
