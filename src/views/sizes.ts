// The bytes views and snapshots hold of their own, as stats and metrics show
// them: measured off the serving thread (FIEMAP on a libuv pool thread,
// without writing dirty data back first) and kept in memory, so that asking
// for stats reads figures and never the file system. Measuring hundreds of
// views on the serving thread delayed every reply by tens of milliseconds,
// and anyone who could reach the metrics port could repeat it.

import { performance } from 'node:perf_hooks';

/** Figures older than this are measured again when stats are asked for (what was written or changed since). */
export const SIZES_REFRESH_MS = 3000;
/**
 * A view not written since is measured again after this: data written back
 * late (writes without a flush) and blocks a deleted snapshot gives back
 * (XFS frees them in the background) show up in the figures.
 */
export const SIZES_FULL_REFRESH_MS = 30_000;

/** Starts a measurement when figures are read and old, or when what they measure changed; one at a time. */
export class Remeasure {
  /** performance.now() when the last measurement started. */
  private startedAt = -Infinity;
  private running = false;
  private again = false;
  /** The message of the last failure, told once until it changes. */
  private lastFailure: string | undefined;

  constructor(
    private readonly measure: () => Promise<void>,
    private readonly failed: (e: Error) => void,
  ) {}

  /** The figures are being read: measure again (not waited for) when they are old. */
  reading(): void {
    if (!this.running && performance.now() - this.startedAt >= SIZES_REFRESH_MS) this.start();
  }

  /** What is measured changed: measure now, or right after the measurement that runs. */
  changed(): void {
    if (this.running) this.again = true;
    else this.start();
  }

  private start(): void {
    this.running = true;
    this.again = false;
    this.startedAt = performance.now();
    this.measure()
      .then(
        () => (this.lastFailure = undefined),
        (e: Error) => {
          if (e.message !== this.lastFailure) this.failed(e);
          this.lastFailure = e.message;
        },
      )
      .finally(() => {
        this.running = false;
        if (this.again) this.start();
      });
  }
}
