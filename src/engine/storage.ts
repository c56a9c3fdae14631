// Storage submission and completion: a request's read, write or flush goes
// into the batch of io ring operations, the batch to the kernel in one
// submit, and its completions come back together from one reap. Writes of
// a sync export and flushes then wait for their export's group commit
// (group-commit.ts), one fdatasync for all that arrived meanwhile.

// Imported from the modules themselves, not '../aoe': a re-export is a getter call per use.
import { performance } from 'node:perf_hooks';
import { setAtaIoError } from '../aoe/ata';
import { ATA_HEADER_LEN, OFF_ATA_DATA, OFF_SRC, SECTOR_SIZE } from '../aoe/constants';
import { Outcome } from '../aoe/frame-context';
import { padReply } from '../aoe/header';
import { IoOp, IoOpFlag, IoOpLayout, ReapLayout, type IoRing } from '../native/addon';
import { EBUSY, EROFS, ESHUTDOWN } from '../native/errno';
import { ExportCounter, LinkCounter } from './counters';
import { InitiatorField } from './initiators';
import type { EngineContext } from './engine-context';
import type { Export } from './export';
import { STORE_PENDING } from '../backend/block-store';
import type { Link } from './link';
import type { Replies } from './replies';
import { RequestKind, type Requests } from './requests';
import { PartialBlockWrites } from './zero-blocks';

/** io tag bit that marks a group-commit fdatasync; the low bits name the export. */
const SYNC_TAG = 0x40000000;
/** Completions one reap takes at most; it reaps again while the ring has more. */
const REAP_BATCH = 256;

export class Storage {
  /** Operations for the next submit, IoOpLayout.Stride numbers each, and their tags (a request slot or SYNC_TAG | export). */
  private readonly ops: Float64Array;
  private readonly tags: Uint32Array;
  private opsN = 0;
  /** Operations the io ring accepted and reap() has not returned: no reap (a native call) while 0. */
  private ioPending = 0;
  private readonly cq = new Int32Array(REAP_BATCH * ReapLayout.Stride);
  /** Some export has requests waiting for a group commit that has not started. */
  private groupCommitDue = false;
  /** Some link has receive slots of completed writes to give back (Link.releaseWritten). */
  private releasesDue = false;
  /** Writes of detect-zeroes exports in the kernel: a partial block is looked at only when none touches it. */
  private readonly zeroWrites: PartialBlockWrites;

  constructor(
    private readonly io: IoRing,
    private readonly ctx: EngineContext,
    private readonly req: Requests,
    private readonly replies: Replies,
  ) {
    // Every request holds at most one operation, and each export at most one fdatasync.
    this.ops = new Float64Array((req.slots + 256) * IoOpLayout.Stride);
    this.tags = new Uint32Array(req.slots + 256);
    this.zeroWrites = new PartialBlockWrites(req.slots);
  }

  /** Request slots free now: requests that may start before completions free more. */
  get requestsFree(): number {
    return this.req.freeCount;
  }

  /** The io ring has operations whose completions were not reaped yet. */
  get pending(): boolean {
    return this.ioPending > 0;
  }

  // ---- submission ----------------------------------------------------------------

  /**
   * Storage work for a request whose reply respond() prepared in transmit
   * slot `tx` (outcome Read, Write or Flush); true when it holds its receive
   * slot (a write from the ring). `row`: the initiator's row in e.initiators.
   */
  start(link: Link, e: Export, outcome: Outcome, tx: number, ring: Uint8Array, off: number, slot: number, row: number): boolean {
    const ctx = this.ctx;
    const arena = link.arena;
    const t = link.slotOffset(tx);
    const stores = e.stores;
    let store = stores.storeFor(ring, off + OFF_SRC, ctx.clock);
    const d = link.ctx.ata;
    const bytes = d.count * SECTOR_SIZE;
    if (store === STORE_PENDING) {
      // Its store (a view) is being made in the event loop: give it its turn.
      ctx.eventsCalled = true;
      const meanwhile = outcome === Outcome.Read ? stores.readsWhilePending() : null;
      if (meanwhile === null) {
        // A write (or a read with nothing to read meanwhile): dropped, the initiator retransmits.
        link.freeTx(tx);
        e.counters[ExportCounter.PausedDrops]++;
        return false;
      }
      store = meanwhile;
    }
    if (store === null) {
      // This initiator's store could not be made (its resolver says why): an error reply, as for a failed write.
      e.counters[ExportCounter.IoErrors]++;
      e.initiators.figures[row * InitiatorField.Count + InitiatorField.Requests]++;
      e.initiators.figures[row * InitiatorField.Count + InitiatorField.Errors]++;
      setAtaIoError(arena, t, d.count);
      link.queue(tx, padReply(arena, t, ATA_HEADER_LEN));
      return false;
    }
    e.lastIoAt = ctx.clock;
    if (store.kind === 'null') {
      this.answerNull(link, e, outcome, tx, bytes, row);
      return false;
    }
    const kind =
      outcome === Outcome.Read
        ? RequestKind.Read
        : outcome === Outcome.Flush
          ? RequestKind.Flush
          : e.config.sync && store.durableWrites !== true
            ? RequestKind.SyncWrite
            : RequestKind.Write;
    const q = this.req.take(kind, link.id, e.id, tx, bytes, ctx.clock);
    if (q < 0) {
      link.freeTx(tx);
      link.counters[LinkCounter.TxDrops]++;
      return false;
    }
    const index = stores.indexOf(store);
    this.req.store[q] = index;
    stores.started(index);
    e.initiators.figures[row * InitiatorField.Count + InitiatorField.Requests]++;
    this.req.initiator[q] = row;
    this.req.initiatorGen[q] = e.initiators.generation[row];
    e.inflight++;
    link.inflight++;
    const pos = store.byteOffset + d.lba * SECTOR_SIZE;
    // A remote store's fd is its handle: the io ring hands the op to its client library.
    const inline = store.kind === 'remote' ? IoOpFlag.Remote : store.inlineIo ? IoOpFlag.Inline : 0;
    if (kind === RequestKind.Read) {
      this.push(IoOp.Read | inline, stores.readFd(store, index, pos, bytes), link.arenaBufferId, t + OFF_ATA_DATA, bytes, pos, q);
      return false;
    }
    if (kind === RequestKind.Flush) {
      this.joinGroupCommit(e, q);
      return false;
    }
    stores.writing(index, pos, bytes);
    if (kind === RequestKind.SyncWrite) e.groupCommit.writeSubmitted();
    // detect-zeroes: the io ring looks at the data it has in hand and punches a hole when it is all zero; off, no look.
    let write = IoOp.Write | inline;
    if (e.config.detectZeroes !== undefined) {
      write |= IoOpFlag.DetectZeroes;
      const lo = store.byteOffset;
      if (this.zeroWrites.mayLook(e.id, index, pos, bytes, lo, lo + store.sectors * SECTOR_SIZE)) write |= IoOpFlag.ZeroBlocks;
      this.zeroWrites.track(q, e.id, index, pos, bytes);
    }
    if (store.direct) {
      // O_DIRECT needs an aligned source: the transmit slot's data area is, a ring slot is not.
      arena.set(ring.subarray(off + OFF_ATA_DATA, off + OFF_ATA_DATA + bytes), t + OFF_ATA_DATA);
      this.push(write, store.fd, link.arenaBufferId, t + OFF_ATA_DATA, bytes, pos, q);
      return false;
    }
    this.req.rx[q] = slot;
    this.push(write, store.fd, link.ringBufferId, off + OFF_ATA_DATA, bytes, pos, q);
    return true;
  }

  /** A null store's request, answered at once: zeros for a read, success for a write or flush. */
  private answerNull(link: Link, e: Export, outcome: Outcome, tx: number, bytes: number, row: number): void {
    const arena = link.arena;
    const t = link.slotOffset(tx);
    const at = row * InitiatorField.Count;
    e.initiators.figures[at + InitiatorField.Requests]++;
    if (outcome === Outcome.Read) {
      arena.fill(0, t + OFF_ATA_DATA, t + OFF_ATA_DATA + bytes);
      e.counters[ExportCounter.Reads]++;
      e.counters[ExportCounter.ReadBytes] += bytes;
      e.initiators.figures[at + InitiatorField.ReadBytes] += bytes;
      link.queue(tx, ATA_HEADER_LEN + bytes);
      return;
    }
    if (outcome === Outcome.Write) {
      e.counters[ExportCounter.Writes]++;
      e.counters[ExportCounter.WriteBytes] += bytes;
      e.initiators.figures[at + InitiatorField.WriteBytes] += bytes;
    } else e.counters[ExportCounter.Flushes]++;
    link.queue(tx, padReply(arena, t, ATA_HEADER_LEN));
  }

  private push(op: number, fd: number, buffer: number, offset: number, length: number, position: number, tag: number): void {
    if ((this.opsN + 1) * IoOpLayout.Stride > this.ops.length) this.submit();
    const ops = this.ops;
    const p = this.opsN * IoOpLayout.Stride;
    ops[p + IoOpLayout.Kind] = op;
    ops[p + IoOpLayout.Fd] = fd;
    ops[p + IoOpLayout.BufferId] = buffer;
    ops[p + IoOpLayout.Offset] = offset;
    ops[p + IoOpLayout.Length] = length;
    ops[p + IoOpLayout.Position] = position;
    this.tags[this.opsN++] = tag;
  }

  private submit(): void {
    const n = this.opsN;
    if (n === 0) return;
    this.opsN = 0;
    const accepted = this.io.submit(this.ops, this.tags, n);
    this.zeroWrites.submitted();
    const first = accepted < 0 ? 0 : accepted;
    this.ioPending += first;
    const err = accepted < 0 ? accepted : -EBUSY;
    for (let i = first; i < n; i++) this.complete(this.tags[i], err);
    if (this.releasesDue) this.releaseWritten();
  }

  /** Submits queued operations and reaps completions until both are empty. */
  pump(): void {
    do {
      this.submit();
      this.reap();
      if (this.groupCommitDue) this.startGroupCommits();
    } while (this.opsN > 0);
  }

  // ---- completion ----------------------------------------------------------------

  /** Handles every completion waiting in the io ring; returns how many. `force`: ask the ring whatever our count says. */
  reap(force = false): number {
    if (this.ioPending === 0 && !force) return 0;
    const cq = this.cq;
    let total = 0;
    for (;;) {
      const n = this.io.reap(cq, REAP_BATCH);
      this.ioPending = Math.max(0, this.ioPending - n);
      if (n > 0) this.ctx.clock = performance.now();
      for (let i = 0; i < n; i++) {
        const p = i * ReapLayout.Stride;
        this.complete(cq[p + ReapLayout.Tag] >>> 0, cq[p + ReapLayout.Result]);
      }
      if (this.releasesDue) this.releaseWritten();
      total += n;
      if (n < REAP_BATCH) return total;
    }
  }

  private complete(tag: number, result: number): void {
    if (tag & SYNC_TAG) {
      const e = this.ctx.exports[tag & 0xffff];
      if (!e) return;
      // With views one group commit is one fdatasync per view written: done with the last.
      if (e.stores.syncDone(result)) this.groupCommitDone(e, e.stores.syncResult);
      return;
    }
    const q = tag;
    const req = this.req;
    const link = this.ctx.links[req.link[q]];
    const e = this.ctx.exports[req.export[q]]!;
    const bytes = req.bytes[q];
    const ok = result === bytes;
    const kind = req.kind[q];
    if (!ok && (result === -ESHUTDOWN || result === -EROFS) && e.store.kind === 'remote')
      this.ctx.events.storeRefused?.(e, result);
    if (kind === RequestKind.Read) {
      if (!ok) this.replies.answerIoError(q, link, e);
      else {
        e.counters[ExportCounter.Reads]++;
        e.counters[ExportCounter.ReadBytes] += bytes;
        e.initiators.add(req.initiator[q], req.initiatorGen[q], InitiatorField.ReadBytes, bytes);
        this.replies.answer(q, link, ATA_HEADER_LEN + bytes);
      }
      return;
    }
    this.zeroWrites.done(q);
    // A write: the receive slot is no longer needed whatever happened; given back with the others of this reap.
    if (req.rx[q] >= 0) {
      link.releaseWritten(req.rx[q]);
      req.rx[q] = -1;
      this.releasesDue = true;
    }
    const sync = kind === RequestKind.SyncWrite;
    if (sync && e.groupCommit.writeCompleted()) this.groupCommitDue = true;
    if (!ok) {
      this.replies.answerIoError(q, link, e);
      return;
    }
    e.counters[ExportCounter.Writes]++;
    e.counters[ExportCounter.WriteBytes] += bytes;
    e.initiators.add(req.initiator[q], req.initiatorGen[q], InitiatorField.WriteBytes, bytes);
    e.stores.written(req.store[q]);
    if (sync) this.joinGroupCommit(e, q);
    else this.replies.answerDone(q, link);
  }

  /** Gives back the receive slots of the writes completed since the last call, one releaseMany() per link. */
  private releaseWritten(): void {
    this.releasesDue = false;
    const links = this.ctx.links;
    for (let i = 0; i < links.length; i++) links[i].flushWritten();
  }

  // ---- group commit --------------------------------------------------------------
  // Each export's GroupCommit holds the waiting requests and decides when an
  // fdatasync is due; this submits it and answers its batch.

  private joinGroupCommit(e: Export, q: number): void {
    e.groupCommit.join(q, this.ctx.clock);
    this.groupCommitDue = true;
  }

  /**
   * Starts the fdatasync of every export whose group commit is due. Called
   * after each reap, so the completions of one wake-up all join the same
   * fdatasync; an export not yet due is looked at again after the next reap.
   */
  private startGroupCommits(): void {
    this.groupCommitDue = false;
    const exports = this.ctx.exports;
    let now = -1;
    for (let i = 0; i < exports.length; i++) {
      const e = exports[i];
      if (e === null) continue;
      const gc = e.groupCommit;
      if (!gc.pending) continue;
      // The clock of this reap may be old by now; read it only when the wait matters.
      if (gc.waitsForWrites && now < 0) now = performance.now();
      if (gc.due(now)) this.startGroupCommit(e);
      else this.groupCommitDue = true;
    }
  }

  private startGroupCommit(e: Export): void {
    e.groupCommit.start();
    e.counters[ExportCounter.Syncs]++;
    // A remote store's datasync is its client library's flush.
    const inline = e.store.kind === 'remote' ? IoOpFlag.Remote : e.store.inlineIo ? IoOpFlag.Inline : 0;
    const stores = e.stores;
    for (let i = 0, n = stores.startSync(); i < n; i++)
      this.push(IoOp.DataSync | inline, stores.syncFd(i), 0, 0, 0, 0, SYNC_TAG | e.id);
  }

  private groupCommitDone(e: Export, result: number): void {
    const gc = e.groupCommit;
    const req = this.req;
    const links = this.ctx.links;
    for (let i = 0; i < gc.batchSize; i++) {
      const q = gc.batchRequest(i);
      const link = links[req.link[q]];
      if (req.kind[q] === RequestKind.Flush) e.counters[ExportCounter.Flushes]++;
      if (result < 0) this.replies.answerIoError(q, link, e);
      else this.replies.answerDone(q, link);
    }
    if (gc.finish()) this.groupCommitDue = true;
  }
}
