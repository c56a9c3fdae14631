// Scenario 3: a diskless workstation. The export holds an ext4 root file system
// (busybox, and guest/rootfs/init.sh as /sbin/init), built on the host with
// `mke2fs -d`. The guest's initramfs finds it over AoE, mounts it and
// switch_roots into it; its init starts a shell on the console, into which the
// host types: write a file, reboot; after the reboot, read the file back.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import t from 'tap';
import { run, runOk } from '../helpers/process';
import { guestScriptDir } from './lib/guest';
import { TARGET_IF } from './lib/net';
import { GuestLine } from './lib/qemu';
import { kernelAppend, MIB, ScenarioContext, scenarioTest } from './lib/scenario';
import { selectedTargets } from './targets';

const ROOT_BYTES = 64 * MIB;

/** A root file system image: static busybox with its applets linked in /bin, and /sbin/init. */
async function buildRootImage(ctx: ScenarioContext): Promise<string> {
  const dir = ctx.path('rootfs');
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'root', 'etc', 'mnt', 'run'])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  const applets = (await runOk('/bin/busybox', ['--list'])).stdout
    .split('\n')
    .filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  fs.copyFileSync(path.join(guestScriptDir(), 'rootfs', 'init.sh'), path.join(dir, 'sbin', 'init'));
  fs.chmodSync(path.join(dir, 'sbin', 'init'), 0o755);
  const image = ctx.exportFile('root.img', ROOT_BYTES);
  await runOk('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'aoeroot', '-d', dir, image], { timeoutMs: 10 * 60 * 1000 });
  return image;
}

for (const target of selectedTargets()) {
  scenarioTest(t, target, 'diskless-root', async (t, ctx) => {
    const { guest } = ctx.harness;
    const topo = await ctx.topology({ mtu: 1500, targets: 1 });
    const image = await buildRootImage(ctx);
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
    const shell = (l: GuestLine) => l.tag === 'diskless' && l.fields.phase === 'shell';
    try {
      const firstShell = await q.waitFor(shell, 150 * 1000);
      t.comment(`boot 1: shell from the export after ${(firstShell.atMs / 1000).toFixed(1)} s`);
      q.send(
        `echo $M diskless boot=1 shell=$0 pid=$$ token=${token}; echo ${token} > /root/persist; sync; mount -o remount,ro /; reboot -f\n`,
      );
      await q.waitFor((l) => l.tag === 'diskless' && l.fields.boot === '1', 30 * 1000);
      const secondShell = await q.waitFor((l) => shell(l) && l !== firstShell, 150 * 1000);
      t.comment(`boot 2: shell from the export after ${(secondShell.atMs / 1000).toFixed(1)} s`);
      q.send(`echo $M diskless boot=2 found=$(cat /root/persist); poweroff -f\n`);
    } catch (err) {
      t.fail(`diskless boot did not get through: ${(err as Error).message}`, x);
    }
    const exit = await q.done;
    t.comment(`guest ran ${(exit.ms / 1000).toFixed(1)} s`);
    for (const l of q.results) t.comment(`serial: ${l.raw}`);

    t.same(
      q.lines('watchdog').map((l) => l.raw),
      [],
      'no guest watchdog',
      x,
    );
    t.same(
      q.lines('fail').map((l) => l.raw),
      [],
      'no failed guest step',
      x,
    );
    const initramfs = q.results.filter((l) => l.tag === 'diskless' && l.fields.phase === 'initramfs');
    t.equal(initramfs.length, 2, 'the initramfs mounted the AoE root on both boots', x);
    const roots = q.results.filter((l) => l.tag === 'diskless' && l.fields.phase === 'root');
    t.equal(roots.length, 2, 'init ran from the export on both boots', x);
    for (const r of roots) {
      t.equal(r.fields.root, '/dev/etherd/e1.1:ext4', `/ is the AoE export (${r.fields.root})`, x);
      t.equal(r.fields.pid, '1', "the export's /sbin/init runs as pid 1", x);
    }
    t.equal(roots[0]?.fields.persist, 'none', 'first boot: no file yet', x);
    t.equal(
      q.results.find((l) => l.tag === 'diskless' && l.fields.boot === '1')?.fields.shell,
      '/bin/sh',
      'the shell typed into is /bin/sh from the export',
      x,
    );
    t.equal(roots[1]?.fields.persist, token, 'second boot: init sees the file written before the reboot', x);
    t.equal(
      q.results.find((l) => l.tag === 'diskless' && l.fields.boot === '2')?.fields.found,
      token,
      'second boot: the shell reads the file back',
      x,
    );
    t.equal(exit.timedOut, false, 'the guest powered off by itself', x);

    const fsck = await run('e2fsck', ['-fn', image], { timeoutMs: 10 * 60 * 1000 });
    t.equal(fsck.code, 0, 'e2fsck -fn on the export file finds it clean (host side)', {
      ...x,
      output: fsck.code ? fsck.stdout : undefined,
    });
    const cat = await run('debugfs', ['-R', 'cat /root/persist', image], { timeoutMs: 10 * 60 * 1000 });
    t.equal(cat.stdout.trim(), token, 'the file is in the export file (read on the host with debugfs)', x);
  });
}
