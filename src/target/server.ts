// The serving core: builds exports and links from a ServerConfig, wires the
// engine to socket and io-ring wake-ups, and stops cleanly. Start order: io
// ring, stores, links; stop order is the reverse, after every request in
// flight has been answered. `Server` is the one face the worker, vblade and
// the tests use; each of its jobs is an object of its own: exports
// (export-set.ts), links (link-set.ts), protocol state on its way to disk
// (state-keeper.ts), reloads (reload.ts), online resize (resize.ts),
// observation (stats.ts), copy-on-write (../views/admin.ts) and the
// two-writer guards (../guard/refuse.ts).

import type { Logger } from 'pino';
import type { ReloadSummary, ResizeResult, ServerStats, SnapshotInfo, SnapshotTaken, ViewListing } from '../api/control';
import { ConfigError, NoInterfaceError, NothingToServe, ReloadRefused } from '../api/errors';
import type { BlockStore } from '../backend/block-store';
import { mayPass } from '../backend/file-store';
import { exportKey, type ExportConfig, type ExportState, type ServerConfig } from '../config/export-config';
import { AddressClaims } from '../guard/address-claim';
import { StoreClaims } from '../guard/store-claim';
import {
  claimNewInterfaces,
  findDuplicates,
  refuseDuplicates,
  refusedOnWire,
  type DuplicateCheck,
  type RefusedExport,
} from '../guard/refuse';
import { loadAddon, type NativeAddon } from '../native/addon';
import { ViewsAdmin } from '../views/admin';
import { DrainWaiters } from './drain';
import { Engine } from '../engine/engine';
import type { ServedExport as Export } from './served-export';
import { ExportSet } from './export-set';
import type { Link } from '../engine/link';
import { LinkSet } from './link-set';
import { resolveOptions, type ServerOptions, type ServingOptions } from './options';
import { Reloader } from './reload';
import { Resizer } from './resize';
import { StateKeeper, type ServerHooks } from './state-keeper';
import { serverStats } from './stats';
import { RbdFailover } from '../remote/rbd-failover';
import { remoteClosesDone } from '../remote/remote-closes';

export type { ServerOptions } from './options';
export type { ServerHooks } from './state-keeper';
export { heldMessage } from './export-set';
export { REVERT_QUIET_MS } from '../views/admin';

/** A store that cannot be opened (missing file, no permission, ...): the message says what to do. */
export { StoreError } from '../backend/file-store';

/** The errors callers of the server tell apart. */
export { ConfigError, NothingToServe, ReloadRefused, ResizeError } from '../api/errors';

export class Server {
  private readonly engine: Engine<Export>;
  private readonly addon: NativeAddon;
  private readonly opts: ServingOptions;
  private readonly drain = new DrainWaiters();
  private readonly linkSet: LinkSet;
  private readonly exportSet: ExportSet;
  private readonly state: StateKeeper;
  private readonly views: ViewsAdmin;
  private readonly resizer: Resizer;
  private readonly reloader: Reloader;
  private readonly claims: AddressClaims;
  private readonly failover: RbdFailover<Export>;
  /** Exports whose store cannot open as configured (their reason names the fix): served again by a reload that can open them. */
  private readonly unservable = new Map<string, RefusedExport>();
  /** Exports left out because another process or target serves their address: tried again every duplicate-retry-s. */
  private readonly refused = new Map<string, RefusedExport>();
  private refusedRetry: NodeJS.Timeout | undefined;
  private retrying = false;
  /** Claims and probes one at a time: start-up, a reload, a retry. */
  private guardQueue: Promise<unknown> = Promise.resolve();
  private stopping = false;
  /** Aborted at stop: remote stores still opening are given up, and closed if they arrive. */
  private readonly opening = new AbortController();

  private constructor(
    private readonly log: Logger,
    hooks: ServerHooks,
    options: ServerOptions,
  ) {
    // The engine's events reach objects made further down: they fire only once frames or completions arrive.
    const addon = (this.addon = options.addon ?? loadAddon());
    const opts = (this.opts = resolveOptions(options));
    this.claims = new AddressClaims(addon);
    const ring = addon.openIoRing(opts.requestSlots + 256);
    const io = options.wrapIoRing ? options.wrapIoRing(ring) : ring;
    const engine = (this.engine = new Engine<Export>(
      io,
      opts.requestSlots,
      {
        stateChanged: (e) => this.state.persist(e),
        drained: () => {
          this.linkSet.drained();
          this.drain.wake();
        },
        storeRefused: (e, result) => this.failover.refused(e, result),
      },
      { windowMs: opts.spinMicros / 1000, adaptive: opts.spinPolicy === 'adaptive' },
      hooks.saveState !== undefined,
      addon.openFrameWaiter?.() ?? null,
    ));
    io.startPolling(() => engine.ioReady());
    log.debug({ io: io.kind, depth: io.depth }, 'io ring ready');

    const links = (this.linkSet = new LinkSet(engine, addon, log, opts));
    this.failover = new RbdFailover({
      addon,
      log,
      pollMs: opts.rbdLockPollMs,
      announce: (e) => this.announceExport(e),
    });
    this.views = new ViewsAdmin({
      log,
      addon,
      maxViews: opts.maxViews,
      leaseRetryMs: opts.viewLeaseRetryMs,
      datesSaveMs: opts.viewDatesSaveMs,
      refusalLogMs: opts.viewRefusalLogMs,
      exportOf: (key) => this.exportSet.get(key),
      exports: () => this.exportSet.values(),
      waitDrain: () => this.drain.wait(),
    });
    const persist = (e: Export): void => this.state.persist(e);
    const exports = (this.exportSet = new ExportSet({
      engine,
      links,
      views: this.views,
      drain: this.drain,
      addon,
      log,
      hooks,
      opts,
      persist,
      storeClaims: StoreClaims.ofProcess(addon),
      failover: this.failover,
    }));
    this.state = new StateKeeper({
      engine,
      hooks,
      log,
      exportOf: (key) => exports.get(key),
      endHold: (e) => this.serveAgain(e),
    });
    this.resizer = new Resizer({ engine, exports, links, addon, log, sizeCheckMs: opts.sizeCheckMs });
    this.reloader = new Reloader({
      engine,
      exports,
      links,
      resizer: this.resizer,
      addon,
      log,
      netns: opts.netns,
      persist,
      admit: (added) => this.admit(added),
      released: (key, keep) => this.claims.releaseExport(key, keep),
      claimNewInterfaces: (c, before) => claimNewInterfaces(c, before, this.duplicateCheck()),
      signal: this.opening.signal,
    });
  }

  static async start(config: ServerConfig, log: Logger, hooks: ServerHooks = {}, options: ServerOptions = {}): Promise<Server> {
    const server = new Server(log, hooks, options);
    try {
      await server.serve(config, options.requireAnInterface ?? true);
      // rbd exports took their image's lock, or stand by, before start-up says what it serves.
      await server.failover.settled();
    } catch (e) {
      await server.stop();
      throw e;
    }
    server.linkSet.startWatching();
    server.resizer.startSizeWatch();
    server.refusedRetry = setInterval(() => void server.retryRefused(), server.opts.duplicateRetrySeconds * 1000);
    server.refusedRetry.unref();
    return server;
  }

  /** Start-up: opens every store, refuses what would write one disk twice, then adds the exports and opens their links. */
  private async serve(config: ServerConfig, requireAnInterface: boolean): Promise<void> {
    const { addon, opts, log } = this;
    // Views and snapshots are made after the switch to `user =`: their directories are made for that user.
    const user = config.user === undefined ? null : addon.lookupUser(config.user);
    this.views.user = user === null ? undefined : { name: config.user!, ...user };
    // Stores opened before the duplicate check, so that a file that cannot be served says so, whoever else runs.
    const stores = new Map<string, BlockStore>();
    try {
      const names = [...new Set(config.exports.flatMap((c) => c.interfaces))];
      const missing = names.filter((n) => addon.linkInfo(n, opts.netns) === null);
      // A typo in the only interface fails at once, as vblade does; otherwise the others serve.
      if (requireAnInterface && names.length > 0 && missing.length === names.length)
        throw new NoInterfaceError(`interface ${missing[0]} not found; list interfaces with \`ip link\``);
      const wanted = config.exports.length;
      config = { ...config, exports: await this.openStores(config.exports, stores) };
      const checked = await refuseDuplicates(config, this.duplicateCheck());
      config = checked.config;
      for (const r of checked.refused) this.refused.set(exportKey(r.config), r);
      if (wanted > 0 && config.exports.length === 0) {
        // Refused for another target on the wire: not for good (it may stop; a host that answers every probe may be a forger).
        throw new NothingToServe(
          [...this.unservable.values(), ...this.refused.values()].map((r) => r.reason),
          [...this.refused.values()].some((r) => refusedOnWire(r.reason)),
        );
      }
      for (const c of config.exports) {
        const key = exportKey(c);
        const store = stores.get(key)!;
        stores.delete(key);
        this.exportSet.add(c, undefined, store);
      }
      for (const store of stores.values()) void store.close(); // refused exports
      stores.clear();
      this.linkSet.openAll(requireAnInterface);
      for (const name of missing) {
        const waiting = this.linkSet.get(name)!.exports.map((e) => e.key);
        log.warn(
          { interface: name, exports: waiting },
          `interface ${name} not found; ${waiting.join(' ')} ${waiting.length === 1 ? 'waits' : 'wait'} for it (list interfaces with \`ip link\`)`,
        );
      }
    } catch (e) {
      for (const store of stores.values()) void store.close();
      throw e;
    }
  }

  /**
   * Opens the store of each export into `stores`; returns the exports whose
   * store opened. One that can never open as configured (no such file, no
   * permission, views without clones) is held with its reason, and the
   * others serve; an error that may pass (EIO, EMFILE) fails the start, to
   * be tried again. The stores open together (remote ones off the event
   * loop, a few at a time): a start waits for about the slowest.
   */
  private async openStores(exports: readonly ExportConfig[], stores: Map<string, BlockStore>): Promise<ExportConfig[]> {
    const keys = new Set<string>();
    for (const c of exports) {
      const key = exportKey(c);
      if (keys.has(key)) throw new ConfigError(`${key} is exported twice; give each export its own shelf.slot`);
      keys.add(key);
    }
    const results = await Promise.allSettled(exports.map((c) => this.exportSet.openMappedStore(c, this.opening.signal)));
    // Every store that opened is in `stores` before anything is thrown: the caller closes them.
    results.forEach((r, i) => r.status === 'fulfilled' && stores.set(exportKey(exports[i]), r.value));
    const opened: ExportConfig[] = [];
    results.forEach((r, i) => {
      const c = exports[i];
      if (r.status === 'fulfilled') return void opened.push(c);
      const e = r.reason as Error;
      if (mayPass(e)) throw e;
      const key = exportKey(c);
      const reason = `${key}: ${e.message}`;
      // With one export the start fails and says it; with several the others serve, and the log says why this one does not.
      if (exports.length > 1) this.log.error({ export: key }, `not serving ${reason}`);
      this.unservable.set(key, { config: c, reason });
    });
    return opened;
  }

  private duplicateCheck(): DuplicateCheck {
    const { addon, opts, log } = this;
    return { addon, claims: this.claims, probeMs: opts.duplicateProbeMs, netns: opts.netns, log };
  }

  /** Runs `fn` after the claims and probes before it: one set of them at a time. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.guardQueue.then(fn, fn);
    this.guardQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * Exports a reload adds: claimed and probed as at start-up. Those another
   * process or target serves are left out, remembered and tried again
   * later; returns their keys.
   */
  private async admit(added: readonly ExportConfig[]): Promise<Set<string>> {
    const reasons = await findDuplicates(added, this.duplicateCheck());
    for (const c of added) {
      const key = exportKey(c);
      const reason = reasons.get(key);
      if (reason === undefined) continue;
      this.log.error({ export: key }, `not serving ${key}: ${reason}`);
      this.refused.set(key, { config: c, reason });
    }
    return new Set(reasons.keys());
  }

  /** Refused exports whose address is free now are served; the others stay refused, quietly. */
  private retryRefused(): Promise<void> {
    if (this.stopping || this.retrying || this.refused.size === 0) return Promise.resolve();
    this.retrying = true;
    return this.serialized(async () => {
      const waiting = [...this.refused.values()].map((r) => r.config);
      const reasons = await findDuplicates(waiting, this.duplicateCheck());
      if (this.stopping) return;
      const announced = new Set<string>();
      for (const c of waiting) {
        const key = exportKey(c);
        const reason = reasons.get(key);
        if (reason !== undefined) {
          this.refused.set(key, { config: c, reason });
          continue;
        }
        let store: BlockStore | undefined;
        try {
          store = await this.exportSet.openMappedStore(c, this.opening.signal);
          if (this.stopping) throw new Error('the daemon is stopping');
          this.exportSet.add(c, undefined, store);
        } catch (err) {
          void store?.close();
          this.claims.releaseExport(key);
          this.log.warn({ export: key, err: (err as Error).message }, `${key}: its address is free, but it cannot be served yet`);
          continue;
        }
        this.refused.delete(key);
        for (const name of c.interfaces) announced.add(name);
        this.log.info({ export: key }, `${key}: its address is free again; serving it`);
      }
      if (announced.size === 0) return;
      this.linkSet.openAll(false);
      for (const name of announced) {
        const link = this.linkSet.get(name);
        if (link) this.engine.announce(link);
      }
    })
      .catch((err: Error) => this.log.warn({ err: err.message }, 'cannot try the refused exports again'))
      .finally(() => (this.retrying = false));
  }

  /** Exports configured but not served, because another process or target serves their address; and why. */
  notServed(): { key: string; reason: string }[] {
    return [...this.refused].map(([key, r]) => ({ key, reason: r.reason }));
  }

  /** Exports configured but not served because their store cannot open as configured; and why, with what to do. */
  unservableExports(): { key: string; reason: string }[] {
    return [...this.unservable].map(([key, r]) => ({ key, reason: r.reason }));
  }

  /** The exports being served, in order of creation. */
  get exports(): Export[] {
    return [...this.exportSet.values()];
  }

  get links(): Link[] {
    return [...this.linkSet.values()];
  }

  /** Applies a new configuration, completely or not at all (reload.ts). */
  apply(config: ServerConfig): Promise<ReloadSummary> {
    if (this.stopping) return Promise.reject(new ReloadRefused('the daemon is stopping: the reload was not applied'));
    return this.serialized(async () => {
      // The reload's config says what is wanted now: refused exports it keeps come back as added, and are checked again.
      const before = new Map(this.refused);
      const unservable = new Map(this.unservable);
      this.refused.clear();
      // Unservable exports the reload keeps are added, so opened again: the reload is refused if one still cannot open.
      this.unservable.clear();
      try {
        return await this.reloader.apply(config);
      } catch (err) {
        for (const [k, r] of before) this.refused.set(k, r);
        for (const [k, r] of unservable) this.unservable.set(k, r);
        throw err;
      }
    });
  }

  /** Stops taking requests, answers those in flight, makes written data durable and closes everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // A reload or retry running finishes first (refused, if it had not touched what serves yet):
    // remote stores it still waits for are given up, and closed when they arrive.
    this.opening.abort();
    await this.guardQueue;
    this.linkSet.stopTaking();
    this.resizer.stop();
    clearInterval(this.refusedRetry);
    this.exportSet.markClosing(); // so that the last reply signals drained()
    await this.failover.stop();
    while (this.engine.inflight > 0) await this.drain.wait();
    // A change from the control socket has no reply in flight: wait for its save too.
    while (this.exports.some((e) => e.saving)) await new Promise((r) => setTimeout(r, 5));
    this.engine.flushAll();
    await this.exportSet.closeAll();
    // Remote stores closed on error paths (a reload refused, a store given up) finish their last flush first.
    await remoteClosesDone();
    this.linkSet.closeAll();
    this.engine.io.stopPolling();
    this.engine.io.close();
    this.claims.release();
  }

  stats(): ServerStats {
    return serverStats(this.exports, { engine: this.engine, links: this.linkSet, views: this.views, opts: this.opts });
  }

  // ---- copy-on-write (../views/admin.ts) -------------------------------------

  /** The views of an export: MAC, file, bytes of its own, created, last seen. */
  listViews(key: string): ViewListing[] {
    return this.views.listViews(key);
  }

  /** Runs `fn` while no ATA request of `e` is in flight; resolves with its result and how long the export was paused. */
  whilePaused<T>(e: Export, fn: () => T | Promise<T>): Promise<{ result: T; pausedMs: number }> {
    return this.views.whilePaused(e, fn);
  }

  /** Turns a view (or every view, mac 'all') back into the image as it is now; the MACs reset. */
  resetViews(key: string, macs: string | readonly string[], force = false): Promise<string[]> {
    return this.views.resetViews(key, macs, force);
  }

  /** Removes views; their initiators' next requests make new ones. */
  dropViews(key: string, macs: readonly string[], force = false): Promise<string[]> {
    return this.views.dropViews(key, macs, force);
  }

  /** A crash-consistent copy of an export (or of the view of `viewMac`) as it is now. */
  snapshot(key: string, name?: string, viewMac?: string): Promise<SnapshotTaken> {
    return this.views.snapshot(key, name, viewMac);
  }

  listSnapshots(key: string): SnapshotInfo[] {
    return this.views.listSnapshots(key);
  }

  deleteSnapshot(key: string, name: string): string {
    return this.views.deleteSnapshot(key, name);
  }

  /** Puts a snapshot back into the export (or the view it was taken of); refused while initiators are active unless `force`. */
  revert(key: string, name: string, force = false): Promise<{ key: string; name: string; of: string }> {
    return this.views.revert(key, name, force);
  }

  // ---- administration ----------------------------------------------------------

  /** Takes an export's backing store at its size now (resize.ts). */
  resizeExport(key: string): Promise<ResizeResult> {
    return this.resizer.resizeExport(key);
  }

  /** Changes an export's state from the control socket; resolves with the new state once it is on disk. */
  changeState(key: string, change: (s: ExportState) => ExportState): Promise<ExportState> {
    return this.state.changeState(key, change);
  }

  /** Ends the hold of an export whose saved state was unreadable: saves `state`, then serves and announces it. */
  release(key: string, state: ExportState): Promise<ExportState> {
    return this.state.release(key, state);
  }

  /** A held export's state was saved anew: it serves again, and says so on each of its interfaces. */
  private serveAgain(e: Export): void {
    this.exportSet.endHold(e);
    this.log.info({ export: e.key }, `${e.key} serves again`);
    this.announceExport(e);
  }

  /** The unsolicited config-query reply on each interface of `e`: initiators learn where it is served now. */
  private announceExport(e: Export): void {
    if (this.stopping) return;
    for (const name of e.config.interfaces) {
      const link = this.linkSet.get(name);
      if (link) this.engine.announce(link);
    }
  }

  /** Resolves once every rbd export had its first look at its image's lock (it serves, or stands by). */
  rbdSettled(): Promise<void> {
    return this.failover.settled();
  }

  /** `vblade ctl takeover`: a standby rbd export breaks the owner's lock (fencing it) and serves from here. */
  takeover(key: string): Promise<{ key: string; brokeFrom: string | null; ms: number }> {
    const e = this.exportSet.get(key);
    if (!e) return Promise.reject(new Error(`${key} is not being served right now`));
    return this.failover.takeover(e);
  }
}
