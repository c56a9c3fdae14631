// The test pattern of a whole LBA range, computed once. Checking a read or
// filling a write is then one memcmp or memcpy (Buffer.compare/copy with
// offsets: no allocation) instead of regenerating 512 bytes per sector in
// JavaScript, which at 17 sectors per reply cost the load generator more CPU
// than the targets it measures.

import { fillSectors } from './pattern';
import { SECTOR_SIZE } from './wire';

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
