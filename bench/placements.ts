// Where the target and the load generator run. On a machine with few cores
// the placement decides what a figure means: sharing one CPU, the target
// pays for every switch to the generator; on a CPU each, it pays the
// generator's wake-ups (an inter-processor interrupt) instead; unpinned, the
// scheduler moves both around as it likes, which is what a user gets.

import os from 'node:os';

export const PLACEMENT_NAMES = ['two-cpus', 'one-cpu', 'unpinned'] as const;
export type PlacementName = (typeof PLACEMENT_NAMES)[number];

export interface Placement {
  name: PlacementName;
  description: string;
  /** CPU the target (and all its threads) is pinned to; undefined: not pinned. */
  targetCpu?: number;
  /** CPU the load generator is pinned to; undefined: not pinned. */
  generatorCpu?: number;
}

export const PLACEMENTS: Record<PlacementName, Placement> = {
  'two-cpus': {
    name: 'two-cpus',
    description: 'target on CPU 0, generator on CPU 1',
    targetCpu: 0,
    generatorCpu: 1,
  },
  'one-cpu': {
    name: 'one-cpu',
    description: 'target and generator both on CPU 0',
    targetCpu: 0,
    generatorCpu: 0,
  },
  unpinned: {
    name: 'unpinned',
    description: 'neither pinned',
  },
};

/** The placements named on the command line, in the bench's order; throws on an unknown name. */
export function parsePlacements(names: string[]): Placement[] {
  for (const n of names) {
    if (!(PLACEMENT_NAMES as readonly string[]).includes(n))
      throw new Error(`unknown placement "${n}": use ${PLACEMENT_NAMES.join(', ')}`);
  }
  return PLACEMENT_NAMES.filter((n) => names.includes(n)).map((n) => PLACEMENTS[n]);
}

/** Why this machine cannot run `p`, or undefined when it can. */
export function placementUnavailable(p: Placement, cpus = os.cpus().length): string | undefined {
  const highest = Math.max(p.targetCpu ?? 0, p.generatorCpu ?? 0);
  return highest >= cpus ? `it needs CPU ${highest} and this machine has ${cpus} CPU(s)` : undefined;
}

/** `command` prefixed so that it runs (with every thread it starts) on `cpu`; unchanged when `cpu` is undefined. */
export function pinnedCommand(command: string[], cpu: number | undefined): string[] {
  return cpu === undefined ? command : ['taskset', '-c', String(cpu), ...command];
}
