// The rbd bench's workloads, its per-round measurements and the table it
// prints: our target's IOPS (random) or bytes per second (sequential)
// against `rbd bench` on the same image of the same cluster, with the
// latency each side sees per request.

import { REMOTE_WORKLOADS, type RemoteWorkload } from './remote-bench';

/** The workloads of every remote bench (bench/remote-bench.ts). */
export type RbdWorkload = RemoteWorkload;
export const RBD_WORKLOADS = REMOTE_WORKLOADS;

/** The goal: our figure at least this share of rbd bench's (a gateway should cost little over librbd itself). */
export const RBD_GOAL = 0.8;

/** One side's result in one round. */
export interface RbdSide {
  iops: number;
  bytesPerSecond: number;
  /** Mean time per request as that side saw it, µs (rbd bench: threads / IOPS). */
  meanUs: number;
  /** librbd's own mean latency per op inside our target (admin socket perf dump), µs; NaN for rbd bench. */
  librbdUs: number;
  /** CPU per op of the client side, µs: the rbd process, or our target (not counting aoe-loadgen). */
  clientCpuUs: number;
  /** CPU per op of aoe-loadgen, µs (NaN for rbd bench). */
  loadgenCpuUs: number;
  /** CPU per op of the ceph-osd process during the run, µs. */
  osdCpuUs: number;
  errors: number;
  retransmits: number;
}

export interface RbdRound {
  round: number;
  workload: string;
  /** Which side ran first in this round (the order alternates). */
  first: 'rbd' | 'ours';
  /** rbd bench with librbd's cache off, as our target runs librbd: the goal's baseline. */
  rbd: RbdSide;
  /** rbd bench with the cache on (Ceph's default). */
  rbdCached: RbdSide;
  ours: RbdSide;
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function figure(side: RbdSide, w: RbdWorkload): number {
  return w.measure === 'iops' ? side.iops : side.bytesPerSecond;
}

export interface RbdSummary {
  workload: RbdWorkload;
  rbd: number;
  rbdCached: number;
  ours: number;
  ratio: number;
  /** The lowest and highest of the rounds' ratios to rbd bench with the cache off. */
  ratioLow: number;
  ratioHigh: number;
  ratioCached: number;
  rbdMeanUs: number;
  oursMeanUs: number;
  librbdUs: number;
  rbdCpuUs: number;
  oursCpuUs: number;
  loadgenCpuUs: number;
  rbdOsdCpuUs: number;
  oursOsdCpuUs: number;
  errors: number;
  retransmits: number;
}

/** Medians per workload over the rounds; the ratio is the median of the rounds' ratios. */
export function summarizeRbd(rounds: readonly RbdRound[]): RbdSummary[] {
  return RBD_WORKLOADS.flatMap((w) => {
    const rs = rounds.filter((r) => r.workload === w.name);
    if (rs.length === 0) return [];
    const ratios = rs.map((r) => figure(r.ours, w) / figure(r.rbd, w)).filter((x) => Number.isFinite(x));
    return [
      {
        workload: w,
        rbd: median(rs.map((r) => figure(r.rbd, w))),
        rbdCached: median(rs.map((r) => figure(r.rbdCached, w))),
        ours: median(rs.map((r) => figure(r.ours, w))),
        ratio: median(ratios),
        ratioLow: ratios.length > 0 ? Math.min(...ratios) : NaN,
        ratioHigh: ratios.length > 0 ? Math.max(...ratios) : NaN,
        ratioCached: median(rs.map((r) => figure(r.ours, w) / figure(r.rbdCached, w))),
        rbdMeanUs: median(rs.map((r) => r.rbd.meanUs)),
        oursMeanUs: median(rs.map((r) => r.ours.meanUs)),
        librbdUs: median(rs.map((r) => r.ours.librbdUs)),
        rbdCpuUs: median(rs.map((r) => r.rbd.clientCpuUs)),
        oursCpuUs: median(rs.map((r) => r.ours.clientCpuUs)),
        loadgenCpuUs: median(rs.map((r) => r.ours.loadgenCpuUs)),
        rbdOsdCpuUs: median(rs.map((r) => r.rbd.osdCpuUs)),
        oursOsdCpuUs: median(rs.map((r) => r.ours.osdCpuUs)),
        errors: rs.reduce((n, r) => n + r.ours.errors, 0),
        retransmits: rs.reduce((n, r) => n + r.ours.retransmits, 0),
      },
    ];
  });
}

function spread(low: number, high: number): string {
  return Number.isFinite(low) ? `${(low * 100).toFixed(0)}–${(high * 100).toFixed(0)} %` : '-';
}

function fmt(w: RbdWorkload, v: number): string {
  if (!Number.isFinite(v)) return '-';
  return w.measure === 'iops' ? v.toFixed(0) : `${(v / (1 << 20)).toFixed(1)} MiB/s`;
}

/** The Markdown table of the medians. */
export function rbdTable(summary: readonly RbdSummary[], rounds: number): string {
  const lines = [
    `| workload | rbd bench, cache off (same bytes per request, 16 threads) | rbd bench, cache on | ours (aoe-loadgen, 16 in flight) | ours / rbd cache off (goal ≥ ${RBD_GOAL * 100} %) | lowest–highest round | ours / rbd cache on | mean µs rbd bench | mean µs ours | librbd µs in ours | errors | retransmits |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of summary) {
    const w = s.workload;
    const pct = (r: number) => (Number.isFinite(r) ? `${(r * 100).toFixed(0)} %${r >= RBD_GOAL ? '' : ' (below)'}` : '-');
    const us = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '-');
    lines.push(
      `| ${w.name} (${w.sectors} sectors, ${w.measure === 'iops' ? 'IOPS' : 'throughput'}) | ${fmt(w, s.rbd)} | ${fmt(w, s.rbdCached)} | ${fmt(w, s.ours)} | ${pct(s.ratio)} | ${spread(s.ratioLow, s.ratioHigh)} | ${pct(s.ratioCached)} | ${us(s.rbdMeanUs)} | ${us(s.oursMeanUs)} | ${us(s.librbdUs)} | ${s.errors} | ${s.retransmits} |`,
    );
  }
  lines.push(
    '',
    '| workload | CPU µs/op rbd process | CPU µs/op our target | CPU µs/op aoe-loadgen | CPU µs/op ceph-osd under rbd bench | CPU µs/op ceph-osd under ours |',
    '|---|---|---|---|---|---|',
  );
  for (const s of summary) {
    const us = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '-');
    lines.push(
      `| ${s.workload.name} | ${us(s.rbdCpuUs)} | ${us(s.oursCpuUs)} | ${us(s.loadgenCpuUs)} | ${us(s.rbdOsdCpuUs)} | ${us(s.oursOsdCpuUs)} |`,
    );
  }
  lines.push(
    '',
    `Medians of ${rounds} round(s); each round runs rbd bench (cache off, cache on) and ours back to back, the order alternating. Mean µs of rbd bench is 16 threads / its IOPS.`,
  );
  return lines.join('\n');
}
