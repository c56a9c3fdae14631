// Soak: a long mixed load while the daemon's resident memory and open file
// descriptors are sampled from /proc. Used by scripts/reliability/soak.js.
//
// Load: three initiators run the verified load engine (mixed reads and
// writes, 16 in flight each); a fourth runs control traffic in a loop:
// discovery, IDENTIFY, config string sets (persisted: --state-dir), mask and
// reserve reads, FLUSH CACHE, and requests that take the error paths (reads
// past the end, unknown opcodes, bad config lengths, unknown commands).
// Every `flapEveryMs` the target's interface goes down for a second and comes
// back, every `mtuEveryMs` its MTU goes to 9000 and back: both make the
// daemon close and reopen its socket, so a leak there shows in the fds.

import { AoeClient, DiscoveredTarget } from '../../../src/client/client';
import { AtaError, AoeError, TimeoutError } from '../../../src/client/errors';
import { writeAtaRequest, writeConfigQuery } from '../../../src/client/requests';
import { sleep, TestLike } from '../../../lab/common';
import { tempDir } from '../../helpers/files';
import { procUsage } from './harness';
import { startTarget, waitLinkUp } from '../../helpers/targets';
import { checkFailures } from './checked-socket';
import { createRig, InitiatorResult, multiLoad } from './multi-load';

export interface SoakOptions {
  durationMs: number;
  sampleMs?: number;
  /** Samples before this count as warm-up (default: a fifth of the run, at most a minute). */
  warmupMs?: number;
  flapEveryMs?: number;
  mtuEveryMs?: number;
  log?: (line: string) => void;
}

export interface SoakSample {
  atS: number;
  rssKb: number;
  fds: number;
  controlOps: number;
}

export interface SoakReport {
  samples: SoakSample[];
  baselineRssKb: number;
  finalRssKb: number;
  rssGrowthPercent: number;
  maxRssKb: number;
  /** Lowest open-descriptor count in the baseline window and in the final window. */
  baselineFds: number;
  finalFds: number;
  maxFds: number;
  loads: InitiatorResult[];
  controlOps: number;
  controlErrors: number;
  flaps: number;
  mtuCycles: number;
  daemonAlive: boolean;
  problems: string[];
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

export async function soak(t: TestLike, o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? (() => undefined);
  const sampleMs = o.sampleMs ?? 5000;
  const warmupMs = o.warmupMs ?? Math.min(60000, o.durationMs / 5);
  const stateDir = tempDir(t, 'soak-state');
  const rig = await createRig(t, { initiators: 4, range: 4096 });
  // Restart with a state directory (config string sets are persisted to files).
  await rig.daemon.proc.stop();
  rig.daemon = await startTarget(t, rig.hub.target.ns, [
    '--state-dir',
    stateDir,
    String(rig.shelf),
    String(rig.slot),
    rig.hub.target.ifname,
    rig.file,
  ]);
  const pid = rig.daemon.pid;
  const target: DiscoveredTarget = await rig.clients[3].find(rig.shelf, rig.slot, 10000);
  const report: SoakReport = {
    samples: [],
    baselineRssKb: 0,
    finalRssKb: 0,
    rssGrowthPercent: 0,
    maxRssKb: 0,
    baselineFds: 0,
    finalFds: 0,
    maxFds: 0,
    loads: [],
    controlOps: 0,
    controlErrors: 0,
    flaps: 0,
    mtuCycles: 0,
    daemonAlive: true,
    problems: [],
  };
  const started = Date.now();
  const end = started + o.durationMs;
  let stop = false;

  const loads = multiLoad(rig, {
    who: [0, 1, 2],
    window: 16,
    durationMs: o.durationMs,
    readPercent: 60,
    timeoutMs: 300,
    maxRetries: 30,
  });

  const control = async (c: AoeClient): Promise<void> => {
    const raw = new Uint8Array(1100);
    const addr = { dst: target.mac, src: c.mac, shelf: rig.shelf, slot: rig.slot };
    let i = 0;
    while (!stop) {
      i++;
      try {
        await c.discover(rig.shelf, rig.slot, 300, true);
        await c.identify(target);
        await c.configForceSet(target, `soak ${i % 97}`);
        await c.maskRead(target);
        await c.reserveRead(target);
        await c.flush(target);
        await c.read(target, 3 * rig.range + (i % 1000), 2);
        // Error paths: past the end (IDNF), an unknown opcode (ABRT), a bad config length (BadArg), an unknown command (error 1).
        await c.ata(target, { command: 0x24, aflags: 0x40, sectorCount: 2, lba: rig.range * 4 + 10 });
        await c.ata(target, { command: 0xb0, sectorCount: 1 });
        writeConfigQuery(raw, 0, addr, c.newTag(), 3, Buffer.from('x'), 1024);
        await c.rawExchange(raw.subarray(0, 60), { timeoutMs: 200, max: 1 });
        writeAtaRequest(raw, 0, addr, c.newTag(), 0, 0, 1, 0xec, 0);
        raw[19] = 9;
        await c.rawExchange(raw.subarray(0, 60), { timeoutMs: 200, max: 1 });
        report.controlOps += 11;
      } catch (e) {
        if (!(e instanceof TimeoutError || e instanceof AtaError || e instanceof AoeError)) throw e;
        report.controlErrors++;
        await sleep(200);
      }
      await sleep(100);
    }
  };
  const controlDone = control(rig.clients[3]);

  const faults = async (): Promise<void> => {
    let nextFlap = started + (o.flapEveryMs ?? 60000);
    let nextMtu = started + (o.mtuEveryMs ?? 150000);
    while (!stop) {
      const now = Date.now();
      if (o.flapEveryMs !== 0 && now >= nextFlap && now < end - 10000) {
        nextFlap += o.flapEveryMs ?? 60000;
        await rig.hub.target.veth.down('a');
        await sleep(1000);
        await rig.hub.target.veth.up('a');
        await waitLinkUp(rig.hub.target.ns, rig.hub.target.ifname);
        report.flaps++;
      }
      if (o.mtuEveryMs !== 0 && now >= nextMtu && now < end - 15000) {
        nextMtu += o.mtuEveryMs ?? 150000;
        await rig.hub.setMtu(9000);
        await sleep(5000);
        await rig.hub.setMtu(1500);
        report.mtuCycles++;
      }
      await sleep(250);
    }
  };
  const faultsDone = faults();

  while (Date.now() < end) {
    await sleep(Math.min(sampleMs, Math.max(0, end - Date.now())));
    if (!rig.daemon.proc.running) {
      report.daemonAlive = false;
      report.problems.push(`the daemon exited: ${JSON.stringify(rig.daemon.proc.exitStatus)}\n${rig.daemon.proc.tail(20)}`);
      break;
    }
    const u = procUsage(pid);
    const s: SoakSample = { atS: (Date.now() - started) / 1000, rssKb: u.rssKb, fds: u.fds, controlOps: report.controlOps };
    report.samples.push(s);
    log(`${s.atS.toFixed(0).padStart(5)} s  RSS ${(s.rssKb / 1024).toFixed(1)} MiB  fds ${s.fds}  control ops ${s.controlOps}`);
  }
  stop = true;
  report.loads = await loads;
  await controlDone;
  await faultsDone;

  const after = report.samples.filter((s) => s.atS * 1000 >= warmupMs);
  // Baseline: the first quarter after the warm-up (at least three samples); final: the last samples, as many as half the baseline's.
  const baseSpan = Math.max(sampleMs * 3, (o.durationMs - warmupMs) / 4);
  const baseWindow = after.filter((s) => s.atS * 1000 < warmupMs + baseSpan);
  const last = after.slice(-Math.max(3, Math.ceil(baseWindow.length / 2)));
  report.baselineRssKb = mean(baseWindow.map((s) => s.rssKb));
  report.finalRssKb = mean(last.map((s) => s.rssKb));
  report.rssGrowthPercent =
    report.baselineRssKb > 0 ? ((report.finalRssKb - report.baselineRssKb) / report.baselineRssKb) * 100 : 0;
  report.maxRssKb = Math.max(...report.samples.map((s) => s.rssKb));
  // A descriptor open for a moment (a state file being written) may fall on a sample: compare the lowest counts.
  report.baselineFds = Math.min(...baseWindow.map((s) => s.fds));
  report.finalFds = Math.min(...last.map((s) => s.fds));
  report.maxFds = Math.max(...report.samples.map((s) => s.fds));
  for (const r of report.loads) {
    const e = r.result.errors;
    if (e.verify + e.short > 0) report.problems.push(`initiator ${r.index}: ${e.verify} wrong data, ${e.short} short replies`);
    if (checkFailures(r.checks) > 0)
      report.problems.push(`initiator ${r.index}: ${checkFailures(r.checks)} bad replies (${r.checks.first[0]})`);
  }
  if (report.rssGrowthPercent >= 10) report.problems.push(`RSS grew ${report.rssGrowthPercent.toFixed(1)} % (>= 10 %)`);
  if (report.finalFds > report.baselineFds)
    report.problems.push(`open fds grew from ${report.baselineFds} to ${report.finalFds}`);
  return report;
}
