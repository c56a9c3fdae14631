// A bounded list of MAC addresses stored back to back in one Uint8Array:
// the shape of both the MAC mask list and the reserve list.

import { MAC_LIST_CAPACITY } from './constants';

export class MacList {
  readonly bytes: Uint8Array;
  count = 0;

  constructor(readonly capacity: number = MAC_LIST_CAPACITY) {
    this.bytes = new Uint8Array(capacity * 6);
  }

  /** Index of the address at buf[off..off+6), or -1. */
  indexOf(buf: Uint8Array, off: number): number {
    const b = this.bytes;
    for (let i = 0, p = 0; i < this.count; i++, p += 6) {
      if (
        b[p] === buf[off] &&
        b[p + 1] === buf[off + 1] &&
        b[p + 2] === buf[off + 2] &&
        b[p + 3] === buf[off + 3] &&
        b[p + 4] === buf[off + 4] &&
        b[p + 5] === buf[off + 5]
      )
        return i;
    }
    return -1;
  }

  has(buf: Uint8Array, off: number): boolean {
    return this.indexOf(buf, off) >= 0;
  }

  /** Adds an address; present already counts as success. False when full. */
  add(buf: Uint8Array, off: number): boolean {
    if (this.indexOf(buf, off) >= 0) return true;
    if (this.count >= this.capacity) return false;
    this.bytes.set(buf.subarray(off, off + 6), this.count * 6);
    this.count++;
    return true;
  }

  /** Removes an address; absent counts as success. */
  delete(buf: Uint8Array, off: number): void {
    const i = this.indexOf(buf, off);
    if (i < 0) return;
    this.bytes.copyWithin(i * 6, (i + 1) * 6, this.count * 6);
    this.count--;
    this.bytes.fill(0, this.count * 6, this.count * 6 + 6);
  }

  /** Replaces the contents with `n` addresses at buf[off..]; caller checks n <= capacity. */
  replace(buf: Uint8Array, off: number, n: number): void {
    this.count = 0;
    this.bytes.fill(0);
    for (let i = 0; i < n; i++) this.add(buf, off + i * 6);
  }

  copyFrom(other: MacList): void {
    this.bytes.set(other.bytes);
    this.count = other.count;
  }

  toStrings(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.count; i++) out.push(formatMac(this.bytes, i * 6));
    return out;
  }

  /** Replaces the contents from strings; throws on a malformed address or overflow. */
  setStrings(macs: readonly string[]): void {
    if (macs.length > this.capacity) {
      throw new Error(`${macs.length} MAC addresses given; the list holds at most ${this.capacity}`);
    }
    this.count = 0;
    this.bytes.fill(0);
    for (const m of macs) this.add(parseMac(m), 0);
  }
}

const HEX = '0123456789abcdef';

export function formatMac(buf: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const b = buf[off + i];
    if (i) s += ':';
    s += HEX[b >> 4] + HEX[b & 15];
  }
  return s;
}

/** Parses aa:bb:cc:dd:ee:ff, aa-bb-..., or aabbccddeeff (any case). */
export function parseMac(text: string): Uint8Array {
  const t = text.trim().toLowerCase();
  let hex: string;
  if (/^[0-9a-f]{12}$/.test(t)) hex = t;
  else if (/^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/.test(t)) hex = t.replace(/[:-]/g, '');
  else throw new Error(`"${text}" is not a MAC address; write it as aa:bb:cc:dd:ee:ff`);
  const mac = new Uint8Array(6);
  for (let i = 0; i < 6; i++) mac[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return mac;
}
