// Scenario 1: the Linux aoe driver (Debian's aoe.ko in a QEMU guest) against the
// target under test, at MTU 1500 and 9000: discovery, export size, data frame
// size, O_DIRECT integrity, ext4 round trip, and a dd throughput figure.
// At MTU 9000 our target's run goes on in the same boot with the "late" phase
// (guest/late.sh): a vbladed that starts after the driver was loaded, while
// the bridge drops its start-up announcement, must be discovered within its
// announce interval;
// then its backing file grows under a mounted ext4 (vblade ctl resize,
// aoe-revalidate, resize2fs online).

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { sleep } from '../../lab/common';
import { run } from '../../lab/process';
import { repoRoot } from '../../lab/guest';
import { TARGET_IF } from '../../lab/topology';
import type { Qemu } from '../../lab/qemu';
import { kernelAppend } from '../../lab/guest';
import { checkGuestEnd, MIB, scenarioTest, type ScenarioContext, type TapTest } from './lib/scenario';
import type { Topology } from '../../lab/topology';
import { selectedTargets } from './targets';
import { DEFAULT_TUNABLES } from '../../src/config/export-config';

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

// The late export: vbladed's default announce interval, sizes before and after the grow.
const LATE = { shelf: 2, slot: 1, mib: 64, grownMib: 160, fillMib: 80, waitS: 75 };
const ANNOUNCE_S = DEFAULT_TUNABLES.announceSeconds;

/** The host's half of guest/late.sh; returns what it saw, for the checks after the guest ends. */
async function lateHost(
  t: TapTest,
  ctx: ScenarioContext,
  topo: Topology,
  q: Qemu,
  file: string,
): Promise<{ ctl: string; openedMs: number }> {
  const ns = topo.targetNs[0];
  const runDir = ctx.path('late-run');
  fs.mkdirSync(runDir);
  const sock = path.join(runDir, 'late.sock');
  const conf = ctx.path('late.conf');
  fs.writeFileSync(
    conf,
    `[daemon]\nstate-dir = none\nrun-dir = ${runDir}\ncontrol-socket = ${sock}\nlog = stderr\n\n` +
      `[export e${LATE.shelf}.${LATE.slot}]\nfile = ${file}\ninterfaces = ${TARGET_IF}\n`,
  );
  await q.waitFor((l) => l.tag === 'late-ready', 600 * 1000);
  // A switch port that does not forward yet: the start-up announcement is lost.
  await topo.guestBroadcasts(false);
  const started = Date.now();
  ctx.startHelper(ns, 'late-target', [
    process.execPath,
    path.join(repoRoot(), 'bin', 'vbladed.js'),
    '--foreground',
    '--config',
    conf,
  ]);
  // Its start-up announcement must have gone out into the blocked port (the start can take seconds here).
  const logFile = ctx.path('late-target.log');
  while (!/interface open/.test(fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '')) {
    if (Date.now() - started > 60 * 1000) throw new Error(`the late vbladed did not open ${TARGET_IF} within 60 s`);
    await sleep(100);
  }
  const openAfter = Date.now() - started;
  await sleep(1000);
  await topo.guestBroadcasts(true);
  const openedMs = Date.now();
  q.send('late-open\n');
  t.comment(
    `late target opened ${TARGET_IF} ${(openAfter / 1000).toFixed(1)} s after its start while the bridge dropped broadcasts to the guest; 1 s later they pass again`,
  );

  await q.waitFor((l) => l.tag === 'late-grow-ready', 300 * 1000);
  fs.truncateSync(file, LATE.grownMib * MIB);
  // vblade ctl talks to the control socket only; run in the target's namespace all the same.
  const ctl = await run(
    process.execPath,
    [path.join(repoRoot(), 'bin', 'vblade.js'), 'ctl', '--socket', sock, 'resize', `e${LATE.shelf}.${LATE.slot}`],
    {
      netns: ns,
    },
  );
  t.comment(`vblade ctl resize: exit ${ctl.code}: ${ctl.stdout.trim()} ${ctl.stderr.trim()}`);
  q.send('grown\n');
  return { ctl: ctl.stdout.trim(), openedMs };
}

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
      const late = target.name === 'aoe-target' && mtu === 9000;
      const lateFile = late ? ctx.exportFile('late.img', LATE.mib * MIB) : '';
      const lateParams = late
        ? { late: 1, lshelf: LATE.shelf, lslot: LATE.slot, lwait: LATE.waitS, lfill: LATE.fillMib }
        : ({} as Record<string, number>);

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
          ...lateParams,
        }),
        timeoutMs: ((LONG ? 900 : 300) + (late ? 300 : 0)) * 1000,
      });
      let lateSeen: { ctl: string; openedMs: number } | undefined;
      if (late) {
        try {
          lateSeen = await lateHost(t, ctx, topo, q, lateFile);
        } catch (err) {
          t.fail(`the late phase did not run: ${(err as Error).message}`, ctx.extra);
        }
      }
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
      if (late) await checkLate(t, ctx, q, lateFile, lateSeen);
      t.comment(
        `throughput: ${target.name} MTU ${mtu} (${ctx.harness.accel}, ${tputMib(mtu)} MiB O_DIRECT dd, 1 MiB requests): ${tput.join(', ')}`,
      );
    });
  }
}

/** What the user sees of the late phase: discovery within the announce interval, the grown size, the data. */
async function checkLate(
  t: TapTest,
  ctx: ScenarioContext,
  q: Qemu,
  file: string,
  seen: { ctl: string; openedMs: number } | undefined,
): Promise<void> {
  const x = ctx.extra;
  const d = q.first('late-discover');
  const s = Number(d.cs) / 100;
  ctx.notes.late_discovery_s = s;
  t.comment(
    `late discovery: e${LATE.shelf}.${LATE.slot} appeared ${s.toFixed(2)} s after the port opened (announce interval ${ANNOUNCE_S} s; Linux asks every 60 s)`,
  );
  t.equal(d.dev, `/dev/etherd/e${LATE.shelf}.${LATE.slot}`, 'the guest found the target that started after its driver', x);
  // The next announcement leaves at most ANNOUNCE_S after the broadcasts pass again; the TCG guest then
  // takes a few seconds for IDENTIFY and the device node. The driver's own rounds come every 60 s.
  t.ok(s <= ANNOUNCE_S + 5, `within the announce interval: ${s.toFixed(2)} s <= ${ANNOUNCE_S} s + 5 s`, x);

  const g = q.first('late-grow');
  t.comment(`late grow: ${JSON.stringify(g)}; ctl: ${seen?.ctl}`);
  t.match(
    seen?.ctl ?? '',
    new RegExp(`^e${LATE.shelf}\\.${LATE.slot}: .*${(LATE.grownMib * MIB) / 512} sectors \\(${LATE.grownMib} MiB\\)`),
    'vblade ctl resize prints the new size',
    x,
  );
  t.equal(Number(g.size0), LATE.mib * MIB, 'the guest saw the old size first', x);
  t.equal(Number(g.size1), LATE.grownMib * MIB, 'after aoe-revalidate the mounted disk has the new size', x);
  t.same(
    g.dmesg_sectors?.split(','),
    [String((LATE.mib * MIB) / 512), String((LATE.grownMib * MIB) / 512)],
    'dmesg: "has N sectors" before and after',
    x,
  );
  t.ok(Number(g.fs_kb1) > Number(g.fs_kb0) * 2, `resize2fs grew the mounted ext4 (${g.fs_kb0} -> ${g.fs_kb1} KiB)`, x);
  t.equal(g.verified, '1', `data before the grow and ${LATE.fillMib} MiB written past the old end verify after a remount`, x);
  const fsck = await run('e2fsck', ['-fn', file], { timeoutMs: 10 * 60 * 1000 });
  t.equal(fsck.code, 0, 'e2fsck -fn on the grown file finds it clean (host side)', {
    ...x,
    diagnostic: fsck.code !== 0,
    output: fsck.stdout,
  });
}
