// Growing an export online (Server.resizeExport, the size watch, reload):
// the backing file grows under a running export, and an initiator sees the
// new capacity in IDENTIFY, can read and write the new sectors, gets an
// announcement, and loses no request in flight. A smaller backing store is
// refused with a message that says what to do; a fixed length does not grow.
import t from 'tap';
import { appendFileSync, truncateSync } from 'node:fs';
import { parseIdentify } from '../../src/client/identify';
import { ResizeError } from '../../src/target/server';
import { patternFile, patternSectors, tmpfsMount } from '../helpers/files';
import { exportOf, settle, startInProcess, until, type Initiator } from '../helpers/in-process';

const SECTORS = 64;
const GROWN = 256;

async function identifySectors(initiator: Initiator): Promise<number> {
  const r = await initiator.ataReply(initiator.identify());
  return parseIdentify(r.ata.data).sectors;
}

t.test('resizeExport: a grown file is served at its new size at once, I/O in flight untouched', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server, initiator, net } = await startInProcess(t, [exportOf(file)], { sizeCheckMs: 0 });
  t.equal(await identifySectors(initiator), SECTORS, 'IDENTIFY before: 64 sectors');
  const beyond = await initiator.ataReply(initiator.read(100, 1));
  t.ok(beyond.ata.failed, 'LBA 100 is past the end before the grow');

  appendFileSync(file, patternSectors(SECTORS, GROWN - SECTORS));
  net.holdIo(true);
  const inFlight = initiator.read(3, 1);
  await settle(10);
  const r = await server.resizeExport('e1.2');
  t.same([r.oldSectors, r.newSectors, r.unchanged], [SECTORS, GROWN, undefined], 'old and new size');
  net.holdIo(false);
  const held = await initiator.ataReply(inFlight);
  t.same(Buffer.from(held.ata.data), patternSectors(3, 1), 'the read in flight during the resize is answered');

  const ann = await initiator.configReply(0);
  t.equal(ann.header.dst, 'ff:ff:ff:ff:ff:ff', 'announced after the grow');
  t.equal(await identifySectors(initiator), GROWN, 'IDENTIFY after: 256 sectors');
  const now = await initiator.ataReply(initiator.read(200, 2));
  t.same(Buffer.from(now.ata.data), patternSectors(200, 2), 'the new sectors read from the file');
  const w = await initiator.ataReply(initiator.write(255, patternSectors(7, 1)));
  t.notOk(w.ata.failed, 'the last new sector takes a write');
  t.equal(server.stats().exports[0].sectors, GROWN, 'stats show the new size');
  t.equal(server.exports.length, 1, 'the same export throughout');
  t.equal(
    (await server.resizeExport('e1.2')).unchanged,
    'the backing store has not changed size',
    'a second call changes nothing',
  );
});

t.test('a backing store smaller than the export is refused; the export keeps its size', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server, initiator } = await startInProcess(t, [exportOf(file)], { sizeCheckMs: 0 });
  truncateSync(file, 32 * 512);
  await t.rejects(
    server.resizeExport('e1.2'),
    new ResizeError(
      `e1.2: ${file} is now 32 sectors (16 KiB) after the offset, smaller than the exported 64 sectors (32 KiB); ` +
        'the export keeps its size (reads and writes past the new end fail). Grow the backing store back, or, ' +
        'once no file system or data uses the end of the disk, reload or restart to export the smaller size',
    ),
  );
  t.equal(await identifySectors(initiator), SECTORS, 'IDENTIFY still says 64 sectors');
  await t.rejects(server.resizeExport('e9.9'), /no export e9\.9; "vblade ctl list" shows the exports/);
});

t.test('an export with a fixed length (-l) does not grow', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server, initiator } = await startInProcess(t, [exportOf(file, { lengthSectors: 48 })], { sizeCheckMs: 0 });
  appendFileSync(file, patternSectors(SECTORS, 64));
  const r = await server.resizeExport('e1.2');
  t.same([r.oldSectors, r.newSectors], [48, 48]);
  t.match(r.unchanged, /fixed length \(length \/ -l 48\)/);
  t.equal(await identifySectors(initiator), 48);
});

t.test('the size watch grows an export by itself', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server, initiator } = await startInProcess(t, [exportOf(file)], { sizeCheckMs: 10 });
  appendFileSync(file, patternSectors(SECTORS, GROWN - SECTORS));
  await until(() => server.stats().exports[0].sectors === GROWN, 'the export to grow by itself');
  t.equal(await identifySectors(initiator), GROWN, 'IDENTIFY says 256 sectors without any command');
});

t.test('a reload after the file grew takes the new size without replacing the export', async (t) => {
  const file = await patternFile(t, SECTORS);
  const c = exportOf(file);
  const { server, initiator } = await startInProcess(t, [c], { sizeCheckMs: 0 });
  const before = server.exports[0];
  appendFileSync(file, patternSectors(SECTORS, GROWN - SECTORS));
  await server.apply({ exports: [c] });
  t.equal(server.exports[0], before, 'the same export object');
  t.equal(await identifySectors(initiator), GROWN);
});

t.test('a store mapped in memory (tmpfs) serves the grown part too', async (t) => {
  const dir = await tmpfsMount(t, '4M');
  const file = await patternFile(t, SECTORS, { dir });
  const { server, initiator } = await startInProcess(t, [exportOf(file)], { sizeCheckMs: 0, mapInMemory: true });
  appendFileSync(file, patternSectors(SECTORS, GROWN - SECTORS));
  t.equal((await server.resizeExport('e1.2')).newSectors, GROWN);
  const r = await initiator.ataReply(initiator.read(250, 2));
  t.same(Buffer.from(r.ata.data), patternSectors(250, 2), 'read from the grown part of the mapped file');
  const w = await initiator.ataReply(initiator.write(240, patternSectors(1, 1)));
  t.notOk(w.ata.failed);
  const back = await initiator.ataReply(initiator.read(240, 1));
  t.same(Buffer.from(back.ata.data), patternSectors(1, 1), 'a write to the grown part reads back');
});
