// One rule for an export's MAC mask when saved state meets the config: a
// mask the operator changed in the config wins (at start and on reload) and
// is in force from then on; otherwise the saved mask wins, so that what
// initiators set with AoE mask commands survives restarts and reloads.
// "Changed" means: differs from the config mask recorded in the saved state
// when it was last reconciled (none recorded = the config set none).

import type { ExportState } from './export-config';

/** The state to serve and whether it differs from what was saved (then it must be persisted). */
export interface Reconciled {
  state: ExportState;
  changed: boolean;
}

/** Same MAC addresses, in any order (mask lists are sets). */
export function sameMacs(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((m, i) => m === y[i]);
}

/** Saved state reconciled with the config's current mac-mask (empty: the config sets none). */
export function reconcileState(saved: ExportState, configMask: readonly string[]): Reconciled {
  const operatorChanged = !sameMacs(saved.configMask ?? [], configMask);
  const state: ExportState = {
    config: saved.config,
    macMask: operatorChanged ? configMask.slice() : saved.macMask.slice(),
    reserve: saved.reserve.slice(),
  };
  if (configMask.length) state.configMask = configMask.slice();
  return { state, changed: operatorChanged };
}
