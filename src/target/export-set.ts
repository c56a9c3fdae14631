// The exports the server serves, through their life: each store opened (and
// mapped when its file lives in memory), its saved state met with its
// config, its views opened, the export handed to the engine and its links;
// removed once its requests in flight are answered; all closed at stop,
// with their written data made durable.

import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError } from '../api/errors';
import type { BlockStore } from '../backend/block-store';
import { mapInMemory } from '../backend/mapped-store';
import { exportKey, idleDetectZeroesWarning, type ExportConfig, type ExportState } from '../config/export-config';
import { reconcileState } from '../config/saved-state';
import type { NativeAddon } from '../native/addon';
import type { ViewsAdmin } from '../views/admin';
import { isUnsafeViewsPlace, viewsDirOf } from '../views/views-dir';
import { EXPORT_COUNTER_NAMES } from '../engine/counters';
import type { DrainWaiters } from './drain';
import type { Engine } from '../engine/engine';
import { Export as EngineExport } from '../engine/export';
import type { ExportViews } from '../views/views';
import { ViewStores } from './view-stores';
import type { ServedExport } from './served-export';
import { openExportStore, partialSectorWarning } from './export-store';
import type { StoreClaims } from '../guard/store-claim';
import { StoreError } from '../backend/file-store';
import type { LinkSet } from './link-set';
import type { ServingOptions } from './options';
import type { ServerHooks } from './state-keeper';
import { RbdFailover } from '../remote/rbd-failover';

/** What `vblade ctl list` and stats say of a held export, and what to do about it. */
export function heldMessage(key: string, file: string, reason: string): string {
  return `saved state unreadable (${reason}); kept as ${file}; not served until an operator decides: "vblade ctl show-state ${key}" shows it, "vblade ctl restore-state ${key}" serves the file once fixed, "vblade ctl reset-state ${key}" sets it aside and starts empty`;
}

export interface ExportSetParts {
  engine: Engine<ServedExport>;
  links: LinkSet;
  views: ViewsAdmin;
  drain: DrainWaiters;
  addon: NativeAddon;
  log: Logger;
  hooks: ServerHooks;
  opts: ServingOptions;
  /** This process's host-wide claims of backing stores. */
  storeClaims: StoreClaims;
  /** Hands a changed state to persistence (StateKeeper.persist). */
  persist(e: ServedExport): void;
  /** Holds rbd exports until their image's exclusive lock is this process's. */
  failover: RbdFailover<ServedExport>;
}

export class ExportSet {
  private readonly byKey = new Map<string, ServedExport>();
  /** Exports held because their saved state is unreadable, by key; kept when removed, so a re-add stays held. */
  private readonly heldKeys = new Map<string, string>();

  constructor(private readonly p: ExportSetParts) {}

  get(key: string): ServedExport | undefined {
    return this.byKey.get(key);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  values(): IterableIterator<ServedExport> {
    return this.byKey.values();
  }

  entries(): IterableIterator<[string, ServedExport]> {
    return this.byKey.entries();
  }

  /**
   * The store for an export as it is configured, without mapping; with
   * `claim`, its range claimed host-wide (store-claim.ts) until it is closed.
   * A remote store is opened off the event loop; `signal` aborted: the store
   * is not wanted any more (closed if it arrives).
   */
  async openStore(c: ExportConfig, claim = true, signal?: AbortSignal): Promise<BlockStore> {
    if (!c.nullStore && !c.readOnly && c.views === undefined) this.p.views.stopSharingImage(c.file);
    const key = exportKey(c);
    const onMessage = (line: string): void => this.p.log.warn({ export: key }, line);
    const store = await openExportStore(c, this.p.addon, { onMessage, signal });
    // Claims are by inode: a remote store has none (its server arbitrates its writers).
    if (!claim || store.kind !== 'file') return store;
    let release: () => void;
    try {
      release = this.p.storeClaims.claim(c, store.fd);
    } catch (e) {
      void store.close();
      // Another process serves it: the configuration (or the other process) must change, so a retry would not help.
      throw new StoreError((e as Error).message);
    }
    const close = store.close.bind(store);
    store.close = () => {
      release();
      return close();
    };
    return store;
  }

  /** The store for an export, mapped when its file lives in memory (unless mapping is turned off). */
  async openMappedStore(c: ExportConfig, signal?: AbortSignal): Promise<BlockStore> {
    const store = await this.openStore(c, true, signal);
    // A hole read through a mapping of a tmpfs file is filled with a new page: detect-zeroes would make nothing thin.
    if (!this.p.opts.mapInMemory || c.detectZeroes !== undefined) return store;
    return mapInMemory(store, !c.readOnly, this.p.addon, (file, reason) =>
      this.p.log.warn({ file, err: reason }, 'cannot map the backing file; using read and write calls'),
    );
  }

  /** Adds an export with the store opened for it (openMappedStore), which it owns from now on. */
  add(c: ExportConfig, carried: ExportState | undefined, store: BlockStore): ServedExport {
    const key = exportKey(c);
    if (this.byKey.has(key)) throw new ConfigError(`${key} is exported twice; give each export its own shelf.slot`);
    if (c.interfaces.length === 0) throw new ConfigError(`${key} has no interface to serve on`);
    const engine = this.p.engine;
    let id = engine.exports.indexOf(null);
    if (id < 0) id = engine.exports.length;
    let saved = carried;
    if (!this.heldKeys.has(key) && !saved) {
      const found = this.p.hooks.initialState?.(key);
      if (found?.status === 'ok') saved = found.state;
      else if (found?.status === 'unreadable') this.heldKeys.set(key, heldMessage(key, found.file, found.reason));
    }
    const held = this.heldKeys.get(key) ?? null;
    // Saved (or carried) state meets the config: a mask the operator changed in the config wins.
    const reconciled = held === null && saved ? reconcileState(saved, c.macMask) : undefined;
    let e: ServedExport;
    try {
      e = new EngineExport<ExportViews>(id, c, store, this.p.opts.requestSlots, reconciled?.state);
    } catch (err) {
      void store.close();
      throw new ConfigError(`${key}: ${(err as Error).message}`);
    }
    e.held = held;
    if (c.views !== undefined) {
      try {
        const views = this.p.views.openViews(c, store);
        e.serveViews(views, new ViewStores(views, store));
      } catch (err) {
        if (isUnsafeViewsPlace(err)) {
          void store.close();
          throw new ConfigError(`${key}: cannot open the views in ${viewsDirOf(c)}: ${(err as Error).message}`);
        }
        // Anything else holds this export alone; the others serve (a start or restart must not fail because of one views dir).
        e.held ??= `cannot open the views in ${viewsDirOf(c)}: ${(err as Error).message}; not served until that is fixed and the export is reloaded (or vbladed restarted)`;
        this.p.log.error({ export: key, dir: viewsDirOf(c), err: (err as Error).message }, 'cannot open the views');
      }
    }
    // An rbd writer answers nothing until the image's lock is its own; its state then comes from the image.
    if (RbdFailover.gated(e)) this.p.failover.track(e);
    engine.exports[id] = e;
    this.byKey.set(key, e);
    this.p.links.attach(e);
    if (reconciled?.changed) this.p.persist(e);
    this.p.log.info(
      {
        export: key,
        file: store.description,
        sectors: store.sectors,
        interfaces: c.interfaces,
        readOnly: c.readOnly,
        sync: c.sync,
        direct: c.direct,
        held: held ?? undefined,
      },
      held === null ? 'export added' : `export added but not served: ${held}`,
    );
    const partial = partialSectorWarning(c, store);
    if (partial !== undefined) this.p.log.warn({ export: key, unservedBytes: store.unservedTailBytes }, partial);
    const idle = idleDetectZeroesWarning(c);
    if (idle !== undefined) this.p.log.warn({ export: key }, idle);
    return e;
  }

  /** Stops serving an export; resolves when its requests in flight are answered and its store is closed. */
  async remove(e: ServedExport): Promise<void> {
    e.closing = true;
    this.p.failover.untrack(e);
    this.p.links.detach(e);
    this.byKey.delete(e.key);
    while (e.inflight > 0) await this.p.drain.wait();
    this.p.engine.exports[e.id] = null;
    await e.views?.closeAndSave();
    await e.store.close(); // a remote store's off the event loop: the others serve meanwhile
    this.p.log.info({ export: e.key }, 'export removed');
  }

  /** An export whose saved state was unreadable serves again (its state was saved anew). */
  endHold(e: ServedExport): void {
    if (e.config.views !== undefined && e.views === null) return; // held for its views, not its state
    e.held = null;
    this.heldKeys.delete(e.key);
  }

  /** Stop, first step: the last reply of every export signals drained(). */
  markClosing(): void {
    for (const e of this.byKey.values()) e.closing = true;
  }

  /** Stop, last step (nothing in flight): logs each export's counters, makes written data durable and closes it. */
  async closeAll(): Promise<void> {
    // Remote stores close together: a stop waits for about the slowest (each bounded by its remote-timeout), not their sum.
    const closing: Promise<void>[] = [];
    for (const e of this.byKey.values()) {
      // What the export did, for the log a user reads after stopping it.
      this.p.log.info(
        { export: e.key, ...Object.fromEntries(EXPORT_COUNTER_NAMES.map((n, i) => [n, e.counters[i]])) },
        'export counters at stop',
      );
      if (e.store.kind === 'file' && !e.config.readOnly) {
        try {
          fs.fdatasyncSync(e.store.fd);
          e.views?.syncs.syncAllNow();
        } catch (err) {
          this.p.log.error({ export: e.key, err: (err as Error).message }, 'final fdatasync failed');
        }
      }
      await e.views?.closeAndSave();
      closing.push(Promise.resolve(e.store.close()));
    }
    await Promise.all(closing);
    this.byKey.clear();
  }
}
