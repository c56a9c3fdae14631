// Scenario 5: a lab served from one golden image (docs/operations.md, "Serving
// a lab from one image"). One export with `views = per-initiator`
// holds the ext4 root file system of the diskless scenario, on XFS with
// reflinks; two QEMU guests with different MACs boot it at the same time, each
// writes a file of its own and reboots, and each finds only its own file. On
// the host, afterwards: the image was never written, and the views directory
// holds one view per MAC with that guest's file in it. Our target only: vblade
// has no views.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { run } from '../../lab/process';
import { checkTwoBoots, twoBoots } from './lib/diskless';
import { buildRootImage, ROOT_BYTES } from '../../lab/root-image';
import { repoRoot } from '../../lab/guest';
import { guestMac, TARGET_IF } from '../../lab/topology';
import { kernelAppend } from '../../lab/guest';
import { scenarioTest } from './lib/scenario';
import { selectedTargets } from './targets';

const EXPORT = 'e1.1';
const GUESTS = 2;

/** A view's file name: the initiator's MAC without colons (docs/operations.md). */
const viewFileOf = (mac: string) => `${mac.replace(/:/g, '')}.img`;

const withViews = selectedTargets().filter((tu) => tu.daemon);
if (withViews.length === 0)
  t.pass('diskless-views', { skip: 'AOE_INTEROP_TARGETS selects no target with views (only aoe-target has them)' });
for (const target of withViews) {
  scenarioTest(t, target, 'diskless-views', async (t, ctx) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { guest } = ctx.harness;
    const x = ctx.extra;
    const topo = await ctx.topology({ mtu: 1500, targets: 1, guests: GUESTS });
    const ns = topo.targetNs[0];
    const mnt = await loopFs(t, 'xfs-reflink');
    const image = await buildRootImage(ctx.dir, path.join(mnt, 'golden.img'));
    const imageMd5 = ctx.md5Of(image, 0, ROOT_BYTES);
    const viewsDir = path.join(mnt, 'views');
    const runDir = ctx.path('run');
    fs.mkdirSync(runDir);
    const socket = path.join(runDir, 'lab.sock');
    const daemon = await ctx.startDaemon(
      ns,
      `[daemon]\nname = lab\nstate-dir = none\nrun-dir = ${runDir}\ncontrol-socket = ${socket}\nlog = stderr\nduplicate-probe-ms = 0\n\n` +
        `[export ${EXPORT}]\nfile = ${image}\ninterfaces = ${TARGET_IF}\nviews = per-initiator\nviews-dir = ${viewsDir}\n` +
        // As the lab recipe says: only the lab's machines may make views.
        `mac-mask = ${Array.from({ length: GUESTS }, (_, i) => guestMac(i)).join(' ')}\n`,
    );

    const guests = Array.from({ length: GUESTS }, (_, i) => {
      const mac = guestMac(i);
      const who = `guest ${i} (${mac}): `;
      const token = `persist-${i}-${crypto.randomBytes(6).toString('hex')}`;
      const q = ctx.qemu({
        ns: topo.guestNs,
        tap: topo.taps[i],
        mac,
        kernel: guest.kernel,
        initrd: guest.initrd,
        append: kernelAppend({ scenario: 'diskless', mtu: 1500 }),
        allowReboot: true,
        timeoutMs: 400 * 1000,
      });
      return { mac, who, token, q };
    });
    // Both at once, as a lab's machines come up: each conversation waits only for its own guest.
    const exits = await Promise.all(
      guests.map(async (g) => {
        try {
          await twoBoots(t, g.q, g.token, g.who);
        } catch (err) {
          t.fail(`${g.who}diskless boot did not get through: ${(err as Error).message}`, x);
        }
        return g.q.done;
      }),
    );
    for (const [i, g] of guests.entries()) {
      // The first boot's mount is where the view is made (at IDENTIFY, before the first read).
      const mounts = g.q.lines('step').filter((l) => l.fields.name === 'mount-root');
      t.comment(
        `${g.who}ran ${(exits[i].ms / 1000).toFixed(1)} s; mount-root took ${mounts.map((l) => `${Number(l.fields.cs) / 100} s`).join(', then ')}`,
      );
      for (const l of g.q.results) t.comment(`${g.who}serial: ${l.raw}`);
      // Reads dropped while the view was made would cost the driver its first retransmit timeout (~15 s).
      const firstMountS = mounts.length > 0 ? Number(mounts[0].fields.cs) / 100 : Infinity;
      t.ok(firstMountS < 5, `${g.who}first boot: the root is mounted in ${firstMountS} s, not after a retransmit timeout`, x);
      checkTwoBoots(t, g.q, exits[i], g.token, x, g.who);
    }

    // The operator's view of the lab: one view per machine.
    const ctl = await run(
      process.execPath,
      [path.join(repoRoot(), 'bin', 'vblade.js'), 'ctl', '--socket', socket, 'views', EXPORT],
      { netns: ns },
    );
    t.comment(`vblade ctl views ${EXPORT}: exit ${ctl.code}\n${ctl.stdout.trim()}${ctl.stderr.trim()}`);
    t.equal(ctl.code, 0, 'vblade ctl views succeeds', x);
    const listed = ctl.stdout
      .split('\n')
      .slice(1) // the header
      .map((line) => line.split('\t')[0])
      .filter(Boolean);
    t.same(
      listed,
      guests.map((g) => g.mac),
      'vblade ctl views lists one view per guest MAC',
      x,
    );

    // Stopped before its files are read: nothing is written to them any more.
    const stopped = await daemon.child.stop(10 * 1000);
    t.same(stopped, { code: 0, signal: null }, 'the daemon ends cleanly on SIGTERM', x);
    const daemonLog = daemon.child.output().split('\n');
    for (const l of daemonLog) if (/"mac":"/.test(l)) t.comment(`daemon: ${l}`);
    t.same(
      daemonLog.filter((l) => /"level":(4|5|6)0\b/.test(l)),
      [],
      'the daemon logged no warning or error',
      x,
    );

    t.equal(ctx.md5Of(image, 0, ROOT_BYTES), imageMd5, 'the golden image is unchanged (md5)', x);
    const imageCat = await run('debugfs', ['-R', 'cat /root/persist', image]);
    t.match(imageCat.stderr, /File not found/, 'the golden image has no /root/persist (debugfs)', x);
    const exportViews = path.join(viewsDir, EXPORT);
    // Missing when no view was made at all: the comparison says so rather than a throw.
    const viewFiles = fs.existsSync(exportViews) ? fs.readdirSync(exportViews).filter((f) => f.endsWith('.img')) : [];
    t.same(
      viewFiles.sort(),
      guests.map((g) => viewFileOf(g.mac)).sort(),
      `${exportViews} holds exactly one view file per guest MAC`,
      x,
    );
    for (const g of guests) {
      const view = path.join(exportViews, viewFileOf(g.mac));
      if (!fs.existsSync(view)) continue; // the listing above failed already
      const fsck = await run('e2fsck', ['-fn', view], { timeoutMs: 10 * 60 * 1000 });
      t.equal(fsck.code, 0, `${g.who}e2fsck -fn on its view file finds it clean`, {
        ...x,
        output: fsck.code ? fsck.stdout : undefined,
      });
      const cat = await run('debugfs', ['-R', 'cat /root/persist', view]);
      t.equal(cat.stdout.trim(), g.token, `${g.who}its view file holds its own /root/persist (debugfs)`, x);
    }
  });
}
