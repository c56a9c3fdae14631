// aoe-storm (bench/c/aoe-storm.c) refuses what it cannot replay, saying what
// is wrong: malformed schedule files, bad options, and no target on the link.
// Run in namespaces this test makes (a veth pair with nothing answering on
// the other end), never in the host's: even a refusal is an AoE tool run.

import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORM } from '../../bench/storm/run';
import { skipOrFail } from '../../lab/common';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { run } from '../../lab/process';
import { tempDir } from '../helpers/files';

t.test('aoe-storm: hostile schedules and options, and a link where no target answers', async (t) => {
  if (!requireRoot(t)) return;
  if (!existsSync(STORM)) return skipOrFail(t, `${STORM} is missing: build it with \`npx node-gyp rebuild\``);
  const pair = await createNetnsPair(t, { mtu: 1500 });
  const dir = tempDir(t, 'storm-input');
  const storm = (args: string[]) => run(STORM, args, { netns: pair.init.name, timeoutMs: 15000 });
  const base = (schedule: string) => [
    '--if',
    pair.initIf,
    '--shelf',
    '1',
    '--slot',
    '1',
    '--clients',
    '2',
    '--schedule',
    schedule,
  ];
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  const schedules: Array<[string, string, RegExp]> = [
    ['empty', '', /does not start with "aoe-storm-schedule 1 STEPS"/],
    ['version', 'aoe-storm-schedule 2 1\nr s 1 0 0 2\n', /does not start with/],
    ['zero steps', 'aoe-storm-schedule 1 0\n', /does not start with/],
    ['short', 'aoe-storm-schedule 1 2\nr s 1 0 0 2\n', /step 2 \(line 3\) is not "OP AFTER WINDOW WAIT_US LBA SECTORS"/],
    ['op', 'aoe-storm-schedule 1 1\nw s 1 0 0 2\n', /step 1 \(line 2\)/],
    ['after', 'aoe-storm-schedule 1 1\nr x 1 0 0 2\n', /step 1/],
    ['window 0', 'aoe-storm-schedule 1 1\nr s 0 0 0 2\n', /WINDOW 1\.\.64/],
    ['window 65', 'aoe-storm-schedule 1 1\nr s 65 0 0 2\n', /WINDOW 1\.\.64/],
    ['read of 0', 'aoe-storm-schedule 1 1\nr s 1 0 0 0\n', /SECTORS 1\.\.255 for a read/],
    ['256 sectors', 'aoe-storm-schedule 1 1\nr s 1 0 0 256\n', /step 1/],
    ['lba past 48 bits', 'aoe-storm-schedule 1 1\nr s 1 0 281474976710656 2\n', /step 1/],
    ['negative wait', 'aoe-storm-schedule 1 1\nr s 1 -5 0 2\n', /step 1/],
    ['text', 'aoe-storm-schedule 1 1\nr s 1 soon 0 2\n', /step 1/],
  ];
  for (const [name, text, re] of schedules) {
    const r = await storm(base(file(`${name.replace(/ /g, '-')}.txt`, text)));
    t.equal(r.code, 1, `${name}: exit 1`);
    t.match(r.stderr, re, `${name}: says what is wrong`);
  }
  const missing = await storm(base(join(dir, 'nowhere.txt')));
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot open the schedule .*nowhere\.txt: No such file/);

  const good = file('good.txt', 'aoe-storm-schedule 1 2\nq i 1 0 0 0\nr s 1 0 0 2\n');
  const options: Array<[string[], RegExp]> = [
    [[], /--if, --shelf, --slot, --clients and --schedule are required/],
    [[...base(good), '--clients', '0'], /--clients wants a whole number from 1 to 4096, got "0"/],
    [[...base(good), '--clients', '5000'], /--clients wants a whole number from 1 to 4096/],
    [[...base(good), '--shelf', '65535'], /--shelf wants a whole number from 0 to 65534/],
    [[...base(good), '--timeout-ms', 'x'], /--timeout-ms wants a whole number/],
    [[...base(good), '--mac-prefix', '03:00:00'], /--mac-prefix wants three hex bytes of a unicast MAC/],
    [[...base(good), '--mac-prefix', '02:00'], /--mac-prefix wants three hex bytes/],
    [[...base(good), '--bogus'], /unknown option or missing value: --bogus/],
    [[...base(good), 'extra'], /unexpected argument/],
  ];
  for (const [args, re] of options) {
    const r = await storm(args);
    t.equal(r.code, 2, `${args.slice(-2).join(' ')}: usage error, exit 2`);
    t.match(r.stderr, re, `${args.slice(-2).join(' ')}: says what is wrong`);
    t.match(r.stderr, /usage: aoe-storm --if IFNAME/, 'and how to call it');
  }
  const noIf = await storm(['--if', 'nosuch0', '--shelf', '1', '--slot', '1', '--clients', '1', '--schedule', good]);
  t.equal(noIf.code, 1);
  t.match(noIf.stderr, /no interface nosuch0 here/);

  const t0 = Date.now();
  const alone = await storm(base(good));
  t.equal(alone.code, 1, 'no target on the link: exit 1');
  t.match(alone.stderr, /no AoE target e1\.1 answered a config query within 3 s/);
  t.ok(Date.now() - t0 < 10000, 'after about 3 s, not forever');
  t.equal(alone.stdout, '', 'and no result line');
});
