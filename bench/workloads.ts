// The workloads the bench compares, each run at MTU 9000 and 1500: the
// request shapes an initiator produces (random small reads, sequential
// full-frame streams, a network boot's one-at-a-time reads, durable writes).

import type { LoadOp, LoadPattern } from '../src/client/load';
import type { PlacementName } from './placements';

export interface Workload {
  /** Short name used by --only and in the table. */
  name: string;
  description: string;
  op: LoadOp;
  pattern: LoadPattern;
  sectors: number;
  window: number;
  /** Needs the target in -s mode (on the disk file when there is one). */
  sync: boolean;
  /**
   * Where it runs unless --placement says otherwise. The one-in-flight
   * latency runs in all three placements: a boot is exactly where a wake-up
   * per request shows. Throughput runs pinned, one CPU each and one shared,
   * which keeps the default bench near 15 minutes.
   */
  placements: PlacementName[];
}

const THROUGHPUT: PlacementName[] = ['two-cpus', 'one-cpu'];
const LATENCY: PlacementName[] = ['two-cpus', 'one-cpu', 'unpinned'];

/** Sectors of the largest request that fits a frame at this MTU. */
export function frameSectors(mtu: number): number {
  return Math.floor((mtu - 36) / 512);
}

export function workloadsFor(mtu: number): Workload[] {
  const big = frameSectors(mtu); // 17 at MTU 9000, 2 at MTU 1500
  return [
    {
      name: 'rand-read-1',
      description: '1-sector random reads, W=16',
      op: 'read',
      pattern: 'random',
      sectors: 1,
      window: 16,
      sync: false,
      placements: THROUGHPUT,
    },
    {
      name: `seq-read-${big}`,
      description: `${big}-sector sequential reads, W=16`,
      op: 'read',
      pattern: 'seq',
      sectors: big,
      window: 16,
      sync: false,
      placements: THROUGHPUT,
    },
    {
      name: `seq-write-${big}`,
      description: `${big}-sector sequential writes, W=16`,
      op: 'write',
      pattern: 'seq',
      sectors: big,
      window: 16,
      sync: false,
      placements: THROUGHPUT,
    },
    {
      name: 'boot-read-2',
      description: '2-sector reads, one in flight (iPXE boot profile)',
      op: 'read',
      pattern: 'seq',
      sectors: 2,
      window: 1,
      sync: false,
      placements: LATENCY,
    },
    {
      name: `sync-write-${big}`,
      description: `${big}-sector sequential writes, W=16, target in -s mode`,
      op: 'write',
      pattern: 'seq',
      sectors: big,
      window: 16,
      sync: true,
      placements: ['two-cpus'],
    },
  ];
}

/** True when workload `w` is selected by --only (names, or prefixes like "seq-read"). */
export function selected(w: Workload, only: string[]): boolean {
  return only.length === 0 || only.some((o) => w.name === o || w.name.startsWith(`${o}-`) || w.name.startsWith(o));
}
