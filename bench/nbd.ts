// npm run bench:nbd: an nbd export against fio's nbd engine on the same nbdkit.
//
// Starts nbdkit (the memory plugin, or the file plugin on a file in
// /dev/shm) on a unix socket in a private directory and writes the export
// whole once (reads then find data), makes two network namespaces joined by
// a veth pair (MTU 9000), then for each round and workload runs fio's nbd
// engine (libnbd, as our target uses it) and our target serving the export
// (file = nbd+unix:///?socket=PATH, its AoE interface one end of the pair)
// driven by aoe-loadgen from the other namespace: 8-sector random reads and
// writes at 16 in flight, 17-sector sequential ones. Both sides use the same
// number of connections to the server: fio one job per connection, 16 / N
// deep each; ours nbd-connections = N, which it keeps since nbdkit's plugins
// here allow multi-conn. The order of the two sides alternates from round to
// round; our target is started for each run and stopped after it.
//
// Prints the medians with their spreads and the ratios to fio (the goal:
// ≥ 80 %) and writes them (Markdown, then every round as JSON) to --out
// FILE; the checkout is left as it was. Everything made is removed at the
// end, also on Ctrl-C (lab/'s exit net); only processes it started are
// stopped, by pid.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TestLike, sleep, tempDir } from '../lab/common';
import { Netns, createNetns, createVeth } from '../lab/netns';
import { Proc } from '../lab/process';
import { NbdRound, NbdSide, nbdTable, summarizeNbd } from './nbd-results';
import { loadAverage } from './report';
import {
  IN_FLIGHT,
  MiB,
  RemoteBenchArgs,
  RemoteWorkload,
  alternateRounds,
  checkRemoteBenchArgs,
  childCpuSeconds,
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

/** nbd-connections' default (src/remote/remote-uri.ts, which bench/ may not import; the smoke test checks they agree). */
export const DEFAULT_CONNECTIONS = 4;

export const NBD_PLUGINS = ['memory', 'file'] as const;

export interface NbdArgs extends RemoteBenchArgs {
  connections: number;
  plugin: (typeof NBD_PLUGINS)[number];
}

export function parseNbdArgs(argv: string[]): NbdArgs {
  const a = remoteBenchParser(
    argv,
    'bench:nbd',
    "Our target serving an nbd export against fio's nbd engine on the same nbdkit, in private network namespaces (needs root, nbdkit, fio and libnbd: scripts/setup.sh).",
    { sizeMib: 256 },
  )
    .option('connections', {
      type: 'number',
      default: DEFAULT_CONNECTIONS,
      describe: "connections to nbdkit on each side (fio: that many jobs); divides 16 (our target's default: 4)",
    })
    .option('plugin', {
      type: 'string',
      choices: NBD_PLUGINS,
      default: 'memory',
      describe: "nbdkit's plugin: memory, or file (a file in /dev/shm)",
    })
    .parseSync() as unknown as NbdArgs;
  if (a.quick) {
    a.rounds = 1;
    a.seconds = 1;
    a.warmup = 0.5;
    a.sizeMib = 32;
  }
  checkRemoteBenchArgs(a, [['connections', a.connections]]);
  if (IN_FLIGHT % a.connections !== 0)
    throw new Error(
      `--connections wants 1, 2, 4, 8 or 16 (a divisor of ${IN_FLIGHT}, the requests in flight), got ${a.connections}`,
    );
  return a;
}

/** Why the bench cannot run here, or undefined. */
interface Lab {
  /** Private: nbdkit's socket, fio's reports. */
  dir: string;
  nbdkit: Proc;
  uri: string;
  target: Netns;
  init: Netns;
  targetIf: string;
  initIf: string;
  bytes: number;
}

async function startNbdkit(scope: TestLike, ns: Netns, dir: string, args: NbdArgs): Promise<{ nbdkit: Proc; uri: string }> {
  const socket = join(dir, 'nbd.sock');
  let plugin = ['memory', `size=${args.sizeMib}M`];
  if (args.plugin === 'file') {
    // tmpfs: the file plugin's syscalls without a disk's latency.
    const dir = mkdtempSync('/dev/shm/aoet-nbdbench-');
    scope.teardown(() => rmSync(dir, { recursive: true, force: true }));
    plugin = ['file', join(dir, 'disk'), `size=${args.sizeMib}M`];
  }
  const nbdkit = new Proc('nbdkit', ['--foreground', '--exit-with-parent', '--unix', socket, ...plugin], {
    netns: ns.name,
    label: 'nbdkit',
  });
  scope.teardown(() => nbdkit.stop());
  const deadline = Date.now() + 15000;
  while (!existsSync(socket)) {
    if (!nbdkit.running || Date.now() > deadline) throw new Error(`nbdkit did not listen on ${socket}: ${nbdkit.tail(10)}`);
    await sleep(20);
  }
  return { nbdkit, uri: `nbd+unix:///?socket=${socket}` };
}

/** fio's own options for a workload: the same requests in flight over `connections` jobs. */
function fioOptions(lab: Lab, w: RemoteWorkload | { op: 'write'; pattern: 'seq'; sectors: number }, jobs: number): string[] {
  const rw = (w.pattern === 'rand' ? 'rand' : '') + w.op;
  // Sequential: each job its own slice, as our sequential requests go round the connections over one stream.
  const slice =
    w.pattern === 'seq' ? [`--size=${lab.bytes / jobs}`, `--offset_increment=${lab.bytes / jobs}`] : [`--size=${lab.bytes}`];
  return ['--name=nbdbench', '--ioengine=nbd', `--uri=${lab.uri}`, `--rw=${rw}`, `--bs=${w.sectors * 512}`,
    `--numjobs=${jobs}`, `--iodepth=${IN_FLIGHT / jobs}`, '--thread', '--group_reporting', '--randrepeat=0', ...slice]; // prettier-ignore
}

interface FioJob {
  error: number;
  read: { iops: number; bw_bytes: number; lat_ns: { mean: number } };
  write: { iops: number; bw_bytes: number; lat_ns: { mean: number } };
}

/** fio in `ns` (through bash for its `times`), its one group's result and the CPU it used. */
async function fio(ns: Netns, dir: string, options: string[], timeoutMs: number): Promise<{ job: FioJob; cpuSeconds: number }> {
  const out = join(dir, 'fio.json');
  try {
    const r = await ns.exec(
      'bash',
      ['-c', 'fio "$@" >/dev/null && times', 'fio', ...options, '--output-format=json', `--output=${out}`],
      {
        timeoutMs,
      },
    );
    // The nbd engine prints "fio: connected to NBD server" into the output file first.
    const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
    const json = text.slice(text.indexOf('{'));
    let job: FioJob | undefined;
    try {
      job = (JSON.parse(json) as { jobs: FioJob[] }).jobs[0];
    } catch {
      // said below
    }
    if (job === undefined || r.code !== 0)
      throw new Error(`fio failed (exit ${r.code}): ${r.stderr.trim() || text.slice(0, 400)}`);
    return { job, cpuSeconds: childCpuSeconds(r.stdout) };
  } finally {
    rmSync(out, { force: true });
  }
}

async function setUp(scope: TestLike, args: NbdArgs): Promise<Lab> {
  const target = await createNetns(scope, 'nbdtgt');
  const init = await createNetns(scope, 'nbdinit');
  const veth = await createVeth(scope, target, init, { mtu: 9000 });
  await waitCarrier(target, veth.a.ifname);
  await waitCarrier(init, veth.b.ifname);
  const dir = tempDir(scope, 'nbdbench');
  const { nbdkit, uri } = await startNbdkit(scope, target, dir, args);
  const lab: Lab = { dir, nbdkit, uri, target, init, targetIf: veth.a.ifname, initIf: veth.b.ifname, bytes: args.sizeMib * MiB };
  // Every byte written once: reads then find data, as on a disk in use.
  const fill = fioOptions(lab, { op: 'write', pattern: 'seq', sectors: 2048 }, 1);
  await fio(target, dir, fill, 300000);
  log(`nbdkit (${args.plugin}, ${args.sizeMib} MiB) up and written; ${args.connections} connection(s) each side`);
  return lab;
}

/** Requests over the run, the warm-up included (what the CPU figures cover): rate × time. */
function opsOver(iops: number, args: NbdArgs): number {
  return iops * (args.seconds + args.warmup);
}

async function runFio(lab: Lab, w: RemoteWorkload, args: NbdArgs): Promise<NbdSide> {
  const ms = (s: number) => `${Math.round(s * 1000)}ms`;
  const timing = ['--time_based', `--runtime=${ms(args.seconds)}`, `--ramp_time=${ms(args.warmup)}`];
  const server0 = cpuSecondsOf(lab.nbdkit.pid);
  const { job, cpuSeconds } = await fio(lab.target, lab.dir, [...fioOptions(lab, w, args.connections), ...timing], (args.seconds + args.warmup) * 1000 + 60000); // prettier-ignore
  const server1 = cpuSecondsOf(lab.nbdkit.pid);
  const side = w.op === 'read' ? job.read : job.write;
  const ops = opsOver(side.iops, args);
  return {
    iops: side.iops,
    bytesPerSecond: side.bw_bytes,
    meanUs: side.lat_ns.mean / 1000,
    clientCpuUs: (cpuSeconds / ops) * 1e6,
    loadgenCpuUs: NaN,
    serverCpuUs: ((server1 - server0) / ops) * 1e6,
    errors: job.error,
    retransmits: 0,
  };
}

/** Our target serving the export, aoe-loadgen driving it; the target is stopped after. */
async function runOurs(scope: TestLike, lab: Lab, w: RemoteWorkload, args: NbdArgs, seed: number): Promise<NbdSide> {
  const { target, pid } = await startTarget(scope, lab.target, lab.targetIf, lab.uri, ['--nbd-connections', String(args.connections)]); // prettier-ignore
  try {
    const cpu0 = [cpuSecondsOf(pid), cpuSecondsOf(lab.nbdkit.pid)];
    const report = await runLoadgen(lab.init, lab.initIf, w, args, seed);
    const cpu1 = [cpuSecondsOf(pid), cpuSecondsOf(lab.nbdkit.pid)];
    const ops = opsOver(report.iops, args);
    return {
      iops: report.iops,
      bytesPerSecond: report.iops * w.sectors * 512,
      meanUs: report.mean_us,
      clientCpuUs: ((cpu1[0] - cpu0[0]) / ops) * 1e6,
      loadgenCpuUs: ((report.cpu_user_s + report.cpu_sys_s) / ops) * 1e6,
      serverCpuUs: ((cpu1[1] - cpu0[1]) / ops) * 1e6,
      errors: report.errors,
      retransmits: report.retransmits,
    };
  } catch (e) {
    throw new Error(`${(e as Error).message}\ntarget: ${target.tail(15)}`, { cause: e });
  } finally {
    await target.stop();
  }
}

/** nbdkit, the namespaces, the rounds and the table; everything made is torn down with `t`. */
export async function runNbdBench(t: TestLike, args: NbdArgs): Promise<{ rounds: NbdRound[]; table: string }> {
  const lab = await setUp(t, args);
  const rounds = await alternateRounds<NbdSide>(
    args,
    ['fio', 'ours'],
    (side, w, seed) => (side === 'ours' ? runOurs(t, lab, w, args, seed) : runFio(lab, w, args)),
    ({ round, sides }, w) => {
      const v = (s: NbdSide) =>
        w.measure === 'iops' ? `${s.iops.toFixed(0)} IOPS` : `${(s.bytesPerSecond / MiB).toFixed(1)} MiB/s`;
      log(
        `round ${round} ${w.name}: fio ${v(sides.fio)} (mean ${sides.fio.meanUs.toFixed(0)} µs), ours ${v(sides.ours)} ` +
          `(mean ${sides.ours.meanUs.toFixed(0)} µs; load ${loadAverage()})`,
      );
    },
  );
  const out = rounds.map(({ round, workload, first, sides }) => ({
    round,
    workload,
    first: first as NbdRound['first'],
    fio: sides.fio,
    ours: sides.ours,
  }));
  return { rounds: out, table: nbdTable(summarizeNbd(out), args.rounds, args.connections) };
}

if (require.main === module)
  runAsProgram('bench:nbd', () =>
    remoteBenchMain(
      'nbd bench',
      parseNbdArgs,
      () => missingFor('nbd bench', ['nbdkit', 'fio']),
      runNbdBench,
      (r) => r.ours.errors + r.fio.errors,
    ),
  );
