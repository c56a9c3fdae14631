// Reads of blocks no view wrote go to the image (one page cache for every
// view), but only while the process holds a read lease on it: before anyone
// may open the image for writing, the kernel signals us, the export pauses,
// reads go to the views' own files again, and only then is the lease given
// up. Without the lease (not permitted, or someone has the image open for
// writing) the views read only their own files, and sharing is tried again
// later.

import * as fs from 'node:fs';
import type { BlockStore } from '../backend/block-store';
import { markDiffering, OwnBlocks } from './own-blocks';
import type { View, ViewEvents, ViewFunctions } from './view';

export interface ImageSharingOptions {
  image: BlockStore;
  fns: Pick<ViewFunctions, 'fileExtents' | 'imageLease' | 'imageLeaseHeld'>;
  events: Pick<ViewEvents, 'sharing' | 'imageWriter'>;
  /** After a writer had the image open: how often sharing is tried again. */
  retryMs: number;
}

/** Why a lease is refused with EACCES, and the fixes (docs/views.md, "The lease that makes it safe"). */
const NO_CAP_LEASE =
  ': the serving user neither owns the image nor holds CAP_LEASE. Under systemd, give the unit CAP_LEASE in ' +
  'AmbientCapabilities and CapabilityBoundingSet (the shipped units do; with user =, vbladed keeps it); ' +
  'or give the image to the serving user';

export class ImageSharing {
  /**
   * Reads of blocks no view wrote go to the image: the lease is held and
   * every view's OwnBlocks is valid. Read on the frame path; written only here.
   */
  on = false;
  /** Counts the times sharing started: a clone made across a change of it is compared with the image. */
  private epoch = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;

  /** `views`: the export's views by index, null where one was dropped (ExportViews.list, kept up to date there). */
  constructor(
    private readonly o: ImageSharingOptions,
    private readonly views: readonly (View | null)[],
  ) {}

  /**
   * Takes the lease on the image and, holding it, compares every view with
   * the image; from then on reads of shared blocks go to the image. Without
   * the lease the views read their own files and another try is made later.
   */
  start(): void {
    if (this.closed || this.on) return;
    const fd = this.o.image.fd;
    try {
      watchLease(this, () => this.leaseSignalled());
      this.o.fns.imageLease(fd, true);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why =
        err.code === 'EAGAIN'
          ? `the image is open for writing elsewhere (views read their own files; tried again every ${this.o.retryMs / 1000} s)`
          : `no read lease on the image (${err.message}); views read their own files${err.code === 'EACCES' ? NO_CAP_LEASE : ''}`;
      this.o.events.sharing(false, why);
      if (err.code === 'EAGAIN') this.retry();
      return;
    }
    let imageExtents: Float64Array;
    try {
      imageExtents = this.o.fns.fileExtents(fd);
    } catch (e) {
      this.giveUpLease();
      this.o.events.sharing(false, `cannot list the image's extents (${(e as Error).message}); views read their own files`);
      return;
    }
    for (const v of this.views) {
      if (v === null) continue;
      v.own = new OwnBlocks();
      this.compareWithImage(v, imageExtents);
    }
    this.on = true;
    this.epoch++;
    this.o.events.sharing(true, 'reads of blocks a view did not write go to the image');
  }

  /**
   * Reads go to the views' own files from now on, and the lease is given up
   * so that the writer waiting for it goes on; sharing starts again once the
   * image is not open for writing. Call it while no read is in flight.
   */
  stop(): void {
    if (!this.on) return;
    this.on = false;
    this.giveUpLease();
    this.o.events.sharing(
      false,
      `a program is opening the image for writing (or truncating it): the export gave up its lease on the image so that it ` +
        `goes on, and views read their own files (sharing is tried again every ${this.o.retryMs / 1000} s). ` +
        `A program that opened it non-blocking meanwhile (coreutils truncate does) failed once with "Resource temporarily ` +
        `unavailable" (EAGAIN): run it again now`,
    );
    this.retry();
  }

  /** Sharing's epoch when a clone starts; -1 while not sharing. */
  cloneEpoch(): number {
    return this.on ? this.epoch : -1;
  }

  /**
   * A clone is the image's as it was when it was made; only when the lease
   * was held all along is that the image now. Otherwise (sharing started
   * while it was made) compare the two.
   */
  checkClone(v: View, epoch: number): void {
    if (this.on && epoch !== this.epoch) this.compareWithImage(v);
  }

  /** After a snapshot was put back into `v`: which blocks differ from the image now. */
  refresh(v: View): void {
    v.own = new OwnBlocks();
    if (this.on) this.compareWithImage(v);
  }

  /** Gives up the lease and stops trying: the export goes away. */
  close(): void {
    this.closed = true;
    if (this.on) this.giveUpLease();
    this.on = false;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    unwatchLease(this);
  }

  /** Marks the blocks of `v` whose extents differ from the image's; all of them when the extents cannot be read. */
  private compareWithImage(v: View, imageExtents?: Float64Array): void {
    try {
      const size = fs.fstatSync(this.o.image.fd).size;
      const image = imageExtents ?? this.o.fns.fileExtents(this.o.image.fd);
      markDiffering(image, this.o.fns.fileExtents(v.store.fd), size, v.own);
    } catch {
      v.own.markAll();
    }
  }

  private retry(): void {
    if (this.closed || this.retryTimer !== null) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.start();
    }, this.o.retryMs);
    this.retryTimer.unref();
  }

  private leaseSignalled(): void {
    if (!this.on || this.closed) return;
    let held = false;
    try {
      held = this.o.fns.imageLeaseHeld(this.o.image.fd);
    } catch {
      // the descriptor is going away: nothing to share from
    }
    if (!held) this.o.events.imageWriter();
  }

  private giveUpLease(): void {
    try {
      this.o.fns.imageLease(this.o.image.fd, false);
    } catch {
      // closing the descriptor gives it up too
    }
  }
}

/**
 * The kernel tells a lease holder of a waiting writer with SIGIO, whose
 * default action ends the process: one listener for every lease, installed
 * before the first lease is taken and never removed.
 */
const leaseWatchers = new Map<ImageSharing, () => void>();
let sigioListening = false;

function watchLease(sharing: ImageSharing, signalled: () => void): void {
  leaseWatchers.set(sharing, signalled);
  if (sigioListening) return;
  sigioListening = true;
  process.on('SIGIO', () => {
    for (const f of [...leaseWatchers.values()]) f();
  });
}

function unwatchLease(sharing: ImageSharing): void {
  leaseWatchers.delete(sharing);
}
