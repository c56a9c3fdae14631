// Summaries of the bench's measurements: medians and spreads per target,
// workload and placement, ratios against vblade and against the ceiling (the
// C reflector), the Markdown table for docs/benchmarks.md and a line
// describing the machine.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import type { LoadResult } from '../src/client/load';
import { debianVbladeVersion } from '../lab/peers';

/** One measurement: a workload run once against one target. */
export interface Sample {
  mtu: number;
  workload: string;
  target: string;
  round: number;
  result: LoadResult;
  /** Target CPU time over the run / run time (1 = one core busy). */
  targetCpu: number;
  /** Target memory (RSS without mapped tmpfs file pages) at the end of the run, bytes. */
  targetRss: number;
  /** Where the export's data lived. */
  backing: 'tmpfs' | 'disk';
  /** Where target and generator ran (bench/placements.ts). */
  placement: string;
  /** Which load generator measured it (bench/generators.ts). */
  generator: string;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN };
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1] };
}

export interface Row {
  mtu: number;
  workload: string;
  description: string;
  target: string;
  label: string;
  backing: string;
  placement: string;
  generator: string;
  op: 'read' | 'write';
  /** Requests in flight: 1 makes it a latency workload. */
  window: number;
  rounds: number;
  iops: Spread;
  mbps: Spread;
  p50: Spread;
  p99: Spread;
  errors: number;
  retransmits: number;
  clientCpu: Spread;
  targetCpu: Spread;
  targetRssMiB: number;
  /** ours / vblade on median IOPS (same request size, so also MB/s). */
  ratio?: number;
  /** vblade's median p50 latency over ours: above 1 is better, like `ratio`. */
  latencyRatio?: number;
  /** Median IOPS as a share of the ceiling's (reads with several in flight). */
  ceilingShare?: number;
  /** Median p50 latency over the ceiling's (one in flight). */
  ceilingLatency?: number;
}

/** A workload with one request in flight measures latency; the others throughput. */
export function isLatency(row: Pick<Row, 'window'>): boolean {
  return row.window === 1;
}

const PLACEMENT_ORDER = ['two-cpus', 'one-cpu', 'unpinned'];

export function summarize(
  samples: Sample[],
  labels: Record<string, string>,
  descriptions: Record<string, string>,
  targetOrder: string[],
  baseline = 'vblade',
  ceiling = 'ceiling',
): Row[] {
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = [s.mtu, s.workload, s.placement, s.generator, s.target].join('\u0000');
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  }
  const rows: Row[] = [];
  for (const g of groups.values()) {
    const s0 = g[0];
    const r = g.map((s) => s.result);
    rows.push({
      mtu: s0.mtu,
      workload: s0.workload,
      description: descriptions[s0.workload] ?? s0.workload,
      target: s0.target,
      label: labels[s0.target] ?? s0.target,
      backing: s0.backing,
      placement: s0.placement,
      generator: s0.generator,
      op: s0.result.op === 'write' ? 'write' : 'read',
      window: s0.result.window,
      rounds: g.length,
      iops: spread(r.map((x) => x.iops)),
      mbps: spread(r.map((x) => x.mbps)),
      p50: spread(r.map((x) => x.latency.p50)),
      p99: spread(r.map((x) => x.latency.p99)),
      errors: r.reduce(
        (a, x) => a + x.errors.aoe + x.errors.ata + x.errors.verify + x.errors.short + x.errors.timeouts + x.errors.socket,
        0,
      ),
      retransmits: r.reduce((a, x) => a + x.retransmits, 0),
      clientCpu: spread(r.map((x) => x.cpu.percentOfOneCore)),
      targetCpu: spread(g.map((s) => s.targetCpu * 100)),
      targetRssMiB: Math.max(...g.map((s) => s.targetRss)) / 2 ** 20,
    });
  }
  // Ratios compare rows of the same run: MTU, workload, placement and generator.
  const peer = (row: Row, target: string): Row | undefined =>
    rows.find(
      (b) =>
        b.mtu === row.mtu &&
        b.workload === row.workload &&
        b.placement === row.placement &&
        b.generator === row.generator &&
        b.target === target,
    );
  for (const row of rows) {
    const base = row.target === baseline ? undefined : peer(row, baseline);
    if (base) {
      row.ratio = row.iops.median / base.iops.median;
      row.latencyRatio = base.p50.median / row.p50.median;
    }
    // The ceiling drops writes, so only reads and latency are measured against it.
    const top = row.target === ceiling ? undefined : peer(row, ceiling);
    if (top && isLatency(row)) row.ceilingLatency = row.p50.median / top.p50.median;
    else if (top && row.op === 'read') row.ceilingShare = row.iops.median / top.iops.median;
  }
  const rank = (t: string): number => (t === baseline ? -1 : t === ceiling ? 1000 : targetOrder.indexOf(t));
  const place = (p: string): number => {
    const i = PLACEMENT_ORDER.indexOf(p);
    return i < 0 ? 99 : i;
  };
  rows.sort(
    (a, b) =>
      b.mtu - a.mtu ||
      order(a.workload) - order(b.workload) ||
      place(a.placement) - place(b.placement) ||
      a.generator.localeCompare(b.generator) ||
      rank(a.target) - rank(b.target),
  );
  return rows;
}

function order(workload: string): number {
  const prefixes = ['rand-read', 'seq-read', 'seq-write', 'boot-read', 'sync-write'];
  const i = prefixes.findIndex((p) => workload.startsWith(p));
  return i < 0 ? 99 : i;
}

function num(v: number, digits = 0): string {
  if (!Number.isFinite(v)) return '–';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function k(v: number): string {
  if (!Number.isFinite(v)) return '–';
  return v >= 10000 ? `${(v / 1000).toFixed(0)}k` : v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0);
}

function withSpread(s: Spread, fmt: (v: number) => string): string {
  if (s.min === s.max) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/** The placement as a table shows it; a run of the polling generator says so in every row. */
export function placementCell(r: Pick<Row, 'placement' | 'generator'>): string {
  return r.generator === 'polling' ? `${r.placement}, polling generator` : r.placement;
}

/** "1.32× IOPS, p50 1.45×" against vblade (above 1 is better in both); a latency workload leads with p50. */
export function vbladeCell(r: Row): string {
  if (r.ratio === undefined || r.latencyRatio === undefined) return '';
  const iops = `${r.ratio.toFixed(2)}× IOPS`;
  const p50 = `p50 ${r.latencyRatio.toFixed(2)}×`;
  return isLatency(r) ? `${p50}, ${iops}` : `${iops}, ${p50}`;
}

/** "61 % IOPS" for reads, "p50 +40 %" (over the ceiling's) for one-in-flight latency, empty for writes. */
export function ceilingCell(r: Row): string {
  if (r.ceilingLatency !== undefined) {
    const over = Math.round((r.ceilingLatency - 1) * 100);
    return `p50 ${over >= 0 ? '+' : '−'}${Math.abs(over)} %`;
  }
  if (r.ceilingShare !== undefined) return `${(r.ceilingShare * 100).toFixed(0)} % IOPS`;
  return '';
}

/** The Markdown table: one line per MTU, workload, placement and target. */
export function markdownTable(rows: Row[]): string {
  const lines = [
    '| MTU | workload | placement | target | IOPS median (min–max) | MB/s | p50 µs | p99 µs | vs vblade | vs ceiling | errors | generator CPU | target CPU | target memory |',
    '|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.mtu} | ${r.workload}${r.backing === 'disk' ? ' (disk)' : ''} | ${placementCell(r)} | ${r.label} | ${withSpread(r.iops, k)} | ${num(r.mbps.median, r.mbps.median < 100 ? 1 : 0)} | ${num(r.p50.median)} | ${num(r.p99.median)} | ${vbladeCell(r)} | ${ceilingCell(r)} | ${r.errors} | ${num(r.clientCpu.median)} % | ${num(r.targetCpu.median)} % | ${num(r.targetRssMiB)} MiB |`,
    );
  }
  return lines.join('\n');
}

/** Plain-text version for the terminal. */
export function textTable(rows: Row[]): string {
  const head = [
    'MTU',
    'workload',
    'placement',
    'target',
    'IOPS',
    '(min–max)',
    'MB/s',
    'p50µs',
    'p99µs',
    '/vblade',
    '/ceiling',
    'err',
    'gen%',
    'tgt%',
  ];
  const body = rows.map((r) => [
    String(r.mtu),
    r.workload + (r.backing === 'disk' ? '*' : ''),
    placementCell(r),
    r.target,
    k(r.iops.median),
    `${k(r.iops.min)}–${k(r.iops.max)}`,
    num(r.mbps.median, r.mbps.median < 100 ? 1 : 0),
    num(r.p50.median),
    num(r.p99.median),
    r.ratio === undefined ? '' : isLatency(r) ? `p50 ${r.latencyRatio!.toFixed(2)}×` : `${r.ratio.toFixed(2)}×`,
    ceilingCell(r),
    String(r.errors),
    num(r.clientCpu.median),
    num(r.targetCpu.median),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i <= 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmt(head), ...body.map(fmt)].join('\n');
}

/** The 1, 5 and 15 minute load averages, "1.85 1.96 2.08": how busy the machine was around a run. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((v) => v.toFixed(2))
    .join(' ');
}

/** cpu model, cores, memory, kernel, node, vblade package version. */
export function describeMachine(): string {
  const cpus = os.cpus();
  let model = cpus[0]?.model?.trim() ?? 'unknown CPU';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1].trim();
  } catch {
    // keep os.cpus()
  }
  const vblade = debianVbladeVersion() ?? 'not unpacked';
  return `${model}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${os.release()}, Node ${process.version}, vblade ${vblade}`;
}

const BEGIN = '<!-- bench:begin (generated by `npm run bench`; edits between these markers are overwritten) -->';
const END = '<!-- bench:end -->';

/** Writes `generated` into docs/benchmarks.md between the markers, keeping everything else of the file. */
export function writeBenchmarksDoc(path: string, generated: string): void {
  const block = `${BEGIN}\n${generated.trim()}\n${END}`;
  let text: string;
  if (existsSync(path)) {
    const old = readFileSync(path, 'utf8');
    const a = old.indexOf('<!-- bench:begin');
    const b = old.indexOf(END);
    text = a >= 0 && b > a ? old.slice(0, a) + block + old.slice(b + END.length) : `${old.trimEnd()}\n\n${block}\n`;
  } else {
    text = `# Benchmarks\n\nOur target against Debian's vblade and a no-disk C target (the ceiling), side by side, measured by\n\`npm run bench\` (bench/run.ts).\n\n${block}\n`;
  }
  writeFileSync(path, text);
}
