// A FrameSocket between the load engine (src/client/load.ts) and the real
// socket that checks every reply against the requests this initiator really
// sent: addressed to our MAC, from the target, a tag we sent and not already
// answered (no duplicates), the LBA registers echoed, the length right for a
// read or a write, and every reply rule (zero padding included, see
// replyViolations). Replies that fail a check are counted and not passed on.
//
// The load engine's tags are (generation << 16 | window slot); a new tag is
// used for every request and every retransmission, so two replies with one
// tag mean the target answered one frame twice, and a tag we never sent is
// another initiator's reply (cross-talk).

import type { FrameSocket } from '../../../src/client/transport';
import { formatMac } from '../../../src/client/mac';
import { FuzzTarget, replyViolations } from './fuzz';

const GENS = 0x8000;
const LBA_RING = 1024;

export interface SocketChecks {
  /** Every reply (R set) addressed to us or broadcast, of any command. */
  replies: number;
  /** ATA replies handed to the load engine. */
  passed: number;
  /** Frames with another station's destination MAC (flooded or misdirected). */
  foreign: number;
  /** ATA replies with a tag we never sent (or sent too long ago to remember). */
  unknownTag: number;
  duplicates: number;
  lbaMismatch: number;
  lengthMismatch: number;
  /** Replies breaking a reply rule (padding, flags, address, ...). */
  badReply: number;
  /** Replies with the E flag, by error code. */
  aoeErrors: Record<number, number>;
  first: string[];
}

export class CheckedSocket implements FrameSocket {
  readonly checks: SocketChecks = {
    replies: 0,
    passed: 0,
    foreign: 0,
    unknownTag: 0,
    duplicates: 0,
    lbaMismatch: 0,
    lengthMismatch: 0,
    badReply: 0,
    aoeErrors: {},
    first: [],
  };
  private readonly sent: Uint8Array;
  private readonly replied: Uint8Array;
  private readonly lba: Float64Array;
  private readonly lbaGen: Int32Array;
  private readonly count: Uint16Array;
  private readonly write: Uint8Array;

  constructor(
    private readonly inner: FrameSocket,
    private readonly mac: Uint8Array,
    private readonly window: number,
    private readonly target: FuzzTarget,
  ) {
    this.sent = new Uint8Array((window * GENS) >> 3);
    this.replied = new Uint8Array((window * GENS) >> 3);
    this.lba = new Float64Array(window * LBA_RING);
    this.lbaGen = new Int32Array(window * LBA_RING).fill(-1);
    this.count = new Uint16Array(window * LBA_RING);
    this.write = new Uint8Array(window * LBA_RING);
  }

  get ring(): Uint8Array {
    return this.inner.ring;
  }

  private note(text: string): void {
    if (this.checks.first.length < 8) this.checks.first.push(text);
  }

  send(arena: Uint8Array, desc: Uint32Array, count: number): number {
    const r = this.inner.send(arena, desc, count);
    for (let i = 0; i < r; i++) {
      const off = desc[i * 2];
      if (arena[off + 19] !== 0) continue;
      const tag = ((arena[off + 20] << 24) | (arena[off + 21] << 16) | (arena[off + 22] << 8) | arena[off + 23]) >>> 0;
      const s = tag & 0xffff;
      const g = (tag >>> 16) & 0x7fff;
      if (s >= this.window) continue;
      const bit = s * GENS + g;
      this.sent[bit >> 3] |= 1 << (bit & 7);
      this.replied[bit >> 3] &= ~(1 << (bit & 7));
      const k = s * LBA_RING + (g % LBA_RING);
      this.lba[k] = lbaField(arena, off + 28);
      this.lbaGen[k] = g;
      this.count[k] = arena[off + 26];
      const op = arena[off + 27];
      this.write[k] = op === 0x30 || op === 0x34 ? 1 : 0;
    }
    return r;
  }

  drain(desc: Uint32Array, maxFrames: number): number {
    const n = this.inner.drain(desc, maxFrames);
    const ring = this.inner.ring;
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const off = desc[i * 3];
      const len = desc[i * 3 + 1];
      const slot = desc[i * 3 + 2];
      if (this.accept(ring, off, len)) {
        desc[kept * 3] = off;
        desc[kept * 3 + 1] = len;
        desc[kept * 3 + 2] = slot;
        kept++;
      } else {
        this.inner.release(slot);
      }
    }
    return kept;
  }

  private accept(ring: Uint8Array, off: number, len: number): boolean {
    const c = this.checks;
    const bcast =
      ring[off] === 0xff &&
      ring[off + 1] === 0xff &&
      ring[off + 2] === 0xff &&
      ring[off + 3] === 0xff &&
      ring[off + 4] === 0xff &&
      ring[off + 5] === 0xff;
    let ours = true;
    for (let i = 0; i < 6; i++) if (ring[off + i] !== this.mac[i]) ours = false;
    if (!ours && !bcast) {
      c.foreign++;
      this.note(`frame for ${formatMac(ring, off)} seen by ${formatMac(this.mac)}`);
      return false;
    }
    if (len < 24 || (ring[off + 14] & 0x08) === 0) return true; // not a reply: the engine ignores it
    c.replies++;
    const frame = ring.subarray(off, off + len);
    const v = replyViolations(frame, this.target);
    if (v.length > 0) {
      c.badReply++;
      this.note(`bad reply: ${v.join('; ')}`);
      return false;
    }
    if (ring[off + 19] !== 0) return true; // config, mask, reserve replies: not the load's business
    if (ring[off + 14] & 0x04) c.aoeErrors[ring[off + 15]] = (c.aoeErrors[ring[off + 15]] ?? 0) + 1;
    const tag = ((ring[off + 20] << 24) | (ring[off + 21] << 16) | (ring[off + 22] << 8) | ring[off + 23]) >>> 0;
    const s = tag & 0xffff;
    const g = (tag >>> 16) & 0x7fff;
    const bit = s * GENS + g;
    if (tag >>> 31 || s >= this.window || (this.sent[bit >> 3] & (1 << (bit & 7))) === 0) {
      c.unknownTag++;
      this.note(`reply with tag 0x${tag.toString(16)} that ${formatMac(this.mac)} never sent`);
      return false;
    }
    if (this.replied[bit >> 3] & (1 << (bit & 7))) {
      c.duplicates++;
      this.note(`second reply to tag 0x${tag.toString(16)}`);
      return false;
    }
    this.replied[bit >> 3] |= 1 << (bit & 7);
    const k = s * LBA_RING + (g % LBA_RING);
    if (this.lbaGen[k] === g) {
      if (lbaField(ring, off + 28) !== this.lba[k]) {
        c.lbaMismatch++;
        this.note(`reply to tag 0x${tag.toString(16)} echoes LBA ${lbaField(ring, off + 28)}, the request had ${this.lba[k]}`);
        return false;
      }
      const failed = (ring[off + 14] & 0x04) !== 0 || (ring[off + 27] & 0x01) !== 0;
      const want = failed || this.write[k] ? 60 : 36 + this.count[k] * 512;
      if (len !== want) {
        c.lengthMismatch++;
        this.note(`reply to tag 0x${tag.toString(16)} is ${len} bytes, expected ${want}`);
        return false;
      }
    }
    c.passed++;
    return true;
  }

  release(slot: number): void {
    this.inner.release(slot);
  }

  startPolling(onEvent: (status: number) => void): void {
    this.inner.startPolling(onEvent);
  }

  stopPolling(): void {
    this.inner.stopPolling();
  }

  close(): void {
    this.inner.close();
  }
}

function lbaField(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000 + (b[o + 4] | (b[o + 5] << 8)) * 0x100000000;
}

/** Total of the counters that mean something went wrong. */
export function checkFailures(c: SocketChecks): number {
  return c.foreign + c.unknownTag + c.duplicates + c.lbaMismatch + c.lengthMismatch + c.badReply;
}
