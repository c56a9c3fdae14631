// FrameExchange: how the initiator talks over one packet socket. It sends
// frames, matches what comes back to the request that is waiting for it (by
// tag), sends again with a new tag when nothing came, and hands the socket to
// the load engine between pause() and resume(). AoeClient (client.ts) builds
// the AoE commands on top of it.
//
// Every request has a tag with bit 31 clear (the kernel initiator's half of the
// tag space) unless the exchange was opened with `userTags`. A request that gets
// no reply is sent again with a new tag, as Linux does, up to `retries` times.

import { EAGAIN, ENOBUFS } from '../native/errno';
import { TimeoutError } from './errors';
import { formatMac } from './mac';
import { ReplyHeader, isAoeFrame, parseHeader, replyTag } from './replies';
import { writeBe32 } from './requests';
import { Endpoint, FrameSocket } from './transport';
import { AOE_TAG } from './wire';

/** A frame received during an exchange. `bytes` is a copy, safe to keep. */
export interface ReceivedFrame {
  bytes: Uint8Array;
  header: ReplyHeader;
  /** Milliseconds from the (last) transmission to its arrival. */
  elapsedMs: number;
}

export interface ClientOptions {
  /** Our MAC, the source of every request. */
  mac: Uint8Array;
  /** MTU of the interface (limits request sizes). */
  mtu: number;
  /** Wait for a reply before retransmitting, ms (default 500). */
  timeoutMs?: number;
  /** Retransmissions after the first send (default 3). */
  retries?: number;
  /** Set bit 31 of every tag (the userland tools' convention) instead of clearing it. */
  userTags?: boolean;
  /** Pad every request to 60 bytes (real NICs do this themselves; veth does not). Default false. */
  pad?: boolean;
}

export interface ExchangeOptions {
  timeoutMs?: number;
  retries?: number;
}

export interface RawExchangeOptions {
  /** How long to collect replies (default: the client's timeoutMs). */
  timeoutMs?: number;
  /** Collect only replies carrying the request's tag (bytes 20..23). Default true. */
  matchTag?: boolean;
  /** Stop as soon as this many replies have arrived (default: collect for the whole timeout). */
  max?: number;
  /** Extra filter on each received frame. */
  filter?: (frame: ReceivedFrame) => boolean;
}

interface Waiter {
  tag: number;
  matchTag: boolean;
  accept: (frame: ReceivedFrame) => boolean;
  frames: ReceivedFrame[];
  max: number;
  sentAt: number;
  done: (frames: ReceivedFrame[]) => void;
}

const DRAIN_BATCH = 64;

/** One packet socket's requests and replies: tags, waiting, retransmission, listeners. */
export class FrameExchange {
  readonly mac: Uint8Array;
  readonly macText: string;
  mtu: number;
  readonly socket: FrameSocket;
  timeoutMs: number;
  retries: number;
  private readonly userTags: boolean;
  /** Pad requests to 60 bytes (the commands that build their own frames need to know). */
  protected readonly pad: boolean;
  private nextTag: number;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Set<(frame: ReceivedFrame) => void>();
  private polling = false;
  private paused = false;
  private closed = false;
  private readonly desc = new Uint32Array(DRAIN_BATCH * 3);
  private readonly sendDesc = new Uint32Array(2);
  /** The packet socket this exchange opened itself (AoeClient.open), if any. */
  protected endpoint: Endpoint | undefined;

  constructor(socket: FrameSocket, options: ClientOptions) {
    this.socket = socket;
    this.mac = options.mac.slice(0, 6);
    this.macText = formatMac(this.mac);
    this.mtu = options.mtu;
    this.timeoutMs = options.timeoutMs ?? 500;
    this.retries = options.retries ?? 3;
    this.userTags = options.userTags ?? false;
    this.pad = options.pad ?? false;
    this.nextTag = (Math.random() * 0x40000000) >>> 0;
  }

  get ifname(): string | undefined {
    return this.endpoint?.ifname;
  }

  /** Stops listening and closes the socket (when the client opened it). Pending requests fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopPolling();
    for (const w of [...this.waiters]) w.done(w.frames);
    this.waiters.clear();
    this.socket.close();
  }

  /**
   * Hands the socket to someone else (the load engine) until resume(): the
   * client stops draining the receive ring. Fails while requests are pending.
   */
  pause(): void {
    if (this.waiters.size > 0) throw new Error('cannot pause the client while requests are pending');
    this.paused = true;
    this.stopPolling();
  }

  resume(): void {
    this.paused = false;
    this.updatePolling();
  }

  /** A fresh tag: bit 31 clear (or set with userTags). */
  newTag(): number {
    const t = this.nextTag;
    this.nextTag = (this.nextTag + 1) & 0x7fffffff;
    return this.userTags ? (t | 0x80000000) >>> 0 : t;
  }

  /** Calls `fn` for every AoE frame received while it is registered; returns the unsubscribe function. */
  listen(fn: (frame: ReceivedFrame) => void): () => void {
    this.listeners.add(fn);
    this.updatePolling();
    return () => {
      this.listeners.delete(fn);
      this.updatePolling();
    };
  }

  /** Sends one frame as it is (no tag rewrite, no padding). */
  sendRaw(frame: Uint8Array): void {
    this.checkOpen();
    this.sendDesc[0] = 0;
    this.sendDesc[1] = frame.length;
    // The socket may refuse for a moment when its buffer is full; a control frame can wait for it.
    for (let attempt = 0; ; attempt++) {
      const r = this.socket.send(frame, this.sendDesc, 1);
      if (r === 1) return;
      if ((r === 0 || r === -EAGAIN || r === -ENOBUFS) && attempt < 100) continue; // nothing taken, or the queue is full
      throw new Error(`sending a ${frame.length}-byte frame failed: errno ${-r}`);
    }
  }

  /**
   * Sends `frame` once and collects replies for `timeoutMs` (or until `max`
   * have come). For protocol tests: the frame may be anything, the replies
   * are returned as copies in arrival order. No retransmission.
   */
  rawExchange(frame: Uint8Array, options: RawExchangeOptions = {}): Promise<ReceivedFrame[]> {
    this.checkOpen();
    const tag = frame.length >= AOE_TAG + 4 ? replyTag(frame, 0) : -1;
    const matchTag = (options.matchTag ?? true) && tag >= 0;
    const filter = options.filter ?? (() => true);
    return this.wait(frame, tag, matchTag, filter, options.max ?? Infinity, options.timeoutMs ?? this.timeoutMs);
  }

  /**
   * Sends a request built by `build(buf, tag)` and waits for the first reply
   * with that tag accepted by `accept`; without one within the timeout, sends it
   * again with a new tag, up to `retries` times. Rejects with TimeoutError.
   */
  async exchange(
    build: (buf: Uint8Array, tag: number) => number,
    accept: (frame: ReceivedFrame) => boolean,
    what: string,
    options: ExchangeOptions = {},
  ): Promise<ReceivedFrame> {
    this.checkOpen();
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const retries = options.retries ?? this.retries;
    const buf = new Uint8Array(Math.max(60, this.mtu + 14));
    let length = build(buf, 0);
    if (this.pad && length < 60) {
      buf.fill(0, length, 60);
      length = 60;
    }
    const frame = buf.subarray(0, length);
    for (let attempt = 0; attempt <= retries; attempt++) {
      const tag = this.newTag();
      writeBe32(frame, AOE_TAG, tag);
      const got = await this.wait(frame, tag, true, accept, 1, timeoutMs);
      if (got.length > 0) return got[0];
    }
    throw new TimeoutError(`${what}: no reply after ${retries + 1} tries of ${timeoutMs} ms`);
  }

  private wait(
    frame: Uint8Array,
    tag: number,
    matchTag: boolean,
    accept: (frame: ReceivedFrame) => boolean,
    max: number,
    timeoutMs: number,
  ): Promise<ReceivedFrame[]> {
    return new Promise((resolve, reject) => {
      const timing: { timer?: NodeJS.Timeout } = {};
      const waiter: Waiter = {
        tag,
        matchTag,
        accept,
        frames: [],
        max,
        sentAt: performance.now(),
        done: (frames) => {
          if (timing.timer !== undefined) clearTimeout(timing.timer);
          this.waiters.delete(waiter);
          this.updatePolling();
          resolve(frames);
        },
      };
      this.waiters.add(waiter);
      this.updatePolling();
      // Anything already in the ring is older than this request.
      waiter.sentAt = performance.now();
      try {
        this.sendRaw(frame);
      } catch (e) {
        this.waiters.delete(waiter);
        this.updatePolling();
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      timing.timer = setTimeout(() => waiter.done(waiter.frames), timeoutMs);
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the AoE client is closed');
  }

  private updatePolling(): void {
    const want = !this.closed && !this.paused && (this.waiters.size > 0 || this.listeners.size > 0);
    if (want && !this.polling) {
      this.polling = true;
      this.socket.startPolling(this.onReadable);
      this.drainRing(false);
    } else if (!want && this.polling) {
      this.stopPolling();
    }
  }

  private stopPolling(): void {
    if (this.polling) {
      this.polling = false;
      this.socket.stopPolling();
    }
  }

  private readonly onReadable = (status: number): void => {
    if (status < 0) {
      // A socket error (link gone): let pending requests time out and retry.
      return;
    }
    this.drainRing(true);
  };

  private drainRing(deliver: boolean): void {
    const ring = this.socket.ring;
    for (;;) {
      const n = this.socket.drain(this.desc, DRAIN_BATCH);
      if (n <= 0) return;
      for (let i = 0; i < n; i++) {
        const off = this.desc[i * 3];
        const len = this.desc[i * 3 + 1];
        const slot = this.desc[i * 3 + 2];
        if (deliver && isAoeFrame(ring, off, len)) this.deliver(ring.slice(off, off + len));
        this.socket.release(slot);
      }
      if (this.closed) return;
    }
  }

  private deliver(bytes: Uint8Array): void {
    const header = parseHeader(bytes);
    const now = performance.now();
    for (const fn of this.listeners) fn({ bytes, header, elapsedMs: 0 });
    for (const w of this.waiters) {
      if (w.matchTag && header.tag !== w.tag) continue;
      const frame: ReceivedFrame = { bytes, header, elapsedMs: now - w.sentAt };
      if (!w.accept(frame)) continue;
      w.frames.push(frame);
      if (w.frames.length >= w.max) w.done(w.frames);
    }
  }
}
