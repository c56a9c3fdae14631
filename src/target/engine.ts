// The request engine: frames in, storage I/O, replies out. One wake-up of a
// socket or of the io ring is one batch: every ready frame is handled, all
// storage operations go to the kernel in one submit, completions are reaped
// together and every link's replies leave in one send. Request state lives in
// preallocated typed arrays indexed by a request slot number, so the frame
// path allocates nothing and creates no closures or promises.

// Imported from the modules themselves, not '../aoe': a re-export is a getter call per use.
// The same for the clock: the global `performance` is a lazy getter on globalThis.
import { performance } from 'node:perf_hooks';
import { abortAtaReply, setAtaIoError } from '../aoe/ata';
import { writeAnnouncement } from '../aoe/config-query';
import {
  ATA_HEADER_LEN,
  Command,
  MIN_FRAME_LEN,
  OFF_ATA_DATA,
  OFF_ATA_SECTORS,
  OFF_CMD,
  OFF_SRC,
  SECTOR_SIZE,
} from '../aoe/constants';
import { respond } from '../aoe/dispatch';
import { rewriteAsUnsaved } from '../aoe/unsaved-state';
import { Outcome } from '../aoe/frame-context';
import { addresses, isAoeRequest, isForMac, isFromMac, majorOf, minorOf, padReply } from '../aoe/header';
import { ExportCounter, LinkCounter, recordLatency } from './counters';
import type { Export } from './export';
import type { FrameLoopStats } from '../api/control';
import { VIEW_PENDING } from '../views/views';
import { FlushStatus, type Link } from './link';
import {
  DrainLayout,
  EPOLL_ERROR_EVENTS,
  IoOp,
  IoOpFlag,
  IoOpLayout,
  NativeLimit,
  ReapLayout,
  WaitLayout,
  type FrameWaiter,
  type IoRing,
} from '../native/addon';
import { SpinPolicy } from './spin-policy';
import { EBUSY } from '../native/errno';

const enum Kind {
  Read = 1,
  Write = 2,
  Flush = 3,
  /** A finished reply held until the export's state it shows is on disk. */
  State = 4,
}

/**
 * Replies one export may hold while its state is being saved; beyond this a
 * Config, Mac Mask or Reserve request is dropped (the initiator retransmits),
 * so a slow disk cannot take every request slot from the other exports.
 */
const MAX_HELD_REPLIES = 64;

/** io tag bit that marks a group-commit fdatasync; the low bits name the export. */
const SYNC_TAG = 0x40000000;
/** The frame loop goes back to libuv after this long without traffic (so an idle target sleeps in libuv). */
const LOOP_IDLE_MS = 20;
/** While busy polls keep finding work, how often the loop still asks whether libuv has work. */
const LOOP_LOOK_MS = 1;
/** The waiter's tag for the io ring's eventfd; link ids are the other tags. */
const IO_WAIT_TAG = 0x7fffffff;

const enum LoopStat {
  /** Blocking waits in the kernel. */
  Sleeps = 0,
  /** Waits that ended with frames or completions to serve. */
  Wakeups = 1,
  /** Returns to libuv. */
  Exits = 2,
  Count = 3,
}
const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export interface EngineEvents {
  /**
   * An export's config string, mask or reserve list changed (once per export
   * and batch). With persistence the server saves it and answers with
   * stateSaved() or stateLost().
   */
  stateChanged(e: Export): void;
  /** A request finished and its link or export may now be retired. */
  drained(): void;
}

export class Engine {
  readonly links: Link[] = [];
  readonly exports: (Export | null)[] = [];

  private readonly reqKind: Uint8Array;
  private readonly reqLink: Int32Array;
  private readonly reqExport: Int32Array;
  private readonly reqTx: Int32Array;
  private readonly reqRx: Int32Array;
  private readonly reqBytes: Int32Array;
  private readonly reqStart: Float64Array;
  /** The view a request uses (src/target/views.ts), -1 without views: its writes mark it for the group commit. */
  private readonly reqView: Int32Array;
  /** For a held reply (Kind.State): the state version that must be durable before it leaves. */
  private readonly reqVersion: Float64Array;
  private readonly reqFree: Int32Array;
  private reqFreeN = 0;

  private readonly ops: Float64Array;
  private readonly tags: Uint32Array;
  private opsN = 0;
  /** Operations the io ring accepted and reap() has not returned: no reap (a native call) while 0. */
  private ioPending = 0;
  private readonly cq: Int32Array;
  private readonly bufferIdFree: number[] = [];
  private flushRetry: NodeJS.Immediate | null = null;
  /** Some export's state changed in this batch: stateChanged() is due at its end. */
  private stateDue = false;
  /** Some export has requests waiting for a group commit that has not started. */
  private groupCommitDue = false;
  /** Inside frameLoop(). */
  private looping = false;
  /** An event handler ran (a save to start, a link to close): the loop must give libuv its turn. */
  private eventsCalled = false;
  private readonly policy: SpinPolicy;
  private readonly waitEvents = new Int32Array(64 * WaitLayout.Stride);
  private readonly loopStats = new Float64Array(LoopStat.Count);
  /**
   * performance.now() as of the current wake-up, or of the last reap that
   * brought completions: request start and reply times are read from here,
   * so the clock is read once per batch rather than twice per request.
   */
  private clock = 0;
  private readonly retryFlush = (): void => {
    this.flushRetry = null;
    this.flushAll();
  };

  constructor(
    readonly io: IoRing,
    readonly requestSlots: number,
    private readonly events: EngineEvents,
    /** Busy-poll up to this long for the next frame before sleeping (0: never), and whether only while it pays. */
    spin: { windowMs: number; adaptive: boolean } = { windowMs: 0.02, adaptive: true },
    /** State changes are saved to disk: their replies wait for the save (false: state lives in memory only). */
    private readonly persistent = false,
    /** Where the frame loop blocks between batches; null: it goes back to libuv instead. */
    private readonly waiter: FrameWaiter | null = null,
  ) {
    this.policy = new SpinPolicy(spin.windowMs, spin.adaptive);
    if (waiter !== null) {
      waiter.bindEvents(this.waitEvents);
      if (io.eventFd >= 0) waiter.watch(io.eventFd, IO_WAIT_TAG, true);
    }
    const n = requestSlots;
    this.reqKind = new Uint8Array(n);
    this.reqLink = new Int32Array(n);
    this.reqExport = new Int32Array(n);
    this.reqTx = new Int32Array(n);
    this.reqView = new Int32Array(n);
    this.reqRx = new Int32Array(n);
    this.reqBytes = new Int32Array(n);
    this.reqStart = new Float64Array(n);
    this.reqVersion = new Float64Array(n);
    this.reqFree = new Int32Array(n);
    for (let i = n - 1; i >= 0; i--) this.reqFree[this.reqFreeN++] = i;
    // Every request holds at most one operation, and each export at most one fdatasync.
    this.ops = new Float64Array((n + 256) * IoOpLayout.Stride);
    this.tags = new Uint32Array(n + 256);
    this.cq = new Int32Array(256 * ReapLayout.Stride);
    for (let i = NativeLimit.IoBuffers - 1; i >= 0; i--) this.bufferIdFree.push(i);
  }

  /** Requests between submission and reply, over all exports. */
  get inflight(): number {
    return this.requestSlots - this.reqFreeN;
  }

  // ---- memory registration -------------------------------------------------

  registerLinkMemory(link: Link): void {
    const a = this.bufferIdFree.pop();
    const r = this.bufferIdFree.pop();
    if (a === undefined || r === undefined) throw new Error('too many interfaces for one process (at most 32)');
    this.io.registerBuffer(a, link.arena);
    this.io.registerBuffer(r, link.socket!.ring);
    link.arenaBufferId = a;
    link.ringBufferId = r;
  }

  unregisterLinkMemory(link: Link): void {
    for (const id of [link.arenaBufferId, link.ringBufferId]) {
      if (id >= 0) {
        this.io.unregisterBuffer(id);
        this.bufferIdFree.push(id);
      }
    }
    link.arenaBufferId = link.ringBufferId = -1;
  }

  // ---- receive ---------------------------------------------------------------

  /**
   * libuv's wake-up of a link's socket: serve every ready frame, then stay in
   * the frame loop while traffic lasts.
   */
  receive(link: Link): void {
    this.clock = performance.now();
    this.drain(link);
    this.endBatch();
    this.frameLoop();
  }

  /** The io ring's wake-up through libuv: reap, send what completed, then the frame loop. */
  ioReady(): void {
    this.clock = performance.now();
    this.reap(true); // the ring's own word, whatever our count says
    this.endBatch();
    this.frameLoop();
  }

  /** The end of every batch: storage submitted and reaped, state changes handed over, replies sent. */
  private endBatch(): void {
    this.pump();
    if (this.stateDue) this.stateChangesDone();
    this.flushAll();
  }

  /** Handles every frame ready on a link's ring; returns how many there were. */
  private drain(link: Link): number {
    const sock = link.socket;
    if (sock === null || !link.accepting) return 0;
    const desc = link.rxDesc;
    let total = 0;
    for (;;) {
      const n = sock.drain(desc, link.rxBatch);
      if (n === 0) break;
      total += n;
      link.counters[LinkCounter.RxFrames] += n;
      const done = link.rxDone;
      let k = 0;
      for (let i = 0; i < n; i++) {
        const p = i * DrainLayout.Stride;
        const slot = desc[p + DrainLayout.Slot];
        if (!this.frame(link, sock.ring, desc[p + DrainLayout.Offset], desc[p + DrainLayout.Length], slot)) done[k++] = slot;
      }
      if (k > 0) sock.releaseMany(done, k);
      this.pump();
      if (n < link.rxBatch) break;
    }
    return total;
  }

  // ---- the frame loop --------------------------------------------------------
  // Going back through libuv for every frame costs more than serving it
  // (epoll, the poll handle, a callback scope into JavaScript), so while
  // traffic lasts the engine stays here: it polls the rings for a short
  // window when the spin policy says polling pays (spin-policy.ts), and
  // otherwise blocks in the kernel on the sockets and the io ring itself
  // (FrameWaiter, native/waiter.c). It hands back to libuv as soon as libuv
  // has work (a control request, a signal, a timer due, a finished save),
  // when something of ours needs the event loop (a state save to start, a
  // link to retire, a send to retry), or after LOOP_IDLE_MS without traffic.

  /** Links watched by the waiter, by link id: their sockets wake us, not libuv, while the loop runs. */
  private watchLinks(): void {
    const w = this.waiter!;
    for (let i = 0; i < this.links.length; i++) {
      const link = this.links[i];
      const sock = link.socket;
      if (sock === null || !link.accepting) continue;
      if (link.watchedFd !== sock.fd) {
        w.watch(sock.fd, link.id);
        link.watchedFd = sock.fd;
      }
      sock.setLoopWake(false);
    }
  }

  private unwatchLinks(): void {
    for (let i = 0; i < this.links.length; i++) {
      const link = this.links[i];
      if (link.socket !== null && link.watchedFd === link.socket.fd) link.socket.setLoopWake(true);
    }
  }

  /** Forgets a link's socket before it closes (its descriptor number may come back for another). */
  forgetLink(link: Link): void {
    if (link.watchedFd >= 0 && this.waiter !== null) this.waiter.unwatch(link.watchedFd);
    link.watchedFd = -1;
  }

  private frameLoop(): void {
    if (this.looping) return;
    this.looping = true;
    const w = this.waiter;
    try {
      if (w !== null) this.watchLinks();
      const ev = this.waitEvents;
      let lastLook = this.clock;
      // libuv's next timer: only our own code runs until we leave, and it sets none, so this holds.
      const untilTimer = w === null ? -1 : w.loopTimeout();
      const timerDue = untilTimer < 0 ? Infinity : this.clock + untilTimer;
      for (;;) {
        if (this.loopExitWanted()) break;
        let hit = false;
        if (this.policy.shouldSpin(this.clock)) {
          hit = this.spin();
          this.policy.record(hit, this.clock);
        }
        if (w === null) {
          if (hit) continue;
          break;
        }
        // While polls keep finding work, look at libuv's side without blocking, once a millisecond.
        if (hit && this.clock - lastLook < LOOP_LOOK_MS) continue;
        const left = timerDue - this.clock;
        if (left <= 0) break; // a timer is due: libuv's turn
        const r = w.wait(hit ? 0 : Math.min(LOOP_IDLE_MS, Math.ceil(left)));
        lastLook = this.clock = performance.now();
        const due = r < 0;
        const n = due ? -r - 1 : r;
        if (!hit) this.loopStats[LoopStat.Sleeps]++;
        let broken = false;
        let got = 0;
        for (let i = 0; i < n; i++) {
          const tag = ev[i * WaitLayout.Stride + WaitLayout.Tag];
          if (tag === IO_WAIT_TAG) {
            got += this.reap(true);
            continue;
          }
          const link = this.links[tag];
          if ((ev[i * WaitLayout.Stride + WaitLayout.Events] & EPOLL_ERROR_EVENTS) !== 0) broken = true; // libuv's poll reports it
          if (link !== undefined) got += this.drain(link);
        }
        // An edge for frames a poll already took finds nothing: not a wake-up with work.
        if (got > 0) this.loopStats[LoopStat.Wakeups]++;
        if (n > 0) this.endBatch();
        if (due || broken || (n === 0 && !hit)) break;
      }
    } finally {
      if (w !== null) this.unwatchLinks();
      this.looping = false;
      this.eventsCalled = false;
      this.loopStats[LoopStat.Exits]++;
    }
  }

  /** Something of ours needs the event loop: a save to start, a send to retry, a link or export to retire. */
  private loopExitWanted(): boolean {
    return this.flushRetry !== null || this.eventsCalled;
  }

  /**
   * Polls the receive rings and the io ring (plain memory reads, no system
   * calls) for up to the policy's window; serves what it finds. True when it
   * found work before the window ran out.
   */
  private spin(): boolean {
    const start = this.clock;
    const window = this.policy.windowMs;
    for (;;) {
      const now = performance.now();
      if (now - start >= window) {
        this.clock = now;
        return false;
      }
      let ready = this.ioPending > 0;
      for (let i = 0; i < this.links.length && !ready; i++) {
        const link = this.links[i];
        if (link.socket !== null && link.accepting && link.socket.ready()) ready = true;
      }
      if (!ready) continue;
      this.clock = now;
      let got = this.reap();
      for (let i = 0; i < this.links.length; i++) {
        const link = this.links[i];
        if (link.socket !== null && link.socket.ready()) got += this.drain(link);
      }
      if (got === 0) continue;
      this.endBatch();
      return true;
    }
  }

  /** Busy polls, their hits and pauses, blocking waits, wake-ups with work and returns to libuv (ctl stats). */
  loopCounters(): Omit<FrameLoopStats, 'spinMicros' | 'spinPolicy'> {
    return {
      spins: this.policy.spins,
      hits: this.policy.hits,
      backoffs: this.policy.backoffs,
      polling: this.policy.windowMs > 0 && !this.policy.paused(performance.now()),
      sleeps: this.loopStats[LoopStat.Sleeps],
      wakeups: this.loopStats[LoopStat.Wakeups],
      exits: this.loopStats[LoopStat.Exits],
      blocking: this.waiter !== null,
    };
  }

  /** Handles one frame for every export it addresses; true when a request still holds its receive slot. */
  private frame(link: Link, ring: Uint8Array, off: number, len: number, slot: number): boolean {
    const mac = link.ctx.mac;
    if (!isAoeRequest(ring, off, len) || isFromMac(ring, off, mac) || !isForMac(ring, off, mac)) {
      link.counters[LinkCounter.Ignored]++;
      return false;
    }
    const cmd = ring[off + OFF_CMD];
    if (cmd === Command.Config) link.refresh();
    else if (cmd === Command.Ata && len >= ATA_HEADER_LEN && ring[off + OFF_ATA_SECTORS] > link.ctx.maxSectors) {
      link.refresh(); // the MTU may have grown since the last look
    }
    const major = majorOf(ring, off);
    const minor = minorOf(ring, off);
    let held = false;
    let served = false;
    const list = link.exports;
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      const st = e.state;
      if (e.closing || e.held !== null || !addresses(ring, off, st.shelf, st.slot)) continue;
      // ATA commands only for an exact address: a broadcast write must not reach every export.
      if (cmd === Command.Ata && (major !== st.shelf || minor !== st.slot)) continue;
      served = true;
      if (this.serve(link, e, ring, off, len, slot)) held = true;
    }
    if (!served) link.counters[LinkCounter.Ignored]++;
    return held;
  }

  private serve(link: Link, e: Export, ring: Uint8Array, off: number, len: number, slot: number): boolean {
    // While a state change is being saved, ATA access needs the saved state's consent too (a retransmission finds it saved).
    if (e.state.version !== e.durableVersion && ring[off + OFF_CMD] === Command.Ata && !e.admittedBySaved(ring, off + OFF_SRC)) {
      e.counters[ExportCounter.MaskDrops]++;
      return false;
    }
    // A snapshot or view reset is waiting for the requests in flight: new ones are retransmitted later.
    if (e.paused && ring[off + OFF_CMD] === Command.Ata) {
      this.eventsCalled = true; // the snapshot that paused it goes on in the event loop
      e.counters[ExportCounter.PausedDrops]++;
      return false;
    }
    const tx = link.allocTx();
    if (tx < 0) {
      link.counters[LinkCounter.TxDrops]++;
      return false;
    }
    const arena = link.arena;
    const t = link.slotOffset(tx);
    const outcome = respond(ring, off, len, e.state, link.ctx, arena, t);
    if (e.state.version !== e.savedVersion) this.stateDue = true;
    switch (outcome) {
      case Outcome.Reply:
        e.counters[ExportCounter.Other]++;
        // IDENTIFY, which initiators send before their first read: a new initiator's view is made now, so
        // that its reads find it (dropped reads cost the Linux driver its first retransmit timeout, ~15 s).
        if (
          e.views !== null &&
          ring[off + OFF_CMD] === Command.Ata &&
          e.views.storeFor(ring, off + OFF_SRC, this.clock) === VIEW_PENDING
        )
          this.eventsCalled = true;
        if (this.persistent && e.state.version !== e.durableVersion && ring[off + OFF_CMD] !== Command.Ata) {
          this.holdReply(link, e, tx);
        } else link.queue(tx, link.ctx.replyLen);
        return false;
      case Outcome.AoeError:
        e.counters[ExportCounter.AoeErrors]++;
        if (this.persistent && e.state.version !== e.durableVersion && ring[off + OFF_CMD] !== Command.Ata) {
          this.holdReply(link, e, tx);
        } else link.queue(tx, link.ctx.replyLen);
        return false;
      case Outcome.AtaError:
        e.counters[ExportCounter.AtaErrors]++;
        link.queue(tx, link.ctx.replyLen);
        return false;
      case Outcome.Read:
      case Outcome.Write:
      case Outcome.Flush:
        return this.startStorage(link, e, outcome, tx, ring, off, slot);
      case Outcome.Masked:
        e.counters[ExportCounter.MaskDrops]++;
        link.freeTx(tx);
        return false;
      default: // silence the protocol asks for: nothing to count
        link.freeTx(tx);
        return false;
    }
  }

  /**
   * Holds the finished reply in transmit slot `tx` of a Config, Mac Mask or
   * Reserve request while its export's state is not on disk: it changed the
   * state, or it would show a change not yet saved. It leaves with
   * stateSaved(), or as an error with stateLost().
   */
  private holdReply(link: Link, e: Export, tx: number): void {
    const q = e.heldReplies.length < MAX_HELD_REPLIES && this.reqFreeN > 0 ? this.reqFree[--this.reqFreeN] : -1;
    if (q < 0) {
      link.freeTx(tx);
      link.counters[LinkCounter.TxDrops]++;
      return;
    }
    this.reqKind[q] = Kind.State;
    this.reqLink[q] = link.id;
    this.reqExport[q] = e.id;
    this.reqTx[q] = tx;
    this.reqRx[q] = -1;
    this.reqBytes[q] = link.ctx.replyLen;
    this.reqStart[q] = this.clock;
    this.reqVersion[q] = e.state.version;
    e.inflight++;
    link.inflight++;
    e.heldReplies.push(q); // rare: only while a state change is being saved
    this.stateDue = true;
  }

  /** End of a batch: one stateChanged() per export whose state changed since it was last handed over. */
  private stateChangesDone(): void {
    this.stateDue = false;
    for (let i = 0; i < this.exports.length; i++) {
      const e = this.exports[i];
      if (e !== null && e.state.version !== e.savedVersion) {
        this.eventsCalled = true;
        this.events.stateChanged(e);
      }
    }
  }

  /** Requests a stateChanged() for an export changed outside a batch (the control socket). */
  stateChangedOutside(e: Export): void {
    this.events.stateChanged(e);
  }

  /** The export's state up to `version` is on disk: its held replies up to that version leave. */
  stateSaved(e: Export, version: number): void {
    this.clock = performance.now(); // called from the save's completion, not from a batch
    const held = e.heldReplies;
    let k = 0;
    for (let i = 0; i < held.length; i++) {
      const q = held[i];
      if (this.reqVersion[q] <= version) this.reply(q, this.links[this.reqLink[q]], this.reqBytes[q]);
      else held[k++] = q;
    }
    held.length = k;
    this.flushAll();
  }

  /**
   * A save failed and the export's state went back to what is on disk: every
   * held reply of the export, also those waiting for a later save, leaves as
   * AoE error 3 showing the state in force.
   */
  stateLost(e: Export): void {
    this.clock = performance.now();
    const held = e.heldReplies;
    for (let i = 0; i < held.length; i++) {
      const q = held[i];
      const link = this.links[this.reqLink[q]];
      const len = rewriteAsUnsaved(link.arena, link.slotOffset(this.reqTx[q]), this.reqBytes[q], e.state, link.ctx.maxSectors);
      this.reply(q, link, len);
    }
    held.length = 0;
    this.flushAll();
  }

  /** Storage work for a request whose reply respond() prepared in transmit slot `tx`; true when it holds its receive slot. */
  private startStorage(
    link: Link,
    e: Export,
    outcome: Outcome,
    tx: number,
    ring: Uint8Array,
    off: number,
    slot: number,
  ): boolean {
    const arena = link.arena;
    const t = link.slotOffset(tx);
    const views = e.views;
    let store = views === null ? e.store : views.storeFor(ring, off + OFF_SRC, this.clock);
    const d = link.ctx.ata;
    const bytes = d.count * SECTOR_SIZE;
    if (store === VIEW_PENDING) {
      // Its view is being made (views.ts), in the event loop: give it its turn.
      this.eventsCalled = true;
      // The view will be the image as it is now, and the lease keeps it so: a read can be answered from the image.
      if (outcome === Outcome.Read && views!.sharesImage) store = e.store;
      else {
        // A write (or no lease): dropped, the initiator retransmits.
        link.freeTx(tx);
        e.counters[ExportCounter.PausedDrops]++;
        return false;
      }
    }
    if (store === null) {
      // This initiator's view could not be made (views.ts says why): an error reply, as for a failed write.
      e.counters[ExportCounter.IoErrors]++;
      setAtaIoError(arena, t, d.count);
      link.queue(tx, padReply(arena, t, ATA_HEADER_LEN));
      return false;
    }
    e.lastIoAt = this.clock;
    if (store.kind === 'null') {
      if (outcome === Outcome.Read) {
        arena.fill(0, t + OFF_ATA_DATA, t + OFF_ATA_DATA + bytes);
        e.counters[ExportCounter.Reads]++;
        e.counters[ExportCounter.ReadBytes] += bytes;
        link.queue(tx, ATA_HEADER_LEN + bytes);
      } else {
        if (outcome === Outcome.Write) {
          e.counters[ExportCounter.Writes]++;
          e.counters[ExportCounter.WriteBytes] += bytes;
        } else e.counters[ExportCounter.Flushes]++;
        link.queue(tx, padReply(arena, t, ATA_HEADER_LEN));
      }
      return false;
    }
    const q = this.reqFreeN > 0 ? this.reqFree[--this.reqFreeN] : -1;
    if (q < 0) {
      link.freeTx(tx);
      link.counters[LinkCounter.TxDrops]++;
      return false;
    }
    this.reqLink[q] = link.id;
    this.reqExport[q] = e.id;
    this.reqTx[q] = tx;
    this.reqRx[q] = -1;
    this.reqBytes[q] = bytes;
    this.reqStart[q] = this.clock;
    const view = views === null ? -1 : views.indexOf(store);
    this.reqView[q] = view;
    e.inflight++;
    link.inflight++;
    const pos = store.byteOffset + d.lba * SECTOR_SIZE;
    const inline = store.inlineIo ? IoOpFlag.Inline : 0;
    if (outcome === Outcome.Read) {
      this.reqKind[q] = Kind.Read;
      // A view's blocks it never wrote are read from the image, whose page cache every view shares (own-blocks.ts).
      const fd = view < 0 ? store.fd : views!.readFd(view, pos, bytes);
      this.push(IoOp.Read | inline, fd, link.arenaBufferId, t + OFF_ATA_DATA, bytes, pos, q);
      return false;
    }
    if (outcome === Outcome.Write) {
      this.reqKind[q] = Kind.Write;
      if (view >= 0) views!.writing(view, pos, bytes);
      if (e.config.sync) e.groupCommit.writeSubmitted();
      if (store.direct) {
        // O_DIRECT needs an aligned source: the transmit slot's data area is, a ring slot is not.
        arena.set(ring.subarray(off + OFF_ATA_DATA, off + OFF_ATA_DATA + bytes), t + OFF_ATA_DATA);
        this.push(IoOp.Write | inline, store.fd, link.arenaBufferId, t + OFF_ATA_DATA, bytes, pos, q);
        return false;
      }
      this.reqRx[q] = slot;
      this.push(IoOp.Write | inline, store.fd, link.ringBufferId, off + OFF_ATA_DATA, bytes, pos, q);
      return true;
    }
    this.reqKind[q] = Kind.Flush;
    this.joinGroupCommit(e, q);
    return false;
  }

  // ---- storage ---------------------------------------------------------------

  private push(op: number, fd: number, buffer: number, offset: number, length: number, position: number, tag: number): void {
    if ((this.opsN + 1) * IoOpLayout.Stride > this.ops.length) this.submit();
    const p = this.opsN * IoOpLayout.Stride;
    this.ops[p] = op;
    this.ops[p + 1] = fd;
    this.ops[p + 2] = buffer;
    this.ops[p + 3] = offset;
    this.ops[p + 4] = length;
    this.ops[p + 5] = position;
    this.tags[this.opsN++] = tag;
  }

  private submit(): void {
    const n = this.opsN;
    if (n === 0) return;
    this.opsN = 0;
    const accepted = this.io.submit(this.ops, this.tags, n);
    const first = accepted < 0 ? 0 : accepted;
    this.ioPending += first;
    const err = accepted < 0 ? accepted : -EBUSY;
    for (let i = first; i < n; i++) this.complete(this.tags[i], err);
  }

  /** Submits queued operations and reaps completions until both are empty. */
  pump(): void {
    do {
      this.submit();
      this.reap();
      if (this.groupCommitDue) this.startGroupCommits();
    } while (this.opsN > 0);
  }

  /** Handles every completion waiting in the io ring; returns how many. */
  private reap(force = false): number {
    if (this.ioPending === 0 && !force) return 0;
    const max = this.cq.length / ReapLayout.Stride;
    let total = 0;
    for (;;) {
      const n = this.io.reap(this.cq, max);
      this.ioPending = Math.max(0, this.ioPending - n);
      if (n > 0) this.clock = performance.now();
      for (let i = 0; i < n; i++) {
        const p = i * ReapLayout.Stride;
        this.complete(this.cq[p + ReapLayout.Tag] >>> 0, this.cq[p + ReapLayout.Result]);
      }
      total += n;
      if (n < max) return total;
    }
  }

  private complete(tag: number, result: number): void {
    if (tag & SYNC_TAG) {
      const e = this.exports[tag & 0xffff];
      if (!e) return;
      // With views one group commit is one fdatasync per view written: done with the last.
      const views = e.views;
      if (views === null) this.groupCommitDone(e, result);
      else if (views.syncDone(result)) this.groupCommitDone(e, views.syncResult);
      return;
    }
    const q = tag;
    const link = this.links[this.reqLink[q]];
    const e = this.exports[this.reqExport[q]]!;
    const t = link.slotOffset(this.reqTx[q]);
    const bytes = this.reqBytes[q];
    const ok = result === bytes;
    if (this.reqKind[q] === Kind.Read) {
      if (ok) {
        e.counters[ExportCounter.Reads]++;
        e.counters[ExportCounter.ReadBytes] += bytes;
        this.reply(q, link, ATA_HEADER_LEN + bytes);
      } else this.failIo(q, link, e, t);
      return;
    }
    // A write: the receive slot is no longer needed whatever happened.
    if (this.reqRx[q] >= 0) {
      link.socket?.release(this.reqRx[q]);
      this.reqRx[q] = -1;
    }
    if (e.config.sync && e.groupCommit.writeCompleted()) this.groupCommitDue = true;
    if (!ok) {
      this.failIo(q, link, e, t);
      return;
    }
    e.counters[ExportCounter.Writes]++;
    e.counters[ExportCounter.WriteBytes] += bytes;
    if (e.views !== null) e.views.written(this.reqView[q]);
    if (e.config.sync) this.joinGroupCommit(e, q);
    else this.reply(q, link, padReply(link.arena, t, ATA_HEADER_LEN));
  }

  private failIo(q: number, link: Link, e: Export, t: number): void {
    e.counters[ExportCounter.IoErrors]++;
    setAtaIoError(link.arena, t, this.reqBytes[q] / SECTOR_SIZE);
    this.reply(q, link, padReply(link.arena, t, ATA_HEADER_LEN));
  }

  /** Queues the reply of request q and frees the request slot. */
  private reply(q: number, link: Link, len: number): void {
    link.queue(this.reqTx[q], len);
    const e = this.exports[this.reqExport[q]]!;
    const micros = (this.clock - this.reqStart[q]) * 1000;
    recordLatency(e.latency, micros);
    e.latencySumUs += micros;
    e.inflight--;
    link.inflight--;
    this.reqFree[this.reqFreeN++] = q;
    if (((e.closing || e.paused) && e.inflight === 0) || (link.reopenWanted && link.inflight === 0)) {
      this.eventsCalled = true;
      this.events.drained();
    }
  }

  // ---- group commit ----------------------------------------------------------
  // Each export's GroupCommit holds the waiting requests and decides when an
  // fdatasync is due; the engine submits it and answers its batch.

  private joinGroupCommit(e: Export, q: number): void {
    e.groupCommit.join(q, this.clock);
    this.groupCommitDue = true;
  }

  /**
   * Starts the fdatasync of every export whose group commit is due. Called
   * after each reap, so the completions of one wake-up all join the same
   * fdatasync; an export not yet due is looked at again after the next reap.
   */
  private startGroupCommits(): void {
    this.groupCommitDue = false;
    let now = -1;
    for (let i = 0; i < this.exports.length; i++) {
      const e = this.exports[i];
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
    const inline = e.store.inlineIo ? IoOpFlag.Inline : 0;
    if (e.views === null) this.push(IoOp.DataSync | inline, e.store.fd, 0, 0, 0, 0, SYNC_TAG | e.id);
    else
      for (let i = 0, n = e.views.startSync(); i < n; i++)
        this.push(IoOp.DataSync | inline, e.views.syncFd(i), 0, 0, 0, 0, SYNC_TAG | e.id);
  }

  private groupCommitDone(e: Export, result: number): void {
    const gc = e.groupCommit;
    for (let i = 0; i < gc.batchSize; i++) {
      const q = gc.batchRequest(i);
      const link = this.links[this.reqLink[q]];
      const t = link.slotOffset(this.reqTx[q]);
      if (this.reqKind[q] === Kind.Flush) e.counters[ExportCounter.Flushes]++;
      if (result < 0) {
        e.counters[ExportCounter.IoErrors]++;
        setAtaIoError(link.arena, t, this.reqBytes[q] / SECTOR_SIZE);
      }
      this.reply(q, link, padReply(link.arena, t, ATA_HEADER_LEN));
    }
    if (gc.finish()) this.groupCommitDue = true;
  }

  // ---- transmit --------------------------------------------------------------

  flushAll(): void {
    let again = false;
    for (let i = 0; i < this.links.length; i++) {
      const link = this.links[i];
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
      // than the new MTU carries). Answer that request with ABRT, as it
      // would have been had it arrived a moment later, and go on.
      link.refresh();
      const t = link.firstOffset;
      if (link.arena[t + OFF_CMD] !== Command.Ata || link.firstLength <= MIN_FRAME_LEN) {
        // Nothing smaller to send instead: the initiator retransmits this
        // one; the replies queued behind it still go.
        link.dropFirst();
        continue;
      }
      link.setFirstLength(abortAtaReply(link.arena, t));
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
