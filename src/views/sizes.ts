// The bytes views and snapshots hold of their own, as stats and metrics show
// them: measured off the serving thread (FIEMAP on a libuv pool thread,
// without writing dirty data back first) and kept in memory, so that asking
// for stats reads figures and never the file system. Measuring hundreds of
// views on the serving thread delayed every reply by tens of milliseconds,
// and anyone who could reach the metrics port could repeat it.

import { performance } from 'node:perf_hooks';
import type { View } from './view';

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

/** The bytes an export's views have of their own, as stats show them: measured off the serving thread, kept per view. */
export class ViewSizes {
  private readonly again: Remeasure;

  constructor(
    /** The export's views by index (null where one was dropped). */
    private readonly list: readonly (View | null)[],
    private readonly unsharedBytesAsync: (fd: number) => Promise<number>,
    private readonly closed: () => boolean,
    failed: (e: Error) => void,
  ) {
    this.again = new Remeasure(() => this.measure(), failed);
  }

  /** All together, as last measured (at most SIZES_REFRESH_MS ago when asked for again and again). */
  ownBytes(): number {
    this.again.reading();
    let n = 0;
    for (const v of this.list) if (v !== null) n += v.ownBytes;
    return n;
  }

  /** Views were added or written: measure those not measured since. */
  changed(): void {
    this.again.changed();
  }

  /** Snapshots of the views were taken, deleted or put back: every view's own bytes may have changed. */
  allChanged(): void {
    for (const v of this.list) if (v !== null) v.unmeasured = true;
    this.again.changed();
  }

  /** Measures the views written since they were last measured (or long ago), one at a time on a pool thread. */
  private async measure(): Promise<void> {
    let failure: Error | undefined;
    const old = performance.now() - SIZES_FULL_REFRESH_MS;
    for (const v of this.list.slice()) {
      if (this.closed()) return;
      if (v === null || (!v.unmeasured && v.measuredAt > old)) continue;
      v.unmeasured = false;
      v.measuredAt = performance.now();
      const store = v.store;
      try {
        const bytes = await this.unsharedBytesAsync(store.fd);
        // A view reset or dropped meanwhile was measured through a descriptor closed since.
        if (v.store === store && this.list[v.index] === v) v.ownBytes = bytes;
        else v.unmeasured = true;
      } catch (e) {
        v.unmeasured = true;
        if (v.store === store && this.list[v.index] === v) failure ??= e as Error;
      }
    }
    if (failure !== undefined) throw failure;
  }
}
