// The network of the QEMU guests (the interop tests, the initiator bench):
// network namespaces that this process creates and deletes.
//
//   target ns T0 ──veth── port0 ┐                  ┌ tap0 ── QEMU guest 0 (virtio-net)
//   target ns T1 ──veth── port1 ┼─ br0 (STP off) ──┤
//                               guest ns G         └ tap1 ── QEMU guest 1 (with guests: 2)
//
// Every command here runs as `ip -n <our namespace> ...` or `ip netns exec <our
// namespace> ...`: nothing is created in, moved out of, or changed in the initial
// namespace, and no interface this file did not create is touched. IPv6 is off in
// every namespace, so only AoE (and, for the DHCP scenario, IPv4 on a
// documentation prefix) crosses the link.
//
// The namespaces are made by lab/netns.ts (addNetns), which records
// them, stops what still runs inside when they are deleted, deletes them on
// process exit, and lets a later run remove those of a run that died.

import { addNetns, Netns } from './netns';
import { run } from './process';

export const NS_PREFIX = 'aoei-';

/** Locally administered unicast MACs, readable in logs. */
export function targetMac(i: number): string {
  return `ae:0e:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`;
}
/** The MAC of guest `i` (0-based): guests on one bridge must differ, and targets tell initiators apart by it. */
export function guestMac(i: number): string {
  return `ae:0e:00:00:02:${(i + 1).toString(16).padStart(2, '0')}`;
}
/** The tap device of guest `i` in the guest namespace. */
export function tapName(i: number): string {
  return `tap${i}`;
}
export const GUEST_MAC = guestMac(0);
export const TARGET_IF = 'aoe0';
export const TAP_IF = tapName(0);

let sequence = 0;

export interface TopologyOptions {
  mtu: number;
  /** How many target namespaces (each one veth port on the bridge). */
  targets: number;
  /** How many guests (taps tap0, tap1, ... on br0); default 1. */
  guests?: number;
}

export class Topology {
  readonly guestNs: string;
  readonly targetNs: string[];
  /** The guests' tap devices, guest i on taps[i]. */
  readonly taps: string[];
  readonly mtu: number;
  /** The namespaces made so far: the guest's first, then the targets' in order. */
  private readonly made: Netns[] = [];
  private destroyed = false;

  private constructor(opts: TopologyOptions) {
    const id = `${NS_PREFIX}${process.pid}-${sequence++}`;
    this.guestNs = `${id}-g`;
    this.targetNs = Array.from({ length: opts.targets }, (_, i) => `${id}-t${i}`);
    this.taps = Array.from({ length: opts.guests ?? 1 }, (_, i) => tapName(i));
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
    const [g, ...targets] = await this.addAll([this.guestNs, ...this.targetNs]);
    await g.ip(['link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i];
      // created inside the target namespace; the peer end is placed straight into the guest namespace
      await t.ip([
        'link',
        'add',
        TARGET_IF,
        'address',
        targetMac(i),
        'mtu',
        mtu,
        'type',
        'veth',
        'peer',
        'name',
        `port${i}`,
        'mtu',
        mtu,
        'netns',
        g.name,
      ]);
      await g.ip(['link', 'set', `port${i}`, 'master', 'br0', 'up']);
      await t.ip(['link', 'set', TARGET_IF, 'up']);
    }
    for (const tap of this.taps) {
      await g.ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      await g.ip(['link', 'set', tap, 'mtu', mtu, 'master', 'br0', 'up']);
    }
    await g.ip(['link', 'set', 'br0', 'mtu', mtu, 'up']);
  }

  private async addAll(names: string[]): Promise<Netns[]> {
    for (const name of names) this.made.push(await addNetns(name));
    return this.made;
  }

  /** Gives the target namespace's interface an IPv4 address (for udhcpd). */
  async addIPv4(target: number, cidr: string): Promise<void> {
    await this.made[1 + target].ip(['addr', 'add', cidr, 'dev', TARGET_IF]);
  }

  /**
   * Stops (or again lets) the bridge flood broadcast frames to the guest:
   * the targets' announcements are lost, as behind a switch port that does
   * not forward yet, while their carrier stays up and unicast replies still
   * pass. (A port state set by hand does not hold on a bridge without STP:
   * the kernel makes it forwarding again at once.)
   */
  async guestBroadcasts(on: boolean): Promise<void> {
    for (const tap of this.taps)
      await this.made[0].ip(['link', 'set', 'dev', tap, 'type', 'bridge_slave', 'bcast_flood', on ? 'on' : 'off']);
  }

  /** Link statistics of the target interfaces and the taps, for the log. */
  async stats(): Promise<string> {
    const out: string[] = [];
    for (const ns of this.targetNs)
      out.push(`${ns}: ${(await run('ip', ['-n', ns, '-s', 'link', 'show', TARGET_IF])).stdout.trim()}`);
    for (const tap of this.taps)
      out.push(`${this.guestNs}: ${(await run('ip', ['-n', this.guestNs, '-s', 'link', 'show', tap])).stdout.trim()}`);
    return out.join('\n');
  }

  /** Deletes the namespaces (and with them every interface in them), stopping by pid whatever still runs inside. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of this.made) await ns.delete();
  }
}
