// Failing storage: EIO, ENOSPC and short transfers turn into an ATA
// error reply for that request only; the daemon stays up and later requests
// succeed. Two sources of faults:
//  - injected: the test-only fault plan (src/backend/fault-io.ts), through
//    AOET_TEST_FAULT_PLAN pointing at a file the test rewrites while the
//    daemon runs;
//  - real: a backing file on a tiny tmpfs that is full (writes into holes get
//    ENOSPC), and a loop device whose backing file sits on a full tmpfs (the
//    error then comes from the block layer: at once with -d, at fdatasync
//    with -s, and only at the next FLUSH CACHE otherwise).

import t, { type Test } from 'tap';
import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AoeClient } from '../../src/client/client';
import { AtaError } from '../../src/client/errors';
import { checkSectors, fillSectors } from '../../src/client/pattern';
import { loopDevice, requireLoop, sparseFile, tempDir, tmpfsMount } from '../helpers/files';
import { createNetnsPair, NetnsPair, requireRoot } from '../../lab/netns';
import { openClient, writeClientPattern } from './lib/harness';
import { startTarget } from '../helpers/targets';

const SHELF = 21;
const SLOT = 4;

function sectors(first: number, count: number): Uint8Array {
  const b = new Uint8Array(count * 512);
  fillSectors(b, 0, first, count);
  return b;
}

/** Resolves with the AtaError a request failed with; fails the test if it succeeded or failed otherwise. */
async function ataError(t: Test, p: Promise<unknown>, what: string): Promise<AtaError | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AtaError) {
      t.equal(e.status & 0x01, 1, `${what}: ATA error reply (status 0x${e.status.toString(16)}, error 0x${e.err.toString(16)})`);
      return e;
    }
    t.fail(`${what}: failed with ${(e as Error).message}, not an ATA error`);
    return undefined;
  }
  t.fail(`${what}: succeeded, but should have failed`);
  return undefined;
}

/** Fills the file system holding `dir` with a filler file until ENOSPC; returns its path. */
function fillUp(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  try {
    for (;;) {
      try {
        writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        break;
      }
    }
    // The last partial page, byte by byte in 512-byte steps.
    const small = Buffer.alloc(512, 0x5a);
    for (;;) {
      try {
        writeSync(fd, small);
      } catch {
        break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

interface Rig {
  net: NetnsPair;
  client: AoeClient;
}

if (requireRoot(t)) {
  let rig: Rig;
  t.before(async () => {
    const net = await createNetnsPair(t, { mtu: 1500, macA: '02:a0:00:00:00:15', macB: '02:b0:00:00:00:15' });
    const client = await openClient(t, net.init, net.initIf, { timeoutMs: 3000, retries: 2 });
    rig = { net, client };
  });

  /** Starts our target on `file` with the given options; stopped at the end of the subtest. */
  const start = async (t: Test, opts: string[], file: string, env?: NodeJS.ProcessEnv) => {
    const d = await startTarget(t, rig.net.target, [...opts, String(SHELF), String(SLOT), rig.net.targetIf, file], { env });
    const target = await rig.client.find(SHELF, SLOT, 10000);
    return { d, target };
  };

  t.test('injected EIO, ENOSPC and short transfers fail only their own requests', async (t) => {
    const dir = tempDir(t, 'faults');
    const file = await sparseFile(t, 4096 * 512, { dir });
    writeClientPattern(file, 0, 4096);
    const plan = join(dir, 'plan.json');
    writeFileSync(
      plan,
      JSON.stringify({
        rules: [
          { op: 'write', sectors: [100, 103], error: 'ENOSPC' },
          { op: 'read', sectors: [200, 200], error: 'EIO' },
          { op: 'write', sectors: [300, 300], error: 'short' },
        ],
      }),
    );
    const { d, target } = await start(t, [], file, { AOET_TEST_FAULT_PLAN: plan });
    const c = rig.client;
    t.match(d.proc.stderr(), /TEST ONLY: storage fault injection active/, 'the daemon says fault injection is on');

    await ataError(t, c.write(target, 100, sectors(5000, 2)), 'write into the ENOSPC range');
    await ataError(t, c.write(target, 102, sectors(5000, 2)), 'another write into it');
    await c.write(target, 104, sectors(104, 2));
    t.pass('a write next to it succeeds');
    await ataError(t, c.read(target, 200, 1), 'read of the EIO sector');
    await ataError(t, c.read(target, 199, 2), 'read overlapping it');
    t.equal(checkSectors(await c.read(target, 201, 2), 0, 201, 2), -1, 'reads around it succeed with the right data');
    await ataError(t, c.write(target, 300, sectors(300, 1)), 'short write');
    t.equal((await c.identify(target)).sectors, 4096, 'IDENTIFY still answered');
    t.ok(d.proc.running, 'the daemon is still running');

    // Take the faults away while it runs: the same requests now succeed.
    writeFileSync(plan, '{"rules":[]}');
    await new Promise((r) => setTimeout(r, 200));
    await c.write(target, 100, sectors(100, 4));
    t.equal(checkSectors(await c.read(target, 100, 4), 0, 100, 4), -1, 'the failed range is writable again and reads back');
    t.equal(checkSectors(await c.read(target, 200, 1), 0, 200, 1), -1, 'the EIO sector reads again (its data never changed)');
    await c.write(target, 300, sectors(300, 1));

    // Every 10th read after the first 5 fails: exactly those requests, in order.
    writeFileSync(plan, JSON.stringify({ rules: [{ op: 'read', after: 5, every: 10, error: 'EIO' }] }));
    await new Promise((r) => setTimeout(r, 200));
    const failed: number[] = [];
    for (let i = 0; i < 40; i++) {
      try {
        const got = await c.read(target, 1000 + i, 1);
        if (checkSectors(got, 0, 1000 + i, 1) !== -1) t.fail(`read ${i} returned wrong data`);
      } catch (e) {
        if (e instanceof AtaError) failed.push(i);
        else throw e;
      }
    }
    t.same(failed, [5, 15, 25, 35], 'reads 6, 16, 26 and 36 failed, all others returned their data');

    // A failing fdatasync: FLUSH CACHE reports it, the next FLUSH succeeds.
    writeFileSync(plan, JSON.stringify({ rules: [{ op: 'sync', times: 1, error: 'EIO' }] }));
    await new Promise((r) => setTimeout(r, 200));
    await c.write(target, 400, sectors(400, 2));
    await ataError(t, c.flush(target), 'FLUSH CACHE whose fdatasync fails');
    await c.flush(target, true);
    t.pass('the next FLUSH CACHE EXT succeeds');
    t.ok(d.proc.running, 'the daemon is still running');
    await d.proc.stop();
    t.equal(d.proc.exitStatus?.code, 0, 'and stops cleanly');
  });

  t.test('-s: a write whose fdatasync fails is not acknowledged; the next ones are', async (t) => {
    const dir = tempDir(t, 'syncfault');
    const file = await sparseFile(t, 4096 * 512, { dir });
    const plan = join(dir, 'plan.json');
    writeFileSync(plan, JSON.stringify({ rules: [{ op: 'sync', times: 1, error: 'EIO' }] }));
    const { d, target } = await start(t, ['-s'], file, { AOET_TEST_FAULT_PLAN: plan });
    const c = rig.client;
    const first = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => c.write(target, 10 * i, sectors(10 * i, 1))));
    const failedFirst = first.filter((r) => r.status === 'rejected');
    t.ok(
      failedFirst.length >= 1,
      `${failedFirst.length} of 8 concurrent writes got an error (those covered by the failed fdatasync)`,
    );
    t.ok(
      failedFirst.every((r) => r.reason instanceof AtaError),
      'as ATA errors',
    );
    const second = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => c.write(target, 10 * i, sectors(10 * i, 1))));
    t.equal(second.filter((r) => r.status === 'rejected').length, 0, 'the next 8 writes all succeed');
    for (let i = 0; i < 8; i++)
      t.equal(checkSectors(await c.read(target, 10 * i, 1), 0, 10 * i, 1), -1, `sector ${10 * i} reads back`);
    t.ok(d.proc.running, 'the daemon is still running');
  });

  t.test('a backing file on a full tmpfs: ENOSPC on writes into holes, reads fine, writes work once space is free', async (t) => {
    const mnt = await tmpfsMount(t, '1M');
    const file = await sparseFile(t, 8 << 20, { dir: mnt, name: 'disk.img' });
    // Some data before the file system fills.
    writeClientPattern(file, 0, 16);
    const filler = fillUp(mnt);
    const { d, target } = await start(t, [], file);
    const c = rig.client;
    t.equal(checkSectors(await c.read(target, 0, 16), 0, 0, 16), -1, 'allocated sectors read back');
    t.same(await c.read(target, 4096, 2), new Uint8Array(1024), 'holes read as zeros');
    await c.write(target, 2, sectors(2, 2));
    t.pass('a write into allocated blocks still succeeds');
    await ataError(t, c.write(target, 8192, sectors(8192, 2)), 'write into a hole on the full file system');
    await ataError(t, c.write(target, 12000, sectors(12000, 1)), 'another one');
    t.ok(d.proc.running, 'the daemon is still running');
    rmSync(filler);
    await c.write(target, 8192, sectors(8192, 2));
    t.equal(checkSectors(await c.read(target, 8192, 2), 0, 8192, 2), -1, 'after freeing space the write succeeds and reads back');
  });

  t.test('a loop device on a full tmpfs', async (t) => {
    if (!requireLoop(t)) return;
    const mnt = await tmpfsMount(t, '2M');
    const backing = await sparseFile(t, 16 << 20, { dir: mnt, name: 'loop.img' });
    const dev = await loopDevice(t, backing);
    const filler = fillUp(mnt);
    const c = rig.client;

    await t.test('-d: the write fails at once', async (t) => {
      const { d, target } = await start(t, ['-d'], dev);
      await ataError(t, c.write(target, 4096, sectors(4096, 2)), 'O_DIRECT write to the full device');
      t.same(await c.read(target, 8000, 2), new Uint8Array(1024), 'reads still work');
      t.ok(d.proc.running, 'the daemon is still running');
    });

    await t.test('-s: the write fails at its fdatasync', async (t) => {
      const { d, target } = await start(t, ['-s'], dev);
      await ataError(t, c.write(target, 6000, sectors(6000, 2)), 'synchronous write to the full device');
      t.ok(d.proc.running, 'the daemon is still running');
    });

    await t.test('no -s: the write is acknowledged from the page cache; the next FLUSH CACHE reports the loss', async (t) => {
      const { d, target } = await start(t, [], dev);
      await c.write(target, 10000, sectors(10000, 2));
      t.pass('the write is acknowledged (page cache)');
      await ataError(t, c.flush(target), 'FLUSH CACHE after it');
      t.ok(d.proc.running, 'the daemon is still running');
    });

    await t.test('with space again, writes succeed in every mode', async (t) => {
      rmSync(filler);
      for (const mode of [['-d'], ['-s'], []]) {
        const { d, target } = await start(t, mode, dev);
        const lba = 2000 + 100 * mode.length;
        await c.write(target, lba, sectors(lba, 2));
        await c.flush(target);
        t.equal(
          checkSectors(await c.read(target, lba, 2), 0, lba, 2),
          -1,
          `${mode.join(' ') || 'no option'}: write, FLUSH and read back`,
        );
        await d.proc.stop();
      }
    });
  });
}
