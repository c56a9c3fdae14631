// npm run bench:storm: a lab of diskless machines booting at once.
//
// Replays the recorded boot (bench/storm/diskless-boot.trace.json) from N
// clients with MACs of their own at once (bench/c/aoe-storm.c, one process in
// the client namespace) against our target serving the image read-only, our
// target with views = per-initiator, and Debian's vblade (-r), the image on
// XFS with reflinks on a loop device in a temporary directory. For each round,
// client count and target (the targets' order turning each round), the
// target is started afresh, warmed with one unmeasured replay from another
// MAC, and the N clients replay the boot. Prints the medians and the goals'
// ratios, and writes them to --out FILE when given; the checkout is left as
// it was. Everything it made is removed at the end, also on Ctrl-C; it stops
// only the processes it started, by pid.

import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { BenchNet, createBenchNet, destroyBenchNet } from '../netns';
import { describeMachine, loadAverage } from '../report';
import { ROOT, RunningTarget } from '../targets';
import { minimumMtu, replaySchedule, scheduleExtent, scheduleText } from './schedule';
import { DEBIAN_VBLADE } from '../../lab/peers';
import { which } from '../../lab/process';
import {
  STORM_LABELS,
  STORM_TARGET_NAMES,
  SHELF,
  SLOT,
  LoopXfs,
  StormSetup,
  StormTargetName,
  clearViews,
  stormTargetSpec,
  waitReady,
  writeBootImage,
} from './storm-targets';
import { parseTrace } from './trace';
import { StormRun, goalsTable, parseReplayOutput, stormGoals, stormRun, stormTable, summarizeRuns } from './results';

export const STORM = join(ROOT, 'build', 'bench', 'aoe-storm');
export const DEFAULT_TRACE = join(ROOT, 'bench', 'storm', 'diskless-boot.trace.json');

interface Args {
  targets: string;
  clients: string;
  rounds: number;
  quick: boolean;
  out: string | undefined;
  trace: string;
  gapScale: number;
  mtu: number;
  timeoutMs: number;
  maxSeconds: number;
}

const onPath = (tool: string): boolean => which(tool) !== undefined;

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** "1,10,50" → [1, 10, 50]; throws for anything else. */
export function parseClientCounts(text: string): number[] {
  const counts = text.split(',').map((s) => s.trim());
  return counts.map((c) => {
    const n = Number(c);
    if (!/^\d+$/.test(c) || n < 1 || n > 4096)
      throw new Error(`--clients wants counts from 1 to 4096 separated by commas, got "${c}"`);
    return n;
  });
}

export function parseTargetNames(text: string): StormTargetName[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((name) => {
      if (!(STORM_TARGET_NAMES as readonly string[]).includes(name))
        throw new Error(`unknown target "${name}": use ${STORM_TARGET_NAMES.join(', ')}`);
      return name as StormTargetName;
    });
}

function parseArgs(argv: string[]): Args {
  const a = yargs(argv)
    .scriptName('npm run bench:storm --')
    .usage(
      '$0 [options]\n\nA lab booting at once: replays a recorded diskless boot from N machines with MACs of their own against our target (read-only, and with views = per-initiator on XFS) and Debian vblade, in private network namespaces (needs root).',
    )
    .option('targets', {
      type: 'string',
      default: STORM_TARGET_NAMES.join(','),
      describe: `targets, of ${STORM_TARGET_NAMES.join(', ')}`,
    })
    .option('clients', { type: 'string', default: '1,10,50,200', describe: 'client counts, comma-separated' })
    .option('rounds', { type: 'number', default: 5, describe: 'rounds; the table gives medians' })
    .option('quick', {
      type: 'boolean',
      default: false,
      describe: 'one round with 1 and 10 clients (a smoke test, not a measurement)',
    })
    .option('out', { type: 'string', describe: 'write the tables (Markdown) and every run (JSON after them) to this file' })
    .option('trace', { type: 'string', default: DEFAULT_TRACE, describe: 'the recorded boot to replay' })
    .option('gap-scale', {
      type: 'number',
      default: 1,
      describe: "multiplies the recorded gaps between a machine's requests (1: as recorded; 0: back to back)",
    })
    .option('mtu', { type: 'number', default: 1500, describe: 'MTU of the link (the trace was recorded at 1500)' })
    .option('timeout-ms', { type: 'number', default: 200, describe: "a client's retransmission timeout" })
    .option('max-seconds', { type: 'number', default: 300, describe: 'a replay is ended after this long' })
    .strict()
    .help()
    .version(false)
    .parseSync() as unknown as Args;
  if (a.quick) {
    a.rounds = 1;
    if (!argv.some((x) => x.startsWith('--clients'))) a.clients = '1,10';
  }
  if (!Number.isInteger(a.rounds) || a.rounds < 1) throw new Error(`--rounds wants a whole number of 1 or more, got ${a.rounds}`);
  return a;
}

/** Runs aoe-storm in the client namespace; resolves with its parsed output. */
export function replay(
  clientNs: string,
  ifname: string,
  schedule: string,
  clients: number,
  opts: { timeoutMs: number; maxSeconds: number; macPrefix?: string },
  running: Set<ChildProcess>,
): Promise<ReturnType<typeof parseReplayOutput>> {
  const args = [
    'netns', 'exec', clientNs, STORM,
    '--if', ifname, '--shelf', String(SHELF), '--slot', String(SLOT),
    '--clients', String(clients), '--schedule', schedule,
    '--timeout-ms', String(opts.timeoutMs), '--max-seconds', String(opts.maxSeconds),
    ...(opts.macPrefix ? ['--mac-prefix', opts.macPrefix] : []),
  ]; // prettier-ignore
  return new Promise((resolve, reject) => {
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e) => reject(e));
    child.on('exit', (code) => {
      running.delete(child);
      if (code !== 0) return reject(new Error(`aoe-storm exited with ${code}: ${err.trim()}`));
      try {
        resolve(parseReplayOutput(out));
      } catch (e) {
        reject(new Error(`${(e as Error).message}; its errors: ${err.trim()}`, { cause: e }));
      }
    });
  });
}

class StormBench {
  private net: BenchNet | undefined;
  private fs: LoopXfs | undefined;
  private dir: string | undefined;
  private readonly targets = new Set<RunningTarget>();
  private readonly replays = new Set<ChildProcess>();
  private cleaned = false;

  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const c of this.replays) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
    for (const t of this.targets) t.killNow();
    if (this.net) destroyBenchNet(this.net);
    this.fs?.remove();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  async run(args: Args): Promise<void> {
    if (process.getuid?.() !== 0)
      throw new Error(
        'the storm bench needs root: it creates network namespaces, a veth pair and a loop device (run it with sudo)',
      );
    if (!existsSync(STORM)) throw new Error(`${STORM} does not exist (build it with \`npx node-gyp rebuild\`)`);
    const names = parseTargetNames(args.targets).filter((name) => {
      const missing = name === 'vblade' && !existsSync(DEBIAN_VBLADE);
      if (missing) log(`skipping target vblade: ${DEBIAN_VBLADE} does not exist (the interop suite installs it)`);
      return !missing;
    });
    if (names.length === 0) throw new Error('no target to measure');
    const counts = parseClientCounts(args.clients);
    const steps = replaySchedule(parseTrace(readFileSync(args.trace, 'utf8'), args.trace), { gapScale: args.gapScale });
    const extent = scheduleExtent(steps);
    if (args.mtu < minimumMtu(steps))
      throw new Error(
        `--mtu ${args.mtu} is too small for this trace: its reads need MTU ${minimumMtu(steps)} or more (the trace was recorded at 1500)`,
      );
    for (const tool of ['losetup', 'mkfs.xfs', 'mount'])
      if (!onPath(tool))
        throw new Error(`${tool} not found: the image lives on XFS on a loop device (bash scripts/setup.sh installs xfsprogs)`);
    this.dir = mkdtempSync(join(tmpdir(), 'aoe-storm-'));
    const schedule = join(this.dir, 'schedule.txt');
    writeFileSync(schedule, scheduleText(steps));
    this.fs = new LoopXfs(this.dir);
    this.fs.create(1024 * 2 ** 20);
    const image = join(this.fs.mnt, 'boot.img');
    const imageBytes = Math.max(64 * 2 ** 20, Math.ceil((extent.endSector * 512) / 2 ** 20) * 2 ** 20);
    writeBootImage(image, imageBytes);
    this.net = await createBenchNet(`s${process.pid % 100000}`, args.mtu);
    const setup: StormSetup = {
      image,
      ifname: this.net.targetIf,
      runDir: join(this.dir, 'run'),
      viewsDir: join(this.fs.mnt, 'views'),
    };
    mkdirSync(setup.runDir, { mode: 0o700 });
    log(`# ${describeMachine()}; load ${loadAverage()}`);
    log(
      `# trace: ${steps.length} requests per client, ${(extent.bytes / 2 ** 20).toFixed(1)} MiB read; gap scale ${args.gapScale}; MTU ${args.mtu}`,
    );
    const runs: StormRun[] = [];
    for (let round = 1; round <= args.rounds; round++)
      for (const n of counts)
        for (let k = 0; k < names.length; k++) {
          const name = names[(k + round - 1) % names.length];
          const r = await this.once(name, setup, schedule, n, round, args);
          runs.push(r);
          log(
            `round ${round} N=${n} ${name}: all done ${r.allDoneS.toFixed(3)} s, slowest/median ${r.slowestOverMedian.toFixed(2)}, p50 ${r.p50Us.toFixed(0)} µs, p99 ${r.p99Us.toFixed(0)} µs, ${r.mbps.toFixed(1)} MB/s${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}${r.retransmits ? `, ${r.retransmits} retransmits` : ''}`,
          );
        }
    const rows = summarizeRuns(runs);
    const report =
      `Boot storm: ${steps.length} requests per machine (${(extent.bytes / 2 ** 20).toFixed(1)} MiB), ` +
      `gap scale ${args.gapScale}, MTU ${args.mtu}, medians of ${args.rounds} round(s); ${describeMachine()}\n\n` +
      `${stormTable(rows, STORM_LABELS)}\n${goalsTable(stormGoals(rows))}`;
    log(`\n${report}`);
    if (args.out !== undefined) {
      writeFileSync(args.out, `${report}\n\`\`\`json\n${JSON.stringify(runs, null, 1)}\n\`\`\`\n`);
      log(`written to ${args.out}`);
    }
  }

  private async once(
    name: StormTargetName,
    setup: StormSetup,
    schedule: string,
    n: number,
    round: number,
    args: Args,
  ): Promise<StormRun> {
    clearViews(setup);
    const net = this.net!;
    const spec = stormTargetSpec(name, setup);
    const t = RunningTarget.start(spec, net.targetNs, {
      shelf: SHELF,
      slot: SLOT,
      ifname: setup.ifname,
      file: setup.image,
      sync: false,
      sectors: 0,
    });
    this.targets.add(t);
    try {
      await waitReady(t);
      const opts = { timeoutMs: args.timeoutMs, maxSeconds: args.maxSeconds };
      // Warm-up from MACs the measured clients never use (a server is up long before its lab boots).
      await replay(net.clientNs, net.clientIf, schedule, 1, { ...opts, macPrefix: '02:00:57' }, this.replays);
      const out = await replay(net.clientNs, net.clientIf, schedule, n, opts, this.replays);
      if (!t.alive) throw new Error(`${name} exited during the replay:\n${t.log}`);
      return stormRun(name, round, out);
    } finally {
      await t.stop();
      this.targets.delete(t);
    }
  }
}

async function main(): Promise<void> {
  const bench = new StormBench();
  const onSignal = (): void => {
    bench.cleanupSync();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => bench.cleanupSync());
  try {
    await bench.run(parseArgs(process.argv.slice(2)));
  } finally {
    bench.cleanupSync();
  }
}

if (require.main === module)
  main().catch((e: Error) => {
    process.stderr.write(`bench:storm: ${e.message}\n`);
    process.exit(1);
  });
