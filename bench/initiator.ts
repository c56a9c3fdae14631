// npm run bench:initiator: the Linux aoe driver, in the QEMU guest of the
// interop suite, against our target and Debian's vblade.
//
// For each MTU: one bridge with one namespace per target (lab/topology.ts),
// each target serving its own pre-faulted tmpfs file as e<n>.1 (ours e1.1,
// vblade e2.1, ...), started once for the whole MTU; one guest boot, in
// which lab/guest-scripts/bench.sh runs every workload (GNU dd and fio, all
// O_DIRECT) against the targets in turn, round after round. The host reads
// the guest's result lines, prints the medians, spreads and ratios to vblade
// and writes them into docs/benchmarks.md. Everything it started is stopped
// by pid, its namespaces and files are deleted, also on Ctrl-C.

import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { ExitOrder, onProcessExit, sleep } from '../lab/common';
import { removeStaleNetns } from '../lab/netns';
import { Proc, describeExit } from '../lab/process';
import { buildGuest, type GuestImage, interopDisabled, kernelAppend } from '../lab/guest';
import { TARGET_IF, Topology } from '../lab/topology';
import { BENCH_PACKAGES, INTEROP_PACKAGES, ensureInteropPackages } from '../lab/packages';
import { ensureDebianVblade } from '../lab/peers';
import { chooseAccel, Qemu, type GuestLine, parseGuestLine } from '../lab/qemu';
import { GUEST_WORKLOADS, type GuestWorkload, parseBenchFields } from './initiator-results';
import {
  type InitiatorSample,
  initiatorMarkdownTable,
  initiatorTextTable,
  summarizeInitiator,
  writeInitiatorSection,
} from './initiator-report';
import { describeMachine, loadAverage } from './report';
import { type TargetSpec, pickTargets } from './targets';

const MIB = 2 ** 20;
const SLOT = 1;

/** What the guest needs beyond the interop guest: fio (libaio) and GNU dd, whose summary times the copy. */
const BENCH_GUEST = {
  name: 'bench',
  programs: [
    { from: '/usr/bin/fio', to: '/opt/host/fio' },
    { from: '/usr/bin/dd', to: '/opt/host/dd' },
  ],
};

interface Args {
  targets: string;
  custom: string[];
  rounds: number;
  mtu: number[];
  mib: number | undefined;
  fioSeconds: number;
  iodepth: number;
  only: string[];
  memMib: number;
  keepLogs: boolean;
  writeDoc: boolean;
  doc: string;
}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * dd MiB per run when --mib is not given: about 1–3 s of copying each (a
 * 64 MiB copy at MTU 9000 lasts only about 0.6 s); MTU 1500 moves 8.5 times
 * as many frames per MiB, each costly under TCG.
 */
function defaultMib(mtu: number): number {
  return mtu < 9000 ? 32 : 128;
}

function parseArgs(argv: string[]): Args {
  const a = yargs(argv)
    .scriptName('npm run bench:initiator --')
    .usage(
      "$0 [options]\n\nBoots a QEMU guest with Debian's aoe driver on a bridge in private network namespaces and runs dd and fio (O_DIRECT) against our target and vblade in turn, once per MTU; prints medians, spreads and the ratios to vblade (needs root).",
    )
    .option('targets', {
      type: 'string',
      default: 'ours,vblade',
      describe: 'targets to compare, in order (ours, vblade, ours-null, or names given with --custom); missing ones are skipped',
    })
    .option('custom', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'extra target NAME=COMMAND with {shelf} {slot} {if} {file} {sectors}',
    })
    .option('rounds', { type: 'number', default: 5, describe: 'runs of each workload per target, alternating targets' })
    .option('mtu', { type: 'number', array: true, default: [9000, 1500], describe: 'MTUs to run at (one guest boot each)' })
    .option('mib', {
      type: 'number',
      describe: 'MiB per dd run, and the region fio works in (default: 128 at MTU 9000, 32 below)',
    })
    .option('fio-seconds', { type: 'number', default: 5, describe: 'measured seconds per fio job (after 1 s of ramp)' })
    .option('iodepth', { type: 'number', default: 16, describe: 'fio requests in flight (libaio)' })
    .option('only', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: `run only these workloads (${GUEST_WORKLOADS.join(', ')})`,
    })
    .option('mem-mib', { type: 'number', default: 768, describe: 'guest memory (its initramfs holds fio and its libraries)' })
    .option('keep-logs', {
      type: 'boolean',
      default: false,
      describe: "keep the guest's serial logs and the targets' output (kept anyway when something failed)",
    })
    .option('write-doc', {
      type: 'boolean',
      default: true,
      describe: 'write the table into docs/benchmarks.md (--no-write-doc to skip)',
    })
    .option('doc', {
      type: 'string',
      default: join(__dirname, '..', '..', 'docs', 'benchmarks.md'),
      describe: 'where the table goes',
    })
    .strict()
    .help()
    .version(false)
    .parseSync() as unknown as Args;
  for (const w of a.only) {
    if (!(GUEST_WORKLOADS as readonly string[]).includes(w))
      throw new Error(`--only: unknown workload "${w}"; the workloads are ${GUEST_WORKLOADS.join(', ')}`);
  }
  if (!(a.rounds >= 1)) throw new Error('--rounds must be 1 or more');
  return a;
}

/** A file of `mib` MiB of zeros on tmpfs, every page written (pre-faulted: no target pays for allocation). */
function makeBackingFile(path: string, mib: number): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    const chunk = Buffer.alloc(MIB);
    for (let i = 0; i < mib; i++) writeSync(fd, chunk, 0, MIB, i * MIB);
  } finally {
    closeSync(fd);
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(0)} s`;
}

/** One target of one MTU's run: what serves e<shelf>.1. */
interface Served {
  spec: TargetSpec;
  dev: string;
  file: string;
  proc: Proc;
}

class InitiatorBench {
  /** Serial logs and the targets' output; removed after a clean run unless --keep-logs. */
  readonly dir = mkdtempSync(join(os.tmpdir(), 'aoe-bench-initiator-'));
  private failed = false;

  /** One guest boot against all targets at `mtu`; returns the samples of every round. */
  async runMtu(mtu: number, specs: TargetSpec[], guest: GuestImage, args: Args): Promise<InitiatorSample[]> {
    const mib = args.mib ?? defaultMib(mtu);
    const work = GUEST_WORKLOADS.filter((w) => args.only.length === 0 || args.only.includes(w));
    const topo = await Topology.create({ mtu, targets: specs.length });
    const served: Served[] = [];
    const files: string[] = [];
    const dropFiles = (): void => {
      for (const f of files) rmSync(f, { force: true });
    };
    const unregister = onProcessExit(ExitOrder.Files, dropFiles);
    try {
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i];
        const shelf = i + 1;
        const file = `/dev/shm/aoe-bench-initiator-${process.pid}-${mtu}-${spec.name}.img`;
        files.push(file);
        makeBackingFile(file, mib);
        const argv = spec.command({ shelf, slot: SLOT, ifname: TARGET_IF, file, sync: false, sectors: (mib * MIB) / 512 });
        const proc = new Proc(argv[0], argv.slice(1), {
          netns: topo.targetNs[i],
          label: spec.name,
          logFile: join(this.dir, `target-${mtu}-${spec.name}.log`),
        });
        served.push({ spec, dev: `e${shelf}.${SLOT}`, file, proc });
      }
      await sleep(1000);
      for (const s of served) {
        if (!s.proc.running) {
          const how = s.proc.exitStatus ? describeExit(s.proc.exitStatus) : 'exited';
          throw new Error(`${s.spec.name} stopped at start (${how}): ${s.proc.command}\n${s.proc.tail(20)}`);
        }
      }
      return await this.boot(mtu, mib, work, served, topo, guest, args);
    } finally {
      for (const s of served) await s.proc.stop(3000);
      await topo.destroy();
      dropFiles();
      unregister();
    }
  }

  private async boot(
    mtu: number,
    mib: number,
    work: GuestWorkload[],
    served: Served[],
    topo: Topology,
    guest: GuestImage,
    args: Args,
  ): Promise<InitiatorSample[]> {
    const byDev = new Map(served.map((s) => [s.dev, s.spec.name]));
    // Generous: TCG on a shared machine; the guest's own watchdog catches a stalled step sooner.
    const perRound = work.length * served.length * (60 + args.fioSeconds * 3 + mib * 2);
    const timeoutMs = (600 + args.rounds * perRound) * 1000;
    const logFile = join(this.dir, `serial-${mtu}.log`);
    const t0 = Date.now();
    const show = (l: GuestLine): void => {
      const at = `[MTU ${mtu}, ${seconds(Date.now() - t0)}]`;
      if (l.tag === 'discover') log(`${at} guest found ${l.fields.dev} (${byDev.get(l.fields.dev)})`);
      else if (l.tag === 'frames') log(`${at} driver data frames: ${l.fields.bytes} bytes`);
      else if (l.tag === 'warmup') log(`${at} warm-up against ${byDev.get(l.fields.dev)} done`);
      else if (l.tag === 'watchdog' && l.fields.step?.startsWith('discover-')) {
        const dev = l.fields.step.slice('discover-'.length);
        log(`${at} the guest's driver never found ${dev} (${byDev.get(dev)}) within 60 s: is that target serving? (${l.raw})`);
      } else if (l.tag === 'fail' || l.tag === 'watchdog') log(`${at} GUEST: ${l.raw}`);
      else if (l.tag === 'bench') {
        try {
          const m = parseBenchFields(l.fields);
          const extra =
            m.iops !== undefined ? `, ${Math.round(m.iops).toLocaleString('en-US')} IOPS, clat p50 ${m.clatP50Us} µs` : '';
          log(`${at} round ${m.round}/${args.rounds} ${m.workload} ${byDev.get(m.dev)}: ${m.mibps.toFixed(1)} MiB/s${extra}`);
        } catch (e) {
          log(`${at} unreadable result line (${(e as Error).message}): ${l.raw}`);
        }
      }
    };
    const q = new Qemu({
      ns: topo.guestNs,
      name: `aoe-bench-initiator-${mtu}`,
      logFile,
      kernel: guest.kernel,
      initrd: guest.initrd,
      memMiB: args.memMib,
      append: kernelAppend({
        scenario: 'bench',
        mtu,
        devs: served.map((s) => s.dev).join(','),
        rounds: args.rounds,
        ddmib: mib,
        fiomib: mib,
        fiosec: args.fioSeconds,
        iodepth: args.iodepth,
        work: work.join(','),
      }),
      timeoutMs,
      // progress as the lines arrive (Qemu parses them again into q.results)
      onLine: (line) => {
        const l = parseGuestLine(line);
        if (l) show(l);
      },
    });
    const exit = await q.done;
    log(`[MTU ${mtu}] the guest ran ${seconds(exit.ms)}`);

    const samples: InitiatorSample[] = [];
    for (const l of q.lines('bench')) {
      try {
        const m = parseBenchFields(l.fields);
        const target = byDev.get(m.dev);
        if (target !== undefined) samples.push({ ...m, mtu, target });
      } catch {
        // reported as it arrived
      }
    }
    const done = q.first('done').status;
    const dead = served.filter((s) => !s.proc.running);
    if (exit.timedOut || done !== 'ok' || dead.length > 0) {
      this.failed = true;
      const why = exit.timedOut
        ? `the guest did not finish within ${seconds(timeoutMs)}`
        : done !== 'ok'
          ? `the guest ended with status ${done ?? 'none (it stopped before its last line)'}`
          : `${dead.map((s) => s.spec.name).join(', ')} exited during the run`;
      log(`[MTU ${mtu}] ${why}; the serial log and the targets' output are in ${this.dir} (kept)`);
      for (const s of dead) log(`  ${s.spec.name}: ${s.proc.tail(10)}`);
    }
    return samples;
  }

  async run(args: Args): Promise<void> {
    const off = interopDisabled();
    if (off) throw new Error(`cannot run the guest here: ${off}`);
    const specs = pickTargets(args.targets, args.custom, 'ours, vblade, ours-null', log);
    const started = Date.now();
    const machine = describeMachine();
    const loadBefore = loadAverage();
    log(`machine: ${machine}; load average ${loadBefore}`);
    const installed = await ensureInteropPackages([...INTEROP_PACKAGES, ...BENCH_PACKAGES]);
    if (installed.length) log(`installed: ${installed.join(' ')}`);
    await ensureDebianVblade();
    const stale = await removeStaleNetns();
    if (stale.length) log(`removed namespaces left by a dead run: ${stale.join(' ')}`);
    const guest = await buildGuest(BENCH_GUEST);
    const accel = chooseAccel().name;
    log(
      `guest: linux ${guest.kernelVersion}${guest.built ? ' (initramfs built now)' : ''}, ${accel}; targets ${specs.map((s, i) => `${s.name} as e${i + 1}.${SLOT}`).join(', ')}; ${args.rounds} round(s)`,
    );

    const samples: InitiatorSample[] = [];
    const perMtu: string[] = [];
    for (const mtu of args.mtu) {
      const t0 = Date.now();
      samples.push(...(await this.runMtu(mtu, specs, guest, args)));
      perMtu.push(`MTU ${mtu} ${seconds(Date.now() - t0)}`);
    }
    const names = specs.map((s) => s.name);
    const rows = summarizeInitiator(samples, names, args.mtu);
    const took = seconds(Date.now() - started);
    log('');
    log(rows.length > 0 ? initiatorTextTable(rows, names) : 'no results');
    const loadAfter = loadAverage();
    log(`\nthe whole run took ${took} (${perMtu.join(', ')}); load average at the end ${loadAfter}`);

    if (this.failed || args.keepLogs) log(`serial logs and target output: ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
    if (args.writeDoc && rows.length > 0) {
      const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const sizes = args.mtu.map((m) => `${args.mib ?? defaultMib(m)} MiB at MTU ${m}`).join(', ');
      const generated = [
        `Last run: ${when}${this.failed ? ' (INCOMPLETE: a guest or target failed; see the run output)' : ''}, \`npm run bench:initiator -- ${process.argv.slice(2).join(' ')}\`, ${took} (${perMtu.join(', ')}).`,
        '',
        `Machine: ${machine}; guest linux ${guest.kernelVersion} under ${accel}, 1 vCPU, ${args.memMib} MiB. Load average ${loadBefore} at the start, ${loadAfter} at the end.`,
        '',
        `Settings: ${args.rounds} round(s), targets alternating per workload (${names.join(', ')}); dd ${sizes}; fio libaio, iodepth ${args.iodepth}, ${args.fioSeconds} s after 1 s of ramp, over the same region. Medians over the rounds, min–max in brackets. For "clat p50" lower is better; for the others higher.`,
        '',
        initiatorMarkdownTable(rows, names),
      ].join('\n');
      writeInitiatorSection(args.doc, generated);
      log(`table written to ${args.doc}`);
    }
    if (this.failed) process.exitCode = 1;
  }
}

export async function main(argv: string[]): Promise<void> {
  let bench: InitiatorBench | undefined;
  try {
    const args = parseArgs(argv);
    bench = new InitiatorBench();
    await bench.run(args);
  } catch (e) {
    const logs = bench ? `\n(the serial logs and targets' output so far are in ${bench.dir})` : '';
    process.stderr.write(`bench:initiator: ${(e as Error).message}${logs}\n`);
    process.exitCode = 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2));
}
