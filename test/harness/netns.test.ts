// Self-tests of lab/netns.ts: namespaces, veth pairs, link faults,
// bridge + tap, processes inside, and that everything goes away.

import t from 'tap';
import { existsSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { ownPrefix, pidAlive, sleep, uniqueId } from '../../lab/common';
import {
  addBridgeTap,
  addNetns,
  createNetns,
  createNetnsPair,
  createNetnsStar,
  listNetns,
  Netns,
  ownNetns,
  removeStaleNetns,
  requireRoot,
} from '../../lab/netns';
import { Proc, run, runOk } from '../../lab/process';

interface LinkJson {
  ifname: string;
  mtu: number;
  address: string;
  operstate: string;
  flags: string[];
  master?: string;
  stats64?: { rx: { packets: number }; tx: { packets: number } };
}

async function link(ns: Netns, dev: string, stats = false): Promise<LinkJson> {
  const r = await ns.ip([...(stats ? ['-s'] : []), '-j', 'link', 'show', 'dev', dev]);
  return (JSON.parse(r.stdout) as LinkJson[])[0];
}

if (requireRoot(t)) {
  t.test('a pair of namespaces joined by a veth pair', async (t) => {
    const names: string[] = [];
    await t.test('create', async (t) => {
      const pair = await createNetnsPair(t, { mtu: 9000, macA: '02:aa:00:00:00:01', macB: '02:aa:00:00:00:02' });
      names.push(pair.target.name, pair.init.name);
      t.ok(pair.target.name.startsWith(ownPrefix()) && pair.init.name.startsWith(ownPrefix()), 'names carry our prefix');
      t.match(pair.target.name, /-target$/, 'labelled');
      t.same(ownNetns().sort(), names.slice().sort(), 'both namespaces exist');
      t.ok(pair.targetIf.length <= 15 && pair.initIf.length <= 15, 'interface names fit IFNAMSIZ');
      const a = await link(pair.target, pair.targetIf);
      const b = await link(pair.init, pair.initIf);
      t.equal(a.mtu, 9000, 'MTU of end a');
      t.equal(b.mtu, 9000, 'MTU of end b');
      t.equal(a.address, '02:aa:00:00:00:01', 'MAC of end a');
      t.equal(b.address, '02:aa:00:00:00:02', 'MAC of end b');
      await pair.veth.waitOperstate('a', 'UP');
      await pair.veth.waitOperstate('b', 'UP');
      t.pass('both ends up');
      for (const [ns, dev] of [
        [pair.target, pair.targetIf],
        [pair.init, pair.initIf],
      ] as const) {
        const r = await ns.exec('cat', [`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`]);
        t.equal(r.stdout.trim(), '1', `IPv6 off on ${dev}`);
        const addrs = await ns.exec('ip', ['-6', 'addr', 'show', 'dev', dev]);
        t.equal(addrs.stdout.trim(), '', `no IPv6 address on ${dev}`);
      }
      // Neither kernel sends anything on its own: only test frames cross.
      await sleep(1500);
      const sa = await link(pair.target, pair.targetIf, true);
      const sb = await link(pair.init, pair.initIf, true);
      t.equal(sa.stats64?.tx.packets, 0, 'nothing sent by the target namespace kernel');
      t.equal(sb.stats64?.tx.packets, 0, 'nothing sent by the initiator namespace kernel');
      const host = await runOk('ip', ['-br', 'link']);
      t.notMatch(host.stdout, new RegExp(ownPrefix()), 'no device of ours in the host namespace');
    });
    t.same(
      listNetns().filter((n) => names.includes(n)),
      [],
      'namespaces deleted in teardown',
    );
  });

  t.test('link faults: MTU, down/up, delete and recreate', async (t) => {
    const { target, init, veth, targetIf, initIf } = await createNetnsPair(t, { macA: '02:bb:00:00:00:01' });
    t.equal((await link(target, targetIf)).mtu, 1500, 'default MTU 1500');
    await veth.setMtu(9000);
    t.equal((await link(target, targetIf)).mtu, 9000, 'MTU raised on a');
    t.equal((await link(init, initIf)).mtu, 9000, 'and on b');
    await veth.setMtu(1500, 'b');
    t.equal((await link(init, initIf)).mtu, 1500, 'one end changed alone');
    t.equal((await link(target, targetIf)).mtu, 9000, 'the other end kept its MTU');
    await veth.setMtu(1500);

    await veth.down('b');
    t.notOk((await link(init, initIf)).flags.includes('UP'), 'b down');
    await veth.waitCarrier('a', false);
    t.pass('a lost its carrier');
    await veth.up('b');
    await veth.waitOperstate('a', 'UP');
    t.pass('a up again');

    await veth.remove();
    t.notOk(veth.present, 'removed');
    const gone = await target.run('ip', ['link', 'show', 'dev', targetIf]);
    t.not(gone.code, 0, 'end a gone');
    const gone2 = await init.run('ip', ['link', 'show', 'dev', initIf]);
    t.not(gone2.code, 0, 'end b gone with it');
    await veth.remove();
    t.pass('remove() twice is fine');
    await veth.recreate();
    const back = await link(target, targetIf);
    t.equal(back.address, '02:bb:00:00:00:01', 'recreated with the same MAC');
    t.equal(back.mtu, 1500, 'and MTU');
    await veth.waitOperstate('a', 'UP');
    t.pass('and up');
  });

  t.test('a star: one target namespace, several initiators', async (t) => {
    const star = await createNetnsStar(t, { peers: 3, mtu: [1500, 9000, 4000] });
    t.equal(star.links.length, 3, 'three links');
    const ifs = await star.target.exec('ip', ['-j', 'link', 'show']);
    const devs = (JSON.parse(ifs.stdout) as LinkJson[]).filter((l) => l.ifname !== 'lo');
    t.same(devs.map((d) => d.mtu).sort(), [1500, 4000, 9000], 'three veth ends in the target namespace with their MTUs');
    t.equal(new Set(star.links.map((l) => l.init.name)).size, 3, 'three initiator namespaces');
  });

  t.test('bridge and tap for a QEMU guest', async (t) => {
    const { init, initIf } = await createNetnsPair(t, { mtu: 9000 });
    const bt = await addBridgeTap(t, init, { uplink: initIf });
    t.ok(bt.bridge.length <= 15 && bt.tap.length <= 15, 'names fit');
    const br = await link(init, bt.bridge);
    const tap = await link(init, bt.tap);
    const up = await link(init, initIf);
    t.equal(tap.master, bt.bridge, 'tap enslaved');
    t.equal(up.master, bt.bridge, 'uplink enslaved');
    t.equal(br.mtu, 9000, 'bridge MTU follows the uplink');
    t.equal(tap.mtu, 9000, 'tap MTU follows the uplink');
    const info = await init.exec('ip', ['-d', '-j', 'link', 'show', 'dev', bt.bridge]);
    const data = (JSON.parse(info.stdout) as Array<{ linkinfo: { info_data: { stp_state: number } } }>)[0];
    t.equal(data.linkinfo.info_data.stp_state, 0, 'STP off');
    const r = await init.exec('cat', [`/proc/sys/net/ipv6/conf/${bt.bridge}/disable_ipv6`]);
    t.equal(r.stdout.trim(), '1', 'IPv6 off on the bridge too');
  });

  t.test('processes inside a namespace', async (t) => {
    const ns = await createNetns(t, 'proc');
    const p = ns.spawn(t, 'sh', ['-c', 'echo started; exec sleep 30']);
    await p.waitFor(/started/);
    const id = await runOk('ip', ['netns', 'identify', String(p.pid)]);
    t.equal(id.stdout.trim(), ns.name, 'the pid is the command itself, inside the namespace');
    t.not(readlinkSync(`/proc/${p.pid}/ns/net`), readlinkSync('/proc/self/ns/net'), 'the test process itself stays where it was');
    const r = await ns.exec('ip', ['-br', 'link']);
    t.match(r.stdout, /^lo\s+UNKNOWN/m, 'only loopback inside, and it is up');
  });

  t.test('delete() stops what runs inside and is idempotent', async (t) => {
    const ns = await createNetns(t, 'del');
    // Started without a teardown of its own, like a daemon a test forgot.
    const p = new Proc('sleep', ['60'], { netns: ns.name });
    t.teardown(() => p.stop());
    await sleep(100);
    t.ok(pidAlive(p.pid), 'running inside');
    await ns.delete();
    t.notOk(listNetns().includes(ns.name), 'namespace gone');
    await p.exited;
    t.notOk(pidAlive(p.pid), 'the process inside was stopped');
    await ns.delete();
    t.pass('second delete() is fine');
  });

  t.test('leftovers of a dead test process are removed; nothing else is touched', async (t) => {
    // A pid that surely no longer runs: one of a process that has exited.
    const done = await runOk('sh', ['-c', 'echo $$']);
    const deadPid = Number(done.stdout.trim());
    t.notOk(pidAlive(deadPid), 'pid is free');
    // A namespace recorded by that (dead) process, as a killed run leaves it.
    const stale = `${uniqueId()}-stale`;
    mkdirSync('/run/aoet-test-netns', { recursive: true });
    writeFileSync(`/run/aoet-test-netns/${stale}`, JSON.stringify({ pid: deadPid, start: '1' }));
    await runOk('ip', ['netns', 'add', stale]);
    t.teardown(() => run('ip', ['netns', 'del', stale]));
    // One with a name of the same shape but no record: someone else's.
    const foreign = `aoet${deadPid.toString(36)}-1-foreign`;
    await runOk('ip', ['netns', 'add', foreign]);
    t.teardown(() => run('ip', ['netns', 'del', foreign]));
    const mine = await createNetns(t, 'live');
    const removed = await removeStaleNetns();
    t.ok(removed.includes(stale), 'the dead process’s namespace was removed');
    t.notOk(listNetns().includes(stale), 'gone');
    t.notOk(existsSync(`/run/aoet-test-netns/${stale}`), 'and its record');
    t.ok(listNetns().includes(foreign), 'a namespace without a record is left alone');
    t.notOk(removed.includes(foreign), 'and not reported');
    t.ok(listNetns().includes(mine.name), 'a namespace of a live process stays');
  });

  t.test("addNetns: a namespace with the interop suite's name, recorded and deleted like the others", async (t) => {
    await t.rejects(addNetns('eth1-ns'), /not a namespace name of ours/, 'a name of another shape is refused');
    t.notOk(listNetns().includes('eth1-ns'), 'and nothing is created');
    const name = `aoei-${process.pid}-0-g`;
    const ns = await addNetns(name);
    t.teardown(() => ns.delete());
    t.ok(listNetns().includes(name), 'created with exactly that name');
    t.ok(existsSync(`/run/aoet-test-netns/${name}`), 'recorded, so that a later run can remove it if this one dies');
    t.equal(
      (await ns.exec('cat', ['/proc/sys/net/ipv6/conf/all/disable_ipv6'])).stdout.trim(),
      '1',
      'IPv6 off, as in createNetns',
    );
    await ns.delete();
    t.notOk(listNetns().includes(name), 'deleted by delete()');
    t.notOk(existsSync(`/run/aoet-test-netns/${name}`), 'with its record');
  });

  t.test("addNetns: the bench's names, and deleteSync() for its synchronous clean-up", async (t) => {
    const name = `aoeb-${process.pid.toString(36)}-t`;
    const ns = await addNetns(name);
    t.teardown(() => ns.delete());
    t.ok(listNetns().includes(name), 'created with exactly that name');
    t.ok(existsSync(`/run/aoet-test-netns/${name}`), 'recorded like the others');
    ns.deleteSync();
    t.ok(ns.deleted, 'deleted');
    t.notOk(listNetns().includes(name), 'gone from ip netns');
    t.notOk(existsSync(`/run/aoet-test-netns/${name}`), 'with its record');
  });

  t.test('the exit safety net deletes namespaces when teardown never ran', async (t) => {
    const helpers = require.resolve('../../lab/netns');
    const script = `
      const h = require(${JSON.stringify(helpers)});
      const noTeardown = { teardown() {}, pass() { return true; }, fail() { return false; }, comment() {} };
      h.createNetnsPair(noTeardown).then((p) => {
        const sleeper = p.target.spawn(noTeardown, 'sleep', ['60']);
        setTimeout(() => {
          console.log(JSON.stringify({ ns: [p.target.name, p.init.name], pid: sleeper.pid }));
          process.exit(0);
        }, 200);
      });
    `;
    const r = await runOk(process.execPath, ['-e', script], { timeoutMs: 60000 });
    const info = JSON.parse(r.stdout.trim()) as { ns: string[]; pid: number };
    t.equal(info.ns.length, 2, 'child made two namespaces');
    t.same(
      listNetns().filter((n) => info.ns.includes(n)),
      [],
      'both deleted when the child exited',
    );
    await sleep(100);
    t.notOk(pidAlive(info.pid), 'its process inside was killed');
  });

  t.test('nothing of this file is left', async (t) => {
    t.same(ownNetns(), [], 'no namespace with our prefix remains');
    const host = await runOk('ip', ['-br', 'link']);
    t.notMatch(host.stdout, new RegExp(ownPrefix()), 'no device with our prefix in the host namespace');
  });
}
