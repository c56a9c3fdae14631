// Scenario 3: a diskless workstation. The export holds an ext4 root file system
// (busybox, and lab/guest-scripts/rootfs/init.sh as /sbin/init), built on the host with
// `mke2fs -d`. The guest's initramfs finds it over AoE, mounts it and
// switch_roots into it; its init starts a shell on the console, into which the
// host types: write a file, reboot; after the reboot, read the file back.

import * as crypto from 'node:crypto';
import t from 'tap';
import { run } from '../../lab/process';
import { checkTwoBoots, twoBoots } from './lib/diskless';
import { buildRootImage } from '../../lab/root-image';
import { TARGET_IF } from '../../lab/topology';
import { kernelAppend } from '../../lab/guest';
import { scenarioTest } from './lib/scenario';
import { selectedTargets } from './targets';

for (const target of selectedTargets()) {
  scenarioTest(t, target, 'diskless-root', async (t, ctx) => {
    const { guest } = ctx.harness;
    const topo = await ctx.topology({ mtu: 1500, targets: 1 });
    const image = await buildRootImage(ctx.dir);
    await ctx.startTarget(topo.targetNs[0], ['1', '1', TARGET_IF, image]);
    const token = `persist-${crypto.randomBytes(6).toString('hex')}`;

    const q = ctx.qemu({
      ns: topo.guestNs,
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: kernelAppend({ scenario: 'diskless', mtu: 1500 }),
      allowReboot: true,
      timeoutMs: 300 * 1000,
    });
    const x = ctx.extra;
    try {
      await twoBoots(t, q, token);
    } catch (err) {
      t.fail(`diskless boot did not get through: ${(err as Error).message}`, x);
    }
    const exit = await q.done;
    t.comment(`guest ran ${(exit.ms / 1000).toFixed(1)} s`);
    for (const l of q.results) t.comment(`serial: ${l.raw}`);
    checkTwoBoots(t, q, exit, token, x);

    const fsck = await run('e2fsck', ['-fn', image], { timeoutMs: 10 * 60 * 1000 });
    t.equal(fsck.code, 0, 'e2fsck -fn on the export file finds it clean (host side)', {
      ...x,
      output: fsck.code ? fsck.stdout : undefined,
    });
    const cat = await run('debugfs', ['-R', 'cat /root/persist', image], { timeoutMs: 10 * 60 * 1000 });
    t.equal(cat.stdout.trim(), token, 'the file is in the export file (read on the host with debugfs)', x);
  });
}
