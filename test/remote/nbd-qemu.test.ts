// NBD exports on QEMU's servers: qemu-storage-daemon on a qcow2 image killed
// and restarted under a write load (every write the target acknowledged is in
// the image afterwards), and a qcow2 internal snapshot (qemu-img snapshot -c)
// served read-only by qemu-nbd and read back through AoE.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AtaError } from '../../src/client/errors';
import { requireRoot } from '../../lab/netns';
import { requireCommands, runOk } from '../../lab/process';
import { tempDir } from '../helpers/files';
import { startQsd, startSnapshotServer } from '../helpers/nbd-server';
import { serveNbdOnPair } from '../helpers/nbd-served';
import { sectorDiff, stamp } from '../integration/lib';

const SHELF = 9;
const SLOT = 1;
const MiB = 1 << 20;

/** The guest-visible contents of a qcow2 image, as raw bytes (qemu-img convert). */
async function rawOf(t: Parameters<typeof tempDir>[0], image: string): Promise<Buffer> {
  const out = join(tempDir(t, 'raw'), 'raw.img');
  await runOk('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image, out]);
  return readFileSync(out);
}

if (requireRoot(t) && requireCommands(t, ['qemu-storage-daemon', 'qemu-img', 'qemu-io', 'qemu-nbd'])) {
  t.test('qemu-storage-daemon killed and restarted under writes: what was acknowledged is in the image', async (t) => {
    const dir = tempDir(t, 'qsd-load');
    const image = join(dir, 'disk.qcow2');
    await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, '32M']);
    const sockDir = tempDir(t, 'qsd-sock');
    const server = await startQsd(t, image, { dir: sockDir });
    // sync: a write is acknowledged once the server has it on stable storage (FUA or flush).
    const { c, target, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      options: ['-s', '--remote-timeout', '3'],
      client: { timeoutMs: 1500, retries: 3 },
    });
    const acked = new Map<number, Buffer>();
    let failed = 0;
    let stop = false;
    const writer = async (lane: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const lba = (lane * 4096 + i * 2) % 65536;
        const data = stamp(`lane${lane}-${i}`, 2);
        try {
          await c.client.write(T, lba, data);
          acked.set(lba, data);
        } catch (e) {
          if (!(e instanceof Error)) throw e;
          acked.delete(lba); // what it held before may or may not be overwritten now
          failed++;
        }
      }
    };
    const lanes = [0, 1, 2, 3].map(writer);
    await new Promise((r) => setTimeout(r, 1500));
    const beforeKill = acked.size;
    server.proc.signal('SIGKILL');
    await server.proc.exited;
    await new Promise((r) => setTimeout(r, 1500));
    const from = target.proc.mark();
    const restarted = await startQsd(t, image, { dir: sockDir });
    await target.proc.waitFor(/reconnected; serving resumes/, { from, timeoutMs: 20000 });
    const afterRestart = acked.size;
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all(lanes);
    t.ok(beforeKill > 20, `${beforeKill} sector pairs acknowledged before the kill`);
    t.ok(
      acked.size >= afterRestart,
      `writes acknowledged after the restart too (${acked.size} sector pairs hold acknowledged data, ${failed} writes failed)`,
    );
    await c.client.flush(T);
    await target.proc.stop();
    await restarted.stop(); // it holds the image's lock
    const raw = await rawOf(t, image);
    const missing = [...acked].filter(
      ([lba, data]) => sectorDiff(raw.subarray(lba * 512, lba * 512 + data.length), data) !== 'same',
    );
    t.same(
      missing.map(([lba]) => lba),
      [],
      `every acknowledged write (${acked.size}) is in the image`,
    );
  });

  t.test('a qcow2 internal snapshot served read-only and read through AoE', async (t) => {
    const dir = tempDir(t, 'snap');
    const image = join(dir, 'disk.qcow2');
    await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, '8M']);
    await runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 0 1M', image]);
    await runOk('qemu-img', ['snapshot', '-c', 'before', image]);
    await runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xcd 0 1M', image]);
    const server = await startSnapshotServer(t, image, 'before');
    const { c, target, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      options: ['-r'],
      mtu: 9000,
      sectorCount: 16,
      client: { timeoutMs: 2000 },
    });
    t.equal(target.sectors, (8 * MiB) / 512);
    t.equal(target.mode, 'O_RDONLY');
    const got = Buffer.from(await c.client.read(T, 0, 2048));
    t.equal(sectorDiff(got, Buffer.alloc(MiB, 0xab)), 'same', 'the snapshot’s data, not what was written after it');
    await t.rejects(c.client.write(T, 0, stamp('x', 1)), AtaError, 'a write to the read-only export is refused');
  });
}
