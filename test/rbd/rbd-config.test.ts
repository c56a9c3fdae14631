// How an rbd export is written in vblade.conf and on vblade's command line:
// the rbd: value taken as written (not a path relative to the conf),
// ceph-conf a path (relative to the file that names it, or to where vblade
// runs), ceph-id checked, and the malformed ones refused with the line.

import t from 'tap';
import { resolve } from 'node:path';
import { parseCommandLine } from '../../src/cli/vblade';
import { parseConfigFile } from '../../src/config/config-file';
import { UsageError } from '../../src/config/vblade-args';

const F = '/etc/vblade/vblade.conf';

t.test('vblade.conf', async (t) => {
  const c = parseConfigFile(
    '[export e1.1]\nfile = rbd:volumes/tenant/vm1\ninterfaces = eth1\nceph-conf = ceph/site.conf\nceph-id = gw1\nremote-timeout = 10\n',
    F,
  );
  const e = c.exports[0];
  t.equal(e.file, 'rbd:volumes/tenant/vm1', 'the rbd: value as written');
  t.equal(e.cephConf, '/etc/vblade/ceph/site.conf', 'ceph-conf relative to the file that names it');
  t.equal(e.cephId, 'gw1');
  t.equal(e.remoteTimeout, 10);
  const plain = parseConfigFile('[export e1.2]\nfile = rbd:rbd/disk\ninterfaces = eth1\n', F).exports[0];
  t.equal(plain.cephConf, undefined, 'unset: /etc/ceph/ceph.conf when opened');
  t.equal(plain.cephId, undefined, 'unset: admin when opened');
  const rel = parseConfigFile('[export e1.3]\nfile = ./rbd:odd-name.img\ninterfaces = eth1\n', F).exports[0];
  t.equal(rel.file, '/etc/vblade/rbd:odd-name.img', 'a file named rbd:… is written ./rbd:… and is a path');
  for (const [line, want] of [
    ['file = rbd:volumes', /:2: file: rbd:volumes: a pool and an image are needed/],
    ['file = rbd:v/i@s', /:2: file: rbd:v\/i@s: an rbd snapshot/],
    ['file = rbd:v/i\nceph-id = client.gw1', /:3: ceph-id = client\.gw1: write the id without "client\."/],
  ] as const)
    t.throws(() => parseConfigFile(`[export e1.1]\n${line}\ninterfaces = eth1\n`, F), { message: want }, line);
});

t.test('vblade --ceph-conf --ceph-id', async (t) => {
  const c = parseCommandLine(['--ceph-conf', 'site.conf', '--ceph-id=gw1', '-s', '1', '2', 'eth1', 'rbd:rbd/disk']);
  t.equal(c.config?.file, 'rbd:rbd/disk');
  t.equal(c.config?.cephConf, resolve('site.conf'), 'a relative --ceph-conf is taken from where vblade runs');
  t.equal(c.config?.cephId, 'gw1');
  t.equal(c.config?.sync, true);
  t.throws(() => parseCommandLine(['--ceph-id', 'a b', '1', '2', 'eth1', 'rbd:rbd/disk']), UsageError);
  t.throws(() => parseCommandLine(['--ceph-id', 'a b', '1', '2', 'eth1', 'rbd:rbd/disk']), {
    message: /--ceph-id = "a b" is not a cephx client id/,
  });
  t.throws(() => parseCommandLine(['1', '2', 'eth1', 'rbd:rbd']), { message: /a pool and an image are needed/ });
});
