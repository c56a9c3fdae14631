// What `vblade ctl` tells a person who gets its command line wrong: which
// argument is missing with an example, which command is unknown with the
// list of commands and the nearest one, which option is unknown; never
// yargs's own text. `vblade ctl` alone lists the commands and exits 0.
// Each run is inside a namespace of the test's own; nothing listens there,
// and a usage error is told before any socket is looked for.

import t from 'tap';
import { createNetns, requireRoot } from '../../lab/netns';
import { OUR_VBLADE } from '../helpers/targets';
import { COMMANDS } from '../../src/service/control';

/** yargs's own messages, which must not reach a user. */
const YARGS_TEXT =
  /Not enough non-option arguments|Unknown argument|Missing required argument|Positionals:|Not enough arguments following/;

if (requireRoot(t)) {
  t.test('usage mistakes: what is wrong, an example, exit 2', async (t) => {
    const ns = await createNetns(t, 'ctl-usage');
    const ctl = async (...args: string[]) => {
      const r = await ns.run(process.execPath, [OUR_VBLADE, 'ctl', '--run-dir', '/nonexistent-run-dir', ...args]);
      return { code: r.code, out: r.stdout, err: r.stderr };
    };
    const names = COMMANDS.map((c) => c.name).join(', ');
    const cases: Array<[string[], string]> = [
      [['views'], 'views needs an export address such as e1.1 (usage: vblade ctl views EXPORT; e.g. vblade ctl views e1.1)'],
      [
        ['set-mask', 'e1.1'],
        'set-mask needs one or more MAC addresses after the export (usage: vblade ctl set-mask EXPORT MAC...; e.g. vblade ctl set-mask e1.1 52:54:00:12:34:56)',
      ],
      [
        ['snapshot-delete', 'e1.1'],
        'snapshot-delete needs a name after the export (usage: vblade ctl snapshot-delete EXPORT NAME; e.g. vblade ctl snapshot-delete e1.1 monday)',
      ],
      [['bogus'], `unknown command bogus; commands are ${names} (see vblade ctl --help)`],
      [['lsit'], `unknown command lsit (did you mean "list"?); commands are ${names} (see vblade ctl --help)`],
      [['list', 'extra'], 'list takes no more arguments; remove "extra" (usage: vblade ctl list; e.g. vblade ctl list)'],
      [['views', 'e1.1', '--force'], 'views has no option --force; it takes none (usage: vblade ctl views EXPORT)'],
      [
        ['list', '--jsn'],
        'unknown option --jsn (did you mean "--json"?); vblade ctl takes --socket FILE, --name NAME, --run-dir DIR and --json, stats --by-initiator, add --read-only and --mac-mask LIST, and some commands --all, --force or --view MAC (see vblade ctl COMMAND --help)',
      ],
      [['list', '--socket'], "--socket needs a value: the control socket's path, e.g. --socket /run/vblade/NAME.sock"],
      [['snapshot', 'e1.1', '--view'], "--view needs a value: an initiator's MAC, e.g. --view 52:54:00:12:34:56"],
      [['list', '--json=yes'], '--json takes no value; write --json alone'],
      [['\u001b[2Jlist'], `unknown command \\u001b[2Jlist; commands are ${names} (see vblade ctl --help)`],
    ];
    for (const [args, message] of cases) {
      const r = await ctl(...args);
      t.same(r, { code: 2, out: '', err: `vblade ctl: ${message}\n` }, `vblade ctl ${args.join(' ')}`);
      t.notMatch(r.err, YARGS_TEXT);
    }
  });

  t.test('vblade ctl alone and --help list the commands, exit 0; COMMAND --help shows one', async (t) => {
    const ns = await createNetns(t, 'ctl-help');
    const ctl = (...args: string[]) => ns.run(process.execPath, [OUR_VBLADE, 'ctl', ...args]);
    for (const args of [[], ['--help'], ['-h'], ['--json']]) {
      const r = await ctl(...args);
      t.equal(r.code, 0, `vblade ctl ${args.join(' ')}`);
      t.equal(r.stderr, '');
      t.match(
        r.stdout,
        /^usage: vblade ctl \[--socket FILE \| --name NAME\] \[--run-dir DIR\] \[--json\] \[--by-initiator\] COMMAND/,
      );
      for (const c of COMMANDS) t.match(r.stdout, new RegExp(`^  ${c.name}\\b`, 'm'), `lists ${c.name}`);
    }
    const one = await ctl('revert', '--help');
    t.equal(one.code, 0);
    t.equal(
      one.stdout,
      [
        'usage: vblade ctl [--socket FILE | --name NAME] [--run-dir DIR] [--json] revert EXPORT NAME [--force]',
        '',
        COMMANDS.find((c) => c.name === 'revert')!.summary,
        '  NAME: snapshot name',
        `  --force: ${COMMANDS.find((c) => c.name === 'revert')!.options![0].describe}`,
        '',
        'example: vblade ctl revert e1.1 monday',
        '',
      ].join('\n'),
    );
    t.notMatch(one.stdout, YARGS_TEXT);
  });
}
