// When a detect-zeroes write may have the rest of its edge blocks looked at
// (and punched when all zero): never while another write to those blocks is
// in the kernel, since it could land between the look and the punch.
import t from 'tap';
import { PartialBlockWrites, ZERO_BLOCK } from '../../src/engine/zero-blocks';

const KIB = 1024;

t.test('whole blocks need no look; a part of a block with no other write in the kernel gets one', async (t) => {
  const w = new PartialBlockWrites(8);
  t.notOk(w.mayLook(0, 0, 0, ZERO_BLOCK), 'one whole block: its punch frees it');
  t.notOk(w.mayLook(0, 0, 8 * KIB, 16 * KIB), 'four whole blocks');
  t.ok(w.mayLook(0, 0, 3 * KIB, KIB), '1 KiB at the end of a block');
  t.ok(w.mayLook(0, 0, 2 * KIB, 8.5 * KIB), '8.5 KiB from the middle of a block');
});

t.test('another write in the kernel touching the same blocks forbids the look until it completes', async (t) => {
  const w = new PartialBlockWrites(8);
  w.track(1, 0, 0, 0, KIB); // data to the first KiB of block 0
  t.ok(w.mayLook(0, 0, 3 * KIB, KIB), 'in the same batch it is not in the kernel yet: it lands after the look');
  w.submitted();
  t.notOk(w.mayLook(0, 0, 3 * KIB, KIB), 'in the kernel: a zero write to block 0 may not look');
  t.notOk(w.mayLook(0, 0, 2 * KIB, 4 * KIB), 'nor one that straddles blocks 0 and 1');
  t.ok(w.mayLook(0, 0, 5 * KIB, KIB), 'block 1 alone: yes');
  t.ok(w.mayLook(1, 0, 3 * KIB, KIB), "another export's file: yes");
  t.ok(w.mayLook(0, 1, 3 * KIB, KIB), 'another store of the export (a view): yes');
  w.done(1);
  t.ok(w.mayLook(0, 0, 3 * KIB, KIB), 'once it completed: yes');
});

t.test('many writes tracked and completed in any order', async (t) => {
  const w = new PartialBlockWrites(16);
  for (let q = 0; q < 16; q++) w.track(q, 0, 0, q * ZERO_BLOCK + KIB, KIB);
  w.submitted();
  for (let q = 0; q < 16; q += 2) w.done(q);
  for (let q = 0; q < 16; q++)
    t.equal(w.mayLook(0, 0, q * ZERO_BLOCK + 3 * KIB, KIB), q % 2 === 0, `block ${q}: ${q % 2 === 0 ? 'free' : 'busy'}`);
  for (let q = 1; q < 16; q += 2) w.done(q);
  w.done(1); // completing twice changes nothing
  t.ok(w.mayLook(0, 0, 5 * ZERO_BLOCK + 3 * KIB, KIB), 'all completed');
});
