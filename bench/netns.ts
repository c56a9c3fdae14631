// The bench's private network: two network namespaces joined by a veth pair,
// made by lab/netns.ts (the builder the tests use, with its records of
// leftovers and its exit-time clean-up) under names unique to this run, and
// deleted at the end. No frame of the bench ever touches an interface of the
// host's namespace.

import { addNetns, type Netns, Veth } from '../lab/netns';

export interface BenchNet {
  /** Namespace names (as in `ip netns`) and their paths. */
  targetNs: string;
  clientNs: string;
  targetNsPath: string;
  clientNsPath: string;
  /** veth ends: targetIf lives in targetNs, clientIf in clientNs. */
  targetIf: string;
  clientIf: string;
  /** The namespaces and the pair, for setMtu and destroyBenchNet. */
  namespaces: Netns[];
  veth: Veth;
}

/** Creates the namespaces and the veth pair, links up with `mtu`, IPv6 off (so only AoE crosses the link). */
export async function createBenchNet(tag: string, mtu: number): Promise<BenchNet> {
  const target = await addNetns(`aoeb-${tag}-t`);
  const namespaces = [target];
  try {
    const client = await addNetns(`aoeb-${tag}-c`);
    namespaces.push(client);
    const targetIf = `aobt${tag}`.slice(0, 15);
    const clientIf = `aobc${tag}`.slice(0, 15);
    const veth = new Veth({ ns: target, ifname: targetIf }, { ns: client, ifname: clientIf }, { mtu });
    await veth.create(false);
    const net: BenchNet = {
      targetNs: target.name,
      clientNs: client.name,
      targetNsPath: target.path,
      clientNsPath: client.path,
      targetIf,
      clientIf,
      namespaces,
      veth,
    };
    await setMtu(net, mtu);
    return net;
  } catch (e) {
    for (const ns of namespaces) ns.deleteSync();
    throw e;
  }
}

/** Sets the MTU of both ends with the links down, then brings them up and waits for the carrier. */
export async function setMtu(net: BenchNet, mtu: number): Promise<void> {
  await net.veth.down('a');
  await net.veth.down('b');
  await net.veth.setMtu(mtu);
  await net.veth.up('a');
  await net.veth.up('b');
  await net.veth.waitCarrier('a', true);
  await net.veth.waitCarrier('b', true);
}

/** Deletes both namespaces (which deletes the veth pair); quiet when they are already gone. */
export function destroyBenchNet(net: BenchNet): void {
  for (const ns of net.namespaces) ns.deleteSync();
}
