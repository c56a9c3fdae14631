// npm run bench: our target against Debian's vblade and a no-disk C target
// (the ceiling), side by side.
//
// Builds a private network (two namespaces, one veth pair), a pre-faulted
// backing file on tmpfs holding the test pattern (and with -d one on disk for
// the -s workload), then for each MTU, placement and round starts each target
// in turn (A/B/C, A/B/C…) and runs the workloads of bench/workloads.ts
// against it with the chosen load generator (bench/generators.ts) in the
// client namespace. Prints progress, then the medians and spreads, the ratios
// against vblade and the ceiling, and writes the table to docs/benchmarks.md.
// Everything it created is removed at the end, also on Ctrl-C; it stops only
// the processes it started, by pid.

import { closeSync, fsyncSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { AoeClient } from '../src/client/client';
import { LoadResult, failedRequests } from '../src/client/load';
import { PatternImage } from '../src/client/pattern';
import {
  GENERATOR_LABELS,
  GENERATOR_NAMES,
  GeneratorName,
  GeneratorRun,
  killLoadgensNow,
  loadgenMissing,
  runBlocking,
  runPolling,
} from './generators';
import { BenchNet, createBenchNet, destroyBenchNet, setMtu } from './netns';
import { PLACEMENTS, PLACEMENT_NAMES, Placement, parsePlacements, placementUnavailable } from './placements';
import { Sample, describeMachine, loadAverage, markdownTable, summarize, textTable, writeBenchmarksDoc } from './report';
import { RunningTarget, TargetSpec, pickTargets } from './targets';
import { Workload, selected, workloadsFor } from './workloads';

const SHELF = 1;
const SLOT = 1;

interface Args {
  targets: string;
  custom: string[];
  rounds: number;
  seconds: number;
  warmup: number;
  quick: boolean;
  only: string[];
  mtu: number[];
  sizeMib: number;
  disk: boolean;
  diskDir: string;
  diskSizeMib: number;
  writeDoc: boolean;
  doc: string;
  passes: number;
  spinUs: number;
  generator: GeneratorName;
  placement: string[];
}

/** The export's backing file, its pattern, and the reference copy the blocking generator checks reads against. */
interface PatternFiles {
  file: string;
  image: PatternImage;
  backing: 'tmpfs' | 'disk';
  reference: string | undefined;
}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function parseArgs(argv: string[]): Args {
  const a = yargs(argv)
    .scriptName('npm run bench --')
    .usage(
      '$0 [options]\n\nRuns random 1-sector reads, sequential full-frame reads and writes, one-in-flight 2-sector reads (a network boot) and -s writes against Debian vblade, our target and a no-disk C target (the ceiling) in private network namespaces, and compares them (needs root).',
    )
    .option('targets', {
      type: 'string',
      default: 'vblade,ours,ceiling',
      describe:
        'targets to compare, in order (vblade, ours, ceiling, ours-null, or names given with --custom); missing ones are skipped',
    })
    .option('generator', {
      choices: GENERATOR_NAMES,
      default: 'blocking',
      describe:
        'load generator: blocking (C, sleeps until a reply comes, as real initiators do) or polling (the TypeScript engine, spins on its ring; an extra, labelled in the table)',
    })
    .option('placement', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: `where target and generator run: ${PLACEMENT_NAMES.join(', ')} (default: latency in all three, throughput in two-cpus and one-cpu, -s writes in two-cpus)`,
    })
    .option('custom', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'extra target NAME=COMMAND with {sync} {shelf} {slot} {if} {file} {sectors}',
    })
    .option('rounds', { type: 'number', default: 5, describe: 'runs of each workload per target, alternating targets' })
    .option('seconds', { type: 'number', default: 4, describe: 'measured seconds per run' })
    .option('warmup', {
      type: 'number',
      default: 1,
      describe:
        'seconds of load before each measurement (a target just started is not in its steady state: V8 compiles our hot path in its first second or so)',
    })
    .option('quick', { type: 'boolean', default: false, describe: 'one round of 2 s (a smoke test, not a measurement)' })
    .option('only', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'run only these workloads (e.g. rand-read-1, seq-read, boot-read-2)',
    })
    .option('mtu', {
      type: 'number',
      array: true,
      default: [9000],
      describe: 'MTUs to run at (e.g. --mtu 9000 1500; each doubles the run time)',
    })
    .option('size-mib', {
      type: 'number',
      default: 256,
      describe: 'size of the tmpfs backing file (the load generator keeps its pattern in memory to check reads)',
    })
    .option('disk', { alias: 'd', type: 'boolean', default: false, describe: 'also run the -s write workload on a file on disk' })
    .option('disk-dir', { type: 'string', default: '/var/tmp', describe: 'directory (on a real disk) for the -d file' })
    .option('disk-size-mib', { type: 'number', default: 256, describe: 'size of the disk backing file' })
    .option('passes', { type: 'number', default: 1, describe: 'polling generator: receive/send passes per wake-up' })
    .option('spin-us', {
      type: 'number',
      default: 500,
      describe: 'polling generator: busy polling after the last reply, µs (0: sleep in epoll at once)',
    })
    .option('write-doc', { type: 'boolean', default: true, describe: 'write the table to --doc (--no-write-doc to skip)' })
    .option('doc', {
      type: 'string',
      default: join(__dirname, '..', '..', 'docs', 'benchmarks.md'),
      describe: 'where the table goes',
    })
    .strict()
    .help()
    .version(false)
    .parseSync() as unknown as Args;
  if (a.quick) {
    a.rounds = 1;
    a.seconds = 2;
    a.warmup = 0.3;
  }
  return a;
}

/** The test pattern of `mib` MiB, computed once: it fills the backing file and checks every read. */
function patternImage(mib: number): PatternImage {
  return new PatternImage(0, (mib * 2 ** 20) / 512);
}

/** Writes the image to a new file and syncs it (so every page exists: pre-faulted). */
function makePatternFile(path: string, image: PatternImage): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    const chunk = 8 * 2 ** 20;
    for (let at = 0; at < image.bytes.length; at += chunk)
      writeSync(fd, image.bytes, at, Math.min(chunk, image.bytes.length - at));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

class Bench {
  private net: BenchNet | undefined;
  private readonly files: string[] = [];
  private readonly running = new Set<RunningTarget>();
  private cleaned = false;

  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    killLoadgensNow();
    for (const t of this.running) t.killNow();
    if (this.net) destroyBenchNet(this.net);
    for (const f of this.files) {
      try {
        unlinkSync(f);
      } catch {
        // already gone
      }
    }
  }

  async run(args: Args): Promise<void> {
    if (process.getuid?.() !== 0)
      throw new Error('the bench needs root: it creates network namespaces and a veth pair (run it with sudo)');
    const specs = pickTargets(args.targets, args.custom, 'vblade, ours, ceiling, ours-null', log);
    if (args.generator === 'blocking') {
      const missing = loadgenMissing();
      if (missing !== undefined) throw new Error(`${missing} (or run with --generator polling)`);
    }
    const chosen = args.placement.length > 0 ? parsePlacements(args.placement) : undefined;
    const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296)
      .toString(36)
      .padStart(2, '0')}`;
    const machine = describeMachine();
    const loadBefore = loadAverage();
    log(`machine: ${machine}; load average ${loadBefore}`);
    log(
      `targets: ${specs.map((s) => s.name).join(', ')}; ${GENERATOR_LABELS[args.generator]}; ${args.rounds} round(s) of ${args.seconds} s (+${args.warmup} s warm-up) per workload`,
    );

    const tmpfs = this.patternFiles(`/dev/shm/aoe-bench-${tag}`, args.sizeMib, 'tmpfs', args.generator);
    const disk = args.disk
      ? this.patternFiles(join(args.diskDir, `aoe-bench-${tag}`), args.diskSizeMib, 'disk', args.generator, tmpfs)
      : undefined;

    this.net = await createBenchNet(tag, args.mtu[0]);
    log(`network: ${this.net.targetNs}/${this.net.targetIf} <-> ${this.net.clientNs}/${this.net.clientIf}`);

    const samples: Sample[] = [];
    const descriptions: Record<string, string> = {};
    const placementsRun = new Set<string>();
    let syncSkipped = false;
    for (const mtu of args.mtu) {
      await setMtu(this.net, mtu);
      const workloads = workloadsFor(mtu).filter((w) => selected(w, args.only));
      for (const w of workloads) descriptions[w.name] = w.description;
      if (workloads.some((w) => w.sync) && disk === undefined) syncSkipped = true;
      for (const placement of PLACEMENT_NAMES.map((n) => PLACEMENTS[n])) {
        const here = workloads.filter((w) =>
          chosen ? chosen.some((p) => p.name === placement.name) : w.placements.includes(placement.name),
        );
        if (here.length === 0) continue;
        const unavailable = placementUnavailable(placement);
        if (unavailable !== undefined) {
          log(`skipping placement ${placement.name}: ${unavailable}`);
          continue;
        }
        placementsRun.add(`${placement.name} (${placement.description})`);
        const plain = here.filter((w) => !w.sync);
        const sync = here.filter((w) => w.sync);
        for (let round = 1; round <= args.rounds; round++) {
          for (const spec of specs) {
            const where = `[MTU ${mtu}, ${placement.name}, round ${round}/${args.rounds}] ${spec.name}`;
            if (plain.length > 0) {
              samples.push(
                ...(await this.runSet(spec, plain, { files: tmpfs, sync: false, mtu, round, where, placement, args })),
              );
            }
            if (sync.length > 0 && disk !== undefined && spec.sync) {
              samples.push(
                ...(await this.runSet(spec, sync, {
                  files: disk,
                  sync: true,
                  mtu,
                  round,
                  where: `${where} -s`,
                  placement,
                  args,
                })),
              );
            }
          }
        }
      }
    }

    const labels = Object.fromEntries(specs.map((s) => [s.name, s.label]));
    const rows = summarize(
      samples,
      labels,
      descriptions,
      specs.map((s) => s.name),
    );
    log('');
    log(`load: ${GENERATOR_LABELS[args.generator]}`);
    log(textTable(rows));
    if (syncSkipped) log('\n(sync-write skipped: give -d to run it against a file on disk)');

    const loadAfter = loadAverage();
    log(`load average at the end: ${loadAfter}`);
    const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const generator =
      args.generator === 'blocking'
        ? 'load from build/bench/aoe-loadgen (C, sleeping in recvmmsg until a reply comes, as real initiators do)'
        : `load from the polling generator, src/client/load.ts in the bench's Node process${args.spinUs > 0 ? `, polling its ring for ${args.spinUs} µs after each reply` : ''} (an extra: real initiators sleep)`;
    const generated = [
      `Last run: ${when}${args.quick ? ' (--quick: one short round, a smoke test rather than a measurement)' : ''}.`,
      '',
      `Machine: ${machine}. Load average (1, 5, 15 min) ${loadBefore} at the start, ${loadAfter} at the end: other work on the machine shows up as spread.`,
      '',
      `Settings: ${args.rounds} round(s) per target, workload and placement, targets alternating (${specs.map((s) => s.name).join(', ')}), ${args.seconds} s measured after ${args.warmup} s of warm-up; export e${SHELF}.${SLOT} backed by a ${args.sizeMib} MiB pre-faulted file on tmpfs${disk ? ` (and a ${args.diskSizeMib} MiB file in ${args.diskDir} for the -s workload)` : ''}; veth pair between two private network namespaces; ${generator}; all read data checked (pattern on files, zeros on the ceiling and --null). Placements: ${[...placementsRun].join('; ')}.`,
      '',
      'Medians over the rounds, with the spread (min–max) of IOPS. "vs vblade" gives our median IOPS over vblade\'s (equal request sizes, so also MB/s) and vblade\'s median p50 latency over ours, in the same placement: above 1 is better in both; "vs ceiling" gives median IOPS as a share of the C reflector\'s for reads, and how much our median p50 exceeds the reflector\'s for one-in-flight reads (the reflector drops writes, so writes are not compared with it). "generator CPU" is the load generator\'s own CPU time (user+system) as a share of one core; "target CPU" the same for the target process; "target memory" its resident set size at the end of a run, without the pages of a mapped tmpfs backing file (RssShmem: shared page cache of the file, which our target maps; see docs/benchmarks.md). Errors count failed requests (AoE or ATA errors, data mismatches, requests given up).',
      '',
      markdownTable(rows),
      ...(syncSkipped ? ['', 'The -s write workload was not run: it needs `-d` (a backing file on a real disk).'] : []),
    ].join('\n');
    if (args.writeDoc) {
      writeBenchmarksDoc(args.doc, generated);
      log(`\ntable written to ${args.doc}`);
    }
  }

  /**
   * The export's backing file at `base`.img, filled with the test pattern,
   * and for the blocking generator a second copy (`base`.pattern) that it
   * maps to check reads against: the export's own file is the targets' to
   * write, and a target that wrote wrong data must not change the reference.
   * Reuses `same`'s image when the size is the same.
   */
  private patternFiles(
    base: string,
    mib: number,
    backing: 'tmpfs' | 'disk',
    generator: GeneratorName,
    same?: PatternFiles,
  ): PatternFiles {
    const image = same && same.image.bytes.length === mib * 2 ** 20 ? same.image : patternImage(mib);
    const file = `${base}.img`;
    log(`writing the test pattern to ${file} (${mib} MiB, ${backing})…`);
    this.files.push(file);
    makePatternFile(file, image);
    let reference = same?.image === image ? same.reference : undefined;
    if (generator === 'blocking' && reference === undefined) {
      reference = `/dev/shm/${base.slice(base.lastIndexOf('/') + 1)}-${backing}.pattern`;
      this.files.push(reference);
      makePatternFile(reference, image);
    }
    return { file, image, backing, reference };
  }

  /** Starts `spec`, runs `workloads` against it once each, stops it. A target that does not start is reported and skipped. */
  private async runSet(
    spec: TargetSpec,
    workloads: Workload[],
    o: {
      files: PatternFiles;
      sync: boolean;
      mtu: number;
      round: number;
      where: string;
      placement: Placement;
      args: Args;
    },
  ): Promise<Sample[]> {
    const net = this.net!;
    const sectors = statSync(o.files.file).size / 512;
    const target = RunningTarget.start(
      spec,
      net.targetNs,
      { shelf: SHELF, slot: SLOT, ifname: net.targetIf, file: o.files.file, sync: o.sync, sectors },
      o.placement.targetCpu,
    );
    this.running.add(target);
    // Finds the target; the polling generator then borrows its socket. The
    // blocking one has its own, and this one is closed first: it would take
    // a copy of every reply.
    const client = AoeClient.open(net.clientIf, { netns: net.clientNsPath, timeoutMs: 300, retries: 3 });
    const samples: Sample[] = [];
    try {
      let found;
      try {
        found = await client.find(SHELF, SLOT, 10000);
      } catch {
        const why = target.alive
          ? ' although it is running (if no target ever answers, the packet socket may not be receiving AoE replies: see src/client/transport.ts)'
          : '';
        log(
          `${o.where}: did not answer within 10 s${why}; skipped${target.log ? `\n  its output: ${target.log.split('\n').slice(-5).join('\n  ')}` : ''}`,
        );
        return samples;
      }
      const polling =
        o.args.generator === 'polling'
          ? {
              client,
              target: found,
              lbaCount: (await client.identify(found)).sectors,
              image: o.files.image,
              spinUs: o.args.spinUs,
              passes: o.args.passes,
            }
          : undefined;
      if (polling === undefined) client.close();
      for (const w of workloads) {
        if (!target.alive) {
          log(`${o.where}: the target exited${target.log ? `: ${target.log.split('\n').slice(-3).join(' / ')}` : ''}`);
          break;
        }
        const run: GeneratorRun = {
          workload: w,
          shelf: SHELF,
          slot: SLOT,
          verify: spec.verify,
          seconds: o.args.seconds,
          warmup: o.args.warmup,
          timeoutMs: o.sync ? 2000 : 250,
          seed: 0x5eed + o.round,
          cpu: o.placement.generatorCpu,
        };
        const cpu0 = target.cpuSeconds();
        const t0 = performance.now();
        let result: LoadResult;
        try {
          result = polling
            ? await runPolling(run, polling)
            : await runBlocking(run, { netns: net.clientNs, ifname: net.clientIf, imageFile: o.files.reference! });
        } catch (e) {
          log(`${o.where} ${w.name}: ${(e as Error).message}`);
          continue;
        }
        const wall = (performance.now() - t0) / 1000;
        const targetCpu = (target.cpuSeconds() - cpu0) / wall;
        const s: Sample = {
          mtu: o.mtu,
          workload: w.name,
          target: spec.name,
          round: o.round,
          result,
          targetCpu,
          targetRss: target.rssBytes(),
          backing: o.files.backing,
          placement: o.placement.name,
          generator: o.args.generator,
        };
        samples.push(s);
        const bad = failedRequests(result);
        log(
          `${o.where} ${w.name}: ${Math.round(result.iops).toLocaleString('en-US')} IOPS, ${result.mbps.toFixed(1)} MB/s, p50 ${result.latency.p50.toFixed(0)} µs, p99 ${result.latency.p99.toFixed(0)} µs, generator CPU ${result.cpu.percentOfOneCore.toFixed(0)} %, target CPU ${(targetCpu * 100).toFixed(0)} %${bad > 0 ? `, ${bad} ERRORS (${result.firstError})` : ''}${result.retransmits > 0 ? `, ${result.retransmits} retransmits` : ''}`,
        );
      }
    } finally {
      client.close();
      await target.stop();
      this.running.delete(target);
    }
    return samples;
  }
}

export async function main(argv: string[]): Promise<void> {
  const bench = new Bench();
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`\n${sig}: cleaning up`);
    bench.cleanupSync();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => bench.cleanupSync());
  try {
    await bench.run(parseArgs(argv));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    bench.cleanupSync();
  }
}

if (require.main === module) {
  void main(process.argv.slice(2));
}
