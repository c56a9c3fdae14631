// Our target serving NBD exports (file = nbd+unix://…) to the project's AoE
// client over a veth pair in namespaces this test makes: data written through
// AoE is on the server (read back from the server side with nbdcopy), the
// server's errors are ATA errors, a server slower than remote-timeout fails
// requests and serving resumes, and a restarted server is reconnected to.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatMac, linkInfo, type Target } from '../../src/client';
import { AtaError } from '../../src/client/errors';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { requireCommands, runOk } from '../../lab/process';
import { patternSectors, tempDir } from '../helpers/files';
import { startNbdkit } from '../helpers/nbd-server';
import { startTarget, waitLinkUp } from '../helpers/targets';
import { openClient, sectorDiff, stamp } from '../integration/lib';

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
    const pair = await createNetnsPair(t, { mtu: 9000 });
    await waitLinkUp(pair.target, pair.targetIf);
    const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 2000 });
    const target = await startTarget(t, pair.target, ['-s', String(SHELF), String(SLOT), pair.targetIf, server.uri]);
    t.equal(target.sectors, (64 * MiB) / 512, `the size is the server's: ${target.line}`);
    t.equal(target.mode, 'O_RDWR');
    const T: Target = {
      shelf: SHELF,
      slot: SLOT,
      mac: linkInfo(pair.targetIf, pair.target.path).mac,
      sectorCount: 16,
      bufferCount: 16,
    };
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
    const pair = await createNetnsPair(t, { mtu: 1500 });
    await waitLinkUp(pair.target, pair.targetIf);
    const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 2000, retries: 1 });
    const target = await startTarget(t, pair.target, [String(SHELF), String(SLOT), pair.targetIf, server.uri]);
    const T: Target = {
      shelf: SHELF,
      slot: SLOT,
      mac: linkInfo(pair.targetIf, pair.target.path).mac,
      sectorCount: 2,
      bufferCount: 16,
    };
    await t.rejects(c.client.write(T, 0, stamp('x', 2)), AtaError, 'the failed write is an ATA error');
    t.equal((await c.client.read(T, 0, 2)).length, 1024, 'reads still work');
    t.ok(target.proc.running, 'the target is running');
  });

  t.test('a server slower than remote-timeout: requests fail, then serving resumes', async (t) => {
    const dir = tempDir(t, 'slow');
    const pair = await createNetnsPair(t, { mtu: 1500 });
    const server = await startNbdkit(t, ['memory', 'size=8M'], { dir });
    await waitLinkUp(pair.target, pair.targetIf);
    const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 6000, retries: 0 });
    const target = await startTarget(t, pair.target, [
      '--remote-timeout',
      '2',
      String(SHELF),
      String(SLOT),
      pair.targetIf,
      server.uri,
    ]);
    const T: Target = {
      shelf: SHELF,
      slot: SLOT,
      mac: linkInfo(pair.targetIf, pair.target.path).mac,
      sectorCount: 2,
      bufferCount: 16,
    };
    await c.client.write(T, 10, stamp('before', 2));
    await c.client.flush(T);
    // The server stops answering (SIGSTOP): the request fails after about 2 s, not never.
    server.proc.signal('SIGSTOP');
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
}
