// Interfaces that change under a running server: the MTU shrinks under a
// reply already built, grows past what the ring was sized for, the interface
// is recreated, removed and brought back, goes down and up. What the
// initiator sees each time, and that serving resumes.
import t from 'tap';
import { constants } from 'node:os';
import { ATA_ERROR_ABRT, ATA_STATUS_ERR } from '../../src/client/wire';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, settle, startInProcess, until } from '../helpers/in-process';

const SECTORS = 64;

t.test('EMSGSIZE: a read reply that no longer fits the MTU becomes a short ATA error', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, iface } = await startInProcess(t, [exportOf(file)], {}, { mtu: 9000 });
  t.equal(server.stats().interfaces[0].sectorsPerFrame, 17);
  iface.mtu = 1500; // the server has not looked yet (no link check runs in this test)
  const r = await initiator.ataReply(initiator.read(0, 17));
  t.equal(r.length, 60, 'minimum frame length instead of 8740 bytes');
  t.ok(r.ata.failed);
  t.equal(r.ata.status & ATA_STATUS_ERR, ATA_STATUS_ERR, 'ERR');
  t.equal(r.ata.err & ATA_ERROR_ABRT, ATA_ERROR_ABRT, 'ABRT');
  const s = server.stats().interfaces[0];
  t.equal(s.counters.tx_drops, 0, 'not lost');
  t.equal(s.mtu, 1500, 'the new MTU is known');
  t.equal(s.sectorsPerFrame, 2);
  const { config } = await initiator.configReply(initiator.queryConfig());
  t.equal(config.sectorCount, 2, 'Query Config tells the initiator the new size');
  const ok = await initiator.ataReply(initiator.read(4, 2));
  t.notOk(ok.ata.failed);
  t.same(Buffer.from(ok.ata.data), patternSectors(4, 2), 'served at the new size');
});

t.test('EMSGSIZE in the middle of a batch: the replies before it go out, the big one becomes an error', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, iface, server } = await startInProcess(t, [exportOf(file)], {}, { mtu: 9000 });
  iface.mtu = 1500;
  const small = initiator.read(1, 1);
  const big = initiator.read(2, 16);
  const after = initiator.read(3, 1);
  t.same(Buffer.from((await initiator.ataReply(small)).ata.data), patternSectors(1, 1));
  const b = await initiator.ataReply(big);
  t.ok(b.ata.failed);
  t.equal(b.length, 60);
  t.same(Buffer.from((await initiator.ataReply(after)).ata.data), patternSectors(3, 1));
  t.equal(server.stats().interfaces[0].counters.tx_drops, 0);
});

t.test('MTU grows past the ring: the socket is reopened once the request in flight is answered', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net, iface } = await startInProcess(t, [exportOf(file)], { linkCheckMs: 5 }, { mtu: 9000 });
  const first = net.sockets[0];
  net.holdIo(true);
  const tag = initiator.read(6, 2);
  await until(() => server.stats().exports[0].inflight === 1, 'the read in flight');
  iface.mtu = 16000;
  await settle(40);
  t.notOk(first.closed, 'not closed while a request is in flight');
  t.equal(net.sockets.length, 1, 'no second socket yet');
  net.holdIo(false);
  t.same(Buffer.from((await initiator.ataReply(tag)).ata.data), patternSectors(6, 2), 'the read in flight is answered');
  await until(() => net.sockets.length === 2 && !net.sockets[1].closed, 'a new socket');
  t.ok(first.closed, 'the old socket is closed');
  t.ok(net.sockets[1].frameSize >= 16014, `the new ring holds 16014-byte frames (slots of ${net.sockets[1].frameSize})`);
  await until(() => server.stats().interfaces[0].sectorsPerFrame === 31, '31 sectors per frame');
  const big = await initiator.ataReply(initiator.read(0, 31));
  t.notOk(big.ata.failed);
  t.same(Buffer.from(big.ata.data), patternSectors(0, 31), 'a 31-sector read is served');
  t.equal(server.stats().interfaces[0].counters.link_downs, 0, 'not counted as the link going down');
});

t.test('interface recreated: the reply in flight is dropped, the socket reopened on the new interface', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)], { linkCheckMs: 5 });
  const first = net.sockets[0];
  net.holdIo(true);
  const lost = initiator.read(6, 1);
  await until(() => server.stats().exports[0].inflight === 1, 'the read in flight');
  const old = initiator.iface;
  const now = net.recreateInterface('fake0');
  t.not(now.ifindex, old.ifindex);
  await settle(40);
  t.notOk(first.closed, 'not closed while a request is in flight');
  net.holdIo(false);
  await until(() => net.sockets.length === 2 && !net.sockets[1].closed, 'a new socket');
  t.ok(first.closed, 'the old socket is closed');
  t.equal(net.sockets[1].ifindex, now.ifindex, 'bound to the new interface');
  await settle();
  t.equal(old.sent.filter((f) => f[14] & 0x08).length, 0, 'nothing went out on the old interface');
  t.equal(initiator.unclaimed(lost), 0, 'the read in flight got no reply (the initiator retransmits)');
  const c = server.stats().interfaces[0].counters;
  t.equal(c.tx_drops, 1, 'its reply counted as dropped');
  t.equal(c.link_downs, 1);
  const again = await initiator.ataReply(initiator.read(6, 1));
  t.same(Buffer.from(again.ata.data), patternSectors(6, 1), 'the retransmitted read is served');
});

t.test('interface removed and added back: the socket closes, then reopens and serves', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)], { linkCheckMs: 5 });
  net.removeInterface('fake0');
  await until(() => !server.stats().interfaces[0].open, 'the interface to close');
  t.ok(net.sockets[0].closed);
  t.equal(server.stats().interfaces[0].counters.link_downs, 1);
  await settle(20);
  t.equal(net.sockets.length, 1, 'no socket opened while the interface is missing');
  net.addInterface('fake0', { mtu: 1500 });
  await until(() => server.stats().interfaces[0].open, 'the interface to reopen');
  const { config, header } = await initiator.configReply(0);
  t.equal(header.dst, 'ff:ff:ff:ff:ff:ff', 'announced on the new interface');
  t.equal(config.sectorCount, 2);
  const r = await initiator.ataReply(initiator.read(9, 1));
  t.same(Buffer.from(r.ata.data), patternSectors(9, 1));
});

t.test('a socket error makes the server look at the interface at once', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server, net } = await startInProcess(t, [exportOf(file)]); // no periodic link check in this test
  net.removeInterface('fake0');
  await settle(20);
  t.ok(server.stats().interfaces[0].open, 'nothing noticed yet');
  net.sockets[0].raiseError(constants.errno.ENXIO);
  await until(() => !server.stats().interfaces[0].open, 'the interface to close');
  t.ok(net.sockets[0].closed);
  t.equal(server.stats().interfaces[0].counters.link_downs, 1);
});

t.test('link down, then up: counted, and an announcement goes out when it comes back', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, iface, net } = await startInProcess(t, [exportOf(file)], { linkCheckMs: 5 });
  iface.up = false;
  await until(() => !server.stats().interfaces[0].up, 'the link seen down');
  t.equal(server.stats().interfaces[0].counters.link_downs, 1);
  t.ok(server.stats().interfaces[0].open, 'the socket stays open');
  await settle(20);
  t.equal(initiator.unclaimed(0), 0, 'no announcement while down');
  iface.up = true;
  const { header, config } = await initiator.configReply(0);
  t.equal(header.dst, 'ff:ff:ff:ff:ff:ff');
  t.same([header.shelf, header.slot], [1, 2]);
  t.equal(config.bufferCount, 16);
  t.ok(server.stats().interfaces[0].up);
  t.equal(net.sockets.length, 1, 'the same socket throughout');
  const r = await initiator.ataReply(initiator.read(2, 1));
  t.same(Buffer.from(r.ata.data), patternSectors(2, 1), 'served after the link is back');
});

t.test('MTU shrinks while idle: the next Query Config already tells the new size', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, iface } = await startInProcess(t, [exportOf(file)], {}, { mtu: 9000 });
  iface.mtu = 4000;
  const { config } = await initiator.configReply(initiator.queryConfig());
  t.equal(config.sectorCount, 7, 'an MTU of 4000 carries 7 sectors');
});

// A reply other than an ATA one that outgrew the MTU (a long config string
// after the MTU shrank) cannot be shortened; only it should be lost, not the
// replies queued behind it in the same batch.
t.test('a Query Config reply too big for the MTU is dropped alone, not with the replies after it', async (t) => {
  const { initiator, iface, server } = await startInProcess(
    t,
    [exportOf('', { nullStore: true, nullSectors: 100 })],
    {},
    { mtu: 9000 },
  );
  const set = await initiator.configReply(initiator.setConfigString('x'.repeat(1000)));
  t.notOk(set.header.error, 'config string set');
  iface.mtu = 1000;
  const before = initiator.read(1, 1);
  const config = initiator.queryConfig();
  const behind = initiator.read(2, 1);
  t.notOk((await initiator.ataReply(before)).ata.failed, 'the read before it is answered');
  await settle();
  t.equal(initiator.unclaimed(config), 0, 'the 1032-byte config reply cannot go out at MTU 1000');
  t.equal(initiator.unclaimed(behind), 1, 'the read queued behind it is answered');
  t.equal(server.stats().interfaces[0].counters.tx_drops, 1, 'one reply dropped');
});

t.test('an interface that never appeared leaves ctl stats with the last export that named it', async (t) => {
  const file = await patternFile(t, SECTORS);
  const other = await patternFile(t, SECTORS);
  const served = exportOf(file);
  const { server } = await startInProcess(t, [served]);
  const typo = { ...exportOf(other), slot: 9, interfaces: ['eth7'] };
  await server.apply({ exports: [served, typo] });
  t.same(
    server.stats().interfaces.map((i) => [i.name, i.open]),
    [
      [served.interfaces[0], true],
      ['eth7', false],
    ],
    'the missing interface waits, listed',
  );
  await server.apply({ exports: [served] });
  t.same(
    server.stats().interfaces.map((i) => i.name),
    [served.interfaces[0]],
    'no export names it any more: not listed',
  );
});
