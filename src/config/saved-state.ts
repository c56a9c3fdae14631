// An export's saved state (reservations, mask, config string): the text it
// is kept as, one JSON object with a format version and the export it was
// written for (state files, service/state-store.ts, and an rbd image's
// metadata, remote/rbd-failover.ts, read and write the one format); and
// one rule for an export's MAC mask when saved state meets the config: a
// mask the operator changed in the config wins (at start and on reload) and
// is in force from then on; otherwise the saved mask wins, so that what
// initiators set with AoE mask commands survives restarts and reloads.
// "Changed" means: differs from the config mask recorded in the saved state
// when it was last reconciled (none recorded = the config set none).

import { MAC_LIST_CAPACITY, MAX_CONFIG_LEN } from '../aoe/constants';
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

const FORMAT_VERSION = 1;
const KEY_RE = /^e[0-9]+\.[0-9]+$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Encodes a state as the file's text. */
export function encodeState(key: string, s: ExportState): string {
  const o: Record<string, unknown> = { version: FORMAT_VERSION, key, config: s.config, macMask: s.macMask, reserve: s.reserve };
  if (s.configMask) o.configMask = s.configMask;
  return JSON.stringify(o) + '\n';
}

function isMacList(list: unknown): list is string[] {
  return Array.isArray(list) && list.length <= MAC_LIST_CAPACITY && list.every((m) => typeof m === 'string' && MAC_RE.test(m));
}

/**
 * Decodes a state file; returns a string saying what is wrong when it is not
 * a valid state of `key`. The string never quotes the text (V8's JSON.parse
 * messages do, so they are not passed on).
 */
export function decodeState(text: string, key: string): ExportState | string {
  if (text.length === 0) return 'it is empty';
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'it is not valid JSON (truncated or overwritten?)';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (o.version !== FORMAT_VERSION) {
    return typeof o.version === 'number' && Number.isInteger(o.version) && Math.abs(o.version) < 1e6
      ? `unknown format version ${o.version}`
      : 'no format version';
  }
  if (o.key !== key)
    return typeof o.key === 'string' && KEY_RE.test(o.key) ? `written for ${o.key}, not ${key}` : `not written for ${key}`;
  if (typeof o.config !== 'string' || o.config.length > MAX_CONFIG_LEN)
    return `config is not a string of at most ${MAX_CONFIG_LEN} characters`;
  for (const f of ['macMask', 'reserve'] as const) {
    if (!isMacList(o[f])) return `${f} is not a list of at most ${MAC_LIST_CAPACITY} MAC addresses`;
  }
  if (o.configMask !== undefined && !isMacList(o.configMask))
    return `configMask is not a list of at most ${MAC_LIST_CAPACITY} MAC addresses`;
  const s: ExportState = { config: o.config, macMask: (o.macMask as string[]).slice(), reserve: (o.reserve as string[]).slice() };
  if (o.configMask !== undefined) s.configMask = o.configMask.slice();
  return s;
}
