// Mapped backing files (native/mapped.c): inline reads and writes on a mapped
// fd copy through the mapping, see the same data as read()/write(), and fall
// back to pread/pwrite where the mapping faults -- a file truncated under us,
// a write into a hole of a full tmpfs -- instead of dying of SIGBUS.
import t from 'tap';
import { closeSync, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { IoOp, IoOpFlag, IoOpLayout, IoRing, native } from '../../src/native/addon';
import { tmpfsMount } from '../helpers/files';
import type { TestLike } from '../../lab/common';

const ENOSPC = constants.errno.ENOSPC;

/** Runs inline ops one by one (they complete inside submit) and returns their results. */
function inline(ring: IoRing, ops: [IoOp, number, number, number, number, number][]): number[] {
  const packed = new Float64Array(IoOpLayout.Stride);
  const tags = new Uint32Array(1);
  const out = new Int32Array(2);
  return ops.map((op) => {
    packed.set(op);
    packed[IoOpLayout.Kind] = op[0] | IoOpFlag.Inline;
    if (ring.submit(packed, tags, 1) !== 1) throw new Error('submit refused the op');
    if (ring.reap(out, 1) !== 1) throw new Error('an inline op had no completion');
    return out[1];
  });
}

function filled(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

/** A file on a fresh tmpfs of `mountSize`, open read-write and mapped for `mapLength` bytes, with an io ring whose buffer 0 is `mem`. */
interface Mapped {
  dir: string;
  path: string;
  fd: number;
  ring: IoRing;
  mem: Uint8Array;
}

async function withMapped(
  t: TestLike,
  mountSize: string,
  content: Buffer | number,
  body: (m: Mapped) => void,
): Promise<void> {
  const dir = await tmpfsMount(t, mountSize);
  const path = join(dir, 'store');
  if (typeof content === 'number') writeFileSync(path, Buffer.alloc(0));
  else writeFileSync(path, content);
  const fd = openSync(path, 'r+');
  if (typeof content === 'number') ftruncateSync(fd, content); // sparse
  const ring = native.openIoRing(8);
  const mem = new Uint8Array(8192);
  ring.registerBuffer(0, mem);
  try {
    native.mapFile(fd, typeof content === 'number' ? content : content.length, true);
    body({ dir, path, fd, ring, mem });
  } finally {
    // Before the tmpfs is unmounted (teardowns run after this test body).
    ring.close();
    native.unmapFile(fd);
    closeSync(fd);
  }
}

t.test('mapped reads and writes are the file: what one writes the other reads', async (t) => {
  await withMapped(t, '4M', filled(65536, 1), ({ path, fd, ring, mem }) => {
    t.throws(() => native.mapFile(fd, 65536, true), { code: 'EEXIST' }, 'one mapping per fd');

    t.same(inline(ring, [[IoOp.Read, fd, 0, 100, 1024, 4096]]), [1024]);
    t.same(Buffer.from(mem.subarray(100, 1124)), filled(65536, 1).subarray(4096, 5120), 'a read copies from the file');

    mem.set(filled(2048, 9), 0);
    t.same(inline(ring, [[IoOp.Write, fd, 0, 0, 2048, 10240]]), [2048]);
    t.same(readFileSync(path).subarray(10240, 12288), filled(2048, 9), 'read() sees a mapped write at once');

    writeSync(fd, filled(512, 33), 0, 512, 512);
    t.same(inline(ring, [[IoOp.Read, fd, 0, 0, 512, 512]]), [512]);
    t.same(Buffer.from(mem.subarray(0, 512)), filled(512, 33), 'a mapped read sees write() at once');

    t.same(inline(ring, [[IoOp.Read, fd, 0, 0, 1024, 65024]]), [512], 'past the mapping: pread, which reads up to the end of the file');
    t.equal(native.unmapFile(fd), true);
    t.equal(native.unmapFile(fd), false, 'a second unmap finds nothing');
  });
});

t.test('a file truncated under the mapping: short reads, no SIGBUS, and it recovers', async (t) => {
  await withMapped(t, '4M', filled(65536, 2), ({ path, fd, ring }) => {
    ftruncateSync(fd, 8192);
    t.same(inline(ring, [[IoOp.Read, fd, 0, 0, 4096, 32768]]), [0], 'reading past the new end returns 0 bytes, as pread does');
    t.same(inline(ring, [[IoOp.Read, fd, 0, 0, 4096, 0]]), [4096], 'the part still there reads');
    t.same(inline(ring, [[IoOp.Write, fd, 0, 0, 4096, 40960]]), [4096], 'a write past the end goes through pwrite and grows the file');
    t.equal(readFileSync(path).length, 45056);
    t.same(inline(ring, [[IoOp.Read, fd, 0, 0, 4096, 40960]]), [4096], 'and reads back through the mapping again');
  });
});

t.test('a write into a hole of a full tmpfs: ENOSPC from pwrite, not SIGBUS; it works once there is room', async (t) => {
  // Sparse: far larger than the file system.
  await withMapped(t, '1M', 4 * 1024 * 1024, ({ dir, path, fd, ring, mem }) => {
    mem.fill(0x5a);
    const fillerPath = join(dir, 'filler');
    const filler = openSync(fillerPath, 'w');
    try {
      for (;;) writeSync(filler, Buffer.alloc(65536));
    } catch (e) {
      t.equal((e as NodeJS.ErrnoException).code, 'ENOSPC', 'the file system is full');
    }
    t.same(inline(ring, [[IoOp.Write, fd, 0, 0, 4096, 2 * 1024 * 1024]]), [-ENOSPC]);
    ftruncateSync(filler, 0);
    closeSync(filler);
    t.same(inline(ring, [[IoOp.Write, fd, 0, 0, 4096, 2 * 1024 * 1024]]), [4096], 'with room again the write lands');
    t.equal(readFileSync(path)[2 * 1024 * 1024 + 4095], 0x5a);
  });
});
