// Isolation: one host's data and control never reach another.
//  - MAC mask: members run a verified load while non-members run loads of
//    their own and one floods hostile frames (junk writes over the members'
//    data, mask edits adding itself, reserve and config force sets): the
//    non-members get no reply at all, and nothing they sent has any effect.
//  - Reservations: holders run a verified load; a non-holder's load gets
//    AoE error 6 for every request; a flood of junk writes and reserve sets
//    changes nothing.
//  - Read-only: a write load from every initiator plus hostile frames and
//    fuzzing leave the backing file byte for byte as it was.
// Every reply seen anywhere obeys the reply rules, zero padding included.

import t, { type Test } from 'tap';
import { checkSectors } from '../../src/client/pattern';
import { parseMac } from '../../src/client/mac';
import { readFileSync } from 'node:fs';
import { requireRoot } from '../../lab/netns';
import { checkFailures } from './lib/checked-socket';
import { flood, hostileFrames } from './lib/flood';
import { runFuzz } from './lib/fuzz';
import { fileHash } from './lib/harness';
import { startTarget } from '../helpers/targets';
import { createRig, describe, multiLoad, Rig } from './lib/multi-load';
import { initMac } from './lib/topology';

const N = 6;
const SECONDS = Number(process.env.AOET_ISOLATION_SECONDS ?? 5);

function patternIntact(rig: Rig): number {
  const data = readFileSync(rig.file);
  return checkSectors(data, 0, 0, data.length / 512);
}

async function restart(t: Test, rig: Rig, options: string[], discoverers: number): Promise<void> {
  await rig.daemon.proc.stop();
  rig.daemon = await startTarget(t, rig.hub.target.ns, [
    ...options,
    String(rig.shelf),
    String(rig.slot),
    rig.hub.target.ifname,
    rig.file,
  ]);
  rig.targets.length = 0;
  for (let i = 0; i < discoverers; i++) rig.targets.push(await rig.clients[i].find(rig.shelf, rig.slot, 10000));
}

if (requireRoot(t)) {
  let rig: Rig;
  const members = [0, 1, 2].map(initMac);
  t.before(async () => {
    rig = await createRig(t, { initiators: N, range: 2048, options: ['-m', members.join(',')], discoverers: 3 });
  });

  t.test('MAC mask: members served, non-members ignored, under load and a hostile flood', async (t) => {
    const target = rig.targets[0];
    const ft = { mac: target.mac, shelf: rig.shelf, slot: rig.slot, sectors: rig.range * N, mtu: 1500 };
    t.same(await rig.clients[0].maskRead(target), members, 'the mask holds the three members');
    const flooder = rig.clients[5];
    const templates = hostileFrames(
      { dst: target.mac, src: flooder.mac, shelf: rig.shelf, slot: rig.slot },
      { lba: 0, span: rig.range * 3, maskAdd: true, reserveForce: true, configSet: true },
    );
    // Also from forged non-member addresses, and as broadcasts.
    const forged = hostileFrames(
      { dst: new Uint8Array(6).fill(0xff), src: parseMac('02:66:66:66:66:66'), shelf: 0xffff, slot: 0xff },
      { lba: 0, span: rig.range * 3, maskAdd: true, reserveForce: true, configSet: true },
    );
    const [loads, fl] = await Promise.all([
      multiLoad(rig, { who: [0, 1, 2, 3, 4], window: 16, durationMs: SECONDS * 1000, maxRetries: 2 }),
      flood(flooder, [...templates, ...forged], SECONDS * 1000, ft),
    ]);
    for (const line of describe(loads)) t.comment(line);
    t.comment(`flood: ${fl.sent} hostile frames sent, ${fl.replies} replies`);
    for (const r of loads.slice(0, 3)) {
      const e = r.result.errors;
      t.ok(
        r.result.ops > 0 && e.aoe + e.ata + e.verify + e.short + e.timeouts === 0,
        `member ${r.index}: ${r.result.ops} requests, all answered and verified`,
      );
      t.equal(
        checkFailures(r.checks),
        0,
        `member ${r.index}: every reply matches its request${r.checks.first.length ? `: ${r.checks.first[0]}` : ''}`,
      );
    }
    for (const r of loads.slice(3)) {
      t.equal(r.checks.replies, 0, `non-member ${r.index}: not one reply (${r.result.errors.timeouts} requests timed out)`);
      t.equal(r.result.ops, 0, `non-member ${r.index}: nothing completed`);
    }
    t.equal(fl.replies, 0, 'the flooder got no reply to anything');
    t.same(await rig.clients[0].maskRead(target), members, 'the mask is unchanged');
    t.same(await rig.clients[1].reserveRead(target), [], 'no reservation was made');
    t.equal(await rig.clients[2].configRead(target), '', 'the config string was not set');
    t.equal(patternIntact(rig), -1, 'the backing file still holds the pattern everywhere: no junk write landed');
    t.ok(rig.daemon.proc.running, 'the daemon is still running');
  });

  t.test('reservation: holders served, others refused with error 6, floods change nothing', async (t) => {
    await restart(t, rig, [], N);
    const target = rig.targets[0];
    const ft = { mac: target.mac, shelf: rig.shelf, slot: rig.slot, sectors: rig.range * N, mtu: 1500 };
    const holders = [initMac(0), initMac(1)];
    t.same(await rig.clients[0].reserveSet(target, holders), holders, 'initiator 0 reserves for 0 and 1');
    const flooder = rig.clients[5];
    const templates = hostileFrames(
      { dst: target.mac, src: flooder.mac, shelf: rig.shelf, slot: rig.slot },
      { lba: 0, span: rig.range * 2 },
    );
    const [loads, fl] = await Promise.all([
      multiLoad(rig, { who: [0, 1, 2, 3], window: 16, durationMs: SECONDS * 1000 }),
      flood(flooder, templates, SECONDS * 1000, ft),
    ]);
    for (const line of describe(loads)) t.comment(line);
    t.comment(
      `flood: ${fl.sent} frames, ${fl.replies} replies: errors ${JSON.stringify(fl.aoeErrors)}, clean ${JSON.stringify(fl.cleanByCommand)}`,
    );
    for (const r of loads.slice(0, 2)) {
      const e = r.result.errors;
      t.ok(
        r.result.ops > 0 && e.aoe + e.ata + e.verify + e.short + e.timeouts === 0,
        `holder ${r.index}: ${r.result.ops} requests, all answered and verified`,
      );
      t.equal(checkFailures(r.checks), 0, `holder ${r.index}: every reply matches its request`);
    }
    for (const r of loads.slice(2)) {
      const e = r.result.errors;
      t.ok(e.aoe > 0 && e.aoe === e.aoeByCode[6], `non-holder ${r.index}: ${e.aoe} requests refused, every one with AoE error 6`);
      t.equal(r.result.ops, 0, `non-holder ${r.index}: nothing completed`);
      t.equal(checkFailures(r.checks), 0, `non-holder ${r.index}: the error replies are well formed (padding zero)`);
    }
    t.equal(
      fl.violations,
      0,
      `every reply to the flood obeys the reply rules${fl.firstViolation ? `: ${fl.firstViolation}` : ''}`,
    );
    t.ok((fl.aoeErrors[6] ?? 0) > 0, 'junk writes, reads and reserve sets were refused with error 6');
    t.equal(fl.cleanByCommand[0] ?? 0, 0, 'no ATA command of the flooder succeeded');
    t.equal(fl.cleanByCommand[3] ?? 0, 0, 'no reserve set of the flooder succeeded');
    t.same(await rig.clients[0].reserveRead(target), holders, 'the reservation is unchanged');
    t.equal(patternIntact(rig), -1, 'the backing file still holds the pattern everywhere');
    t.same(await rig.clients[0].release(target), [], 'the holder releases');
  });

  t.test('read-only export: write loads, hostile frames and fuzzing change no byte', async (t) => {
    await restart(t, rig, ['-r'], N);
    const target = rig.targets[0];
    const ft = { mac: target.mac, shelf: rig.shelf, slot: rig.slot, sectors: rig.range * N, mtu: 1500 };
    const before = fileHash(rig.file);
    const flooder = rig.clients[5];
    const templates = hostileFrames(
      { dst: target.mac, src: flooder.mac, shelf: rig.shelf, slot: rig.slot },
      { lba: 0, span: rig.range * N, configSet: true, reserve: false },
    );
    const [loads, fl] = await Promise.all([
      multiLoad(rig, { who: [0, 1, 2, 3], window: 16, durationMs: SECONDS * 1000, op: 'write', verify: 'none' }),
      flood(flooder, templates, SECONDS * 1000, ft),
    ]);
    const fz = await runFuzz({
      client: rig.clients[4],
      target: ft,
      seed: 0x7e0,
      frames: 20000,
      protect: [0, 0],
      bridged: true,
      alive: () => rig.daemon.proc.running,
    });
    t.comment(
      `write loads: ${loads.map((r) => r.result.errors.ata).join(', ')} refused writes; flood ${fl.sent} frames; fuzz ${fz.sent} frames`,
    );
    for (const r of loads) {
      t.ok(
        r.result.errors.ata > 0 && r.result.ops === 0,
        `initiator ${r.index}: every write refused with an ATA error (${r.result.errors.ata})`,
      );
      t.equal(checkFailures(r.checks), 0, `initiator ${r.index}: error replies well formed`);
    }
    t.equal(fl.violations + fz.violations, 0, 'every reply obeys the reply rules');
    t.equal(fz.crashes + fz.hangs, 0, 'the fuzzing neither crashed nor hung the daemon');
    t.ok(rig.daemon.proc.running, 'the daemon is still running');
    t.equal(fileHash(rig.file), before, 'the backing file is byte for byte unchanged (SHA-256)');
    t.equal(checkSectors(await rig.clients[0].read(target, 0, 64), 0, 0, 64), -1, 'and reads still serve it');
  });
}
