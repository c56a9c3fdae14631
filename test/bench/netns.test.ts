// The bench's private network (bench/netns.ts) on the builder of lab/netns.ts:
// two namespaces joined by a veth pair, recorded as leftovers while they
// exist, the MTU changed between workloads, and everything gone after the
// synchronous clean-up the bench runs on exit. Nothing is sent on the link.

import t from 'tap';
import { existsSync } from 'node:fs';
import { createBenchNet, destroyBenchNet, setMtu } from '../../bench/netns';
import { listNetns, requireRoot } from '../../lab/netns';
import { runOk } from '../../lab/process';

async function linkOf(ns: string, dev: string): Promise<{ mtu: number; flags: string[] }> {
  const r = await runOk('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  return (JSON.parse(r.stdout) as Array<{ mtu: number; flags: string[] }>)[0];
}

t.test('createBenchNet, setMtu, destroyBenchNet', async (t) => {
  if (!requireRoot(t)) return;
  const tag = `t${process.pid.toString(36)}`;
  const net = await createBenchNet(tag, 1500);
  t.teardown(() => destroyBenchNet(net));
  t.same([net.targetNs, net.clientNs], [`aoeb-${tag}-t`, `aoeb-${tag}-c`], 'names of the bench');
  t.equal(net.targetNsPath, `/run/netns/${net.targetNs}`, 'the path AoeClient.open enters');
  for (const ns of [net.targetNs, net.clientNs]) {
    t.ok(listNetns().includes(ns), `${ns} exists`);
    t.ok(existsSync(`/run/aoet-test-netns/${ns}`), `${ns} is recorded, so a killed bench leaves nothing for long`);
  }
  const ends: Array<[string, string]> = [
    [net.targetNs, net.targetIf],
    [net.clientNs, net.clientIf],
  ];
  for (const [ns, dev] of ends) {
    const l = await linkOf(ns, dev);
    t.equal(l.mtu, 1500, `${dev}: MTU 1500`);
    t.ok(l.flags.includes('LOWER_UP'), `${dev}: up with its carrier`);
  }
  const v6 = await runOk('ip', ['netns', 'exec', net.clientNs, 'cat', '/proc/sys/net/ipv6/conf/all/disable_ipv6']);
  t.equal(v6.stdout.trim(), '1', 'IPv6 off: only AoE would cross the link');

  await setMtu(net, 9000);
  for (const [ns, dev] of ends) {
    const l = await linkOf(ns, dev);
    t.equal(l.mtu, 9000, `${dev}: MTU 9000 after setMtu`);
    t.ok(l.flags.includes('LOWER_UP'), `${dev}: up again`);
  }

  destroyBenchNet(net);
  for (const ns of [net.targetNs, net.clientNs]) {
    t.notOk(listNetns().includes(ns), `${ns} deleted`);
    t.notOk(existsSync(`/run/aoet-test-netns/${ns}`), `${ns}: its record too`);
  }
});
