// Scenario 1: the Linux aoe driver (Debian's aoe.ko in a QEMU guest) against the
// target under test, at MTU 1500 and 9000: discovery, export size, data frame
// size, O_DIRECT integrity, ext4 round trip, and a dd throughput figure.

import t from 'tap';
import { run } from '../helpers/process';
import { TARGET_IF } from './lib/net';
import { checkGuestEnd, kernelAppend, MIB, scenarioTest } from './lib/scenario';
import { selectedTargets } from './targets';

const LONG = !!process.env.AOE_INTEROP_LONG;

// Export layout in MiB: ext4 | host-written region | throughput region | ... | O_DIRECT pattern (last 8 MiB).
const FS_MIB = 96;
const KNOWN_OFF = 96;
const KNOWN_MIB = 8;
const TPUT_OFF = 104;
// MTU 1500 moves 8.5 times as many frames per MiB, each costly under TCG
const tputMib = (mtu: number) => (LONG ? 1024 : mtu === 1500 ? 32 : 64);
const PAT_MIB = 8;
const EXPORT_MIB = Math.max(256, TPUT_OFF + tputMib(9000) + PAT_MIB + 8);
const PAT_OFF = EXPORT_MIB - PAT_MIB;
// not a multiple of a MiB, so that a target that rounds the size is caught
const EXPORT_BYTES = EXPORT_MIB * MIB + 7 * 512;

/** The payload the driver should choose: min(MTU-36 rounded down to sectors, the target's sector count) — here the MTU bounds it. */
function expectedFrameBytes(mtu: number): number {
  return Math.floor((mtu - 36) / 512) * 512;
}

for (const target of selectedTargets()) {
  for (const mtu of [1500, 9000]) {
    const scenario = mtu === 1500 ? 'linux-mtu1500' : 'linux-mtu9000';
    scenarioTest(t, target, scenario, async (t, ctx) => {
      const { guest } = ctx.harness;
      const topo = await ctx.topology({ mtu, targets: 1 });
      const file = ctx.exportFile('export.img', EXPORT_BYTES);
      const knownMd5 = ctx.fillRandom(file, KNOWN_OFF * MIB, KNOWN_MIB * MIB);
      await ctx.startTarget(topo.targetNs[0], ['1', '1', TARGET_IF, file]);

      const q = ctx.qemu({
        ns: topo.guestNs,
        kernel: guest.kernel,
        initrd: guest.initrd,
        append: kernelAppend({
          scenario: 'linux',
          shelf: 1,
          slot: 1,
          mtu,
          knownoff: KNOWN_OFF,
          knownmib: KNOWN_MIB,
          patoff: PAT_OFF,
          patmib: PAT_MIB,
          fsmib: FS_MIB,
          tputoff: TPUT_OFF,
          tputmib: tputMib(mtu),
        }),
        timeoutMs: (LONG ? 900 : 300) * 1000,
      });
      const exit = await q.done;
      t.comment(`guest ran ${(exit.ms / 1000).toFixed(1)} s`);
      for (const l of q.results) t.comment(`serial: ${l.raw}`);
      const x = ctx.extra;

      checkGuestEnd(t, ctx, q, exit);
      t.ok(q.first('discover').dev, 'the driver discovered e1.1', x);
      t.equal(Number(q.first('size').bytes), EXPORT_BYTES, 'device size equals the export size', x);
      t.equal(
        Number(q.first('frames').bytes),
        expectedFrameBytes(mtu),
        `driver logs "setting ${expectedFrameBytes(mtu)} byte data frames"`,
        x,
      );
      t.equal(q.first('known').md5, knownMd5, 'O_DIRECT read of host-written data matches', x);
      const integ = q.first('integrity');
      t.ok(integ.written, 'integrity step ran', x);
      t.equal(integ.readback, integ.written, 'O_DIRECT read-back equals what was written', x);
      t.equal(ctx.md5Of(file, PAT_OFF * MIB, PAT_MIB * MIB), integ.written, 'the export file holds what the guest wrote', x);
      t.equal(q.first('ext4').verified, '1', 'ext4 files verify after unmount and remount', x);
      const fsck = await run('e2fsck', ['-fn', file], { timeoutMs: 10 * 60 * 1000 });
      t.equal(fsck.code, 0, 'e2fsck -fn on the export file finds it clean (host side)', {
        ...x,
        diagnostic: fsck.code !== 0,
        output: fsck.stdout,
      });

      const tput = q.lines('tput').map((l) => {
        const mibs = Number(l.fields.bytes) / MIB / (Number(l.fields.cs) / 100);
        ctx.notes[`${l.fields.dir}_MiBps`] = Number(mibs.toFixed(1));
        return `${l.fields.dir} ${mibs.toFixed(1)} MiB/s`;
      });
      t.comment(
        `throughput: ${target.name} MTU ${mtu} (${ctx.harness.accel}, ${tputMib(mtu)} MiB O_DIRECT dd, 1 MiB requests): ${tput.join(', ')}`,
      );
    });
  }
}
