// Two gateways in front of one rbd image, with fencing (src/remote/rbd-failover.ts):
// gateway A holds the image's exclusive lock and serves it; gateway B, started
// with the same export, stands by and answers nothing; a second client cannot
// take the lock while A serves; `ctl takeover` on B while A is frozen with a
// write queued breaks A's lock (the cluster blocklists A), B acknowledges newer
// data, and A, resumed, acknowledges nothing and stops answering; a reservation
// set through A holds on B; a standby takes over from a gateway killed with -9
// once its watch expires (5 s in the test cluster), and serves what it wrote.
//
// Both gateways sit on one Ethernet segment, as two hosts would: each one's
// AoE interface is a veth whose other end is enslaved to a bridge in the
// initiator namespace; client A talks from the bridge itself, client B (another
// MAC, for the reservation) from a namespace of its own joined to the bridge.
// So B's start-up probe sees A answering e9.4, and must stand by anyway.
//
// Network safety: the cluster and both gateways run in the cluster's namespace;
// the veths, the bridge and the namespaces are the test's own.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AoeClient, formatMac } from '../../src/client';
import { sleep } from '../../lab/common';
import { addBridgeTap, createNetns, createVeth } from '../../lab/netns';
import { readImage, requireCeph, startCeph } from '../helpers/ceph';
import { tempDir } from '../helpers/files';
import { KEY, childPids, gateway, stamp, type Segment } from '../helpers/rbd-gateways';
import { vbladeForUser, waitLinkUp } from '../helpers/targets';
import { VBLADE, ctlIn, until } from '../helpers/vbladed';

const MiB = 1 << 20;

t.test('two gateways on one rbd image: standby, takeover with fencing, state that follows', async (t) => {
  if (!requireCeph(t)) return;
  const t0 = Date.now();
  const cluster = await startCeph(t);
  const spec = await cluster.createImage('disk', 64 * MiB);
  const init = await createNetns(t, 'init');
  const seg: Segment = { init, bridge: (await addBridgeTap(t, init)).bridge };
  const other = await createNetns(t, 'initb');
  const vc = await createVeth(t, init, other, { mtu: 1500 });
  await init.ip(['link', 'set', 'dev', vc.a.ifname, 'master', seg.bridge, 'up']);
  await waitLinkUp(other, vc.b.ifname);
  let A = await gateway(t, cluster, seg, 'a', spec);
  // B serves a file too, for a takeover asked of an export that is no rbd image.
  const file = path.join(tempDir(t, 'file'), 'plain.img');
  fs.writeFileSync(file, Buffer.alloc(MiB));
  const B = await gateway(t, cluster, seg, 'b', spec, undefined, `\n[export e9.7]\nfile = ${file}\ninterfaces = IFACE\n`);
  const ca = AoeClient.open(seg.bridge, { netns: init.path, timeoutMs: 1000, retries: 2 });
  const cb = AoeClient.open(vc.b.ifname, { netns: other.path, timeoutMs: 1000, retries: 2 });
  t.teardown(() => {
    ca.close();
    cb.close();
  });
  t.comment(`cluster and two gateways up in ${Date.now() - t0} ms`);
  // Gateways started in a subtest outlive it: they are the whole test's.
  const whole = t;

  await t.test('A serves; B stands by, answers nothing, and names the owner', async (t) => {
    await ca.write(A.T, 100, stamp('A first', 8));
    t.same(Buffer.from(await ca.read(A.T, 100, 8)), stamp('A first', 8), 'A reads back what it wrote');
    const listB = (await ctlIn(cluster.ns, B.socket, 'list')).out;
    t.match(
      listB,
      /NOT SERVED, standby: the exclusive lock of the rbd image rbd\/disk is held by client\.\d+ at 127\.0\.0\.1:0\/\d+/,
      listB,
    );
    t.match(listB, /ctl takeover e9\.4/, 'and says how to take over');
    t.match(
      (await ctlIn(cluster.ns, A.socket, 'list')).out,
      /e9\.4\t\S+\trw\trbd:rbd\/disk\n(?!\tNOT SERVED)/,
      'A lists it served',
    );
    const found = (await cb.discover(9, 4, 1500)).map((d) => d.macText);
    t.same(found, [formatMac(A.T.mac)], `only A answers a config query for e9.4 on the segment, not B (${formatMac(B.T.mac)})`);
    // A reload of the standby with a mask of its own does not touch the state kept in the image (only the owner writes it).
    const before = (await cluster.rbd(['image-meta', 'get', spec, 'aoe.state'])).stdout;
    const plainConf = fs.readFileSync(B.conf, 'utf8');
    fs.writeFileSync(B.conf, plainConf.replace(/(\[export e9\.4\]\n)/, '$1mac-mask = 02:00:00:00:00:42\n'));
    const reload = await ctlIn(cluster.ns, B.socket, 'reload');
    t.equal(reload.code, 0, reload.err);
    t.equal(
      (await cluster.rbd(['image-meta', 'get', spec, 'aoe.state'])).stdout,
      before,
      `the image's state is A's: ${before.trim()}`,
    );
    fs.writeFileSync(B.conf, plainConf);
    t.equal((await ctlIn(cluster.ns, B.socket, 'reload')).code, 0, 'B reloaded with its first config');
    const read = await cb.read(B.T, 100, 8).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    t.match(read, /timed out|no reply|no answer/i, `B answers no ATA read: ${read}`);
  });

  await t.test('a second client cannot take the lock from A (explicit acquire)', async (t) => {
    const r = await cluster.ns.run(
      'rbd',
      ['-c', cluster.conf, 'bench', '--io-type', 'write', '--io-size', '4096', '--io-total', '4096', spec],
      { timeoutMs: 60000 },
    );
    t.not(r.code, 0, 'rbd bench --io-type write fails');
    t.match(r.stderr, /Read-only file system/, 'with EROFS: the lock was not handed over');
    t.same(Buffer.from(await ca.read(A.T, 100, 8)), stamp('A first', 8), 'A still serves');
  });

  await t.test('control: takeover refused for hostile or wrong requests', async (t) => {
    const unknown = await ctlIn(cluster.ns, B.socket, 'takeover', 'e1.1');
    t.not(unknown.code, 0);
    t.match(unknown.err, /e1\.1/, `an unknown export: ${unknown.err.trim()}`);
    const plain = await ctlIn(cluster.ns, B.socket, 'takeover', 'e9.7');
    t.not(plain.code, 0);
    t.match(plain.err, /e9\.7 is not an rbd export served with the image's lock/, plain.err.trim());
    const owner = await ctlIn(cluster.ns, A.socket, 'takeover', KEY);
    t.not(owner.code, 0);
    t.match(owner.err, /served by this gateway already/, owner.err.trim());
    const vblade = vbladeForUser(t);
    const r = await cluster.ns.run('setpriv', [
      '--reuid=nobody',
      '--regid=nogroup',
      '--clear-groups',
      'env',
      '-u',
      'NODE_OPTIONS',
      process.execPath,
      vblade,
      'ctl',
      '--socket',
      B.socket,
      'takeover',
      KEY,
    ]);
    t.not(r.code, 0);
    t.match(r.stderr, /takeover is for root only: it fences another gateway/, r.stderr.trim());
    t.match((await ctlIn(cluster.ns, B.socket, 'list')).out, /standby/, 'B still stands by');
  });

  await t.test('the hazard: A frozen with a write queued, B takes over, A resumed acknowledges nothing', async (t) => {
    // Freeze A's daemon and its worker (which holds the lock), then send it a write.
    const aPids = [A.daemon.pid, ...childPids(A.daemon.pid)];
    for (const pid of aPids) process.kill(pid, 'SIGSTOP');
    // A client that waits long enough for A to come back (its frames stay queued in A's socket meanwhile).
    const patient = AoeClient.open(seg.bridge, { netns: init.path, timeoutMs: 4000, retries: 2 });
    t.teardown(() => patient.close());
    const late = patient.write(A.T, 100, stamp('A late', 8)).then(
      () => 'acknowledged',
      (e: Error) => `refused: ${e.message}`,
    );
    await sleep(300); // the frames are in A's socket now
    const tk = await ctlIn(cluster.ns, B.socket, 'takeover', KEY);
    t.equal(tk.code, 0, tk.err);
    t.match(tk.out, /e9\.4: taken over in \d+ ms: broke the lock of 127\.0\.0\.1:0\/\d+/, tk.out.trim());
    const bl = (await cluster.ceph(['osd', 'blocklist', 'ls'])).stdout;
    t.match(bl, /127\.0\.0\.1:0\/\d+/, 'the cluster blocklists A');
    await cb.write(B.T, 100, stamp('B newer', 8));
    t.pass('B acknowledged newer data to the same blocks');
    for (const pid of aPids) process.kill(pid, 'SIGCONT');
    const outcome = await late;
    t.match(outcome, /^refused/, `A's late write is not acknowledged: ${outcome}`);
    await until('A says it is fenced', async () => /fenced/.test((await ctlIn(cluster.ns, A.socket, 'list')).out), 20000);
    const listA = (await ctlIn(cluster.ns, A.socket, 'list')).out;
    t.match(
      listA,
      /NOT SERVED, fenced: the Ceph cluster blocklisted this gateway \(another gateway broke its lock and took it\)/,
      listA,
    );
    t.match(A.daemon.tail(200), /e9\.4: stopped serving: fenced: /, "A's log says why it stopped");
    const again = await ca.read(A.T, 100, 8).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    t.notOk(again === 'answered', `A answers nothing now: ${again}`);
    t.same(await readImage(cluster, spec, 100 * 512, 8 * 512), stamp('B newer', 8), "the image holds B's data");
    t.same(Buffer.from(await cb.read(B.T, 100, 8)), stamp('B newer', 8), "a read through B shows B's data");
  });

  await t.test('kill -9 of the owner: the standby takes over once its watch expires; the reservation follows', async (t) => {
    // A reservation set through B: saved in the image's metadata before B's reply.
    t.same(await cb.reserveSet(B.T, [cb.mac]), [formatMac(cb.mac)], 'B reserves the disk for client B');
    // A, fenced, is restarted: a new cluster client, a standby now.
    A.daemon.signal('SIGTERM');
    await A.daemon.exited;
    A = await gateway(whole, cluster, seg, 'a2', spec, { targetIf: A.targetIf, initIf: A.initIf });
    t.match((await ctlIn(cluster.ns, A.socket, 'list')).out, /NOT SERVED, standby: /, 'restarted A stands by');
    // B's host dies: its daemon and its worker, at once.
    const bPids = [B.daemon.pid, ...childPids(B.daemon.pid)];
    const killed = Date.now();
    for (const pid of bPids) process.kill(pid, 'SIGKILL');
    const quick = AoeClient.open(seg.bridge, { netns: init.path, timeoutMs: 250, retries: 0 });
    t.teardown(() => quick.close());
    let served = '';
    while (Date.now() - killed < 30000) {
      served = await quick.read(A.T, 100, 8).then(
        () => 'read',
        (e: Error) => e.constructor.name + ': ' + e.message,
      );
      // The reservation came with the state: client A is refused with an error reply, which is an answer.
      if (!/timed out|no reply/i.test(served)) break;
    }
    const ms = Date.now() - killed;
    t.comment(`takeover after kill -9: first answer from A ${ms} ms after the kill`);
    t.ok(ms < 20000, `A answered ${ms} ms after the kill (watch timeout 5 s, looks every 3 s)`);
    t.notMatch(served, /^read$/, `client A, not the reserver, is refused by A: ${served}`);
    t.same(await quick.reserveRead(A.T), [formatMac(cb.mac)], 'A enforces the reservation set through B');
    const cleared = await ctlIn(cluster.ns, A.socket, 'clear-reserve', KEY);
    t.equal(cleared.code, 0, cleared.err);
    t.same(Buffer.from(await ca.read(A.T, 100, 8)), stamp('B newer', 8), 'A serves the data B wrote');
    t.match(
      A.daemon.tail(200),
      /took the exclusive lock of rbd\/disk \(its owner's watch on the image expired/,
      'the log says why',
    );
  });

  await t.test('a clean stop hands over: the lock is released, the standby takes it at its next look', async (t) => {
    // B's host is back: a standby again, on its old interface.
    const B2 = await gateway(whole, cluster, seg, 'b2', spec, { targetIf: B.targetIf, initIf: B.initIf });
    t.match((await ctlIn(cluster.ns, B2.socket, 'list')).out, /NOT SERVED, standby: /, 'B stands by');
    const stopped = Date.now();
    A.daemon.signal('SIGTERM');
    await A.daemon.exited;
    await B2.daemon.waitFor(/took the exclusive lock of rbd\/disk \(nobody held the lock\); serving/, { timeoutMs: 15000 });
    const ms = Date.now() - stopped;
    t.comment(`clean handover: B serves ${ms} ms after A was told to stop`);
    t.ok(ms < 10000, `within a look or two (${ms} ms)`);
    t.same(Buffer.from(await cb.read(B2.T, 100, 8)), stamp('B newer', 8), 'B serves the data');
    const bl = (await cluster.ceph(['osd', 'blocklist', 'ls'])).stdout.trim().split('\n').length;
    t.comment(`blocklist entries now: ${bl}`);
  });
});

t.test('an rbd export a gateway cannot fence with: refused or held, with what to do', async (t) => {
  if (!requireCeph(t)) return;
  const cluster = await startCeph(t);
  const init = await createNetns(t, 'init');
  const seg: Segment = { init, bridge: (await addBridgeTap(t, init)).bridge };

  await t.test('an image without the exclusive-lock feature is refused for writing', async (t) => {
    await cluster.rbd(['create', '--size', '16M', '--image-feature', 'layering', 'rbd/nolock']);
    const v = await createVeth(t, cluster.ns, init, { mtu: 1500 });
    const r = await cluster.ns.run(
      process.execPath,
      [VBLADE, '--ceph-conf', cluster.conf, '9', '5', v.a.ifname, 'rbd:rbd/nolock'],
      {
        timeoutMs: 60000,
      },
    );
    t.equal(r.code, 1, 'vblade exits 1');
    t.match(r.stderr, /lacks the exclusive-lock feature.*rbd feature enable rbd\/nolock exclusive-lock/, r.stderr.trim());
    const ro = cluster.ns.spawn(
      t,
      process.execPath,
      [VBLADE, '-r', '--ceph-conf', cluster.conf, '9', '5', v.a.ifname, 'rbd:rbd/nolock'],
      {
        label: 'read-only',
      },
    );
    await ro.waitFor(/e9\.5, \d+ sectors O_RDONLY/, { timeoutMs: 60000 });
    t.pass('read-only it is served (no writer to fence)');
  });

  await t.test('AoE state in the image that is not ours: the export is held, and says how to fix it', async (t) => {
    const spec = await cluster.createImage('forged', 16 * MiB);
    for (const forged of ['{"version": 1, "key": "e1.1", "config": "", "macMask": [], "reserve": []}', 'not json at all']) {
      await cluster.rbd(['image-meta', 'set', spec, 'aoe.state', forged]);
      const g = await gateway(t, cluster, seg, `forged${forged.length}`, spec);
      const list = (await ctlIn(cluster.ns, g.socket, 'list')).out;
      t.match(
        list,
        /NOT SERVED, held: the AoE state kept in the rbd image rbd\/forged \(image-meta aoe\.state\) is unusable: /,
        list,
      );
      t.match(list, /rbd image-meta remove rbd\/forged aoe\.state/, 'with the fix');
      const c = AoeClient.open(seg.bridge, { netns: init.path, timeoutMs: 300, retries: 1 });
      t.teardown(() => c.close());
      t.same(await c.discover(9, 4, 600), [], 'it answers nothing');
      g.daemon.signal('SIGTERM');
      await g.daemon.exited;
    }
  });
});
