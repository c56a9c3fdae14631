// detect-zeroes as a new input surface: what the config file accepts and the
// message for what it does not, and the backing stores it is refused for
// (a block device, where fallocate may write zeros or fail, so no hole is
// promised) with what to do. A file in memory (tmpfs, served inline and
// otherwise mapped) still gets holes.
import t from 'tap';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { parseCommandLine } from '../../src/cli/vblade';
import { parseConfigFile } from '../../src/config/config-file';
import { native } from '../../src/native/addon';
import { openExportStore } from '../../src/target/export-store';
import { patternFile, loopDevice, requireLoop, tmpfsMount } from '../helpers/files';
import { exportOf, keptLog, startInProcess, startOneExport } from '../helpers/in-process';
import { requireRoot } from '../../lab/netns';

const section = (value: string): string => `[export e1.2]\nfile = /srv/disk.img\ninterfaces = eth1\ndetect-zeroes = ${value}\n`;

t.test('the config file: detect-zeroes = unmap or off; anything else is named with the values it may take', async (t) => {
  t.equal(parseConfigFile(section('unmap'), '/etc/vblade/t.conf').exports[0].detectZeroes, 'unmap');
  t.equal(
    parseConfigFile(section('off'), '/etc/vblade/t.conf').exports[0].detectZeroes,
    undefined,
    'off is the default: no field',
  );
  t.equal(parseConfigFile('[export e1.2]\nfile = /d\ninterfaces = eth1\n', '/t.conf').exports[0].detectZeroes, undefined);
  for (const bad of ['on', 'yes', 'punch', 'unmap unmap', '1']) {
    t.throws(
      () => parseConfigFile(section(bad), '/t.conf'),
      /detect-zeroes.*(off|unmap)/,
      `"${bad}" is refused, naming the values`,
    );
  }
});

t.test("with shared = yes (another writer of the file) it is refused: a freed block could take that writer's data", async (t) => {
  t.throws(() => parseConfigFile(section('unmap') + 'shared = yes\n', '/t.conf'), {
    message: /t\.conf:4: detect-zeroes = unmap cannot be used with shared = yes: another writer of the file could lose data/,
  });
  t.throws(() => parseCommandLine(['--detect-zeroes', 'unmap', '--shared', '1', '2', 'eth1', '/srv/disk.img']), {
    message: /--detect-zeroes unmap cannot be used with --shared/,
  });
  t.equal(parseConfigFile(section('off') + 'shared = yes\n', '/t.conf').exports[0].shared, true, 'off with shared: fine');
});

t.test('read-only with detect-zeroes = unmap: a warning that it can do nothing, from --check and at start', async (t) => {
  const { loadConfigFiles } = await import('../../src/config/load');
  const loaded = loadConfigFiles(
    { text: section('unmap') + 'read-only = yes\n', file: '/t.conf' },
    { 'config-dir': 'none' },
    't',
  );
  t.same(loaded.warnings, [
    'e1.2 has detect-zeroes = unmap and is read-only: nothing is written, so nothing is made a hole; remove one of them',
  ]);
  const file = await patternFile(t, 64);
  const { log, lines } = keptLog();
  await startOneExport(t, exportOf(file, { detectZeroes: 'unmap', readOnly: true }), log);
  t.ok(
    lines.some((l) => l.level === 40 && /detect-zeroes = unmap and is read-only/.test(l.msg)),
    'the log warns at start',
  );
});

t.test('a block device is refused with what to do instead', async (t) => {
  if (!requireRoot(t) || !requireLoop(t)) return;
  const file = await patternFile(t, 2048);
  const dev = await loopDevice(t, file);
  await t.rejects(
    openExportStore(exportOf(dev, { detectZeroes: 'unmap' }), native),
    /detect-zeroes = unmap works on regular files only.*block device.*detect-zeroes = off/,
  );
  await (await openExportStore(exportOf(dev), native)).close(); // the same device without the key opens
  await (await openExportStore(exportOf(dev, { detectZeroes: 'unmap', readOnly: true }), native)).close(); // no writes: nothing to punch
  t.pass('without the key, or read-only, the device opens');
});

t.test('the probe for hole punching leaves the file as it was', async (t) => {
  const file = await patternFile(t, 9); // 4608 bytes: the probe punches past the end, from 8192
  const before = statSync(file);
  await (await openExportStore(exportOf(file, { detectZeroes: 'unmap' }), native)).close();
  const after = statSync(file);
  t.equal(after.size, before.size, 'same size');
  t.equal(after.blocks, before.blocks, 'same allocation');
});

t.test('a file on tmpfs (inline I/O, not mapped with the key on) gets holes too', async (t) => {
  if (!requireRoot(t)) return;
  const dir = await tmpfsMount(t, '16M');
  const file = await patternFile(t, 2048, { dir, name: 'disk.img' });
  const { initiator } = await startInProcess(t, [exportOf(file, { detectZeroes: 'unmap' })], {}, { mtu: 9000 });
  const before = statSync(join(dir, 'disk.img')).blocks * 512;
  const r = await initiator.ataReply(initiator.write(0, new Uint8Array(16 * 512)));
  t.notOk(r.ata.failed, 'the zero write succeeded');
  t.equal(before - statSync(file).blocks * 512, 8192, 'its 8 KiB were given back');
  const back = await initiator.ataReply(initiator.read(0, 16));
  t.ok(
    back.ata.data.every((b) => b === 0),
    'and read back as zeros',
  );
  // A read of the hole through a mapping would fill it again with a page: the store is not mapped.
  t.equal(before - statSync(file).blocks * 512, 8192, 'the read did not fill the hole');
});

t.test('vblade --detect-zeroes: unmap or off, anything else a usage error naming the values', async (t) => {
  t.equal(parseCommandLine(['--detect-zeroes', 'unmap', '1', '2', 'fake0', '/srv/d.img']).config?.detectZeroes, 'unmap');
  t.equal(parseCommandLine(['--detect-zeroes=off', '1', '2', 'fake0', '/srv/d.img']).config?.detectZeroes, undefined);
  t.equal(parseCommandLine(['1', '2', 'fake0', '/srv/d.img']).config?.detectZeroes, undefined, 'off without the option');
  t.throws(() => parseCommandLine(['--detect-zeroes', 'on', '1', '2', 'fake0', '/srv/d.img']), /detect-zeroes.*off.*unmap/);
  t.throws(() => parseCommandLine(['1', '2', 'fake0', '/srv/d.img', '--detect-zeroes']), /--detect-zeroes needs a value/);
});
