// Which blocks of a view may differ from the image, so that a view's reads
// of the blocks it never wrote go to the image's file. XFS and btrfs keep a
// page cache per file, not per shared block: without this every view would
// read the whole image from disk again into a cache of its own, and thirty
// machines booting one image would cache it thirty times.
//
// A clear bit is a promise: the view's block holds exactly the image's
// block. It holds for a fresh clone, a write marks its blocks before it is
// submitted, and after a restart or a revert the bits come from comparing
// the two files' extents (the same physical block in both is the same data).
// A set bit promises nothing: the view's own file is always right to read.

/** Blocks of 4 KiB: the page size, and the block size of XFS and btrfs as made by default. */
export const OWN_BLOCK_SHIFT = 12;
/** Bits per lazily made chunk: 2^15 blocks of 4 KiB, 128 MiB of the image in 4 KiB of memory. */
const CHUNK_SHIFT = 15;
const CHUNK_WORDS = 1 << (CHUNK_SHIFT - 5);

export class OwnBlocks {
  private chunks: (Uint32Array | undefined)[] = [];
  /** Every block counts as the view's own (its extents could not be read). */
  private all = false;

  /** Marks the blocks that [pos, pos+bytes) touches. */
  mark(pos: number, bytes: number): void {
    if (this.all || bytes <= 0) return;
    const last = Math.floor((pos + bytes - 1) / (1 << OWN_BLOCK_SHIFT));
    for (let b = Math.floor(pos / (1 << OWN_BLOCK_SHIFT)); b <= last; b++) {
      const c = Math.floor(b / (1 << CHUNK_SHIFT));
      let words = this.chunks[c];
      if (words === undefined) {
        words = new Uint32Array(CHUNK_WORDS);
        this.chunks[c] = words;
      }
      words[(b >>> 5) & (CHUNK_WORDS - 1)] |= 1 << (b & 31);
    }
  }

  /** True when any block that [pos, pos+bytes) touches is marked. No allocation: the frame path asks once per read. */
  any(pos: number, bytes: number): boolean {
    if (this.all) return true;
    const last = Math.floor((pos + bytes - 1) / (1 << OWN_BLOCK_SHIFT));
    for (let b = Math.floor(pos / (1 << OWN_BLOCK_SHIFT)); b <= last; b++) {
      const words = this.chunks[Math.floor(b / (1 << CHUNK_SHIFT))];
      if (words !== undefined && (words[(b >>> 5) & (CHUNK_WORDS - 1)] & (1 << (b & 31))) !== 0) return true;
    }
    return false;
  }

  markAll(): void {
    this.all = true;
    this.chunks = [];
  }

  /** Blocks marked (for tests and logs); -1 when all are. */
  count(): number {
    if (this.all) return -1;
    let n = 0;
    for (const words of this.chunks) {
      if (words === undefined) continue;
      for (let w of words) {
        for (; w !== 0; w &= w - 1) n++;
      }
    }
    return n;
  }
}

// FIEMAP extent flags (linux/fiemap.h).
const FIEMAP_EXTENT_UNWRITTEN = 0x800;
/** Extents whose physical address says nothing about their data. */
const FIEMAP_EXTENT_OPAQUE =
  0x2 /* UNKNOWN */ |
  0x4 /* DELALLOC */ |
  0x8 /* ENCODED */ |
  0x80 /* DATA_ENCRYPTED */ |
  0x100 /* NOT_ALIGNED */ |
  0x200 /* DATA_INLINE */ |
  0x400; /* DATA_TAIL */

/**
 * Marks in `own` every block of the first `size` bytes where the view's
 * extents may not hold the image's data: anything but a hole in both or the
 * same physical blocks (same offset, both written or both unwritten) in
 * both. Extents are (logical, physical, length, flags) quadruples in file
 * order, as fileExtents() gives them.
 */
export function markDiffering(image: Float64Array, view: Float64Array, size: number, own: OwnBlocks): void {
  let i = 0;
  let j = 0;
  let pos = 0;
  while (pos < size) {
    while (i < image.length && image[i] + image[i + 2] <= pos) i += 4;
    while (j < view.length && view[j] + view[j + 2] <= pos) j += 4;
    // What each file has at pos, and up to where.
    const inImage = i < image.length && image[i] <= pos;
    const inView = j < view.length && view[j] <= pos;
    const imageEnd = i >= image.length ? size : inImage ? image[i] + image[i + 2] : image[i];
    const viewEnd = j >= view.length ? size : inView ? view[j] + view[j + 2] : view[j];
    const end = Math.min(imageEnd, viewEnd, size);
    let same = !inImage && !inView;
    if (inImage && inView) {
      const fi = image[i + 3];
      const fv = view[j + 3];
      same =
        (fi & FIEMAP_EXTENT_OPAQUE) === 0 &&
        (fv & FIEMAP_EXTENT_OPAQUE) === 0 &&
        (fi & FIEMAP_EXTENT_UNWRITTEN) === (fv & FIEMAP_EXTENT_UNWRITTEN) &&
        image[i + 1] - image[i] === view[j + 1] - view[j];
    }
    if (!same) own.mark(pos, end - pos);
    pos = end;
  }
}
