// Our target serving an NBD URI on a pair of network namespaces made for the
// test, with an AoE client on the pair's other end: the set-up the NBD
// target tests share.
//
// Network safety: the namespaces and the veth pair are the test's own.

import { linkInfo, type Target } from '../../src/client';
import type { TestLike } from '../../lab/common';
import { createNetnsPair, type NetnsPair } from '../../lab/netns';
import { openClient, type Recorder } from '../integration/lib';
import { startTarget, waitLinkUp, type RunningTarget } from './targets';

export interface ServedNbd {
  pair: NetnsPair;
  c: Recorder;
  target: RunningTarget;
  /** The export as the client addresses it. */
  T: Target;
}

export interface ServeNbdOptions {
  shelf: number;
  slot: number;
  /** Target options before the positional arguments (-s, --remote-timeout N). */
  options?: readonly string[];
  mtu?: number;
  /** Sectors per request the client sends (2 unless said). */
  sectorCount?: number;
  client?: { timeoutMs?: number; retries?: number };
}

/** A pair of namespaces, a client in one, and our target serving `uri` as shelf.slot in the other. */
export async function serveNbdOnPair(t: TestLike, uri: string, o: ServeNbdOptions): Promise<ServedNbd> {
  const pair = await createNetnsPair(t, { mtu: o.mtu ?? 1500 });
  await waitLinkUp(pair.target, pair.targetIf);
  const c = await openClient(t, pair.init, pair.initIf, o.client);
  const target = await startTarget(t, pair.target, [...(o.options ?? []), String(o.shelf), String(o.slot), pair.targetIf, uri]);
  const T: Target = {
    shelf: o.shelf,
    slot: o.slot,
    mac: linkInfo(pair.targetIf, pair.target.path).mac,
    sectorCount: o.sectorCount ?? 2,
    bufferCount: 16,
  };
  return { pair, c, target, T };
}
