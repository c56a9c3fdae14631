// What the load engine counts and reports: the counters of the measured
// interval (requests, bytes, errors by kind, retransmits, batching), the
// latency histogram, the --progress intervals and the final result. The engine
// (load.ts) calls the count*() methods on its per-reply path; they only add to
// numbers in place, and count nothing outside the measured interval.

import { LatencyHistogram, LatencySummary } from './histogram';

export type LoadOp = 'read' | 'write' | 'mix';
export type LoadPattern = 'random' | 'seq';
/** How read data is checked: the test pattern (pattern.ts), all zeros (null backend), or not at all. */
export type VerifyMode = 'pattern' | 'zero' | 'none';

export interface LoadProgress {
  /** Since the end of the warm-up. */
  elapsedMs: number;
  /** Requests completed since the end of the warm-up (the last report equals the result's ops). */
  ops: number;
  /** Requests completed in this interval, and its length: the intervals add up to the result. */
  intervalOps: number;
  intervalMs: number;
  /** Rates over the last progress interval. */
  iops: number;
  mbps: number;
  errors: number;
  retransmits: number;
}

export interface LoadErrors {
  /** Replies with the E flag, by code (index 0 = total). */
  aoe: number;
  aoeByCode: number[];
  /** ATA status with BSY/DF/DRQ/ERR. */
  ata: number;
  /** Read data not matching what verify expects. */
  verify: number;
  /** Read replies shorter than the data asked for. */
  short: number;
  /** Requests given up after maxRetries retransmissions. */
  timeouts: number;
  /** Replies whose tag matches no request in flight (late answers to retransmitted ones). */
  stale: number;
  /** Send calls that failed with an error other than a full buffer, and socket errors. */
  socket: number;
}

export interface LoadResult {
  op: LoadOp;
  pattern: LoadPattern;
  sectors: number;
  window: number;
  /** Requests completed without error in the measured interval. */
  ops: number;
  reads: number;
  writes: number;
  /** Data bytes moved by those requests. */
  bytes: number;
  elapsedMs: number;
  iops: number;
  /** Megabytes (10^6 bytes) per second. */
  mbps: number;
  /** Microseconds, from just before the send() that first carried a request to the start of the turn that received its reply. */
  latency: LatencySummary;
  errors: LoadErrors;
  retransmits: number;
  /** Our own CPU time in the measured interval (all threads of this process). */
  cpu: { userMs: number; systemMs: number; percentOfOneCore: number };
  /** Average replies handled per turn (how well receives are batched). */
  repliesPerTurn: number;
  /** Average frames per send call. */
  framesPerSend: number;
  /** Text of the first error seen, for a human. */
  firstError?: string;
}

/** Counters of one run; the engine decides when measuring starts and stops. */
export class LoadStats {
  /** Counting has begun (the warm-up is over). */
  measuring = false;
  /** When the measured interval begins (planned, then actual). */
  measureFrom = 0;
  /** When the run stopped issuing requests (0 while it runs). */
  stoppedAt = 0;
  readonly histogram = new LatencyHistogram();

  private ops = 0;
  private reads = 0;
  private writes = 0;
  private bytes = 0;
  private retransmits = 0;
  private turns = 0;
  private repliesHandled = 0;
  private sends = 0;
  private framesSent = 0;
  private readonly errors: LoadErrors = {
    aoe: 0,
    aoeByCode: [0, 0, 0, 0, 0, 0, 0, 0],
    ata: 0,
    verify: 0,
    short: 0,
    timeouts: 0,
    stale: 0,
    socket: 0,
  };
  private firstError: string | undefined;
  private cpuAtMeasure: NodeJS.CpuUsage = { user: 0, system: 0 };
  private cpuAtStop: NodeJS.CpuUsage = { user: 0, system: 0 };
  private lastProgressAt = 0;
  private lastProgressOps = 0;
  private lastProgressBytes = 0;

  constructor(
    private readonly onProgress: ((p: LoadProgress) => void) | undefined,
    private readonly progressMs: number,
  ) {}

  /** The run begins at `now`; counting will begin at `measureFrom`. */
  plan(now: number, measureFrom: number): void {
    this.measureFrom = measureFrom;
    this.lastProgressAt = now;
  }

  /** Counting begins: every counter starts again from zero. */
  start(now: number): void {
    this.measuring = true;
    this.measureFrom = now;
    this.ops = this.reads = this.writes = this.bytes = 0;
    this.retransmits = this.turns = this.repliesHandled = this.sends = this.framesSent = 0;
    this.histogram.reset();
    this.errors.aoe = this.errors.ata = this.errors.verify = this.errors.short = 0;
    this.errors.timeouts = this.errors.stale = this.errors.socket = 0;
    this.errors.aoeByCode.fill(0);
    // Progress intervals start here: the warm-up is in no report.
    this.lastProgressAt = now;
    this.lastProgressOps = 0;
    this.lastProgressBytes = 0;
    this.cpuAtMeasure = process.cpuUsage();
  }

  /** A request completed without error; its latency counts from its first send. */
  countCompleted(write: boolean, bytes: number, latencyMs: number): void {
    if (!this.measuring) return;
    this.ops++;
    if (write) this.writes++;
    else this.reads++;
    this.bytes += bytes;
    this.histogram.recordMs(latencyMs);
  }

  /** One pass over the receive ring that took `handled` frames. */
  countTurn(handled: number): void {
    if (!this.measuring) return;
    this.turns++;
    this.repliesHandled += handled;
  }

  /** One send call that the socket took `sent` frames from. */
  countSend(sent: number): void {
    if (!this.measuring) return;
    this.sends++;
    this.framesSent += sent;
  }

  countRetransmit(): void {
    if (this.measuring) this.retransmits++;
  }

  countStale(): void {
    if (this.measuring) this.errors.stale++;
  }

  countAoeError(code: number, text: string): void {
    if (this.measuring) {
      this.errors.aoe++;
      this.errors.aoeByCode[code < 8 ? code : 0]++;
    }
    this.noteError(text);
  }

  countAtaError(text: string): void {
    if (this.measuring) this.errors.ata++;
    this.noteError(text);
  }

  countShortRead(text: string): void {
    if (this.measuring) this.errors.short++;
    this.noteError(text);
  }

  countVerifyError(text: string): void {
    if (this.measuring) this.errors.verify++;
    this.noteError(text);
  }

  countTimeout(text: string): void {
    if (this.measuring) this.errors.timeouts++;
    this.noteError(text);
  }

  /** A failed send or a socket error: counted during the warm-up too. */
  countSocketError(text: string): void {
    this.errors.socket++;
    this.noteError(text);
  }

  private noteError(text: string): void {
    if (this.firstError === undefined) this.firstError = text;
  }

  /** Reports the interval since the last report when it is progressMs long. */
  progress(now: number): void {
    if (!this.measuring || now - this.lastProgressAt < this.progressMs) return;
    this.report(now);
  }

  /** Reports the interval since the last report (no requests count after stop(): it ends the last one). */
  private report(now: number): void {
    const cb = this.onProgress;
    if (cb === undefined) return;
    const intervalMs = now - this.lastProgressAt;
    const dt = Math.max(1e-6, intervalMs / 1000);
    cb({
      elapsedMs: now - this.measureFrom,
      ops: this.ops,
      intervalOps: this.ops - this.lastProgressOps,
      intervalMs,
      iops: (this.ops - this.lastProgressOps) / dt,
      mbps: (this.bytes - this.lastProgressBytes) / dt / 1e6,
      errors: this.errorCount(),
      retransmits: this.retransmits,
    });
    this.lastProgressAt = now;
    this.lastProgressOps = this.ops;
    this.lastProgressBytes = this.bytes;
  }

  private errorCount(): number {
    const e = this.errors;
    return e.aoe + e.ata + e.verify + e.short + e.timeouts + e.socket;
  }

  /** The run stops issuing requests: the measured interval ends here. */
  stop(now: number): void {
    this.stoppedAt = now;
    this.cpuAtStop = process.cpuUsage();
    if (!this.measuring) this.start(now);
    // The tail since the last report, so that the reports add up to the result.
    if (now > this.lastProgressAt) this.report(now);
  }

  /** The result of the measured interval, for a run of this shape. */
  result(run: Pick<LoadResult, 'op' | 'pattern' | 'sectors' | 'window'>): LoadResult {
    const elapsedMs = Math.max(1e-3, this.stoppedAt - this.measureFrom);
    const user = (this.cpuAtStop.user - this.cpuAtMeasure.user) / 1000;
    const system = (this.cpuAtStop.system - this.cpuAtMeasure.system) / 1000;
    return {
      op: run.op,
      pattern: run.pattern,
      sectors: run.sectors,
      window: run.window,
      ops: this.ops,
      reads: this.reads,
      writes: this.writes,
      bytes: this.bytes,
      elapsedMs,
      iops: (this.ops * 1000) / elapsedMs,
      mbps: this.bytes / 1e3 / elapsedMs,
      latency: this.histogram.summary(),
      errors: { ...this.errors, aoeByCode: [...this.errors.aoeByCode] },
      retransmits: this.retransmits,
      cpu: { userMs: user, systemMs: system, percentOfOneCore: ((user + system) / elapsedMs) * 100 },
      repliesPerTurn: this.turns > 0 ? this.repliesHandled / this.turns : 0,
      framesPerSend: this.sends > 0 ? this.framesSent / this.sends : 0,
      firstError: this.firstError,
    };
  }
}

/** Total of the error counters that mean a request failed. */
export function failedRequests(r: LoadResult): number {
  const e = r.errors;
  return e.aoe + e.ata + e.verify + e.short + e.timeouts + e.socket;
}
