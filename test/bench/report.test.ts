// The bench's summaries (bench/report.ts): medians, spreads, ratios, tables.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Sample,
  ceilingCell,
  markdownTable,
  placementCell,
  spread,
  summarize,
  textTable,
  writeBenchmarksDoc,
} from '../../bench/report';
import { selected, workloadsFor } from '../../bench/workloads';
import type { LoadResult } from '../../src/client/load';

function result(iops: number, p50: number, sectors = 1, op: 'read' | 'write' = 'read', window = 16): LoadResult {
  return {
    op,
    pattern: 'random',
    sectors,
    window,
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

function sample(
  target: string,
  round: number,
  iops: number,
  p50: number,
  o: { workload?: string; placement?: string; generator?: string; op?: 'read' | 'write'; window?: number } = {},
): Sample {
  return {
    mtu: 9000,
    workload: o.workload ?? 'rand-read-1',
    target,
    round,
    result: result(iops, p50, 1, o.op, o.window),
    targetCpu: 0.9,
    targetRss: 50 * 2 ** 20,
    backing: 'tmpfs',
    placement: o.placement ?? 'two-cpus',
    generator: o.generator ?? 'blocking',
  };
}

const LABELS = { vblade: 'vblade 25', ours: 'aoe-target', ceiling: 'C reflector (ceiling)' };
const ORDER = ['vblade', 'ours', 'ceiling'];

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
  t.equal(rows[1].latencyRatio, 1.25, "vblade's p50 over ours: above 1 is better");
  t.equal(rows[0].ratio, undefined);
  const md = markdownTable(rows);
  t.match(
    md,
    /\| 9000 \| rand-read-1 \| two-cpus \| aoe-target \| 150k \(140k–160k\) \| 76\.8 \| 80 \| 160 \| 1\.50× IOPS, p50 1\.25× \| {2}\| 0 \| 20 % \| 90 % \| 50 MiB \|/,
  );
  t.match(textTable(rows), /rand-read-1\s+two-cpus\s+ours\s+150k\s+140k–160k/);
});

t.test('reads are measured against the ceiling of the same placement; vblade comes first, the ceiling last', async (t) => {
  const samples = [
    sample('ceiling', 1, 400000, 40),
    sample('ours', 1, 200000, 60),
    sample('vblade', 1, 100000, 90),
    // Another placement: its own vblade and ceiling, never the first one's.
    sample('ceiling', 1, 200000, 50, { placement: 'one-cpu' }),
    sample('ours', 1, 150000, 70, { placement: 'one-cpu' }),
    sample('vblade', 1, 50000, 100, { placement: 'one-cpu' }),
  ];
  const rows = summarize(samples, LABELS, {}, ORDER);
  t.same(
    rows.map((r) => `${r.placement} ${r.target}`),
    ['two-cpus vblade', 'two-cpus ours', 'two-cpus ceiling', 'one-cpu vblade', 'one-cpu ours', 'one-cpu ceiling'],
  );
  const ours2 = rows[1];
  const ours1 = rows[4];
  t.equal(ours2.ratio, 2);
  t.equal(ours2.ceilingShare, 0.5);
  t.equal(ours1.ratio, 3);
  t.equal(ours1.ceilingShare, 0.75);
  t.equal(rows[0].ceilingShare, 0.25, 'vblade is measured against the ceiling too');
  t.equal(rows[2].ceilingShare, undefined, 'the ceiling is not measured against itself');
  t.equal(rows[2].ratio, 4, 'the ceiling against vblade');
  const md = markdownTable(rows);
  t.match(md, /\| one-cpu \| aoe-target \| 150k \| [^|]+ \| 70 \| 140 \| 3\.00× IOPS, p50 1\.43× \| 75 % IOPS \|/);
  t.match(md, /\| two-cpus \| vblade 25 \| 100k \| [^|]+ \| 90 \| 180 \| {2}\| 25 % IOPS \|/);
  t.match(textTable(rows), /one-cpu\s+ours\s+150k\s+150k–150k\s+\S+\s+70\s+140\s+3\.00×\s+75 % IOPS/);
});

t.test('one-in-flight latency is measured against the ceiling by p50; writes are not', async (t) => {
  const boot = { workload: 'boot-read-2', window: 1 };
  const write = { workload: 'seq-write-17', op: 'write' as const };
  const rows = summarize(
    [
      sample('vblade', 1, 50000, 20, boot),
      sample('ours', 1, 80000, 12, boot),
      sample('ceiling', 1, 100000, 8, boot),
      sample('vblade', 1, 100000, 90, write),
      sample('ours', 1, 120000, 80, write),
      sample('ceiling', 1, 300000, 40, write),
    ],
    LABELS,
    {},
    ORDER,
  );
  const ours = (w: string): (typeof rows)[number] => rows.find((r) => r.workload === w && r.target === 'ours')!;
  t.equal(ours('boot-read-2').ceilingLatency, 1.5);
  t.equal(ours('boot-read-2').ceilingShare, undefined);
  t.equal(ceilingCell(ours('boot-read-2')), 'p50 +50 %');
  t.equal(ours('seq-write-17').ceilingShare, undefined, 'the ceiling drops writes');
  t.equal(ours('seq-write-17').ceilingLatency, undefined);
  t.equal(ceilingCell(ours('seq-write-17')), '');
  const md = markdownTable(rows);
  t.match(md, /\| boot-read-2 \| two-cpus \| aoe-target \| 80k \| [^|]+ \| 12 \| 24 \| p50 1\.67×, 1\.60× IOPS \| p50 \+50 % \|/);
  t.match(md, /\| seq-write-17 \| two-cpus \| aoe-target \| 120k \| [^|]+ \| 80 \| 160 \| 1\.20× IOPS, p50 1\.1[23]× \| {2}\|/);
  t.match(textTable(rows), /boot-read-2\s+two-cpus\s+ours\s+80k\s+80k–80k\s+\S+\s+12\s+24\s+p50 1\.67×\s+p50 \+50 %/);
});

t.test('rows of the polling generator say so, and are compared only with rows of the same generator', async (t) => {
  const polling = { generator: 'polling' };
  const rows = summarize(
    [
      sample('vblade', 1, 100000, 90),
      sample('ours', 1, 150000, 60),
      sample('vblade', 1, 200000, 50, polling),
      sample('ours', 1, 300000, 40, polling),
    ],
    LABELS,
    {},
    ORDER,
  );
  const polled = rows.find((r) => r.generator === 'polling' && r.target === 'ours')!;
  t.equal(polled.ratio, 1.5);
  t.equal(placementCell(polled), 'two-cpus, polling generator');
  t.equal(placementCell(rows.find((r) => r.generator === 'blocking')!), 'two-cpus');
  t.match(markdownTable(rows), /\| two-cpus, polling generator \| aoe-target \| 300k \|/);
  t.match(textTable(rows), /two-cpus, polling generator\s+ours\s+300k/);
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

t.test('default placements: latency in all three, throughput pinned, -s writes on a CPU each', async (t) => {
  const placements = Object.fromEntries(workloadsFor(9000).map((w) => [w.name, w.placements]));
  t.same(placements['boot-read-2'], ['two-cpus', 'one-cpu', 'unpinned']);
  for (const w of ['rand-read-1', 'seq-read-17', 'seq-write-17']) t.same(placements[w], ['two-cpus', 'one-cpu'], w);
  t.same(placements['sync-write-17'], ['two-cpus']);
});
