// Self-tests of test/helpers/files.ts.

import t from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { checkSectors } from '../../src/client/pattern';
import {
  checkPattern,
  isMountPoint,
  loopDevice,
  patternFile,
  patternSectors,
  sparseFile,
  tempDir,
  tmpfsMount,
} from '../helpers/files';
import { requireRoot } from '../../lab/netns';
import { requireCommands, run } from '../../lab/process';

t.test('tempDir is created and removed after its test', async (t) => {
  let dir = '';
  await t.test('inner', async (t) => {
    dir = tempDir(t, 'x y');
    writeFileSync(join(dir, 'f'), 'data');
    t.ok(existsSync(join(dir, 'f')), 'usable');
    t.match(dir, /\/aoet[0-9a-z]+-[0-9a-z]+-x_y-/, 'named with the prefix and the label');
  });
  t.notOk(existsSync(dir), 'removed in teardown');
});

t.test('sparseFile has the size and no blocks', async (t) => {
  const f = await sparseFile(t, 64 << 20);
  const st = statSync(f);
  t.equal(st.size, 64 << 20, 'size');
  t.equal(st.blocks, 0, 'nothing allocated');
});

t.test("the sector pattern is the client's", async (t) => {
  const s0 = patternSectors(0);
  t.equal(s0.subarray(0, 12).toString('latin1'), 'SECT00000000', 'header of sector 0');
  const s7 = patternSectors(7);
  t.equal(s7.subarray(0, 12).toString('latin1'), 'SECT00000007', 'header of sector 7');
  t.not(Buffer.compare(s0.subarray(12), s7.subarray(12)), 0, 'sectors differ after the header');
  const many = patternSectors(1000, 40);
  t.equal(checkSectors(many, 0, 1000, 40), -1, 'the client checks what patternSectors made');
  const two = patternSectors(10, 2);
  t.equal(checkPattern(two, 10), undefined, 'checkPattern accepts the right data');
  t.match(
    checkPattern(two, 11),
    /sector 11: first difference at byte 11.*header reads "SECT00000010"/,
    'names a sector read from the wrong place',
  );
  const bad = Buffer.from(two);
  bad[512 + 100] ^= 1;
  t.match(checkPattern(bad, 10), /^sector 11: first difference at byte 100/, 'names a flipped byte');
  t.match(
    checkPattern(two.subarray(0, 700), 10),
    /length 700 is not a multiple of the sector size 512/,
    'names a length that is no whole number of sectors',
  );
});

t.test('patternFile holds the pattern of every sector', async (t) => {
  const sectors = 5000; // more than one 1 MiB write chunk
  const f = await patternFile(t, sectors, { firstLba: 100 });
  const data = readFileSync(f);
  t.equal(data.length, sectors * 512, 'size');
  t.equal(checkPattern(data, 100), undefined, 'every sector matches');
  t.same(data.subarray(2048 * 512, 2049 * 512), patternSectors(2148, 1), 'a sector past the first chunk');
});

t.test('loop devices (root)', async (t) => {
  if (!requireRoot(t) || !requireCommands(t, ['losetup'])) return;
  const f = await patternFile(t, 2048);
  let dev = '';
  await t.test('attach', async (t) => {
    dev = await loopDevice(t, f, { readOnly: true });
    t.match(dev, /^\/dev\/loop\d+$/, 'a loop device');
    const buf = Buffer.alloc(64 * 512);
    const fd = openSync(dev, 'r');
    try {
      readSync(fd, buf, 0, buf.length, 512 * 1000);
    } finally {
      closeSync(fd);
    }
    t.equal(checkPattern(buf, 1000), undefined, 'reads the file through the device');
  });
  const r = await run('losetup', ['--noheadings', '-j', f]);
  t.equal(r.stdout.trim(), '', `${dev} detached in teardown`);
});

t.test('tmpfsMount runs full at its size and goes away (root)', async (t) => {
  if (!requireRoot(t)) return;
  let dir = '';
  await t.test('mount', async (t) => {
    dir = await tmpfsMount(t, '1M');
    t.ok(await isMountPoint(dir), 'mounted');
    writeFileSync(join(dir, 'small'), Buffer.alloc(512 << 10));
    t.throws(() => writeFileSync(join(dir, 'big'), Buffer.alloc(2 << 20)), { code: 'ENOSPC' }, 'ENOSPC past the size');
  });
  t.notOk(await isMountPoint(dir), 'unmounted in teardown');
  t.notOk(existsSync(dir), 'directory removed');
});
