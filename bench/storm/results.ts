// The storm bench's figures: what one replay measured (from aoe-storm's JSON
// line), the medians over rounds for each target and client count, and the
// ratios the boot-storm goals are stated in (docs/benchmarks.md).

import { spread } from '../report';

/** One client's figures: [done_us, ops, bytes, p50_us, p99_us, retransmits, errors] as aoe-storm prints them. */
export type ClientRow = [number, number, number, number, number, number, number];

export interface ReplayOutput {
  clients: number;
  steps: number;
  wall_us: number;
  errors: number;
  retransmits: number;
  given_up: number;
  first_error?: string;
  per_client: ClientRow[];
}

/** One replay of N clients against one target. */
export interface StormRun {
  target: string;
  clients: number;
  round: number;
  /** Seconds until the last client had its last reply. */
  allDoneS: number;
  /** Median over clients of their completion, seconds. */
  medianDoneS: number;
  /** The slowest client's completion over the median client's. */
  slowestOverMedian: number;
  /** Median over clients of each client's p50 and p99 latency, µs. */
  p50Us: number;
  p99Us: number;
  /** The worst client's p99, µs. */
  worstP99Us: number;
  mbps: number;
  iops: number;
  errors: number;
  retransmits: number;
  /** Clients that did not finish (given up by --max-seconds). */
  unfinished: number;
  firstError?: string;
}

function median(values: number[]): number {
  return spread(values).median;
}

/** Reads aoe-storm's output line; throws saying what is wrong with it. */
export function parseReplayOutput(text: string): ReplayOutput {
  const line = text.trim().split('\n').pop() ?? '';
  let out: ReplayOutput;
  try {
    out = JSON.parse(line) as ReplayOutput;
  } catch (e) {
    throw new Error(`aoe-storm printed no result line (got ${JSON.stringify(line.slice(0, 200))})`, { cause: e });
  }
  if (!Array.isArray(out.per_client) || out.per_client.length !== out.clients)
    throw new Error(`aoe-storm's result has ${out.per_client?.length} clients' figures for ${out.clients} clients`);
  return out;
}

export function stormRun(target: string, round: number, out: ReplayOutput): StormRun {
  const rows = out.per_client;
  const finished = rows.filter((r) => r[0] >= 0);
  const done = finished.map((r) => r[0] / 1e6);
  const allDoneS = finished.length === rows.length ? Math.max(...done) : out.wall_us / 1e6;
  const medianDoneS = median(done);
  const bytes = rows.reduce((a, r) => a + r[2], 0);
  const ops = rows.reduce((a, r) => a + r[1], 0);
  const run: StormRun = {
    target,
    clients: out.clients,
    round,
    allDoneS,
    medianDoneS,
    slowestOverMedian: allDoneS / medianDoneS,
    p50Us: median(rows.map((r) => r[3])),
    p99Us: median(rows.map((r) => r[4])),
    worstP99Us: Math.max(...rows.map((r) => r[4])),
    mbps: bytes / 1e6 / allDoneS,
    iops: ops / allDoneS,
    errors: out.errors,
    retransmits: out.retransmits,
    unfinished: rows.length - finished.length,
  };
  if (out.first_error !== undefined) run.firstError = out.first_error;
  return run;
}

/** Medians over the rounds of one target at one client count. */
export interface StormRow {
  target: string;
  clients: number;
  rounds: number;
  allDoneS: number;
  /** Slowest and quickest round's completion, for the spread. */
  allDoneMinS: number;
  allDoneMaxS: number;
  slowestOverMedian: number;
  p50Us: number;
  p99Us: number;
  worstP99Us: number;
  mbps: number;
  iops: number;
  errors: number;
  retransmits: number;
  unfinished: number;
}

export function summarizeRuns(runs: readonly StormRun[]): StormRow[] {
  const keys: Array<[string, number]> = [];
  for (const r of runs) if (!keys.some(([t, n]) => t === r.target && n === r.clients)) keys.push([r.target, r.clients]);
  return keys.map(([target, clients]) => {
    const mine = runs.filter((r) => r.target === target && r.clients === clients);
    const s = spread(mine.map((r) => r.allDoneS));
    const m = (f: (r: StormRun) => number): number => median(mine.map(f));
    return {
      target,
      clients,
      rounds: mine.length,
      allDoneS: s.median,
      allDoneMinS: s.min,
      allDoneMaxS: s.max,
      slowestOverMedian: m((r) => r.slowestOverMedian),
      p50Us: m((r) => r.p50Us),
      p99Us: m((r) => r.p99Us),
      worstP99Us: m((r) => r.worstP99Us),
      mbps: m((r) => r.mbps),
      iops: m((r) => r.iops),
      errors: mine.reduce((a, r) => a + r.errors, 0),
      retransmits: mine.reduce((a, r) => a + r.retransmits, 0),
      unfinished: mine.reduce((a, r) => a + r.unfinished, 0),
    };
  });
}

export interface Goal {
  what: string;
  /** The measured ratio (NaN when a target or client count was not run). */
  value: number;
  /** The goal, and whether a larger value is better. */
  goal: number;
  higherIsBetter: boolean;
}

export function goalMet(g: Goal): boolean | undefined {
  if (!Number.isFinite(g.value)) return undefined;
  return g.higherIsBetter ? g.value >= g.goal : g.value <= g.goal;
}

/**
 * The ratios of the boot-storm goals at the largest client count run: vblade's
 * completion over ours (≥ 1.5), views' completion over plain (≤ 1.10), the
 * slowest client over the median (≤ 1.5, each target), and aggregate
 * throughput at that count over the best count's (≥ 0.9, each target).
 */
export function stormGoals(rows: readonly StormRow[]): Goal[] {
  if (rows.length === 0) return [];
  const top = Math.max(...rows.map((r) => r.clients));
  const at = (target: string, n = top): StormRow | undefined => rows.find((r) => r.target === target && r.clients === n);
  const goals: Goal[] = [];
  const ours = at('ours');
  const vblade = at('vblade');
  const views = at('ours-views');
  goals.push({
    what: `N=${top}: vblade's completion time / ours (plain)`,
    value: vblade && ours ? vblade.allDoneS / ours.allDoneS : NaN,
    goal: 1.5,
    higherIsBetter: true,
  });
  goals.push({
    what: `N=${top}: views' completion time / plain's`,
    value: views && ours ? views.allDoneS / ours.allDoneS : NaN,
    goal: 1.1,
    higherIsBetter: false,
  });
  const targets = [...new Set(rows.map((r) => r.target))];
  for (const t of targets) {
    const r = at(t);
    goals.push({
      what: `N=${top}, ${t}: slowest client's completion / median client's`,
      value: r ? r.slowestOverMedian : NaN,
      goal: 1.5,
      higherIsBetter: false,
    });
  }
  for (const t of targets) {
    const best = Math.max(...rows.filter((r) => r.target === t).map((r) => r.mbps));
    const r = at(t);
    goals.push({
      what: `N=${top}, ${t}: aggregate MB/s / best N's`,
      value: r ? r.mbps / best : NaN,
      goal: 0.9,
      higherIsBetter: true,
    });
  }
  return goals;
}

const f = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '—');

export function stormTable(rows: readonly StormRow[], labels: Record<string, string>): string {
  const head =
    '| target | N | all done, s (min–max) | slowest / median | p50 µs | p99 µs | worst p99 µs | MB/s | IOPS | errors | retransmits |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  return (
    head +
    rows
      .map(
        (r) =>
          `| ${labels[r.target] ?? r.target} | ${r.clients} | ${f(r.allDoneS, 3)} (${f(r.allDoneMinS, 3)}–${f(r.allDoneMaxS, 3)}) | ${f(r.slowestOverMedian, 2)} | ${f(r.p50Us, 0)} | ${f(r.p99Us, 0)} | ${f(r.worstP99Us, 0)} | ${f(r.mbps, 1)} | ${f(r.iops, 0)} | ${r.errors}${r.unfinished ? ` (${r.unfinished} unfinished)` : ''} | ${r.retransmits} |`,
      )
      .join('\n') +
    '\n'
  );
}

export function goalsTable(goals: readonly Goal[]): string {
  const head = '| ratio | measured | goal | met |\n|---|---:|---:|---|\n';
  return (
    head +
    goals
      .map((g) => {
        const met = goalMet(g);
        return `| ${g.what} | ${f(g.value, 2)} | ${g.higherIsBetter ? '≥' : '≤'} ${g.goal} | ${met === undefined ? 'not run' : met ? 'yes' : 'no'} |`;
      })
      .join('\n') +
    '\n'
  );
}
