// NBD servers that lie in the transmission phase (a node:net server speaking
// just enough NBD, test/helpers/hostile-nbd.ts), served by our target to the
// project's AoE client over a veth pair in namespaces this test makes: the
// initiator never gets data the server did not send for its request, never a
// write acknowledged that the server did not acknowledge, and the target runs on.

import t from 'tap';
import { linkInfo, type Target } from '../../src/client';
import { AtaError } from '../../src/client/errors';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { CHUNK, NBD_CMD, NBD_FLAG, offsetData, startHostileNbd, type HostileConn, type NbdRequest } from '../helpers/hostile-nbd';
import { startTarget, waitLinkUp } from '../helpers/targets';
import { openClient } from '../integration/lib';
import { sleep } from '../../lab/common';

const SHELF = 9;
const MiB = 1n << 20n;
/** What the honest part of each server holds. */
const FILL = 0xab;

/** Answers reads below `from` honestly (FILL), writes and flushes with success, and hands the rest to `lie`. */
function lyingAbove(from: bigint, lie: (c: HostileConn, r: NbdRequest) => void) {
  return (c: HostileConn, r: NbdRequest): void => {
    if (r.type === NBD_CMD.read && r.offset >= from) lie(c, r);
    else c.ok(r, Buffer.alloc(r.length, FILL));
  };
}

if (requireRoot(t)) {
  t.test('servers that lie in their replies', async (t) => {
    const pair = await createNetnsPair(t, { mtu: 1500 });
    await waitLinkUp(pair.target, pair.targetIf);
    const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 3000, retries: 0 });
    const mac = linkInfo(pair.targetIf, pair.target.path).mac;
    let slot = 0;
    const serve = async (uri: string) => {
      const s = slot++;
      const target = await startTarget(t, pair.target, ['--remote-timeout', '2', String(SHELF), String(s), pair.targetIf, uri]);
      const T: Target = { shelf: SHELF, slot: s, mac, sectorCount: 2, bufferCount: 16 };
      return { target, T };
    };
    /** Reads sector 0 honestly (frame memory now holds FILL), then `sector`, which the server lies about. */
    const readAfterHonest = async (T: Target, sector: number) => {
      t.equal(
        (await c.client.read(T, 0, 2)).every((b) => b === FILL),
        true,
        'the honest read',
      );
      try {
        return Buffer.from(await c.client.read(T, sector, 2));
      } catch (e) {
        if (!(e instanceof AtaError)) throw e;
        return undefined;
      }
    };
    const lies: [string, (c: HostileConn, r: NbdRequest) => void][] = [
      ['a read answered with a done chunk and no data', (c, r) => c.chunk(r.cookie, CHUNK.none, true, Buffer.alloc(0))],
      [
        'a read answered with half its data',
        (c, r) => c.chunk(r.cookie, CHUNK.offsetData, true, offsetData(r.offset, Buffer.alloc(r.length / 2, 0x11))),
      ],
      [
        'a read answered with data for another offset',
        (c, r) => c.chunk(r.cookie, CHUNK.offsetData, true, offsetData(r.offset + 4096n, Buffer.alloc(r.length, 0x22))),
      ],
      [
        'a read answered under another cookie',
        (c, r) => c.chunk(r.cookie + 7n, CHUNK.offsetData, true, offsetData(r.offset, Buffer.alloc(r.length, 0x33))),
      ],
    ];
    for (const [name, lie] of lies) {
      const server = await startHostileNbd(t, { size: () => 8n * MiB, answer: lyingAbove(512n * 100n, lie) });
      const { target, T } = await serve(server.uri);
      const got = await readAfterHonest(T, 200);
      t.equal(got, undefined, `${name}: an ATA error, not data (got ${got?.subarray(0, 4).toString('hex')})`);
      t.ok(target.proc.running, `${name}: the target runs on`);
    }

    // A write the server answers under a cookie it was never sent: not acknowledged to the initiator.
    const server = await startHostileNbd(t, {
      size: () => 8n * MiB,
      answer: (c, r) => (r.type === NBD_CMD.write ? c.simple(r.cookie + 1000n, 0) : c.ok(r, Buffer.alloc(r.length, FILL))),
    });
    const { target, T } = await serve(server.uri);
    await t.rejects(
      c.client.write(T, 10, Buffer.alloc(1024, 0x44)),
      AtaError,
      'a write answered under another cookie is an ATA error',
    );
    t.ok(target.proc.running, 'the target runs on');

    // Multi-conn, but the second connection reports another size: the target would serve reads past it from some
    // connections and fail them on others.
    const sizes = await startHostileNbd(t, {
      size: (conn) => (conn === 0 ? 8n * MiB : 1n * MiB),
      flags: NBD_FLAG.hasFlags | NBD_FLAG.flush | NBD_FLAG.multiConn,
      answer: (c, r) => c.ok(r, Buffer.alloc(r.length, FILL)),
    });
    await t.rejects(
      serve(sizes.uri),
      /connection 2 .*reports 1048576 bytes, not 8388608.*nbd-connections = 1/,
      'refused at start, saying why and what to do',
    );

    // Multi-conn at first; the connections made again after a drop no longer offer it (nor flush): a flush on one
    // of them would no longer cover writes on the others, so they are not served from.
    const changes = await startHostileNbd(t, {
      size: () => 8n * MiB,
      flags: (conn) => (conn < 4 ? NBD_FLAG.hasFlags | NBD_FLAG.flush | NBD_FLAG.multiConn : NBD_FLAG.hasFlags),
      answer: (c, r) => c.ok(r, Buffer.alloc(r.length, FILL)),
    });
    const m = await serve(changes.uri);
    await c.client.write(m.T, 0, Buffer.alloc(1024, 0x55));
    const from = m.target.proc.mark();
    changes.dropAll();
    await m.target.proc.waitFor(/does not offer (flush|multi-conn)/, { from, timeoutMs: 10000 });
    t.pass('the log says what the server no longer offers');
    await t.rejects(c.client.write(m.T, 0, Buffer.alloc(1024, 0x66)), AtaError, 'writes are not acknowledged meanwhile');
    t.ok(m.target.proc.running, 'the target runs on');
  });

  t.test('at stop, the last flush goes over a connection that is up when the first one is down', async (t) => {
    const pair = await createNetnsPair(t, { mtu: 1500 });
    await waitLinkUp(pair.target, pair.targetIf);
    const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 3000, retries: 0 });
    let refuseNew = false;
    const server = await startHostileNbd(t, {
      size: () => 8n * MiB,
      flags: NBD_FLAG.hasFlags | NBD_FLAG.flush | NBD_FLAG.multiConn,
      // Connections made after the drop are closed at once: the first connection stays down.
      accept: () => !refuseNew,
      answer: (conn, r) => conn.ok(r),
    });
    const target = await startTarget(t, pair.target, ['--remote-timeout', '2', String(SHELF), '20', pair.targetIf, server.uri]);
    const T: Target = {
      shelf: SHELF,
      slot: 20,
      mac: linkInfo(pair.targetIf, pair.target.path).mac,
      sectorCount: 2,
      bufferCount: 16,
    };
    const from = target.proc.mark();
    refuseNew = true;
    server.dropFirst();
    await target.proc.waitFor(/connection 0: the server went away/, { from, timeoutMs: 5000 });
    // Writes go to the connections still up.
    for (let i = 0; i < 4; i++) await c.client.write(T, 2 * i, Buffer.alloc(1024, 0x77));
    const writes = server.requests.filter((x) => x.req.type === NBD_CMD.write);
    t.ok(writes.length >= 4, `the server acknowledged ${writes.length} writes`);
    const st = await target.proc.stop(15000);
    t.equal(st.code, 0, 'the target stopped cleanly');
    const last = server.requests.map((x) => x.req.type).lastIndexOf(NBD_CMD.write);
    const flushAfter = server.requests.findIndex((x, i) => i > last && x.req.type === NBD_CMD.flush);
    t.ok(
      flushAfter > last,
      `a flush after the last write (requests: ${server.requests.map((x) => `${x.conn}:${x.req.type}`).join(' ')})`,
    );
  });

  t.test(
    'a server that closes every connection right after its handshake: reconnections back off, the log stays short',
    async (t) => {
      const pair = await createNetnsPair(t, { mtu: 1500 });
      await waitLinkUp(pair.target, pair.targetIf);
      let closing = false;
      const server = await startHostileNbd(t, {
        size: () => 8n * MiB,
        afterHandshake: (conn) => {
          if (closing) conn.socket.destroy();
        },
        answer: (conn, r) => conn.ok(r),
      });
      let handshakes = 0;
      server.server.on('connection', () => handshakes++);
      const target = await startTarget(t, pair.target, [String(SHELF), '21', pair.targetIf, server.uri]);
      closing = true;
      const from = target.proc.mark();
      const before = handshakes;
      server.dropAll();
      await sleep(6000);
      const lines = target.proc.mark() - from;
      const made = handshakes - before;
      t.ok(made <= 4 * 8, `${made} connections in 6 s from 4 connection slots (back-off from 100 ms to 5 s)`);
      t.ok(lines <= 4 * 8 * 2, `${lines} log lines in 6 s`);
      t.ok(target.proc.running, 'the target runs on');
    },
  );
}
