// A write from the receive ring holds its ring slot until the write has
// completed; the slots of the writes one reap completes go back in one
// releaseMany() per link, not one release() each. In process, on the fake
// addon.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { patternFile } from '../helpers/files';
import { exportOf, startInProcess } from '../helpers/in-process';

const SECTORS = 256;
const N = 32;

t.test(`${N} writes completed in one reap give their receive slots back in one call`, async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, net, iface } = await startInProcess(t, [exportOf(file)]);
  const sock = iface.sockets[0];
  let single = 0;
  let many = 0;
  let inMany = false;
  const release = sock.release.bind(sock);
  const releaseMany = sock.releaseMany.bind(sock);
  sock.release = (slot: number): void => {
    if (!inMany) single++;
    release(slot);
  };
  sock.releaseMany = (slots: Uint32Array, count: number): void => {
    many++;
    inMany = true;
    try {
      releaseMany(slots, count);
    } finally {
      inMany = false;
    }
  };
  net.holdIo(true); // the writes complete together, once let go
  const tags = Array.from({ length: N }, (_, i) => initiator.write(i * 3, randomBytes(512)));
  await new Promise((r) => setImmediate(r));
  t.equal(sock.heldSlots, N, 'every write holds its receive slot while it runs');
  const before = many;
  net.holdIo(false);
  for (const tag of tags) t.notOk((await initiator.ataReply(tag)).ata.failed, `write 0x${tag.toString(16)} succeeded`);
  t.equal(sock.heldSlots, 0, 'every slot is back');
  t.equal(single, 0, 'no slot given back on its own');
  t.equal(many - before, 1, 'one releaseMany() for the writes of the reap');
});
