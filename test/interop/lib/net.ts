// The test network: network namespaces that this process creates and deletes.
//
//   target ns T0 ──veth── port0 ┐
//   target ns T1 ──veth── port1 ┼─ br0 (STP off) ── tap0 ── QEMU guest (virtio-net)
//                               guest ns G
//
// Every command here runs as `ip -n <our namespace> ...` or `ip netns exec <our
// namespace> ...`: nothing is created in, moved out of, or changed in the initial
// namespace, and no interface this file did not create is touched. IPv6 is off in
// every namespace, so only AoE (and, for the DHCP scenario, IPv4 on a
// documentation prefix) crosses the link.

import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { run } from './exec';

export const NS_PREFIX = 'aoei-';

/** Locally administered unicast MACs, readable in logs. */
export function targetMac(i: number): string {
  return `ae:0e:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`;
}
export const GUEST_MAC = 'ae:0e:00:00:02:01';
export const TARGET_IF = 'aoe0';
export const TAP_IF = 'tap0';

let sequence = 0;
const liveNamespaces = new Set<string>();

export interface TopologyOptions {
  mtu: number;
  /** How many target namespaces (each one veth port on the bridge). */
  targets: number;
}

export class Topology {
  readonly guestNs: string;
  readonly targetNs: string[];
  readonly mtu: number;
  private destroyed = false;

  private constructor(opts: TopologyOptions) {
    const id = `${NS_PREFIX}${process.pid}-${sequence++}`;
    this.guestNs = `${id}-g`;
    this.targetNs = Array.from({ length: opts.targets }, (_, i) => `${id}-t${i}`);
    this.mtu = opts.mtu;
  }

  static async create(opts: TopologyOptions): Promise<Topology> {
    const topo = new Topology(opts);
    try {
      await topo.build();
    } catch (err) {
      await topo.destroy();
      throw err;
    }
    return topo;
  }

  private async build(): Promise<void> {
    const mtu = String(this.mtu);
    for (const ns of [this.guestNs, ...this.targetNs]) {
      await run('ip', ['netns', 'add', ns]);
      liveNamespaces.add(ns);
      await nsSh(ns, 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6');
      await ip(ns, 'link', 'set', 'lo', 'up');
    }
    const g = this.guestNs;
    await ip(g, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0');
    for (let i = 0; i < this.targetNs.length; i++) {
      const t = this.targetNs[i];
      // created inside the target namespace; the peer end is placed straight into the guest namespace
      await ip(t, 'link', 'add', TARGET_IF, 'address', targetMac(i), 'mtu', mtu, 'type', 'veth', 'peer', 'name', `port${i}`, 'mtu', mtu, 'netns', g);
      await ip(g, 'link', 'set', `port${i}`, 'master', 'br0', 'up');
      await ip(t, 'link', 'set', TARGET_IF, 'up');
    }
    await ip(g, 'tuntap', 'add', 'dev', TAP_IF, 'mode', 'tap');
    await ip(g, 'link', 'set', TAP_IF, 'mtu', mtu, 'master', 'br0', 'up');
    await ip(g, 'link', 'set', 'br0', 'mtu', mtu, 'up');
  }

  /** Gives the target namespace's interface an IPv4 address (for udhcpd). */
  async addIPv4(target: number, cidr: string): Promise<void> {
    await ip(this.targetNs[target], 'addr', 'add', cidr, 'dev', TARGET_IF);
  }

  /** Argument vector prefix that runs a command inside a namespace. */
  static exec(ns: string, argv: string[]): { cmd: string; args: string[] } {
    return { cmd: 'ip', args: ['netns', 'exec', ns, ...argv] };
  }

  /** Link statistics of the target interfaces and the tap, for the log. */
  async stats(): Promise<string> {
    const out: string[] = [];
    for (const ns of this.targetNs) out.push(`${ns}: ${(await run('ip', ['-n', ns, '-s', 'link', 'show', TARGET_IF], { allowFail: true })).stdout.trim()}`);
    out.push(`${this.guestNs}: ${(await run('ip', ['-n', this.guestNs, '-s', 'link', 'show', TAP_IF], { allowFail: true })).stdout.trim()}`);
    return out.join('\n');
  }

  /** Deletes the namespaces (and with them every interface in them). Processes in them must be stopped first. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of [this.guestNs, ...this.targetNs]) {
      if (!liveNamespaces.has(ns)) continue;
      await run('ip', ['netns', 'del', ns], { allowFail: true });
      liveNamespaces.delete(ns);
    }
  }
}

function ip(ns: string, ...args: string[]) {
  return run('ip', ['-n', ns, ...args]);
}

function nsSh(ns: string, script: string) {
  return run('ip', ['netns', 'exec', ns, '/bin/sh', '-c', script]);
}

/** Deletes, synchronously, every namespace this process created and still holds (exit handler). */
export function destroyAllSync(): void {
  for (const ns of liveNamespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  liveNamespaces.clear();
}

/**
 * Removes namespaces left behind by an earlier harness process that died
 * (names `aoei-<pid>-...` whose pid no longer runs), ending the processes
 * still inside them by pid first.
 */
export async function reapStaleNamespaces(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { allowFail: true });
  const reaped: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const name = line.trim().split(/\s+/)[0];
    const m = name ? new RegExp(`^${NS_PREFIX}(\\d+)-\\d+-(g|t\\d+)$`).exec(name) : null;
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || fs.existsSync(`/proc/${owner}`)) continue;
    const pids = await run('ip', ['netns', 'pids', name], { allowFail: true });
    for (const p of pids.stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await run('ip', ['netns', 'del', name], { allowFail: true });
    reaped.push(name);
  }
  return reaped;
}
