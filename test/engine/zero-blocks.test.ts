// When a detect-zeroes write may have the rest of its edge blocks looked at
// (and punched when all zero): never while another write to those blocks is
// in the kernel, since it could land between the look and the punch.
import t from 'tap';
import { PartialBlockWrites, ZERO_BLOCK } from '../../src/engine/zero-blocks';

const KIB = 1024;
/** An export of the whole of a large file: every block is its own. */
const DISK = 2 ** 40;

t.test('whole blocks need no look; a part of a block with no other write in the kernel gets one', async (t) => {
  const w = new PartialBlockWrites(8);
  t.notOk(w.mayLook(0, 0, 0, ZERO_BLOCK, 0, DISK), 'one whole block: its punch frees it');
  t.notOk(w.mayLook(0, 0, 8 * KIB, 16 * KIB, 0, DISK), 'four whole blocks');
  t.ok(w.mayLook(0, 0, 3 * KIB, KIB, 0, DISK), '1 KiB at the end of a block');
  t.ok(w.mayLook(0, 0, 2 * KIB, 8.5 * KIB, 0, DISK), '8.5 KiB from the middle of a block');
});

t.test('another write in the kernel touching the same blocks forbids the look until it completes', async (t) => {
  const w = new PartialBlockWrites(8);
  w.track(1, 0, 0, 0, KIB); // data to the first KiB of block 0
  t.ok(w.mayLook(0, 0, 3 * KIB, KIB, 0, DISK), 'in the same batch it is not in the kernel yet: it lands after the look');
  w.submitted();
  t.notOk(w.mayLook(0, 0, 3 * KIB, KIB, 0, DISK), 'in the kernel: a zero write to block 0 may not look');
  t.notOk(w.mayLook(0, 0, 2 * KIB, 4 * KIB, 0, DISK), 'nor one that straddles blocks 0 and 1');
  t.ok(w.mayLook(0, 0, 5 * KIB, KIB, 0, DISK), 'block 1 alone: yes');
  t.ok(w.mayLook(1, 0, 3 * KIB, KIB, 0, DISK), "another export's file: yes");
  t.ok(w.mayLook(0, 1, 3 * KIB, KIB, 0, DISK), 'another store of the export (a view): yes');
  w.done(1);
  t.ok(w.mayLook(0, 0, 3 * KIB, KIB, 0, DISK), 'once it completed: yes');
});

t.test('many writes tracked and completed in any order', async (t) => {
  const w = new PartialBlockWrites(16);
  for (let q = 0; q < 16; q++) w.track(q, 0, 0, q * ZERO_BLOCK + KIB, KIB);
  w.submitted();
  for (let q = 0; q < 16; q += 2) w.done(q);
  for (let q = 0; q < 16; q++)
    t.equal(w.mayLook(0, 0, q * ZERO_BLOCK + 3 * KIB, KIB, 0, DISK), q % 2 === 0, `block ${q}: ${q % 2 === 0 ? 'free' : 'busy'}`);
  for (let q = 1; q < 16; q += 2) w.done(q);
  w.done(1); // completing twice changes nothing
  t.ok(w.mayLook(0, 0, 5 * ZERO_BLOCK + 3 * KIB, KIB, 0, DISK), 'all completed');
});

t.test('a block the export shares with another export of the file (-o/-l not whole blocks) is never looked at', async (t) => {
  const w = new PartialBlockWrites(8);
  // An export of sectors 1001.. (byte 512512): its first block begins at 512000, before its own bytes.
  const lo = 1001 * 512;
  t.notOk(w.mayLook(0, 0, lo, KIB, lo, DISK), "its first block holds another export's sectors");
  t.ok(w.mayLook(0, 0, 516 * KIB + KIB, KIB, lo, DISK), 'a block wholly its own: yes');
  // An export that ends at sector 1001: its last block runs past its end.
  t.notOk(w.mayLook(0, 0, lo - KIB, KIB, 0, lo), "its last block holds the next export's sectors");
});
