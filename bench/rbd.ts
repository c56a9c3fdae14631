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

import { join } from 'node:path';
import { TestLike } from '../lab/common';
import { CephCluster, rbdBenchRun, startCeph } from '../lab/ceph';
import { Netns, createNetns, createVeth } from '../lab/netns';
import { loadAverage } from './report';
import { RbdRound, RbdSide, RbdWorkload, rbdTable, summarizeRbd } from './rbd-results';
import {
  IN_FLIGHT,
  MiB,
  RemoteBenchArgs,
  alternateRounds,
  checkRemoteBenchArgs,
  cpuSecondsOf,
  log,
  missingFor,
  remoteBenchMain,
  remoteBenchParser,
  runAsProgram,
  runLoadgen,
  startTarget,
  waitCarrier,
} from './remote-bench';

export { parseWorkloadNames } from './remote-bench';

const THREADS = IN_FLIGHT;

export interface RbdArgs extends RemoteBenchArgs {
  rbdOps: number;
}

export function parseRbdArgs(argv: string[]): RbdArgs {
  const a = remoteBenchParser(
    argv,
    'bench:rbd',
    'Our target serving an rbd image against `rbd bench` on the same one-node Ceph cluster, in private network namespaces (needs root and the Ceph packages of scripts/setup.sh).',
    { sizeMib: 256 },
  )
    .option('rbd-ops', { type: 'number', default: 20000, describe: 'operations of each rbd bench run' })
    .parseSync() as unknown as RbdArgs;
  if (a.quick) {
    a.rounds = 1;
    a.seconds = 1;
    a.warmup = 0.5;
    a.rbdOps = 5000;
    a.sizeMib = 32;
  }
  checkRemoteBenchArgs(a, [['rbd-ops', a.rbdOps]]);
  return a;
}

/** Why the bench cannot run here, or undefined. */
/** What the rbd bench runs: a cluster of its own, and rbd bench beside ours. */
const RBD_COMMANDS = ['ceph-mon', 'ceph-osd', 'ceph', 'rbd', 'ceph-authtool', 'monmaptool'];

interface Lab {
  cluster: CephCluster;
  spec: string;
  init: Netns;
  targetIf: string;
  initIf: string;
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

/** Our target serving the image, aoe-loadgen driving it; the target is stopped after. */
async function runOurs(scope: TestLike, lab: Lab, w: RbdWorkload, args: RbdArgs, seed: number): Promise<RbdSide> {
  const { target, pid } = await startTarget(scope, lab.cluster.ns, lab.targetIf, `rbd:${lab.spec}`, [
    '--ceph-conf',
    lab.cluster.conf,
  ]);
  try {
    const before = await librbdCounters(lab, pid);
    const cpu0 = [cpuSecondsOf(pid), cpuSecondsOf(lab.cluster.osd.pid)];
    const report = await runLoadgen(lab.init, lab.initIf, w, args, seed);
    const cpu1 = [cpuSecondsOf(pid), cpuSecondsOf(lab.cluster.osd.pid)];
    const after = await librbdCounters(lab, pid);
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
  const rounds = await alternateRounds<RbdSide>(
    args,
    ['rbd', 'rbdCached', 'ours'],
    (side, w, seed) => (side === 'ours' ? runOurs(scope, lab, w, args, seed) : runRbd(lab, w, args, side === 'rbdCached')),
    ({ round, sides }, w) => {
      const v = (s: RbdSide) =>
        w.measure === 'iops' ? `${s.iops.toFixed(0)} IOPS` : `${(s.bytesPerSecond / MiB).toFixed(1)} MiB/s`;
      log(
        `round ${round} ${w.name}: rbd bench ${v(sides.rbd)} (cache on: ${v(sides.rbdCached)}), ours ${v(sides.ours)} ` +
          `(mean ${sides.ours.meanUs.toFixed(0)} µs, librbd ${sides.ours.librbdUs.toFixed(0)} µs; load ${loadAverage()})`,
      );
    },
  );
  return rounds.map(({ round, workload, first, sides }) => ({
    round,
    workload,
    first: first as RbdRound['first'],
    rbd: sides.rbd,
    rbdCached: sides.rbdCached,
    ours: sides.ours,
  }));
}

/** The cluster, the rounds and the table; everything made is torn down with `t`. */
export async function runRbdBench(t: TestLike, args: RbdArgs): Promise<{ rounds: RbdRound[]; table: string }> {
  const lab = await setUp(t, args);
  const rounds = await measure(t, lab, args);
  return { rounds, table: rbdTable(summarizeRbd(rounds), args.rounds) };
}

if (require.main === module)
  runAsProgram('bench:rbd', () =>
    remoteBenchMain(
      'rbd bench',
      parseRbdArgs,
      () => missingFor('rbd bench', RBD_COMMANDS),
      runRbdBench,
      (r) => r.ours.errors,
    ),
  );
