// The nbd bench's per-round measurements and the table it prints: our
// target's IOPS (random) or bytes per second (sequential) on an nbd export
// against fio's nbd engine on the same nbdkit, with medians, spreads and the
// CPU each process spent per request.

import { REMOTE_WORKLOADS, type RemoteWorkload } from './remote-bench';
import { spread, type Spread } from './report';

/** The goal: our figure at least this share of fio's nbd engine's (a gateway should cost little over libnbd itself). */
export const NBD_GOAL = 0.8;

/** One side's result in one round. */
export interface NbdSide {
  iops: number;
  bytesPerSecond: number;
  /** Mean time per request as that side saw it, µs (fio: its completion latency). */
  meanUs: number;
  /** CPU per request of the client: the fio process, or our target (not counting aoe-loadgen), µs. */
  clientCpuUs: number;
  /** CPU per request of aoe-loadgen, µs (NaN for fio). */
  loadgenCpuUs: number;
  /** CPU per request of nbdkit during the run, µs. */
  serverCpuUs: number;
  errors: number;
  retransmits: number;
}

export interface NbdRound {
  round: number;
  workload: string;
  /** Which side ran first in this round (the order alternates). */
  first: 'fio' | 'ours';
  fio: NbdSide;
  ours: NbdSide;
}

function figure(side: NbdSide, w: RemoteWorkload): number {
  return w.measure === 'iops' ? side.iops : side.bytesPerSecond;
}

export interface NbdSummary {
  workload: RemoteWorkload;
  fio: Spread;
  ours: Spread;
  /** Of the rounds' ratios (ours / fio of the same round). */
  ratio: Spread;
  fioMeanUs: number;
  oursMeanUs: number;
  fioCpuUs: number;
  oursCpuUs: number;
  loadgenCpuUs: number;
  fioServerCpuUs: number;
  oursServerCpuUs: number;
  errors: number;
  retransmits: number;
}

/** Medians and spreads per workload over the rounds. */
export function summarizeNbd(rounds: readonly NbdRound[]): NbdSummary[] {
  return REMOTE_WORKLOADS.flatMap((w) => {
    const rs = rounds.filter((r) => r.workload === w.name);
    if (rs.length === 0) return [];
    const med = (f: (r: NbdRound) => number) => spread(rs.map(f)).median;
    return [
      {
        workload: w,
        fio: spread(rs.map((r) => figure(r.fio, w))),
        ours: spread(rs.map((r) => figure(r.ours, w))),
        ratio: spread(rs.map((r) => figure(r.ours, w) / figure(r.fio, w))),
        fioMeanUs: med((r) => r.fio.meanUs),
        oursMeanUs: med((r) => r.ours.meanUs),
        fioCpuUs: med((r) => r.fio.clientCpuUs),
        oursCpuUs: med((r) => r.ours.clientCpuUs),
        loadgenCpuUs: med((r) => r.ours.loadgenCpuUs),
        fioServerCpuUs: med((r) => r.fio.serverCpuUs),
        oursServerCpuUs: med((r) => r.ours.serverCpuUs),
        errors: rs.reduce((n, r) => n + r.ours.errors + r.fio.errors, 0),
        retransmits: rs.reduce((n, r) => n + r.ours.retransmits, 0),
      },
    ];
  });
}

function value(w: RemoteWorkload, v: number): string {
  if (!Number.isFinite(v)) return '-';
  return w.measure === 'iops' ? v.toFixed(0) : (v / (1 << 20)).toFixed(1);
}

function withSpread(w: RemoteWorkload, s: Spread): string {
  const unit = w.measure === 'iops' ? '' : ' MiB/s';
  return `${value(w, s.median)}${unit} (${value(w, s.min)}–${value(w, s.max)})`;
}

function percent(s: Spread): string {
  if (!Number.isFinite(s.median)) return '-';
  const p = (r: number) => (r * 100).toFixed(0);
  return `${p(s.median)} % (${p(s.min)}–${p(s.max)})${s.median >= NBD_GOAL ? '' : ' below'}`;
}

const us = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');

/** The Markdown tables of the medians (spreads: the lowest and highest round). */
export function nbdTable(summary: readonly NbdSummary[], rounds: number, connections: number): string {
  const lines = [
    `| workload | fio nbd engine (${connections} job${connections === 1 ? '' : 's'} × ${16 / connections} deep) | ours (aoe-loadgen, 16 in flight, ${connections} connection${connections === 1 ? '' : 's'}) | ours / fio (goal ≥ ${NBD_GOAL * 100} %) | mean µs fio | mean µs ours | errors | retransmits |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const s of summary) {
    const w = s.workload;
    lines.push(
      `| ${w.name} (${w.sectors} sectors, ${w.measure === 'iops' ? 'IOPS' : 'throughput'}) | ${withSpread(w, s.fio)} | ${withSpread(w, s.ours)} | ${percent(s.ratio)} | ${us(s.fioMeanUs)} | ${us(s.oursMeanUs)} | ${s.errors} | ${s.retransmits} |`,
    );
  }
  lines.push(
    '',
    '| workload | CPU µs/op fio | CPU µs/op our target | CPU µs/op aoe-loadgen | CPU µs/op nbdkit under fio | CPU µs/op nbdkit under ours |',
    '|---|---|---|---|---|---|',
  );
  for (const s of summary)
    lines.push(
      `| ${s.workload.name} | ${us(s.fioCpuUs)} | ${us(s.oursCpuUs)} | ${us(s.loadgenCpuUs)} | ${us(s.fioServerCpuUs)} | ${us(s.oursServerCpuUs)} |`,
    );
  lines.push(
    '',
    `Medians of ${rounds} round(s), in brackets the lowest and highest round; each round runs fio and ours back to back on the same nbdkit, the order alternating. CPU per op counts the warm-up too.`,
  );
  return lines.join('\n');
}
