// The native io ring on a temporary file, for both kinds: io_uring (when the
// kernel allows it) and the synchronous fallback forced with AOE_IORING=sync.
import t from 'tap';
import { closeSync, constants as fsConstants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoOp, IoOpFlag, IoOpLayout, IoRing, native } from '../../src/native/addon';

const EINVAL = constants.errno.EINVAL;
const EBADF = constants.errno.EBADF;

/** Opens a ring of the wanted kind; null when the kernel refuses io_uring. */
function openRing(kind: 'io_uring' | 'sync', depth: number): IoRing | null {
  const saved = process.env.AOE_IORING;
  if (kind === 'sync') process.env.AOE_IORING = 'sync';
  else delete process.env.AOE_IORING;
  try {
    const ring = native.openIoRing(depth);
    return ring.kind === kind ? ring : (ring.close(), null);
  } finally {
    if (saved === undefined) delete process.env.AOE_IORING;
    else process.env.AOE_IORING = saved;
  }
}

type Op = [IoOp, number, number, number, number, number];

/** Submits `ops` and waits (through startPolling) for all their completions, returned by tag. */
async function run(ring: IoRing, ops: Op[], firstTag = 100): Promise<Map<number, number>> {
  const packed = new Float64Array(IoOpLayout.Stride * ops.length);
  const tags = new Uint32Array(ops.length);
  ops.forEach((op, i) => {
    packed.set(op, IoOpLayout.Stride * i);
    tags[i] = firstTag + i;
  });
  const results = new Map<number, number>();
  const out = new Int32Array(2 * 16);
  const reapAll = () => {
    for (let n = ring.reap(out, 16); n > 0; n = ring.reap(out, 16))
      for (let i = 0; i < n; i++) results.set(out[2 * i], out[2 * i + 1]);
  };
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${results.size} of ${ops.length} completions`)), 5000);
    ring.startPolling(() => {
      reapAll();
      if (results.size >= ops.length) {
        clearTimeout(timer);
        ring.stopPolling();
        resolve();
      }
    });
  });
  const accepted = ring.submit(packed, tags, ops.length);
  if (accepted !== ops.length) throw new Error(`submit accepted ${accepted} of ${ops.length}`);
  await done;
  return results;
}

const dir = mkdtempSync(join(tmpdir(), 'aoe-ioring-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

for (const kind of ['io_uring', 'sync'] as const) {
  const ring = openRing(kind, 32);
  const skip = ring ? false : 'the kernel refuses io_uring here (io_uring_setup failed); only the fallback runs';
  t.test(kind, { skip }, async (t) => {
    if (!ring) return;
    t.teardown(() => ring.close());
    t.equal(ring.kind, kind);
    t.equal(ring.depth, 32);
    const path = join(dir, `${kind}.img`);
    writeFileSync(path, Buffer.alloc(1 << 20));
    const fd = openSync(path, 'r+');
    t.teardown(() => closeSync(fd));

    const src = new Uint8Array(64 * 1024);
    for (let i = 0; i < src.length; i++) src[i] = (i * 7 + 3) & 0xff;
    const dst = new Uint8Array(64 * 1024);
    ring.registerBuffer(0, src);
    ring.registerBuffer(63, dst);

    t.test('write, datasync, read back', async (t) => {
      const w = await run(ring, [
        [IoOp.Write, fd, 0, 4096, 8192, 512],
        [IoOp.Write, fd, 0, 0, 512, 0],
      ]);
      t.same([w.get(100), w.get(101)], [8192, 512], 'bytes written');
      const s = await run(ring, [[IoOp.DataSync, fd, 0, 0, 0, 0]], 7);
      t.equal(s.get(7), 0, 'datasync');
      const file = readFileSync(path);
      t.same(file.subarray(512, 512 + 8192), Buffer.from(src.subarray(4096, 4096 + 8192)), 'file has the data');
      t.same(file.subarray(0, 512), Buffer.from(src.subarray(0, 512)));
      const r = await run(ring, [[IoOp.Read, fd, 63, 100, 8192, 512]], 0xfffffff0);
      t.equal(r.get(0xfffffff0 | 0), 8192, 'tags survive all 32 bits');
      t.same(dst.subarray(100, 100 + 8192), src.subarray(4096, 4096 + 8192), 'read back');
      const eof = await run(ring, [[IoOp.Read, fd, 63, 0, 4096, (1 << 20) - 1000]]);
      t.equal(eof.get(100), 1000, 'short read at end of file');
    });

    t.test('inline operations complete inside submit and wake nobody', async (t) => {
      let wakes = 0;
      ring.startPolling(() => wakes++);
      const ops = new Float64Array(IoOpLayout.Stride * 2);
      ops.set([IoOp.Write | IoOpFlag.Inline, fd, 0, 0, 1024, 65536], 0);
      ops.set([IoOp.Read | IoOpFlag.Inline, fd, 63, 2048, 1024, 65536], IoOpLayout.Stride);
      t.equal(ring.submit(ops, new Uint32Array([5, 6]), 2), 2);
      const out = new Int32Array(8);
      t.equal(ring.reap(out, 4), 2, 'both completions are there at once');
      t.same([out[0], out[1], out[2], out[3]], [5, 1024, 6, 1024]);
      t.same(dst.subarray(2048, 3072), src.subarray(0, 1024), 'the inline read saw the inline write');
      await new Promise((r) => setTimeout(r, 50));
      ring.stopPolling();
      t.equal(wakes, 0, 'no wake-up for completions the caller reaped itself');
    });

    t.test('O_DIRECT reads wake the loop (completions by task work, not inline)', async (t) => {
      let direct: number;
      try {
        direct = openSync(path, fsConstants.O_RDONLY | fsConstants.O_DIRECT);
      } catch {
        t.comment('skipped: this file system refuses O_DIRECT');
        return;
      }
      t.teardown(() => closeSync(direct));
      // O_DIRECT wants 512-byte aligned memory, and JavaScript cannot place a
      // buffer: try every 8-byte step of one 512-byte period (two batches).
      const mem = new Uint8Array(64 * 1032 + 512);
      ring.registerBuffer(5, mem);
      t.teardown(() => ring.unregisterBuffer(5));
      const results: number[] = [];
      for (const first of [0, 32]) {
        const ops: Op[] = [];
        // op k reads into 1032 * k: its own 512 bytes, at 8 * k (mod 512) from the base
        for (let k = first; k < first + 32; k++) ops.push([IoOp.Read, direct, 5, 1032 * k, 512, 4096]);
        const r = await run(ring, ops, first);
        for (let k = first; k < first + 32; k++) results.push(r.get(k)!);
      }
      const good = results.filter((x) => x === 512).length;
      t.ok(good >= 1, `${good} aligned direct reads completed through wake-ups`);
      t.equal(good + results.filter((x) => x === -EINVAL).length, 64, 'the others were refused by the kernel');
      const k = results.indexOf(512);
      t.same(mem.subarray(1032 * k, 1032 * k + 512), new Uint8Array(readFileSync(path).subarray(4096, 4608)), 'data');
    });

    t.test('wake-ups: none left behind by an early reap, one kept for what a short reap leaves', async (t) => {
      const out = new Int32Array(2 * 8);
      const ops = new Float64Array(IoOpLayout.Stride * 4);
      for (let i = 0; i < 4; i++) ops.set([IoOp.Read, fd, 63, 512 * i, 512, 0], IoOpLayout.Stride * i);
      const reapSoon = async (want: number, max: number) => {
        let got = 0;
        for (let i = 0; i < 2000 && got < want; i++) {
          got += ring.reap(out, max);
          if (got < want) await new Promise((r) => setImmediate(r));
        }
        return got;
      };
      // Cached reads complete during submit (io_uring) or inside it (sync).
      t.equal(ring.submit(ops, new Uint32Array(4), 4), 4);
      t.equal(await reapSoon(4, 8), 4);
      let wakeups = 0;
      ring.startPolling(() => { wakeups++; });
      await new Promise((r) => setTimeout(r, 50));
      t.equal(wakeups, 0, 'no wake-up for completions already reaped');
      ring.stopPolling();

      t.equal(ring.submit(ops, new Uint32Array(4), 4), 4);
      await new Promise((r) => setTimeout(r, 20));
      t.equal(ring.reap(out, 1), 1, 'a reap limited to one');
      const woke = new Promise<number>((resolve) => {
        ring.startPolling(() => {
          let n = 0;
          for (let m; (m = ring.reap(out, 8)) > 0;) n += m;
          ring.stopPolling();
          resolve(n);
        });
      });
      t.equal(await woke, 3, 'the other three still wake the loop');
    });

    t.test('refused operations complete with -EINVAL', async (t) => {
      const r = await run(ring, [
        [IoOp.Read, fd, 63, 60 * 1024, 8192, 0], // past the end of its buffer
        [IoOp.Read, fd, 5, 0, 512, 0], // unregistered buffer
        [IoOp.Read, fd, 64, 0, 512, 0], // id out of range
        [IoOp.Write, fd, 0, 0, 512, -512], // negative position
        [IoOp.Write, fd, 0, 0.5, 512, 0], // fractional offset
        [7 as IoOp, fd, 0, 0, 512, 0], // unknown op
        [IoOp.Read, 99999, 63, 0, 512, 0], // not an open fd
        [IoOp.Read, fd, 63, 0, 512, 4096], // fine
      ]);
      t.same([...r.values()].length, 8);
      for (let tag = 100; tag < 106; tag++) t.equal(r.get(tag), -EINVAL, `op ${tag - 100} refused`);
      t.equal(r.get(106), -EBADF, 'bad fd reported by the kernel');
      t.equal(r.get(107), 512);
    });

    t.test('capacity and buffer ids', async (t) => {
      const ops = new Float64Array(IoOpLayout.Stride * 40);
      for (let i = 0; i < 40; i++) ops.set([IoOp.Read, fd, 63, 0, 512, 0], IoOpLayout.Stride * i);
      const tags = new Uint32Array(40);
      t.equal(ring.submit(ops, tags, 40), 32, 'at most depth in flight');
      t.equal(ring.submit(ops, tags, 1), 0, 'full');
      t.throws(() => ring.unregisterBuffer(5), { code: 'ENOENT' });
      ring.unregisterBuffer(63); // ops in flight: retires once they are reaped
      t.throws(() => ring.registerBuffer(63, dst), { code: 'EBUSY' }, 'still in flight');
      const out = new Int32Array(2 * 64);
      let reaped = 0;
      for (let i = 0; i < 1000 && reaped < 32; i++) {
        reaped += ring.reap(out.subarray(2 * reaped), 64);
        if (reaped < 32) await new Promise((r) => setImmediate(r));
      }
      t.equal(reaped, 32);
      ring.registerBuffer(63, dst);
      t.throws(() => ring.registerBuffer(63, dst), { code: 'EBUSY' });
      t.throws(() => ring.registerBuffer(64, dst), RangeError);
      t.throws(() => ring.registerBuffer(1, new Uint32Array(4) as never), TypeError);
      t.throws(() => ring.submit(ops, tags, 41), RangeError, 'count beyond the arrays');
    });

    t.test('close() waits, then methods throw', async (t) => {
      const other = openRing(kind, 4)!;
      const buf = new Uint8Array(4096);
      other.registerBuffer(0, buf);
      const ops = new Float64Array([IoOp.Read, fd, 0, 0, 4096, 0]);
      t.equal(other.submit(ops, new Uint32Array(1), 1), 1);
      other.close(); // with one op in flight
      other.close();
      const closed = { code: 'EBADF', message: /io ring is closed/ };
      t.throws(() => other.submit(ops, new Uint32Array(1), 1), closed);
      t.throws(() => other.reap(new Int32Array(2), 1), closed);
      t.throws(() => other.registerBuffer(1, buf), closed);
      t.throws(() => other.startPolling(() => undefined), closed);
      other.stopPolling();
    });
  });
}

t.test('openIoRing argument checks', async (t) => {
  t.throws(() => native.openIoRing(0), { code: 'EINVAL' });
  t.throws(() => native.openIoRing(100000), RangeError);
});
