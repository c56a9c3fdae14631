// Our target serving NBD exports (file = nbd+unix://…) to the project's AoE
// client over a veth pair in namespaces this test makes: data written through
// AoE is on the server (read back from the server side with nbdcopy), the
// server's errors are ATA errors, a server slower than remote-timeout fails
// requests and serving resumes, and a restarted server is reconnected to.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatMac } from '../../src/client';
import { AtaError } from '../../src/client/errors';
import { requireRoot } from '../../lab/netns';
import { requireCommands, runOk } from '../../lab/process';
import { patternSectors, tempDir } from '../helpers/files';
import { startNbdkit } from '../helpers/nbd-server';
import { serveNbdOnPair } from '../helpers/nbd-served';
import { sectorDiff, stamp } from '../integration/lib';

const SHELF = 7;
const SLOT = 3;
const MiB = 1 << 20;

async function copyOut(t: Parameters<typeof tempDir>[0], uri: string): Promise<Buffer> {
  const out = join(tempDir(t, 'copy'), 'copy.img');
  await runOk('nbdcopy', [uri, out]);
  return readFileSync(out);
}

if (requireRoot(t) && requireCommands(t, ['nbdkit', 'nbdcopy'])) {
  t.test('an nbd export on nbdkit memory: writes land on the server, reads come back', async (t) => {
    const server = await startNbdkit(t, ['memory', 'size=64M']);
    const { c, target, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      options: ['-s'],
      mtu: 9000,
      sectorCount: 16,
      client: { timeoutMs: 2000 },
    });
    t.equal(target.sectors, (64 * MiB) / 512, `the size is the server's: ${target.line}`);
    t.equal(target.mode, 'O_RDWR');
    const found = await c.client.discover(SHELF, SLOT, 1000, true);
    t.equal(found.length, 1, `discovered at ${formatMac(T.mac)}`);
    const id = await c.client.identify(T);
    t.equal(id.lba48Sectors, (64 * MiB) / 512, 'IDENTIFY says the server’s size');
    const data = patternSectors(2048, 256);
    await c.client.write(T, 2048, data);
    const d28 = stamp('nbd28', 2);
    await c.client.write28(T, 5, d28);
    await c.client.flush(T, true);
    t.equal(sectorDiff(Buffer.from(await c.client.read(T, 2048, 256)), data), 'same', 'read back through AoE');
    const copy = await copyOut(t, server.uri);
    t.equal(sectorDiff(copy.subarray(2048 * 512, (2048 + 256) * 512), data), 'same', 'on the server, at the right place');
    t.equal(sectorDiff(copy.subarray(5 * 512, 7 * 512), d28), 'same', 'the 28-bit write too');
    t.equal(sectorDiff(copy.subarray(0, 5 * 512), Buffer.alloc(5 * 512)), 'same', 'and nothing before it');
    await t.rejects(c.client.read(T, (64 * MiB) / 512, 1), AtaError, 'a read past the end is an ATA error');
  });

  t.test("the server's errors are ATA errors; the target serves on", async (t) => {
    const server = await startNbdkit(t, ['--filter=error', 'memory', 'size=8M', 'error-pwrite-rate=100%', 'error=EIO']);
    const { c, target, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      client: { timeoutMs: 2000, retries: 1 },
    });
    await t.rejects(c.client.write(T, 0, stamp('x', 2)), AtaError, 'the failed write is an ATA error');
    t.equal((await c.client.read(T, 0, 2)).length, 1024, 'reads still work');
    t.ok(target.proc.running, 'the target is running');
  });

  t.test('a server slower than remote-timeout: requests fail, then serving resumes', async (t) => {
    const dir = tempDir(t, 'slow');
    const server = await startNbdkit(t, ['memory', 'size=8M'], { dir });
    const { c, target, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      options: ['--remote-timeout', '2'],
      client: { timeoutMs: 6000, retries: 0 },
    });
    await c.client.write(T, 10, stamp('before', 2));
    await c.client.flush(T);
    // The server stops answering (SIGSTOP): the request fails after about 2 s, not never.
    await server.proc.freeze();
    const t0 = Date.now();
    await t.rejects(c.client.read(T, 10, 2), AtaError, 'a read the server does not answer is an ATA error');
    const waited = Date.now() - t0;
    t.ok(waited >= 1500 && waited < 5500, `after the bounded wait (${waited} ms)`);
    t.ok(target.proc.running, 'the target is running');
    // A new server on the same socket (the stopped one is killed): the target reconnects.
    server.proc.signal('SIGCONT');
    await server.stop();
    const from = target.proc.mark();
    await startNbdkit(t, ['memory', 'size=8M'], { dir });
    await target.proc.waitFor(/reconnected; serving resumes/, { from, timeoutMs: 15000 });
    t.pass('the log says it reconnected');
    const after = stamp('after', 2);
    await c.client.write(T, 20, after);
    t.equal(sectorDiff(Buffer.from(await c.client.read(T, 20, 2)), after), 'same', 'writes and reads work again');
  });

  t.test('reads delayed beyond remote-timeout (nbdkit delay filter): an ATA error, then writes serve', async (t) => {
    const server = await startNbdkit(t, ['--filter=delay', 'memory', 'size=8M', 'rdelay=5']);
    const { c, target, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      options: ['--remote-timeout', '1'],
      client: { timeoutMs: 4000, retries: 0 },
    });
    const t0 = Date.now();
    await t.rejects(c.client.read(T, 0, 2), AtaError, 'the delayed read is an ATA error');
    t.ok(Date.now() - t0 < 3000, `after about remote-timeout (${Date.now() - t0} ms), not the server's 5 s`);
    await target.proc.waitFor(/has not answered within 1000 ms; failing its requests and reconnecting/, { timeoutMs: 5000 });
    await c.client.write(T, 8, stamp('after-delay', 2));
    t.pass('a write is served after the reconnection');
  });

  t.test('at stop, a last flush makes what was written durable (nbdkit log filter)', async (t) => {
    const log = join(tempDir(t, 'nbdlog'), 'nbd.log');
    const server = await startNbdkit(t, ['--filter=log', 'memory', 'size=8M', `logfile=${log}`]);
    const { c, target, T } = await serveNbdOnPair(t, server.uri, { shelf: SHELF, slot: SLOT, client: { timeoutMs: 2000 } });
    await c.client.write(T, 100, stamp('last', 2));
    const st = await target.proc.stop(10000);
    t.equal(st.code, 0, st.code === 0 ? 'the target stopped cleanly' : `the target failed to stop: ${target.proc.tail(8)}`);
    const lines = readFileSync(log, 'utf8').split('\n');
    const lastWrite = lines.map((l) => / Write /.test(l)).lastIndexOf(true);
    const flushAfter = lines.findIndex((l, i) => i > lastWrite && / Flush /.test(l));
    t.ok(lastWrite >= 0 && flushAfter > lastWrite, 'the server saw a flush after the last write');
  });

  t.test('a sync export writes with FUA when the server takes it (nbdkit log filter)', async (t) => {
    const log = join(tempDir(t, 'nbdlog'), 'nbd.log');
    const server = await startNbdkit(t, ['--filter=log', 'memory', 'size=8M', `logfile=${log}`]);
    const { c, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      options: ['-s', '-o', '8', '-l', '100'],
      client: { timeoutMs: 2000 },
    });
    t.equal((await c.client.identify(T)).lba48Sectors, 100, '-l 100: 100 sectors');
    await c.client.write(T, 0, stamp('fua', 2));
    const writes = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => / Write /.test(l));
    t.equal(writes.length, 1, writes.join('\n'));
    t.match(writes[0], /offset=0x1000 count=0x400 fua=1/, '-o 8: at byte 4096, with FUA');
    // A FUA write is on stable storage when the server answers it: no flush after it (a redundant one costs the
    // server an fdatasync per batch on a file). An initiator's FLUSH still is one.
    for (let i = 0; i < 8; i++) await c.client.write(T, 2 + 2 * i, stamp(`fua ${i}`, 2));
    const flushLines = () =>
      readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => / Flush /.test(l));
    const flushes = () => flushLines().length;
    t.equal(flushes(), 0, `nine FUA writes, no flush: ${flushLines().join('\n')}`);
    await c.client.flush(T, false);
    t.ok(flushes() >= 1, "the initiator's FLUSH is an NBD flush");
  });
}
