// npm run bench:rbd: an rbd export against `rbd bench` on the same cluster.
//
// Starts a one-node Ceph (lab/ceph.ts: a mon and a memstore OSD in a network
// namespace of its own), makes an image and writes it whole once (so reads
// find objects, as on a used disk), then for each round and workload runs
// `rbd bench` (16 threads, our requests' size) and our target serving the image
// (file = rbd:POOL/IMAGE, in the cluster's namespace, its AoE interface one
// end of a veth pair) driven by aoe-loadgen at 16 in flight from a second
// namespace: 8-sector random reads and writes, 17-sector sequential ones.
// The order of the two sides alternates from round to round. Our target is
// started for each run and stopped after it, so that `rbd bench` can take
// the image's exclusive lock. After each of our runs, librbd's own latency
// per op inside the target is read from its admin socket.
//
// Prints the medians and the ratios to rbd bench (the goal: ≥ 80 %)
// and writes them (Markdown, then every round as JSON) to --out FILE; the
// checkout is left as it was. Everything made is removed at the end, also on
// Ctrl-C (lab/'s exit net); only processes it started are stopped, by pid.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { TestLike, sleep } from '../lab/common';
import { CephCluster, rbdBenchRun, startCeph } from '../lab/ceph';
import { Netns, createNetns, createVeth } from '../lab/netns';
import { Proc, which } from '../lab/process';
import { LOADGEN, parseLoadgenOutput } from './generators';
import { describeMachine, loadAverage } from './report';
import { ROOT } from './targets';
import { RBD_WORKLOADS, RbdRound, RbdSide, RbdWorkload, rbdTable, summarizeRbd } from './rbd-results';

const SHELF = 7;
const SLOT = 3;
const MiB = 1 << 20;
const THREADS = 16;

export interface RbdArgs {
  rounds: number;
  seconds: number;
  warmup: number;
  rbdOps: number;
  sizeMib: number;
  workloads: string;
  quick: boolean;
  out: string | undefined;
}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Teardown steps, run in reverse order: the bench's stand-in for a tap test. */
class Scope implements TestLike {
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

export function parseWorkloadNames(text: string): RbdWorkload[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((name) => {
      const w = RBD_WORKLOADS.find((x) => x.name === name);
      if (!w) throw new Error(`unknown workload "${name}": use ${RBD_WORKLOADS.map((x) => x.name).join(', ')}`);
      return w;
    });
}

export function parseRbdArgs(argv: string[]): RbdArgs {
  const a = yargs(argv)
    .scriptName('npm run bench:rbd --')
    .usage(
      '$0 [options]\n\nOur target serving an rbd image against `rbd bench` on the same one-node Ceph cluster, in private network namespaces (needs root and the Ceph packages of scripts/setup.sh).',
    )
    .option('rounds', {
      type: 'number',
      default: 6,
      describe: 'rounds; the table gives medians (even: each side goes first as often; the later writer is slower)',
    })
    .option('seconds', { type: 'number', default: 5, describe: 'measured seconds of each of our runs' })
    .option('warmup', { type: 'number', default: 1, describe: 'unmeasured seconds before each of our runs' })
    .option('rbd-ops', { type: 'number', default: 20000, describe: 'operations of each rbd bench run' })
    .option('size-mib', { type: 'number', default: 256, describe: 'size of the image (MiB)' })
    .option('workloads', { type: 'string', default: RBD_WORKLOADS.map((w) => w.name).join(','), describe: 'workloads' })
    .option('quick', { type: 'boolean', default: false, describe: 'one short round (a smoke test, not a measurement)' })
    .option('out', { type: 'string', describe: 'write the table (Markdown) and every round (JSON after it) to this file' })
    .strict()
    // Said by main() as an error, not by yargs with an exit (a test parses too).
    .fail((msg: string | undefined, err: Error | undefined) => {
      throw err ?? new Error(msg);
    })
    .help()
    .version(false)
    .parseSync() as unknown as RbdArgs;
  if (a.quick) {
    a.rounds = 1;
    a.seconds = 1;
    a.warmup = 0.5;
    a.rbdOps = 5000;
    a.sizeMib = 32;
  }
  for (const [name, v] of [
    ['rounds', a.rounds],
    ['rbd-ops', a.rbdOps],
    ['size-mib', a.sizeMib],
  ] as const)
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} wants a whole number of 1 or more, got ${v}`);
  if (!(a.seconds > 0) || !(a.warmup >= 0)) throw new Error('--seconds wants a number above 0, --warmup one of 0 or more');
  parseWorkloadNames(a.workloads);
  return a;
}

/** Why the bench cannot run here, or undefined. */
function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'the rbd bench needs root (network namespaces)';
  const cmds = ['ceph-mon', 'ceph-osd', 'ceph', 'rbd', 'ceph-authtool', 'monmaptool'].filter((c) => which(c) === undefined);
  if (cmds.length > 0) return `missing command(s): ${cmds.join(', ')} (run: sudo bash scripts/setup.sh)`;
  if (!existsSync(LOADGEN)) return `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``;
  return undefined;
}

interface Lab {
  cluster: CephCluster;
  spec: string;
  init: Netns;
  targetIf: string;
  initIf: string;
}

async function waitCarrier(ns: Netns, ifname: string): Promise<void> {
  const deadline = Date.now() + 10000;
  while (!/LOWER_UP/.test((await ns.ip(['-o', 'link', 'show', ifname])).stdout)) {
    if (Date.now() > deadline) throw new Error(`${ifname} in ${ns.name}: no carrier after 10 s`);
    await sleep(25);
  }
}

async function setUp(scope: TestLike, args: RbdArgs): Promise<Lab> {
  const t0 = Date.now();
  const cluster = await startCeph(scope, { label: 'rbdbench', storeBytes: Math.max(1024, args.sizeMib * 2) * MiB });
  const spec = await cluster.createImage('bench', args.sizeMib * MiB);
  // Every object written once: reads then find data, as on a disk in use.
  await cluster.rbd(['bench', '--io-type', 'write', '--io-pattern', 'seq', '--io-size', '4M', '--io-threads', '16', '--io-total', `${args.sizeMib}M`, spec], 300000); // prettier-ignore
  const init = await createNetns(scope, 'rbdinit');
  const veth = await createVeth(scope, cluster.ns, init, { mtu: 9000 });
  await waitCarrier(cluster.ns, veth.a.ifname);
  await waitCarrier(init, veth.b.ifname);
  log(`cluster up and image ${spec} (${args.sizeMib} MiB) written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { cluster, spec, init, targetIf: veth.a.ifname, initIf: veth.b.ifname };
}

const STARTUP = /^pid (\d+): e\d+\.\d+, \d+ sectors O_RDWR$/;

/** librbd's op counts and latency sums of the image our target has open (admin socket perf dump). */
async function librbdCounters(lab: Lab, pid: number): Promise<{ count: number; sum: number }[]> {
  const asok = join(lab.cluster.dir, 'run', `client.admin.${pid}.asok`);
  const r = await lab.cluster.ns.exec('ceph', ['--admin-daemon', asok, 'perf', 'dump']);
  type Lat = { avgcount: number; sum: number };
  const perf = JSON.parse(r.stdout) as Record<string, { rd_latency?: Lat; wr_latency?: Lat }>;
  const key = Object.keys(perf).find((k) => k.startsWith('librbd-'));
  if (!key) throw new Error(`no librbd image in the target's perf dump (${asok})`);
  const p = perf[key];
  return [p.rd_latency, p.wr_latency].map((l) => ({ count: l?.avgcount ?? 0, sum: l?.sum ?? 0 }));
}

/** User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15, in 1/100 s). */
function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Our target serving the image, aoe-loadgen driving it; the target is stopped after. */
async function runOurs(scope: TestLike, lab: Lab, w: RbdWorkload, args: RbdArgs, seed: number): Promise<RbdSide> {
  const vblade = [join(ROOT, 'bin', 'vblade.js'), '--ceph-conf', lab.cluster.conf];
  const target = new Proc(process.execPath, [...vblade, String(SHELF), String(SLOT), lab.targetIf, `rbd:${lab.spec}`], {
    netns: lab.cluster.ns.name,
    label: 'ours',
    maxLines: 2000,
  });
  scope.teardown(() => target.stop());
  try {
    const pid = Number((await target.waitFor(STARTUP, { stream: 'stdout', timeoutMs: 60000 }))[1]);
    const before = await librbdCounters(lab, pid);
    const cpu0 = [cpuSecondsOf(pid), cpuSecondsOf(lab.cluster.osd.pid)];
    const r = await lab.init.exec(
      LOADGEN,
      ['--if', lab.initIf, '--shelf', String(SHELF), '--slot', String(SLOT), '--op', w.op,
       '--pattern', w.pattern === 'rand' ? 'random' : 'seq', '--sectors', String(w.sectors),
       '--window', String(THREADS), '--seconds', String(args.seconds), '--warmup', String(args.warmup),
       '--seed', String(seed), '--verify', 'none'], // prettier-ignore
      { timeoutMs: (args.seconds + args.warmup) * 1000 + 60000 },
    );
    const cpu1 = [cpuSecondsOf(pid), cpuSecondsOf(lab.cluster.osd.pid)];
    const after = await librbdCounters(lab, pid);
    const report = parseLoadgenOutput(r.stdout, r.stderr);
    const i = w.op === 'read' ? 0 : 1;
    const ops = after[i].count - before[i].count;
    return {
      iops: report.iops,
      bytesPerSecond: report.iops * w.sectors * 512,
      meanUs: report.mean_us,
      // Over the warm-up too; the same requests at the same depth.
      librbdUs: ops > 0 ? ((after[i].sum - before[i].sum) / ops) * 1e6 : NaN,
      // These three over the warm-up too, per op librbd counted.
      clientCpuUs: ((cpu1[0] - cpu0[0]) / ops) * 1e6,
      loadgenCpuUs: ((report.cpu_user_s + report.cpu_sys_s) / ops) * 1e6,
      osdCpuUs: ((cpu1[1] - cpu0[1]) / ops) * 1e6,
      errors: report.errors,
      retransmits: report.retransmits,
    };
  } catch (e) {
    throw new Error(`${(e as Error).message}\ntarget: ${target.tail(15)}`, { cause: e });
  } finally {
    await target.stop();
  }
}

/** rbd bench with librbd's cache off (as our target opens images) or on (Ceph's default). */
async function runRbd(lab: Lab, w: RbdWorkload, args: RbdArgs, cache: boolean): Promise<RbdSide> {
  const osd0 = cpuSecondsOf(lab.cluster.osd.pid);
  const r = await rbdBenchRun(lab.cluster, lab.spec, {
    type: w.op,
    pattern: w.pattern,
    // The bytes of our requests (8 sectors: 4 KiB; 17: 8,704 bytes), so that sequential throughput compares like for like.
    ioSize: w.sectors * 512,
    threads: THREADS,
    ops: args.rbdOps,
    cache,
  });
  const osd1 = cpuSecondsOf(lab.cluster.osd.pid);
  return {
    iops: r.iops,
    bytesPerSecond: r.bytesPerSecond,
    meanUs: (THREADS / r.iops) * 1e6,
    librbdUs: NaN,
    clientCpuUs: (r.cpuSeconds / r.ops) * 1e6,
    loadgenCpuUs: NaN,
    osdCpuUs: ((osd1 - osd0) / r.ops) * 1e6,
    errors: 0,
    retransmits: 0,
  };
}

async function measure(scope: TestLike, lab: Lab, args: RbdArgs): Promise<RbdRound[]> {
  const rounds: RbdRound[] = [];
  const workloads = parseWorkloadNames(args.workloads);
  for (let round = 1; round <= args.rounds; round++) {
    for (const w of workloads) {
      const first = round % 2 === 1 ? 'rbd' : 'ours';
      const sides = { rbd: undefined, rbdCached: undefined, ours: undefined } as Record<string, RbdSide | undefined>;
      for (const side of first === 'rbd' ? ['rbd', 'rbdCached', 'ours'] : ['ours', 'rbdCached', 'rbd']) {
        if (side === 'ours') sides.ours = await runOurs(scope, lab, w, args, round * 100 + workloads.indexOf(w));
        else sides[side] = await runRbd(lab, w, args, side === 'rbdCached');
      }
      const entry: RbdRound = { round, workload: w.name, first, rbd: sides.rbd!, rbdCached: sides.rbdCached!, ours: sides.ours! };
      rounds.push(entry);
      const v = (s: RbdSide) =>
        w.measure === 'iops' ? `${s.iops.toFixed(0)} IOPS` : `${(s.bytesPerSecond / MiB).toFixed(1)} MiB/s`;
      log(
        `round ${round} ${w.name}: rbd bench ${v(entry.rbd)} (cache on: ${v(entry.rbdCached)}), ours ${v(entry.ours)} ` +
          `(mean ${entry.ours.meanUs.toFixed(0)} µs, librbd ${entry.ours.librbdUs.toFixed(0)} µs; load ${loadAverage()})`,
      );
    }
  }
  return rounds;
}

/** The cluster, the rounds and the table; everything made is torn down with `t`. */
export async function runRbdBench(t: TestLike, args: RbdArgs): Promise<{ rounds: RbdRound[]; table: string }> {
  const lab = await setUp(t, args);
  const rounds = await measure(t, lab, args);
  return { rounds, table: rbdTable(summarizeRbd(rounds), args.rounds) };
}

async function main(): Promise<number> {
  const args = parseRbdArgs(process.argv.slice(2));
  const why = missing();
  if (why) {
    log(`cannot run: ${why}`);
    return 2;
  }
  const scope = new Scope();
  try {
    const started = new Date().toISOString();
    const { rounds, table } = await runRbdBench(scope, args);
    const head = `rbd bench, ${started}, ${describeMachine()}, load ${loadAverage()} at the end`;
    log(`\n${head}\n\n${table}`);
    if (args.out) {
      const json = JSON.stringify({ started, args, rounds }, null, 1);
      writeFileSync(args.out, `# ${head}\n\n${table}\n\n\`\`\`json\n${json}\n\`\`\`\n`);
      log(`written to ${args.out}`);
    }
    const errors = rounds.reduce((n, r) => n + r.ours.errors, 0);
    return errors > 0 ? 1 : 0;
  } finally {
    await scope.close();
  }
}

if (require.main === module) {
  main().then(
    (code) => (process.exitCode = code),
    (e: Error) => {
      process.stderr.write(`bench:rbd: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}
