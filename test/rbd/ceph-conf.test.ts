// What the target sets on its Ceph connection and what it leaves to
// ceph.conf, the checks on that file, and the ceph-id values refused.

import t from 'tap';
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/files';
import { CephConfError, cephConnectionSettings, cephIdProblem, confSetsOption, readCephConf } from '../../src/remote/ceph-conf';

/** The settings as a map, for readable assertions. */
function settings(conf: string, id: string, timeout: number | undefined): Record<string, string> {
  const pairs = cephConnectionSettings(conf, id, timeout, 30);
  const out: Record<string, string> = {};
  for (let i = 0; i < pairs.length; i += 2) out[pairs[i]] = pairs[i + 1];
  return out;
}

t.test('rbd_cache is turned off unless the conf sets it for this client', async (t) => {
  t.equal(settings('[global]\nmon host = 10.0.0.1\n', 'admin', undefined).rbd_cache, 'false');
  for (const conf of [
    '[client]\nrbd cache = true\n',
    '[global]\nrbd_cache=true\n',
    '[client.gw]\n  RBD-Cache = true ; on purpose\n',
    '[client]\nrbd cache = false\n',
  ])
    t.equal(settings(conf, 'gw', undefined).rbd_cache, undefined, `left to the conf: ${JSON.stringify(conf)}`);
  for (const conf of [
    '[client.other]\nrbd cache = true\n',
    '[osd]\nrbd cache = true\n',
    '[client]\n# rbd cache = true\n',
    '[client]\n; rbd cache = true\n',
    '[client]\nrbd cache writethrough until flush = true\n',
  ])
    t.equal(settings(conf, 'gw', undefined).rbd_cache, 'false', `still turned off: ${JSON.stringify(conf)}`);
});

t.test('remote-timeout sets the three timeouts; unset, the conf or the default does', async (t) => {
  const timeouts = ['client_mount_timeout', 'rados_mon_op_timeout', 'rados_osd_op_timeout'];
  const set = settings('[client]\nclient mount timeout = 5\n', 'admin', 7);
  t.same(
    timeouts.map((k) => set[k]),
    ['7', '7', '7'],
    'the export key wins over the conf',
  );
  const unset = settings('[client]\nclient mount timeout = 5\n', 'admin', undefined);
  t.same(
    timeouts.map((k) => unset[k]),
    [undefined, '30', '30'],
    'unset: what the conf sets is left alone, the rest get the default',
  );
});

t.test('confSetsOption reads sections and names as Ceph does', async (t) => {
  t.ok(confSetsOption('[ global ]\nrados-osd-op-timeout = 3', 'a', 'rados_osd_op_timeout'));
  t.notOk(confSetsOption('rados_osd_op_timeout = 3', 'a', 'rados_osd_op_timeout'), 'a key before any section is in none');
  t.notOk(confSetsOption('[client.ab]\nrbd cache = 1', 'a', 'rbd cache'));
  t.notOk(confSetsOption('[client]\nrbd cache', 'a', 'rbd cache'), 'a line without = sets nothing');
});

t.test('ceph-id values', async (t) => {
  t.equal(cephIdProblem('admin'), undefined);
  t.equal(cephIdProblem('gw-1.prod_a'), undefined);
  t.match(cephIdProblem('client.admin'), /without "client\." \(ceph-id = admin\)/);
  for (const bad of ['', 'a b', '../x', 'x/y', 'a\nb', '.hidden', 'x'.repeat(65), 'é'])
    t.match(cephIdProblem(bad), /is not a cephx client id/, JSON.stringify(bad));
});

t.test('a ceph.conf another user could change is refused', async (t) => {
  const dir = tempDir(t, 'cephconf');
  chmodSync(dir, 0o755);
  const conf = join(dir, 'ceph.conf');
  writeFileSync(conf, '[global]\nmon host = 127.0.0.1\n', { mode: 0o644 });
  const owners = new Set([0, process.geteuid?.() ?? 0]);
  t.match(readCephConf(conf, owners), /mon host/, 'a file of ours, mode 644, is read');
  t.throws(() => readCephConf(join(dir, 'none.conf'), owners), { message: /does not exist; set ceph-conf/ });
  t.throws(() => readCephConf(dir, owners), { message: /is a directory, not a regular file/ });
  chmodSync(conf, 0o666);
  t.throws(() => readCephConf(conf, owners), { message: /writable by others than its owner.*chmod go-w/ });
  chmodSync(conf, 0o644);
  const loose = join(dir, 'loose');
  mkdirSync(loose, { mode: 0o777 });
  chmodSync(loose, 0o777);
  writeFileSync(join(loose, 'ceph.conf'), '[global]\n', { mode: 0o644 });
  t.throws(() => readCephConf(join(loose, 'ceph.conf'), owners), { message: /not safe to use: .*writable by/ });
  const link = join(dir, 'link.conf');
  symlinkSync(conf, link);
  t.match(
    readCephConf(link, owners),
    /mon host/,
    'a symbolic link to a good file is followed (the checks apply to what it names)',
  );
  if (process.getuid?.() === 0) {
    chownSync(conf, 65534, 65534);
    t.throws(() => readCephConf(conf, owners), CephConfError, 'a file of nobody is refused');
    t.throws(() => readCephConf(conf, owners), { message: /belongs to uid 65534.*chown root/ });
  }
  writeFileSync(join(dir, 'big.conf'), Buffer.alloc((1 << 20) + 1, 0x61));
  t.throws(() => readCephConf(join(dir, 'big.conf'), owners), { message: /over 1 MiB/ });
});
