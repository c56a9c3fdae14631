// Gateways in front of one rbd image, for the failover tests: each a vbladed
// in the cluster's namespace serving rbd:SPEC as e9.4 on a veth whose other
// end is enslaved to a bridge in the initiator namespace (one Ethernet
// segment, as two hosts would share).
//
// Network safety: the gateways run in the cluster's namespace; the veths,
// the bridge and the namespaces are the test's own.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { linkInfo, type Target } from '../../src/client';
import { createVeth, type Netns } from '../../lab/netns';
import type { Proc } from '../../lab/process';
import type { CephCluster, startCeph } from './ceph';
import { tempDir } from './files';
import { waitLinkUp } from './targets';
import { spawnVbladed } from './vbladed';

/** The export every gateway serves. */
export const KEY = 'e9.4';

export interface Gateway {
  name: string;
  daemon: Proc;
  socket: string;
  /** Its config file. */
  conf: string;
  /** The gateway's interface, in the cluster's namespace. */
  targetIf: string;
  /** Its peer in the initiator namespace, enslaved to the bridge. */
  initIf: string;
  T: Target;
}

export interface Segment {
  init: Netns;
  bridge: string;
}

/**
 * A veth pair from the cluster's namespace to `seg.init` (or `veth`, made
 * before) and a vbladed serving rbd:`spec` on it; `more` is added to its
 * config, IFACE standing for its interface; `env` is added to its environment.
 */
export async function gateway(
  t: Parameters<typeof startCeph>[0],
  cluster: CephCluster,
  seg: Segment,
  name: string,
  spec: string,
  veth?: { targetIf: string; initIf: string },
  more = '',
  env?: NodeJS.ProcessEnv,
): Promise<Gateway> {
  const init = seg.init;
  let targetIf: string;
  let initIf: string;
  if (veth) ({ targetIf, initIf } = veth);
  else {
    const v = await createVeth(t, cluster.ns, init, { mtu: 1500 });
    ({ ifname: targetIf } = v.a);
    ({ ifname: initIf } = v.b);
    await init.ip(['link', 'set', 'dev', initIf, 'master', seg.bridge, 'up']);
  }
  await waitLinkUp(cluster.ns, targetIf);
  await waitLinkUp(init, initIf);
  const dir = tempDir(t, `gw-${name}`);
  fs.chmodSync(dir, 0o755);
  const socket = path.join(dir, 'ctl.sock');
  const conf = path.join(dir, 'vblade.conf');
  fs.writeFileSync(
    conf,
    `[daemon]\ncontrol-socket = ${socket}\ncontrol-group = nogroup\n\n[export ${KEY}]\nfile = rbd:${spec}\nceph-conf = ${cluster.conf}\ninterfaces = ${targetIf}\n${more.replace(/IFACE/g, targetIf)}`,
  );
  const daemon = spawnVbladed(t, cluster.ns, conf, dir, env);
  await daemon.waitFor(/worker [0-9]+ is serving/, { timeoutMs: 60000 });
  const T: Target = {
    shelf: 9,
    slot: 4,
    mac: linkInfo(targetIf, cluster.ns.path).mac,
    sectorCount: 16,
    bufferCount: 16,
  };
  return { name, daemon, socket, conf, targetIf, initIf, T };
}

/** `sectors` sectors, each saying `text` and its index. */
export function stamp(text: string, sectors: number): Buffer {
  const b = Buffer.alloc(sectors * 512);
  for (let i = 0; i < sectors; i++) b.write(`${text} sector ${i}`.padEnd(512, '.'), i * 512);
  return b;
}

/** The pids of a process's children (vbladed's worker), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
