// Group commit for one export: writes of a sync export, and flushes of any
// export, wait for an fdatasync that starts after they completed. While one
// runs, newcomers gather for the next, so one fdatasync covers every write
// that arrived meanwhile. This class holds the queues and the policy; the
// engine submits the fdatasync and answers the requests.

/**
 * A group commit normally waits until the export has no write left between
 * submission and completion, so that one fdatasync covers all of them; under
 * a stream of writes that never lets up it starts after this long anyway.
 */
export const GROUP_COMMIT_MAX_WAIT_MS = 1;

export class GroupCommit {
  /** Request slots waiting for the next fdatasync. */
  private readonly waiting: Int32Array;
  private waitingN = 0;
  /** Request slots the running fdatasync answers. */
  private readonly batch: Int32Array;
  private batchN = 0;
  private running = false;
  /** Writes of the export between submission and completion: an fdatasync waits for them. */
  private writesOut = 0;
  /** When the first of the waiting requests joined (performance.now() ms). */
  private waitingSince = 0;

  /** `requestSlots` bounds how many requests can wait at once. */
  constructor(requestSlots: number) {
    this.waiting = new Int32Array(requestSlots);
    this.batch = new Int32Array(requestSlots);
  }

  /** Request slot `q` waits for the next fdatasync; `now` is the engine's clock. */
  join(q: number, now: number): void {
    if (this.waitingN === 0) this.waitingSince = now;
    this.waiting[this.waitingN++] = q;
  }

  /** A write of the export went to the kernel. */
  writeSubmitted(): void {
    this.writesOut++;
  }

  /** A write of the export completed; true when requests wait (they may have waited for this one). */
  writeCompleted(): boolean {
    this.writesOut--;
    return this.waitingN > 0;
  }

  /** Requests wait and no fdatasync runs: due() decides whether one starts now. */
  get pending(): boolean {
    return this.waitingN > 0 && !this.running;
  }

  /** due() looks at the clock: a write is still on its way to the file. */
  get waitsForWrites(): boolean {
    return this.writesOut > 0;
  }

  /**
   * Whether the fdatasync of the waiting requests starts now: they are
   * pending, and no write is still on its way to the file (it completes in
   * microseconds, an fdatasync takes hundreds) or the first of them has
   * waited GROUP_COMMIT_MAX_WAIT_MS. `now` is only read while waitsForWrites.
   */
  due(now: number): boolean {
    if (!this.pending) return false;
    return this.writesOut === 0 || now - this.waitingSince >= GROUP_COMMIT_MAX_WAIT_MS;
  }

  /** The waiting requests become the batch of the fdatasync the caller submits now. */
  start(): void {
    this.batch.set(this.waiting.subarray(0, this.waitingN));
    this.batchN = this.waitingN;
    this.waitingN = 0;
    this.running = true;
  }

  /** Requests the running fdatasync answers. */
  get batchSize(): number {
    return this.batchN;
  }

  /** Request slot i of the running fdatasync's batch. */
  batchRequest(i: number): number {
    return this.batch[i];
  }

  /** The fdatasync completed and its batch was answered; true when requests wait for the next one. */
  finish(): boolean {
    this.batchN = 0;
    this.running = false;
    return this.waitingN > 0;
  }
}
