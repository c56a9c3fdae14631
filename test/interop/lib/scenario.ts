// Glue for one interop scenario run against one target: a temporary directory,
// the namespaces, the target processes, QEMU, and their removal at the end
// (always, in this order: QEMU, targets and helpers by pid, namespaces, files).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildGuest, GuestImage, interopDisabled } from '../../../lab/guest';
import { sleep } from '../../../lab/common';
import { removeStaleNetns } from '../../../lab/netns';
import { Proc } from '../../../lab/process';
import { Topology, TopologyOptions } from '../../../lab/topology';
import { ensureInteropPackages } from '../../../lab/packages';
import { ensureDebianVblade } from '../../../lab/peers';
import { chooseAccel, Qemu, QemuOptions } from '../../../lab/qemu';
import type { ScenarioName, TargetUnderTest } from '../targets';

import type { Test } from 'tap';

export type TapTest = Test;

export const MIB = 1024 * 1024;

export interface Harness {
  guest: GuestImage;
  accel: string;
}

// What this process started is ended on exit, also on SIGINT/SIGTERM/SIGHUP,
// by the test helpers: QEMU and the targets (Proc) by pid, then the
// namespaces (Netns).
let prepared: Promise<Harness> | null = null;

/** Installs packages, removes namespaces left by a dead earlier run, builds the guest. Once per process. */
export function prepare(t: TapTest): Promise<Harness> {
  if (!prepared) {
    prepared = (async () => {
      const t0 = Date.now();
      const installed = await ensureInteropPackages();
      if (installed.length) t.comment(`installed: ${installed.join(' ')}`);
      await ensureDebianVblade();
      const stale = await removeStaleNetns();
      if (stale.length) t.comment(`removed namespaces left by a dead run: ${stale.join(' ')}`);
      const guest = await buildGuest();
      const accel = chooseAccel().name;
      t.comment(
        `guest: linux ${guest.kernelVersion}, initrd ${path.basename(guest.initrd)}${guest.built ? ' (built now)' : ' (cached)'}, ${((Date.now() - t0) / 1000).toFixed(1)} s; accelerator: ${accel}${accel === 'tcg' ? ' (TCG: no vmx/svm in /proc/cpuinfo)' : ''}`,
      );
      return { guest, accel };
    })();
  }
  return prepared;
}

export class RunningTarget {
  constructor(
    readonly child: Proc,
    readonly ns: string,
    readonly logFile: string,
  ) {}

  get pid(): number {
    return this.child.pid;
  }
}

/** What one scenario run has: its directory, and what it started (removed by cleanup()). */
export class ScenarioContext {
  readonly dir: string;
  readonly started = Date.now();
  /** tap assertion options: {todo} when this target is expected to fail this scenario. */
  readonly extra: object;
  private qemus: Qemu[] = [];
  private children: Proc[] = [];
  private topologies: Topology[] = [];
  private logs: string[] = [];
  /** Figures for the summary line (throughput, interruption times). */
  readonly notes: Record<string, string | number> = {};

  constructor(
    readonly t: TapTest,
    readonly target: TargetUnderTest,
    readonly scenario: ScenarioName,
    readonly harness: Harness,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `aoe-interop-${scenario}-${target.name}-`));
    const reason = target.expectedFailures?.[scenario];
    this.extra = reason ? { todo: `expected failure for ${target.name}: ${reason}` } : {};
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  async topology(opts: TopologyOptions): Promise<Topology> {
    const topo = await Topology.create(opts);
    this.topologies.push(topo);
    return topo;
  }

  /** A sparse export file of `size` bytes. */
  exportFile(name: string, size: number): string {
    const file = this.path(name);
    fs.writeFileSync(file, '');
    fs.truncateSync(file, size);
    return file;
  }

  /** Starts the target under test in `ns` with vblade-style args; fails if it exits within `settleMs`. */
  async startTarget(ns: string, args: string[], label = 'target', settleMs = 500): Promise<RunningTarget> {
    const argv = this.target.cmd(args);
    const logFile = this.path(`${label}.log`);
    fs.writeFileSync(logFile, `# ip netns exec ${ns} ${argv.join(' ')}\n`);
    this.logs.push(logFile);
    const child = new Proc(argv[0], argv.slice(1), { netns: ns, label: `${this.target.name}:${label}`, logFile });
    this.children.push(child);
    await Promise.race([child.exited, sleep(settleMs)]);
    if (!child.running) {
      throw new Error(`${this.target.name} (${label}) exited at start: ${JSON.stringify(child.exitStatus)}\n${child.tail(40)}`);
    }
    return new RunningTarget(child, ns, logFile);
  }

  /**
   * Starts the target's daemon in `ns` from a config file with `configText`
   * (only targets with `daemon`: ours); resolves once it has opened an
   * interface, fails if it exits first. Logged and ended by pid like startTarget.
   */
  async startDaemon(ns: string, configText: string, label = 'daemon', openTimeoutMs = 60 * 1000): Promise<RunningTarget> {
    if (!this.target.daemon) throw new Error(`${this.target.name} has no daemon started from a config file`);
    const configFile = this.path(`${label}.conf`);
    fs.writeFileSync(configFile, configText);
    const argv = this.target.daemon(configFile);
    const logFile = this.path(`${label}.log`);
    fs.writeFileSync(
      logFile,
      `# ip netns exec ${ns} ${argv.join(' ')}\n# ${configFile}:\n${configText.replace(/^/gm, '#   ')}\n`,
    );
    this.logs.push(logFile);
    const child = new Proc(argv[0], argv.slice(1), { netns: ns, label: `${this.target.name}:${label}`, logFile });
    this.children.push(child);
    await child.waitFor(/interface open/, { timeoutMs: openTimeoutMs });
    return new RunningTarget(child, ns, logFile);
  }

  /** Starts a helper process (e.g. udhcpd) in a namespace; it is ended by pid at cleanup. */
  startHelper(ns: string, label: string, argv: string[]): Proc {
    const logFile = this.path(`${label}.log`);
    this.logs.push(logFile);
    const child = new Proc(argv[0], argv.slice(1), { netns: ns, label, logFile });
    this.children.push(child);
    return child;
  }

  qemu(opts: Omit<QemuOptions, 'logFile' | 'name'> & { name?: string }): Qemu {
    const logFile = this.path(`serial-${this.qemus.length}.log`);
    this.logs.push(logFile);
    // Guests after the first get a name of their own (ps and QEMU's messages tell them apart).
    const name = opts.name ?? `aoe-interop-${this.scenario}${this.qemus.length > 0 ? `-${this.qemus.length}` : ''}`;
    const q = new Qemu({ ...opts, name, logFile });
    this.qemus.push(q);
    return q;
  }

  /** Fills [offset, offset+len) of a file with random bytes; returns their md5. */
  fillRandom(file: string, offset: number, len: number): string {
    const fd = fs.openSync(file, 'r+');
    const hash = crypto.createHash('md5');
    try {
      for (let done = 0; done < len;) {
        const chunk = crypto.randomBytes(Math.min(MIB, len - done));
        fs.writeSync(fd, chunk, 0, chunk.length, offset + done);
        hash.update(chunk);
        done += chunk.length;
      }
    } finally {
      fs.closeSync(fd);
    }
    return hash.digest('hex');
  }

  /** md5 of [offset, offset+len) of a file. */
  md5Of(file: string, offset: number, len: number): string {
    const fd = fs.openSync(file, 'r');
    const hash = crypto.createHash('md5');
    const buf = Buffer.alloc(MIB);
    try {
      for (let done = 0; done < len;) {
        const n = fs.readSync(fd, buf, 0, Math.min(MIB, len - done), offset + done);
        if (n <= 0) break;
        hash.update(buf.subarray(0, n));
        done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    return hash.digest('hex');
  }

  elapsed(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(1)} s`;
  }

  /** Ends everything this scenario started, by pid; deletes its namespaces and (unless AOE_INTEROP_KEEP) its files. */
  async cleanup(): Promise<void> {
    const failed = !this.t.passing();
    for (const q of this.qemus) await q.kill();
    for (const c of this.children) await c.stop(2000);
    if (failed) {
      for (const log of this.logs) {
        if (!fs.existsSync(log)) continue;
        const text = fs.readFileSync(log, 'latin1').split('\n').slice(-60).join('\n');
        this.t.comment(`--- last lines of ${path.basename(log)} ---\n${text}`);
      }
      for (const topo of this.topologies) this.t.comment(await topo.stats());
    }
    for (const topo of this.topologies) await topo.destroy();
    if (process.env.AOE_INTEROP_KEEP) this.t.comment(`kept ${this.dir}`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Declares the tap subtest "<scenario> / <target>": a todo (not run) when the
 * target is not ready, otherwise runs `fn` with a ScenarioContext and always
 * cleans up.
 */
export function scenarioTest(
  t: TapTest,
  target: TargetUnderTest,
  scenario: ScenarioName,
  fn: (t: TapTest, ctx: ScenarioContext) => Promise<void>,
  opts: { skip?: string | false } = {},
): void {
  const name = `${scenario} / ${target.name}`;
  const off = interopDisabled();
  if (off) {
    void t.test(name, { skip: off }, async () => {});
    return;
  }
  if (target.todo) {
    void t.test(name, { todo: target.todo }, async () => {}); // todo children are not run
    return;
  }
  if (opts.skip) {
    void t.test(name, { skip: opts.skip }, async () => {});
    return;
  }
  void t.test(name, async (tt) => {
    const harness = await prepare(tt);
    const ctx = new ScenarioContext(tt, target, scenario, harness);
    try {
      await fn(tt, ctx);
    } finally {
      await ctx.cleanup();
      tt.comment(`timing: ${scenario} against ${target.name}: ${ctx.elapsed()} (${harness.accel})`);
      writeSummary({
        scenario,
        target: target.name,
        accel: harness.accel,
        seconds: (Date.now() - ctx.started) / 1000,
        passing: tt.passing(),
        ...ctx.notes,
      });
    }
  });
}

/** Appends one JSON line per scenario run to $AOE_INTEROP_SUMMARY, when set. */
function writeSummary(record: object): void {
  const file = process.env.AOE_INTEROP_SUMMARY;
  if (file) fs.appendFileSync(file, JSON.stringify(record) + '\n');
}

/** Checks the guest's closing lines: no watchdog, `done status=ok`, QEMU ended by itself. */
export function checkGuestEnd(
  t: TapTest,
  ctx: ScenarioContext,
  q: Qemu,
  exit: { timedOut: boolean; code: number | null; ms: number },
): void {
  const wd = q.lines('watchdog');
  for (const w of wd) t.fail(`guest watchdog fired: ${w.raw}`, ctx.extra);
  for (const f of q.lines('fail')) t.fail(`guest step failed: ${f.raw}`, ctx.extra);
  t.equal(exit.timedOut, false, 'the guest powered off by itself (no host timeout)', ctx.extra);
  t.equal(q.first('done').status, 'ok', 'guest finished with status=ok', ctx.extra);
}
