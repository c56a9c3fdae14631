// Per-initiator counters of one export: requests, bytes read and written and
// errors by source MAC, in a table of fixed size so that frames from forged
// MACs cannot grow memory or the metrics' label set. A MAC (48 bits) is a
// number key in a small open-addressed table; when the table is full, a new
// MAC takes the row of a MAC seen once (or else of the least active one),
// whose figures move to the "other" row (counted as an eviction). Nothing is
// allocated per frame.

import type { InitiatorFigures } from '../api/control';

/** The figures of one row, at row * InitiatorField.Count + field. */
export const enum InitiatorField {
  Requests = 0,
  ReadBytes,
  WriteBytes,
  Errors,
  Count,
}

const HEX = '0123456789abcdef';

export class InitiatorTable {
  /** Row of the figures of initiators that have no row (evicted ones, or all of them when rows is 0). */
  readonly other: number;
  /** Rows given to a new MAC by taking them from another one. */
  evictions = 0;
  readonly figures: Float64Array;
  /** Each row's MAC as a number (the six bytes big-endian), -1 while unused. */
  private readonly macs: Float64Array;
  /** Bumped when a row changes hands: a request that recorded the old value credits "other" instead. */
  readonly generation: Uint32Array;
  /** Open-addressed index: row + 1, or 0 for an empty place; twice the rows, a power of two. */
  private readonly index: Int32Array;
  private readonly mask: number;
  private used = 0;
  /** Where the next search for a row to take starts: the row taken last. */
  private hand = 0;

  constructor(readonly rows: number) {
    this.other = rows;
    this.figures = new Float64Array((rows + 1) * InitiatorField.Count);
    this.macs = new Float64Array(rows).fill(-1);
    this.generation = new Uint32Array(rows + 1);
    let size = 2;
    while (size < rows * 2) size *= 2;
    this.index = new Int32Array(size);
    this.mask = size - 1;
  }

  /** The row of the initiator whose MAC is at b[off..off+6), made now if it has none. */
  rowFor(b: Uint8Array, off: number): number {
    if (this.rows === 0) return this.other;
    const hi = (b[off] << 8) | b[off + 1];
    const lo = ((b[off + 2] << 24) | (b[off + 3] << 16) | (b[off + 4] << 8) | b[off + 5]) >>> 0;
    const key = hi * 0x100000000 + lo;
    const index = this.index;
    const mask = this.mask;
    let p = this.homeOf(hi, lo);
    for (;;) {
      const r = index[p] - 1;
      if (r < 0) break;
      if (this.macs[r] === key) return r;
      p = (p + 1) & mask;
    }
    // New: a free row, or the least active sampled one's.
    let row: number;
    if (this.used < this.rows) row = this.used++;
    else {
      row = this.leastActive();
      this.evict(row);
      // Removing it may have moved entries: find the place for the new key again.
      p = this.homeOf(hi, lo);
      while (index[p] !== 0) p = (p + 1) & mask;
    }
    this.macs[row] = key;
    index[p] = row + 1;
    return row;
  }

  /** Adds `n` to a row's field; a row that changed hands since `gen` was read credits "other". */
  add(row: number, gen: number, field: InitiatorField, n: number): void {
    const r = this.generation[row] === gen ? row : this.other;
    this.figures[r * InitiatorField.Count + field] += n;
  }

  /** Every row in use, busiest first, then "other" when it has counted anything. */
  snapshot(): InitiatorFigures[] {
    const out: InitiatorFigures[] = [];
    for (let r = 0; r < this.used; r++) out.push(this.figuresOf(r, macText(this.macs[r])));
    out.sort((a, b) => b.requests - a.requests);
    const other = this.figuresOf(this.other, 'other');
    if (other.requests > 0 || other.errors > 0) out.push(other);
    return out;
  }

  private figuresOf(r: number, mac: string): InitiatorFigures {
    const f = this.figures;
    const b = r * InitiatorField.Count;
    return {
      mac,
      requests: f[b + InitiatorField.Requests],
      readBytes: f[b + InitiatorField.ReadBytes],
      writeBytes: f[b + InitiatorField.WriteBytes],
      errors: f[b + InitiatorField.Errors],
    };
  }

  /**
   * The row a new MAC takes in a full table: the first with at most one
   * request from where the last search stopped (a MAC seen once, as every
   * forged one is), else the one with the fewest. The search starts at the
   * row taken last, which a flood of new MACs keeps taking again: one
   * compare per frame, and busy initiators keep their rows.
   */
  private leastActive(): number {
    const f = this.figures;
    const rows = this.rows;
    let best = this.hand;
    let least = Infinity;
    for (let k = 0, r = this.hand; k < rows; k++) {
      const requests = f[r * InitiatorField.Count + InitiatorField.Requests];
      if (requests < least) {
        least = requests;
        best = r;
        if (requests <= 1) break;
      }
      r = r + 1 === rows ? 0 : r + 1;
    }
    this.hand = best;
    return best;
  }

  /** Moves a row's figures to "other" and takes its MAC out of the index (backward-shift deletion). */
  private evict(row: number): void {
    const f = this.figures;
    const from = row * InitiatorField.Count;
    const to = this.other * InitiatorField.Count;
    for (let k = 0; k < InitiatorField.Count; k++) {
      f[to + k] += f[from + k];
      f[from + k] = 0;
    }
    this.generation[row]++;
    this.evictions++;
    const index = this.index;
    const mask = this.mask;
    let p = this.home(row);
    while (index[p] !== row + 1) p = (p + 1) & mask;
    // Close the gap: an entry further on moves back when its home place is not between the gap and it.
    let gap = p;
    for (let q = (gap + 1) & mask; index[q] !== 0; q = (q + 1) & mask) {
      const home = this.home(index[q] - 1);
      const between = gap <= q ? home > gap && home <= q : home > gap || home <= q;
      if (!between) {
        index[gap] = index[q];
        gap = q;
      }
    }
    index[gap] = 0;
  }

  /** Where a row's MAC is looked for first. */
  private home(row: number): number {
    const key = this.macs[row];
    return this.homeOf(Math.floor(key / 0x100000000), key % 0x100000000);
  }

  /** A multiplicative hash of both halves: forged MACs that differ in any byte spread over the table. */
  private homeOf(hi: number, lo: number): number {
    return (Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) >>> 7) & this.mask;
  }
}

function macText(key: number): string {
  let s = '';
  for (let i = 5; i >= 0; i--) {
    const byte = Math.floor(key / 2 ** (8 * i)) & 0xff;
    s += HEX[byte >> 4] + HEX[byte & 15] + (i > 0 ? ':' : '');
  }
  return s;
}
