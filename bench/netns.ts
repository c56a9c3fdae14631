// The bench's private network: two network namespaces joined by a veth pair,
// created with names unique to this run and deleted at the end. Every `ip`
// command here names one of those namespaces (or creates/deletes it), so no
// frame of the bench ever touches an interface of the host's namespace.

import { execFileSync } from 'node:child_process';

export interface BenchNet {
  /** Namespace names (as in `ip netns`) and their paths. */
  targetNs: string;
  clientNs: string;
  targetNsPath: string;
  clientNsPath: string;
  /** veth ends: targetIf lives in targetNs, clientIf in clientNs. */
  targetIf: string;
  clientIf: string;
}

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}

function inNs(ns: string, cmd: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates the namespaces and the veth pair, links up with `mtu`, IPv6 off (so only AoE crosses the link). */
export function createBenchNet(tag: string, mtu: number): BenchNet {
  const net: BenchNet = {
    targetNs: `aoeb-${tag}-t`,
    clientNs: `aoeb-${tag}-c`,
    targetNsPath: `/run/netns/aoeb-${tag}-t`,
    clientNsPath: `/run/netns/aoeb-${tag}-c`,
    targetIf: `aobt${tag}`.slice(0, 15),
    clientIf: `aobc${tag}`.slice(0, 15),
  };
  ip(['netns', 'add', net.targetNs]);
  try {
    ip(['netns', 'add', net.clientNs]);
    for (const ns of [net.targetNs, net.clientNs]) {
      inNs(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
      inNs(ns, ['sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    // Created inside the target namespace with its peer placed straight into the client's.
    ip(['-n', net.targetNs, 'link', 'add', net.targetIf, 'type', 'veth', 'peer', 'name', net.clientIf, 'netns', net.clientNs]);
    setMtu(net, mtu);
  } catch (e) {
    destroyBenchNet(net);
    throw e;
  }
  return net;
}

/** Sets the MTU of both ends (links go down and up again). */
export function setMtu(net: BenchNet, mtu: number): void {
  for (const [ns, dev] of [
    [net.targetNs, net.targetIf],
    [net.clientNs, net.clientIf],
  ]) {
    ip(['-n', ns, 'link', 'set', dev, 'down']);
    ip(['-n', ns, 'link', 'set', dev, 'mtu', String(mtu)]);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['-n', ns, 'link', 'set', dev, 'up']);
  }
  waitUp(net);
}

function waitUp(net: BenchNet): void {
  for (let i = 0; i < 100; i++) {
    const a = ip(['-n', net.targetNs, '-o', 'link', 'show', net.targetIf]);
    const b = ip(['-n', net.clientNs, '-o', 'link', 'show', net.clientIf]);
    if (/LOWER_UP/.test(a) && /LOWER_UP/.test(b)) return;
    execFileSync('sleep', ['0.05']);
  }
  throw new Error(`the veth pair ${net.targetIf}/${net.clientIf} did not come up`);
}

/** Deletes both namespaces (which deletes the veth pair); quiet when they are already gone. */
export function destroyBenchNet(net: BenchNet): void {
  for (const ns of [net.targetNs, net.clientNs]) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}
