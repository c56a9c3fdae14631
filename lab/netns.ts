// Network namespaces for the tests and the bench. Every frame a test or the
// bench sends crosses only veth, bridge and tap devices inside namespaces
// made here; nothing is ever attached to the host's own interfaces.
//
// Names: a namespace is `aoet<pid36>-<n36>-<label>`, an interface
// `aoet<pid36>-<n36><role>` (at most 15 characters). They are unique per
// process and across concurrently running test files. The QEMU interop suite
// names its own (`aoei-<pid>-<n>-<role>`) through addNetns, and the bench its
// own (`aoeb-<tag>-<role>`), with the same records and clean-up.
//
// Leftovers: each namespace is recorded in /run/aoet-test-netns/<name> with
// the pid and start time of the process that made it, before it is made, and
// the record is removed with it. A later run removes the namespaces of
// records whose process is gone (a run killed with SIGKILL cannot clean up).
// A namespace without such a record is never touched, whatever its name.
//
// Teardown: everything registers with the tap test (t.teardown, run in
// reverse order of creation) and with a process-exit safety net. Deleting a
// namespace first stops the processes still running inside it (they can only
// be the test's own: nothing else enters these namespaces), so that its
// devices really disappear. Deletion is idempotent.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExitOrder, TestLike, onProcessExit, ownPrefix, pidAlive, processStartTime, skipOrFail, sleep, uniqueId } from './common';
import { Proc, RunOptions, RunResult, SpawnOptions, run, runOk, runSyncQuiet } from './process';

const NETNS_DIR = '/run/netns';

/**
 * Skips (outside CI) or fails (in CI) when the process is not root.
 * Returns true when it is root. Usage: `if (!requireRoot(t)) return;`
 */
export function requireRoot(t: TestLike): boolean {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return true;
  return skipOrFail(t, 'needs root (network namespaces, raw sockets); run the suite as root');
}

/** Names of all namespaces in /run/netns. */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Namespaces created by this process that still exist. */
export function ownNetns(): string[] {
  const p = ownPrefix();
  return listNetns().filter((n) => n.startsWith(p));
}

function stopPidsSync(ns: string): void {
  // `ip netns pids` lists the processes inside; they are the test's own.
  try {
    const out = execFileSync('ip', ['netns', 'pids', ns], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    for (const s of out.split(/\s+/).filter(Boolean)) {
      const pid = Number(s);
      if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  } catch {
    // namespace already gone
  }
}

function deleteNetnsSync(ns: string): void {
  if (existsSync(`${NETNS_DIR}/${ns}`)) {
    stopPidsSync(ns);
    runSyncQuiet('ip', ['netns', 'del', ns]);
  }
  dropRecord(ns);
}

const REGISTRY = '/run/aoet-test-netns';

// The names this file, the interop suite and the bench give; anything else
// in the registry directory is not ours to act on.
const OUR_NAME = /^(aoet[0-9a-z]+-[0-9a-z]+|aoei-\d+-\d+|aoeb-[0-9a-z]+)-[\w.-]+$/;

interface NsRecord {
  pid: number;
  start: string;
}

function recordPath(ns: string): string {
  return join(REGISTRY, ns);
}

function writeRecord(ns: string): void {
  mkdirSync(REGISTRY, { recursive: true, mode: 0o700 });
  const rec: NsRecord = { pid: process.pid, start: processStartTime(process.pid) ?? '' };
  writeFileSync(recordPath(ns), JSON.stringify(rec));
}

function dropRecord(ns: string): void {
  rmSync(recordPath(ns), { force: true });
}

function readRecord(ns: string): NsRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(recordPath(ns), 'utf8')) as Partial<NsRecord>;
    if (typeof r.pid === 'number' && typeof r.start === 'string') return { pid: r.pid, start: r.start };
  } catch {
    // unreadable: not a record of ours
  }
  return undefined;
}

let staleChecked = false;

/**
 * Deletes the namespaces recorded by test processes that no longer exist
 * (see the top of this file); returns their names. Namespaces that have no
 * record are never touched.
 */
export async function removeStaleNetns(): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(REGISTRY);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    if (!OUR_NAME.test(n)) continue;
    const rec = readRecord(n);
    if (!rec || rec.pid === process.pid) continue;
    if (pidAlive(rec.pid) && processStartTime(rec.pid) === rec.start) continue;
    if (existsSync(`${NETNS_DIR}/${n}`)) {
      await deleteNetnsAsync(n);
      removed.push(n);
    }
    dropRecord(n);
  }
  return removed;
}

async function deleteNetnsAsync(ns: string): Promise<void> {
  if (!existsSync(`${NETNS_DIR}/${ns}`)) return;
  const r = await run('ip', ['netns', 'pids', ns], { timeoutMs: 10000 });
  const pids = r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
  if (pids.length > 0) {
    for (const p of pids) {
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        // gone
      }
    }
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && pids.some(pidAlive)) await sleep(50);
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  // `ip netns del` fails if the name went away meanwhile: fine.
  await run('ip', ['netns', 'del', ns], { timeoutMs: 10000 });
  dropRecord(ns);
}

/** One network namespace made by the helpers. */
export class Netns {
  readonly name: string;
  readonly path: string;
  #deleted = false;
  #unregisterExit: () => void;

  constructor(name: string) {
    this.name = name;
    this.path = `${NETNS_DIR}/${name}`;
    this.#unregisterExit = onProcessExit(ExitOrder.Network, () => deleteNetnsSync(name));
  }

  get deleted(): boolean {
    return this.#deleted;
  }

  /** Runs a command inside the namespace to completion (never rejects for a non-zero exit). */
  run(cmd: string, args: readonly string[], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    return run(cmd, args, { ...opts, netns: this.name });
  }

  /** Runs a command inside the namespace; rejects unless it exits 0. */
  exec(cmd: string, args: readonly string[], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    return runOk(cmd, args, { ...opts, netns: this.name });
  }

  /** `ip <args>` against this namespace (ip -n). */
  ip(args: readonly string[]): Promise<RunResult> {
    return runOk('ip', ['-n', this.name, ...args]);
  }

  /** Starts a long-running process inside the namespace, stopped in the test's teardown. */
  spawn(t: TestLike, cmd: string, args: readonly string[], opts: Omit<SpawnOptions, 'netns'> = {}): Proc {
    const p = new Proc(cmd, args, { ...opts, netns: this.name });
    t.teardown(() => p.stop());
    return p;
  }

  /** Stops every process left inside, then removes the namespace (and with it its devices). Idempotent. */
  async delete(): Promise<void> {
    if (this.#deleted) return;
    await deleteNetnsAsync(this.name);
    this.#deleted = true;
    this.#unregisterExit();
  }

  /** As delete(), for a synchronous clean-up (a signal handler): the processes inside get SIGKILL at once. */
  deleteSync(): void {
    if (this.#deleted) return;
    deleteNetnsSync(this.name);
    this.#deleted = true;
    this.#unregisterExit();
  }
}

function sanitizeLabel(label: string): string {
  return label.replace(/[^a-zA-Z0-9_.-]/g, '_').slice(0, 40) || 'ns';
}

/**
 * Creates an empty network namespace with loopback up and IPv6 off (for
 * `all` and `default`, so that interfaces created later have it off too):
 * the kernel then sends nothing by itself on its links, and only the test's
 * own frames cross them.
 */
export async function createNetns(t: TestLike, label = 'ns'): Promise<Netns> {
  if (!staleChecked) {
    staleChecked = true;
    const removed = await removeStaleNetns();
    if (removed.length > 0) t.comment(`removed ${removed.length} namespace(s) left by dead test processes: ${removed.join(' ')}`);
  }
  const ns = await addNetns(`${uniqueId()}-${sanitizeLabel(label)}`);
  t.teardown(() => ns.delete());
  return ns;
}

/**
 * Creates a namespace with the given name, set up as createNetns does, for a
 * caller that deletes it itself (ns.delete()); it is recorded for the
 * clean-up of leftovers and deleted on process exit all the same. The name
 * must be one of those the top of this file describes.
 */
export async function addNetns(name: string): Promise<Netns> {
  if (!OUR_NAME.test(name)) throw new Error(`lab/netns: "${name}" is not a namespace name of ours (see the top of lab/netns.ts)`);
  writeRecord(name);
  try {
    await runOk('ip', ['netns', 'add', name]);
  } catch (e) {
    dropRecord(name);
    throw e;
  }
  const ns = new Netns(name);
  try {
    await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await ns.ip(['link', 'set', 'lo', 'up']);
  } catch (e) {
    await ns.delete();
    throw e;
  }
  return ns;
}

export interface VethOptions {
  /** MTU of both ends; default 1500. */
  mtu?: number;
  /** Fixed MAC of end a / end b (xx:xx:xx:xx:xx:xx); default kernel-random. */
  macA?: string;
  macB?: string;
  /** Leave both ends down; default false (both up). */
  down?: boolean;
}

export type VethSide = 'a' | 'b';

export interface VethEnd {
  ns: Netns;
  ifname: string;
}

/**
 * A veth pair between two namespaces, with the operations link-fault tests
 * need. Removing the pair is idempotent; `recreate()` brings it back with the
 * same names, MTU and MACs.
 */
export class Veth {
  readonly a: VethEnd;
  readonly b: VethEnd;
  mtu: number;
  readonly macA: string | undefined;
  readonly macB: string | undefined;
  #present = false;

  constructor(a: VethEnd, b: VethEnd, opts: VethOptions) {
    this.a = a;
    this.b = b;
    this.mtu = opts.mtu ?? 1500;
    this.macA = opts.macA;
    this.macB = opts.macB;
  }

  get present(): boolean {
    return this.#present;
  }

  end(side: VethSide): VethEnd {
    return side === 'a' ? this.a : this.b;
  }

  /** Creates the pair (both ends directly in their namespaces). */
  async create(up = true): Promise<void> {
    const args = ['link', 'add', this.a.ifname, 'netns', this.a.ns.name, 'mtu', String(this.mtu)];
    if (this.macA) args.push('address', this.macA);
    args.push('type', 'veth', 'peer', 'name', this.b.ifname, 'netns', this.b.ns.name, 'mtu', String(this.mtu));
    if (this.macB) args.push('address', this.macB);
    await runOk('ip', args);
    this.#present = true;
    if (up) {
      await this.up('a');
      await this.up('b');
      // The kernel turns each end's operational state up on its own, a little later
      // (linkwatch): wait for both, so that a client opened at once does not find its end down.
      await this.waitOperUp('a');
      await this.waitOperUp('b');
    }
  }

  /** Waits (up to `timeoutMs`) until `ip link` reports the end's operational state up; false if it never did. */
  async waitOperUp(side: VethSide, timeoutMs = 5000): Promise<boolean> {
    const e = this.end(side);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await e.ns.ip(['-o', 'link', 'show', 'dev', e.ifname]);
      if (/ state UP /.test(r.stdout)) return true;
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
  }

  async up(side: VethSide): Promise<void> {
    const e = this.end(side);
    await e.ns.ip(['link', 'set', 'dev', e.ifname, 'up']);
  }

  async down(side: VethSide): Promise<void> {
    const e = this.end(side);
    await e.ns.ip(['link', 'set', 'dev', e.ifname, 'down']);
  }

  /** Sets the MTU of one end, or of both when side is omitted. */
  async setMtu(mtu: number, side?: VethSide): Promise<void> {
    for (const s of side ? [side] : (['a', 'b'] as const)) {
      const e = this.end(s);
      await e.ns.ip(['link', 'set', 'dev', e.ifname, 'mtu', String(mtu)]);
    }
    if (!side) this.mtu = mtu;
  }

  /** Current state of one end as `ip -j link show` reports it. */
  async show(side: VethSide): Promise<{ ifname: string; mtu: number; address: string; operstate: string; flags: string[] }> {
    const e = this.end(side);
    const r = await e.ns.ip(['-j', 'link', 'show', 'dev', e.ifname]);
    const parsed = JSON.parse(r.stdout) as Array<{
      ifname: string;
      mtu: number;
      address: string;
      operstate: string;
      flags: string[];
    }>;
    return parsed[0];
  }

  /**
   * Waits until one end's operstate is `want` ('UP', 'DOWN',
   * 'LOWERLAYERDOWN'): the kernel updates it asynchronously (link watch,
   * up to about a second after a peer goes down or up).
   */
  async waitOperstate(side: VethSide, want: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last = (await this.show(side)).operstate;
      if (last === want) return;
      if (Date.now() > deadline)
        throw new Error(`${this.end(side).ifname}: operstate ${last}, not ${want}, after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /** Waits until one end has (true) or has lost (false) its carrier, i.e. its peer is up or down. */
  async waitCarrier(side: VethSide, carrier: boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const flags = (await this.show(side)).flags;
      if (flags.includes('NO-CARRIER') !== carrier) return;
      if (Date.now() > deadline)
        throw new Error(
          `${this.end(side).ifname}: flags ${flags.join(',')} after ${timeoutMs} ms; wanted carrier ${carrier ? 'on' : 'off'}`,
        );
      await sleep(50);
    }
  }

  /** Deletes the pair (deleting one end removes both). Idempotent. */
  async remove(): Promise<void> {
    if (!this.#present) return;
    this.#present = false;
    if (this.a.ns.deleted) return;
    // A missing device (namespace already torn down) is not an error here.
    await run('ip', ['-n', this.a.ns.name, 'link', 'del', 'dev', this.a.ifname]);
  }

  /** Deletes (if present) and creates the pair again with the same names, MTU and MACs. */
  async recreate(up = true): Promise<void> {
    await this.remove();
    await this.create(up);
  }
}

/** Creates a veth pair between two namespaces (they may be the same one). */
export async function createVeth(t: TestLike, nsA: Netns, nsB: Netns, opts: VethOptions = {}): Promise<Veth> {
  const id = uniqueId();
  const v = new Veth({ ns: nsA, ifname: `${id}a` }, { ns: nsB, ifname: `${id}b` }, opts);
  t.teardown(() => v.remove());
  await v.create(!opts.down);
  return v;
}

export interface PairOptions extends VethOptions {
  /** Labels of the two namespaces; default 'target' and 'init'. */
  labels?: [string, string];
}

/** Two namespaces joined by one veth pair: end a in `target`, end b in `init`. */
export interface NetnsPair {
  target: Netns;
  init: Netns;
  veth: Veth;
  /** Interface name in the target namespace. */
  targetIf: string;
  /** Interface name in the initiator namespace. */
  initIf: string;
}

export async function createNetnsPair(t: TestLike, opts: PairOptions = {}): Promise<NetnsPair> {
  const [la, lb] = opts.labels ?? ['target', 'init'];
  const target = await createNetns(t, la);
  const init = await createNetns(t, lb);
  const veth = await createVeth(t, target, init, opts);
  return { target, init, veth, targetIf: veth.a.ifname, initIf: veth.b.ifname };
}

export interface StarOptions {
  /** Number of initiator namespaces, each with its own veth to the target; default 2. */
  peers?: number;
  /** MTU of every link, or one per peer. */
  mtu?: number | number[];
}

/** One target namespace joined to several initiator namespaces, one veth each (multi-interface tests). */
export interface NetnsStar {
  target: Netns;
  links: Array<{ init: Netns; veth: Veth; targetIf: string; initIf: string }>;
}

export async function createNetnsStar(t: TestLike, opts: StarOptions = {}): Promise<NetnsStar> {
  const n = opts.peers ?? 2;
  const target = await createNetns(t, 'target');
  const links: NetnsStar['links'] = [];
  for (let i = 0; i < n; i++) {
    const init = await createNetns(t, `init${i}`);
    const mtu = Array.isArray(opts.mtu) ? opts.mtu[i] : opts.mtu;
    const veth = await createVeth(t, target, init, { mtu });
    links.push({ init, veth, targetIf: veth.a.ifname, initIf: veth.b.ifname });
  }
  return { target, links };
}

export interface BridgeTapOptions {
  /** An interface already in the namespace to enslave to the bridge (e.g. the initiator end of a veth). */
  uplink?: string;
  /** MTU for the bridge, the tap and the uplink; default: the uplink's MTU or 1500. */
  mtu?: number;
}

export interface BridgeTap {
  ns: Netns;
  bridge: string;
  /** A persistent tap device for QEMU: `-netdev tap,id=n0,ifname=<tap>,script=no,downscript=no` (QEMU spawned in the same namespace). */
  tap: string;
}

/**
 * Adds a bridge (STP off, no forwarding delay) and a tap device to a
 * namespace, and enslaves the uplink, so that a QEMU guest started inside the
 * namespace sits on the same link as the uplink's peer.
 */
export async function addBridgeTap(t: TestLike, ns: Netns, opts: BridgeTapOptions = {}): Promise<BridgeTap> {
  const id = uniqueId();
  const bridge = `${id}br`;
  const tap = `${id}tp`;
  let mtu = opts.mtu;
  if (mtu === undefined && opts.uplink) {
    const r = await ns.ip(['-j', 'link', 'show', 'dev', opts.uplink]);
    mtu = (JSON.parse(r.stdout) as Array<{ mtu: number }>)[0].mtu;
  }
  mtu = mtu ?? 1500;
  t.teardown(async () => {
    if (ns.deleted) return;
    await run('ip', ['-n', ns.name, 'link', 'del', 'dev', tap]);
    await run('ip', ['-n', ns.name, 'link', 'del', 'dev', bridge]);
  });
  await ns.ip(['link', 'add', 'name', bridge, 'mtu', String(mtu), 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  await ns.ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await ns.ip(['link', 'set', 'dev', tap, 'mtu', String(mtu), 'master', bridge, 'up']);
  if (opts.uplink) {
    await ns.ip(['link', 'set', 'dev', opts.uplink, 'mtu', String(mtu), 'master', bridge, 'up']);
  }
  await ns.ip(['link', 'set', 'dev', bridge, 'up']);
  return { ns, bridge, tap };
}
