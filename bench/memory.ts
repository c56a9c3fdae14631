// npm run bench:memory: does our target's memory stay flat under load?
//
// The goal: RSS ≤ 100 MiB at steady state, and flat (no leak) over a 5-minute
// run.
// This starts our target on a pre-faulted tmpfs file holding the test pattern,
// in a private pair of network namespaces, and drives it with the load engine
// for --seconds, cycling 1-sector random reads and full-frame sequential reads
// and writes in 10-second chunks (every read checked). After each chunk it
// reads the target's VmRSS and VmHWM; at the end it prints the figures and the
// RSS trend (least-squares slope after the first chunk, which is warm-up).
// Our target maps exports on tmpfs into its address space (src/target/export-set.ts),
// so every page of the file it touched counts in VmRSS as RssShmem although it is
// the file's page cache, not the target's memory: the figures are also given
// without it ("own" = VmRSS - RssShmem).
// It removes everything it created, also on Ctrl-C, and stops only the
// process it started, by pid. Needs root.

import { unlinkSync, writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { AoeClient } from '../src/client/client';
import { LoadResult, failedRequests, runLoad } from '../src/client/load';
import { PatternImage } from '../src/client/pattern';
import { BenchNet, createBenchNet, destroyBenchNet } from './netns';
import { BUILTIN_TARGETS, RunningTarget, memoryOf } from './targets';
import { selected, workloadsFor } from './workloads';

const SHELF = 1;
const SLOT = 1;
const CHUNK_S = 10;
const MIB = 2 ** 20;

interface Args {
  seconds: number;
  sizeMib: number;
  mtu: number;
}

interface MemSample {
  /** Seconds since the load started. */
  t: number;
  rss: number;
  hwm: number;
  shmem: number;
}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function parseArgs(argv: string[]): Args {
  return yargs(argv)
    .scriptName('npm run bench:memory --')
    .usage('$0 [options]\n\nRuns our target under load in private network namespaces and samples its RSS (needs root).')
    .option('seconds', { type: 'number', default: 300, describe: `seconds of load, in chunks of ${CHUNK_S} s` })
    .option('size-mib', { type: 'number', default: 256, describe: 'size of the tmpfs backing file' })
    .option('mtu', { type: 'number', default: 9000, describe: 'MTU of the veth pair (sets the size of the sequential requests)' })
    .strict()
    .help()
    .version(false)
    .parseSync();
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return num / den;
}

const mib = (bytes: number): string => `${(bytes / MIB).toFixed(1)} MiB`;
const iops = (r: LoadResult): string => `${Math.round(r.iops).toLocaleString('en-US')} IOPS`;

class MemoryBench {
  private net: BenchNet | undefined;
  private file: string | undefined;
  private target: RunningTarget | undefined;
  private cleaned = false;

  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    this.target?.killNow();
    if (this.net) destroyBenchNet(this.net);
    if (this.file) {
      try {
        unlinkSync(this.file);
      } catch {
        // already gone
      }
    }
  }

  /** Returns the number of failed requests (or 1 when the target died). */
  async run(args: Args): Promise<number> {
    if (process.getuid?.() !== 0) throw new Error('needs root: it creates network namespaces and a veth pair');
    const tag = `m${process.pid.toString(36)}`;

    // The file is filled from the same image the load engine checks reads against.
    this.file = `/dev/shm/aoe-bench-${tag}.img`;
    log(`writing the test pattern to ${this.file} (${args.sizeMib} MiB, tmpfs)…`);
    const image = new PatternImage(0, args.sizeMib * 2048);
    writeFileSync(this.file, image.bytes, { mode: 0o600 });

    this.net = await createBenchNet(tag, args.mtu);
    const net = this.net;
    log(`network: ${net.targetNs}/${net.targetIf} <-> ${net.clientNs}/${net.clientIf}, MTU ${args.mtu}`);

    const spec = BUILTIN_TARGETS.ours;
    this.target = RunningTarget.start(spec, net.targetNs, {
      shelf: SHELF,
      slot: SLOT,
      ifname: net.targetIf,
      file: this.file,
      sync: false,
      sectors: image.count,
    });
    const target = this.target;
    log(
      `target: pid ${target.pid}, ${spec.command({ shelf: SHELF, slot: SLOT, ifname: net.targetIf, file: this.file, sync: false, sectors: image.count }).join(' ')}`,
    );

    const workloads = workloadsFor(args.mtu).filter((w) => selected(w, ['rand-read-1', 'seq-read', 'seq-write']));
    const client = AoeClient.open(net.clientIf, { netns: net.clientNsPath, timeoutMs: 300, retries: 3 });
    const samples: MemSample[] = [];
    const chunks: { name: string; result: LoadResult }[] = [];
    let failed = 0;
    try {
      const found = await client.find(SHELF, SLOT, 10000).catch(() => {
        throw new Error(`the target did not answer within 10 s${target.log ? `: ${target.log}` : ''}`);
      });
      const id = await client.identify(found);
      const idle = memoryOf(target.pid);
      log(`idle before load: RSS ${mib(idle.rss)}, HWM ${mib(idle.hwm)}, own ${mib(idle.rss - idle.shmem)}`);

      const n = Math.max(1, Math.ceil(args.seconds / CHUNK_S));
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const w = workloads[i % workloads.length];
        client.pause();
        let result: LoadResult;
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
            durationMs: CHUNK_S * 1000,
            verify: 'pattern',
            timeoutMs: 250,
            // A new seed per chunk, so random reads do not revisit the same LBAs.
            seed: 0x5eed + i,
            image,
          });
        } finally {
          client.resume();
        }
        const bad = failedRequests(result);
        failed += bad;
        chunks.push({ name: w.name, result });
        const m = memoryOf(target.pid);
        const s: MemSample = { t: (performance.now() - t0) / 1000, ...m };
        samples.push(s);
        log(
          `t=${s.t.toFixed(0).padStart(4)} s  ${w.name.padEnd(12)} ${iops(result).padStart(14)}  RSS ${mib(s.rss)}  HWM ${mib(s.hwm)}  own ${mib(s.rss - s.shmem)}${bad > 0 ? `  ${bad} ERRORS (${result.firstError})` : ''}`,
        );
        if (!target.alive) {
          log(`the target exited${target.log ? `: ${target.log}` : ''}`);
          failed = Math.max(failed, 1);
          break;
        }
      }
    } finally {
      client.close();
      await target.stop();
    }

    this.summarize(samples, chunks, failed);
    return failed;
  }

  private summarize(samples: MemSample[], chunks: { name: string; result: LoadResult }[], failed: number): void {
    // The first sample closes the warm-up chunk; the trend is taken over the rest.
    const steady = samples.slice(1).filter((s) => !Number.isNaN(s.rss));
    log('');
    log('summary');
    if (samples.length > 0)
      log(
        `  at start of load (after ${CHUNK_S} s warm-up): RSS ${mib(samples[0].rss)}, own ${mib(samples[0].rss - samples[0].shmem)}`,
      );
    const figures = (label: string, of: (s: MemSample) => number): void => {
      if (steady.length === 0) return;
      const v = steady.map(of);
      const trend =
        steady.length >= 2
          ? slope(
              steady.map((s) => s.t / 60),
              v.map((b) => b / MIB),
            )
          : NaN;
      log(
        `  ${label} after warm-up: min ${mib(Math.min(...v))}, max ${mib(Math.max(...v))}, last ${mib(v[v.length - 1])}, slope ${trend >= 0 ? '+' : ''}${trend.toFixed(3)} MiB/min over ${steady.length} samples`,
      );
    };
    figures('RSS', (s) => s.rss);
    figures('own (RSS - RssShmem)', (s) => s.rss - s.shmem);
    if (samples.length > 0) log(`  VmHWM (peak RSS) at the end: ${mib(samples[samples.length - 1].hwm)}`);
    const byName = new Map<string, number[]>();
    for (const c of chunks) byName.set(c.name, [...(byName.get(c.name) ?? []), c.result.iops]);
    for (const [name, list] of byName) {
      log(`  ${name} IOPS per chunk: ${list.map((v) => `${(v / 1000).toFixed(1)}k`).join(' ')}`);
    }
    const retransmits = chunks.reduce((a, c) => a + c.result.retransmits, 0);
    log(`  errors: ${failed} failed requests, ${retransmits} retransmits`);
  }
}

export async function main(argv: string[]): Promise<void> {
  const bench = new MemoryBench();
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`\n${sig}: cleaning up`);
    bench.cleanupSync();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => bench.cleanupSync());
  try {
    const failed = await bench.run(parseArgs(argv));
    process.exitCode = failed > 0 ? 1 : 0;
  } catch (e) {
    process.stderr.write(`bench:memory: ${(e as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    bench.cleanupSync();
  }
}

if (require.main === module) {
  void main(process.argv.slice(2));
}
