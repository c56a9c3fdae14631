// When the frame loop busy-polls and when it sleeps. Polling after a batch
// saves the next request a wake-up, but only if the next request comes
// while we poll; on a CPU shared with the initiator, or behind a slow one,
// the poll finds nothing and only burns the CPU someone else needs. So the
// policy counts, over each sample of polls, how many found work before their
// window ran out, and stops polling for a while (backing off, doubling) when
// too few did. Pure: the clock is passed in.

/** Polls per sample: the hit ratio is judged over this many. */
export const SPIN_SAMPLE = 64;
/** Below this share of polls that found work, polling stops for a while. */
export const SPIN_MIN_HIT_RATIO = 0.5;
/** First pause of polling after a poor sample, ms; doubles per poor sample up to SPIN_BACKOFF_MAX_MS. */
export const SPIN_BACKOFF_MS = 50;
export const SPIN_BACKOFF_MAX_MS = 3200;

export class SpinPolicy {
  /** Polls run, and those that found work before their window ran out. */
  spins = 0;
  hits = 0;
  /** Times polling was paused because it did not pay. */
  backoffs = 0;
  private sampleSpins = 0;
  private sampleHits = 0;
  private pausedUntil = -Infinity;
  private nextPauseMs = SPIN_BACKOFF_MS;

  constructor(
    /** How long one poll waits for work, ms (0: never poll). */
    readonly windowMs: number,
    /** false: poll after every batch whatever it finds (spin-policy = always). */
    readonly adaptive = true,
  ) {}

  /** Whether to poll now (`now` in ms). */
  shouldSpin(now: number): boolean {
    return this.windowMs > 0 && now >= this.pausedUntil;
  }

  /** Whether polling is paused at `now`, for stats. */
  paused(now: number): boolean {
    return this.windowMs > 0 && now < this.pausedUntil;
  }

  /** One poll ended at `now`; `hit`: it found work. */
  record(hit: boolean, now: number): void {
    this.spins++;
    this.sampleSpins++;
    if (hit) {
      this.hits++;
      this.sampleHits++;
    }
    if (this.sampleSpins < SPIN_SAMPLE) return;
    const paid = this.sampleHits >= SPIN_MIN_HIT_RATIO * this.sampleSpins;
    this.sampleSpins = 0;
    this.sampleHits = 0;
    if (paid || !this.adaptive) {
      this.nextPauseMs = SPIN_BACKOFF_MS;
      return;
    }
    this.backoffs++;
    this.pausedUntil = now + this.nextPauseMs;
    this.nextPauseMs = Math.min(2 * this.nextPauseMs, SPIN_BACKOFF_MAX_MS);
  }
}
