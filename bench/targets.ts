// The targets the bench compares, how to start them in the target namespace,
// and how to stop them again (by the pid we started, nothing else).

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VerifyMode } from '../src/client/load';
import { pinnedCommand } from './placements';
import { DEBIAN_VBLADE } from '../lab/peers';

export interface TargetRun {
  shelf: number;
  slot: number;
  ifname: string;
  file: string;
  /** -s: every write durable before its reply. */
  sync: boolean;
  /** Size of `file` in sectors (what a null export is given instead of the file). */
  sectors: number;
}

export interface TargetSpec {
  name: string;
  /** What a reader of the table sees. */
  label: string;
  command(run: TargetRun): string[];
  /** How read data can be checked against this target. */
  verify: VerifyMode;
  /** Can run the -s workload. */
  sync: boolean;
}

/** The repository: this file runs from bench/ (tap on the source) or dist/bench/ (compiled). */
export const ROOT = [join(__dirname, '..'), join(__dirname, '..', '..')].find((d) => existsSync(join(d, 'package.json')))!;
/** The no-disk C target (bench/c/aoe-reflector.c), built with the addon. */
export const REFLECTOR = join(ROOT, 'build', 'bench', 'aoe-reflector');

/** VmRSS, VmHWM and RssShmem of `pid` in bytes (NaN when gone). */
export function memoryOf(pid: number): { rss: number; hwm: number; shmem: number } {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // exited
  }
  const kb = (field: string): number => {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), shmem: kb('RssShmem') };
}

export const BUILTIN_TARGETS: Record<string, TargetSpec> = {
  vblade: {
    name: 'vblade',
    label: 'vblade 25 (Debian)',
    command: (r) => [DEBIAN_VBLADE, ...(r.sync ? ['-s'] : []), String(r.shelf), String(r.slot), r.ifname, r.file],
    verify: 'pattern',
    sync: true,
  },
  ours: {
    name: 'ours',
    label: 'aoe-target',
    command: (r) => [
      process.execPath,
      join(ROOT, 'bin', 'vblade.js'),
      ...(r.sync ? ['-s'] : []),
      String(r.shelf),
      String(r.slot),
      r.ifname,
      r.file,
    ],
    verify: 'pattern',
    sync: true,
  },
  ceiling: {
    name: 'ceiling',
    label: 'C reflector (ceiling)',
    // Answers reads with zeros and drops writes: the most a target can do here.
    command: (r) => [REFLECTOR, String(r.shelf), String(r.slot), r.ifname, String(r.sectors)],
    verify: 'zero',
    sync: false,
  },
  'ours-null': {
    name: 'ours-null',
    label: 'aoe-target --null',
    // The file operand of a null export is its size.
    command: (r) => [
      process.execPath,
      join(ROOT, 'bin', 'vblade.js'),
      '--null',
      String(r.shelf),
      String(r.slot),
      r.ifname,
      String(r.sectors),
    ],
    verify: 'zero',
    sync: false,
  },
};

/**
 * A target given on the command line as NAME=COMMAND, where COMMAND may use
 * {sync} (-s or nothing), {shelf}, {slot}, {if}, {file} and {sectors}; e.g.
 * "ggaoed=/usr/local/bin/mytarget {sync} {shelf} {slot} {if} {file}".
 */
export function customTarget(text: string): TargetSpec {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--custom wants NAME=COMMAND, got "${text}"`);
  const name = text.slice(0, eq);
  const template = text
    .slice(eq + 1)
    .trim()
    .split(/\s+/);
  return {
    name,
    label: name,
    command: (r) =>
      template
        .map((w) =>
          w
            .replace('{sync}', r.sync ? '-s' : '')
            .replace('{shelf}', String(r.shelf))
            .replace('{slot}', String(r.slot))
            .replace('{if}', r.ifname)
            .replace('{file}', r.file)
            .replace('{sectors}', String(r.sectors)),
        )
        .filter((w) => w !== ''),
    verify: 'pattern',
    sync: template.includes('{sync}'),
  };
}

export function targetAvailable(spec: TargetSpec): string | undefined {
  const cmd = spec.command({ shelf: 1, slot: 1, ifname: 'x', file: 'x', sync: false, sectors: 1 });
  const script = cmd[0] === process.execPath ? cmd[1] : cmd[0];
  if (!existsSync(script))
    return script === REFLECTOR
      ? `${script} does not exist (build it with \`npx node-gyp rebuild\`)`
      : `${script} does not exist`;
  return undefined;
}

let clockTicks = 0;

function ticksPerSecond(): number {
  if (clockTicks === 0) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export class RunningTarget {
  private output = '';
  private exited = false;
  private readonly exit: Promise<void>;

  private constructor(
    readonly spec: TargetSpec,
    private readonly child: ChildProcess,
  ) {
    const keep = (b: Buffer): void => {
      if (this.output.length < 65536) this.output += b.toString();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exit = new Promise((resolve) => {
      child.on('exit', () => {
        this.exited = true;
        resolve();
      });
      child.on('error', (e) => {
        this.output += `\n${e.message}`;
        this.exited = true;
        resolve();
      });
    });
  }

  /**
   * Starts the target inside `ns`, on `cpu` when given (every thread it
   * starts inherits that). ip netns exec and taskset replace themselves with
   * the target, so the pid is the target's.
   */
  static start(spec: TargetSpec, ns: string, run: TargetRun, cpu?: number): RunningTarget {
    const command = pinnedCommand(spec.command(run), cpu);
    const child = spawn('ip', ['netns', 'exec', ns, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
    return new RunningTarget(spec, child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** What it printed so far (for error messages). */
  get log(): string {
    return this.output.trim();
  }

  /** User + system CPU seconds the target has used (all its threads). */
  cpuSeconds(): number {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
    } catch {
      return NaN;
    }
  }

  /**
   * Resident memory of the target's own in bytes (VmRSS less RssShmem), or
   * NaN. Our target maps tmpfs exports, and the pages of the file it touched
   * count in VmRSS as RssShmem although they are the file's shared page cache.
   */
  rssBytes(): number {
    const m = memoryOf(this.pid);
    return m.rss - (m.shmem || 0);
  }

  /** SIGTERM to our pid, SIGKILL after 3 s. */
  async stop(): Promise<void> {
    if (this.exited || this.pid < 0) return;
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      return;
    }
    const timeout = new Promise<'late'>((r) => setTimeout(() => r('late'), 3000).unref());
    if ((await Promise.race([this.exit, timeout])) === 'late') {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await this.exit;
    }
  }

  /** Synchronous last-resort kill (process exit handler). */
  killNow(): void {
    if (!this.exited && this.pid > 0) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/**
 * The targets named in `csv` (with those given as --custom NAME=COMMAND), in
 * order; one that cannot run here is skipped with a line to `log`. Throws for
 * an unknown name or when none is left.
 */
export function pickTargets(csv: string, custom: readonly string[], known: string, log: (text: string) => void): TargetSpec[] {
  const all: Record<string, TargetSpec> = { ...BUILTIN_TARGETS };
  for (const c of custom) {
    const spec = customTarget(c);
    all[spec.name] = spec;
  }
  const specs: TargetSpec[] = [];
  for (const name of csv
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const spec = all[name];
    if (spec === undefined) throw new Error(`unknown target "${name}": use ${known} or one given with --custom NAME=COMMAND`);
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
