// Test-only storage faults and a durability journal, as a wrapper around the
// engine's io ring. The engine submits every read, write and fdatasync
// itself through the ring, so the ring is the one seam every storage
// operation crosses. Nothing here is active unless one of two environment
// variables is set; otherwise withTestFaults() returns the real ring
// unchanged and the frame path pays nothing at all.
//
// AOET_TEST_FAULT_PLAN: a fault plan (fault-plan.ts), as inline JSON (it
//   starts with "{") or the path of a JSON file. A file is re-read when it
//   changes (looked at no more than every 50 ms), so a test can switch faults
//   on and off while the daemon runs; a missing file means no faults. The
//   operation still runs; its completion is rewritten to the planned errno
//   or short count, exactly as a failing disk would report it.
//
// AOET_TEST_IO_JOURNAL: a file to append one line per storage event to,
//   written synchronously before the engine sees the completion (so before
//   any reply that depends on it can leave):
//     w <fd> <position> <length> <hex of the first 16 data bytes>   write submitted
//     W <fd> <position> <length> <result>                           write completed
//     s <fd> <seq>                                                  fdatasync submitted
//     S <fd> <seq> <result>                                         fdatasync completed
//   A crash-consistency test replays it to tell which writes were durable
//   (completed before an fdatasync that was submitted after them and
//   succeeded) when the daemon was killed, and simulates a power loss by
//   undoing the others (test/reliability/lib/crash.ts).

import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import type { IoRing } from '../native/addon';
import { IoOp, IoOpFlag, IoOpLayout, ReapLayout } from '../native/constants';
import { FaultOp, FaultPlan, FaultPlanError } from './fault-plan';

export const FAULT_PLAN_ENV = 'AOET_TEST_FAULT_PLAN';
export const IO_JOURNAL_ENV = 'AOET_TEST_IO_JOURNAL';

/** Fault plan names by IoOp. */
const OPS: Readonly<Record<number, FaultOp>> = { [IoOp.Read]: 'read', [IoOp.Write]: 'write', [IoOp.DataSync]: 'sync' };

interface Submitted {
  op: number;
  fd: number;
  position: number;
  length: number;
  seq: number;
}

/** Loads a plan from inline JSON or a file, re-reading the file when it changes. */
class PlanSource {
  plan: FaultPlan | null = null;
  private checkedAt = 0;
  private mtime = -1;

  constructor(
    private readonly spec: string,
    private readonly warn: (msg: string) => void,
  ) {
    if (spec.trimStart().startsWith('{')) this.plan = FaultPlan.parse(spec);
    else this.reload(true);
  }

  current(): FaultPlan | null {
    if (this.spec.trimStart().startsWith('{')) return this.plan;
    const now = Date.now();
    if (now - this.checkedAt >= 50) this.reload(false);
    return this.plan;
  }

  private reload(first: boolean): void {
    this.checkedAt = Date.now();
    let mtime: number;
    try {
      mtime = statSync(this.spec).mtimeMs;
    } catch {
      if (this.mtime !== -1 || first) this.plan = null;
      this.mtime = -1;
      return;
    }
    if (mtime === this.mtime) return;
    this.mtime = mtime;
    try {
      this.plan = FaultPlan.parse(readFileSync(this.spec, 'utf8'));
    } catch (e) {
      if (first || !(e instanceof FaultPlanError)) throw e;
      // A half-written file or a bad edit: keep the previous plan and say so.
      this.warn(`fault plan ${this.spec} not used: ${e.message}`);
    }
  }
}

/** The wrapper; exported for unit tests (use withTestFaults() otherwise). */
export class FaultIoRing implements IoRing {
  private readonly buffers: (Uint8Array | undefined)[] = [];
  private readonly rewrite = new Map<number, number>();
  private readonly submitted = new Map<number, Submitted>();
  private readonly journalFd: number;
  private syncSeq = 0;
  /** Completions rewritten so far. */
  injected = 0;
  /** None for the frame waiter: completions reach the engine through startPolling's callback. */
  readonly eventFd = -1;

  constructor(
    private readonly inner: IoRing,
    private readonly plans: { current(): FaultPlan | null } | null,
    journalPath: string | undefined,
  ) {
    this.journalFd = journalPath ? openSync(journalPath, 'a') : -1;
  }

  get kind(): IoRing['kind'] {
    return this.inner.kind;
  }

  get depth(): number {
    return this.inner.depth;
  }

  registerBuffer(id: number, mem: Uint8Array): void {
    this.buffers[id] = mem;
    this.inner.registerBuffer(id, mem);
  }

  unregisterBuffer(id: number): void {
    this.buffers[id] = undefined;
    this.inner.unregisterBuffer(id);
  }

  private journal(line: string): void {
    if (this.journalFd >= 0) writeSync(this.journalFd, line + '\n');
  }

  submit(ops: Float64Array, tags: Uint32Array, count: number): number {
    const accepted = this.inner.submit(ops, tags, count);
    const n = accepted < 0 ? 0 : accepted;
    const plan = this.plans?.current() ?? null;
    for (let i = 0; i < n; i++) {
      const p = i * IoOpLayout.Stride;
      const op = ops[p + IoOpLayout.Kind] & ~IoOpFlag.Inline;
      const fd = ops[p + IoOpLayout.Fd];
      const length = ops[p + IoOpLayout.Length];
      const position = ops[p + IoOpLayout.Position];
      const tag = tags[i];
      if (plan !== null && OPS[op] !== undefined) {
        const r = plan.decide(OPS[op], position, length);
        if (r !== undefined) this.rewrite.set(tag, r);
      }
      if (this.journalFd >= 0 && (op === IoOp.Write || op === IoOp.DataSync)) {
        const seq = op === IoOp.DataSync ? ++this.syncSeq : 0;
        this.submitted.set(tag, { op, fd, position, length, seq });
        if (op === IoOp.DataSync) this.journal(`s ${fd} ${seq}`);
        else
          this.journal(
            `w ${fd} ${position} ${length} ${this.head(ops[p + IoOpLayout.BufferId], ops[p + IoOpLayout.Offset], length)}`,
          );
      }
    }
    return accepted;
  }

  private head(bufferId: number, offset: number, length: number): string {
    const mem = this.buffers[bufferId];
    if (mem === undefined) return '-';
    return Buffer.from(mem.buffer, mem.byteOffset + offset, Math.min(16, length)).toString('hex');
  }

  reap(out: Int32Array, max: number): number {
    const n = this.inner.reap(out, max);
    for (let i = 0; i < n; i++) {
      const p = i * ReapLayout.Stride;
      const tag = out[p + ReapLayout.Tag] >>> 0;
      if (this.rewrite.size > 0) {
        const r = this.rewrite.get(tag);
        if (r !== undefined) {
          this.rewrite.delete(tag);
          out[p + ReapLayout.Result] = r;
          this.injected++;
        }
      }
      if (this.journalFd >= 0) {
        const s = this.submitted.get(tag);
        if (s !== undefined) {
          this.submitted.delete(tag);
          const result = out[p + ReapLayout.Result];
          if (s.op === IoOp.DataSync) this.journal(`S ${s.fd} ${s.seq} ${result}`);
          else this.journal(`W ${s.fd} ${s.position} ${s.length} ${result}`);
        }
      }
    }
    return n;
  }

  startPolling(onReady: () => void): void {
    this.inner.startPolling(onReady);
  }

  stopPolling(): void {
    this.inner.stopPolling();
  }

  close(): void {
    this.inner.close();
    if (this.journalFd >= 0) closeSync(this.journalFd);
  }
}

/**
 * The io ring to use: `io` itself unless AOET_TEST_FAULT_PLAN or
 * AOET_TEST_IO_JOURNAL is set (tests only), then a FaultIoRing around it.
 * A plan that cannot be parsed at start-up throws (the daemon refuses to start).
 */
export function withTestFaults(io: IoRing, env: NodeJS.ProcessEnv = process.env): IoRing {
  const planSpec = env[FAULT_PLAN_ENV];
  const journal = env[IO_JOURNAL_ENV];
  if (!planSpec && !journal) return io;
  const warn = (msg: string): void => {
    process.stderr.write(`vblade: TEST ONLY: ${msg}\n`);
  };
  const plans = planSpec ? new PlanSource(planSpec, warn) : null;
  warn(
    `storage fault injection active (${planSpec ? `${FAULT_PLAN_ENV}=${planSpec.length > 80 ? planSpec.slice(0, 77) + '...' : planSpec}` : ''}` +
      `${planSpec && journal ? ', ' : ''}${journal ? `${IO_JOURNAL_ENV}=${journal}` : ''}); never set these outside tests`,
  );
  return new FaultIoRing(io, plans, journal);
}
