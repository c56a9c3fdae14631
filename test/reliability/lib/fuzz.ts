// A seeded frame fuzzer against a live target on a veth pair.
//
// Frames come in kinds (see FrameGen.next): pure noise, random common
// headers, and for every command a well-formed header with random
// arguments, lying length fields and mutations of valid frames. They are sent
// in batches with the client socket's sendmmsg. Each batch ends, in the same
// sendmmsg, with frames that clear what the batch may have changed (MAC
// mask, reserve list: their directive addresses come from a small pool, so
// one spoofed edit from a pool member always empties the list) and a probe,
// a Query Config from the client's own MAC: a reply means the daemon is alive
// and has handled the batch (one system call puts the frames on one CPU's
// backlog in order; separate sends could overtake each other).
//
// What must hold afterwards (checked by the callers, see fuzz.test.ts and
// scripts/reliability/fuzz.js):
//  - the daemon never exits (crash) and always answers the probe (hang);
//  - every reply it sent obeys the reply rules: R set, Ver 1, our address and
//    MAC, at least 60 bytes, within the MTU, padding all zero;
//  - a protected range of the export, written through AoE before the fuzzing,
//    reads back unchanged. Fuzz frames that are WRITE commands (0x30, 0x34) by
//    their opcode byte, whatever their other fields, have their LBA moved out
//    of that range before they are sent, so any change there means the daemon
//    wrote where no frame asked it to;
//  - the backing file outside the export window (-o/-l) is unchanged.

import { AoeClient, ReceivedFrame } from '../../../src/client/client';
import { formatMac } from '../../../src/client/mac';
import { writeConfigQuery, writeMaskRequest, writeReserve } from '../../../src/client/requests';
import { sleep } from '../../../lab/common';
import { replyContentLength } from '../../helpers/replies';
import { Rng } from './harness';

export interface FuzzTarget {
  mac: Uint8Array;
  shelf: number;
  slot: number;
  /** Exported sectors. */
  sectors: number;
  /** MTU of the link (frames up to mtu + 14 bytes). */
  mtu: number;
}

export const enum Kind {
  Noise = 0,
  Header = 1,
  Ata = 2,
  Config = 3,
  Mask = 4,
  Reserve = 5,
  Mutant = 6,
  Count = 7,
}

export const KIND_NAMES = ['noise', 'header', 'ata', 'config', 'mask', 'reserve', 'mutant'];

/** Cumulative weights (out of 100) of the kinds. */
const WEIGHTS = [5, 15, 50, 63, 75, 83, 100];

const ATA_OPCODES = [0xec, 0x20, 0x24, 0x30, 0x34, 0xe7, 0xea, 0xe5, 0x25, 0x35, 0xc8, 0xca, 0xb0, 0xef, 0x00, 0xff];
const CONFIG_STRINGS = ['', 'a', 'ab', 'fuzz', 'fuzz-target', 'x'.repeat(200)];

/** Builds fuzz frames into a caller's buffer; all choices come from one seeded Rng. */
export class FrameGen {
  readonly rng: Rng;
  /** Source and directive addresses; the client's own MAC is not among them. */
  readonly pool: Uint8Array[];
  readonly kinds = new Float64Array(Kind.Count);
  /** WRITE frames whose LBA was moved out of the protected range. */
  moved = 0;

  constructor(
    seed: number,
    readonly target: FuzzTarget,
    readonly clientMac: Uint8Array,
    /** Export LBAs [protect[0], protect[1]) that no fuzz WRITE may address. */
    readonly protect: [number, number],
    /**
     * Send some frames with the target's own MAC as the source (default
     * true). Not on a bridge: it would learn the target's address on the
     * fuzzer's port and send the target's traffic there.
     */
    readonly spoofTarget = true,
    poolSize = 8,
  ) {
    this.rng = new Rng(seed);
    this.pool = [];
    for (let i = 0; i < poolSize; i++) this.pool.push(Uint8Array.from([0x02, 0xf0, 0x22, 0x00, 0x00, i + 1]));
  }

  get maxFrame(): number {
    return this.target.mtu + 14;
  }

  private srcMac(): Uint8Array {
    const r = this.rng;
    const x = r.int(100);
    if (x < 65) return r.pick(this.pool);
    if (x < 80) return this.clientMac;
    if (x < 82) return this.spoofTarget ? this.target.mac : this.clientMac;
    const m = new Uint8Array(6);
    r.fill(m, 0, 6);
    return m;
  }

  private dstMac(): Uint8Array {
    const r = this.rng;
    const x = r.int(100);
    if (x < 80) return this.target.mac;
    if (x < 95) return BCAST;
    const m = new Uint8Array(6);
    r.fill(m, 0, 6);
    return m;
  }

  private addr(): { dst: Uint8Array; src: Uint8Array; shelf: number; slot: number } {
    const r = this.rng;
    const x = r.int(100);
    let shelf = this.target.shelf;
    let slot = this.target.slot;
    if (x >= 80 && x < 90) {
      shelf = 0xffff;
      slot = 0xff;
    } else if (x >= 90 && x < 94) {
      shelf = 0xffff;
    } else if (x >= 94 && x < 97) {
      slot = 0xff;
    } else if (x >= 97) {
      shelf = r.int(0x10000);
      slot = r.int(0x100);
    }
    return { dst: this.dstMac(), src: this.srcMac(), shelf, slot };
  }

  /** Common header with mostly-valid Ver/flags. */
  private header(buf: Uint8Array, off: number, command: number): void {
    const r = this.rng;
    const a = this.addr();
    buf.set(a.dst, off);
    buf.set(a.src, off + 6);
    buf[off + 12] = 0x88;
    buf[off + 13] = 0xa2;
    const ver = r.chance(0.93) ? 1 : r.int(16);
    // R clear nearly always (the socket filter drops R set anyway); other flag bits random.
    const flags = r.chance(0.95) ? r.int(16) & 0x07 : r.int(16);
    buf[off + 14] = (ver << 4) | flags;
    buf[off + 15] = r.chance(0.8) ? 0 : r.int(256);
    buf[off + 16] = a.shelf >> 8;
    buf[off + 17] = a.shelf & 0xff;
    buf[off + 18] = a.slot;
    buf[off + 19] = command;
    const tag = r.u32();
    buf[off + 20] = tag >>> 24;
    buf[off + 21] = (tag >>> 16) & 0xff;
    buf[off + 22] = (tag >>> 8) & 0xff;
    buf[off + 23] = tag & 0xff;
  }

  /** Writes one frame at buf[off] (room for maxFrame bytes); returns its length. */
  next(buf: Uint8Array, off: number): number {
    const r = this.rng;
    const w = r.int(100);
    let kind = 0;
    while (w >= WEIGHTS[kind]) kind++;
    this.kinds[kind]++;
    let len: number;
    switch (kind) {
      case Kind.Noise:
        len = this.noise(buf, off);
        break;
      case Kind.Header:
        len = this.randomHeader(buf, off);
        break;
      case Kind.Ata:
        len = this.ata(buf, off);
        break;
      case Kind.Config:
        len = this.config(buf, off);
        break;
      case Kind.Mask:
        len = this.mask(buf, off);
        break;
      case Kind.Reserve:
        len = this.reserve(buf, off);
        break;
      default:
        len = this.mutant(buf, off);
    }
    this.guard(buf, off, len);
    return len;
  }

  private noise(buf: Uint8Array, off: number): number {
    const r = this.rng;
    const len = r.chance(0.5) ? r.int(80) : r.int(this.maxFrame + 1);
    r.fill(buf, off, len);
    if (len >= 14 && r.chance(0.85)) {
      buf[off + 12] = 0x88;
      buf[off + 13] = 0xa2;
    }
    if (len >= 6 && r.chance(0.7)) buf.set(this.dstMac(), off);
    return len;
  }

  private randomHeader(buf: Uint8Array, off: number): number {
    const r = this.rng;
    const len = r.chance(0.6) ? r.range(14, 80) : r.range(14, this.maxFrame);
    r.fill(buf, off, len);
    if (len < 24) {
      buf.set(this.dstMac(), off);
      buf[off + 12] = 0x88;
      buf[off + 13] = 0xa2;
      return len;
    }
    this.header(buf, off, r.chance(0.85) ? r.int(4) : r.int(256));
    // Fully random Ver/flags/error now and then.
    if (r.chance(0.3)) buf[off + 14] = r.int(256);
    return len;
  }

  private lbaFor(count: number): number {
    const r = this.rng;
    const n = this.target.sectors;
    switch (r.int(12)) {
      case 0:
        return 0;
      case 1:
        return Math.max(0, n - count);
      case 2:
        return n - 1;
      case 3:
        return n;
      case 4:
        return n + 1;
      case 5:
        return 0x0fffffff;
      case 6:
        return 0xffffffffffff;
      case 7:
        return r.u32() * 0x10000 + r.int(0x10000);
      case 8:
        return n + r.int(1 << 20);
      default:
        return r.int(n);
    }
  }

  private ata(buf: Uint8Array, off: number): number {
    const r = this.rng;
    this.header(buf, off, 0);
    const op = r.chance(0.85) ? r.pick(ATA_OPCODES) : r.int(256);
    const maxs = Math.floor((this.target.mtu - 36) / 512);
    const counts = [0, 1, 1, 2, maxs, maxs + 1, 255, r.int(256)];
    const count = r.pick(counts) & 0xff;
    const ext = op === 0x24 || op === 0x34 || op === 0xea || op === 0x25 || op === 0x35;
    let aflags = (ext ? 0x40 : 0) | (op === 0x30 || op === 0x34 ? 0x01 : 0);
    if (r.chance(0.2)) aflags = r.int(256);
    buf[off + 24] = aflags;
    buf[off + 25] = r.chance(0.8) ? 0 : r.int(256);
    buf[off + 26] = count;
    buf[off + 27] = op;
    const lba = this.lbaFor(count || 1);
    if (ext || r.chance(0.1)) {
      writeLe48(buf, off + 28, lba);
    } else {
      const l = lba & 0x0fffffff;
      buf[off + 28] = l & 0xff;
      buf[off + 29] = (l >>> 8) & 0xff;
      buf[off + 30] = (l >>> 16) & 0xff;
      buf[off + 31] = (r.chance(0.8) ? 0xe0 : r.int(16) << 4) | (l >>> 24);
      buf[off + 32] = r.chance(0.9) ? 0 : r.int(256);
      buf[off + 33] = r.chance(0.9) ? 0 : r.int(256);
    }
    buf[off + 34] = r.chance(0.9) ? 0 : r.int(256);
    buf[off + 35] = r.chance(0.9) ? 0 : r.int(256);
    const room = this.maxFrame - 36;
    let payload: number;
    const want = count * 512;
    switch (r.int(6)) {
      case 0:
      case 1:
        payload = Math.min(want, room);
        break;
      case 2:
        payload = want > 0 ? r.int(Math.min(want, room + 1)) : 0;
        break;
      case 3:
        payload = Math.min(room, want + r.int(600));
        break;
      case 4:
        payload = r.int(room + 1);
        break;
      default:
        payload = 0;
    }
    r.fill(buf, off + 36, payload);
    return 36 + payload;
  }

  private config(buf: Uint8Array, off: number): number {
    const r = this.rng;
    this.header(buf, off, 1);
    r.fill(buf, off + 24, 5); // buffer count, firmware, sector count: ignored by targets
    const ccmd = r.chance(0.85) ? r.int(5) : r.int(16);
    buf[off + 29] = (r.chance(0.7) ? 0x10 : r.int(16) << 4) | ccmd;
    const room = this.maxFrame - 32;
    let str: Uint8Array;
    if (r.chance(0.7)) {
      str = Buffer.from(r.pick(CONFIG_STRINGS), 'latin1');
    } else {
      str = new Uint8Array(Math.min(room, r.chance(0.5) ? r.int(40) : r.int(1100)));
      r.fill(str, 0, str.length);
    }
    const present = Math.min(str.length, room);
    buf.set(str.subarray(0, present), off + 32);
    const declared = [present, present, present + 1, Math.max(0, present - 1), 1024, 1025, 0xffff, r.int(0x10000), r.int(2048)];
    const cslen = r.pick(declared) & 0xffff;
    buf[off + 30] = cslen >> 8;
    buf[off + 31] = cslen & 0xff;
    let len = 32 + present;
    if (r.chance(0.1)) len = r.range(24, Math.min(len, 40));
    return len;
  }

  private mask(buf: Uint8Array, off: number): number {
    const r = this.rng;
    this.header(buf, off, 2);
    const mcmd = r.chance(0.85) ? r.int(2) : r.int(256);
    const room = Math.floor((this.maxFrame - 28) / 8);
    const present = Math.min(room, r.chance(0.7) ? r.int(6) : r.int(140));
    buf[off + 24] = r.chance(0.9) ? 0 : r.int(256);
    buf[off + 25] = mcmd;
    buf[off + 26] = r.chance(0.9) ? 0 : r.int(256);
    const declared = [present, present, present + 1, Math.max(0, present - 1), 255, r.int(256)];
    buf[off + 27] = r.pick(declared) & 0xff;
    for (let i = 0; i < present; i++) {
      const p = off + 28 + i * 8;
      buf[p] = r.chance(0.9) ? 0 : r.int(256);
      buf[p + 1] = r.chance(0.9) ? 1 + r.int(2) : r.int(256);
      buf.set(r.pick(this.pool), p + 2);
    }
    let len = 28 + present * 8;
    if (r.chance(0.1)) len = r.range(24, len);
    return len;
  }

  private reserve(buf: Uint8Array, off: number): number {
    const r = this.rng;
    this.header(buf, off, 3);
    const rcmd = r.chance(0.85) ? r.int(3) : r.int(256);
    const room = Math.floor((this.maxFrame - 26) / 6);
    const present = Math.min(room, r.chance(0.7) ? r.int(5) : r.int(200));
    buf[off + 24] = rcmd;
    const declared = [present, present, present + 1, Math.max(0, present - 1), 128, 129, 255, r.int(256)];
    buf[off + 25] = r.pick(declared) & 0xff;
    for (let i = 0; i < present; i++) buf.set(r.pick(this.pool), off + 26 + i * 6);
    let len = 26 + present * 6;
    if (r.chance(0.1)) len = r.range(24, len);
    return len;
  }

  private mutant(buf: Uint8Array, off: number): number {
    const r = this.rng;
    const base = r.int(4);
    let len =
      base === 0
        ? this.ata(buf, off)
        : base === 1
          ? this.config(buf, off)
          : base === 2
            ? this.mask(buf, off)
            : this.reserve(buf, off);
    const flips = 1 + r.int(8);
    for (let i = 0; i < flips; i++) {
      const at = r.chance(0.7) ? 14 + r.int(Math.min(30, Math.max(1, len - 14))) : r.int(Math.max(1, len));
      if (r.chance(0.5)) buf[off + at] ^= 1 << r.int(8);
      else buf[off + at] = r.int(256);
    }
    if (r.chance(0.15)) len = r.int(len + 1);
    if (r.chance(0.1)) {
      const extra = r.int(this.maxFrame - len + 1);
      r.fill(buf, off + len, extra);
      len += extra;
    }
    return len;
  }

  /**
   * Keeps WRITE frames out of the protected range: any frame whose command
   * byte is ATA and whose opcode byte is a WRITE gets its LBA moved past it.
   * Conservative on purpose: applied whatever the other fields say.
   */
  private guard(buf: Uint8Array, off: number, len: number): void {
    if (len >= 28 && buf[off + 12] === 0x88 && buf[off + 13] === 0xa2 && buf[off + 19] === 2) this.guardMask(buf, off, len);
    if (len < 36 || buf[off + 12] !== 0x88 || buf[off + 13] !== 0xa2 || buf[off + 19] !== 0) return;
    const op = buf[off + 27];
    if (op !== 0x30 && op !== 0x34) return;
    const [p0, p1] = this.protect;
    // Both readings of the LBA bytes must miss the range.
    const lba28 = buf[off + 28] | (buf[off + 29] << 8) | (buf[off + 30] << 16) | ((buf[off + 31] & 0x0f) << 24);
    const lba48 = readLe48(buf, off + 28);
    const count = buf[off + 26] === 0 ? 65536 : buf[off + 26];
    const hits = (l: number): boolean => l < p1 && l + count > p0;
    if (!hits(lba28) && !hits(lba48)) return;
    this.moved++;
    // p1 + something < 2^24 with the 28-bit device nibble cleared: both readings equal and past the range.
    const to = p1 + this.rng.int(4096);
    buf[off + 28] = to & 0xff;
    buf[off + 29] = (to >>> 8) & 0xff;
    buf[off + 30] = (to >>> 16) & 0xff;
    buf[off + 31] = buf[off + 31] & 0xf0;
    buf[off + 32] = 0;
    buf[off + 33] = 0;
    if (
      hits(buf[off + 28] | (buf[off + 29] << 8) | (buf[off + 30] << 16) | ((buf[off + 31] & 0x0f) << 24)) ||
      hits(readLe48(buf, off + 28))
    ) {
      // The 48-bit reading with a device nibble in lba3 is far above the range; this cannot happen.
      throw new Error('fuzz guard failed to move a WRITE out of the protected range');
    }
  }

  /**
   * Mac Mask frames (after mutation, whatever their other fields) name only
   * pool addresses in their directives, so that the clean-up between batches
   * can always empty the list again (a non-member cannot edit it).
   */
  private guardMask(buf: Uint8Array, off: number, len: number): void {
    for (let p = off + 28; p + 8 <= off + len; p += 8) {
      let inPool = false;
      for (const m of this.pool) {
        let same = true;
        for (let i = 0; i < 6; i++) if (buf[p + 2 + i] !== m[i]) same = false;
        if (same) {
          inPool = true;
          break;
        }
      }
      if (!inPool) buf.set(this.pool[buf[p + 7] % this.pool.length], p + 2);
    }
  }
}

const BCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

function writeLe48(buf: Uint8Array, off: number, v: number): void {
  const lo = v >>> 0;
  const hi = Math.floor(v / 0x100000000) & 0xffff;
  buf[off] = lo & 0xff;
  buf[off + 1] = (lo >>> 8) & 0xff;
  buf[off + 2] = (lo >>> 16) & 0xff;
  buf[off + 3] = lo >>> 24;
  buf[off + 4] = hi & 0xff;
  buf[off + 5] = hi >>> 8;
}

function readLe48(buf: Uint8Array, off: number): number {
  const lo = (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
  return (buf[off + 4] | (buf[off + 5] << 8)) * 0x100000000 + lo;
}

// ------------------------------------------------------------------ replies

/** What is wrong with one reply seen on the wire (no request needed); empty when nothing. */
export function replyViolations(b: Uint8Array, target: FuzzTarget): string[] {
  const p: string[] = [];
  if (b.length < 60) p.push(`reply of ${b.length} bytes (< 60)`);
  if (b.length > target.mtu + 14) p.push(`reply of ${b.length} bytes exceeds the MTU`);
  if (b.length < 24) return p;
  for (let i = 0; i < 6; i++) {
    if (b[6 + i] !== target.mac[i]) {
      p.push(`source ${formatMac(b, 6)} is not the target's`);
      break;
    }
  }
  if (b[14] >> 4 !== 1) p.push(`Ver ${b[14] >> 4}`);
  if ((b[14] & 0x08) === 0) p.push('R clear');
  if ((b[14] & 0x03) !== 0) p.push('MBZ flags set');
  const e = (b[14] & 0x04) !== 0;
  if (e !== (b[15] !== 0)) p.push(`E ${e ? 'set' : 'clear'} with error ${b[15]}`);
  if (((b[16] << 8) | b[17]) !== target.shelf || b[18] !== target.slot)
    p.push(`address ${(b[16] << 8) | b[17]}.${b[18]} is not ours`);
  if (b[19] === 0 && b.length >= 36 && !(e && (b[15] === 1 || b[15] === 5)) && (b[34] !== 0 || b[35] !== 0))
    p.push('ATA reserved bytes not zero');
  const n = replyContentLength(b);
  if (n > b.length) p.push(`content of ${n} bytes in a ${b.length}-byte reply`);
  else if (b.length !== Math.max(60, n)) p.push(`length ${b.length} for content ${n}`);
  for (let i = Math.min(n, b.length); i < b.length; i++) {
    if (b[i] !== 0) {
      p.push(`padding byte ${i} is 0x${b[i].toString(16)}`);
      break;
    }
  }
  return p;
}

// ------------------------------------------------------------------ runner

export interface FuzzRunOptions {
  client: AoeClient;
  target: FuzzTarget;
  seed: number;
  frames: number;
  /** Frames per sendmmsg batch, followed by the clean-up frames and a probe (default 256). */
  batch?: number;
  protect: [number, number];
  /** Called after every batch; return false to stop (e.g. the daemon exited). */
  alive: () => boolean;
  /** How long a probe may go unanswered before it counts as a hang (default 10 s). */
  hangMs?: number;
  /** Progress line every this many frames (0: none). */
  progressEvery?: number;
  log?: (line: string) => void;
  /** Keep the frames of this many most recent batches for minimisation (default 2). */
  keepBatches?: number;
  /** The link is a bridge: never spoof the target's MAC (see FrameGen). */
  bridged?: boolean;
}

export interface FuzzStats {
  seed: number;
  /** Frames handed to the kernel. */
  sent: number;
  /** Frames not sent: shorter than an Ethernet header (no socket sends those), or refused by the kernel. */
  refused: number;
  generated: number;
  kinds: Record<string, number>;
  batches: number;
  probes: number;
  crashes: number;
  hangs: number;
  replies: number;
  violations: number;
  firstViolations: { problems: string[]; hex: string }[];
  movedWrites: number;
  elapsedMs: number;
  framesPerSecond: number;
  /** The recent batches (hex frames), kept for minimising a crash or hang. */
  recent: string[][];
  stoppedEarly: boolean;
}

const EAGAIN = 11;
const ENOBUFS = 105;

/** Sends `count` frames from `arena` described by `desc`; returns [sent, refused]. */
async function sendAll(client: AoeClient, arena: Uint8Array, desc: Uint32Array, count: number): Promise<[number, number]> {
  let at = 0;
  let sent = 0;
  let refused = 0;
  let waits = 0;
  while (at < count) {
    const r = client.socket.send(arena, desc.subarray(at * 2), count - at);
    if (r > 0) {
      sent += r;
      at += r;
      waits = 0;
      continue;
    }
    if (r === 0 || r === -EAGAIN || r === -ENOBUFS) {
      if (++waits > 2000) throw new Error(`the socket took no frame for ${waits} tries (errno ${-r})`);
      await new Promise((res) => setImmediate(res));
      continue;
    }
    // This frame was refused by the kernel (EINVAL, EMSGSIZE): skip it.
    refused++;
    at++;
  }
  return [sent, refused];
}

/** Builds the clean-up frames: from every pool address, a mask edit deleting the pool; then reserve force-set empty. */
function cleanupFrames(gen: FrameGen, target: FuzzTarget, tag: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const directives = gen.pool.map((mac) => ({ command: 2, mac }));
  for (const src of [...gen.pool]) {
    const b = new Uint8Array(60 + directives.length * 8);
    const addr = { dst: target.mac, src, shelf: target.shelf, slot: target.slot };
    const n = writeMaskRequest(b, 0, addr, tag, 1, directives);
    out.push(b.subarray(0, Math.max(60, n)));
  }
  const r = new Uint8Array(60);
  writeReserve(r, 0, { dst: target.mac, src: gen.pool[0], shelf: target.shelf, slot: target.slot }, tag, 2, []);
  out.push(r);
  return out;
}

/** Runs the fuzzer; resolves with its statistics (never throws for a target failure: see crashes/hangs). */
export async function runFuzz(o: FuzzRunOptions): Promise<FuzzStats> {
  const batch = o.batch ?? 256;
  const hangMs = o.hangMs ?? 10000;
  const log = o.log ?? (() => undefined);
  const keep = o.keepBatches ?? 2;
  const gen = new FrameGen(o.seed, o.target, o.client.mac, o.protect, !o.bridged);
  const stride = Math.max(1152, Math.ceil((o.target.mtu + 14) / 64) * 64);
  const stats: FuzzStats = {
    seed: o.seed,
    sent: 0,
    refused: 0,
    generated: 0,
    kinds: {},
    batches: 0,
    probes: 0,
    crashes: 0,
    hangs: 0,
    replies: 0,
    violations: 0,
    firstViolations: [],
    movedWrites: 0,
    elapsedMs: 0,
    framesPerSecond: 0,
    recent: [],
    stoppedEarly: false,
  };
  let probeTag = -1;
  let probeAnswered: (() => void) | null = null;
  const unlisten = o.client.listen((f: ReceivedFrame) => {
    if (!f.header.response) return;
    stats.replies++;
    const v = replyViolations(f.bytes, o.target);
    if (v.length > 0) {
      stats.violations++;
      if (stats.firstViolations.length < 10)
        stats.firstViolations.push({ problems: v, hex: Buffer.from(f.bytes).toString('hex') });
    }
    if (f.header.tag === probeTag && f.header.command === 1 && !f.header.error && probeAnswered) probeAnswered();
  });
  const cleanup = cleanupFrames(gen, o.target, 0x7eadbeef);
  // The batch arena also holds the clean-up frames and the probe, sent in the
  // same sendmmsg right after the batch: one syscall, one CPU, one backlog, so
  // they reach the daemon after the batch (separate sends may take another
  // CPU's backlog and overtake it).
  const tail = cleanup.length + 1;
  const arena = new Uint8Array(stride * (batch + tail));
  const desc = new Uint32Array((batch + tail) * 2);
  const tailArena = new Uint8Array(stride * tail);
  const tailDesc = new Uint32Array(tail * 2);
  const writeTail = (into: Uint8Array, d: Uint32Array, first: number): number => {
    for (let i = 0; i < cleanup.length; i++) {
      into.set(cleanup[i], (first + i) * stride);
      d[(first + i) * 2] = (first + i) * stride;
      d[(first + i) * 2 + 1] = cleanup[i].length;
    }
    probeTag = o.client.newTag();
    const at = (first + cleanup.length) * stride;
    writeConfigQuery(into, at, { dst: o.target.mac, src: o.client.mac, shelf: o.target.shelf, slot: o.target.slot }, probeTag, 0);
    into.fill(0, at + 32, at + 60);
    d[(first + cleanup.length) * 2] = at;
    d[(first + cleanup.length) * 2 + 1] = 60;
    return first + tail;
  };
  const waitProbe = (ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        probeAnswered = null;
        resolve(false);
      }, ms);
      probeAnswered = () => {
        clearTimeout(timer);
        probeAnswered = null;
        resolve(true);
      };
    });
  const started = performance.now();
  let nextProgress = o.progressEvery ?? 0;
  try {
    while (stats.generated < o.frames) {
      const want = Math.min(batch, o.frames - stats.generated);
      let n = 0;
      for (let i = 0; i < want; i++) {
        const off = n * stride;
        const len = gen.next(arena, off);
        // Shorter than an Ethernet header: no socket can send it (the addon refuses it too).
        if (len < 14) {
          stats.refused++;
          continue;
        }
        desc[n * 2] = off;
        desc[n * 2 + 1] = len;
        n++;
      }
      stats.generated += want;
      if (keep > 0) {
        const frames: string[] = [];
        for (let i = 0; i < n; i++)
          frames.push(Buffer.from(arena.subarray(desc[i * 2], desc[i * 2] + desc[i * 2 + 1])).toString('hex'));
        stats.recent.push(frames);
        if (stats.recent.length > keep) stats.recent.shift();
      }
      const total = writeTail(arena, desc, n);
      const answeredSoon = waitProbe(500);
      const [sent, refused] = await sendAll(o.client, arena, desc, total);
      stats.sent += sent - tail;
      stats.refused += refused;
      stats.batches++;
      stats.probes++;
      let answered = await answeredSoon;
      // Not answered yet: the daemon may be busy (or dead, or hung). Clean up and probe again, waiting longer each time.
      const deadline = performance.now() + hangMs;
      for (let wait = 250; !answered && o.alive() && performance.now() < deadline; wait = Math.min(wait * 2, 2000)) {
        writeTail(tailArena, tailDesc, 0);
        const again = waitProbe(wait);
        await sendAll(o.client, tailArena, tailDesc, tail);
        stats.probes++;
        answered = await again;
      }
      if (!o.alive()) {
        stats.crashes++;
        stats.stoppedEarly = true;
        break;
      }
      if (!answered) {
        stats.hangs++;
        stats.stoppedEarly = true;
        break;
      }
      if (nextProgress > 0 && stats.generated >= nextProgress) {
        nextProgress += o.progressEvery!;
        const s = (performance.now() - started) / 1000;
        log(
          `${stats.generated} frames, ${(stats.sent / s).toFixed(0)} frames/s, ${stats.replies} replies, ${stats.violations} bad replies, ${stats.probes} probes`,
        );
      }
    }
  } finally {
    unlisten();
  }
  // Replies still in flight when the last probe returned arrive within a moment.
  await sleep(50);
  stats.elapsedMs = performance.now() - started;
  stats.framesPerSecond = stats.sent / (stats.elapsedMs / 1000);
  stats.movedWrites = gen.moved;
  for (let k = 0; k < Kind.Count; k++) stats.kinds[KIND_NAMES[k]] = gen.kinds[k];
  return stats;
}

/**
 * Replays hex frames one at a time against a (fresh) target, probing after
 * each; returns the first frame after which the target died or stopped
 * answering, or undefined.
 */
export async function findCrasher(
  client: AoeClient,
  target: FuzzTarget,
  frames: readonly string[],
  alive: () => boolean,
  hangMs = 5000,
): Promise<string | undefined> {
  const probe = new Uint8Array(60);
  const cleanup = cleanupFrames(new FrameGen(0, target, client.mac, [0, 0]), target, 0x7eadbeef);
  for (const h of frames) {
    const f = Uint8Array.from(Buffer.from(h, 'hex'));
    try {
      client.sendRaw(f);
    } catch {
      continue; // refused by the kernel: cannot be the culprit
    }
    let answered = false;
    for (let i = 0; i < 3 && !answered && alive(); i++) {
      for (const c of cleanup) client.sendRaw(c);
      const tag = client.newTag();
      writeConfigQuery(probe, 0, { dst: target.mac, src: client.mac, shelf: target.shelf, slot: target.slot }, tag, 0);
      const got = await client.rawExchange(probe, { timeoutMs: hangMs / 3, max: 1 });
      answered = got.some((x) => x.header.response);
    }
    if (!alive() || !answered) return h;
  }
  return undefined;
}
