// The request engine: frames in, storage I/O, replies out. One wake-up of a
// socket or of the io ring is one batch: every ready frame is handled, all
// storage operations go to the kernel in one submit, completions are reaped
// together and every link's replies leave in one send. Request state lives in
// preallocated typed arrays indexed by a request slot number, so the frame
// path allocates nothing and creates no closures or promises.
//
// This class is the frame loop and the engine's face to the server; the
// work is done by three parts made once with it: Intake (frames in and the
// protocol's answer), Storage (the io ring and group commits) and Replies
// (replies, state saves and transmit). They share the request table and
// the EngineContext (links, exports, clock).

import { performance } from 'node:perf_hooks';
import { EPOLL_ERROR_EVENTS, NativeLimit, WaitLayout, type FrameWaiter, type IoRing } from '../native/addon';
import type { FrameLoopStats } from '../api/control';
import { EngineContext, type EngineEvents } from './engine-context';
import type { Export } from './export';
import { Intake } from './intake';
import type { Link } from './link';
import { Replies } from './replies';
import { Requests } from './requests';
import { SpinPolicy } from './spin-policy';
import { Storage } from './storage';

export type { EngineEvents } from './engine-context';

/** What one busy poll found (Engine.spin). */
const enum Poll {
  /** Work was waiting at its first look: served, but polling earned nothing. */
  Waiting = 0,
  /** Work came while it polled. */
  Found = 1,
  /** Nothing came before its window ran out. */
  Missed = 2,
}

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

/** `E`: the exports as the server holds them; the engine sees only what Export has. */
export class Engine<E extends Export = Export> {
  /** By link id; the server adds links here. */
  readonly links: Link[];
  /** By export id; the server puts exports here and nulls the ones it removes. */
  readonly exports: (E | null)[];

  private readonly ctx: EngineContext<E>;
  private readonly requests: Requests;
  private readonly replies: Replies;
  private readonly storage: Storage;
  private readonly intake: Intake;
  private readonly bufferIdFree: number[] = [];
  /** Inside frameLoop(). */
  private looping = false;
  private readonly policy: SpinPolicy;
  private readonly waitEvents = new Int32Array(64 * WaitLayout.Stride);
  private readonly loopStats = new Float64Array(LoopStat.Count);

  constructor(
    readonly io: IoRing,
    readonly requestSlots: number,
    events: EngineEvents<E>,
    /** Busy-poll up to this long for the next frame before sleeping (0: never), and whether only while it pays. */
    spin: { windowMs: number; adaptive: boolean } = { windowMs: 0.02, adaptive: true },
    /** State changes are saved to disk: their replies wait for the save (false: state lives in memory only). */
    persistent = false,
    /** Where the frame loop blocks between batches; null: it goes back to libuv instead. */
    private readonly waiter: FrameWaiter | null = null,
  ) {
    this.policy = new SpinPolicy(spin.windowMs, spin.adaptive);
    if (waiter !== null) {
      waiter.bindEvents(this.waitEvents);
      if (io.eventFd >= 0) waiter.watch(io.eventFd, IO_WAIT_TAG, true);
    }
    this.ctx = new EngineContext<E>(events, persistent);
    this.links = this.ctx.links;
    this.exports = this.ctx.exports;
    this.requests = new Requests(requestSlots);
    this.replies = new Replies(this.ctx, this.requests);
    this.storage = new Storage(io, this.ctx, this.requests, this.replies);
    this.intake = new Intake(this.ctx, this.storage, this.replies);
    for (let i = NativeLimit.IoBuffers - 1; i >= 0; i--) this.bufferIdFree.push(i);
  }

  /** Requests between submission and reply, over all exports. */
  get inflight(): number {
    return this.requests.inflight;
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

  // ---- wake-ups ----------------------------------------------------------------

  /**
   * libuv's wake-up of a link's socket: serve every ready frame, then stay in
   * the frame loop while traffic lasts.
   */
  receive(link: Link): void {
    this.ctx.clock = performance.now();
    this.intake.drain(link);
    this.endBatch();
    this.frameLoop();
  }

  /** The io ring's wake-up through libuv: reap, send what completed, then the frame loop. */
  ioReady(): void {
    this.ctx.clock = performance.now();
    this.storage.reap(true); // the ring's own word, whatever our count says
    this.endBatch();
    this.frameLoop();
  }

  /** The end of every batch: storage submitted and reaped, state changes handed over, replies sent, stalled rings resumed. */
  private endBatch(): void {
    do {
      this.storage.pump();
      if (this.ctx.stateDue) this.replies.stateChangesDone();
      this.replies.flushAll();
      // Sent replies freed transmit slots: frames a drain left in the ring for want of them go on now.
    } while (this.intake.resumeStalled() > 0);
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
      let lastLook = this.ctx.clock;
      // libuv's next timer: only our own code runs until we leave, and it sets none, so this holds.
      const untilTimer = w === null ? -1 : w.loopTimeout();
      const timerDue = untilTimer < 0 ? Infinity : this.ctx.clock + untilTimer;
      for (;;) {
        if (this.loopExitWanted()) break;
        let hit = false;
        const polling = this.policy.shouldSpin(this.ctx.clock);
        if (polling || w !== null) {
          const found = this.spin(polling ? this.policy.windowMs : 0);
          hit = found !== Poll.Missed;
          // Work that was there at the first look would have ended a wait at once too: polling earned nothing.
          if (polling && found !== Poll.Waiting) this.policy.record(hit, this.ctx.clock);
        }
        if (w === null) {
          if (hit) continue;
          break;
        }
        // While polls keep finding work, look at libuv's side without blocking, once a millisecond.
        if (hit && this.ctx.clock - lastLook < LOOP_LOOK_MS) continue;
        const left = timerDue - this.ctx.clock;
        if (left <= 0) break; // a timer is due: libuv's turn
        const r = w.wait(hit ? 0 : Math.min(LOOP_IDLE_MS, Math.ceil(left)));
        lastLook = this.ctx.clock = performance.now();
        const due = r < 0;
        const n = due ? -r - 1 : r;
        if (!hit) this.loopStats[LoopStat.Sleeps]++;
        let broken = false;
        let got = 0;
        for (let i = 0; i < n; i++) {
          const tag = ev[i * WaitLayout.Stride + WaitLayout.Tag];
          if (tag === IO_WAIT_TAG) {
            got += this.storage.reap(true);
            continue;
          }
          const link = this.links[tag];
          if ((ev[i * WaitLayout.Stride + WaitLayout.Events] & EPOLL_ERROR_EVENTS) !== 0) broken = true; // libuv's poll reports it
          if (link !== undefined) got += this.intake.drain(link);
        }
        // An edge for frames a poll already took finds nothing: not a wake-up with work.
        if (got > 0) this.loopStats[LoopStat.Wakeups]++;
        if (n > 0) this.endBatch();
        if (due || broken || (n === 0 && !hit)) break;
      }
    } finally {
      if (w !== null) this.unwatchLinks();
      this.looping = false;
      this.ctx.eventsCalled = false;
      this.loopStats[LoopStat.Exits]++;
    }
  }

  /** Something of ours needs the event loop: a save to start, a send to retry, a link or export to retire. */
  private loopExitWanted(): boolean {
    return this.replies.retryPending || this.ctx.eventsCalled;
  }

  /**
   * Looks at the receive rings and the io ring (plain memory reads, no
   * system calls), and goes on looking for up to `window` ms; serves what it
   * finds. Says whether work was waiting at the first look (Poll.Waiting),
   * came while it polled (Poll.Found) or not before the window ran out
   * (Poll.Missed). Only the last two are polls the spin policy judges: on a
   * CPU shared with the initiator, the initiator's next request is often
   * already there when the reply's send returns (the initiator ran inside
   * it), and counting those as polls that paid kept the policy polling
   * through the misses, 20 µs of the initiator's CPU each. The first look is
   * taken even while polling is paused: it costs less than the wait's system
   * call, which would return at once.
   */
  private spin(window: number): Poll {
    const start = this.ctx.clock;
    for (let first = true; ; first = false) {
      const now = first ? start : performance.now();
      if (!first && now - start >= window) {
        this.ctx.clock = now;
        return Poll.Missed;
      }
      let ready = this.storage.pending;
      for (let i = 0; i < this.links.length && !ready; i++) {
        const link = this.links[i];
        if (link.socket !== null && link.accepting && link.socket.ready()) ready = true;
      }
      if (!ready) {
        if (window <= 0) return Poll.Missed;
        continue;
      }
      // The requests' clock (latency, group commits): the first look has no fresh reading of its own.
      this.ctx.clock = first ? performance.now() : now;
      let got = this.storage.reap();
      for (let i = 0; i < this.links.length; i++) {
        const link = this.links[i];
        if (link.socket !== null && link.socket.ready()) got += this.intake.drain(link);
      }
      if (got === 0) {
        if (window <= 0) return Poll.Missed;
        continue;
      }
      this.endBatch();
      return first ? Poll.Waiting : Poll.Found;
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

  // ---- the server's side ---------------------------------------------------------

  /** Submits queued operations and reaps completions until both are empty. */
  pump(): void {
    this.storage.pump();
  }

  /** Requests a stateChanged() for an export changed outside a batch (the control socket). */
  stateChangedOutside(e: E): void {
    this.ctx.events.stateChanged(e);
  }

  /** The export's state up to `version` is on disk: its replies awaiting that version leave. */
  stateSaved(e: E, version: number): void {
    this.replies.stateSaved(e, version);
  }

  /** A save failed and the export's state went back to what is on disk: its replies awaiting a save leave as errors. */
  stateLost(e: E): void {
    this.replies.stateLost(e);
  }

  /** Sends every link's queued replies. */
  flushAll(): void {
    this.replies.flushAll();
  }

  /** Sends a link's queued replies; false when the socket was full and some remain queued. */
  flushLink(link: Link): boolean {
    return this.replies.flushLink(link);
  }

  /** Sends an unsolicited Query Config response for every export on the link. */
  announce(link: Link): void {
    this.replies.announce(link);
  }
}
