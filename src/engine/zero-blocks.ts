// detect-zeroes on writes smaller than a file system block. A punch of part
// of a block frees nothing, and the Linux initiator on a 1500-byte MTU
// writes 1 KiB at a time, so the io ring may look at the rest of a write's
// edge blocks after punching it and give a block back once it is all zero
// (IoOpFlag.ZeroBlocks). That look and its punch are two steps: another
// write to the same block landing between them would be lost. Writes of
// earlier batches may still be in the kernel, so this table keeps the
// writes of detect-zeroes exports that are, and the look is asked for only
// when none of them touches the blocks. (Writes earlier in the same batch
// reach the kernel after the look: the io ring submits a batch at its end.)

/** The block size the io ring looks at (native PUNCH_BLOCK). */
export const ZERO_BLOCK = 4096;

export class PartialBlockWrites {
  /** Request slots of tracked writes, and each slot's index in it (-1: not tracked). */
  private readonly list: Int32Array;
  private n = 0;
  private readonly at: Int32Array;
  private readonly exportId: Int32Array;
  private readonly store: Int32Array;
  /** Block-aligned byte range each write touches. */
  private readonly from: Float64Array;
  private readonly to: Float64Array;
  /** The batch each was pushed in: one of the current batch is not in the kernel yet. */
  private readonly batch: Uint32Array;
  private batchNo = 0;

  constructor(slots: number) {
    this.list = new Int32Array(slots);
    this.at = new Int32Array(slots).fill(-1);
    this.exportId = new Int32Array(slots);
    this.store = new Int32Array(slots);
    this.from = new Float64Array(slots);
    this.to = new Float64Array(slots);
    this.batch = new Uint32Array(slots);
  }

  /**
   * Whether a write of [pos, pos+bytes) to store `store` of export
   * `exportId` may have its edge blocks looked at: it is not whole blocks,
   * those blocks lie inside the export's own bytes [lo, hi) (another
   * export of the file, at -o/-l that are not whole blocks, may share one),
   * and no write in the kernel touches them.
   */
  mayLook(exportId: number, store: number, pos: number, bytes: number, lo: number, hi: number): boolean {
    if (pos % ZERO_BLOCK === 0 && bytes % ZERO_BLOCK === 0) return false; // whole blocks: the punch frees them
    const from = pos - (pos % ZERO_BLOCK);
    const to = Math.ceil((pos + bytes) / ZERO_BLOCK) * ZERO_BLOCK;
    if (from < lo || to > hi) return false;
    for (let i = 0; i < this.n; i++) {
      const q = this.list[i];
      if (this.batch[q] === this.batchNo || this.exportId[q] !== exportId || this.store[q] !== store) continue;
      if (this.from[q] < to && this.to[q] > from) return false;
    }
    return true;
  }

  /** Request slot `q` writes [pos, pos+bytes): tracked until done(q). */
  track(q: number, exportId: number, store: number, pos: number, bytes: number): void {
    this.at[q] = this.n;
    this.list[this.n++] = q;
    this.exportId[q] = exportId;
    this.store[q] = store;
    this.from[q] = pos - (pos % ZERO_BLOCK);
    this.to[q] = Math.ceil((pos + bytes) / ZERO_BLOCK) * ZERO_BLOCK;
    this.batch[q] = this.batchNo;
  }

  /** The write of request slot `q` completed (or was refused): not in the kernel any more. */
  done(q: number): void {
    const i = this.at[q];
    if (i < 0) return;
    this.at[q] = -1;
    const last = this.list[--this.n];
    if (last !== q) {
      this.list[i] = last;
      this.at[last] = i;
    }
  }

  /** The batch was handed to the io ring: what it held is in the kernel now. */
  submitted(): void {
    if (this.n > 0) this.batchNo = (this.batchNo + 1) >>> 0;
  }
}
