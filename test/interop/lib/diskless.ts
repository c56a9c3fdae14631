// The diskless-root scenarios' shared parts (the ext4 root image they boot is
// built by lab/root-image.ts, which the storm bench's recorder uses too): the host's side of the conversation with the shell that init starts on the
// console (write a file, reboot, read it back, power off), and the checks of
// what the guest printed. test/interop/diskless.test.ts runs one guest on a
// plain export, test/interop/diskless-views.test.ts two guests on one export
// with per-initiator views.

import type { GuestLine, Qemu, QemuExit } from '../../../lab/qemu';
import type { TapTest } from './scenario';

/** Generous under TCG, where two guests booting at once share two cores. */
const BOOT_MS = 150 * 1000;

const isShell = (l: GuestLine) => l.tag === 'diskless' && l.fields.phase === 'shell';

/**
 * The host's side of a diskless guest's two boots: at the first shell, write
 * `token` to /root/persist, sync, remount / read-only and reboot; at the
 * second, read the file back and power off. `who` prefixes the comments.
 * Throws when a step is not reached in time.
 */
export async function twoBoots(t: TapTest, q: Qemu, token: string, who = ''): Promise<void> {
  const firstShell = await q.waitFor(isShell, BOOT_MS);
  t.comment(`${who}boot 1: shell from the export after ${(firstShell.atMs / 1000).toFixed(1)} s`);
  q.send(
    `echo $M diskless boot=1 shell=$0 pid=$$ token=${token}; echo ${token} > /root/persist; sync; mount -o remount,ro /; reboot -f\n`,
  );
  await q.waitFor((l) => l.tag === 'diskless' && l.fields.boot === '1', 30 * 1000);
  const secondShell = await q.waitFor((l) => isShell(l) && l !== firstShell, BOOT_MS);
  t.comment(`${who}boot 2: shell from the export after ${(secondShell.atMs / 1000).toFixed(1)} s`);
  q.send(`echo $M diskless boot=2 found=$(cat /root/persist); poweroff -f\n`);
}

/**
 * Checks what a guest that went through twoBoots printed: the AoE root was
 * mounted and ran init on both boots, no file on the first, `token` on the
 * second (seen by init and by the shell), and it powered off by itself.
 */
export function checkTwoBoots(t: TapTest, q: Qemu, exit: QemuExit, token: string, x: object, who = ''): void {
  t.same(
    q.lines('watchdog').map((l) => l.raw),
    [],
    `${who}no guest watchdog`,
    x,
  );
  t.same(
    q.lines('fail').map((l) => l.raw),
    [],
    `${who}no failed guest step`,
    x,
  );
  const initramfs = q.results.filter((l) => l.tag === 'diskless' && l.fields.phase === 'initramfs');
  t.equal(initramfs.length, 2, `${who}the initramfs mounted the AoE root on both boots`, x);
  const roots = q.results.filter((l) => l.tag === 'diskless' && l.fields.phase === 'root');
  t.equal(roots.length, 2, `${who}init ran from the export on both boots`, x);
  for (const r of roots) {
    t.equal(r.fields.root, '/dev/etherd/e1.1:ext4', `${who}/ is the AoE export (${r.fields.root})`, x);
    t.equal(r.fields.pid, '1', `${who}the export's /sbin/init runs as pid 1`, x);
  }
  t.equal(roots[0]?.fields.persist, 'none', `${who}first boot: no file yet`, x);
  t.equal(
    q.results.find((l) => l.tag === 'diskless' && l.fields.boot === '1')?.fields.shell,
    '/bin/sh',
    `${who}the shell typed into is /bin/sh from the export`,
    x,
  );
  t.equal(roots[1]?.fields.persist, token, `${who}second boot: init sees the file written before the reboot`, x);
  t.equal(
    q.results.find((l) => l.tag === 'diskless' && l.fields.boot === '2')?.fields.found,
    token,
    `${who}second boot: the shell reads the file back`,
    x,
  );
  t.equal(exit.timedOut, false, `${who}the guest powered off by itself`, x);
}
