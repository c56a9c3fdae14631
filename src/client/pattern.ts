// The project's test data pattern: sector N (512 bytes) begins with ASCII
// "SECT" and N as 8 decimal digits (N modulo 10^8, zero padded), followed by
// 500 bytes from a xorshift32 generator seeded from the whole of N. Any copy of
// a sector at the wrong place, a stale sector or a torn one is detected, and
// a backing file can be made to match by filling it with fillSector().

import { SECTOR_SIZE } from './wire';

const HEADER_LENGTH = 12;
const WORDS = (SECTOR_SIZE - HEADER_LENGTH) / 4; // 125

function seedFor(n: number): number {
  const lo = n >>> 0;
  const hi = Math.floor(n / 0x100000000) >>> 0;
  let s = Math.imul(lo ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(hi + 0x27d4eb2f, 0x85ebca6b);
  s ^= s >>> 15;
  s = Math.imul(s, 0x2c1b3c6d);
  s ^= s >>> 12;
  return s === 0 ? 0x1234567 : s;
}

function writeHeader(buf: Uint8Array, off: number, n: number): void {
  buf[off] = 0x53; // S
  buf[off + 1] = 0x45; // E
  buf[off + 2] = 0x43; // C
  buf[off + 3] = 0x54; // T
  let d = n % 100000000;
  for (let i = 11; i >= 4; i--) {
    buf[off + i] = 0x30 + (d % 10);
    d = Math.floor(d / 10);
  }
}

/** Writes the 512 bytes of sector `n` at buf[off]. */
export function fillSector(buf: Uint8Array, off: number, n: number): void {
  writeHeader(buf, off, n);
  let x = seedFor(n);
  let p = off + HEADER_LENGTH;
  for (let i = 0; i < WORDS; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[p] = x & 0xff;
    buf[p + 1] = (x >>> 8) & 0xff;
    buf[p + 2] = (x >>> 16) & 0xff;
    buf[p + 3] = (x >>> 24) & 0xff;
    p += 4;
  }
}

/** Fills `count` consecutive sectors first..first+count-1 at buf[off]. */
export function fillSectors(buf: Uint8Array, off: number, first: number, count: number): void {
  for (let i = 0; i < count; i++) fillSector(buf, off + i * SECTOR_SIZE, first + i);
}

/** A new 512-byte array holding sector `n`. */
export function sectorPattern(n: number): Uint8Array {
  const b = new Uint8Array(SECTOR_SIZE);
  fillSector(b, 0, n);
  return b;
}

/** -1 when buf[off..off+512) is sector `n`, else the index (0..511) of the first wrong byte. */
export function checkSector(buf: Uint8Array, off: number, n: number): number {
  if (buf[off] !== 0x53 || buf[off + 1] !== 0x45 || buf[off + 2] !== 0x43 || buf[off + 3] !== 0x54) {
    for (let i = 0; i < 4; i++) if (buf[off + i] !== 'SECT'.charCodeAt(i)) return i;
  }
  const d = n % 100000000;
  for (let i = 4, p10 = 10000000; i < 12; i++, p10 /= 10) {
    if (buf[off + i] !== 0x30 + (Math.floor(d / p10) % 10)) return i;
  }
  let x = seedFor(n);
  let p = off + HEADER_LENGTH;
  for (let i = 0; i < WORDS; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const got = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24) | 0;
    if (got !== x) {
      for (let k = 0; k < 4; k++) if (buf[p + k] !== ((x >>> (8 * k)) & 0xff)) return p + k - off;
    }
    p += 4;
  }
  return -1;
}

/** -1 when all `count` sectors starting at `first` match, else the index of the first wrong sector. */
export function checkSectors(buf: Uint8Array, off: number, first: number, count: number): number {
  for (let i = 0; i < count; i++) if (checkSector(buf, off + i * SECTOR_SIZE, first + i) >= 0) return i;
  return -1;
}

const ZEROS = Buffer.alloc(64 * 1024);

/** True when `length` bytes at buf[off] are all zero (what a null backend returns); memcmp, no allocation. */
export function isZero(buf: Uint8Array, off: number, length: number): boolean {
  for (let done = 0; done < length; done += ZEROS.length) {
    const n = Math.min(ZEROS.length, length - done);
    if (ZEROS.compare(buf, off + done, off + done + n, 0, n) !== 0) return false;
  }
  return true;
}

/** The sector number a pattern sector claims in its header (its 8 digits), or -1 when it has no header. */
export function patternLabel(buf: Uint8Array, off: number): number {
  if (buf[off] !== 0x53 || buf[off + 1] !== 0x45 || buf[off + 2] !== 0x43 || buf[off + 3] !== 0x54) return -1;
  let v = 0;
  for (let i = 4; i < 12; i++) {
    const c = buf[off + i] - 0x30;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

// --- the pattern of a whole range ---------------------------------------------
//
// The test pattern of a whole LBA range, computed once. Checking a read or
// filling a write is then one memcmp or memcpy (Buffer.compare/copy with
// offsets: no allocation) instead of regenerating 512 bytes per sector in
// JavaScript, which at 17 sectors per reply cost the load generator more CPU
// than the targets it measures.

/** Largest range the load engine turns into an image by itself (256 MiB). */
export const PATTERN_IMAGE_MAX_SECTORS = 1 << 19;

export class PatternImage {
  readonly bytes: Buffer;

  constructor(
    readonly first: number,
    readonly count: number,
  ) {
    this.bytes = Buffer.allocUnsafe(count * SECTOR_SIZE);
    const chunk = 16384; // sectors per fill call, so progress stays cache-friendly
    for (let i = 0; i < count; i += chunk) fillSectors(this.bytes, i * SECTOR_SIZE, first + i, Math.min(chunk, count - i));
  }

  /** True when sectors lba..lba+n-1 all lie in the image. */
  covers(lba: number, n: number): boolean {
    return lba >= this.first && lba + n <= this.first + this.count;
  }

  /** True when buf[off..] holds the pattern of sectors lba..lba+n-1 (which the image must cover). */
  matches(buf: Uint8Array, off: number, lba: number, n: number): boolean {
    const src = (lba - this.first) * SECTOR_SIZE;
    const len = n * SECTOR_SIZE;
    return this.bytes.compare(buf, off, off + len, src, src + len) === 0;
  }

  /** Writes the pattern of sectors lba..lba+n-1 to buf[off..]. */
  copyTo(buf: Uint8Array, off: number, lba: number, n: number): void {
    const src = (lba - this.first) * SECTOR_SIZE;
    this.bytes.copy(buf, off, src, src + n * SECTOR_SIZE);
  }
}
