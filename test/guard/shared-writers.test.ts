// Two exports that write one disk: the server refuses to start (and a reload
// is refused) with a message naming both exports, the file and the key that
// allows it. The same file is found by device and inode, so a hard link, a
// symbolic link and two names of one loop device all count; read-only pairs
// and byte ranges that do not overlap are fine. No root, no namespace.
import t from 'tap';
import { linkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { patternFile, tempDir, loopDevice, requireLoop } from '../helpers/files';
import { exportOf, startInProcess } from '../helpers/in-process';
import { sharedWriterProblems } from '../../src/guard/shared-writers';

const SECTORS = 64;

t.test('two read-write exports of one file under two names are refused', async (t) => {
  const dir = tempDir(t, 'writers');
  const file = await patternFile(t, SECTORS, { dir });
  const alias = join(dir, 'alias.img');
  linkSync(file, alias);
  await t.rejects(
    startInProcess(t, [exportOf(file, { slot: 1 }), exportOf(alias, { slot: 2 })]),
    {
      message: new RegExp(
        `^e1\\.1 and e1\\.2 both write to ${file} \\(e1\\.2 names it ${alias}\\): .*set shared = yes in both exports`,
      ),
    },
    'hard link: start refused, naming both exports, the file and the key',
  );
});

t.test('a symbolic link and one export read-only, one read-write: refused', async (t) => {
  const dir = tempDir(t, 'writers');
  const file = await patternFile(t, SECTORS, { dir });
  const link = join(dir, 'link.img');
  symlinkSync(file, link);
  await t.rejects(startInProcess(t, [exportOf(file, { slot: 1, readOnly: true }), exportOf(link, { slot: 2 })]), {
    message: /^e1\.1 and e1\.2 both use .* and e1\.2 writes to it/,
  });
});

t.test('read-only twice, separate ranges, or shared = yes on both: served', async (t) => {
  const file = await patternFile(t, SECTORS);
  const ro = await startInProcess(t, [exportOf(file, { slot: 1, readOnly: true }), exportOf(file, { slot: 2, readOnly: true })]);
  t.equal(ro.server.exports.length, 2, 'two read-only exports of one file');
  const split = await startInProcess(t, [
    exportOf(file, { slot: 1, lengthSectors: 32 }),
    exportOf(file, { slot: 2, offsetSectors: 32 }),
  ]);
  t.equal(split.server.exports.length, 2, 'sectors 0-31 and 32-63 of one file');
  const shared = await startInProcess(t, [exportOf(file, { slot: 1, shared: true }), exportOf(file, { slot: 2, shared: true })]);
  t.equal(shared.server.exports.length, 2, 'shared = yes on both');
});

t.test('overlapping ranges of one file are refused; shared on only one side is not enough', async (t) => {
  const file = await patternFile(t, SECTORS);
  await t.rejects(
    startInProcess(t, [
      exportOf(file, { slot: 1, lengthSectors: 33 }),
      exportOf(file, { slot: 2, offsetSectors: 32, shared: true }),
    ]),
    { message: /^e1\.1 and e1\.2 both write to .*sectors 32\.\.32/ },
  );
});

t.test('a reload that adds a second writer of a served file is refused', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server } = await startInProcess(t, [exportOf(file, { slot: 1 })]);
  await t.rejects(server.apply({ exports: [exportOf(file, { slot: 1 }), exportOf(file, { slot: 3 })] }), {
    message: /^e1\.1 and e1\.3 both write to /,
  });
  t.same(
    server.exports.map((e) => e.key),
    ['e1.1'],
    'the running exports are untouched',
  );
});

t.test('two names of one block device are one disk (rdev)', async (t) => {
  if (!requireLoop(t)) return;
  const file = await patternFile(t, SECTORS);
  const dev = await loopDevice(t, file);
  const dir = tempDir(t, 'devlink');
  const alias = join(dir, 'disk');
  symlinkSync(dev, alias);
  await t.rejects(startInProcess(t, [exportOf(dev, { slot: 1 }), exportOf(alias, { slot: 2 })]), {
    message: new RegExp(`^e1\\.1 and e1\\.2 both write to ${dev} `),
  });
});

t.test('two spellings of one NBD export, or of one rbd image, writing: refused (nothing is opened to tell)', async (t) => {
  const cases: [string, string, string, boolean][] = [
    ['nbd://Store.example:10809/disk', 'nbd://store.example/disk', 'the default port and the host in another case', true],
    ['nbd+unix:///disk?socket=/run/nbd.sock', 'nbd+unix:///disk?socket=/run/nbd.sock', 'one socket', true],
    ['nbd://store.example/disk', 'nbd://store.example/other', 'two export names', false],
    ['nbd://store.example/disk', 'nbd://store.example:10810/disk', 'two ports', false],
    ['rbd:pool/img', 'rbd:pool/img', 'one image', true],
    ['rbd:pool/img', 'rbd:pool/ns/img', 'two namespaces', false],
  ];
  for (const [a, b, what, refused] of cases) {
    const problems = sharedWriterProblems([exportOf(a, { slot: 1 }), exportOf(b, { slot: 2 })]);
    if (!refused) {
      t.same(problems, [], `${what}: two stores, served`);
      continue;
    }
    t.equal(problems.length, 1, `${what}: refused`);
    t.match(problems[0], /^e1\.1 and e1\.2 both write to /, what);
    if (a.startsWith('rbd:')) t.notMatch(problems[0], /shared = yes/, `${what}: not told to set shared = yes, which rbd refuses`);
    else t.match(problems[0], /set shared = yes in both exports$/, what);
    t.same(
      sharedWriterProblems([exportOf(a, { slot: 1, readOnly: true }), exportOf(b, { slot: 2, readOnly: true })]),
      [],
      `${what}: both read-only, served`,
    );
  }
  t.equal(
    sharedWriterProblems([
      exportOf('rbd:pool/img', { slot: 1, cephConf: '/etc/ceph/a.conf' }),
      exportOf('rbd:pool/img', { slot: 2, cephConf: '/etc/ceph/b.conf' }),
    ]).length,
    0,
    'one image name in two clusters (two ceph.conf): two images',
  );
});

t.test(
  'per-initiator views of one image in two exports read it and write their own files: served; beside a writer: refused',
  async (t) => {
    const file = await patternFile(t, SECTORS);
    const views = (slot: number): ReturnType<typeof exportOf> =>
      exportOf(file, { slot, views: 'per-initiator', viewsDir: `/srv/views${slot}` });
    t.same(sharedWriterProblems([views(1), views(2)]), [], 'two views exports of one golden image');
    t.same(sharedWriterProblems([views(1), exportOf(file, { slot: 2, readOnly: true })]), [], 'views and a read-only export');
    const withWriter = sharedWriterProblems([views(1), exportOf(file, { slot: 2 })]);
    t.equal(withWriter.length, 1, 'views beside a writer of the image: refused');
    t.match(withWriter[0], /both use .* and e1\.2 writes to it/);
  },
);
