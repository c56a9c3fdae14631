// Per-initiator views of one export (views = per-initiator): every initiator
// MAC reads and writes its own copy-on-write clone of the image,
// VIEWSDIR/eS.L/aabbccddeeff.img, made (FICLONE) at its first ATA request (IDENTIFY, normally) and
// kept open from then on. The image is opened read-only and never written.
// Views of an earlier run are opened when their initiator first asks, not
// all at start (more views than descriptors must not stop a restart), and a
// view file that is not what it claims (missing, shorter than the image, a
// link, a hard link, not a regular file) is refused, never served or
// silently replaced: its initiator gets error replies until an operator
// resets or drops it. Every file is reached through the export's directory
// held open (views-dir.ts), never by a path that could be swapped.
//
// The frame path asks storeFor() once per ATA request: one Map lookup keyed
// by the source MAC as a number, no allocation. A new initiator's view is
// made off the frame path (FICLONE on a pool thread: it takes 0.5 ms for an
// image of a few extents but tens of milliseconds for one of thousands, and
// would stall every export meanwhile); its requests are dropped until the
// view exists, and the initiator retransmits them. Views stay open. Whether a
// new initiator may have one (the export's and the process's bounds, the
// free-space floor) is admission.ts's; a refused one gets an error reply.
//
// Reads of blocks a view never wrote go to the image (own-blocks.ts says
// why) while the process holds a read lease on it (image-sharing.ts).

import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ViewListing } from '../api/control';
import { STORE_PENDING, type BlockStore } from '../backend/block-store';
import { ViewAdmission, type RefusalReason, type ViewBudget } from './admission';
import { ViewGrowth } from './image-growth';
import { ImageSharing } from './image-sharing';
import { OwnBlocks } from './own-blocks';
import { ViewSizes } from './sizes';
import { macOfName, View, viewStore, type ViewEvents, type ViewFunctions, type ViewStore } from './view';
import { lastSeenOf, listViews } from './view-listing';
import { cloneView, errorText, gone, NameTaken, ViewFiles, type ViewEntry } from './view-files';
import { META_FILE, ViewDatesFile, type ViewDates } from './view-meta';
import { ViewSyncs } from './view-syncs';
import type { ExportDirs } from './views-dir';
import type { TrustedDir } from '../safe-files/trusted-dir';

/** The 6 bytes of a MAC at `off` as one number: exact (48 bits), no allocation. */
export function macKey(b: Uint8Array, off: number): number {
  return (
    ((b[off] << 8) | b[off + 1]) * 0x100000000 +
    (((b[off + 2] << 24) | (b[off + 3] << 16) | (b[off + 4] << 8) | b[off + 5]) >>> 0)
  );
}

/** "aabbccddeeff", the view's file name without .img. */
export function viewName(key: number): string {
  return key.toString(16).padStart(12, '0');
}

export { macOfName } from './view';

/** A MAC as written by a user (any case, ':' or '-' separated or bare) to its view name; undefined when it is not one. */
export function nameOfMac(mac: string): string | undefined {
  const hex = mac.toLowerCase().replace(/[:-]/g, '');
  return /^[0-9a-f]{12}$/.test(hex) ? hex : undefined;
}

/** A clone a crash left before its rename (cloneTo, by pid or random suffix): never a view, only space taken. */
const STALE_CLONE = /^\.[0-9a-f]{12}\.img\.([0-9]+|[0-9a-f]{16})\.tmp$/;

export interface ExportViewsOptions {
  /** VIEWSDIR/eS.L and its snapshots/, held open; closed with the views. */
  dirs: ExportDirs;
  /** Who may own a view file: root and the daemon's user, or the `user =` uid alone (it must open them after the switch). */
  owners: readonly number[];
  image: BlockStore;
  /** O_DIRECT on the views, as on the image. */
  direct: boolean;
  /** Read-only export: new initiators read the image itself; no view is made for them. */
  readOnly: boolean;
  /** Views this export may have (max-views). */
  maxViews: number;
  /** Percent of the views file system kept free: below it no new view is made (views-min-free). */
  minFreePercent: number;
  /** Views the process may keep open, over all exports. */
  budget: ViewBudget;
  /** After a writer had the image open: how often sharing is tried again. */
  leaseRetryMs: number;
  /** How often last-seen dates are saved while initiators are active (a crash loses at most this much of them). */
  datesSaveMs: number;
  /** How often refusals are summed up in the log (default 60 s). */
  refusalLogMs?: number;
  /** views = per-boot: ms a machine must have sent no ATA request before an IDENTIFY marks its new boot; null: views are kept. */
  perBootGapMs: number | null;
  fns: ViewFunctions;
  events: ViewEvents & {
    /** New initiators refused a view: the first at once, then a count per interval (admission.ts). */
    newViewsRefused(reason: RefusalReason, count: number, seconds: number, message: string): void;
  };
}

/** Now, in ms since the epoch, on the clock of lastSeenOf (the wall clock drifts from it by ms). */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The dates of every view (also the last-seen times of this run), for views.json. */
function datesOf(list: readonly (View | null)[], files: ViewFiles): Map<string, ViewDates> {
  const dates = new Map<string, ViewDates>();
  for (const v of list) if (v !== null) dates.set(v.name, { ...v.dates, lastSeen: lastSeenOf(v) });
  // Views not opened in this run, and refused ones, stay listed: a file gone missing is noticed at the next start too.
  for (const u of files.all()) dates.set(u.name, u.dates);
  return dates;
}

export class ExportViews {
  private readonly byKey = new Map<number, View>();
  /** By View.index; null where a view was dropped (its index is reused). */
  private readonly list: (View | null)[] = [];
  /** Views of an earlier run not opened yet, and refused ones. */
  private readonly files: ViewFiles;
  /** The last STORE_PENDING storeFor returned is a new view (the image may answer reads), not one being opened. */
  pendingIsNew = false;
  /** Views being made, by MAC key: the promise settles when it is there (or failed). */
  private readonly making = new Map<number, Promise<void>>();
  /** Of `making`, the views made new (not views of an earlier run being opened). */
  private makingNew = 0;
  /** Whether a new initiator may have a view now; refusals counted, no memory per machine. */
  readonly admission: ViewAdmission;
  private closed = false;
  /** The group commit: one fdatasync per view written since the last. */
  readonly syncs: ViewSyncs;
  /** views.json: when each view was made and last used. */
  private readonly dates: ViewDatesFile;
  /** Reads of blocks no view wrote go to the image while it holds the lease. */
  private readonly sharing: ImageSharing;
  /** Measures the views' own bytes for stats, off the serving thread. */
  private readonly sizes: ViewSizes;
  /** views = per-boot: views being discarded (by MAC key); their machines' requests wait (reads may go to the image). */
  private readonly discarding = new Set<number>();
  /** views = per-boot: views discarded at a new boot of their machine, in this run. */
  bootDiscards = 0;
  /** The image as it is served, and views grown with it. */
  private readonly growth: ViewGrowth;

  private constructor(private readonly o: ExportViewsOptions) {
    this.syncs = new ViewSyncs(this.list, o.image.fd);
    this.growth = new ViewGrowth(o.image.fd, (...a) => o.fns.reflinkCloneRange(...a), o.events);
    this.files = new ViewFiles(o.dirs.dir, o.owners, this.growth, o.events);
    this.admission = new ViewAdmission({
      dir: o.dirs.dir.path,
      maxViews: o.maxViews,
      minFreePercent: o.minFreePercent,
      budget: o.budget,
      refused: (reason, count, seconds, message) => o.events.newViewsRefused(reason, count, seconds, message),
      summaryMs: o.refusalLogMs,
    });
    this.sharing = new ImageSharing({ image: o.image, fns: o.fns, events: o.events, retryMs: o.leaseRetryMs }, this.list);
    this.dates = new ViewDatesFile({
      dir: o.dirs.dir,
      everyMs: o.datesSaveMs,
      collect: () => datesOf(this.list, this.files),
      usedSince: (t) => this.list.some((v) => v !== null && v.seenAt > t),
      failed: (message) => o.events.failed(message, o.dirs.dir.pathOf(META_FILE)),
    });
    this.sizes = new ViewSizes(
      this.list,
      (fd) => o.fns.unsharedBytesAsync(fd),
      () => this.closed,
      (e) => o.events.failed(`cannot measure the bytes the views have of their own for stats: ${e.message}`),
    );
  }

  /**
   * Finds the views already in the directory (from an earlier run) without
   * opening them, refuses those whose files are not what views.json says,
   * and is ready to make new ones.
   */
  static open(o: ExportViewsOptions): ExportViews {
    const v = new ExportViews(o);
    try {
      for (const f of v.d.list()) if (STALE_CLONE.test(f)) v.d.unlink(f);
      v.files.find();
    } catch (e) {
      v.close();
      throw e;
    }
    v.sharing.start();
    v.sizes.changed();
    return v;
  }

  private get d(): TrustedDir {
    return this.o.dirs.dir;
  }

  /** A view of an earlier run, opened at its initiator's first request, off the frame path. */
  private async openLater(key: number, u: { name: string; dates: ViewDates }): Promise<void> {
    await new Promise((r) => setImmediate(r));
    if (this.closed || this.files.unopened.get(key) !== u) return;
    const v = this.opened(key, u);
    if (v !== undefined) v.seenAt = performance.now(); // its initiator asked for it just now
  }

  /** Opens a view of an earlier run and serves it; undefined when it is refused. */
  private opened(key: number, u: ViewEntry): View | undefined {
    const fd = this.files.open(key, u, this.openFlags());
    if (fd === undefined) return undefined;
    const v = new View(u.name, this.storeOf(fd, this.d.pathOf(`${u.name}.img`)), u.dates);
    v.stale = u.stale;
    this.add(v, key);
    this.sharing.refresh(v);
    return v;
  }

  get count(): number {
    return this.byKey.size + this.files.size;
  }

  get dir(): string {
    return this.d.path;
  }

  /** Its directory and snapshots/, held open. */
  get dirs(): ExportDirs {
    return this.o.dirs;
  }

  /**
   * The store of the initiator whose MAC is at `b[off..off+6]`; STORE_PENDING
   * while its view is being made (started now when it has none); null when
   * it could not be made (the request gets an error reply). `now` is the
   * engine's clock (performance.now()).
   */
  storeFor(b: Uint8Array, off: number, now: number): BlockStore | null {
    const key = macKey(b, off);
    if (this.discarding.size > 0 && this.discarding.has(key)) {
      this.pendingIsNew = true; // it will be a fresh clone: the image as it is
      return STORE_PENDING;
    }
    const v = this.byKey.get(key);
    if (v !== undefined) {
      v.seenAt = now;
      return v.store;
    }
    if (this.files.refusals.has(key)) return null;
    const u = this.files.unopened.get(key);
    if (u !== undefined) {
      this.pendingIsNew = false;
      if (this.making.has(key)) return STORE_PENDING;
      // A view that exists is served whatever max-views says now; its descriptor counts against the process's bound.
      if (this.o.budget.used >= this.o.budget.limit) return this.admission.refuseOpening();
      this.o.budget.pending++;
      this.making.set(
        key,
        this.openLater(key, u).finally(() => {
          this.making.delete(key);
          this.o.budget.pending--;
        }),
      );
      return STORE_PENDING;
    }
    if (this.o.readOnly) return this.o.image;
    this.pendingIsNew = true;
    if (this.making.has(key)) return STORE_PENDING;
    // Views of an earlier run not opened yet (and refused names) are files on disk too: they count.
    if (this.admission.refuses(this.count + this.makingNew, now)) return null;
    this.o.budget.pending++;
    this.makingNew++;
    this.making.set(
      key,
      this.make(key, viewName(key)).finally(() => {
        this.making.delete(key);
        this.makingNew--;
        this.o.budget.pending--;
      }),
    );
    return STORE_PENDING;
  }

  /**
   * views = per-boot: the machine of the MAC at `b[off..off+6]` sent an ATA
   * IDENTIFY; called before storeFor notes it. When its view was written
   * since it was made (or reset), has no request in flight, and none sent
   * or answered for perBootGapMs before this one, its machine booted again:
   * its view is discarded (newBoot, off the frame path) and its requests
   * wait meanwhile; true then. A machine with its disk open sends no
   * IDENTIFY (docs/views.md).
   */
  identified(b: Uint8Array, off: number, now: number): boolean {
    const gap = this.o.perBootGapMs;
    if (gap === null) return false;
    const key = macKey(b, off);
    if (this.discarding.has(key)) return false;
    const v = this.byKey.get(key);
    const u = v === undefined ? this.files.unopened.get(key) : undefined;
    if (v === undefined && u === undefined) return false; // no view yet, or a refused one
    const seen = v !== undefined && v.seenAt > 0 ? performance.timeOrigin + v.seenAt : (v ?? u)!.dates.lastSeen;
    const silentMs = seen === 0 ? Infinity : performance.timeOrigin + now - seen;
    const written = v === undefined || v.written; // a view of an earlier run: not known, taken as written
    if (!written || silentMs < gap || (v !== undefined && v.inflight > 0)) return false;
    this.discarding.add(key);
    this.o.events.newBoot(viewName(key), silentMs);
    return true;
  }

  /** views = per-boot: makes the view of `mac` a fresh clone (its machine booted again). The export is paused. */
  async discardForBoot(mac: string): Promise<void> {
    const key = parseInt(nameOfMac(mac)!, 16);
    try {
      await this.reset(mac);
      this.byKey.get(key)!.seenAt = performance.now(); // its IDENTIFY, just now
      this.bootDiscards++;
    } finally {
      this.discarding.delete(key);
    }
  }

  /** View.index of the view `storeFor` just returned, for the engine to hand back to written(). */
  indexOf(store: BlockStore): number {
    return (store as ViewStore).viewIndex ?? -1;
  }

  /**
   * The descriptor a read of [pos, pos+bytes) by view `index` goes to: the
   * image's when the view never wrote those blocks (one page cache for every
   * view), else the view's own.
   */
  readFd(index: number, pos: number, bytes: number): number {
    const v = this.list[index]!;
    return this.sharing.on && !v.own.any(pos, bytes) ? this.o.image.fd : v.store.fd;
  }

  /** A write of [pos, pos+bytes) to view `index` is about to be submitted: reads of those blocks go to the view from now on. */
  writing(index: number, pos: number, bytes: number): void {
    const v = this.list[index]!;
    v.own.mark(pos, bytes);
    v.written = true;
  }

  /** The view at View.index `index` (what a request in flight remembers); null when dropped. */
  viewAt(index: number): View | null {
    return this.list[index] ?? null;
  }

  /** A write to view `index` completed: the next group commit syncs it. */
  written(index: number): void {
    const v = this.list[index];
    if (v !== null && v !== undefined) {
      v.dirty = true;
      v.unmeasured = true;
    }
  }

  private openFlags(): number {
    return fs.constants.O_RDWR | fs.constants.O_NOFOLLOW | (this.o.direct ? fs.constants.O_DIRECT : 0);
  }

  private storeOf(fd: number, file: string): ViewStore {
    return viewStore(this.o.image, fd, file, this.o.direct);
  }

  private add(v: View, key: number): void {
    let i = this.list.indexOf(null);
    if (i < 0) i = this.list.length;
    v.index = i;
    (v.store as ViewStore).viewIndex = i;
    this.list[i] = v;
    this.byKey.set(key, v);
    this.o.budget.open++;
  }

  /** A new clone of the image named `name`.img (view-files.ts); its descriptor. */
  private cloneTo(name: string): Promise<number> {
    return cloneView(
      this.d,
      name,
      this.openFlags(),
      (tmp) => this.o.fns.reflinkCloneAsync(this.o.image.fd, tmp),
      () => this.closed,
    );
  }

  private async make(key: number, name: string): Promise<void> {
    const file = this.d.pathOf(`${name}.img`);
    const t0 = performance.now();
    const epoch = this.sharing.cloneEpoch();
    let fd: number;
    try {
      fd = await this.cloneTo(name);
    } catch (e) {
      // What is at its name (a directory, say) costs that machine alone; a failure of the file system, every new one for a while.
      if (e instanceof NameTaken) this.files.refuse(key, { name, dates: { created: Date.now(), lastSeen: 0 } }, e.message);
      else this.admission.failed(`cannot make the view ${file}: ${errorText(e as Error)}`, performance.now());
      return;
    }
    if (this.closed) {
      fs.closeSync(fd); // the export went away meanwhile; the file is a view for the next start
      return;
    }
    const v = new View(name, this.storeOf(fd, file), { created: wallNow(), lastSeen: 0, image: this.growth.madeFrom(fd) });
    v.unmeasured = false; // a fresh clone has nothing of its own
    v.written = false;
    v.measuredAt = performance.now();
    v.seenAt = performance.now(); // its initiator asked for it just now
    this.sharing.checkClone(v, epoch);
    this.add(v, key);
    this.o.events.created(name, performance.now() - t0);
    this.datesChanged();
  }

  /** The image grew in place to `bytes` (an online resize): every open view grows to it first (image-growth.ts). */
  grow(bytes: number): void {
    if (this.closed) throw gone(this.d.path);
    this.growth.growAll(bytes, this.list);
    this.datesChanged();
  }

  /** Every view with its own bytes and dates, by MAC; a refused one with why. */
  listing(): ViewListing[] {
    return listViews(this.list, this.files, this.d, this.o.fns);
  }

  /** Bytes the views have of their own, all together, as last measured (sizes.ts). */
  ownBytes(): number {
    return this.sizes.ownBytes();
  }

  /** Snapshots of these views were taken, deleted or put back: their own bytes changed. */
  sizesChanged(): void {
    this.sizes.allChanged();
  }

  /** The view name of `mac`, which must have a view (open, not opened yet, or refused). */
  private nameOf(mac: string): string {
    const name = nameOfMac(mac);
    if (name === undefined) throw new Error(`"${mac}" is not a MAC address; write it as aa:bb:cc:dd:ee:ff`);
    const key = parseInt(name, 16);
    if (!this.byKey.has(key) && !this.files.has(key))
      throw new Error(`no view for ${macOfName(name)} in ${this.dir}; list them with vblade ctl views`);
    return name;
  }

  /** The open view of `mac`, opened now when not yet; throws when it has none or it is refused (with why). */
  private find(mac: string): View {
    const name = this.nameOf(mac);
    const key = parseInt(name, 16);
    const u = this.files.unopened.get(key);
    if (u !== undefined) this.opened(key, u);
    const r = this.files.refusals.get(key);
    if (r !== undefined)
      throw new Error(
        `the view of ${macOfName(name)} is refused: ${r.why}; reset it (vblade ctl view-reset) or drop it (vblade ctl view-drop)`,
      );
    return this.byKey.get(key)!;
  }

  /** The store of the view of `mac` (snapshots of one view); throws when it has none. */
  storeOfMac(mac: string): BlockStore {
    return this.find(mac).store;
  }

  /** When the initiator of `mac` last used its view, in this run or an earlier one (ms since the epoch; 0: never). */
  lastSeenOfMac(mac: string): number {
    const key = parseInt(this.nameOf(mac), 16);
    const v = this.byKey.get(key);
    if (v !== undefined) return lastSeenOf(v);
    return (this.files.unopened.get(key) ?? this.files.refusals.get(key))?.dates.lastSeen ?? 0;
  }

  /**
   * Makes a view the image as it is now (a new clone renamed over the old
   * one, or over whatever a refused view's name held). The caller has
   * paused the export: no request of it is in flight.
   */
  async reset(mac: string): Promise<string> {
    if (this.closed) throw gone(this.d.path);
    const name = this.nameOf(mac);
    const key = parseInt(name, 16);
    const epoch = this.sharing.cloneEpoch();
    const fd = await this.cloneTo(name);
    const v = this.byKey.get(key);
    if (v === undefined) {
      // Not opened yet, or refused: the new clone replaces the file, whatever it was.
      const old = this.files.take(key)!;
      const nv = new View(name, this.storeOf(fd, this.d.pathOf(`${name}.img`)), {
        created: wallNow(),
        lastSeen: old.dates.lastSeen,
        image: this.growth.madeFrom(fd),
      });
      nv.written = false;
      this.add(nv, key);
      this.sharing.checkClone(nv, epoch);
      this.datesChanged();
      return macOfName(name);
    }
    const old = v.store;
    v.store = this.storeOf(fd, old.description);
    (v.store as ViewStore).viewIndex = v.index;
    v.own = new OwnBlocks(); // a new clone: every block the image's
    v.written = false;
    v.ownBytes = 0;
    v.unmeasured = false;
    v.measuredAt = performance.now();
    this.sharing.checkClone(v, epoch);
    v.dirty = false;
    v.dates.created = wallNow();
    v.dates.image = this.growth.madeFrom(fd);
    v.stale = undefined;
    old.close();
    this.datesChanged();
    return macOfName(v.name);
  }

  /** The names of every view: open, not opened yet, and refused. */
  names(): string[] {
    return [...this.list.filter((x): x is View => x !== null).map((v) => v.name), ...this.files.all().map((u) => u.name)];
  }

  /** Resets every view; the MACs reset. */
  async resetAll(): Promise<string[]> {
    const out: string[] = [];
    const names = this.names();
    for (const name of names) {
      try {
        out.push(await this.reset(name));
      } catch (e) {
        throw new Error(`${out.length} of ${names.length} views were reset, then: ${(e as Error).message}`, { cause: e });
      }
    }
    return out;
  }

  /** Removes a view and its file (whatever that is, a link itself, never its target); the next request of that MAC makes a new one. The export is paused. */
  drop(mac: string): string {
    const name = this.nameOf(mac);
    const key = parseInt(name, 16);
    const file = this.d.pathOf(`${name}.img`);
    const v = this.byKey.get(key);
    if (v !== undefined) {
      v.store.close();
      this.list[v.index] = null;
      this.byKey.delete(key);
      this.o.budget.open--;
    }
    try {
      this.d.unlink(`${name}.img`);
    } catch (e) {
      // Still there: it stays listed, refused (a new view must not be made over it), until it is removed.
      const why = errorText(e as Error);
      this.files.keepRefused(key, name, v?.dates, `view-drop could not remove ${file} (${why})`);
      throw new Error(
        `the view of ${macOfName(name)} is not dropped: ${file} could not be removed (${why}); remove it yourself`,
        {
          cause: e,
        },
      );
    }
    this.files.take(key);
    this.datesChanged();
    this.d.sync();
    return macOfName(name);
  }

  /** After a snapshot was put back into the view of `mac`: which blocks differ from the image now. The export is paused. */
  refreshOwn(mac: string): void {
    this.sharing.refresh(this.find(mac));
    this.sizesChanged();
  }

  /** Whether reads of shared blocks go to the image now. */
  get sharesImage(): boolean {
    return this.sharing.on;
  }

  /**
   * Reads go to the views' own files from now on, and the lease is given up
   * so that the writer waiting for it goes on (image-sharing.ts). Call it
   * while no read is in flight.
   */
  stopSharing(): void {
    this.sharing.stop();
  }

  private datesChanged(): void {
    this.dates.changed();
  }

  /** Writes views.json now; resolves when it is on disk, never rejects. */
  saveDates(): Promise<void> {
    return this.dates.save();
  }

  /** Saves the dates and closes every view. */
  async closeAndSave(): Promise<void> {
    await Promise.all(this.making.values());
    // A change not saved yet is saved even when no view is left (the last one dropped must not come back as missing).
    const pending = this.dates.pending;
    this.dates.close();
    if (this.count > 0 || pending) await this.saveDates();
    this.close();
  }

  close(): void {
    this.closed = true;
    this.dates.close();
    this.admission.close();
    this.o.budget.open -= this.byKey.size;
    this.sharing.close();
    for (const v of this.list) if (v !== null) v.store.close();
    this.list.length = 0;
    this.byKey.clear();
    this.o.dirs.close();
  }
}
