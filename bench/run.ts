// npm run bench: our target against Debian's vblade, side by side.
//
// Builds a private network (two namespaces, one veth pair), a pre-faulted
// backing file on tmpfs holding the test pattern (and with -d one on disk for
// the -s workload), then for each MTU and round starts each target in turn
// (A/B/A/B…) and runs the workloads of bench/workloads.ts against it with the
// load engine in this process, on a packet socket opened in the client namespace. Prints
// progress, then the medians and spreads, the ratios ours/vblade, and writes
// the table to docs/benchmarks.md. Everything it created is removed at the
// end, also on Ctrl-C; it stops only the processes it started, by pid.

import { closeSync, fsyncSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { AoeClient } from '../src/client/client';
import { failedRequests, runLoad } from '../src/client/load';
import { PatternImage } from '../src/client/pattern-image';
import { BenchNet, createBenchNet, destroyBenchNet, setMtu } from './netns';
import { Sample, describeMachine, markdownTable, summarize, textTable, writeBenchmarksDoc } from './report';
import { BUILTIN_TARGETS, RunningTarget, TargetSpec, customTarget, targetAvailable } from './targets';
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
}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function parseArgs(argv: string[]): Args {
  const a = yargs(argv)
    .scriptName('npm run bench --')
    .usage(
      '$0 [options]\n\nRuns random 1-sector reads, sequential full-frame reads and writes, one-in-flight 2-sector reads (a network boot) and -s writes against Debian vblade and our target in private network namespaces, and compares them (needs root).',
    )
    .option('targets', {
      type: 'string',
      default: 'vblade,ours,ours-null',
      describe: 'targets to compare, in order (vblade, ours, ours-null, or names given with --custom); missing ones are skipped',
    })
    .option('custom', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'extra target NAME=COMMAND with {sync} {shelf} {slot} {if} {file} {sectors}',
    })
    .option('rounds', { type: 'number', default: 3, describe: 'runs of each workload per target, alternating targets' })
    .option('seconds', { type: 'number', default: 5, describe: 'measured seconds per run' })
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
    .option('mtu', { type: 'number', array: true, default: [9000, 1500], describe: 'MTUs to run at' })
    .option('size-mib', {
      type: 'number',
      default: 256,
      describe: 'size of the tmpfs backing file (the load generator keeps its pattern in memory to check reads)',
    })
    .option('disk', { alias: 'd', type: 'boolean', default: false, describe: 'also run the -s write workload on a file on disk' })
    .option('disk-dir', { type: 'string', default: '/var/tmp', describe: 'directory (on a real disk) for the -d file' })
    .option('disk-size-mib', { type: 'number', default: 256, describe: 'size of the disk backing file' })
    .option('passes', { type: 'number', default: 1, describe: 'load engine receive/send passes per wake-up' })
    .option('spin-us', {
      type: 'number',
      default: 500,
      describe:
        'load engine busy polling after the last reply, µs (0: sleep in epoll at once); the generator then needs no wake-up per reply, which every target would otherwise pay for in its send()',
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

function loadAverage(): string {
  return os
    .loadavg()
    .map((v) => v.toFixed(2))
    .join(' ');
}

class Bench {
  private net: BenchNet | undefined;
  private readonly files: string[] = [];
  private readonly running = new Set<RunningTarget>();
  private cleaned = false;

  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
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
    const specs = this.pickTargets(args);
    const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296)
      .toString(36)
      .padStart(2, '0')}`;
    const machine = describeMachine();
    const loadBefore = loadAverage();
    log(`machine: ${machine}; load average ${loadBefore}`);
    log(
      `targets: ${specs.map((s) => s.name).join(', ')}; ${args.rounds} round(s) of ${args.seconds} s (+${args.warmup} s warm-up) per workload`,
    );

    const tmpfsFile = `/dev/shm/aoe-bench-${tag}.img`;
    log(`writing the test pattern to ${tmpfsFile} (${args.sizeMib} MiB, tmpfs)…`);
    this.files.push(tmpfsFile);
    const tmpfsImage = patternImage(args.sizeMib);
    makePatternFile(tmpfsFile, tmpfsImage);
    let diskFile: string | undefined;
    let diskImage: PatternImage | undefined;
    if (args.disk) {
      diskFile = join(args.diskDir, `aoe-bench-${tag}.img`);
      log(`writing the test pattern to ${diskFile} (${args.diskSizeMib} MiB, disk)…`);
      this.files.push(diskFile);
      diskImage = args.diskSizeMib === args.sizeMib ? tmpfsImage : patternImage(args.diskSizeMib);
      makePatternFile(diskFile, diskImage);
    }

    this.net = createBenchNet(tag, args.mtu[0]);
    log(`network: ${this.net.targetNs}/${this.net.targetIf} <-> ${this.net.clientNs}/${this.net.clientIf}`);

    const samples: Sample[] = [];
    const descriptions: Record<string, string> = {};
    let syncSkipped = false;
    for (const mtu of args.mtu) {
      setMtu(this.net, mtu);
      const workloads = workloadsFor(mtu).filter((w) => selected(w, args.only));
      for (const w of workloads) descriptions[w.name] = w.description;
      const plain = workloads.filter((w) => !w.sync);
      const sync = workloads.filter((w) => w.sync);
      if (sync.length > 0 && diskFile === undefined) {
        syncSkipped = true;
      }
      const client = AoeClient.open(this.net.clientIf, { netns: this.net.clientNsPath, timeoutMs: 300, retries: 3 });
      try {
        for (let round = 1; round <= args.rounds; round++) {
          for (const spec of specs) {
            const where = `[MTU ${mtu}, round ${round}/${args.rounds}] ${spec.name}`;
            if (plain.length > 0) {
              samples.push(
                ...(await this.runSet(client, spec, plain, {
                  file: tmpfsFile,
                  image: tmpfsImage,
                  sync: false,
                  backing: 'tmpfs',
                  mtu,
                  round,
                  where,
                  args,
                })),
              );
            }
            if (sync.length > 0 && diskFile !== undefined && diskImage !== undefined && spec.sync) {
              samples.push(
                ...(await this.runSet(client, spec, sync, {
                  file: diskFile,
                  image: diskImage,
                  sync: true,
                  backing: 'disk',
                  mtu,
                  round,
                  where: `${where} -s`,
                  args,
                })),
              );
            }
          }
        }
      } finally {
        client.close();
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
    log(textTable(rows));
    if (syncSkipped) log('\n(sync-write skipped: give -d to run it against a file on disk)');

    const loadAfter = loadAverage();
    log(`load average at the end: ${loadAfter}`);
    const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const generated = [
      `Last run: ${when}${args.quick ? ' (--quick: one short round, a smoke test rather than a measurement)' : ''}.`,
      '',
      `Machine: ${machine}. Load average (1, 5, 15 min) ${loadBefore} at the start, ${loadAfter} at the end: other work on the machine shows up as spread.`,
      '',
      `Settings: ${args.rounds} round(s) per target and workload, targets alternating (${specs.map((s) => s.name).join(', ')}), ${args.seconds} s measured after ${args.warmup} s of warm-up; export e${SHELF}.${SLOT} backed by a ${args.sizeMib} MiB pre-faulted file on tmpfs${diskFile ? ` (and a ${args.diskSizeMib} MiB file in ${args.diskDir} for the -s workload)` : ''}; veth pair between two private network namespaces; load from src/client/load.ts in one Node process${args.spinUs > 0 ? `, polling its ring for ${args.spinUs} µs after each reply` : ''}, all read data checked (pattern on files, zeros on --null).`,
      '',
      'Medians over the rounds, with the spread (min–max) of IOPS. "ours / vblade" compares median IOPS (equal request sizes, so also MB/s) and median p50 latency. "client CPU" is the load generator\'s own CPU time (user+system of the bench process) as a share of one core; "target CPU" the same for the target process; "target memory" its resident set size at the end of a run, without the pages of a mapped tmpfs backing file (RssShmem: shared page cache of the file, which our target maps; see docs/benchmarks.md). Errors count failed requests (AoE or ATA errors, data mismatches, requests given up).',
      '',
      markdownTable(rows),
      ...(syncSkipped ? ['', 'The -s write workload was not run: it needs `-d` (a backing file on a real disk).'] : []),
    ].join('\n');
    if (args.writeDoc) {
      writeBenchmarksDoc(args.doc, generated);
      log(`\ntable written to ${args.doc}`);
    }
  }

  private pickTargets(args: Args): TargetSpec[] {
    const all: Record<string, TargetSpec> = { ...BUILTIN_TARGETS };
    for (const c of args.custom) {
      const spec = customTarget(c);
      all[spec.name] = spec;
    }
    const specs: TargetSpec[] = [];
    for (const name of args.targets
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const spec = all[name];
      if (spec === undefined)
        throw new Error(`unknown target "${name}": use vblade, ours, ours-null or one given with --custom NAME=COMMAND`);
      const missing = targetAvailable(spec);
      if (missing !== undefined) {
        log(`skipping target ${name}: ${missing}`);
        continue;
      }
      specs.push(spec);
    }
    if (specs.length === 0) throw new Error('no target to measure');
    return specs;
  }

  /** Starts `spec`, runs `workloads` against it once each, stops it. A target that does not start is reported and skipped. */
  private async runSet(
    client: AoeClient,
    spec: TargetSpec,
    workloads: Workload[],
    o: {
      file: string;
      image: PatternImage;
      sync: boolean;
      backing: 'tmpfs' | 'disk';
      mtu: number;
      round: number;
      where: string;
      args: Args;
    },
  ): Promise<Sample[]> {
    const net = this.net!;
    const sectors = statSync(o.file).size / 512;
    const target = RunningTarget.start(spec, net.targetNs, {
      shelf: SHELF,
      slot: SLOT,
      ifname: net.targetIf,
      file: o.file,
      sync: o.sync,
      sectors,
    });
    this.running.add(target);
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
      const id = await client.identify(found);
      for (const w of workloads) {
        if (!target.alive) {
          log(`${o.where}: the target exited${target.log ? `: ${target.log.split('\n').slice(-3).join(' / ')}` : ''}`);
          break;
        }
        const cpu0 = target.cpuSeconds();
        const t0 = performance.now();
        client.pause();
        let result;
        try {
          result = await runLoad({
            socket: client.socket,
            srcMac: client.mac,
            target: found,
            op: w.op,
            pattern: w.pattern,
            sectors: w.sectors,
            window: w.window,
            lbaCount: id.sectors,
            durationMs: o.args.seconds * 1000,
            warmupMs: o.args.warmup * 1000,
            verify: spec.verify,
            timeoutMs: o.sync ? 2000 : 250,
            seed: 0x5eed + o.round,
            passesPerWake: o.args.passes,
            spinUs: o.args.spinUs,
            image: o.image,
          });
        } finally {
          client.resume();
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
          backing: o.backing,
        };
        samples.push(s);
        const bad = failedRequests(result);
        log(
          `${o.where} ${w.name}: ${Math.round(result.iops).toLocaleString('en-US')} IOPS, ${result.mbps.toFixed(1)} MB/s, p50 ${result.latency.p50.toFixed(0)} µs, p99 ${result.latency.p99.toFixed(0)} µs, client CPU ${result.cpu.percentOfOneCore.toFixed(0)} %, target CPU ${(targetCpu * 100).toFixed(0)} %${bad > 0 ? `, ${bad} ERRORS (${result.firstError})` : ''}${result.retransmits > 0 ? `, ${result.retransmits} retransmits` : ''}`,
        );
      }
    } finally {
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
