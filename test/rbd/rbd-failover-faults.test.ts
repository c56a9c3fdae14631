// Failover (src/remote/rbd-failover.ts) when the cluster misbehaves:
//
// - A standby whose cluster hangs (the test's ceph-osd stopped with SIGSTOP)
//   while it looks at the lock: it answers nothing for the address, the
//   daemon answers meanwhile (a file export it serves, `vblade ctl list`),
//   and once the OSD runs again exactly one gateway serves: the standby
//   stands by again, or took over from an owner whose watch expired.
// - The serving gateway loses the image's exclusive lock without being
//   blocklisted: another client breaks the lock with
//   rbd_blocklist_on_break_lock = false and takes it. The old gateway
//   acknowledges no write the image does not hold, stops serving, and says
//   why in its log and in `vblade ctl list`.
// - The cluster hangs under two served rbd exports, with libuv's pool of
//   two threads: their lock looks and size checks wait on the OSD, and a
//   file export the same daemon serves still answers reads, and saves its
//   state (Config Set) at once: the size is read off the event loop, and
//   remote work holds half the pool at most.
//
// Network safety: the cluster, the gateways and the lock-taking client run
// in the cluster's namespace; the veths, the bridge and the namespaces are
// the test's own.

import t from 'tap';
import { AoeClient, formatMac } from '../../src/client';
import { sleep } from '../../lab/common';
import { addBridgeTap, createNetns } from '../../lab/netns';
import { readImage, requireCeph, startCeph, type CephCluster } from '../helpers/ceph';
import { patternFile, patternSectors, tempDir } from '../helpers/files';
import { gateway, stamp, type Segment } from '../helpers/rbd-gateways';
import { ctlIn, until } from '../helpers/vbladed';

const MiB = 1 << 20;
/** remote-timeout of the gateways' rbd export: how long one cluster operation may hang. */
const TIMEOUT = 'remote-timeout = 4\n';

async function segment(t: Parameters<typeof startCeph>[0]): Promise<{ cluster: CephCluster; spec: string; seg: Segment }> {
  const cluster = await startCeph(t);
  const spec = await cluster.createImage('disk', 64 * MiB);
  const init = await createNetns(t, 'init');
  return {
    cluster,
    spec,
    seg: { init, bridge: (await addBridgeTap(t, init)).bridge },
  };
}

t.test('a standby whose cluster hangs while it looks at the lock', async (t) => {
  if (!requireCeph(t)) return;
  const { cluster, spec, seg } = await segment(t);
  const A = await gateway(t, cluster, seg, 'a', spec, undefined, TIMEOUT);
  const file = await patternFile(t, 2048, { dir: tempDir(t, 'file') });
  const B = await gateway(
    t,
    cluster,
    seg,
    'b',
    spec,
    undefined,
    `${TIMEOUT}\n[export e9.7]\nfile = ${file}\ninterfaces = IFACE\n`,
  );
  const c = AoeClient.open(seg.bridge, {
    netns: seg.init.path,
    timeoutMs: 1000,
    retries: 1,
  });
  t.teardown(() => c.close());
  await c.write(A.T, 100, stamp('A first', 8));
  t.match((await ctlIn(cluster.ns, B.socket, 'list')).out, /NOT SERVED, standby: /, 'B stands by');

  const from = B.daemon.mark();
  await cluster.osd.freeze();
  let stopped = true;
  t.teardown(() => {
    if (stopped) cluster.osd.signal('SIGCONT');
  });
  // B looks every 3 s; each look now waits up to remote-timeout on the OSD.
  await sleep(3500);
  let t0 = performance.now();
  const data = await c.read({ ...B.T, slot: 7 }, 5, 1).then(
    (d) => Buffer.from(d),
    (e: Error) => e.message,
  );
  const readMs = performance.now() - t0;
  t.same(data, patternSectors(5, 1), "B's file export answers while B's look at the lock hangs");
  t.ok(readMs < 200, `in ${readMs.toFixed(1)} ms`);
  t0 = performance.now();
  const list = await ctlIn(cluster.ns, B.socket, 'list');
  t.comment(`ctl list of B answered in ${(performance.now() - t0).toFixed(0)} ms (a new node process)`);
  t.match(list.out, /e9\.4\t[^\n]*\n(?:\t[^\n]*\n)*?\tNOT SERVED, standby: /, 'and ctl list, which says B stands by');
  const found = (await c.discover(9, 4, 1000)).map((d) => d.macText);
  t.notOk(found.includes(formatMac(B.T.mac)), `B does not answer for e9.4 (answered: ${found.join(' ') || 'nobody'})`);
  await B.daemon.waitFor(/e9\.4: cannot look at the lock of rbd\/disk: /, {
    from,
    timeoutMs: 20000,
  });
  t.pass("B's log says its look at the lock failed");
  t.notOk(
    (await c.discover(9, 4, 1000)).some((d) => d.macText === formatMac(B.T.mac)),
    'B still answers nothing for e9.4',
  );

  cluster.osd.signal('SIGCONT');
  stopped = false;
  // The OSD may expire A's watch when it runs again (it missed A's pings): then B takes over, fencing A. Either way, one serves.
  const serving = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const g of [A, B])
      if (!/e9\.4\t[^\n]*\n(?:\t[^\n]*\n)*?\tNOT SERVED/.test((await ctlIn(cluster.ns, g.socket, 'list')).out)) out.push(g.name);
    return out;
  };
  let now: string[] = [];
  await until(
    'one gateway serving e9.4',
    async () => {
      now = await serving();
      return now.length === 1;
    },
    30000,
  );
  await sleep(7000); // two more looks of the standby: nothing changes by itself now
  t.same(await serving(), now, `after the OSD ran again, exactly one gateway serves: ${now.join(' ')}`);
  const owner = now[0] === 'a' ? A : B;
  const other = owner === A ? B : A;
  t.match(
    (await ctlIn(cluster.ns, other.socket, 'list')).out,
    other === B
      ? /NOT SERVED, standby: the exclusive lock of the rbd image rbd\/disk is held by client\.\d+/
      : /NOT SERVED, fenced: /,
    `${other.name} stands by again, or was fenced by the takeover`,
  );
  t.same(Buffer.from(await c.read(owner.T, 100, 8)), stamp('A first', 8), `${owner.name} serves what A wrote`);
  if (owner === A) {
    // B looks at the lock again: a clean stop of A hands over.
    A.daemon.signal('SIGTERM');
    await A.daemon.exited;
    await B.daemon.waitFor(/took the exclusive lock of rbd\/disk \(nobody held the lock\); serving/, { timeoutMs: 15000 });
    t.same(Buffer.from(await c.read(B.T, 100, 8)), stamp('A first', 8), 'B took over once A stopped');
  }
});

t.test('the serving gateway loses the lock without being blocklisted', async (t) => {
  if (!requireCeph(t)) return;
  const { cluster, spec, seg } = await segment(t);
  const A = await gateway(t, cluster, seg, 'a', spec, undefined, TIMEOUT);
  const c = AoeClient.open(seg.bridge, {
    netns: seg.init.path,
    timeoutMs: 1000,
    retries: 1,
  });
  t.teardown(() => c.close());
  await c.write(A.T, 100, stamp('A first', 8));

  // Another client breaks A's lock without blocklisting it, takes the lock and keeps it.
  const addon = require.resolve('../../src/native/addon');
  const script = `
    const { native } = require(${JSON.stringify(addon)});
    (async () => {
      const { handle } = await native.openRbd({ conf: ${JSON.stringify(cluster.conf)}, client: 'admin', pool: 'rbd',
        namespace: '', image: 'disk', readOnly: false,
        settings: ['rbd_blocklist_on_break_lock', 'false', 'rbd_cache', 'false'] });
      const st = await native.rbdCall(handle, 'lockState');
      console.log('owner ' + st.owners[0]);
      await native.rbdCall(handle, 'lockBreak', st.owners[0]);
      await native.rbdCall(handle, 'lockAcquire');
      console.log('taken');
      setInterval(() => undefined, 1000);
    })().catch((e) => { console.log('failed: ' + e.message); process.exit(1); });`;
  const thief = cluster.ns.spawn(t, process.execPath, ['-e', script], {
    label: 'lock-breaker',
  });
  const owner = (await thief.waitFor(/^owner (\S+)/m, { timeoutMs: 30000 }))[1];
  await thief.waitFor(/^taken$/m, { timeoutMs: 30000 });
  const blocklist = (await cluster.ceph(['osd', 'blocklist', 'ls'])).stdout;
  t.notMatch(blocklist, owner, `A (${owner}) is not blocklisted: ${blocklist.trim() || 'empty'}`);

  // Until A learns it lost the lock (its next look asks the OSD), librbd may still send its writes, and the OSDs,
  // told to fence nobody, take them. What A acknowledges must be in the image; and it must stop soon.
  const taken = Date.now();
  const acked: number[] = [];
  let refusedAfter = -1;
  let lastAck = -1;
  for (let i = 0; Date.now() - taken < 20000; i++) {
    const ok = await c.write(A.T, 300 + i, stamp(`A late ${i}`, 1)).then(
      () => true,
      () => false,
    );
    if (!ok) {
      refusedAfter = Date.now() - taken;
      break;
    }
    acked.push(i);
    lastAck = Date.now() - taken;
    await sleep(200);
  }
  t.comment(
    `A acknowledged ${acked.length} writes after the lock was taken, the last ${lastAck} ms after; the next, sent then, got no acknowledgement`,
  );
  t.ok(
    refusedAfter >= 0 && refusedAfter < 8000,
    `A stopped acknowledging writes within a look (3 s) and remote-timeout: ${refusedAfter} ms`,
  );
  for (const i of acked)
    t.same(
      await readImage(cluster, spec, (300 + i) * 512, 512),
      stamp(`A late ${i}`, 1),
      `acknowledged write ${i} is in the image`,
    );
  t.same(await readImage(cluster, spec, 100 * 512, 8 * 512), stamp('A first', 8), 'what A wrote while it held the lock is there');
  await until('A says it is fenced', async () => /fenced/.test((await ctlIn(cluster.ns, A.socket, 'list')).out), 20000);
  const list = (await ctlIn(cluster.ns, A.socket, 'list')).out;
  t.match(list, /NOT SERVED, fenced: it lost the exclusive lock \(the lock is now \S+'s\)/, list);
  t.match(A.daemon.tail(200), /e9\.4: stopped serving: fenced: it lost the exclusive lock/, "A's log says why it stopped");
  const again = await c.write(A.T, 200, stamp('A after', 1)).then(
    () => 'acknowledged',
    (e: Error) => e.message,
  );
  t.not(again, 'acknowledged', `A serves no more writes: ${again}`);
  t.same(await readImage(cluster, spec, 200 * 512, 512), Buffer.alloc(512), 'and the image holds none');
});

t.test("a hung cluster's lock looks leave libuv's pool to the state saves of a file export", async (t) => {
  if (!requireCeph(t)) return;
  const { cluster, spec, seg } = await segment(t);
  const other = await cluster.createImage('other', 16 * MiB);
  const file = await patternFile(t, 2048, { dir: tempDir(t, 'file') });
  // Two threads: the looks of the two rbd exports, each waiting on the OSD, would hold all of it.
  const A = await gateway(
    t,
    cluster,
    seg,
    'a',
    spec,
    undefined,
    `${TIMEOUT}\n[export e9.5]\nfile = rbd:${other}\nceph-conf = ${cluster.conf}\n${TIMEOUT}interfaces = IFACE\n\n[export e9.7]\nfile = ${file}\ninterfaces = IFACE\n`,
    { UV_THREADPOOL_SIZE: '2' },
  );
  await until(
    'both rbd exports to serve',
    async () => !/NOT SERVED/.test((await ctlIn(cluster.ns, A.socket, 'list')).out),
    30000,
  );
  const c = AoeClient.open(seg.bridge, { netns: seg.init.path, timeoutMs: 3000, retries: 0 });
  t.teardown(() => c.close());
  const F = { ...A.T, slot: 7 };
  t.equal(await c.configForceSet(F, 'before'), 'before', 'the file export saves its config string');

  await cluster.osd.freeze();
  let stopped = true;
  t.teardown(() => {
    if (stopped) cluster.osd.signal('SIGCONT');
  });
  // Each export looks at its lock every 3 s; each look now waits up to remote-timeout (4 s) on the OSD.
  await sleep(3500);
  const times: number[] = [];
  const reads: number[] = [];
  for (const started = Date.now(); Date.now() - started < 8000;) {
    const t0 = performance.now();
    const value = `probe ${times.length}`;
    const got = await c.configForceSet(F, value).catch((e: Error) => e.message);
    times.push(performance.now() - t0);
    t.equal(got, value, `Config Set ${times.length} answered with the saved string`);
    const r0 = performance.now();
    const read = await c.read(F, 1, 1).then(
      (d) => Buffer.from(d),
      (e: Error) => e.message,
    );
    reads.push(performance.now() - r0);
    t.same(read, patternSectors(1, 1), `a read of it ${times.length} is answered with its data`);
    await sleep(250);
  }
  const slowest = Math.max(...times);
  t.comment(
    `${times.length} Config Sets while the OSD hung: slowest ${slowest.toFixed(0)} ms, median ${times.sort((a, b) => a - b)[times.length >> 1].toFixed(1)} ms`,
  );
  t.ok(
    slowest < 1000,
    `each was saved and answered at once (slowest ${slowest.toFixed(0)} ms; a look holds its thread up to 4 s)`,
  );
  t.match(A.daemon.tail(200), /cannot look at the lock/, 'the looks did wait on the hung OSD');
  const slowestRead = Math.max(...reads);
  t.ok(
    slowestRead < 1000,
    `and each read of it at once (slowest ${slowestRead.toFixed(0)} ms; the size watch once read an rbd image's size on the event loop, 4 s)`,
  );
  cluster.osd.signal('SIGCONT');
  stopped = false;
});
