// Scenario: failover of an rbd export, fenced by Ceph. Gateway A serves an
// image of a one-node Ceph cluster (test/helpers/ceph.ts) to the Linux aoe
// driver in the guest; gateway B, started with the same export on another
// bridge port, stands by (the image's exclusive lock is A's). While the guest
// writes and verifies 256 KiB chunks with O_DIRECT (lab/guest-scripts/failover.sh),
// the host kills A with -9. B takes over by itself once A's watch on the image
// expires (5 s in the test cluster), announces, and the guest goes on without
// an error; every chunk verifies at the end, and the image's RADOS objects hold
// what the guest read back.
//
// Network safety: the two target interfaces of the scenario's topology (veths
// whose peers are ports of the guest namespace's bridge) are moved into the
// cluster's namespace, where both gateways run; every namespace and device is
// the test's own, deleted by exact name.

import t from 'tap';
import * as crypto from 'node:crypto';
import { TARGET_IF } from '../../lab/topology';
import { kernelAppend } from '../../lab/guest';
import { run } from '../../lab/process';
import { readImage, requireCeph, startCeph } from '../helpers/ceph';
import { checkGuestEnd, MIB, scenarioTest } from './lib/scenario';
import { targets } from './targets';

const EXPORT_BYTES = 64 * MIB;
const CHUNK = 256 * 1024;
const ITERATIONS_BEFORE_KILL = 6;

const ours = targets.find((x) => x.name === 'aoe-target')!;

scenarioTest(t, ours, 'failover-rbd', async (t, ctx) => {
  if (!requireCeph(t)) return;
  const { guest } = ctx.harness;
  const cluster = await startCeph(t);
  const spec = await cluster.createImage('disk', EXPORT_BYTES);
  const topo = await ctx.topology({ mtu: 1500, targets: 2 });
  // Both target interfaces into the cluster's namespace, under names of their own there.
  const names = ['a', 'b'].map((s) => `rf${process.pid % 100000}${s}`);
  for (let i = 0; i < 2; i++) {
    const from = topo.targetNs[i];
    await run('ip', ['-n', from, 'link', 'set', 'dev', TARGET_IF, 'down']);
    await run('ip', ['-n', from, 'link', 'set', 'dev', TARGET_IF, 'name', names[i]]);
    await run('ip', ['-n', from, 'link', 'set', 'dev', names[i], 'netns', cluster.ns.name]);
    t.teardown(() => run('ip', ['-n', cluster.ns.name, 'link', 'del', 'dev', names[i]]));
    await cluster.ns.ip(['link', 'set', 'dev', names[i], 'up']);
  }
  const args = (ifname: string) => ['--ceph-conf', cluster.conf, '1', '1', ifname, `rbd:${spec}`];
  const a = await ctx.startTarget(cluster.ns.name, args(names[0]), 'target-a');
  await a.child.waitFor(/e1\.1, \d+ sectors O_RDWR\n?$/m, { timeoutMs: 60000 });
  const b = await ctx.startTarget(cluster.ns.name, args(names[1]), 'target-b');
  await b.child.waitFor(/O_RDWR, standby: /, { timeoutMs: 60000 });
  t.pass('A serves, B stands by');

  const q = ctx.qemu({
    ns: topo.guestNs,
    kernel: guest.kernel,
    initrd: guest.initrd,
    append: kernelAppend({
      scenario: 'failover',
      mtu: 1500,
      targets: 1,
      chunks: EXPORT_BYTES / CHUNK,
      maxsecs: 150,
      after: 10,
      minafter: 5,
    }),
    timeoutMs: 300 * 1000,
  });

  let killedAt = 0;
  try {
    await q.waitFor((l) => l.tag === 'fo-iter' && Number(l.fields.i) >= ITERATIONS_BEFORE_KILL - 1, 120 * 1000);
    a.child.signal('SIGKILL');
    await a.child.exited;
    killedAt = Date.now();
    q.send('target-a-killed\n');
    await b.child.waitFor(/took the exclusive lock/, { timeoutMs: 60000 });
    ctx.notes.takeover_s = (Date.now() - killedAt) / 1000;
    t.comment(`B took the lock ${((Date.now() - killedAt) / 1000).toFixed(1)} s after A was killed`);
  } catch (err) {
    t.fail(`the failover did not happen: ${(err as Error).message}`);
  }
  const exit = await q.done;
  t.comment(`guest ran ${(exit.ms / 1000).toFixed(1)} s`);
  for (const l of q.results) if (l.tag !== 'fo-iter') t.comment(`serial: ${l.raw}`);
  checkGuestEnd(t, ctx, q, exit);
  const r = q.first('failover');
  t.ok(killedAt > 0 && r.kill_cs !== undefined && r.kill_cs !== 'none', 'the guest got the kill notice');
  t.equal(r.errors, '0', 'no I/O errors or mismatches while the owner died');
  t.equal(r.verify_errors, '0', 'every chunk verifies at the end');
  t.ok(Number(r.iters_after_kill) >= 10, `I/O went on after the kill (${r.iters_after_kill} write+verify iterations)`);
  const region = q.first('fo-region');
  const held = await readImage(cluster, spec, 0, Number(region.chunks) * CHUNK);
  t.equal(crypto.createHash('md5').update(held).digest('hex'), region.md5, "the image's objects hold what the guest read back");
  ctx.notes.interruption_s = Number(r.maxstall_after_kill_cs) / 100;
  t.comment(
    `rbd failover: longest interruption ${(Number(r.maxstall_after_kill_cs) / 100).toFixed(2)} s after the kill, ${r.iters_after_kill} iterations after it`,
  );
});
