// Is an address already served on the wire? At start-up, before the first
// announcement, one Query Config read per export goes out on each interface,
// and for a short while every Query Config reply from a MAC other than ours
// is taken as another target serving that shelf.slot, once the same MAC has
// answered every round of the probe. Runs on a short-lived
// socket of its own that passes replies (the serving socket passes only
// requests), so the frame path is untouched.

import {
  AOE_VERSION,
  CFG_HEADER_LEN,
  Command,
  ETHERTYPE_AOE,
  FLAG_RESPONSE,
  MIN_FRAME_LEN,
  OFF_CMD,
  OFF_MAJOR,
  OFF_MINOR,
  OFF_SRC,
  OFF_TAG,
  OFF_TYPE,
  OFF_VERFLAGS,
} from '../aoe/constants';
import { DrainLayout, SendLayout, type NativeAddon, type PacketSocket } from '../native/addon';

export interface ProbedAddress {
  shelf: number;
  slot: number;
}

/** Receive slots of the probe's socket: replies to a few exports from a few targets. */
const PROBE_FRAMES = 64;
/** A Query Config reply with the longest config string (1056 bytes) and the ring's slot header fit. */
const PROBE_FRAME_SIZE = 2048;

function macText(f: Uint8Array, o: number): string {
  return Array.from(f.subarray(o, o + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A broadcast Query Config read (AoEr11 §3.2, CCmd 0) for `a`, from `mac`, into `f` at `o`; returns its length. */
function writeQuery(f: Uint8Array, o: number, mac: Uint8Array, a: ProbedAddress, tag: number): number {
  f.fill(0, o, o + MIN_FRAME_LEN);
  f.fill(0xff, o, o + 6);
  f.set(mac, o + OFF_SRC);
  f[o + OFF_TYPE] = ETHERTYPE_AOE >> 8;
  f[o + OFF_TYPE + 1] = ETHERTYPE_AOE & 0xff;
  f[o + OFF_VERFLAGS] = AOE_VERSION << 4;
  f[o + OFF_MAJOR] = a.shelf >> 8;
  f[o + OFF_MAJOR + 1] = a.shelf & 0xff;
  f[o + OFF_MINOR] = a.slot;
  f[o + OFF_CMD] = Command.Config;
  new DataView(f.buffer, f.byteOffset).setUint32(o + OFF_TAG, tag);
  return MIN_FRAME_LEN; // the config header (CFG_HEADER_LEN) is all zeros: read, no string
}

/** Rounds of the probe: an address counts as served elsewhere only when the same MAC answers every one. */
export const PROBE_ROUNDS = 3;

/**
 * Sends one Query Config read per address on `ifname` and listens `waitMs`
 * for replies, in up to `rounds` rounds with a fresh random tag each: the
 * tag travels in a broadcast, so anyone on the segment can answer one round;
 * a target that serves the address answers them all. Resolves with "eS.L" →
 * the MAC that answered every round; `partial` (when given) gets "eS.L" →
 * the MACs that answered some rounds but not all. An interface that is
 * missing or down is not probed (an empty map). Throws when the socket
 * cannot be opened.
 */
export async function probeAddresses(
  addon: NativeAddon,
  ifname: string,
  addresses: readonly ProbedAddress[],
  waitMs: number,
  netns?: string,
  partial?: Map<string, string[]>,
  rounds = PROBE_ROUNDS,
): Promise<Map<string, string>> {
  const info = addon.linkInfo(ifname, netns);
  if (info === null || !info.up || addresses.length === 0) return new Map();
  const sock: PacketSocket = addon.openPacket(ifname, {
    frameSize: PROBE_FRAME_SIZE,
    frameCount: PROBE_FRAMES,
    netns,
    accept: 'replies',
  });
  // key -> the MACs that answered every round so far
  let candidates = new Map<string, Set<string>>();
  const seen = new Map<string, Set<string>>();
  try {
    let asked = addresses;
    for (let round = 0; round < rounds && asked.length > 0; round++) {
      const answers = await probeRound(sock, info.mac, asked, waitMs);
      for (const [key, macs] of answers) for (const m of macs) seen.set(key, (seen.get(key) ?? new Set()).add(m));
      const next = new Map<string, Set<string>>();
      for (const [key, macs] of answers) {
        const kept = round === 0 ? macs : new Set([...macs].filter((m) => candidates.get(key)?.has(m)));
        if (kept.size > 0) next.set(key, kept);
      }
      candidates = next;
      asked = asked.filter((a) => candidates.has(`e${a.shelf}.${a.slot}`));
    }
  } finally {
    sock.close();
  }
  const result = new Map<string, string>();
  for (const [key, macs] of candidates) result.set(key, [...macs][0]);
  if (partial) for (const [key, macs] of seen) if (!result.has(key)) partial.set(key, [...macs]);
  return result;
}

/** One round: a query per address with a fresh tag; "eS.L" → the other MACs that answered it within `waitMs`. */
async function probeRound(
  sock: PacketSocket,
  mac: Uint8Array,
  addresses: readonly ProbedAddress[],
  waitMs: number,
): Promise<Map<string, Set<string>>> {
  const answers = new Map<string, Set<string>>();
  // High bit set: unlike the small tags initiators count up from.
  const tag = (0x80000000 | Math.floor(Math.random() * 0x7fffffff)) >>> 0;
  const arena = new Uint8Array(addresses.length * MIN_FRAME_LEN);
  const desc = new Uint32Array(addresses.length * SendLayout.Stride);
  addresses.forEach((a, i) => {
    desc[i * SendLayout.Stride + SendLayout.Offset] = i * MIN_FRAME_LEN;
    desc[i * SendLayout.Stride + SendLayout.Length] = writeQuery(arena, i * MIN_FRAME_LEN, mac, a, tag);
  });
  const wanted = new Set(addresses.map((a) => `e${a.shelf}.${a.slot}`));
  const ours = macText(mac, 0);
  const rx = new Uint32Array(PROBE_FRAMES * DrainLayout.Stride);
  const take = (): void => {
    for (;;) {
      const n = sock.drain(rx, PROBE_FRAMES);
      if (n === 0) return;
      for (let i = 0; i < n; i++) {
        const o = rx[i * DrainLayout.Stride + DrainLayout.Offset];
        const len = rx[i * DrainLayout.Stride + DrainLayout.Length];
        const f = sock.ring;
        const view = new DataView(f.buffer, f.byteOffset);
        const isAnswer =
          len >= CFG_HEADER_LEN &&
          view.getUint16(o + OFF_TYPE) === ETHERTYPE_AOE &&
          (f[o + OFF_VERFLAGS] & FLAG_RESPONSE) !== 0 &&
          f[o + OFF_CMD] === Command.Config &&
          view.getUint32(o + OFF_TAG) === tag;
        const key = `e${view.getUint16(o + OFF_MAJOR)}.${f[o + OFF_MINOR]}`;
        const from = macText(f, o + OFF_SRC);
        if (isAnswer && from !== ours && wanted.has(key)) answers.set(key, (answers.get(key) ?? new Set()).add(from));
        sock.release(rx[i * DrainLayout.Stride + DrainLayout.Slot]);
      }
    }
  };
  sock.startPolling(take);
  sock.send(arena, desc, addresses.length); // a full queue or a link that just went away: nobody to ask
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  sock.stopPolling();
  take();
  return answers;
}
