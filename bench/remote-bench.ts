// What the benches of remote exports (bench/rbd.ts, bench/nbd.ts) share: the
// workloads, the options every one of them takes, the alternating rounds, our
// target started in a namespace and driven by aoe-loadgen from another, the
// CPU a process used, and the main() that prints and writes the report.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { TestLike, sleep } from '../lab/common';
import { Netns } from '../lab/netns';
import { Proc, which } from '../lab/process';
import { LOADGEN, LoadgenReport, parseLoadgenOutput } from './generators';
import { describeMachine, loadAverage } from './report';
import { ROOT } from './targets';

/** One pairing of a baseline's run with an aoe-loadgen run against our target. */
/** Why `bench` cannot run here (not root, a command or aoe-loadgen missing), or undefined when it can. */
export function missingFor(bench: string, commands: readonly string[]): string | undefined {
  if (process.getuid?.() !== 0) return `the ${bench} needs root (network namespaces)`;
  const absent = commands.filter((c) => which(c) === undefined);
  if (absent.length > 0) return `missing command(s): ${absent.join(', ')} (run: sudo bash scripts/setup.sh)`;
  if (!existsSync(LOADGEN)) return `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``;
  return undefined;
}

export interface RemoteWorkload {
  name: string;
  op: 'read' | 'write';
  pattern: 'rand' | 'seq';
  /** Sectors per AoE request (8 = 4 KiB; 17 = the Linux driver's sequential size at MTU 9000). */
  sectors: number;
  /** What the goal compares: IOPS for random, bytes per second for sequential. */
  measure: 'iops' | 'bytes';
}

export const REMOTE_WORKLOADS: readonly RemoteWorkload[] = [
  { name: 'rand-read', op: 'read', pattern: 'rand', sectors: 8, measure: 'iops' },
  { name: 'rand-write', op: 'write', pattern: 'rand', sectors: 8, measure: 'iops' },
  { name: 'seq-read', op: 'read', pattern: 'seq', sectors: 17, measure: 'bytes' },
  { name: 'seq-write', op: 'write', pattern: 'seq', sectors: 17, measure: 'bytes' },
];

/** Requests in flight on both sides. */
export const IN_FLIGHT = 16;
export const MiB = 1 << 20;

/** The options every remote bench takes. */
export interface RemoteBenchArgs {
  rounds: number;
  seconds: number;
  warmup: number;
  sizeMib: number;
  workloads: string;
  quick: boolean;
  out: string | undefined;
}

export function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Teardown steps, run in reverse order: the bench's stand-in for a tap test. */
export class Scope implements TestLike {
  #steps: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.#steps.push(fn);
  }
  pass(message: string): boolean {
    log(`ok: ${message}`);
    return true;
  }
  fail(message: string): boolean {
    log(`not ok: ${message}`);
    return false;
  }
  comment(...args: unknown[]): void {
    log(`# ${args.map(String).join(' ')}`);
  }
  async close(): Promise<void> {
    for (const fn of this.#steps.reverse()) {
      try {
        await fn();
      } catch (e) {
        log(`clean-up: ${(e as Error).message}`);
      }
    }
    this.#steps = [];
  }
}

export function parseWorkloadNames(text: string): RemoteWorkload[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((name) => {
      const w = REMOTE_WORKLOADS.find((x) => x.name === name);
      if (!w) throw new Error(`unknown workload "${name}": use ${REMOTE_WORKLOADS.map((x) => x.name).join(', ')}`);
      return w;
    });
}

/**
 * The shared options on a yargs parser (strict, errors thrown rather than
 * exits: a test parses too); the caller adds its own and parses.
 */
export function remoteBenchParser(argv: string[], script: string, usage: string, defaults: { sizeMib: number }): Argv {
  return yargs(argv)
    .scriptName(`npm run ${script} --`)
    .usage(`$0 [options]\n\n${usage}`)
    .option('rounds', {
      type: 'number',
      default: 6,
      describe: 'rounds; the table gives medians (even: each side goes first as often; the later writer is slower)',
    })
    .option('seconds', { type: 'number', default: 5, describe: 'measured seconds of each of our runs' })
    .option('warmup', { type: 'number', default: 1, describe: 'unmeasured seconds before each of our runs' })
    .option('size-mib', { type: 'number', default: defaults.sizeMib, describe: 'size of the image (MiB)' })
    .option('workloads', { type: 'string', default: REMOTE_WORKLOADS.map((w) => w.name).join(','), describe: 'workloads' })
    .option('quick', { type: 'boolean', default: false, describe: 'one short round (a smoke test, not a measurement)' })
    .option('out', { type: 'string', describe: 'write the table (Markdown) and every round (JSON after it) to this file' })
    .strict()
    .fail((msg: string | undefined, err: Error | undefined) => {
      throw err ?? new Error(msg);
    })
    .help()
    .version(false);
}

/** Throws, naming the option, when one of `counts` is not a whole number ≥ 1 or the times are off. */
export function checkRemoteBenchArgs(a: RemoteBenchArgs, counts: readonly (readonly [string, number])[]): void {
  for (const [name, v] of [['rounds', a.rounds] as const, ['size-mib', a.sizeMib] as const, ...counts])
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} wants a whole number of 1 or more, got ${v}`);
  if (!(a.seconds > 0) || !(a.warmup >= 0)) throw new Error('--seconds wants a number above 0, --warmup one of 0 or more');
  parseWorkloadNames(a.workloads);
}

/** One round of one workload: each side's result, and which side went first. */
export interface SidesRound<S> {
  round: number;
  workload: string;
  first: string;
  sides: Record<string, S>;
}

/**
 * Every round of every workload, the sides run back to back in `order`,
 * reversed every other round (the later writer is the slower); `seed` is
 * distinct per round and workload.
 */
export async function alternateRounds<S>(
  args: Pick<RemoteBenchArgs, 'rounds' | 'workloads'>,
  order: readonly string[],
  run: (side: string, w: RemoteWorkload, seed: number) => Promise<S>,
  report: (r: SidesRound<S>, w: RemoteWorkload) => void,
): Promise<SidesRound<S>[]> {
  const out: SidesRound<S>[] = [];
  const workloads = parseWorkloadNames(args.workloads);
  for (let round = 1; round <= args.rounds; round++) {
    for (const w of workloads) {
      const sides = round % 2 === 1 ? [...order] : [...order].reverse();
      const r: SidesRound<S> = { round, workload: w.name, first: sides[0], sides: {} };
      for (const side of sides) r.sides[side] = await run(side, w, round * 100 + workloads.indexOf(w));
      out.push(r);
      report(r, w);
    }
  }
  return out;
}

export async function waitCarrier(ns: Netns, ifname: string): Promise<void> {
  const deadline = Date.now() + 10000;
  while (!/LOWER_UP/.test((await ns.ip(['-o', 'link', 'show', ifname])).stdout)) {
    if (Date.now() > deadline) throw new Error(`${ifname} in ${ns.name}: no carrier after 10 s`);
    await sleep(25);
  }
}

/** User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15, in 1/100 s). */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** bash's `times` at the end of its output: the CPU seconds (user + system) of the shell's children. */
export function childCpuSeconds(stdout: string): number {
  const t = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stdout);
  return t ? Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4]) : NaN;
}

export const SHELF = 7;
export const SLOT = 3;
const STARTUP = /^pid (\d+): e\d+\.\d+, \d+ sectors O_RDWR$/;

/** Our target (bin/vblade.js) serving `file` on `ifname` in `ns`; resolves with it and its pid once it serves. */
export async function startTarget(
  scope: TestLike,
  ns: Netns,
  ifname: string,
  file: string,
  options: readonly string[],
): Promise<{ target: Proc; pid: number }> {
  const target = new Proc(
    process.execPath,
    [join(ROOT, 'bin', 'vblade.js'), ...options, String(SHELF), String(SLOT), ifname, file],
    {
      netns: ns.name,
      label: 'ours',
      maxLines: 2000,
    },
  );
  scope.teardown(() => target.stop());
  try {
    const pid = Number((await target.waitFor(STARTUP, { stream: 'stdout', timeoutMs: 60000 }))[1]);
    return { target, pid };
  } catch (e) {
    await target.stop();
    throw new Error(`${(e as Error).message}\ntarget: ${target.tail(15)}`, { cause: e });
  }
}

/** aoe-loadgen in `ns` on `ifname` against our target, IN_FLIGHT requests at once, no data check. */
export async function runLoadgen(
  ns: Netns,
  ifname: string,
  w: RemoteWorkload,
  args: Pick<RemoteBenchArgs, 'seconds' | 'warmup'>,
  seed: number,
): Promise<LoadgenReport> {
  const r = await ns.exec(
    LOADGEN,
    ['--if', ifname, '--shelf', String(SHELF), '--slot', String(SLOT), '--op', w.op,
     '--pattern', w.pattern === 'rand' ? 'random' : 'seq', '--sectors', String(w.sectors),
     '--window', String(IN_FLIGHT), '--seconds', String(args.seconds), '--warmup', String(args.warmup),
     '--seed', String(seed), '--verify', 'none'], // prettier-ignore
    { timeoutMs: (args.seconds + args.warmup) * 1000 + 60000 },
  );
  return parseLoadgenOutput(r.stdout, r.stderr);
}

/**
 * A bench's main(): the options parsed, what is missing said (exit 2), the
 * bench run with everything it made torn down after, the table printed and
 * written with every round (JSON) to --out; exit 1 when our side had errors.
 */
export async function remoteBenchMain<A extends RemoteBenchArgs, R>(
  title: string,
  parse: (argv: string[]) => A,
  missing: () => string | undefined,
  bench: (scope: TestLike, args: A) => Promise<{ rounds: R[]; table: string }>,
  errorsOf: (r: R) => number,
): Promise<number> {
  const args = parse(process.argv.slice(2));
  const why = missing();
  if (why) {
    log(`cannot run: ${why}`);
    return 2;
  }
  const scope = new Scope();
  try {
    const started = new Date().toISOString();
    const { rounds, table } = await bench(scope, args);
    const head = `${title}, ${started}, ${describeMachine()}, load ${loadAverage()} at the end`;
    log(`\n${head}\n\n${table}`);
    if (args.out) {
      const json = JSON.stringify({ started, args, rounds }, null, 1);
      writeFileSync(args.out, `# ${head}\n\n${table}\n\n\`\`\`json\n${json}\n\`\`\`\n`);
      log(`written to ${args.out}`);
    }
    return rounds.reduce((n, r) => n + errorsOf(r), 0) > 0 ? 1 : 0;
  } finally {
    await scope.close();
  }
}

/** Runs main() when the module is the program, its error said on one line. */
export function runAsProgram(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => (process.exitCode = code),
    (e: Error) => {
      process.stderr.write(`${name}: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}
