// detect-zeroes = unmap as a user sees it: AoE writes of zeros make the
// backing file thinner (its allocated blocks go down), the range reads back
// zero, a later write over the hole is intact, the -s path still answers only
// after an fdatasync, and a view punching a range shared with its image gives
// up only its own reference. Off (the default), the same writes are written.
import t, { type Test } from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { replyCommand, replyTag } from '../../src/client/replies';
import { Command } from '../../src/client/wire';
import { checkPattern, patternFile } from '../helpers/files';
import { exportOf, startInProcess, type Initiator } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 2048; // 1 MiB
/** Sectors per write: a jumbo frame's worth, as the Linux initiator sends on MTU 9000. */
const PER_WRITE = 16;
const JUMBO = { mtu: 9000 };

/** Writes `sectors` sectors of zeros from `lba`, PER_WRITE at a time; fails the test on an error reply. */
async function writeZeros(t: Test, ini: Initiator, lba: number, sectors: number): Promise<void> {
  const zeros = new Uint8Array(PER_WRITE * 512);
  const tags: number[] = [];
  for (let s = lba; s < lba + sectors; s += PER_WRITE) tags.push(ini.write(s, zeros));
  let failed = 0;
  for (const tag of tags) if ((await ini.ataReply(tag)).ata.failed) failed++;
  t.equal(failed, 0, `${tags.length} writes of zeros succeeded`);
}

async function readBack(ini: Initiator, lba: number, count: number): Promise<Uint8Array> {
  const r = await ini.ataReply(ini.read(lba, count));
  if (r.ata.failed) throw new Error(`read of ${count} sectors at ${lba} failed`);
  return r.ata.data;
}

const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

/** Allocated bytes of a file (st_blocks × 512). */
const allocated = (file: string): number => statSync(file).blocks * 512;

t.test('detect-zeroes = unmap: zero writes punch holes, the range reads zero, a write over it is intact', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(t, [exportOf(file, { detectZeroes: 'unmap' })], {}, JUMBO);
  const before = allocated(file);
  t.ok(before >= SECTORS * 512, `the pattern file is fully allocated (${before} bytes)`);
  await writeZeros(t, initiator, 256, 1024); // 512 KiB from 128 KiB on: whole 4 KiB blocks
  const after = allocated(file);
  t.equal(before - after, 1024 * 512, `allocation went from ${before} to ${after} bytes: 512 KiB less`);
  for (let lba = 256; lba < 1280; lba += PER_WRITE)
    if (!isZero(await readBack(initiator, lba, PER_WRITE))) t.fail(`lba ${lba} not zero`);
  t.notOk(checkPattern(await readBack(initiator, 240, 16), 240), 'the sectors just before the hole keep their data');
  t.notOk(checkPattern(await readBack(initiator, 1280, 16), 1280), 'the sectors just after the hole keep their data');
  const data = randomBytes(8 * 512);
  t.notOk((await initiator.ataReply(initiator.write(512, data))).ata.failed, 'a write into the hole succeeded');
  t.same(Buffer.from(await readBack(initiator, 512, 8)), data, 'it reads back as written');
  t.same(readFileSync(file).subarray(512 * 512, 520 * 512), data, 'and it is in the file');
  t.equal(allocated(file), after + 4096, 'the write took one 4 KiB block back, no more');
  // Data that is not all zero, with a zero first half: written, not punched.
  const half = Buffer.concat([Buffer.alloc(PER_WRITE * 256), Buffer.alloc(PER_WRITE * 256, 7)]);
  t.notOk((await initiator.ataReply(initiator.write(1600, half))).ata.failed, 'a write of half zeros succeeded');
  t.same(Buffer.from(await readBack(initiator, 1600, PER_WRITE)), half, 'a write with a non-zero byte is written whole');
});

for (const { mtu, perWrite } of [
  { mtu: 1500, perWrite: 2 }, // what the Linux initiator sends on a standard network: 1 KiB, a quarter of a block
  { mtu: 9000, perWrite: 17 }, // a full jumbo frame: 8.5 KiB, so writes straddle blocks
]) {
  t.test(
    `detect-zeroes = unmap at MTU ${mtu} (${perWrite} sectors a write, not whole blocks): the blocks still become holes`,
    async (t) => {
      const file = await patternFile(t, SECTORS);
      const { initiator } = await startInProcess(t, [exportOf(file, { detectZeroes: 'unmap' })], {}, { mtu });
      const before = allocated(file);
      const zeros = new Uint8Array(perWrite * 512);
      const first = 256;
      const sectors = 34 * 16; // 272 KiB from 128 KiB on: a multiple of both write sizes and of 8 sectors
      // One at a time, in order, as a zeroing pass (dd if=/dev/zero, mkfs discard off) writes them.
      for (let s = first; s < first + sectors; s += perWrite) {
        const r = await withRetransmits(initiator, () => initiator.write(s, zeros));
        if (r.ata.failed) t.fail(`the zero write at ${s} failed`);
      }
      const after = allocated(file);
      t.equal(
        before - after,
        sectors * 512,
        `allocation went from ${before} to ${after} bytes: ${(sectors * 512) / 1024} KiB less`,
      );
      for (let lba = first; lba < first + sectors; lba += perWrite)
        if (!isZero(await readBack(initiator, lba, perWrite))) t.fail(`lba ${lba} not zero`);
      t.notOk(checkPattern(await readBack(initiator, first - 2, 2), first - 2), 'the sectors just before keep their data');
      t.notOk(
        checkPattern(await readBack(initiator, first + sectors, 2), first + sectors),
        'the sectors just after keep their data',
      );
      // Zeros over part of a block whose other sectors hold data: that block keeps its data and its allocation.
      const mixed = allocated(file);
      const r = await withRetransmits(initiator, () => initiator.write(first + sectors + 2, new Uint8Array(1024)));
      t.notOk(r.ata.failed, 'a zero write beside data succeeded');
      t.equal(allocated(file), mixed, 'a block with data left in it is not given back');
      t.notOk(checkPattern(await readBack(initiator, first + sectors, 2), first + sectors), 'the data beside it is intact');
    },
  );
}

t.test('detect-zeroes off (the default): the same zero writes are written, the allocation stays', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(t, [exportOf(file)], {}, JUMBO);
  const before = allocated(file);
  await writeZeros(t, initiator, 256, 1024);
  t.equal(allocated(file), before, 'no block was given back');
  t.ok(isZero(readFileSync(file).subarray(256 * 512, 1280 * 512)), 'the zeros are in the file');
});

t.test('detect-zeroes with -s: a punched write is answered only after an fdatasync that follows the punch', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, net, server } = await startInProcess(t, [exportOf(file, { detectZeroes: 'unmap', sync: true })], {}, JUMBO);
  const before = allocated(file);
  const tag = initiator.write(0, new Uint8Array(PER_WRITE * 512));
  t.notOk((await initiator.ataReply(tag)).ata.failed, 'the zero write succeeded');
  const synced = net.timeline.findIndex((e) => e.type === 'datasync-done');
  const replied = net.timeline.findIndex(
    (e) => e.type === 'sent' && replyCommand(e.frame, 0) === Command.Ata && replyTag(e.frame, 0) === tag,
  );
  t.ok(synced >= 0 && synced < replied, 'an fdatasync completed before the reply left');
  t.equal(before - allocated(file), PER_WRITE * 512, 'the range was punched');
  t.equal(server.stats().exports[0].counters.writes, 1, 'counted as a write');
});

/** The one view file of an export's views directory. */
function viewFile(dir: string): string {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.isFile() && !e.name.endsWith('.json')) found.push(join(d, e.name));
    }
  };
  walk(dir);
  if (found.length !== 1) throw new Error(`expected one view file, found ${found.join(', ')}`);
  return found[0];
}

t.test('a view punching a range it shares with the image drops only its own reference', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  const viewsDir = join(mnt, 'views');
  const { initiator } = await startInProcess(
    t,
    [exportOf(image, { views: 'per-initiator', viewsDir, detectZeroes: 'unmap' })],
    {},
    JUMBO,
  );
  // Its first write waits for its view to be made (dropped until then, the initiator retransmits).
  const first = Buffer.alloc(PER_WRITE * 512, 1);
  t.notOk((await withRetransmits(initiator, () => initiator.write(1024, first))).ata.failed, 'the view was made');
  const view = viewFile(viewsDir);
  const imageBefore = allocated(image);
  const viewBefore = allocated(view);
  t.ok(viewBefore >= SECTORS * 512, `the view holds every block of the image (${viewBefore} bytes, shared)`);
  await writeZeros(t, initiator, 0, 512);
  t.equal(viewBefore - allocated(view), 512 * 512, 'the view gave up the 256 KiB it punched');
  t.equal(allocated(image), imageBefore, "the image's allocation is unchanged");
  t.notOk(checkPattern(readFileSync(image).subarray(0, 512 * 512), 0), 'the image still holds its data there');
  t.ok(isZero(await readBack(initiator, 0, PER_WRITE)), 'the view reads zeros there');
  t.notOk(checkPattern(await readBack(initiator, 512, PER_WRITE), 512), 'and the image data beyond');
  t.same(Buffer.from(await readBack(initiator, 1024, PER_WRITE)), first, 'and its own write');
});

t.test('detect-zeroes with O_DIRECT (-d): the copy in the transmit slot is looked at, zeros punched, data written', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(t, [exportOf(file, { detectZeroes: 'unmap', direct: true })], {}, JUMBO);
  const before = allocated(file);
  await writeZeros(t, initiator, 64, 64);
  t.equal(before - allocated(file), 64 * 512, 'the 32 KiB of zeros were punched');
  const data = randomBytes(PER_WRITE * 512);
  t.notOk((await initiator.ataReply(initiator.write(64, data))).ata.failed, 'a write into the hole succeeded');
  t.same(Buffer.from(await readBack(initiator, 64, PER_WRITE)), data, 'and reads back');
});
