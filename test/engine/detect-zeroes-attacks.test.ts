// detect-zeroes = unmap against forged writes: a punch is a write that
// frees blocks, so it must never reach outside what the export serves. An
// export of part of a file (offset and length) keeps the sectors around it
// whole whatever LBA an initiator names (the last one, one past it, ones
// that wrap); a read-only export punches nothing; a write of data racing a
// write of zeros to the same sectors leaves one of them, never a mix.
import t from 'tap';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { checkPattern, patternFile } from '../helpers/files';
import { exportOf, startInProcess } from '../helpers/in-process';

const SECTORS = 2048;
const OFFSET = 256;
const LENGTH = 512;
const PER_WRITE = 16;
const JUMBO = { mtu: 9000 };
const zeros = new Uint8Array(PER_WRITE * 512);
const allocated = (file: string): number => statSync(file).blocks * 512;

t.test('an export of part of a file: no LBA an initiator names punches outside it', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(
    t,
    [exportOf(file, { detectZeroes: 'unmap', offsetSectors: OFFSET, lengthSectors: LENGTH })],
    {},
    JUMBO,
  );
  const before = allocated(file);
  const refused: number[] = [];
  // One past the end, straddling it, far past it, and LBAs that wrap when the offset is added.
  for (const lba of [LENGTH, LENGTH - 8, LENGTH + 1024, 2 ** 48 - 1, 2 ** 48 - OFFSET, 2 ** 48 - PER_WRITE]) {
    const r = await initiator.ataReply(initiator.write(lba, zeros));
    if (r.ata.failed) refused.push(lba);
  }
  t.same(
    refused,
    [LENGTH, LENGTH - 8, LENGTH + 1024, 2 ** 48 - 1, 2 ** 48 - OFFSET, 2 ** 48 - PER_WRITE],
    'every write outside is refused',
  );
  t.equal(allocated(file), before, 'and nothing was punched');
  // The last whole write inside: punched, its neighbours outside the export untouched.
  t.notOk((await initiator.ataReply(initiator.write(LENGTH - PER_WRITE, zeros))).ata.failed, 'the last 16 sectors: accepted');
  t.notOk((await initiator.ataReply(initiator.write(0, zeros))).ata.failed, 'the first 16 sectors: accepted');
  t.equal(before - allocated(file), 2 * PER_WRITE * 512, 'exactly the two 8 KiB writes were punched');
  const disk = await readFile(file);
  const at = (lba: number, n: number) => disk.subarray(lba * 512, (lba + n) * 512);
  t.equal(checkPattern(at(0, OFFSET), 0), undefined, 'the sectors before the export keep their data');
  t.equal(
    checkPattern(at(OFFSET + LENGTH, SECTORS - OFFSET - LENGTH), OFFSET + LENGTH),
    undefined,
    'the sectors after it keep theirs',
  );
  t.equal(
    checkPattern(at(OFFSET + PER_WRITE, LENGTH - 2 * PER_WRITE), OFFSET + PER_WRITE),
    undefined,
    'and those between the two',
  );
});

t.test('a read-only export: a write of zeros is refused and punches nothing', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(t, [exportOf(file, { detectZeroes: 'unmap', readOnly: true })], {}, JUMBO);
  const before = allocated(file);
  t.ok((await initiator.ataReply(initiator.write(64, zeros))).ata.failed, 'the write is refused');
  t.equal(allocated(file), before, 'the allocation is unchanged');
  t.equal(checkPattern((await readFile(file)).subarray(64 * 512, 80 * 512), 64), undefined, 'the data is there');
});

t.test('a write of data and a write of zeros to the same sectors at once: one of them, never a mix', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(t, [exportOf(file, { detectZeroes: 'unmap' })], {}, JUMBO);
  const data = new Uint8Array(PER_WRITE * 512).fill(0x5a);
  for (let round = 0; round < 50; round++) {
    const lba = 128 + (round % 8) * PER_WRITE;
    const a = initiator.write(lba, data);
    const b = initiator.write(lba, zeros);
    const failed = [(await initiator.ataReply(a)).ata.failed, (await initiator.ataReply(b)).ata.failed];
    if (failed[0] || failed[1]) t.fail(`round ${round}: a write failed (${failed.join(', ')})`);
    const got = Buffer.from((await initiator.ataReply(initiator.read(lba, PER_WRITE))).ata.data);
    const allZero = got.every((x) => x === 0);
    const allData = got.every((x) => x === 0x5a);
    if (!allZero && !allData) t.fail(`round ${round}: lba ${lba} holds a mix of the two writes`);
  }
  t.pass('50 rounds: each range holds one whole write');
});
