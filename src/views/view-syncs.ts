// The group commit of an export with views: one fdatasync per view written
// since the last one, all submitted together, the commit done when the last
// completes (with the first failure, if any). The engine asks through the
// export's resolver (src/target/view-stores.ts), never for a view by name.

import * as fs from 'node:fs';
import type { View } from './view';

export class ViewSyncs {
  /** The descriptors one group commit syncs, and how many of them are still running. */
  private readonly fds: number[] = [];
  private left = 0;
  private error = 0;

  constructor(
    /** The export's views by index (null where one was dropped). */
    private readonly list: readonly (View | null)[],
    private readonly imageFd: number,
  ) {}

  /**
   * Starts a group commit: the descriptors to fdatasync are fd(0 .. n-1),
   * the views written since the last one (or the image, when none was, so
   * that a flush still has one sync to wait for).
   */
  start(): number {
    const fds = this.fds;
    fds.length = 0;
    for (let i = 0; i < this.list.length; i++) {
      const v = this.list[i];
      if (v !== null && v.dirty) {
        v.dirty = false;
        fds.push(v.store.fd);
      }
    }
    if (fds.length === 0) fds.push(this.imageFd);
    this.left = fds.length;
    this.error = 0;
    return fds.length;
  }

  fd(i: number): number {
    return this.fds[i];
  }

  /** One fdatasync of the group commit finished; true when it was the last, with `result` the first failure (or 0). */
  done(result: number): boolean {
    if (result < 0 && this.error === 0) this.error = result;
    return --this.left === 0;
  }

  get result(): number {
    return this.error;
  }

  /** fdatasync of every view written since the last group commit (at stop). Throws the first failure. */
  syncAllNow(): void {
    for (const v of this.list) {
      if (v !== null && v.dirty) {
        fs.fdatasyncSync(v.store.fd);
        v.dirty = false;
      }
    }
  }
}
