// The nbd bench for real, briefly (bench/nbd.ts, --quick): nbdkit, fio's nbd
// engine and our target serving the export to aoe-loadgen, one round of each
// workload, in namespaces this test makes. Every figure is a measured one
// (above zero), neither side had an error, both used the connections asked
// for, and the table names every workload with its ratio and spread; bad
// options are refused with what is wrong.

import t from 'tap';
import { existsSync } from 'node:fs';
import { parseNbdArgs, runNbdBench } from '../../bench/nbd';
import { LOADGEN } from '../../bench/generators';
import { REMOTE_WORKLOADS } from '../../bench/remote-bench';
import { skipOrFail } from '../../lab/common';
import { requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { DEFAULT_NBD_CONNECTIONS } from '../../src/remote/remote-uri';

t.test('bench:nbd --quick measures both sides of every workload', async (t) => {
  if (!requireRoot(t) || !requireCommands(t, ['nbdkit', 'fio'])) return;
  if (!existsSync(LOADGEN)) return skipOrFail(t, `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``);
  const { rounds, table } = await runNbdBench(t, parseNbdArgs(['--quick', '--connections', '2']));
  t.same(
    rounds.map((r) => r.workload),
    REMOTE_WORKLOADS.map((w) => w.name),
    'one round of each workload',
  );
  for (const r of rounds) {
    for (const side of ['fio', 'ours'] as const) {
      const s = r[side];
      t.ok(s.iops > 0 && s.bytesPerSecond > 0, `${r.workload}, ${side}: ${s.iops.toFixed(0)} IOPS measured`);
      t.equal(s.errors, 0, `${r.workload}, ${side}: every request answered without error`);
      t.ok(s.meanUs > 0 && s.clientCpuUs > 0 && s.serverCpuUs > 0, `${r.workload}, ${side}: latency and CPU per op measured`);
    }
    t.ok(r.ours.loadgenCpuUs > 0, `${r.workload}: aoe-loadgen's CPU per op measured`);
  }
  t.match(table, /fio nbd engine \(2 jobs × 8 deep\)/, 'fio ran one job per connection, 16 in flight in all');
  t.match(table, /ours \(aoe-loadgen, 16 in flight, 2 connections\)/, 'ours used the same connections');
  for (const w of REMOTE_WORKLOADS)
    t.match(
      table,
      new RegExp(`\\| ${w.name} \\(${w.sectors} sectors[^\\n]*\\| \\d+ % \\(\\d+–\\d+\\)`),
      `the table gives ${w.name}'s ratio with its spread`,
    );
});

t.test('bench:nbd refuses bad options, saying which', async (t) => {
  t.throws(() => parseNbdArgs(['--rounds', '0']), /--rounds wants a whole number of 1 or more, got 0/);
  t.throws(() => parseNbdArgs(['--connections', '3']), /--connections wants 1, 2, 4, 8 or 16 .*got 3/);
  t.throws(() => parseNbdArgs(['--connections', '0']), /--connections wants a whole number of 1 or more, got 0/);
  t.throws(() => parseNbdArgs(['--connections', '32']), /--connections wants 1, 2, 4, 8 or 16/);
  t.throws(() => parseNbdArgs(['--plugin', 'qcow2']), /Invalid values:[\s\S]*plugin/);
  t.throws(() => parseNbdArgs(['--seconds', '-1']), /--seconds wants a number above 0/);
  t.throws(() => parseNbdArgs(['--workloads', 'rand-read,fast']), /unknown workload "fast"/);
  t.throws(() => parseNbdArgs(['--colour']), /Unknown argument: colour/);
  t.equal(parseNbdArgs(['--quick', '--rounds', '9']).rounds, 1, '--quick is one round');
  t.equal(parseNbdArgs([]).connections, DEFAULT_NBD_CONNECTIONS, "the same connections as an export's default");
});
