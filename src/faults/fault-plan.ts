// A fault plan for tests: which storage operations fail, and how. Pure: no
// I/O, no clock. The io-ring wrapper in fault-io.ts asks it about every
// operation the engine submits and rewrites the completion of those it names.
//
// A plan is JSON:
//
//   { "rules": [
//       { "op": "write", "sectors": [1000, 1999], "error": "ENOSPC" },
//       { "op": "read", "after": 10, "every": 5, "times": 3, "error": "EIO" },
//       { "op": "sync", "error": "EIO", "times": 1 },
//       { "op": "write", "sectors": [0, 0], "error": "short" } ] }
//
// - op: "read", "write", "sync" (fdatasync) or "any" (the default);
// - sectors: [first, last] sectors of the backing file (not of the export:
//   -o moves them) that a read or write must overlap; a sync has no range
//   and never matches a rule that has one;
// - after: let this many matching operations pass first (default 0);
// - every: then fail every n-th matching operation (default 1: each one);
// - times: fail at most this many (default: no limit);
// - error: an errno name (EIO, ENOSPC, EROFS, EDQUOT, ENOMEM, EAGAIN,
//   EBUSY, EINVAL, EFBIG, ETIMEDOUT), a positive errno number, or "short"
//   (the operation reports half of its length transferred).
//
// The first rule that fires decides. Every rule whose filters match counts
// the operation (for after/every), but a rule does not fire, and does not use
// up its times, on an operation an earlier rule already failed.

import { constants as osConstants } from 'node:os';
export type FaultOp = 'read' | 'write' | 'sync';

export interface FaultRule {
  op?: FaultOp | 'any';
  sectors?: [number, number];
  after?: number;
  every?: number;
  times?: number;
  error: string | number;
}

export interface FaultPlanSpec {
  rules: FaultRule[];
}

/** The errno names a plan may use, with this platform's numbers. */
const ERRNO_NAMES = ['EIO', 'EAGAIN', 'ENOMEM', 'EBUSY', 'EINVAL', 'EFBIG', 'ENOSPC', 'EROFS', 'ETIMEDOUT', 'EDQUOT'] as const;
export const ERRNO: Readonly<Record<string, number>> = Object.fromEntries(ERRNO_NAMES.map((n) => [n, osConstants.errno[n]]));

/** A plan that cannot be used; the message says what is wrong. */
export class FaultPlanError extends Error {
  override name = 'FaultPlanError';
}

interface Compiled {
  op: FaultOp | 'any';
  first: number;
  last: number;
  ranged: boolean;
  after: number;
  every: number;
  times: number;
  /** Negative errno, or -Infinity for "short". */
  result: number;
}

const SHORT = -Infinity;

function nonNegativeInt(v: unknown, what: string, i: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new FaultPlanError(`rule ${i}: ${what} must be a whole number >= 0, not ${JSON.stringify(v)}`);
  return v;
}

function compile(r: FaultRule, i: number): Compiled {
  if (typeof r !== 'object' || r === null) throw new FaultPlanError(`rule ${i} is not an object`);
  const known = new Set(['op', 'sectors', 'after', 'every', 'times', 'error']);
  for (const k of Object.keys(r))
    if (!known.has(k)) throw new FaultPlanError(`rule ${i}: unknown field "${k}" (known: ${[...known].join(', ')})`);
  const op = r.op ?? 'any';
  if (!['read', 'write', 'sync', 'any'].includes(op))
    throw new FaultPlanError(`rule ${i}: op must be read, write, sync or any, not ${JSON.stringify(op)}`);
  let first = 0;
  let last = Infinity;
  const ranged = r.sectors !== undefined;
  if (ranged) {
    const s = r.sectors;
    if (!Array.isArray(s) || s.length !== 2) throw new FaultPlanError(`rule ${i}: sectors must be [first, last]`);
    first = nonNegativeInt(s[0], 'sectors[0]', i, 0);
    last = nonNegativeInt(s[1], 'sectors[1]', i, 0);
    if (last < first) throw new FaultPlanError(`rule ${i}: sectors [${first}, ${last}] is empty`);
  }
  let result: number;
  if (r.error === 'short') result = SHORT;
  else if (typeof r.error === 'number' && Number.isInteger(r.error) && r.error > 0) result = -r.error;
  else if (typeof r.error === 'string' && ERRNO[r.error] !== undefined) result = -ERRNO[r.error];
  else
    throw new FaultPlanError(
      `rule ${i}: error must be "short", an errno number or one of ${Object.keys(ERRNO).join(', ')}; not ${JSON.stringify(r.error)}`,
    );
  const every = nonNegativeInt(r.every, 'every', i, 1);
  if (every < 1) throw new FaultPlanError(`rule ${i}: every must be at least 1`);
  return {
    op,
    first,
    last,
    ranged,
    after: nonNegativeInt(r.after, 'after', i, 0),
    every,
    times: nonNegativeInt(r.times, 'times', i, Infinity),
    result,
  };
}

export class FaultPlan {
  private readonly rules: Compiled[];
  /** Operations each rule matched. */
  readonly matched: number[];
  /** Operations each rule failed. */
  readonly fired: number[];

  constructor(spec: FaultPlanSpec) {
    if (typeof spec !== 'object' || spec === null || !Array.isArray(spec.rules))
      throw new FaultPlanError('a fault plan is an object with a "rules" array');
    this.rules = spec.rules.map(compile);
    this.matched = this.rules.map(() => 0);
    this.fired = this.rules.map(() => 0);
  }

  /** Parses a plan from JSON text; throws FaultPlanError with the reason. */
  static parse(text: string): FaultPlan {
    let spec: unknown;
    try {
      spec = JSON.parse(text);
    } catch (e) {
      throw new FaultPlanError(`a fault plan must be JSON: ${(e as Error).message}`);
    }
    return new FaultPlan(spec as FaultPlanSpec);
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /**
   * What an operation should report instead of its real result: a negative
   * errno or a short byte count; undefined when it is left alone.
   * `position` and `length` are bytes in the backing file.
   */
  decide(op: FaultOp, position: number, length: number): number | undefined {
    let out: number | undefined;
    const firstSector = Math.floor(position / 512);
    const lastSector = Math.floor((position + Math.max(length, 1) - 1) / 512);
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i];
      if (r.op !== 'any' && r.op !== op) continue;
      if (r.ranged && (op === 'sync' || lastSector < r.first || firstSector > r.last)) continue;
      const n = ++this.matched[i];
      if (out !== undefined || n <= r.after || (n - r.after - 1) % r.every !== 0 || this.fired[i] >= r.times) continue;
      this.fired[i]++;
      out = r.result === SHORT ? (op === 'sync' ? -ERRNO.EIO : Math.floor(length / 2)) : r.result;
    }
    return out;
  }
}
