// FICLONE and the reflink probe (native/reflink.c) on real file systems made
// for the test: XFS with reflinks clones, ext4 and XFS without reflinks and
// tmpfs refuse, and a clone shares data until one side is written.

import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { native } from '../../src/native/addon';
import { tmpfsMount } from '../helpers/files';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';

t.test('XFS with reflink=1: the probe says yes and a clone is independent of its source', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  t.equal(native.reflinkSupported(mnt), true);
  t.same(fs.readdirSync(mnt), [], 'the probe leaves no file behind');
  const src = join(mnt, 'src.img');
  const dst = join(mnt, 'dst.img');
  const data = Buffer.alloc(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  fs.writeFileSync(src, data);
  const s = fs.openSync(src, 'r');
  const d = fs.openSync(dst, 'w+');
  native.reflinkClone(s, d);
  fs.closeSync(s);
  t.ok(Buffer.from(fs.readFileSync(dst)).equals(data), 'the clone reads as the source');
  t.equal(native.unsharedBytes(d), 0, 'a fresh clone has nothing of its own');
  fs.writeSync(d, Buffer.alloc(512, 0xee), 0, 512, 4096);
  t.equal(native.unsharedBytes(d), 4096, 'one sector written: one 4 KiB block of its own');
  t.equal(await native.unsharedBytesAsync(d), 4096, 'measured on a pool thread: the same');
  fs.writeSync(d, Buffer.alloc(4096, 0xdd), 0, 4096, 65536);
  t.equal(await native.unsharedBytesAsync(d), 4096, 'on a pool thread a write not yet written back is not forced out');
  fs.fdatasyncSync(d);
  t.equal(await native.unsharedBytesAsync(d), 8192, 'once written back it counts');
  await t.rejects(native.unsharedBytesAsync(987654), { code: 'EBADF' }, 'a closed descriptor is an error');
  fs.closeSync(d);
  t.ok(Buffer.from(fs.readFileSync(src)).equals(data), 'writing the clone leaves the source as it was');
  t.equal(fs.readFileSync(dst)[4096], 0xee, 'the clone has its own write');
});

t.test('FICLONERANGE: a range of one file into another at an offset; unaligned offsets and bad arguments are refused', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  const data = Buffer.alloc(3 * 4096 + 512);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
  fs.writeFileSync(join(mnt, 'src'), data);
  fs.writeFileSync(join(mnt, 'dst'), Buffer.alloc(4096, 0xee));
  const s = fs.openSync(join(mnt, 'src'), 'r');
  const d = fs.openSync(join(mnt, 'dst'), 'r+');
  t.teardown(() => {
    fs.closeSync(s);
    fs.closeSync(d);
  });
  native.reflinkCloneRange(s, 4096, data.length - 4096, d, 4096); // to the source's end: the length need not be aligned
  const out = fs.readFileSync(join(mnt, 'dst'));
  t.equal(out.length, data.length, 'the destination grew to the end of the range');
  t.ok(out.subarray(0, 4096).equals(Buffer.alloc(4096, 0xee)), 'its bytes before the range are its own');
  t.ok(out.subarray(4096).equals(data.subarray(4096)), 'the range is the source’s');
  t.throws(() => native.reflinkCloneRange(s, 512, 4096, d, 512), { code: 'EINVAL' }, 'an unaligned offset');
  t.throws(() => native.reflinkCloneRange(s, -1, 4096, d, 0), RangeError);
  t.throws(() => native.reflinkCloneRange(s, 2 ** 60, 4096, d, 0), RangeError);
  t.throws(() => native.reflinkCloneRange(s, 0.5, 4096, d, 0), RangeError);
  t.throws(() => (native.reflinkCloneRange as (...a: unknown[]) => void)(s, 0, 4096), TypeError);
});

for (const type of ['ext4', 'xfs-noreflink'] as const) {
  t.test(`${type}: the probe says no and FICLONE fails with EOPNOTSUPP`, async (t) => {
    if (!requireLoopFs(t, type)) return;
    const mnt = await loopFs(t, type);
    t.equal(native.reflinkSupported(mnt), false);
    fs.writeFileSync(join(mnt, 'a'), Buffer.alloc(4096, 1));
    const s = fs.openSync(join(mnt, 'a'), 'r');
    const d = fs.openSync(join(mnt, 'b'), 'w+');
    t.teardown(() => {
      fs.closeSync(s);
      fs.closeSync(d);
    });
    t.throws(() => native.reflinkClone(s, d), { code: 'EOPNOTSUPP' });
  });
}

t.test('tmpfs: the probe says no', async (t) => {
  if (!requireLoopFs(t, 'ext4')) return;
  const mnt = await tmpfsMount(t, '4M');
  t.equal(native.reflinkSupported(mnt), false);
});

t.test('a directory that does not exist is an error that names it', async (t) => {
  t.throws(() => native.reflinkSupported('/nonexistent-aoet-dir'), { code: 'ENOENT', message: /nonexistent-aoet-dir/ });
});
