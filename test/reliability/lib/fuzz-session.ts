// One fuzzing session against a live daemon, shared by fuzz.test.ts (100k
// frames in `npm test`) and scripts/reliability/fuzz.js (a million or more):
// namespaces and veth, a backing file with canaries around the export window,
// a pattern written through AoE into a protected range, the fuzzer, and the
// checks afterwards. On a crash or hang the frames of the last batches are
// replayed one by one against a fresh daemon to name the culprit.

import { openSync, readSync, closeSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { checkSectors, fillSectors } from '../../../src/client/pattern';
import type { TestLike } from '../../../lab/common';
import { tempDir } from '../../helpers/files';
import { createNetnsPair } from '../../../lab/netns';
import { findCrasher, FuzzStats, FuzzTarget, runFuzz } from './fuzz';
import { openClient, Rng } from './harness';
import { TargetKind, startTarget } from '../../helpers/targets';

export interface FuzzSessionOptions {
  seed: number;
  frames: number;
  mtu?: number;
  batch?: number;
  /** Exported sectors (default 16384). */
  exportSectors?: number;
  /** Protected sectors at the start of the export (default 1024). */
  protectSectors?: number;
  progressEvery?: number;
  log?: (line: string) => void;
  /** Fuzz Debian's vblade instead of ours ('vblade'): a control for the fuzzer. Default 'ours'. */
  kind?: TargetKind;
}

export interface FuzzSessionReport {
  stats: FuzzStats;
  daemonAlive: boolean;
  daemonExit?: string;
  /** Problems found after the fuzzing (empty when all is well). */
  problems: string[];
  /** The frame that killed or hung the daemon, as hex, when one was found. */
  crasher?: string;
  /** Sectors of the protected range read back through AoE and checked. */
  verifiedSectors: number;
}

const SHELF = 11;
const SLOT = 7;
const CANARY = 64;

function readRange(file: string, sector: number, count: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(count * 512);
    readSync(fd, b, 0, b.length, sector * 512);
    return b;
  } finally {
    closeSync(fd);
  }
}

export async function fuzzSession(t: TestLike, o: FuzzSessionOptions): Promise<FuzzSessionReport> {
  const mtu = o.mtu ?? 1500;
  const L = o.exportSectors ?? 16384;
  const P = o.protectSectors ?? 1024;
  const log = o.log ?? (() => undefined);
  const net = await createNetnsPair(t, { mtu, macA: '02:a0:00:00:00:0b', macB: '02:b0:00:00:00:0b' });
  const dir = tempDir(t, 'fuzz');
  const file = join(dir, 'disk.img');

  // File: CANARY random sectors | export (L sectors, zeros) | CANARY random sectors.
  const rng = new Rng(o.seed ^ 0xc0ffee);
  const head = Buffer.alloc(CANARY * 512);
  const tail = Buffer.alloc(CANARY * 512);
  rng.fill(head, 0, head.length);
  rng.fill(tail, 0, tail.length);
  const fd = openSync(file, 'w');
  writeSync(fd, head, 0, head.length, 0);
  writeSync(fd, tail, 0, tail.length, (CANARY + L) * 512);
  fsyncSync(fd);
  closeSync(fd);

  const args = ['-o', String(CANARY), '-l', String(L), String(SHELF), String(SLOT), net.targetIf, file];
  let daemon = await startTarget(t, net.target, args, { kind: o.kind });
  const client = await openClient(t, net.init, net.initIf, { timeoutMs: 1000, retries: 8, frameCount: 2048 });
  const found = await client.find(SHELF, SLOT, 10000);
  const target: FuzzTarget = { mac: found.mac, shelf: SHELF, slot: SLOT, sectors: daemon.sectors, mtu };

  // The protected range, written through AoE.
  const pattern = new Uint8Array(P * 512);
  fillSectors(pattern, 0, 0, P);
  await client.write(found, 0, pattern);
  const before = await client.read(found, 0, P);
  const problems: string[] = [];
  if (checkSectors(before, 0, 0, P) !== -1) problems.push('the protected range did not read back right before the fuzzing');

  const stats = await runFuzz({
    client,
    target,
    seed: o.seed,
    frames: o.frames,
    batch: o.batch,
    protect: [0, P],
    alive: () => daemon.proc.running,
    progressEvery: o.progressEvery,
    log,
  });

  const report: FuzzSessionReport = { stats, daemonAlive: daemon.proc.running, problems, verifiedSectors: 0 };
  if (!daemon.proc.running) report.daemonExit = `${JSON.stringify(daemon.proc.exitStatus)}\n${daemon.proc.tail(20)}`;

  if (stats.crashes > 0 || stats.hangs > 0) {
    problems.push(`${stats.crashes} crash(es), ${stats.hangs} hang(s) at frame ~${stats.generated} (seed ${o.seed})`);
    // Name the frame: a fresh daemon, the last batches one frame at a time.
    if (daemon.proc.running) await daemon.proc.stop();
    daemon = await startTarget(t, net.target, args, { kind: o.kind });
    const frames = stats.recent.flat();
    log(`replaying ${frames.length} frames one by one to find the culprit`);
    report.crasher = await findCrasher(client, target, frames, () => daemon.proc.running);
    if (report.crasher) problems.push(`culprit frame: ${report.crasher}`);
    return report;
  }
  if (stats.violations > 0) {
    for (const v of stats.firstViolations) problems.push(`bad reply (${v.problems.join('; ')}): ${v.hex.slice(0, 240)}`);
  }

  // Afterwards: the daemon answers, the protected range is intact through AoE and in the file, the canaries too.
  const id = await client.identify(found);
  if (id.sectors !== L) problems.push(`IDENTIFY reports ${id.sectors} sectors, not ${L}`);
  const after = await client.read(found, 0, P);
  const bad = checkSectors(after, 0, 0, P);
  if (bad !== -1) problems.push(`protected sector ${bad} changed (read through AoE)`);
  report.verifiedSectors = P;
  const onDisk = readRange(file, CANARY, P);
  if (checkSectors(onDisk, 0, 0, P) !== -1) problems.push('the protected range changed in the backing file');
  if (!readRange(file, 0, CANARY).equals(head)) problems.push('the canary before the export window (-o) changed');
  if (!readRange(file, CANARY + L, CANARY).equals(tail)) problems.push('the canary after the export window (-l) changed');
  // And it still stores: a write and read in the fuzz zone.
  const probe = new Uint8Array(4 * 512);
  fillSectors(probe, 0, L - 4, 4);
  await client.write(found, L - 4, probe);
  const back = await client.read(found, L - 4, 4);
  if (checkSectors(back, 0, L - 4, 4) !== -1) problems.push('a write after the fuzzing did not read back');
  report.daemonAlive = daemon.proc.running;
  if (!daemon.proc.running) problems.push('the daemon exited');
  return report;
}
