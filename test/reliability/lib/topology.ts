// A hub: one bridge in a namespace of its own, the target's namespace and N
// initiator namespaces each joined to it by a veth pair (separate namespaces,
// separate MACs), as machines on one switch. The target's veth can be taken
// down, resized or deleted and recreated without touching the initiators'
// interfaces, so their sockets live through every link fault.

import type { TestLike } from '../../../lab/common';
import { createNetns, createVeth, Netns, Veth } from '../../../lab/netns';
import { uniqueId } from '../../../lab/common';
import { run } from '../../../lab/process';

export interface HubPort {
  ns: Netns;
  /** The interface in `ns`. */
  ifname: string;
  mac: string;
  veth: Veth;
}

export interface Hub {
  hub: Netns;
  bridge: string;
  target: HubPort;
  inits: HubPort[];
  /** Sets the MTU of the bridge and every port, in the order that keeps the bridge valid. */
  setMtu(mtu: number): Promise<void>;
  /** Deletes the target's veth pair and creates it again with the same names, MACs and MTU, back on the bridge. */
  recreateTarget(): Promise<void>;
}

export interface HubOptions {
  initiators: number;
  mtu?: number;
}

/** MAC of initiator i: 02:1n:00:00:00:ii. */
export function initMac(i: number): string {
  return `02:10:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`;
}

export const TARGET_MAC = '02:7a:00:00:00:01';

export async function createHub(t: TestLike, o: HubOptions): Promise<Hub> {
  const mtu = o.mtu ?? 1500;
  const hub = await createNetns(t, 'hub');
  const bridge = `${uniqueId()}br`;
  await hub.ip(['link', 'add', 'name', bridge, 'mtu', String(mtu), 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  t.teardown(async () => {
    if (!hub.deleted) await run('ip', ['-n', hub.name, 'link', 'del', 'dev', bridge]);
  });
  await hub.ip(['link', 'set', 'dev', bridge, 'up']);

  const enslave = async (v: Veth): Promise<void> => {
    await hub.ip(['link', 'set', 'dev', v.b.ifname, 'master', bridge, 'up']);
  };
  const port = async (label: string, mac: string): Promise<HubPort> => {
    const ns = await createNetns(t, label);
    const veth = await createVeth(t, ns, hub, { mtu, macA: mac, macB: undefined });
    await enslave(veth);
    return { ns, ifname: veth.a.ifname, mac, veth };
  };

  const target = await port('target', TARGET_MAC);
  const inits: HubPort[] = [];
  for (let i = 0; i < o.initiators; i++) inits.push(await port(`init${i}`, initMac(i)));
  const all = [target, ...inits];

  return {
    hub,
    bridge,
    target,
    inits,
    async setMtu(m: number): Promise<void> {
      const bridgeFirst = m < target.veth.mtu;
      if (bridgeFirst) await hub.ip(['link', 'set', 'dev', bridge, 'mtu', String(m)]);
      for (const p of all) await p.veth.setMtu(m);
      if (!bridgeFirst) await hub.ip(['link', 'set', 'dev', bridge, 'mtu', String(m)]);
    },
    async recreateTarget(): Promise<void> {
      await target.veth.recreate(true);
      await enslave(target.veth);
    },
  };
}
