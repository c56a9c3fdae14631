// Scenario: failover of an rbd export, fenced by Ceph. Gateway A serves an
// image of a one-node Ceph cluster (test/helpers/ceph.ts) to the Linux aoe
// driver in the guest; gateway B, started with the same export on another
// bridge port, stands by (the image's exclusive lock is A's). While fio in the
// guest writes random blocks with checksums and reads each back to verify it
// (lab/guest-scripts/failover-fio.sh), the host kills A with -9. B takes over
// by itself once A's watch on the image expires (5 s in the test cluster) and
// announces; fio ends with no I/O error and no block that fails verification.
//
// Network safety: the two target interfaces of the scenario's topology (veths
// whose peers are ports of the guest namespace's bridge) are moved into the
// cluster's namespace, where both gateways run; every namespace and device is
// the test's own, deleted by exact name.

import t from 'tap';
import { TARGET_IF } from '../../lab/topology';
import { buildGuest, kernelAppend } from '../../lab/guest';
import { sleep } from '../../lab/common';
import { run } from '../../lab/process';
import { requireCeph, startCeph } from '../helpers/ceph';
import { checkGuestEnd, MIB, scenarioTest } from './lib/scenario';
import { targets } from './targets';

const EXPORT_BYTES = 64 * MIB;
/** fio works in the first 8 MiB, writing for 40 s; A is killed 8 s into it. */
const FIO_MIB = 8;
const FIO_SECONDS = 40;
const KILL_AFTER_MS = 8000;

const ours = targets.find((x) => x.name === 'aoe-target')!;

scenarioTest(t, ours, 'failover-rbd', async (t, ctx) => {
  if (!requireCeph(t)) return;
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

  // The guest with fio (as the initiator bench builds it, cached under its own name).
  const fioGuest = await buildGuest({ name: 'fio', programs: [{ from: '/usr/bin/fio', to: '/opt/host/fio' }] });
  const q = ctx.qemu({
    ns: topo.guestNs,
    kernel: fioGuest.kernel,
    initrd: fioGuest.initrd,
    append: kernelAppend({ scenario: 'failover-fio', mtu: 1500, fiomib: FIO_MIB, fiosec: FIO_SECONDS }),
    timeoutMs: 400 * 1000,
  });

  let killedAt = 0;
  try {
    await q.waitFor((l) => l.tag === 'fio-start', 120 * 1000);
    await sleep(KILL_AFTER_MS); // fio writes and verifies through A meanwhile
    a.child.signal('SIGKILL');
    await a.child.exited;
    killedAt = Date.now();
    await b.child.waitFor(/took the exclusive lock/, { timeoutMs: 60000 });
    ctx.notes.takeover_s = (Date.now() - killedAt) / 1000;
    t.comment(`B took the lock ${((Date.now() - killedAt) / 1000).toFixed(1)} s after A was killed`);
  } catch (err) {
    t.fail(`the failover did not happen: ${(err as Error).message}`);
  }
  const exit = await q.done;
  t.comment(`guest ran ${(exit.ms / 1000).toFixed(1)} s`);
  for (const l of q.results) t.comment(`serial: ${l.raw}`);
  checkGuestEnd(t, ctx, q, exit);
  const r = q.first('fio-failover');
  t.ok(killedAt > 0, 'A was killed while fio ran');
  t.equal(r.rc, '0', 'fio exits 0');
  t.equal(r.err, '0', 'fio reports err=0: no I/O error while the owner died');
  t.equal(r.verify_errors, '0', 'no block failed its verification');
  t.match(r.written, /^[0-9.]+[KMG]i?B$/, `fio wrote ${r.written}`);
  t.ok(Number(r.verified_blocks) > 0, `fio read back and verified ${r.verified_blocks} blocks`);
});
