// The rbd bench for real, briefly (bench/rbd.ts, --quick): a one-node Ceph,
// rbd bench and our target serving the image to aoe-loadgen, one round of
// each workload, in namespaces this test makes. Every figure is a measured
// one (above zero), our target answered every request, and the table names
// every workload with its ratio; bad options are refused with what is wrong.

import t from 'tap';
import { existsSync } from 'node:fs';
import { parseRbdArgs, runRbdBench } from '../../bench/rbd';
import { LOADGEN } from '../../bench/generators';
import { RBD_WORKLOADS } from '../../bench/rbd-results';
import { skipOrFail } from '../../lab/common';
import { requireCeph } from '../helpers/ceph';

t.test('bench:rbd --quick measures both sides of every workload', async (t) => {
  if (!requireCeph(t)) return;
  if (!existsSync(LOADGEN)) return skipOrFail(t, `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``);
  const { rounds, table } = await runRbdBench(t, parseRbdArgs(['--quick']));
  t.same(
    rounds.map((r) => r.workload),
    RBD_WORKLOADS.map((w) => w.name),
    'one round of each workload',
  );
  for (const r of rounds) {
    for (const side of ['rbd', 'rbdCached', 'ours'] as const) {
      t.ok(r[side].iops > 0 && r[side].bytesPerSecond > 0, `${r.workload}, ${side}: ${r[side].iops.toFixed(0)} IOPS measured`);
    }
    t.equal(r.ours.errors, 0, `${r.workload}: our target answered every request without error`);
    t.ok(
      r.ours.librbdUs > 0 && r.ours.librbdUs < r.ours.meanUs * 4,
      `${r.workload}: librbd's own latency read (${r.ours.librbdUs.toFixed(0)} µs)`,
    );
  }
  for (const w of RBD_WORKLOADS)
    t.match(table, new RegExp(`\\| ${w.name} \\(${w.sectors} sectors[^\\n]* \\d+ %`), `the table gives ${w.name}'s ratio`);
});

t.test('bench:rbd refuses bad options, saying which', async (t) => {
  t.throws(() => parseRbdArgs(['--rounds', '0']), /--rounds wants a whole number of 1 or more, got 0/);
  t.throws(() => parseRbdArgs(['--rounds', '2.5']), /--rounds wants a whole number/);
  t.throws(() => parseRbdArgs(['--size-mib', '-3']), /--size-mib wants a whole number/);
  t.throws(() => parseRbdArgs(['--seconds', '0']), /--seconds wants a number above 0/);
  t.throws(
    () => parseRbdArgs(['--workloads', 'rand-read,fast']),
    /unknown workload "fast": use rand-read, rand-write, seq-read, seq-write/,
  );
  t.throws(() => parseRbdArgs(['--colour']), /Unknown argument: colour/);
  t.equal(parseRbdArgs(['--quick', '--rounds', '9']).rounds, 1, '--quick is one round');
});
