// Crash consistency: kill -9 the daemon during concurrent writes, then check
// what every acknowledged write left behind. Used by crash.test.ts (a few
// kills) and scripts/reliability/crash.js (50 or more).
//
// The disk is split into blocks of BLOCK sectors. Writers keep `window`
// writes in flight, at most one per block, each carrying a new version of its
// block: every sector reads "CRSH", its LBA (8 bytes), the version (4 bytes)
// and 496 bytes generated from (LBA, version), so a sector identifies exactly
// which write put it there and any damage shows.
//
// After each SIGKILL two things are checked:
//  1. Process crash: the backing file, read directly, holds every
//     acknowledged write (a write the daemon acknowledged has reached the
//     kernel; a dead process cannot take it back), with or without -s.
//  2. Power loss, simulated: the daemon ran with AOET_TEST_IO_JOURNAL
//     (src/backend/fault-io.ts), a record of every write and fdatasync in the
//     order the engine saw them. A write is durable when it completed before
//     an fdatasync that was submitted after it and succeeded. Every sector
//     touched by a write that was not durable is put back to its last durable
//     contents, as if the machine had lost power at the moment of the kill;
//     then the daemon is restarted and every block is read through AoE.
//     With -s every acknowledged write must still be there. Without -s only
//     writes acknowledged before a FLUSH CACHE that was then answered must
//     be; the others are counted as lost (what docs/reliability.md describes).

import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AoeClient, DiscoveredTarget } from '../../../src/client/client';
import { sleep, TestLike } from '../../../lab/common';
import { sparseFile, tempDir } from '../../helpers/files';
import { createNetnsPair } from '../../../lab/netns';
import { openClient, Rng } from './harness';
import { RunningTarget, startTarget } from '../../helpers/targets';

export const BLOCK = 2;
const MAGIC = [0x43, 0x52, 0x53, 0x48]; // "CRSH"

function seedOf(lba: number, version: number): number {
  let h = Math.imul(lba ^ 0x2545f491, 0x9e3779b1) ^ Math.imul(version + 0x68e31da4, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h || 0x1234567;
}

/** Writes the record of (lba, version) into buf[off..off+512). Version 0 is all zeros (never written). */
export function fillRecord(buf: Uint8Array, off: number, lba: number, version: number): void {
  if (version === 0) {
    buf.fill(0, off, off + 512);
    return;
  }
  buf.set(MAGIC, off);
  let v = lba;
  for (let i = 0; i < 8; i++) {
    buf[off + 4 + i] = v % 256;
    v = Math.floor(v / 256);
  }
  buf[off + 12] = version & 0xff;
  buf[off + 13] = (version >>> 8) & 0xff;
  buf[off + 14] = (version >>> 16) & 0xff;
  buf[off + 15] = version >>> 24;
  let x = seedOf(lba, version);
  for (let p = off + 16; p < off + 512; p += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[p] = x & 0xff;
    buf[p + 1] = (x >>> 8) & 0xff;
    buf[p + 2] = (x >>> 16) & 0xff;
    buf[p + 3] = x >>> 24;
  }
}

/** The version a sector holds (0: all zeros), or -1 when it is no intact record of this LBA. */
export function recordVersion(buf: Uint8Array, off: number, lba: number): number {
  let zero = true;
  for (let i = 0; i < 512; i++) {
    if (buf[off + i] !== 0) {
      zero = false;
      break;
    }
  }
  if (zero) return 0;
  const version = (buf[off + 12] | (buf[off + 13] << 8) | (buf[off + 14] << 16) | (buf[off + 15] << 24)) >>> 0;
  const want = new Uint8Array(512);
  fillRecord(want, 0, lba, version);
  for (let i = 0; i < 512; i++) if (buf[off + i] !== want[i]) return -1;
  return version;
}

/** Version in the 16-byte head of a write, as the journal shows it ("CRSH" + LBA + version). */
function headVersion(hex: string): number {
  if (hex.length < 32 || !hex.startsWith('43525348')) return -1;
  const b = Buffer.from(hex, 'hex');
  return b.readUInt32LE(12);
}

interface JournalWrite {
  sector: number;
  count: number;
  version: number;
  completed: number; // journal line of its successful completion, or -1
}

/**
 * Reads a journal: the writes submitted, and for each sector the version of
 * its last durable write (if any) and whether any write to it was not durable.
 */
export function analyseJournal(text: string): {
  writes: JournalWrite[];
  durable: Map<number, number>;
  volatile: Set<number>;
  syncs: number;
} {
  const lines = text.split('\n');
  const writes: JournalWrite[] = [];
  const open = new Map<string, JournalWrite[]>();
  const syncSubmitted = new Map<string, number>();
  let durableBefore = -1;
  let syncs = 0;
  for (let i = 0; i < lines.length; i++) {
    const f = lines[i].split(' ');
    if (f[0] === 'w') {
      const w: JournalWrite = {
        sector: Number(f[2]) / 512,
        count: Number(f[3]) / 512,
        version: headVersion(f[4] ?? ''),
        completed: -1,
      };
      writes.push(w);
      const key = `${f[2]} ${f[3]}`;
      if (!open.has(key)) open.set(key, []);
      open.get(key)!.push(w);
    } else if (f[0] === 'W') {
      const list = open.get(`${f[2]} ${f[3]}`);
      const w = list?.shift();
      if (w && Number(f[4]) === Number(f[3])) w.completed = i;
    } else if (f[0] === 's') {
      syncSubmitted.set(f[2], i);
    } else if (f[0] === 'S') {
      const at = syncSubmitted.get(f[2]);
      if (at !== undefined && Number(f[3]) === 0) {
        durableBefore = Math.max(durableBefore, at);
        syncs++;
      }
    }
  }
  const durable = new Map<number, number>();
  const volatile = new Set<number>();
  // In order of completion: a later durable write to a sector supersedes an earlier one.
  const done = writes.filter((w) => w.completed >= 0 && w.completed < durableBefore).sort((a, b) => a.completed - b.completed);
  for (const w of done) for (let s = 0; s < w.count; s++) durable.set(w.sector + s, w.version);
  for (const w of writes) {
    if (w.completed >= 0 && w.completed < durableBefore) continue;
    for (let s = 0; s < w.count; s++) volatile.add(w.sector + s);
  }
  return { writes, durable, volatile, syncs };
}

export interface CrashOptions {
  rounds: number;
  /** -s on the daemon. */
  sync: boolean;
  /** Blocks of BLOCK sectors on the disk (default 512). */
  blocks?: number;
  /** Writes in flight (default 16). */
  window?: number;
  /** Without -s: send FLUSH CACHE this often (ms; 0 = never; default 100). */
  flushEveryMs?: number;
  /** The kill comes this long after the first acknowledgement (random in [min, max] ms). */
  killAfterMs?: [number, number];
  seed?: number;
  log?: (line: string) => void;
}

export interface CrashRound {
  round: number;
  acked: number;
  sent: number;
  flushes: number;
  /** Sectors put back by the simulated power loss. */
  restored: number;
  /** Durable fdatasyncs in the journal. */
  syncs: number;
  /** Acknowledged writes (latest per block) missing from the file right after the kill. */
  lostOnKill: number;
  /** Acknowledged writes missing after the simulated power loss (allowed only without -s, beyond the last FLUSH). */
  lostOnPowerLoss: number;
  /** Of those, ones acknowledged before an answered FLUSH CACHE (never allowed). */
  lostFlushed: number;
  /** Sectors that are no intact record, or newer than anything sent. */
  corrupt: number;
  problems: string[];
}

export interface CrashReport {
  rounds: CrashRound[];
  kills: number;
  ackedWrites: number;
  /** Checks of an acknowledged write's survival: the latest per block per round, once in the file after the kill and once through AoE after the restart. */
  verifiedWrites: number;
  problems: string[];
}

const SHELF = 31;
const SLOT = 9;

export async function crashRounds(t: TestLike, o: CrashOptions): Promise<CrashReport> {
  const B = o.blocks ?? 512;
  const window = o.window ?? 16;
  const flushEvery = o.sync ? 0 : (o.flushEveryMs ?? 100);
  const [kMin, kMax] = o.killAfterMs ?? [150, 900];
  const log = o.log ?? (() => undefined);
  const rng = new Rng(o.seed ?? 0xc4a5);
  const net = await createNetnsPair(t, { mtu: 1500, macA: '02:a0:00:00:00:1f', macB: '02:b0:00:00:00:1f' });
  const dir = tempDir(t, 'crash');
  const file = await sparseFile(t, B * BLOCK * 512, { dir });
  const args = [...(o.sync ? ['-s'] : []), String(SHELF), String(SLOT), net.targetIf, file];

  const sectors = B * BLOCK;
  /** Version each sector holds at the start of the round (durable baseline). */
  const known = new Uint32Array(sectors);
  /** Highest version ever sent per block (versions only grow). */
  const sent = new Uint32Array(B);
  const report: CrashReport = { rounds: [], kills: 0, ackedWrites: 0, verifiedWrites: 0, problems: [] };

  const startDaemon = async (
    journal: string,
    label: string,
  ): Promise<{ d: RunningTarget; client: AoeClient; target: DiscoveredTarget }> => {
    const d = await startTarget(t, net.target, args, { env: { AOET_TEST_IO_JOURNAL: journal }, label });
    const client = await openClient(t, net.init, net.initIf, { timeoutMs: 1000, retries: 6 });
    const target = await client.find(SHELF, SLOT, 10000);
    return { d, client, target };
  };
  let cur = await startDaemon(join(dir, 'journal-1'), 'vblade#1');

  for (let round = 1; round <= o.rounds; round++) {
    const journal = join(dir, `journal-${round}`);
    const { d, client, target } = cur;
    const r: CrashRound = {
      round,
      acked: 0,
      sent: 0,
      flushes: 0,
      restored: 0,
      syncs: 0,
      lostOnKill: 0,
      lostOnPowerLoss: 0,
      lostFlushed: 0,
      corrupt: 0,
      problems: [],
    };
    const acked = new Uint32Array(B);
    const ackedBeforeFlush = new Uint32Array(B);
    const roundStart = sent.slice();
    const busy = new Uint8Array(B);
    let stop = false;
    let firstAck: () => void = () => undefined;
    const gotFirstAck = new Promise<void>((res) => (firstAck = res));

    const writer = async (): Promise<void> => {
      const buf = new Uint8Array(BLOCK * 512);
      while (!stop) {
        let b = rng.int(B);
        for (let k = 0; busy[b] && k < B; k++) b = (b + 1) % B;
        if (busy[b]) {
          await sleep(1);
          continue;
        }
        busy[b] = 1;
        const v = ++sent[b];
        r.sent++;
        for (let s = 0; s < BLOCK; s++) fillRecord(buf, s * 512, b * BLOCK + s, v);
        try {
          await client.write(target, b * BLOCK, buf);
        } catch {
          return; // the daemon is gone (or the client closed): this write stays unacknowledged
        } finally {
          busy[b] = 0;
        }
        // A reply that came in after the kill signal was still sent by the daemon: it counts.
        acked[b] = Math.max(acked[b], v);
        r.acked++;
        firstAck();
      }
    };
    const flusher = async (): Promise<void> => {
      while (!stop && flushEvery > 0) {
        await sleep(flushEvery);
        if (stop) return;
        const snap = acked.slice();
        try {
          await client.flush(target);
        } catch {
          return;
        }
        for (let b = 0; b < B; b++) if (snap[b] > ackedBeforeFlush[b]) ackedBeforeFlush[b] = snap[b];
        r.flushes++;
      }
    };
    const loops = [...Array.from({ length: window }, writer), flusher()];
    await Promise.race([gotFirstAck, sleep(20000)]);
    await sleep(rng.range(kMin, kMax));
    d.proc.signal('SIGKILL');
    await d.proc.exited;
    report.kills++;
    stop = true;
    client.close();
    await Promise.allSettled(loops);
    // io_uring finishes or cancels the dead process's operations before it is reaped; a moment more does no harm.
    await sleep(50);
    report.ackedWrites += r.acked;

    // 1. Process crash: the file holds every acknowledged write.
    const fileNow = readAll(file, sectors);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < BLOCK; s++) {
        const lba = b * BLOCK + s;
        const v = recordVersion(fileNow, lba * 512, lba);
        if (v < 0 || v > sent[b]) r.corrupt++;
        else if (acked[b] > 0 && v < acked[b]) r.lostOnKill++;
      }
      if (acked[b] > 0) report.verifiedWrites++;
    }

    // 2. Power loss: undo every write the journal does not show as durable.
    const j = analyseJournal(existsSync(journal) ? readFileSync(journal, 'utf8') : '');
    r.syncs = j.syncs;
    const fd = openSync(file, 'r+');
    const sec = new Uint8Array(512);
    for (const s of j.volatile) {
      if (s >= sectors) continue;
      const v = j.durable.get(s) ?? known[s];
      fillRecord(sec, 0, s, v);
      writeSync(fd, sec, 0, 512, s * 512);
      r.restored++;
    }
    fsyncSync(fd);
    closeSync(fd);

    // Restart (this daemon serves the next round) and read everything back through AoE.
    cur = await startDaemon(join(dir, `journal-${round + 1}`), `vblade#${round + 1}`);
    const all = await cur.client.read(cur.target, 0, sectors);
    for (let b = 0; b < B; b++) {
      let lostHere = false;
      for (let s = 0; s < BLOCK; s++) {
        const lba = b * BLOCK + s;
        const v = recordVersion(all, lba * 512, lba);
        if (v < 0 || v > sent[b]) {
          r.corrupt++;
          if (r.problems.length < 5)
            r.problems.push(
              `round ${round}: sector ${lba} is ${v < 0 ? 'damaged' : `version ${v}, newer than any sent (${sent[b]})`}`,
            );
          known[lba] = 0;
          continue;
        }
        if (v < known[lba] || (roundStart[b] === sent[b] && v !== known[lba])) {
          r.corrupt++;
          if (r.problems.length < 5)
            r.problems.push(
              `round ${round}: sector ${lba} went from version ${known[lba]} to ${v}${roundStart[b] === sent[b] ? ' without being written' : ''}`,
            );
        }
        if (acked[b] > 0 && v < acked[b]) lostHere = true;
        if (ackedBeforeFlush[b] > 0 && v < ackedBeforeFlush[b]) {
          r.lostFlushed++;
          if (r.problems.length < 5)
            r.problems.push(
              `round ${round}: sector ${lba} lost version ${ackedBeforeFlush[b]}, acknowledged before an answered FLUSH CACHE (has ${v})`,
            );
        }
        known[lba] = v;
      }
      if (lostHere) r.lostOnPowerLoss++;
      if (acked[b] > 0) report.verifiedWrites++;
    }
    if (r.lostOnKill > 0)
      r.problems.push(`round ${round}: ${r.lostOnKill} acknowledged sector(s) missing from the file right after the kill`);
    if (o.sync && r.lostOnPowerLoss > 0)
      r.problems.push(`round ${round}: -s: ${r.lostOnPowerLoss} acknowledged write(s) lost to the simulated power loss`);
    if (r.corrupt > 0 && r.problems.length === 0) r.problems.push(`round ${round}: ${r.corrupt} damaged sector(s)`);
    report.problems.push(...r.problems);
    report.rounds.push(r);
    log(
      `round ${round}: ${r.sent} writes sent, ${r.acked} acknowledged, ${r.flushes} flushes, ${r.syncs} fdatasyncs; ` +
        `lost on kill ${r.lostOnKill}, restored ${r.restored} sectors, lost on power loss ${r.lostOnPowerLoss}` +
        `${o.sync ? '' : ` (flushed and lost: ${r.lostFlushed})`}, damaged ${r.corrupt}`,
    );
  }
  cur.client.close();
  await cur.d.proc.stop();
  return report;
}

function readAll(file: string, sectors: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const b = new Uint8Array(sectors * 512);
    readSync(fd, b, 0, b.length, 0);
    return b;
  } finally {
    closeSync(fd);
  }
}
