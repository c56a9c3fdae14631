// Running out of request or transmit slots, and a full socket queue: requests
// beyond what the slots hold wait in the receive ring (the kernel's queue)
// and are served as slots free, none dropped (a dropped one costs its
// initiator a retransmission timeout); only a full ring drops, and counts it.
import t from 'tap';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, settle, startInProcess } from '../helpers/in-process';

const SECTORS = 64;

t.test('more requests at once than request slots: the others wait in the ring and are served, none dropped', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)], { requestSlots: 4, txSlots: 16 });
  const tags = Array.from({ length: 10 }, (_, i) => initiator.read(i, 1));
  for (const [i, tag] of tags.entries()) {
    const r = await initiator.ataReply(tag);
    t.same(Buffer.from(r.ata.data), patternSectors(i, 1), `read ${i} served`);
  }
  await settle();
  const s = server.stats();
  t.equal(s.interfaces[0].counters.tx_drops, 0, 'none dropped');
  t.equal(s.interfaces[0].counters.rx_frames, 10);
  t.equal(s.exports[0].counters.reads, 10);
  t.equal(s.exports[0].inflight, 0, 'nothing left in flight');
  t.equal(net.sockets[0].heldSlots, 0, 'no receive slot kept');
});

t.test('more replies at once than transmit slots: the others wait in the ring and are served, none dropped', async (t) => {
  const { initiator, server } = await startInProcess(t, [exportOf('', { nullStore: true, nullSectors: 100 })], {
    requestSlots: 16,
    txSlots: 4,
  });
  const tags = Array.from({ length: 7 }, (_, i) => initiator.read(i, 1));
  for (const tag of tags) t.notOk((await initiator.ataReply(tag)).ata.failed);
  await settle();
  t.equal(server.stats().interfaces[0].counters.tx_drops, 0, 'none dropped');
  const next = [initiator.read(0, 1), initiator.queryConfig()];
  t.notOk((await initiator.ataReply(next[0])).ata.failed, 'a read is served afterwards');
  t.equal((await initiator.configReply(next[1])).config.bufferCount, 16, 'and a Query Config');
});

t.test(
  'every transmit slot held by a reply the full socket does not take: requests wait in the ring until it does',
  async (t) => {
    const file = await patternFile(t, SECTORS);
    const { initiator, server, net } = await startInProcess(t, [exportOf(file)], { requestSlots: 16, txSlots: 4 });
    const sock = net.sockets[0];
    sock.sendBlocked = true;
    const tags = Array.from({ length: 12 }, (_, i) => initiator.read(i, 1));
    await settle();
    t.same(
      tags.map((tag) => initiator.unclaimed(tag)),
      tags.map(() => 0),
      'no reply while the queue is full',
    );
    t.equal(server.stats().interfaces[0].counters.rx_frames, 4, 'only as many taken as there are transmit slots');
    sock.sendBlocked = false;
    for (const [i, tag] of tags.entries()) {
      t.same(
        Buffer.from((await initiator.ataReply(tag)).ata.data),
        patternSectors(i, 1),
        `read ${i} answered once there is room`,
      );
    }
    const s = server.stats();
    t.equal(s.interfaces[0].counters.tx_drops, 0, 'none dropped');
    const stalls = s.interfaces[0].counters.rx_stalls;
    t.ok(stalls >= 1 && stalls <= 3, `each time the ring waited is counted once (12 requests, 4 slots): rx_stalls ${stalls}`);
    t.equal(s.interfaces[0].counters.rx_frames, 12);
  },
);

t.test('requests within the slots: nothing waits, no stall counted', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server } = await startInProcess(t, [exportOf(file)]);
  for (let i = 0; i < 4; i++) t.notOk((await initiator.ataReply(initiator.read(i, 1))).ata.failed);
  t.equal(server.stats().interfaces[0].counters.rx_stalls, 0);
});

t.test('a full socket queue delays replies but loses none', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)]);
  const sock = net.sockets[0];
  sock.sendBlocked = true;
  const first = initiator.read(3, 1);
  await settle();
  t.equal(initiator.unclaimed(first), 0, 'no reply while the queue is full');
  sock.sendBlocked = false;
  t.same(Buffer.from((await initiator.ataReply(first)).ata.data), patternSectors(3, 1), 'sent once there is room');

  sock.sendLimit = 1; // one frame per send call
  const tags = Array.from({ length: 6 }, (_, i) => initiator.read(10 + i, 1));
  for (const [i, tag] of tags.entries()) {
    t.same(Buffer.from((await initiator.ataReply(tag)).ata.data), patternSectors(10 + i, 1), `read ${10 + i} answered`);
  }
  t.equal(server.stats().interfaces[0].counters.tx_drops, 0, 'nothing dropped');
});

t.test('a full receive ring drops frames, counted in rx_ring_drops; later frames are served', async (t) => {
  const { initiator, server, net } = await startInProcess(t, [exportOf('', { nullStore: true })]);
  const ring = net.sockets[0].frameCount;
  const tags = Array.from({ length: ring + 5 }, () => initiator.queryConfig());
  for (const tag of tags.slice(0, ring)) await initiator.configReply(tag);
  await settle();
  t.same(
    tags.slice(ring).map((tag) => initiator.unclaimed(tag)),
    [0, 0, 0, 0, 0],
    'the frames past the ring got no reply',
  );
  t.equal(server.stats().interfaces[0].counters.rx_ring_drops, 5);
  await initiator.configReply(initiator.queryConfig());
});
