// The bench's two load generators, behind one call that returns a LoadResult.
//
// - blocking (the default): build/bench/aoe-loadgen, a C program that sleeps
//   in recvmmsg until a reply comes, as every real initiator does (the Linux
//   aoe driver, iPXE, SeaBIOS). A target then pays for waking it up.
// - polling: the TypeScript engine of aoe-bench (src/client/load.ts) in this
//   process, spinning on its ring after each reply. It never needs waking,
//   which flatters a target that polls too; kept as a labelled extra.

import { ChildProcess, execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AoeClient, DiscoveredTarget } from '../src/client/client';
import { LoadResult, VerifyMode, runLoad } from '../src/client/load';
import type { PatternImage } from '../src/client/pattern';
import { pinnedCommand } from './placements';
import { ROOT } from './targets';
import type { Workload } from './workloads';

export const GENERATOR_NAMES = ['blocking', 'polling'] as const;
export type GeneratorName = (typeof GENERATOR_NAMES)[number];

export const GENERATOR_LABELS: Record<GeneratorName, string> = {
  blocking: 'blocking generator (build/bench/aoe-loadgen, sleeps in recvmmsg)',
  polling: 'polling generator (src/client/load.ts, spins on its ring)',
};

export const LOADGEN = join(ROOT, 'build', 'bench', 'aoe-loadgen');

/** One measured run of a workload, whichever generator makes it. */
export interface GeneratorRun {
  workload: Workload;
  shelf: number;
  slot: number;
  verify: VerifyMode;
  seconds: number;
  warmup: number;
  timeoutMs: number;
  seed: number;
  /** CPU to run the generator on; undefined: not pinned. */
  cpu?: number;
}

/** What the blocking generator needs besides the run. */
export interface BlockingSetup {
  /** Network namespace (as in `ip netns`) and interface of the initiator end. */
  netns: string;
  ifname: string;
  /** A file holding the test pattern of the whole export (the generator maps it). */
  imageFile: string;
}

/** What the polling generator needs besides the run: a client that found the target, and the pattern. */
export interface PollingSetup {
  client: AoeClient;
  target: DiscoveredTarget;
  lbaCount: number;
  image: PatternImage;
  spinUs: number;
  passes: number;
}

/** The JSON line aoe-loadgen prints. */
export interface LoadgenReport {
  ops: number;
  seconds: number;
  iops: number;
  mbps: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
  retransmits: number;
  errors: number;
  cpu_user_s: number;
  cpu_sys_s: number;
  error_kinds: { aoe: number; ata: number; short: number; data: number; given_up: number };
  first_error?: string;
}

/** Why the blocking generator cannot run here, or undefined when it can. */
export function loadgenMissing(): string | undefined {
  return existsSync(LOADGEN) ? undefined : `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``;
}

/** The aoe-loadgen command line for `run` (without namespace and pinning). */
export function loadgenArgs(run: GeneratorRun, setup: BlockingSetup): string[] {
  const w = run.workload;
  return [
    '--if',
    setup.ifname,
    '--shelf',
    String(run.shelf),
    '--slot',
    String(run.slot),
    '--op',
    w.op,
    '--pattern',
    w.pattern,
    '--sectors',
    String(w.sectors),
    '--window',
    String(w.window),
    '--seconds',
    String(run.seconds),
    '--warmup',
    String(run.warmup),
    '--timeout-ms',
    String(run.timeoutMs),
    '--seed',
    String(run.seed),
    '--verify',
    run.verify,
    '--image',
    setup.imageFile,
  ];
}

/** Reads aoe-loadgen's JSON line into the LoadResult the report takes. */
export function loadgenResult(report: LoadgenReport, w: Workload): LoadResult {
  const k = report.error_kinds;
  const cpuMs = (report.cpu_user_s + report.cpu_sys_s) * 1000;
  return {
    op: w.op,
    pattern: w.pattern,
    sectors: w.sectors,
    window: w.window,
    ops: report.ops,
    reads: w.op === 'read' ? report.ops : 0,
    writes: w.op === 'write' ? report.ops : 0,
    bytes: report.ops * w.sectors * 512,
    elapsedMs: report.seconds * 1000,
    iops: report.iops,
    mbps: report.mbps,
    // aoe-loadgen reports these three; the others stay unknown.
    latency: { p50: report.p50_us, p90: NaN, p99: report.p99_us, p999: NaN, max: NaN, mean: report.mean_us, count: report.ops },
    errors: {
      aoe: k.aoe,
      aoeByCode: [k.aoe],
      ata: k.ata,
      verify: k.data,
      short: k.short,
      timeouts: k.given_up,
      stale: 0,
      socket: 0,
    },
    retransmits: report.retransmits,
    cpu: {
      userMs: report.cpu_user_s * 1000,
      systemMs: report.cpu_sys_s * 1000,
      percentOfOneCore: report.seconds > 0 ? (cpuMs / (report.seconds * 1000)) * 100 : NaN,
    },
    repliesPerTurn: NaN,
    framesPerSend: NaN,
    firstError: report.first_error,
  };
}

/** Parses the last line of aoe-loadgen's output; throws with what it printed when that is not its JSON. */
export function parseLoadgenOutput(stdout: string, stderr: string): LoadgenReport {
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    const r = JSON.parse(last) as LoadgenReport;
    if (typeof r.ops === 'number' && typeof r.iops === 'number' && typeof r.error_kinds === 'object') return r;
  } catch {
    // reported below
  }
  throw new Error(`aoe-loadgen gave no result${stderr.trim() ? `: ${stderr.trim()}` : ` (output: ${last || 'none'})`}`);
}

/** The aoe-loadgen processes running now (the bench stops them on Ctrl-C). */
const runningLoadgens = new Set<ChildProcess>();

/** Kills every aoe-loadgen this process started that still runs, by its pid. */
export function killLoadgensNow(): void {
  for (const child of runningLoadgens) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** Runs aoe-loadgen in the initiator namespace, pinned when `run.cpu` says so. */
export function runBlocking(run: GeneratorRun, setup: BlockingSetup): Promise<LoadResult> {
  const command = pinnedCommand([LOADGEN, ...loadgenArgs(run, setup)], run.cpu);
  const limitMs = (run.seconds + run.warmup) * 1000 + 30000;
  return new Promise((resolve, reject) => {
    // ip netns exec and taskset replace themselves with aoe-loadgen: the pid is its own.
    const child = execFile('ip', ['netns', 'exec', setup.netns, ...command], { timeout: limitMs }, (error, stdout, stderr) => {
      runningLoadgens.delete(child);
      try {
        resolve(loadgenResult(parseLoadgenOutput(stdout, stderr), run.workload));
      } catch (e) {
        const why = error && !stderr.trim() ? `aoe-loadgen failed: ${error.message}` : (e as Error).message;
        reject(new Error(why, { cause: error ?? e }));
      }
    });
    runningLoadgens.add(child);
  });
}

/** The CPU list this process may run on now, as taskset prints it (e.g. "0,1" or "0-3"). */
function ownAffinity(): string {
  const out = execFileSync('taskset', ['-p', '-c', String(process.pid)], { encoding: 'utf8' });
  const m = /:\s*(\S+)\s*$/.exec(out.trim());
  if (!m) throw new Error(`cannot read this process's CPU affinity from taskset: ${out.trim()}`);
  return m[1];
}

/** Sets the CPUs of every thread of this process. */
function setOwnAffinity(cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}

/** Runs the polling engine in this process, pinned (all threads) for the run when `run.cpu` says so. */
export async function runPolling(run: GeneratorRun, setup: PollingSetup): Promise<LoadResult> {
  const w = run.workload;
  const before = run.cpu === undefined ? undefined : ownAffinity();
  if (run.cpu !== undefined) setOwnAffinity(String(run.cpu));
  setup.client.pause();
  try {
    return await runLoad({
      socket: setup.client.socket,
      srcMac: setup.client.mac,
      target: setup.target,
      op: w.op,
      pattern: w.pattern,
      sectors: w.sectors,
      window: w.window,
      lbaCount: setup.lbaCount,
      durationMs: run.seconds * 1000,
      warmupMs: run.warmup * 1000,
      verify: run.verify,
      timeoutMs: run.timeoutMs,
      seed: run.seed,
      passesPerWake: setup.passes,
      spinUs: setup.spinUs,
      image: setup.image,
    });
  } finally {
    setup.client.resume();
    if (before !== undefined) setOwnAffinity(before);
  }
}
