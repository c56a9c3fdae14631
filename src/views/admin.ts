// The administration of copy-on-write for the serving core: opens an
// export's views with its logging, lets a writer of the image go on, and
// runs the control socket's view and snapshot commands (list, reset, drop,
// snapshot, revert). Every command that touches data runs while the export
// is paused, so that no request of it is in flight meanwhile.

import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { SnapshotInfo, SnapshotTaken, ViewListing } from '../api/control';
import { ConfigError } from '../api/errors';
import type { BlockStore } from '../backend/block-store';
import { checkReflinkPlace } from '../backend/reflink';
import {
  DEFAULT_MAX_VIEWS,
  DEFAULT_PER_BOOT_GAP,
  DEFAULT_VIEWS_MIN_FREE,
  exportKey,
  type ExportConfig,
} from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { ViewBudget } from './admission';
import { Remeasure } from './sizes';
import { defaultSnapshotName, SnapshotDir } from './snapshots';
import { ExportViews, macOfName, nameOfMac } from './views';
import { ExportDirs, snapshotsDirOf, type ViewsUser } from './views-dir';

/** How long an export must have served no I/O before `revert` runs without --force. */
export const REVERT_QUIET_MS = 5 * 60_000;

/** How long, after `quietMs` of quiet, until REVERT_QUIET_MS is reached: "4 min 10 s", "50 s". */
function waitLeft(quietMs: number): string {
  const s = Math.max(1, Math.ceil((REVERT_QUIET_MS - quietMs) / 1000));
  return s >= 60 ? `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}` : `${s} s`;
}

/** Milliseconds since a machine last used its view (`seen`: ms since the epoch, 0 never); the clocks drift by ms: never negative. */
function quietMs(seen: number): number {
  return seen === 0 ? Infinity : Math.max(0, Date.now() - seen);
}

/** What this room needs of a served export (the serving core's Export has it). */
export interface AdministeredExport {
  readonly key: string;
  readonly config: ExportConfig;
  readonly store: BlockStore;
  readonly views: ExportViews | null;
  /** Requests between submission and reply. */
  readonly inflight: number;
  /** performance.now() of its last read, write or flush. */
  readonly lastIoAt: number;
  /** New ATA requests are dropped (initiators retransmit) while set. */
  paused: boolean;
}

export interface ViewsAdminOptions {
  log: Logger;
  addon: NativeAddon;
  /** Views the process may keep open over all exports (one descriptor each). */
  maxViews: number;
  /** After a writer had the image open: how often sharing its page cache is tried again. */
  leaseRetryMs: number;
  /** How often views' last-seen dates are saved while initiators use them. */
  datesSaveMs: number;
  /** How often refusals of new views are summed up in one log line. */
  refusalLogMs: number;
  /** The export served under `key`, if any. */
  exportOf(key: string): AdministeredExport | undefined;
  /** Every export served now. */
  exports(): Iterable<AdministeredExport>;
  /** Resolves when requests in flight were answered (look at `inflight` again). */
  waitDrain(): Promise<void>;
}

/** An export's snapshots as stats show them, and when they were measured (performance.now()). */
interface SnapshotFigures {
  count: number;
  ownBytes: number;
  measuredAt: number;
  /** Taken, deleted or put back since. */
  changed: boolean;
  /** Why the last measurement failed (count and bytes are then unknown). */
  unknown?: string;
}

export class ViewsAdmin {
  /** One bound on open views for every export's views. */
  private readonly budget: ViewBudget;
  /**
   * The user a root daemon switches to (`user =`), set at start: the views
   * directories are made for it and must be its, since it makes the views
   * and snapshots after the switch.
   */
  user: ViewsUser | undefined;
  /** The directories of exports with snapshots but no views, held open, by export key. */
  private readonly snapshotPlaces = new Map<string, { config: ExportConfig; dirs: ExportDirs }>();

  /** By export key, measured off the serving thread (sizes.ts). */
  private readonly snapshotFigures = new Map<string, SnapshotFigures>();
  private readonly snapshotSizes: Remeasure;

  constructor(private readonly o: ViewsAdminOptions) {
    this.budget = new ViewBudget(o.maxViews);
    this.snapshotSizes = new Remeasure(
      () => this.measureSnapshots(),
      (e) => o.log.warn({ err: e.message }, `cannot measure the bytes of snapshots for stats: ${e.message}`),
    );
  }

  /** Who may own a view file: the `user =` user alone when set (it opens them after the switch), else root and us. */
  private viewOwners(): number[] {
    return this.user === undefined ? [0, process.geteuid?.() ?? 0] : [this.user.uid];
  }

  /** Opens (or makes) the views of a new export whose image is `image`. */
  openViews(c: ExportConfig, image: BlockStore): ExportViews {
    const key = exportKey(c);
    const log = this.o.log;
    const dirs = ExportDirs.open(c, this.user);
    if (dirs.snapshotsProblem !== null)
      log.error({ export: key }, `the snapshots of ${key} are refused (its views serve): ${dirs.snapshotsProblem}`);
    return ExportViews.open({
      dirs,
      owners: this.viewOwners(),
      image,
      direct: c.direct,
      readOnly: c.readOnly,
      maxViews: c.maxViews ?? DEFAULT_MAX_VIEWS,
      minFreePercent: c.viewsMinFree ?? DEFAULT_VIEWS_MIN_FREE,
      budget: this.budget,
      leaseRetryMs: this.o.leaseRetryMs,
      datesSaveMs: this.o.datesSaveMs,
      refusalLogMs: this.o.refusalLogMs,
      perBootGapMs: c.views === 'per-boot' ? (c.perBootGap ?? DEFAULT_PER_BOOT_GAP) * 1000 : null,
      fns: this.o.addon,
      // Log fields: `mac` is a machine's MAC as aa:bb:cc:dd:ee:ff in every views line, `file` a path.
      events: {
        created: (name, ms) => log.info({ export: key, mac: macOfName(name), ms: Number(ms.toFixed(3)) }, 'view created'),
        failed: (message, file) => log.error({ export: key, ...(file === undefined ? {} : { file }) }, message),
        refused: (name, why) => {
          const mac = macOfName(name);
          log.error(
            { export: key, mac },
            `the view of ${mac} is refused: ${why}. Its initiator gets error replies until the file is put back (then restart), ` +
              `or until vblade ctl view-reset ${key} ${mac} (a fresh copy of the image) or vblade ctl view-drop ${key} ${mac}`,
          );
        },
        grown: (name, from, to) =>
          log.info(
            { export: key, mac: macOfName(name), from, to },
            `the view of ${macOfName(name)} grew with the image from ${from} to ${to} bytes; the new part is the image's`,
          ),
        stale: (name, why) => log.warn({ export: key, mac: macOfName(name) }, `the view of ${macOfName(name)} is stale: ${why}`),
        newViewsRefused: (reason, count, seconds, message) =>
          log.warn(
            { export: key, reason, count },
            seconds === 0
              ? `refused a view to a new machine: ${message}`
              : `refused ${count} requests of new machines for a view in the last ${seconds} s: ${message}`,
          ),
        sharing: (on, why) =>
          on ? log.info({ export: key, file: image.description }, why) : log.warn({ export: key, file: image.description }, why),
        imageWriter: () => void this.stopSharing(key),
        newBoot: (name, silentMs) => void this.discardForBoot(key, macOfName(name), silentMs),
      },
    });
  }

  /**
   * views = per-boot: the machine of `mac` booted again (an IDENTIFY after
   * `silentMs` without a request, its view written since it was made):
   * its view becomes a fresh clone of the image, the export paused meanwhile
   * (its requests wait for it; the others' are retransmitted).
   */
  private async discardForBoot(key: string, mac: string, silentMs: number): Promise<void> {
    const e = this.o.exportOf(key);
    const views = e?.views;
    if (!e || !views) return;
    const silent = Number.isFinite(silentMs) ? `${(silentMs / 1000).toFixed(0)} s` : 'since before this run';
    try {
      while (e.paused) await new Promise((r) => setTimeout(r, 5));
      await this.whilePaused(e, () => views.discardForBoot(mac));
      this.o.log.warn(
        { export: key, mac, silentMs: Number.isFinite(silentMs) ? Math.round(silentMs) : null },
        `the view of ${mac} was discarded (views = per-boot): the machine sent IDENTIFY after ${silent} without a request, and its view was written: a new boot; it reads the image again`,
      );
    } catch (err) {
      this.o.log.error(
        { export: key, mac, err: (err as Error).message },
        `the view of ${mac} could not be discarded at its new boot; it keeps its data: ${(err as Error).message}`,
      );
    }
  }

  /**
   * Someone waits to open an export's image for writing: pause the export
   * (no read of the image in flight), point reads back at the views, and
   * give up the lease so that the writer goes on.
   */
  private async stopSharing(key: string): Promise<void> {
    const e = this.o.exportOf(key);
    const views = e?.views;
    if (!e || !views) return;
    try {
      while (e.paused) await new Promise((r) => setTimeout(r, 5));
      await this.whilePaused(e, () => views.stopSharing());
    } catch (err) {
      // Never keep reading the image for a writer: stop now, even with reads of it in flight.
      views.stopSharing();
      this.o.log.error({ export: key, err: (err as Error).message }, 'could not pause the export for a writer of its image');
    }
  }

  /**
   * This process is about to open `file` for writing (a reload that exports
   * an image writable): views that read it through a lease stop doing so
   * first; else the open would wait, in this very thread, for the lease
   * this thread holds until the kernel breaks it (45 s).
   */
  stopSharingImage(file: string): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return; // opening it will say what is wrong
    }
    for (const e of this.o.exports()) {
      if (e.views === null || !e.views.sharesImage) continue;
      const image = fs.fstatSync(e.store.fd);
      if (image.ino === st.ino && image.dev === st.dev) e.views.stopSharing();
    }
  }

  /**
   * Runs `fn` while no ATA request of `e` is in flight: new ones are dropped
   * (initiators retransmit them) until it returns; resolves with its result
   * and how long the export was paused.
   */
  async whilePaused<T>(e: AdministeredExport, fn: () => T | Promise<T>): Promise<{ result: T; pausedMs: number }> {
    if (e.paused) throw new ConfigError(`${e.key} is paused for another operation; try again`);
    const t0 = performance.now();
    e.paused = true;
    try {
      while (e.inflight > 0) await this.o.waitDrain();
      const result = await fn();
      return { result, pausedMs: performance.now() - t0 };
    } finally {
      e.paused = false;
    }
  }

  // ---- views ----------------------------------------------------------------

  private viewsOf(key: string): { e: AdministeredExport; views: ExportViews } {
    const e = this.o.exportOf(key);
    if (!e) throw new ConfigError(`no export ${key}; list them with vblade ctl list`);
    if (e.views === null)
      throw new ConfigError(`${key} has no views; set views = per-initiator and views-dir in its [export] section`);
    return { e, views: e.views };
  }

  /** The views of an export: MAC, file, bytes of its own, created, last seen. */
  listViews(key: string): ViewListing[] {
    return this.viewsOf(key).views.listing();
  }

  /**
   * Turns views (these MACs, or every view: 'all') back into the image as it
   * is now; the MACs reset. Refused, before any is touched, when one of those
   * machines used its view in the last REVERT_QUIET_MS, unless `force`.
   */
  async resetViews(key: string, macs: string | readonly string[], force = false): Promise<string[]> {
    const { e, views } = this.viewsOf(key);
    const all = macs === 'all';
    const list = all ? views.names().map(macOfName) : typeof macs === 'string' ? [macs] : macs;
    this.refuseBusy(views, list, force, 'reset');
    const { result } = await this.whilePaused(e, async () => {
      if (all) return views.resetAll();
      const out: string[] = [];
      for (const mac of list) out.push(await views.reset(mac));
      return out;
    });
    this.o.log.info({ export: key, macs: result, forced: force }, 'views reset');
    return result;
  }

  /** Removes views (their files too); their initiators' next requests make new ones. Refused as resetViews is. */
  async dropViews(key: string, macs: readonly string[], force = false): Promise<string[]> {
    const { e, views } = this.viewsOf(key);
    this.refuseBusy(views, macs, force, 'drop');
    const { result } = await this.whilePaused(e, () => macs.map((mac) => views.drop(mac)));
    this.o.log.info({ export: key, macs: result, forced: force }, 'views dropped');
    return result;
  }

  /**
   * Refuses a change to the views of `macs` when one of those machines used
   * its view within REVERT_QUIET_MS (each machine's own last request, kept
   * across restarts): a machine with the disk open would not know its data
   * changed. Other machines of the lab may be busy.
   */
  private refuseBusy(views: ExportViews, macs: readonly string[], force: boolean, verb: string): void {
    if (force) return;
    const busy: string[] = [];
    let latest = Infinity;
    for (const mac of macs) {
      const quiet = quietMs(views.lastSeenOfMac(mac)); // throws on a MAC that is none, or has no view
      if (quiet >= REVERT_QUIET_MS) continue;
      busy.push(macOfName(nameOfMac(mac)!));
      latest = Math.min(latest, quiet);
    }
    if (busy.length === 0) return;
    const who = busy.length === 1 ? `the view of ${busy[0]}` : `the views of ${busy.join(', ')}`;
    throw new ConfigError(
      `${who} served an initiator ${(latest / 1000).toFixed(0)} s ago; nothing was ${verb === 'drop' ? 'dropped' : 'reset'}. ` +
        `A machine that has the disk open would not know its data changed. ` +
        `Shut ${busy.length === 1 ? 'that machine' : 'those machines'} down (or unmount) and try again in ${waitLeft(latest)}, or give --force`,
    );
  }

  // ---- snapshots ------------------------------------------------------------

  private snapshotsOf(key: string): { e: AdministeredExport; dir: SnapshotDir } {
    const e = this.placeOf(key);
    return { e, dir: new SnapshotDir(this.dirsOf(e)!.snapshots()!, this.o.addon) };
  }

  /** The snapshots of an export for listing: null when it has none yet (nothing is made for a look). */
  private existingSnapshots(key: string): SnapshotDir | null {
    const snaps = this.dirsOf(this.placeOf(key), false)?.snapshots(false) ?? null;
    return snaps === null ? null : new SnapshotDir(snaps, this.o.addon);
  }

  private placeOf(key: string): AdministeredExport {
    const e = this.o.exportOf(key);
    if (!e) throw new ConfigError(`no export ${key}; list them with vblade ctl list`);
    if (e.config.viewsDir === undefined || e.store.kind !== 'file')
      throw new ConfigError(
        `${key} has no place for snapshots; set views-dir in its [export] section (on the file system of its file)`,
      );
    return e;
  }

  /** The export's directories: its views' when it has views, else opened once and held while it is served with that config. */
  private dirsOf(e: AdministeredExport, make = true): ExportDirs | null {
    if (e.views !== null) return e.views.dirs;
    const served = new Set([...this.o.exports()].map((x) => x.config));
    for (const [key, p] of this.snapshotPlaces) {
      if (served.has(p.config)) continue;
      p.dirs.close();
      this.snapshotPlaces.delete(key);
    }
    let p = this.snapshotPlaces.get(e.key);
    if (p === undefined) {
      try {
        p = { config: e.config, dirs: ExportDirs.open(e.config, this.user, make) };
      } catch (err) {
        if (!make && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new ConfigError(`${e.key}: ${(err as Error).message}`);
      }
      this.snapshotPlaces.set(e.key, p);
    }
    return p.dirs;
  }

  /**
   * A crash-consistent copy of an export (or of the view of `viewMac`) as it
   * is now: new requests are dropped (initiators retransmit), those in
   * flight finish, the data is flushed and cloned, and requests resume.
   */
  async snapshot(key: string, name = defaultSnapshotName(), viewMac?: string): Promise<SnapshotTaken> {
    const { e, dir } = this.snapshotsOf(key);
    dir.checkFree(name);
    checkReflinkPlace(e.config.file, dir.dir, 'snapshots', this.o.addon);
    const views = e.views;
    if (viewMac !== undefined && views === null) throw new ConfigError(`${key} has no views; leave out the view`);
    const view = viewMac === undefined || views === null ? undefined : views.storeOfMac(viewMac); // throws when it has none
    const of = viewMac === undefined ? 'export' : macOfName(nameOfMac(viewMac)!);
    const { result: file, pausedMs } = await this.whilePaused(e, () => dir.take(name, (view ?? e.store).fd, of));
    this.o.log.info(
      { export: key, snapshot: name, ...(of === 'export' ? {} : { mac: of }), file, pausedMs: Number(pausedMs.toFixed(3)) },
      'snapshot taken',
    );
    this.snapshotsChanged(e);
    return { key, name, file, pausedMs, of };
  }

  /**
   * How many snapshots an export has and the bytes they hold of their own
   * (stats), as last measured; zeros before the first measurement and when
   * there is no place for snapshots. Never touches the file system here.
   */
  snapshotTotals(e: AdministeredExport): { count: number; ownBytes: number; unknown?: string } {
    this.snapshotSizes.reading();
    const f = this.snapshotFigures.get(e.key);
    if (f === undefined) return { count: 0, ownBytes: 0 };
    return f.unknown === undefined
      ? { count: f.count, ownBytes: f.ownBytes }
      : { count: f.count, ownBytes: f.ownBytes, unknown: f.unknown };
  }

  /** An export's snapshots changed (and with them what its views own): measure both again. */
  private snapshotsChanged(e: AdministeredExport): void {
    const f = this.snapshotFigures.get(e.key);
    if (f !== undefined) f.changed = true;
    else this.snapshotFigures.set(e.key, { count: 0, ownBytes: 0, measuredAt: -Infinity, changed: true });
    this.snapshotSizes.changed();
    e.views?.sizesChanged();
  }

  /** Measures the snapshots of each export that changed or served I/O (which unshares snapshot blocks) since the last time. */
  private async measureSnapshots(): Promise<void> {
    const served = new Set<string>();
    for (const e of [...this.o.exports()]) {
      served.add(e.key);
      if (e.config.viewsDir === undefined || e.store.kind !== 'file') continue;
      const f = this.snapshotFigures.get(e.key);
      if (f !== undefined && !f.changed && e.lastIoAt < f.measuredAt) continue;
      const measuredAt = performance.now();
      if (f !== undefined) f.changed = false;
      let totals: { count: number; ownBytes: number; unknown?: string };
      try {
        totals = (await this.existingSnapshots(e.key)?.totals()) ?? { count: 0, ownBytes: 0 };
      } catch (err) {
        // Not a false 0: stats say the figure is unknown, and why.
        const why = `cannot read the snapshots in ${snapshotsDirOf(e.config)} (${(err as Error).message}); the serving process (user = when set) must be able to read them`;
        totals = { count: 0, ownBytes: 0, unknown: why };
        if (f?.unknown !== why) this.o.log.warn({ export: e.key }, why);
      }
      const now = this.snapshotFigures.get(e.key);
      this.snapshotFigures.set(e.key, { ...totals, measuredAt, changed: now?.changed ?? false });
    }
    for (const key of this.snapshotFigures.keys()) if (!served.has(key)) this.snapshotFigures.delete(key);
  }

  listSnapshots(key: string): SnapshotInfo[] {
    return this.existingSnapshots(key)?.list() ?? [];
  }

  deleteSnapshot(key: string, name: string): string {
    const { e, dir } = this.snapshotsOf(key);
    const file = dir.delete(name);
    this.snapshotsChanged(e);
    this.o.log.info({ export: key, snapshot: name }, 'snapshot deleted');
    return file;
  }

  /**
   * Puts a snapshot back into the export (or the view it was taken of).
   * Refused while the export (for a view's snapshot, that view's machine)
   * served I/O in the last REVERT_QUIET_MS unless
   * `force`: an initiator that has the disk open keeps what it read in its
   * cache and would write its idea of the old disk over the reverted one.
   */
  async revert(key: string, name: string, force = false): Promise<{ key: string; name: string; of: string }> {
    const { e, dir } = this.snapshotsOf(key);
    const { of } = dir.find(name);
    if (of !== 'export' && e.views === null)
      throw new ConfigError(`snapshot ${name} is of the view of ${of}, and ${key} has no views now`);
    if (of === 'export' && e.views !== null)
      throw new ConfigError(
        `snapshot ${name} is of the image, which views never write; replace the image with it and reset the views instead`,
      );
    // A view's own machine is what matters: in a lab some other machine is always busy.
    const seen = of === 'export' ? 0 : e.views!.lastSeenOfMac(of);
    const sinceIo = e.lastIoAt === 0 ? Infinity : performance.now() - e.lastIoAt;
    const quiet = of === 'export' ? sinceIo : quietMs(seen);
    if (!force && quiet < REVERT_QUIET_MS)
      throw new ConfigError(
        `${of === 'export' ? key : `the view of ${of}`} served an initiator ${(quiet / 1000).toFixed(0)} s ago; an initiator that has the disk open would not know its data changed. ` +
          `Shut ${of === 'export' ? 'the initiators' : 'that machine'} down (or unmount) and try again in ${waitLeft(quiet)}, or give --force`,
      );
    const views = e.views;
    const dst = of === 'export' || views === null ? e.store : views.storeOfMac(of);
    await this.whilePaused(e, () => {
      dir.revertInto(name, dst.fd);
      if (of !== 'export') views!.refreshOwn(of);
    });
    this.o.log.warn(
      { export: key, snapshot: name, of, ...(of === 'export' ? {} : { mac: of }), forced: force },
      'snapshot reverted',
    );
    this.snapshotsChanged(e);
    return { key, name, of };
  }
}
