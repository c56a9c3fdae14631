// The serving core in process, on the fake addon: what an initiator sees of
// a Server for discovery, reads and writes, and what stop() leaves behind.
// No root, no network namespace.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { formatMac } from '../../src/client/mac';
import { ATA_ERROR_IDNF, Command } from '../../src/client/wire';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, settle, startInProcess } from '../helpers/in-process';

const SECTORS = 64;

t.test('start-up announcement: an unsolicited Query Config reply, broadcast', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, iface } = await startInProcess(t, [exportOf(file)], {}, {}, true);
  const { header, config } = await initiator.configReply(0);
  t.equal(header.dst, 'ff:ff:ff:ff:ff:ff');
  t.equal(header.src, formatMac(iface.mac));
  t.ok(header.response);
  t.notOk(header.error);
  t.same([header.shelf, header.slot], [1, 2]);
  t.equal(config.bufferCount, 16);
  t.equal(config.sectorCount, 2, 'an MTU of 1500 carries 2 sectors');
});

t.test('a broadcast Query Config gets a reply from the export', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, iface, server } = await startInProcess(t, [exportOf(file, { bufferCount: 24 })], {}, { mtu: 9000 });
  const { header, config } = await initiator.configReply(initiator.queryConfigBroadcast());
  t.equal(header.dst, formatMac(initiator.mac), 'answered to the asker');
  t.equal(header.src, formatMac(iface.mac));
  t.same([header.shelf, header.slot, header.command], [1, 2, Command.QueryConfig]);
  t.notOk(header.error);
  t.equal(config.bufferCount, 24);
  t.equal(config.sectorCount, 17, 'an MTU of 9000 carries 17 sectors');
  const s = server.stats();
  t.equal(s.interfaces[0].counters.rx_frames, 1);
  t.equal(s.exports[0].counters.other, 1);
});

t.test('an ATA read returns the bytes of the file', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server } = await startInProcess(t, [exportOf(file)]);
  const r = await initiator.ataReply(initiator.read(5, 2));
  t.notOk(r.header.error);
  t.notOk(r.ata.failed, 'status carries no error');
  t.equal(r.length, 36 + 1024);
  t.same(Buffer.from(r.ata.data), patternSectors(5, 2), 'sectors 5 and 6 of the file');
  const last = await initiator.ataReply(initiator.read(SECTORS - 1, 1));
  t.same(Buffer.from(last.ata.data), patternSectors(SECTORS - 1, 1), 'the last sector');
  const c = server.stats().exports[0].counters;
  t.equal(c.reads, 2);
  t.equal(c.read_bytes, 1536);
});

t.test('a read past the end is an ATA error, and the next read is served', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server } = await startInProcess(t, [exportOf(file)]);
  const bad = await initiator.ataReply(initiator.read(SECTORS - 1, 2));
  t.ok(bad.ata.failed);
  t.equal(bad.ata.err & ATA_ERROR_IDNF, ATA_ERROR_IDNF, 'IDNF: no such sector');
  const good = await initiator.ataReply(initiator.read(0, 1));
  t.same(Buffer.from(good.ata.data), patternSectors(0, 1));
  t.equal(server.stats().exports[0].counters.ata_errors, 1);
});

t.test('a write lands in the file', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server } = await startInProcess(t, [exportOf(file)]);
  const data = randomBytes(1024);
  const w = await initiator.ataReply(initiator.write(10, data));
  t.notOk(w.ata.failed);
  t.equal(w.length, 60, 'a write reply carries no data: padded to the minimum frame');
  const disk = readFileSync(file);
  t.same(disk.subarray(10 * 512, 12 * 512), data, 'sectors 10 and 11 hold the data');
  t.same(disk.subarray(9 * 512, 10 * 512), patternSectors(9, 1), 'sector 9 untouched');
  t.same(disk.subarray(12 * 512, 13 * 512), patternSectors(12, 1), 'sector 12 untouched');
  const back = await initiator.ataReply(initiator.read(10, 2));
  t.same(Buffer.from(back.ata.data), data, 'read back through the target');
  const c = server.stats().exports[0].counters;
  t.equal(c.writes, 1);
  t.equal(c.write_bytes, 1024);
});

t.test('writes to a read-only export fail and leave the file alone', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(t, [exportOf(file, { readOnly: true })]);
  const w = await initiator.ataReply(initiator.write(3, randomBytes(512)));
  t.ok(w.ata.failed);
  t.same(readFileSync(file).subarray(3 * 512, 4 * 512), patternSectors(3, 1));
});

t.test('a null store reads zeros and drops writes', async (t) => {
  const { initiator, server } = await startInProcess(t, [exportOf('', { nullStore: true, nullSectors: 1000 })]);
  const w = await initiator.ataReply(initiator.write(7, randomBytes(1024)));
  t.notOk(w.ata.failed);
  const r = await initiator.ataReply(initiator.read(7, 2));
  t.notOk(r.ata.failed);
  t.same(Buffer.from(r.ata.data), Buffer.alloc(1024));
  t.equal(server.stats().exports[0].sectors, 1000);
});

t.test('frames for another shelf or from the target itself are ignored', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server } = await startInProcess(t, [exportOf(file)]);
  const other = initiator.read(0, 1, 1, 3);
  const ok = initiator.read(1, 1);
  await initiator.ataReply(ok);
  await settle();
  t.equal(initiator.unclaimed(other), 0, 'no reply for shelf 1 slot 3');
  t.equal(server.stats().interfaces[0].counters.ignored, 1);
});

t.test('stop() answers what is in flight, then closes the socket and the io ring', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net, iface } = await startInProcess(t, [exportOf(file)]);
  net.holdIo(true);
  const tag = initiator.read(4, 1);
  await settle();
  t.equal(server.stats().exports[0].inflight, 1, 'the read waits for its completion');
  const stopped = server.stop();
  await settle();
  t.notOk(net.sockets[0].closed, 'not closed while the read is in flight');
  net.holdIo(false);
  await stopped;
  const r = await initiator.ataReply(tag);
  t.same(Buffer.from(r.ata.data), patternSectors(4, 1), 'the read in flight was answered');
  t.ok(
    net.sockets.every((s) => s.closed),
    'socket closed',
  );
  t.ok(
    net.ioRings.every((r) => r.closed),
    'io ring closed',
  );
  t.equal(iface.sockets.length, 0, 'no socket left on the interface');
  const late = initiator.read(0, 1);
  await settle();
  t.equal(initiator.unclaimed(late), 0, 'a request after stop() is not answered');
});
