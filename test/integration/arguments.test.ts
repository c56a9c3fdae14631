// Bad command lines: our vblade exits with status 1 and a message that says
// what is wrong and what to do, prints no start-up line and leaves nothing
// running; `--help` exits 0 and documents every option.
//
// Every run happens inside a namespace of the test's own with one veth pair
// (both ends there), so that a command line that unexpectedly succeeded would
// only ever serve on that pair.

import t from 'tap';
import { join } from 'node:path';
import { patternFile, tempDir } from '../helpers/files';
import { createNetns, createVeth, requireRoot } from '../../lab/netns';
import { RunResult, run } from '../../lab/process';
import { OUR_VBLADE } from '../helpers/targets';

if (requireRoot(t)) {
  t.test('bad arguments', async (t) => {
    const ns = await createNetns(t, 'args');
    const veth = await createVeth(t, ns, ns);
    const ifname = veth.a.ifname;
    const dir = tempDir(t, 'args');
    const file = await patternFile(t, 100, { dir });
    const missing = join(dir, 'no-such.img');
    const vblade = (args: string[]) => run(process.execPath, [OUR_VBLADE, ...args], { netns: ns.name, timeoutMs: 30000 });

    const cases: Array<[string, string[], RegExp]> = [
      [
        'shelf 65535 (broadcast)',
        ['65535', '1', ifname, file],
        /shelf 65535 is out of range; use 0\.\.65534 \(65535 is the broadcast shelf/,
      ],
      ['shelf 70000', ['70000', '1', ifname, file], /shelf 70000 is out of range; use 0\.\.65534/],
      ['slot 255 (broadcast)', ['1', '255', ifname, file], /slot 255 is out of range; use 0\.\.254 \(255 is the broadcast slot/],
      ['interface missing', ['1', '1', 'aoetnosuch0', file], /interface aoetnosuch0 not found; list interfaces with `ip link`/],
      [
        'file missing',
        ['1', '1', ifname, missing],
        new RegExp(`cannot open ${missing}: no such file; check the path or create it`),
      ],
      [
        'offset at the end of the file',
        ['-o', '100', '1', '1', ifname, file],
        /offset 100 sectors is at or beyond the end of .* \(100 sectors\); choose a smaller -o/,
      ],
      [
        'length beyond the file',
        ['-l', '101', '1', '1', ifname, file],
        /length 101 sectors exceeds .*: only 100 sectors remain after offset 0; choose a smaller -l/,
      ],
      [
        'offset plus length beyond the file',
        ['-o', '60', '-l', '41', '1', '1', ifname, file],
        /length 41 sectors exceeds .*: only 40 sectors remain after offset 60; choose a smaller -l/,
      ],
      [
        'bad MAC',
        ['-m', 'zz:zz:zz:zz:zz:zz', '1', '1', ifname, file],
        /-m: "zz:zz:zz:zz:zz:zz" is not a MAC address; write six hex pairs as aa:bb:cc:dd:ee:ff or aabbccddeeff/,
      ],
      [
        'multicast MAC',
        ['-m', '01:00:5e:00:00:01', '1', '1', ifname, file],
        /-m: 01:00:5e:00:00:01 is a group \(multicast or broadcast\) address and never sends requests; give the initiator's own MAC/,
      ],
      ['three arguments', ['1', '1', ifname], /expected 4 arguments \(shelf slot netif file\) after the options, got 3/],
      [
        'bad --null size',
        ['--null', '1', '1', ifname, 'lots'],
        /"lots" is not a size; write e\.g\. 1G, 512M or a number of sectors/,
      ],
    ];
    // A few at a time: each run starts Node, and the machine may be busy.
    const results: RunResult[] = [];
    for (let i = 0; i < cases.length; i += 4) {
      results.push(...(await Promise.all(cases.slice(i, i + 4).map(([, args]) => vblade(args)))));
    }
    cases.forEach(([what, args, re], i) => {
      const r = results[i];
      t.test(what, async (t) => {
        t.equal(r.code, 1, `exit status 1 (vblade ${args.join(' ')})`);
        t.match(r.stderr, re, 'the message says what is wrong and what to do');
        t.match(r.stderr, /^vblade: /m, 'the message names the program');
        t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
        t.equal(r.stdout, '', 'no start-up line');
      });
    });

    await t.test('--help', async (t) => {
      for (const flag of ['--help']) {
        const r = await vblade([flag]);
        t.equal(r.code, 0, `${flag} exits 0`);
        t.equal(r.stderr, '', `${flag} writes nothing to stderr`);
        t.match(
          r.stdout,
          /^usage: vblade \[-b bufcnt\] \[-d\] \[-s\] \[-r\] \[-m mac\[,mac\.\.\.\]\] \[-o offset\] \[-l length\] shelf slot netif file$/m,
          'usage line',
        );
        for (const opt of [
          '-b bufcnt',
          '-d',
          '-s',
          '-r',
          '-m mac',
          '-o offset',
          '-l length',
          '--null',
          '--help',
          'shelf',
          'slot',
          'netif',
          'file',
        ]) {
          t.match(r.stdout, new RegExp(`^\\s+(?:-\\w, )?${opt.replace(/[-[\]]/g, '\\$&')}\\b`, 'm'), `documents ${opt}`);
        }
      }
    });

    await t.test('nothing is left running in the namespace', async (t) => {
      const r = await run('ip', ['netns', 'pids', ns.name]);
      t.equal(r.stdout.trim(), '', 'no process');
    });
  });
}
