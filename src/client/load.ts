// The load engine: keeps `window` ATA requests in flight against one target,
// as fast as the target answers, and measures what it gets.
//
// One turn = one wake-up of the socket: drain every reply in the receive ring,
// complete and reissue their slots in place, retransmit what has timed out,
// then send every queued request with one PacketSocket.send() (sendmmsg).
// Request state lives in typed arrays indexed by a window slot; the transmit
// frames are preallocated in one arena with their headers written once; tags
// are (generation << 16 | slot) with bit 31 clear, so a reply finds its slot
// without a lookup and a late reply to a retransmitted request is recognised.
// Nothing is allocated per frame. What a run counts and reports (errors,
// latency, progress lines, the result) is LoadStats' (load-stats.ts).

import { performance } from 'node:perf_hooks';
import { EAGAIN, ENOBUFS } from '../native/errno';
import { LoadErrors, LoadOp, LoadPattern, LoadProgress, LoadResult, LoadStats, VerifyMode, failedRequests } from './load-stats';
import { PATTERN_IMAGE_MAX_SECTORS, PatternImage, checkSector, fillSector, isZero } from './pattern';
import { hasError, isAoeFrame, isResponse, replyCommand, replyTag } from './replies';
import { FrameAddress, lba28Field, writeAtaRequest, writeBe32, writeLba48 } from './requests';
import { FrameSocket } from './transport';
import {
  AFLAG_EXTENDED,
  AFLAG_WRITE,
  AOE_ERROR,
  AOE_TAG,
  ATA_AFLAGS,
  ATA_CMD,
  ATA_DATA,
  ATA_ERR,
  ATA_HEADER_LENGTH,
  ATA_LBA,
  ATA_STATUS,
  ATA_STATUS_FAILURE_MASK,
  AtaOpcode,
  Command,
  SECTOR_SIZE,
} from './wire';

/** Longest uninterrupted busy poll of the load engine. */
const SPIN_MAX_MS = 2;

// The run's types and counters live in load-stats.ts; callers import them from here.
export type { LoadErrors, LoadOp, LoadPattern, LoadProgress, LoadResult, VerifyMode };
export { failedRequests };

export interface LoadOptions {
  socket: FrameSocket;
  /** Our MAC. */
  srcMac: Uint8Array;
  target: { shelf: number; slot: number; mac: Uint8Array };
  op: LoadOp;
  /** Share of reads for op 'mix', 0..100 (default 50). */
  readPercent?: number;
  pattern: LoadPattern;
  /** Sectors per request (1..255; must not exceed what the target accepts). */
  sectors: number;
  /** Requests in flight (1..65535). */
  window: number;
  /** First LBA of the range (default 0). */
  lbaStart?: number;
  /** Size of the range in sectors. */
  lbaCount: number;
  /** Run for this long after the warm-up (default 5000 ms unless `requests` is given). */
  durationMs?: number;
  /** Or stop after this many completed requests (warm-up included). */
  requests?: number;
  /** Counters start after this long (default 0). */
  warmupMs?: number;
  verify?: VerifyMode;
  /** Retransmit a request after this long without a reply (default 250 ms). */
  timeoutMs?: number;
  /** Give a request up after this many retransmissions (default 8). */
  maxRetries?: number;
  /** Use 28-bit READ/WRITE SECTORS instead of the EXT commands. */
  lba28?: boolean;
  /** Seed of the LBA and op generator. */
  seed?: number;
  /** Called about every progressMs with the counters so far. */
  onProgress?: (p: LoadProgress) => void;
  progressMs?: number;
  /** Most frames taken from the ring per drain call (default 256). */
  drainBatch?: number;
  /** Receive/send passes per wake-up while replies keep coming (default 1). */
  passesPerWake?: number;
  /**
   * After a wake-up, keep polling the ring (no system call) for this long
   * after the last reply before sleeping again (default 0: never). A
   * sleeping generator must be woken for every reply, and the target pays
   * for that wake-up inside its send(); on a machine where the generator has
   * a core to itself, polling takes that cost off every target alike.
   */
  spinUs?: number;
  /**
   * The pattern of the range, computed once, for checking reads and filling
   * writes with memcmp/memcpy. Made here when not given and the range is at
   * most 256 MiB; larger ranges are checked sector by sector in JavaScript.
   */
  image?: PatternImage;
}

/** Runs one load and resolves with its result. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return new LoadEngine(options).run();
}

/** The polling load generator: issues requests into window slots, completes them from the ring, retransmits. */
export class LoadEngine {
  private readonly o: Required<Omit<LoadOptions, 'onProgress' | 'requests' | 'seed' | 'image'>> & LoadOptions;
  private readonly socket: FrameSocket;
  private readonly W: number;
  private readonly stride: number;
  private readonly arena: Uint8Array;
  private readonly tag: Uint32Array;
  private readonly gen: Uint16Array;
  private readonly lba: Float64Array;
  private readonly isWrite: Uint8Array;
  private readonly length: Uint32Array;
  private readonly firstSent: Float64Array;
  private readonly lastSent: Float64Array;
  private readonly retries: Uint8Array;
  /** 0 idle, 1 queued for sending, 2 in flight. */
  private readonly state: Uint8Array;
  private readonly queue: Int32Array;
  private queued = 0;
  private readonly sendDesc: Uint32Array;
  private readonly drainDesc: Uint32Array;
  private readonly image: PatternImage | null = null;
  private readonly drainBatch: number;
  private readonly stats: LoadStats;

  private rng: number;
  private seqCursor = 0;
  private readonly blocks: number;
  private issued = 0;
  private completedTotal = 0;
  private inFlight = 0;
  private running = false;
  private finished = false;

  private stopAt = Infinity;
  private lastTimeoutScan = 0;
  private retryScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private resolve: ((r: LoadResult) => void) | undefined;

  constructor(options: LoadOptions) {
    if (!(options.sectors >= 1 && options.sectors <= 255)) throw new RangeError(`sectors must be 1..255, not ${options.sectors}`);
    if (!(options.window >= 1 && options.window <= 65535)) throw new RangeError(`window must be 1..65535, not ${options.window}`);
    if (!(options.lbaCount >= options.sectors)) {
      throw new RangeError(`the LBA range (${options.lbaCount} sectors) is smaller than one request (${options.sectors})`);
    }
    this.o = {
      ...options,
      readPercent: options.readPercent ?? 50,
      lbaStart: options.lbaStart ?? 0,
      durationMs: options.durationMs ?? (options.requests !== undefined ? Infinity : 5000),
      warmupMs: options.warmupMs ?? 0,
      verify: options.verify ?? 'none',
      timeoutMs: options.timeoutMs ?? 250,
      maxRetries: options.maxRetries ?? 8,
      lba28: options.lba28 ?? false,
      progressMs: options.progressMs ?? 1000,
      drainBatch: options.drainBatch ?? 256,
      passesPerWake: options.passesPerWake ?? 1,
      spinUs: options.spinUs ?? 0,
    };
    this.socket = options.socket;
    this.W = options.window;
    const frameMax = ATA_HEADER_LENGTH + options.sectors * SECTOR_SIZE;
    this.stride = Math.ceil(frameMax / 64) * 64;
    this.arena = new Uint8Array(this.W * this.stride);
    this.tag = new Uint32Array(this.W);
    this.gen = new Uint16Array(this.W);
    this.lba = new Float64Array(this.W);
    this.isWrite = new Uint8Array(this.W);
    this.length = new Uint32Array(this.W);
    this.firstSent = new Float64Array(this.W);
    this.lastSent = new Float64Array(this.W);
    this.retries = new Uint8Array(this.W);
    this.state = new Uint8Array(this.W);
    this.queue = new Int32Array(this.W);
    this.sendDesc = new Uint32Array(this.W * 2);
    this.drainBatch = this.o.drainBatch;
    this.drainDesc = new Uint32Array(this.drainBatch * 3);
    this.stats = new LoadStats(options.onProgress, this.o.progressMs);
    this.rng = (options.seed ?? 0x2545f491) | 0 || 1;
    this.blocks = Math.floor(options.lbaCount / options.sectors);
    const start = this.o.lbaStart;
    const wantsPattern = this.o.verify === 'pattern' || this.o.op !== 'read';
    if (options.image && options.image.covers(start, options.lbaCount)) this.image = options.image;
    else if (wantsPattern && options.lbaCount <= PATTERN_IMAGE_MAX_SECTORS)
      this.image = new PatternImage(start, options.lbaCount);

    // Every slot's frame gets its fixed header once; a request only rewrites tag, op and LBA.
    const addr: FrameAddress = {
      dst: options.target.mac,
      src: options.srcMac,
      shelf: options.target.shelf,
      slot: options.target.slot,
    };
    for (let s = 0; s < this.W; s++) writeAtaRequest(this.arena, s * this.stride, addr, 0, 0, 0, options.sectors, 0, 0);
  }

  run(): Promise<LoadResult> {
    return new Promise<LoadResult>((resolve) => {
      this.resolve = resolve;
      const now = performance.now();
      this.lastTimeoutScan = now;
      this.stats.plan(now, now + this.o.warmupMs);
      this.stopAt = now + this.o.warmupMs + this.o.durationMs;
      this.running = true;
      if (this.o.warmupMs <= 0) this.startMeasuring(now);
      // Nothing left over from an earlier user of the socket may count as a reply.
      this.discardRing();
      this.socket.startPolling(this.onReadable);
      this.timer = setInterval(this.onTimer, Math.min(5, Math.max(1, this.o.timeoutMs / 4)));
      for (let s = 0; s < this.W; s++) {
        if (!this.canIssue()) break;
        this.issue(s, now);
      }
      this.flush();
    });
  }

  private discardRing(): void {
    for (;;) {
      const n = this.socket.drain(this.drainDesc, this.drainBatch);
      if (n <= 0) return;
      for (let i = 0; i < n; i++) this.socket.release(this.drainDesc[i * 3 + 2]);
    }
  }

  private canIssue(): boolean {
    return this.running && (this.o.requests === undefined || this.issued < this.o.requests);
  }

  /** The warm-up is over: counting starts, and the run lasts durationMs from here. */
  private startMeasuring(now: number): void {
    this.stats.start(now);
    this.stopAt = now + this.o.durationMs;
  }

  private nextRandom(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x;
    return (x >>> 0) / 4294967296;
  }

  /** Prepares a new request in slot `s` and queues it. */
  private issue(s: number, now: number): void {
    const o = this.o;
    const n = o.sectors;
    let lba: number;
    if (o.pattern === 'seq') {
      lba = o.lbaStart + this.seqCursor;
      this.seqCursor += n;
      if (this.seqCursor + n > o.lbaCount) this.seqCursor = 0;
    } else {
      lba = o.lbaStart + Math.floor(this.nextRandom() * this.blocks) * n;
    }
    const write = o.op === 'write' || (o.op === 'mix' && this.nextRandom() * 100 >= o.readPercent);
    const base = s * this.stride;
    const a = this.arena;
    if (o.lba28) {
      a[base + ATA_AFLAGS] = write ? AFLAG_WRITE : 0;
      a[base + ATA_CMD] = write ? AtaOpcode.WriteSectors : AtaOpcode.ReadSectors;
      writeLba48(a, base + ATA_LBA, lba28Field(lba));
    } else {
      a[base + ATA_AFLAGS] = write ? AFLAG_EXTENDED | AFLAG_WRITE : AFLAG_EXTENDED;
      a[base + ATA_CMD] = write ? AtaOpcode.WriteSectorsExt : AtaOpcode.ReadSectorsExt;
      writeLba48(a, base + ATA_LBA, lba);
    }
    if (write) {
      if (this.image !== null) this.image.copyTo(a, base + ATA_DATA, lba, n);
      else for (let i = 0; i < n; i++) fillSector(a, base + ATA_DATA + i * SECTOR_SIZE, lba + i);
      this.length[s] = ATA_HEADER_LENGTH + n * SECTOR_SIZE;
    } else {
      this.length[s] = ATA_HEADER_LENGTH;
    }
    this.lba[s] = lba;
    this.isWrite[s] = write ? 1 : 0;
    this.retries[s] = 0;
    this.firstSent[s] = now;
    this.setTag(s);
    this.issued++;
    this.inFlight++;
    this.enqueue(s);
  }

  private setTag(s: number): void {
    const g = (this.gen[s] + 1) & 0x7fff;
    this.gen[s] = g;
    const t = ((g << 16) | s) >>> 0;
    this.tag[s] = t;
    writeBe32(this.arena, s * this.stride + AOE_TAG, t);
  }

  private enqueue(s: number): void {
    if (this.state[s] === 1) return;
    this.state[s] = 1;
    this.queue[this.queued++] = s;
  }

  /** Sends every queued request in one call; keeps what the socket did not take. */
  private flush(): void {
    const q = this.queued;
    if (q === 0) return;
    const d = this.sendDesc;
    for (let i = 0; i < q; i++) {
      const s = this.queue[i];
      d[i * 2] = s * this.stride;
      d[i * 2 + 1] = this.length[s];
    }
    // Latency counts from the moment the request is handed to the kernel: on
    // veth the target may well have answered before send() returns.
    const now = performance.now();
    const r = this.socket.send(this.arena, d, q);
    const sent = r > 0 ? r : 0;
    for (let i = 0; i < sent; i++) {
      const s = this.queue[i];
      this.state[s] = 2;
      this.lastSent[s] = now;
      if (this.retries[s] === 0) this.firstSent[s] = now;
    }
    this.stats.countSend(sent);
    if (sent < q) {
      this.queue.copyWithin(0, sent, q);
      this.queued = q - sent;
      if (r < 0 && r !== -EAGAIN && r !== -ENOBUFS) {
        this.stats.countSocketError(`send failed: errno ${-r}`);
      }
      this.scheduleRetry();
    } else {
      this.queued = 0;
    }
  }

  private scheduleRetry(): void {
    if (this.retryScheduled) return;
    this.retryScheduled = true;
    setImmediate(this.onRetry);
  }

  private readonly onRetry = (): void => {
    this.retryScheduled = false;
    if (!this.finished) this.turn();
  };

  private readonly onReadable = (status: number): void => {
    if (status < 0) {
      this.stats.countSocketError(`socket error: errno ${-status}`);
    }
    if (!this.finished) this.turn();
  };

  private readonly onTimer = (): void => {
    if (!this.finished) this.turn();
  };

  /**
   * One wake-up: receive, complete, reissue, retransmit, send. With
   * passesPerWake > 1 it looks at the ring again right after sending and goes
   * on while replies keep arriving (on veth the target often answers before
   * send() returns), saving trips through the event loop.
   */
  private turn(): void {
    let now = performance.now();
    if (!this.stats.measuring && now >= this.stats.measureFrom) this.startMeasuring(now);
    if (this.running && now >= this.stopAt) this.stop(now);
    for (let pass = 0; ; pass++) {
      const handled = this.receive(now);
      if (pass > 0 && handled === 0) break;
      this.stats.countTurn(handled);
      if (pass === 0 && now - this.lastTimeoutScan >= Math.min(this.o.timeoutMs / 4, 5)) {
        now = performance.now();
        this.lastTimeoutScan = now;
        this.scanTimeouts(now);
        if (this.running) this.stats.progress(now);
      }
      this.flush();
      if (pass + 1 >= this.o.passesPerWake || this.finished) break;
      now = performance.now();
    }
    if (this.o.spinUs > 0 && !this.finished) this.spin();
    if (this.inFlight === 0 && this.queued === 0 && !this.canIssue()) {
      if (this.running) this.stop(performance.now());
      this.finish();
    }
  }

  /**
   * Busy polling (spinUs): receives and sends whenever the ring has a frame,
   * until nothing has come for spinUs, at most SPIN_MAX_MS in one go so that
   * timers (timeouts, progress, the end of the run) get their turn.
   */
  private spin(): void {
    const sock = this.socket;
    if (sock.ready === undefined) return;
    const idleMs = this.o.spinUs / 1000;
    const start = performance.now();
    let last = start;
    for (;;) {
      const now = performance.now();
      if (now - last >= idleMs || now - start >= SPIN_MAX_MS || now >= this.stopAt || this.inFlight === 0) return;
      if (!sock.ready()) continue;
      this.stats.countTurn(this.receive(now));
      this.flush();
      last = now;
    }
  }

  /** Drains the ring and handles every reply in it; returns how many frames it took. */
  private receive(now: number): number {
    const ring = this.socket.ring;
    const desc = this.drainDesc;
    let handled = 0;
    for (;;) {
      const n = this.socket.drain(desc, this.drainBatch);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        const i3 = i * 3;
        this.handle(ring, desc[i3], desc[i3 + 1], now);
        this.socket.release(desc[i3 + 2]);
      }
      handled += n;
      if (n < this.drainBatch) break;
    }
    return handled;
  }

  private handle(ring: Uint8Array, off: number, len: number, now: number): void {
    if (len < ATA_HEADER_LENGTH || !isAoeFrame(ring, off, len)) return;
    if (!isResponse(ring, off) || replyCommand(ring, off) !== Command.Ata) return;
    const t = replyTag(ring, off);
    const s = t & 0xffff;
    if (s >= this.W || this.tag[s] !== t || this.state[s] === 0) {
      this.stats.countStale();
      return;
    }
    if (this.state[s] === 1) {
      // Answered while its retransmission waits in the queue: drop it from the queue.
      this.unqueue(s);
    }
    this.state[s] = 0;
    this.inFlight--;
    this.completedTotal++;
    if (this.replyOk(ring, off, len, s) && this.running) {
      this.stats.countCompleted(this.isWrite[s] !== 0, this.o.sectors * SECTOR_SIZE, now - this.firstSent[s]);
    }
    if (this.canIssue()) this.issue(s, now);
  }

  /** Whether the reply in slot `s` completes its request; counts the error when it does not. */
  private replyOk(ring: Uint8Array, off: number, len: number, s: number): boolean {
    const n = this.o.sectors;
    if (hasError(ring, off)) {
      const code = ring[off + AOE_ERROR];
      this.stats.countAoeError(code, `AoE error ${code} for ${this.isWrite[s] ? 'write' : 'read'} at LBA ${this.lba[s]}`);
      return false;
    }
    const status = ring[off + ATA_STATUS];
    if ((status & ATA_STATUS_FAILURE_MASK) !== 0) {
      this.stats.countAtaError(
        `ATA status 0x${status.toString(16)} error 0x${ring[off + ATA_ERR].toString(16)} at LBA ${this.lba[s]}`,
      );
      return false;
    }
    if (this.isWrite[s] !== 0) return true;
    if (len < ATA_HEADER_LENGTH + n * SECTOR_SIZE) {
      this.stats.countShortRead(`read reply of ${len} bytes for ${n} sectors at LBA ${this.lba[s]}`);
      return false;
    }
    if (this.o.verify === 'pattern') return this.holdsPattern(ring, off + ATA_DATA, this.lba[s]);
    if (this.o.verify === 'zero' && !isZero(ring, off + ATA_DATA, n * SECTOR_SIZE)) {
      this.stats.countVerifyError(`read data of LBA ${this.lba[s]} is not zero`);
      return false;
    }
    return true;
  }

  /** Whether read data at ring[off..] is the pattern of its sectors; counts the first sector that is not. */
  private holdsPattern(ring: Uint8Array, off: number, lba: number): boolean {
    const n = this.o.sectors;
    // The image answers "all equal" in one memcmp; the sector loop finds what differs.
    if (this.image !== null && this.image.matches(ring, off, lba, n)) return true;
    for (let i = 0; i < n; i++) {
      const bad = checkSector(ring, off + i * SECTOR_SIZE, lba + i);
      if (bad >= 0) {
        this.stats.countVerifyError(`read data of LBA ${lba + i} differs from the pattern at byte ${bad}`);
        return false;
      }
    }
    return true;
  }

  private unqueue(s: number): void {
    let j = 0;
    for (let i = 0; i < this.queued; i++) {
      const x = this.queue[i];
      if (x !== s) this.queue[j++] = x;
    }
    this.queued = j;
  }

  private scanTimeouts(now: number): void {
    const limit = this.o.timeoutMs;
    for (let s = 0; s < this.W; s++) {
      if (this.state[s] !== 2 || now - this.lastSent[s] < limit) continue;
      if (this.retries[s] >= this.o.maxRetries) {
        this.state[s] = 0;
        this.inFlight--;
        this.stats.countTimeout(
          `no reply for ${this.isWrite[s] ? 'write' : 'read'} at LBA ${this.lba[s]} after ${this.retries[s] + 1} sends`,
        );
        if (this.canIssue()) this.issue(s, now);
        continue;
      }
      this.retries[s]++;
      this.stats.countRetransmit();
      this.setTag(s);
      this.enqueue(s);
    }
  }

  private stop(now: number): void {
    this.running = false;
    // Stopped in the warm-up: the empty measured interval starts here, as in startMeasuring().
    if (!this.stats.measuring) this.stopAt = now + this.o.durationMs;
    this.stats.stop(now);
  }

  /** Stops issuing new requests; the run ends once those in flight are answered or given up. */
  stopNow(): void {
    if (this.running) this.stop(performance.now());
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.socket.stopPolling();
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.stats.stoppedAt === 0) this.stop(performance.now());
    this.resolve?.(this.stats.result({ op: this.o.op, pattern: this.o.pattern, sectors: this.o.sectors, window: this.W }));
  }
}
