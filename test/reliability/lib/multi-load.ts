// Many initiators against one export: each in its own namespace with its own
// MAC on a common bridge, each with its own LBA range of the test pattern
// (so a reply delivered to the wrong initiator cannot pass the data check),
// each running the load engine through a CheckedSocket. Used by
// load.test.ts (short), isolation.test.ts and scripts/reliability/load.js.

import { AoeClient, DiscoveredTarget } from '../../../src/client/client';
import { LoadOp, LoadResult, runLoad } from '../../../src/client/load';
import type { TestLike } from '../../../lab/common';
import { sparseFile, tempDir } from '../../helpers/files';
import { CheckedSocket, checkFailures, SocketChecks } from './checked-socket';
import { openClient, writeClientPattern } from './harness';
import { RunningTarget, startTarget } from '../../helpers/targets';
import { createHub, Hub } from './topology';

export interface Rig {
  hub: Hub;
  file: string;
  daemon: RunningTarget;
  clients: AoeClient[];
  targets: DiscoveredTarget[];
  shelf: number;
  slot: number;
  /** Sectors of each initiator's own range; initiator i owns [i * range, (i + 1) * range). */
  range: number;
}

export interface RigOptions {
  initiators: number;
  /** Sectors per initiator (default 4096). */
  range?: number;
  /** Extra vblade options (-s, -r, -m ..., -b ...). */
  options?: string[];
  mtu?: number;
  shelf?: number;
  slot?: number;
  /** Only the first n initiators look the export up (the others may be masked out). */
  discoverers?: number;
}

export async function createRig(t: TestLike, o: RigOptions): Promise<Rig> {
  const range = o.range ?? 4096;
  const shelf = o.shelf ?? 51;
  const slot = o.slot ?? 1;
  const hub = await createHub(t, { initiators: o.initiators, mtu: o.mtu ?? 1500 });
  const total = range * o.initiators;
  const file = await sparseFile(t, total * 512, { dir: tempDir(t, 'load') });
  writeClientPattern(file, 0, total);
  const daemon = await startTarget(t, hub.target.ns, [
    ...(o.options ?? []),
    String(shelf),
    String(slot),
    hub.target.ifname,
    file,
  ]);
  const clients: AoeClient[] = [];
  const targets: DiscoveredTarget[] = [];
  for (let i = 0; i < o.initiators; i++) {
    const p = hub.inits[i];
    clients.push(await openClient(t, p.ns, p.ifname, { timeoutMs: 1000, retries: 5, frameCount: 2048 }));
  }
  const n = o.discoverers ?? o.initiators;
  for (let i = 0; i < n; i++) targets.push(await clients[i].find(shelf, slot, 10000));
  return { hub, file, daemon, clients, targets, shelf, slot, range };
}

export interface InitiatorResult {
  index: number;
  mac: string;
  result: LoadResult;
  checks: SocketChecks;
}

export interface MultiLoadOptions {
  /** Which initiators run (default all that discovered the export). */
  who?: number[];
  window: number;
  durationMs: number;
  op?: LoadOp;
  readPercent?: number;
  sectors?: number;
  /** Retransmission timeout (ms) and retries; defaults 300 and 8. */
  timeoutMs?: number;
  maxRetries?: number;
  /** Target address for initiators that did not discover it (e.g. masked out): the MAC of rig.targets[0]. */
  verify?: 'pattern' | 'none';
}

/** Runs the load engine on several initiators at once; resolves when all are done. */
export async function multiLoad(rig: Rig, o: MultiLoadOptions): Promise<InitiatorResult[]> {
  const who = o.who ?? rig.targets.map((_, i) => i);
  const known = rig.targets[0];
  const runs = who.map(async (i) => {
    const c = rig.clients[i];
    const target = rig.targets[i] ?? { shelf: rig.shelf, slot: rig.slot, mac: known.mac, sectorCount: known.sectorCount };
    const sock = new CheckedSocket(c.socket, c.mac, o.window, {
      mac: known.mac,
      shelf: rig.shelf,
      slot: rig.slot,
      sectors: rig.range * rig.clients.length,
      mtu: c.mtu,
    });
    c.pause();
    try {
      const result = await runLoad({
        socket: sock,
        srcMac: c.mac,
        target,
        op: o.op ?? 'mix',
        readPercent: o.readPercent ?? 70,
        pattern: 'random',
        sectors: o.sectors ?? 2,
        window: o.window,
        lbaStart: i * rig.range,
        lbaCount: rig.range,
        durationMs: o.durationMs,
        verify: o.verify ?? 'pattern',
        timeoutMs: o.timeoutMs ?? 300,
        maxRetries: o.maxRetries ?? 8,
        seed: 0x1000 + i,
      });
      return { index: i, mac: c.macText, result, checks: sock.checks };
    } finally {
      c.resume();
    }
  });
  return Promise.all(runs);
}

export interface Fairness {
  min: number;
  max: number;
  /** min / max. */
  ratio: number;
  /** Jain's index: (sum x)^2 / (n * sum x^2); 1 = perfectly even. */
  jain: number;
}

export function fairness(xs: number[]): Fairness {
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return { min, max, ratio: max > 0 ? min / max : 0, jain: sq > 0 ? (sum * sum) / (xs.length * sq) : 0 };
}

/** A line per initiator for the notes. */
export function describe(results: InitiatorResult[]): string[] {
  return results.map((r) => {
    const e = r.result.errors;
    return (
      `initiator ${r.index} ${r.mac}: ${r.result.ops} requests (${r.result.iops.toFixed(0)}/s), p99 ${(r.result.latency.p99 / 1000).toFixed(2)} ms, ` +
      `retransmits ${r.result.retransmits}, errors aoe ${e.aoe} ata ${e.ata} verify ${e.verify} short ${e.short} timeouts ${e.timeouts}; ` +
      `checks: passed ${r.checks.passed}, bad ${checkFailures(r.checks)}${r.checks.first.length ? ` (${r.checks.first[0]})` : ''}`
    );
  });
}
