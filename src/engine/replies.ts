// Replies and transmit: a request's reply is queued on its link and its
// request slot freed; replies to state commands wait while the state they
// show is being saved; at the end of a batch every link's queued replies
// leave in one send, and a reply the MTU no longer carries is shortened.

// Imported from the modules themselves, not '../aoe': a re-export is a getter call per use.
import { performance } from 'node:perf_hooks';
import { setAtaIoError, shrinkOversizedReply } from '../aoe/ata';
import { writeAnnouncement } from '../aoe/config-query';
import { ATA_HEADER_LEN, SECTOR_SIZE } from '../aoe/constants';
import { padReply } from '../aoe/header';
import { rewriteAsUnsaved } from '../aoe/unsaved-state';
import { ExportCounter, LinkCounter, recordLatency } from './counters';
import { InitiatorField } from './initiators';
import type { EngineContext } from './engine-context';
import type { Export } from './export';
import { FlushStatus, type Link } from './link';
import { RequestKind, type Requests } from './requests';

/**
 * Replies one export may keep waiting while its state is being saved; beyond
 * this a Config, Mac Mask or Reserve request is dropped (the initiator
 * retransmits), so a slow disk cannot take every request slot from the other
 * exports.
 */
const MAX_AWAITING_SAVE = 64;

const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export class Replies {
  private flushRetry: NodeJS.Immediate | null = null;
  private readonly retryFlush = (): void => {
    this.flushRetry = null;
    this.flushAll();
  };

  constructor(
    private readonly ctx: EngineContext,
    private readonly req: Requests,
  ) {}

  /** A send is to be retried from the event loop (the socket was full). */
  get retryPending(): boolean {
    return this.flushRetry !== null;
  }

  // ---- answering requests ----------------------------------------------------

  /** Queues the reply of request q, `len` bytes, and frees the request slot. */
  answer(q: number, link: Link, len: number): void {
    const req = this.req;
    const ctx = this.ctx;
    link.queue(req.tx[q], len);
    const e = ctx.exports[req.export[q]]!;
    const micros = (ctx.clock - req.start[q]) * 1000;
    recordLatency(e.latency, micros);
    e.latencySumUs += micros;
    e.inflight--;
    link.inflight--;
    e.stores.finished(req.store[q], ctx.clock);
    req.release(q);
    if (((e.closing || e.paused) && e.inflight === 0) || (link.reopenWanted && link.inflight === 0)) {
      ctx.eventsCalled = true;
      ctx.events.drained();
    }
  }

  /** Answers request q with its prepared ATA registers and no data (a write or flush done). */
  answerDone(q: number, link: Link): void {
    this.answer(q, link, padReply(link.arena, link.slotOffset(this.req.tx[q]), ATA_HEADER_LEN));
  }

  /** Answers request q with an ATA error: its storage operation failed. */
  answerIoError(q: number, link: Link, e: Export): void {
    e.counters[ExportCounter.IoErrors]++;
    e.initiators.add(this.req.initiator[q], this.req.initiatorGen[q], InitiatorField.Errors, 1);
    setAtaIoError(link.arena, link.slotOffset(this.req.tx[q]), this.req.bytes[q] / SECTOR_SIZE);
    this.answerDone(q, link);
  }

  // ---- replies awaiting a save -------------------------------------------------

  /**
   * Keeps the finished reply in transmit slot `tx` of a Config, Mac Mask or
   * Reserve request while its export's state is not on disk: it changed the
   * state, or it would show a change not yet saved. It leaves with
   * stateSaved(), or as an error with stateLost().
   */
  awaitSave(link: Link, e: Export, tx: number): void {
    const req = this.req;
    const q =
      e.awaitingSave.length < MAX_AWAITING_SAVE
        ? req.take(RequestKind.AwaitingSave, link.id, e.id, tx, link.ctx.replyLen, this.ctx.clock)
        : -1;
    if (q < 0) {
      link.freeTx(tx);
      link.counters[LinkCounter.TxDrops]++;
      return;
    }
    req.version[q] = e.state.version;
    e.inflight++;
    link.inflight++;
    e.awaitingSave.push(q); // rare: only while a state change is being saved
    this.ctx.stateDue = true;
  }

  /** End of a batch: one stateChanged() per export whose state changed since it was last handed over. */
  stateChangesDone(): void {
    const ctx = this.ctx;
    ctx.stateDue = false;
    for (let i = 0; i < ctx.exports.length; i++) {
      const e = ctx.exports[i];
      if (e !== null && e.state.version !== e.savedVersion) {
        ctx.eventsCalled = true;
        ctx.events.stateChanged(e);
      }
    }
  }

  /** The export's state up to `version` is on disk: its replies awaiting that version leave. */
  stateSaved(e: Export, version: number): void {
    this.ctx.clock = performance.now(); // called from the save's completion, not from a batch
    const waiting = e.awaitingSave;
    let k = 0;
    for (let i = 0; i < waiting.length; i++) {
      const q = waiting[i];
      if (this.req.version[q] <= version) this.answer(q, this.ctx.links[this.req.link[q]], this.req.bytes[q]);
      else waiting[k++] = q;
    }
    waiting.length = k;
    this.flushAll();
  }

  /**
   * A save failed and the export's state went back to what is on disk: every
   * reply of the export awaiting a save, also those waiting for a later one,
   * leaves as AoE error 3 showing the state in force.
   */
  stateLost(e: Export): void {
    this.ctx.clock = performance.now();
    const waiting = e.awaitingSave;
    for (let i = 0; i < waiting.length; i++) {
      const q = waiting[i];
      const link = this.ctx.links[this.req.link[q]];
      const len = rewriteAsUnsaved(link.arena, link.slotOffset(this.req.tx[q]), this.req.bytes[q], e.state, link.ctx.maxSectors);
      this.answer(q, link, len);
    }
    waiting.length = 0;
    this.flushAll();
  }

  // ---- transmit ----------------------------------------------------------------

  /** Sends every link's queued replies; a link whose socket is full is tried again from the event loop. */
  flushAll(): void {
    const links = this.ctx.links;
    let again = false;
    for (let i = 0; i < links.length; i++) {
      const link = links[i];
      if (link.sendN > 0 && !this.flushLink(link)) again = true;
    }
    if (again && this.flushRetry === null) this.flushRetry = setImmediate(this.retryFlush);
  }

  /** Sends a link's queued replies; false when the socket was full and some remain queued. */
  flushLink(link: Link): boolean {
    for (;;) {
      const status = link.flush();
      if (status !== FlushStatus.FirstTooBig) return status === FlushStatus.Done;
      // The MTU shrank under a reply already built (a read of more sectors
      // than the new MTU carries): answer it as it would have been had it
      // arrived a moment later, and go on.
      link.refresh();
      const len = shrinkOversizedReply(link.arena, link.firstOffset, link.firstLength);
      // Nothing smaller to send instead: the initiator retransmits this one; the replies queued behind it still go.
      if (len === 0) link.dropFirst();
      else link.setFirstLength(len);
    }
  }

  /**
   * Sends an unsolicited Query Config response for every export on the
   * link: broadcast, or to each MAC mask member when the list is not empty.
   */
  announce(link: Link): void {
    if (link.socket === null) return;
    for (const e of link.exports) {
      if (e.held !== null) continue;
      const st = e.state;
      const targets = st.mask.count > 0 ? st.mask.count : 1;
      for (let i = 0; i < targets; i++) {
        const tx = link.allocTx();
        if (tx < 0) return;
        const t = link.slotOffset(tx);
        const dst = st.mask.count > 0 ? st.mask.bytes : BROADCAST;
        const n = writeAnnouncement(link.arena, t, dst, st.mask.count > 0 ? i * 6 : 0, link.ctx.mac, st, link.ctx.maxSectors);
        link.queue(tx, padReply(link.arena, t, n));
      }
    }
    this.flushAll();
  }
}
