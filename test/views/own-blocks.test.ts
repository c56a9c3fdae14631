// Which blocks of a view may differ from the image: marks from writes, and
// from comparing the two files' extent maps (as FIEMAP gives them) after a
// restart or a revert. A block wrongly left clear would serve the image's
// data for a block the view wrote, so every case below checks both what is
// marked and what is not.

import t from 'tap';
import { markDiffering, OwnBlocks } from '../../src/views/own-blocks';

const K4 = 4096;
const UNWRITTEN = 0x800;
const DELALLOC = 0x4;
const SHARED = 0x2000;
const LAST = 0x1;

/** (logical, physical, length, flags) quadruples, in 4 KiB blocks for readability. */
function extents(...xs: [number, number, number, number?][]): Float64Array {
  return Float64Array.from(xs.flatMap(([l, p, n, f]) => [l * K4, p * K4, n * K4, f ?? 0]));
}

/** The marked blocks among the first `blocks`. */
function marked(own: OwnBlocks, blocks: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < blocks; b++) if (own.any(b * K4, K4)) out.push(b);
  return out;
}

t.test('marks from writes: every 4 KiB block a write touches, and no other', async (t) => {
  const own = new OwnBlocks();
  t.equal(own.any(0, 512 * 17), false, 'a fresh view owns nothing');
  own.mark(7 * 512, 512); // sector 7: block 0
  own.mark(8191, 2); // the last byte of block 1 and the first of block 2
  own.mark(200 * 1024 * 1024, 512); // past the first 128 MiB chunk
  t.same(marked(own, 10), [0, 1, 2]);
  t.equal(own.any(200 * 1024 * 1024 - 512, 512), false, 'the sector before the far write is not');
  t.equal(own.any(200 * 1024 * 1024 - 512, 1024), true, 'a read that spans into it is');
  t.equal(own.any(3 * K4, 17 * 512), false, 'a read of blocks 3–5 touches none of them');
  t.equal(own.count(), 4);
  const far = new OwnBlocks();
  far.mark(2 ** 44 + 5 * K4, 1); // a 16 TiB offset: block numbers past 2^32
  t.equal(far.any(2 ** 44 + 5 * K4, 512), true);
  t.equal(far.any(5 * K4, 512), false, 'not confused with the same block 16 TiB lower');
  far.markAll();
  t.equal(far.any(0, 1), true, 'markAll: everything is the view’s own');
  t.equal(far.count(), -1);
});

const size = 16 * K4;
const cases: { name: string; image: Float64Array; view: Float64Array; own: number[] }[] = [
  {
    name: 'a fresh clone: the same physical blocks everywhere',
    image: extents([0, 1000, 16, LAST]),
    view: extents([0, 1000, 16, SHARED | LAST]),
    own: [],
  },
  {
    name: 'the view wrote blocks 3 and 4: its extent is split around new blocks',
    image: extents([0, 1000, 16, SHARED | LAST]),
    view: extents([0, 1000, 3, SHARED], [3, 5000, 2], [5, 1005, 11, SHARED | LAST]),
    own: [3, 4],
  },
  {
    name: 'same physical blocks at another file offset are not the same data here',
    image: extents([0, 1000, 16]),
    view: extents([0, 1001, 16]),
    own: [...Array(16).keys()],
  },
  {
    name: 'holes in both read as zeros in both; a hole on one side only differs',
    image: extents([2, 1000, 4], [10, 2000, 2]),
    view: extents([2, 1000, 4], [8, 3000, 1], [10, 2000, 1]),
    own: [8, 11],
  },
  {
    name: 'unwritten in one file and written in the other differ; both unwritten are the same',
    image: extents([0, 1000, 4, UNWRITTEN], [4, 1004, 4, UNWRITTEN]),
    view: extents([0, 1000, 4, UNWRITTEN], [4, 1004, 4]),
    own: [4, 5, 6, 7],
  },
  {
    name: 'delayed allocation says nothing about data: counted as differing',
    image: extents([0, 1000, 16]),
    view: extents([0, 1000, 8], [8, 0, 8, DELALLOC]),
    own: [8, 9, 10, 11, 12, 13, 14, 15],
  },
  {
    name: 'an extent that ends mid-block marks the whole block; extents past the size are ignored',
    image: Float64Array.from([0, 1000 * K4, 16 * K4 + 8 * K4, 0]),
    view: Float64Array.from([0, 1000 * K4, 6 * K4 + 512, 0, 6 * K4 + 512, 9000 * K4, 20 * K4, 0]),
    own: [6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  },
];

for (const c of cases) {
  t.test(`extent comparison: ${c.name}`, async (t) => {
    const own = new OwnBlocks();
    markDiffering(c.image, c.view, size, own);
    t.same(marked(own, 16), c.own);
  });
}
