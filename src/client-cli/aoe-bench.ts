// aoe-bench: load one AoE export with the load engine and report what it got.
//
//   aoe-bench --if IF [--netns NS] --shelf S --slot N --op read|write|mix
//             --pattern random|seq --sectors K --window W --seconds T [--json]

import yargs, { Argv } from 'yargs';
import { AoeClient } from '../client/client';
import { CliError, clientVersion, failHandler, netnsPath, reportFailure } from './common';
import { LoadOp, LoadPattern, LoadProgress, LoadResult, VerifyMode, failedRequests, runLoad } from '../client/load';

export interface BenchArgs {
  if: string;
  netns?: string;
  shelf: number;
  slot: number;
  op: LoadOp;
  readPercent: number;
  pattern: LoadPattern;
  sectors: number;
  window: number;
  seconds: number;
  warmup: number;
  range?: number;
  start: number;
  verify: VerifyMode;
  timeout: number;
  json: boolean;
  progress: boolean;
  prefill: boolean;
  passes: number;
  spinUs: number;
}

export interface BenchReport {
  target: { shelf: number; slot: number; mac: string; sectors: number; bufferCount: number; maxSectors: number };
  result: LoadResult;
}

/** Runs one load against e<shelf>.<slot> on an open client. */
export async function benchTarget(client: AoeClient, a: Omit<BenchArgs, 'if' | 'netns' | 'json'>): Promise<BenchReport> {
  const t = await client.find(a.shelf, a.slot, 3000);
  const id = await client.identify(t);
  const maxSectors = client.maxSectors(t);
  if (a.sectors > maxSectors) {
    throw new CliError(
      `e${a.shelf}.${a.slot} takes at most ${maxSectors} sectors per request here (it advertises ${t.sectorCount}, the MTU is ${client.mtu}); use --sectors ${maxSectors} or less`,
    );
  }
  let lbaCount = Math.min(a.range ?? id.sectors, id.sectors - a.start);
  if (lbaCount < a.sectors)
    throw new CliError(`the range from LBA ${a.start} holds fewer than ${a.sectors} sectors (the export has ${id.sectors})`);
  client.pause();
  try {
    if (a.prefill) {
      // Write the pattern over the range first (whole requests of the largest size), so reads can be verified.
      lbaCount = Math.floor(lbaCount / maxSectors) * maxSectors;
      if (a.progress) process.stderr.write(`  writing the test pattern over ${lbaCount} sectors…\n`);
      const fill = await runLoad({
        socket: client.socket,
        srcMac: client.mac,
        target: t,
        op: 'write',
        pattern: 'seq',
        sectors: maxSectors,
        window: 16,
        lbaStart: a.start,
        lbaCount,
        requests: lbaCount / maxSectors,
        timeoutMs: a.timeout,
      });
      if (failedRequests(fill) > 0) throw new CliError(`writing the pattern failed: ${fill.firstError}`);
    }
    const result = await runLoad({
      socket: client.socket,
      srcMac: client.mac,
      target: t,
      op: a.op,
      readPercent: a.readPercent,
      pattern: a.pattern,
      sectors: a.sectors,
      window: a.window,
      lbaStart: a.start,
      lbaCount,
      durationMs: a.seconds * 1000,
      warmupMs: a.warmup * 1000,
      verify: a.verify,
      timeoutMs: a.timeout,
      passesPerWake: a.passes,
      spinUs: a.spinUs,
      onProgress: a.progress ? (p) => process.stderr.write(formatProgress(p) + '\n') : undefined,
    });
    return {
      target: { shelf: t.shelf, slot: t.slot, mac: t.macText, sectors: id.sectors, bufferCount: t.bufferCount, maxSectors },
      result,
    };
  } finally {
    client.resume();
  }
}

/** One --progress line: the interval's requests (the lines add up to the summary's count) and rates. */
export function formatProgress(p: LoadProgress): string {
  return `  ${(p.elapsedMs / 1000).toFixed(1).padStart(5)} s  ${fmtInt(p.intervalOps).padStart(9)} requests  ${fmtInt(p.iops)} IOPS  ${p.mbps.toFixed(1)} MB/s  errors ${p.errors}  retransmits ${p.retransmits}`;
}

export function fmtInt(v: number): string {
  return Math.round(v).toLocaleString('en-US');
}

export function formatReport(r: BenchReport): string {
  const x = r.result;
  const e = x.errors;
  const errText =
    failedRequests(x) === 0
      ? 'none'
      : [
          e.aoe && `${e.aoe} AoE`,
          e.ata && `${e.ata} ATA`,
          e.verify && `${e.verify} data mismatch`,
          e.short && `${e.short} short`,
          e.timeouts && `${e.timeouts} timed out`,
          e.socket && `${e.socket} socket`,
        ]
          .filter(Boolean)
          .join(', ');
  return [
    `e${r.target.shelf}.${r.target.slot} (${r.target.mac}, ${r.target.sectors} sectors): ${x.op} ${x.pattern} ${x.sectors} sector${x.sectors > 1 ? 's' : ''}, window ${x.window}, ${(x.elapsedMs / 1000).toFixed(1)} s`,
    `  IOPS        ${fmtInt(x.iops)}`,
    `  throughput  ${x.mbps.toFixed(1)} MB/s (${(x.mbps / 1.048576).toFixed(1)} MiB/s)`,
    `  latency     p50 ${x.latency.p50.toFixed(0)} µs  p99 ${x.latency.p99.toFixed(0)} µs  max ${x.latency.max.toFixed(0)} µs`,
    `  errors      ${errText}${x.firstError ? ` (first: ${x.firstError})` : ''}`,
    `  retransmits ${x.retransmits}, stale replies ${e.stale}`,
    `  client CPU  ${x.cpu.percentOfOneCore.toFixed(0)} % of one core (user ${x.cpu.userMs.toFixed(0)} ms, system ${x.cpu.systemMs.toFixed(0)} ms); ${x.repliesPerTurn.toFixed(1)} replies per wake-up, ${x.framesPerSend.toFixed(1)} frames per send`,
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  if (argv.includes('--version')) {
    process.stdout.write(`aoe-bench ${clientVersion()}\n`);
    return;
  }
  try {
    const args = (await buildParser(argv).parseAsync()) as unknown as BenchArgs;
    const client = AoeClient.open(args.if, { netns: netnsPath(args.netns), timeoutMs: 300, retries: 3 });
    try {
      const report = await benchTarget(client, args);
      process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
      if (failedRequests(report.result) > 0) process.exitCode = 3;
    } finally {
      client.close();
    }
  } catch (e) {
    reportFailure('aoe-bench', e);
  }
}

/** aoe-bench's options, their checks and its help. */
export function buildParser(argv: string[]): Argv {
  return yargs(argv)
    .scriptName('aoe-bench')
    .usage(
      '$0 --if IF [--netns NS] --shelf S --slot N [options]\n\nKeeps W AoE requests in flight against one export and reports IOPS, MB/s, latency, errors and its own CPU time.',
    )
    .option('if', {
      type: 'string',
      demandOption: 'name the network interface with --if',
      requiresArg: true,
      describe: 'network interface',
    })
    .option('netns', { type: 'string', requiresArg: true, describe: 'network namespace of the interface (name or path)' })
    .option('shelf', {
      type: 'number',
      demandOption: 'name the export with --shelf and --slot',
      describe: 'shelf (major) of the export',
    })
    .option('slot', {
      type: 'number',
      demandOption: 'name the export with --shelf and --slot',
      describe: 'slot (minor) of the export',
    })
    .option('op', { choices: ['read', 'write', 'mix'] as const, default: 'read' as const, describe: 'what to do' })
    .option('read-percent', { type: 'number', default: 50, describe: 'share of reads for --op mix' })
    .option('pattern', { choices: ['random', 'seq'] as const, default: 'random' as const, describe: 'LBA order' })
    .option('sectors', { type: 'number', default: 1, describe: 'sectors per request' })
    .option('window', { type: 'number', default: 16, describe: 'requests in flight' })
    .option('seconds', { type: 'number', default: 5, describe: 'measured run time' })
    .option('warmup', { type: 'number', default: 0.5, describe: 'seconds of load before measuring' })
    .option('range', { type: 'number', describe: 'sectors of the export to use (default: all of it)' })
    .option('start', { type: 'number', default: 0, describe: 'first LBA of the range' })
    .option('verify', {
      choices: ['none', 'pattern', 'zero'] as const,
      default: 'none' as const,
      describe: "check read data: the project's test pattern, zeros, or not",
    })
    .option('timeout', { type: 'number', default: 250, describe: 'ms before a request is sent again' })
    .option('prefill', {
      type: 'boolean',
      default: false,
      describe: 'write the test pattern over the range first (then --verify pattern works on any export)',
    })
    .option('passes', { type: 'number', default: 1, describe: 'receive/send passes per wake-up while replies keep coming' })
    .option('spin-us', {
      type: 'number',
      default: 0,
      describe: 'busy-poll the ring this long after the last reply before sleeping (0: never)',
    })
    .option('json', { type: 'boolean', default: false, describe: 'print the full result as JSON' })
    .option('progress', {
      type: 'boolean',
      default: process.stderr.isTTY === true,
      describe:
        'print a line per second of the measured run to stderr (after the warm-up; the last line covers the rest, so their requests add up to the summary)',
    })
    .check((a) => {
      if (!Number.isInteger(a.sectors) || a.sectors < 1 || a.sectors > 255) throw new CliError('--sectors must be 1..255');
      if (!Number.isInteger(a.window) || a.window < 1 || a.window > 65535) throw new CliError('--window must be 1..65535');
      if (!(a.seconds > 0)) throw new CliError('--seconds must be more than 0');
      if (!Number.isInteger(a.shelf) || a.shelf < 0 || a.shelf > 65534) throw new CliError('--shelf must be 0..65534');
      if (!Number.isInteger(a.slot) || a.slot < 0 || a.slot > 254) throw new CliError('--slot must be 0..254');
      if (!(a.timeout > 0)) throw new CliError('--timeout must be more than 0 milliseconds');
      return true;
    })
    .strict()
    .help()
    .alias('h', 'help')
    .version('version', 'show the version', `aoe-bench ${clientVersion()}`)

    .fail(failHandler({ program: 'aoe-bench', argv, example: 'aoe-bench --if eth1 --shelf 1 --slot 1 --seconds 10' }));
}
