// The bench's summaries (bench/report.ts): medians, spreads, ratios, tables.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sample, markdownTable, spread, summarize, textTable, writeBenchmarksDoc } from '../../bench/report';
import { selected, workloadsFor } from '../../bench/workloads';
import type { LoadResult } from '../../src/client/load';

function result(iops: number, p50: number, sectors = 1): LoadResult {
  return {
    op: 'read',
    pattern: 'random',
    sectors,
    window: 16,
    ops: iops,
    reads: iops,
    writes: 0,
    bytes: iops * sectors * 512,
    elapsedMs: 1000,
    iops,
    mbps: (iops * sectors * 512) / 1e6,
    latency: { p50, p90: p50, p99: p50 * 2, p999: p50 * 3, max: p50 * 4, mean: p50, count: iops },
    errors: { aoe: 0, aoeByCode: [], ata: 0, verify: 0, short: 0, timeouts: 0, stale: 0, socket: 0 },
    retransmits: 0,
    cpu: { userMs: 100, systemMs: 100, percentOfOneCore: 20 },
    repliesPerTurn: 4,
    framesPerSend: 4,
  };
}

function sample(target: string, round: number, iops: number, p50: number): Sample {
  return {
    mtu: 9000,
    workload: 'rand-read-1',
    target,
    round,
    result: result(iops, p50),
    targetCpu: 0.9,
    targetRss: 50 * 2 ** 20,
    backing: 'tmpfs',
    placement: 'two-cpus',
    generator: 'blocking',
  };
}

t.test('spread', async (t) => {
  t.same(spread([3, 1, 2]), { median: 2, min: 1, max: 3 });
  t.same(spread([4, 1, 2, 3]), { median: 2.5, min: 1, max: 4 });
  t.same(spread([NaN, 5]), { median: 5, min: 5, max: 5 });
  t.ok(Number.isNaN(spread([]).median));
});

t.test('summaries: medians per target and the ratio against vblade', async (t) => {
  const samples = [
    sample('vblade', 1, 100000, 100),
    sample('ours', 1, 150000, 80),
    sample('vblade', 2, 110000, 90),
    sample('ours', 2, 160000, 70),
    sample('vblade', 3, 90000, 110),
    sample('ours', 3, 140000, 90),
  ];
  const rows = summarize(samples, { vblade: 'vblade 25', ours: 'aoe-target' }, { 'rand-read-1': '1-sector random reads' }, [
    'vblade',
    'ours',
  ]);
  t.equal(rows.length, 2);
  t.equal(rows[0].target, 'vblade', 'the baseline comes first');
  t.same(rows[1].iops, { median: 150000, min: 140000, max: 160000 });
  t.equal(rows[1].ratio, 1.5);
  t.equal(rows[1].latencyRatio, 0.8);
  t.equal(rows[0].ratio, undefined);
  const md = markdownTable(rows);
  t.match(
    md,
    /\| 9000 \| rand-read-1 \| aoe-target \| 150k \(140k–160k\) \| 76\.8 \| 80 \| 160 \| 1\.50× IOPS, 0\.80× p50 \| 0 \| 20 % \| 90 % \| 50 MiB \|/,
  );
  t.match(textTable(rows), /rand-read-1\s+ours\s+150k\s+140k–160k/);
});

t.test('docs/benchmarks.md keeps what is outside the markers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aoe-bench-doc-'));
  const path = join(dir, 'benchmarks.md');
  writeBenchmarksDoc(path, 'first table');
  t.match(readFileSync(path, 'utf8'), /# Benchmarks[\s\S]*first table/);
  writeFileSync(path, readFileSync(path, 'utf8') + '\n## Notes\nhand-written\n');
  writeBenchmarksDoc(path, 'second table');
  const text = readFileSync(path, 'utf8');
  t.notMatch(text, /first table/);
  t.match(text, /second table[\s\S]*## Notes\nhand-written/);
});

t.test('the bench workloads at MTU 9000 and 1500, and --only', async (t) => {
  t.same(
    workloadsFor(9000).map((w) => w.name),
    ['rand-read-1', 'seq-read-17', 'seq-write-17', 'boot-read-2', 'sync-write-17'],
  );
  t.same(
    workloadsFor(1500).map((w) => w.name),
    ['rand-read-1', 'seq-read-2', 'seq-write-2', 'boot-read-2', 'sync-write-2'],
  );
  t.equal(workloadsFor(1500).find((w) => w.name === 'boot-read-2')!.window, 1);
  const w = workloadsFor(9000);
  t.same(
    w.filter((x) => selected(x, ['seq-read'])).map((x) => x.name),
    ['seq-read-17'],
  );
  t.same(w.filter((x) => selected(x, [])).length, 5);
});
