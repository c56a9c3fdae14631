// Scenario 4: failover. Two target processes with different MACs, each in its
// own namespace on its own bridge port, serve the same shelf.slot from one
// backing file. While the guest writes and verifies data, the host kills one of
// them by pid; I/O must go on through the other without errors.
//   failover-active-active:  both run from the start (the driver spreads frames over both)
//   failover-active-standby: the second starts only after the first died, well
//                            within the driver's dead time (aoe_deadsecs, 180 s)

import t from 'tap';
import { sleep } from '../../lab/common';
import { TARGET_IF } from '../../lab/topology';
import { kernelAppend } from '../../lab/guest';
import { checkGuestEnd, MIB, scenarioTest } from './lib/scenario';
import { selectedTargets } from './targets';

const EXPORT_BYTES = 64 * MIB;
const CHUNK = 256 * 1024;
const ITERATIONS_BEFORE_KILL = 6;
const STANDBY_DELAY_MS = 3000;

for (const target of selectedTargets()) {
  for (const mode of ['active-active', 'active-standby'] as const) {
    const scenario = mode === 'active-active' ? 'failover-active-active' : 'failover-active-standby';
    scenarioTest(t, target, scenario, async (t, ctx) => {
      const { guest } = ctx.harness;
      const topo = await ctx.topology({ mtu: 1500, targets: 2 });
      const file = ctx.exportFile('shared.img', EXPORT_BYTES);
      // Two targets with one address, on purpose: both say so.
      const args = [...target.sharedArgs, '1', '1', TARGET_IF, file];
      const first = await ctx.startTarget(topo.targetNs[0], args, 'target-a');
      if (mode === 'active-active') await ctx.startTarget(topo.targetNs[1], args, 'target-b');

      const q = ctx.qemu({
        ns: topo.guestNs,
        kernel: guest.kernel,
        initrd: guest.initrd,
        append: kernelAppend({
          scenario: 'failover',
          mtu: 1500,
          targets: mode === 'active-active' ? 2 : 1,
          chunks: EXPORT_BYTES / CHUNK,
          maxsecs: 120,
          after: 10,
          minafter: 5,
        }),
        timeoutMs: 300 * 1000,
      });

      let killedAtMs = 0;
      try {
        await q.waitFor((l) => l.tag === 'fo-iter' && Number(l.fields.i) >= ITERATIONS_BEFORE_KILL - 1, 120 * 1000);
        first.child.signal('SIGKILL');
        await first.child.exited;
        killedAtMs = Date.now();
        q.send('target-a-killed\n');
        t.comment(`killed target-a (pid ${first.pid}) after ${ITERATIONS_BEFORE_KILL} guest iterations`);
        if (mode === 'active-standby') {
          await sleep(STANDBY_DELAY_MS);
          await ctx.startTarget(topo.targetNs[1], args, 'target-b');
          const secondStartedMs = Date.now();
          t.comment(`started target-b ${((secondStartedMs - killedAtMs) / 1000).toFixed(1)} s after the kill`);
        }
      } catch (err) {
        t.fail(`the guest did not reach the kill point: ${(err as Error).message}`, ctx.extra);
      }
      const exit = await q.done;
      t.comment(`guest ran ${(exit.ms / 1000).toFixed(1)} s`);
      for (const l of q.results) if (l.tag !== 'fo-iter') t.comment(`serial: ${l.raw}`);
      const x = ctx.extra;

      checkGuestEnd(t, ctx, q, exit);
      const r = q.first('failover');
      t.ok(killedAtMs > 0 && r.kill_cs !== undefined && r.kill_cs !== 'none', 'the guest got the kill notice', x);
      t.equal(r.errors, '0', 'no I/O errors or mismatches while a target died', x);
      t.equal(r.verify_errors, '0', 'every chunk verifies at the end', x);
      t.ok(Number(r.iters_after_kill) >= 10, `I/O went on after the kill (${r.iters_after_kill} write+verify iterations)`, x);
      const region = q.first('fo-region');
      t.equal(
        ctx.md5Of(file, 0, Number(region.chunks) * CHUNK),
        region.md5,
        'the backing file holds what the guest read back',
        x,
      );
      ctx.notes.interruption_s = Number(r.maxstall_after_kill_cs) / 100;
      t.comment(
        `failover ${mode} against ${target.name}: longest interruption ${(Number(r.maxstall_after_kill_cs) / 100).toFixed(2)} s` +
          ` after the kill (longest iteration overall ${(Number(r.maxstall_cs) / 100).toFixed(2)} s), ${r.iters_after_kill} iterations after it`,
      );
    });
  }
}
