// Hostile and mistaken inputs to an rbd export, against a real one-node
// cluster: malformed rbd: values and ceph-id values, a missing pool or
// image, a client id the cluster does not know, a wrong key, no keyring, a
// ceph.conf another user could change, a monitor nobody answers on, an OSD
// that hangs, options an rbd export cannot have, a user without the
// keyring, and a host without librbd. Each is refused by `vbladed --check`
// and at start with what went wrong and what to do, within remote-timeout,
// and the daemon does not crash.
//
// Network safety: vbladed and vblade run only inside the cluster's
// namespace, on a veth pair made there.

import t from 'tap';
import { chmodSync, chownSync, copyFileSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createVeth } from '../../lab/netns';
import { run } from '../../lab/process';
import { type CephCluster, requireCeph, startCeph } from '../helpers/ceph';
import { patternFile } from '../helpers/files';
import { REPO, asNobodyArgs, startTarget, vbladeForUser } from '../helpers/targets';

const VBLADED = join(REPO, 'bin', 'vbladed.js');
const VBLADE = join(REPO, 'bin', 'vblade.js');

/** A copy of the cluster's conf with one line changed. */
function confWith(cluster: CephCluster, name: string, from: RegExp, to: string): string {
  const file = join(cluster.dir, name);
  const text = readFileSync(cluster.conf, 'utf8');
  if (!from.test(text)) throw new Error(`${from} is not in ${cluster.conf}`);
  writeFileSync(file, text.replace(from, to), { mode: 0o644 });
  return file;
}

t.test('rbd exports: hostile and mistaken inputs', async (t) => {
  if (!requireCeph(t)) return;
  const cluster = await startCeph(t);
  const spec = await cluster.createImage('disk', 16 << 20);
  const veth = await createVeth(t, cluster.ns, cluster.ns);
  const ifname = veth.a.ifname;
  const conf = join(cluster.dir, 'vblade.conf');
  const check = async (exportLines: string): Promise<{ code: number | null; out: string; ms: number }> => {
    writeFileSync(conf, `[export e1.1]\ninterfaces = ${ifname}\n${exportLines}\n`);
    const started = Date.now();
    const r = await cluster.ns.run(
      process.execPath,
      [VBLADED, '--check', '--config', conf, '--run-dir', join(cluster.dir, 'vrun')],
      {
        timeoutMs: 90000,
      },
    );
    return { code: r.code, out: r.stdout + r.stderr, ms: Date.now() - started };
  };
  const good = `file = rbd:${spec}\nceph-conf = ${cluster.conf}`;

  await t.test('a good export checks OK', async (t) => {
    const r = await check(good);
    t.equal(r.code, 0, r.out);
    t.match(r.out, `e1.1 on ${ifname}: rbd:${spec}, read-write`);
  });

  await t.test('malformed values are refused as configuration errors', async (t) => {
    const cases: Array<[string, RegExp]> = [
      ['file = rbd:rbd', /a pool and an image are needed/],
      ['file = rbd:rbd/disk@snap', /snapshot \(@snap\) is read-only.*rbd clone/],
      ['file = rbd:rbd/disk:id=admin:conf=/tmp/x', /set ceph-id and ceph-conf on the export/],
      ['file = rbd://rbd/disk', /rbd: takes no \/\//],
      ['file = rbd:rbd/disk;reboot', /holds a character other than/],
      [`file = rbd:${spec}\nceph-id = client.admin`, /write the id without "client\." \(ceph-id = admin\)/],
      [`file = rbd:${spec}\nceph-id = ../../etc/passwd`, /is not a cephx client id/],
      [`file = rbd:${spec}\nremote-timeout = 0`, /remote-timeout = 0 is out of range/],
    ];
    for (const [lines, want] of cases) {
      const r = await check(lines);
      t.equal(r.code, 1, `${lines.split('\n').pop()}: refused`);
      t.match(r.out, want, want.source);
    }
  });

  await t.test('what the cluster refuses, said with the fix', async (t) => {
    const wrongKey = join(cluster.dir, 'wrong.keyring');
    await run('ceph-authtool', ['--create-keyring', wrongKey, '--gen-key', '-n', 'client.admin']);
    const cases: Array<[string, string, RegExp]> = [
      [
        'a missing pool',
        `file = rbd:nopool/disk\nceph-conf = ${cluster.conf}`,
        /the Ceph pool nopool does not exist.*ceph osd pool ls/,
      ],
      [
        'a missing image',
        `file = rbd:${cluster.pool}/nodisk\nceph-conf = ${cluster.conf}`,
        /image rbd\/nodisk does not exist; create it \(rbd create --size SIZE rbd\/nodisk\)/,
      ],
      ['an unknown client id', `${good}\nceph-id = bob`, /the Ceph monitors refused client\.bob: check ceph-id and the key/],
      [
        'a wrong key',
        `file = rbd:${spec}\nceph-conf = ${confWith(cluster, 'wrongkey.conf', /^keyring = .*client\.admin\.keyring$/m, `keyring = ${wrongKey}`)}`,
        /the Ceph monitors refused client\.admin/,
      ],
      [
        'no keyring',
        `file = rbd:${spec}\nceph-conf = ${confWith(cluster, 'nokey.conf', /^keyring = .*client\.admin\.keyring$/m, `keyring = ${cluster.dir}/none.keyring`)}`,
        /no keyring with its key was found; set `keyring`/,
      ],
      ['a missing conf', `file = rbd:${spec}\nceph-conf = ${cluster.dir}/none.conf`, /none\.conf does not exist; set ceph-conf/],
      [
        'shared = yes',
        `${good}\nshared = yes`,
        /shared = yes is refused for rbd images: two gateways .* without fencing can lose acknowledged writes/,
      ],
      ['views', `${good}\nviews = per-initiator\nviews-dir = ${cluster.dir}/views`, /rbd has its own snapshots and clones/],
      ['detect-zeroes', `${good}\ndetect-zeroes = unmap`, /an rbd image is thin already/],
    ];
    for (const [what, lines, want] of cases) {
      const r = await check(lines);
      t.equal(r.code, 1, `${what}: --check fails`);
      t.match(r.out, want, `${what}: ${want.source}`);
      t.notMatch(r.out, /TypeError|at .*\.js:\d+|Segmentation|Aborted/, `${what}: no crash or stack trace`);
    }
  });

  await t.test('a ceph.conf another user could change is refused before librados reads it', async (t) => {
    const loose = confWith(cluster, 'loose.conf', /^mon host = .*$/m, 'mon host = v2:127.0.0.1:3300');
    chmodSync(loose, 0o666);
    const r = await check(`file = rbd:${spec}\nceph-conf = ${loose}`);
    t.equal(r.code, 1);
    t.match(r.out, /writable by others than its owner .*chmod go-w/);
    chmodSync(loose, 0o644);
    chownSync(loose, 65534, 65534);
    const r2 = await check(`file = rbd:${spec}\nceph-conf = ${loose}`);
    t.equal(r2.code, 1);
    t.match(r2.out, /belongs to uid 65534, not to root or the daemon's user/);
  });

  await t.test('no monitor answers: an error within remote-timeout, at --check and at start', async (t) => {
    const dead = confWith(cluster, 'deadmon.conf', /^mon host = .*$/m, 'mon host = v2:127.0.0.1:3399');
    const r = await check(`file = rbd:${spec}\nceph-conf = ${dead}\nremote-timeout = 3`);
    t.equal(r.code, 1);
    t.match(r.out, /no Ceph monitor answered in time: check that `mon host`/);
    t.ok(r.ms < 15000, `--check gave up after ${r.ms} ms (remote-timeout 3 s)`);
    const started = Date.now();
    const v = await cluster.ns.run(
      process.execPath,
      [VBLADE, '--ceph-conf', dead, '--remote-timeout', '3', '1', '1', ifname, `rbd:${spec}`],
      {
        timeoutMs: 60000,
      },
    );
    t.equal(v.code, 1, 'vblade exits 1');
    t.match(v.stderr, /no Ceph monitor answered in time/);
    t.ok(Date.now() - started < 15000, `vblade gave up after ${Date.now() - started} ms`);
  });

  await t.test('an OSD that hangs: the open fails after remote-timeout', async (t) => {
    await cluster.osd.freeze();
    try {
      const r = await check(`${good}\nremote-timeout = 3`);
      t.equal(r.code, 1);
      t.match(r.out, /no OSD answered for the rbd image rbd\/disk in time|Connection timed out/);
      t.ok(r.ms < 20000, `gave up after ${r.ms} ms`);
    } finally {
      cluster.osd.signal('SIGCONT');
    }
    const again = await check(good);
    t.equal(again.code, 0, 'served again once the OSD runs');
  });

  await t.test('a user who cannot read the keyring gets the reason, not a crash', async (t) => {
    // The conf readable by everyone (its directory passable), the keyring root's alone (0600).
    chmodSync(cluster.dir, 0o711);
    t.teardown(() => chmodSync(cluster.dir, 0o700));
    const r = await cluster.ns.run(
      'env',
      asNobodyArgs(process.execPath, vbladeForUser(t), '--ceph-conf', cluster.conf, '1', '1', ifname, `rbd:${spec}`),
      {
        cwd: '/',
        timeoutMs: 60000,
      },
    );
    t.not(r.code, 0, 'vblade as nobody does not serve the image');
    t.match(r.stdout + r.stderr, /cannot read the keyring .*client\.admin\.keyring for client\.admin \(permission denied\)/);
    t.comment(r.stderr.trim().split('\n').pop() ?? '');
    t.notMatch(r.stderr, /Segmentation|Aborted|core dumped/);
  });

  await t.test('a host without librbd: the rbd export says what to install, a file export is served', async (t) => {
    const lib = realpathSync('/usr/lib/x86_64-linux-gnu/librados.so.2');
    // In a mount namespace of its own, the library reads as an empty file: dlopen fails as if it were not installed.
    const hide = (cmd: string[]) => [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      `mount --bind /dev/null ${lib} && exec "$@"`,
      'sh',
      ...cmd,
    ];
    const r = await cluster.ns.run(
      'unshare',
      hide([process.execPath, VBLADE, '--ceph-conf', cluster.conf, '1', '1', ifname, `rbd:${spec}`]),
      {
        timeoutMs: 60000,
      },
    );
    t.equal(r.code, 1, 'the rbd export is not served');
    t.match(r.stderr, /rbd exports need librbd: apt-get install librbd1/);
    const file = await patternFile(t, 64);
    const copy = join(cluster.dir, 'plain.img');
    copyFileSync(file, copy);
    const target = await startTarget(t, cluster.ns, ['2', '2', ifname, copy], { prefix: ['unshare', ...hide([])] });
    t.match(target.line, /e2\.2, 64 sectors O_RDWR/, 'a file export starts where librbd cannot be loaded');
  });
});
