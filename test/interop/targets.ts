// The targets the interop scenarios run against.
//
// Each entry turns vblade-style arguments
//     [-b bufcnt] [-d] [-s] [-r] [-m mac,...] [-o offset] [-l length] shelf slot netif file
// into the argument vector that starts it; the harness runs that vector inside a
// network namespace with `ip netns exec`. AOE_INTEROP_TARGETS=vblade (a comma
// list of names) selects; the default is all of them.

import * as path from 'node:path';
import { repoRoot } from '../../lab/guest';
import { DEBIAN_VBLADE } from '../../lab/peers';

export type ScenarioName =
  | 'linux-mtu1500'
  | 'linux-mtu9000'
  | 'ipxe-lkrn'
  | 'ipxe-nic-rom-dhcp'
  | 'diskless-root'
  | 'diskless-views'
  | 'failover-active-active'
  | 'failover-active-standby'
  | 'failover-rbd';

export interface TargetUnderTest {
  name: string;
  /** vblade-style arguments -> argv (argv[0] is the program). */
  cmd: (args: string[]) => string[];
  /** Arguments that say another target with the same shelf.slot is intended (failover); none when the target does not look. */
  sharedArgs: string[];
  /** The daemon started from a config file -> argv; only a target with one can run the scenarios that need a config (views). */
  daemon?: (configFile: string) => string[];
  /** Set: every scenario is a tap todo with this reason and is not run. */
  todo?: string | false;
  /** Scenarios this target is known to fail, with the reason (tap todo: run, not counted). */
  expectedFailures?: Partial<Record<ScenarioName, string>>;
}

const oursBin = path.join(repoRoot(), 'bin', 'vblade.js');
const oursDaemonBin = path.join(repoRoot(), 'bin', 'vbladed.js');

export const targets: TargetUnderTest[] = [
  {
    name: 'aoe-target',
    cmd: (args) => [process.execPath, oursBin, ...args],
    // Without it the second of two targets with one address refuses to start.
    sharedArgs: ['--shared'],
    daemon: (configFile) => [process.execPath, oursDaemonBin, '--foreground', '--config', configFile],
  },
  {
    name: 'vblade',
    cmd: (args) => [DEBIAN_VBLADE, ...args],
    sharedArgs: [],
    // vblade's known fault (32-byte frames, no padding to 60) only hurts aoetools
    // over veth; QEMU pads for the guest, so no scenario here is expected to fail.
    expectedFailures: {},
  },
];

/** The targets named in AOE_INTEROP_TARGETS (comma list), or all. */
export function selectedTargets(): TargetUnderTest[] {
  const want = process.env.AOE_INTEROP_TARGETS?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!want || want.length === 0) return targets;
  const unknown = want.filter((w) => !targets.some((t) => t.name === w));
  if (unknown.length)
    throw new Error(
      `AOE_INTEROP_TARGETS names unknown targets: ${unknown.join(', ')} (known: ${targets.map((t) => t.name).join(', ')})`,
    );
  return targets.filter((t) => want.includes(t.name));
}
