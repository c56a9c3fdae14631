// The serving core: builds exports and links from a ServerConfig, wires the
// engine to socket and io-ring wake-ups, watches the interfaces, applies
// reloads and stops cleanly. Start order: io ring, stores, links; stop order
// is the reverse, after every request in flight has been answered.

import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { BlockStore } from '../backend/block-store';
import { openFileStore } from '../backend/file-store';
import { mapInMemory } from '../backend/mapped-store';
import { openNullStore } from '../backend/null-store';
import { EXPORT_COUNTER_NAMES, LINK_COUNTER_NAMES, LinkCounter } from './counters';
import { Engine } from './engine';
import { Export } from './export';
import {
  DEFAULT_TUNABLES,
  exportKey,
  type ExportConfig,
  type ExportState,
  type SavedState,
  type ServerConfig,
} from '../config/export-config';
import { Link } from './link';
import { loadAddon, type IoRing, type NativeAddon } from '../native/addon';

export interface ServerHooks {
  /**
   * Makes an export's config string, mask and reserve lists durable;
   * resolves once they are on disk. When present, a request that changes the
   * state is answered only after this resolved, and with AoE error 3 (the
   * state going back to the last one saved) when it rejects.
   */
  saveState?(key: string, state: ExportState): Promise<void>;
  /** Told of every change when state lives in memory only (no saveState). */
  onStateChange?(key: string, state: ExportState): void;
  /** Saved state when an export starts; an unreadable one holds the export (it serves nothing). */
  initialState?(key: string): SavedState;
}

/** Someone waiting (the control socket) for an export's state up to `version` to be on disk. */
interface StateWaiter {
  version: number;
  resolve(): void;
  reject(e: Error): void;
}

/** What `vblade ctl list` and stats say of a held export, and what to do about it. */
export function heldMessage(key: string, file: string, reason: string): string {
  return `saved state unreadable (${reason}); kept as ${file}; not served until an operator decides: "vblade ctl show-state ${key}" shows it, "vblade ctl restore-state ${key}" serves the file once fixed, "vblade ctl reset-state ${key}" sets it aside and starts empty`;
}

export interface ServerOptions {
  /** Requests in flight over all exports (each holds one transmit slot). */
  requestSlots?: number;
  /** Transmit slots per interface. */
  txSlots?: number;
  /** How often interfaces are checked for MTU, MAC and carrier changes. */
  linkCheckMs?: number;
  /** Network namespace to open sockets in (tests). */
  netns?: string;
  addon?: NativeAddon;
  /** Busy-poll window after each batch, microseconds; 0 sleeps at once ([daemon] spin-us). */
  spinMicros?: number;
  /** Map backing files that live in memory ([daemon] map-in-memory). */
  mapInMemory?: boolean;
  /** Wraps the io ring before the engine uses it: where the process set-up adds test fault injection. */
  wrapIoRing?: (io: IoRing) => IoRing;
}

/** A store that cannot be opened (missing file, no permission, ...): the message says what to do. */
export { StoreError } from '../backend/file-store';

/** A configuration the server cannot serve; the message says what to fix. */
export class ConfigError extends Error {}

const DEFAULT_SIZE_NULL = 2 * 1024 * 1024 * 2; // 2 GiB in sectors

export class Server {
  private readonly engine: Engine;
  private readonly linksByName = new Map<string, Link>();
  private readonly exportsByKey = new Map<string, Export>();
  private monitor: NodeJS.Timeout | null = null;
  private stopping = false;
  private drainWaiters: (() => void)[] = [];
  private readonly stateWaiters = new Map<Export, StateWaiter[]>();
  /** Exports held because their saved state is unreadable, by key; kept when removed, so a re-add stays held. */
  private readonly heldKeys = new Map<string, string>();
  private readonly addon: NativeAddon;
  private readonly opts: Required<Omit<ServerOptions, 'netns' | 'addon' | 'wrapIoRing'>> & { netns?: string };

  private constructor(
    private readonly log: Logger,
    private readonly hooks: ServerHooks,
    options: ServerOptions,
  ) {
    this.addon = options.addon ?? loadAddon();
    this.opts = {
      requestSlots: options.requestSlots ?? 2048,
      txSlots: options.txSlots ?? 1024,
      linkCheckMs: options.linkCheckMs ?? 500,
      netns: options.netns,
      spinMicros: options.spinMicros ?? DEFAULT_TUNABLES.spinMicros,
      mapInMemory: options.mapInMemory ?? DEFAULT_TUNABLES.mapInMemory,
    };
    const ring = this.addon.openIoRing(this.opts.requestSlots + 256);
    const io = options.wrapIoRing ? options.wrapIoRing(ring) : ring;
    this.engine = new Engine(
      io,
      this.opts.requestSlots,
      {
        stateChanged: (e) => this.persist(e),
        drained: () => this.onDrained(),
      },
      this.opts.spinMicros / 1000,
      hooks.saveState !== undefined,
    );
    io.startPolling(() => this.engine.ioReady());
    log.debug({ io: io.kind, depth: io.depth }, 'io ring ready');
  }

  static async start(config: ServerConfig, log: Logger, hooks: ServerHooks = {}, options: ServerOptions = {}): Promise<Server> {
    const server = new Server(log, hooks, options);
    try {
      for (const c of config.exports) {
        for (const name of c.interfaces) {
          if (server.addon.linkInfo(name, server.opts.netns) === null) {
            throw new ConfigError(`interface ${name} not found; list interfaces with \`ip link\``);
          }
        }
      }
      for (const c of config.exports) server.addExport(c);
      for (const link of server.linksByName.values()) server.ensureOpen(link, true);
    } catch (e) {
      await server.stop();
      throw e;
    }
    server.monitor = setInterval(() => server.checkLinks(), server.opts.linkCheckMs);
    return server;
  }

  /** The exports being served, in order of creation. */
  get exports(): Export[] {
    return [...this.exportsByKey.values()];
  }

  get links(): Link[] {
    return [...this.linksByName.values()];
  }

  // ---- exports -------------------------------------------------------------

  private openStore(c: ExportConfig): BlockStore {
    if (c.nullStore) return openNullStore(c.nullSectors ?? DEFAULT_SIZE_NULL);
    return openFileStore({
      file: c.file,
      readOnly: c.readOnly,
      direct: c.direct,
      offsetSectors: c.offsetSectors,
      lengthSectors: c.lengthSectors,
      blockDeviceSize: (fd) => this.addon.blockDeviceSize(fd),
    });
  }

  /** The store for an export, mapped when its file lives in memory (unless mapping is turned off). */
  private openMappedStore(c: ExportConfig): BlockStore {
    const store = this.openStore(c);
    if (!this.opts.mapInMemory) return store;
    return mapInMemory(store, !c.readOnly, this.addon, (file, reason) =>
      this.log.warn({ file, err: reason }, 'cannot map the backing file; using read and write calls'),
    );
  }

  private addExport(c: ExportConfig, carried?: ExportState): Export {
    const key = exportKey(c);
    if (this.exportsByKey.has(key)) throw new ConfigError(`${key} is exported twice; give each export its own shelf.slot`);
    if (c.interfaces.length === 0) throw new ConfigError(`${key} has no interface to serve on`);
    const store = this.openMappedStore(c);
    let id = this.engine.exports.indexOf(null);
    if (id < 0) id = this.engine.exports.length;
    let initial = carried;
    if (!this.heldKeys.has(key) && !initial) {
      const saved = this.hooks.initialState?.(key);
      if (saved?.status === 'ok') initial = saved.state;
      else if (saved?.status === 'unreadable') this.heldKeys.set(key, heldMessage(key, saved.file, saved.reason));
    }
    const held = this.heldKeys.get(key) ?? null;
    if (held !== null) initial = undefined;
    let e: Export;
    try {
      e = new Export(id, c, store, this.opts.requestSlots, initial);
    } catch (err) {
      store.close();
      throw new ConfigError(`${key}: ${(err as Error).message}`);
    }
    e.held = held;
    this.engine.exports[id] = e;
    this.exportsByKey.set(key, e);
    for (const name of c.interfaces) {
      let link = this.linksByName.get(name);
      if (!link) {
        const linkId = this.engine.links.length;
        link = new Link(name, linkId, this.addon, { txSlots: this.opts.txSlots, netns: this.opts.netns });
        this.engine.links.push(link);
        this.linksByName.set(name, link);
      }
      link.exports.push(e);
    }
    this.log.info(
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
    return e;
  }

  /** Stops serving an export; resolves when its requests in flight are answered and its store is closed. */
  private async removeExport(e: Export): Promise<void> {
    e.closing = true;
    for (const link of this.linksByName.values()) {
      const i = link.exports.indexOf(e);
      if (i >= 0) link.exports.splice(i, 1);
    }
    this.exportsByKey.delete(e.key);
    while (e.inflight > 0) await this.waitDrain();
    this.engine.exports[e.id] = null;
    e.store.close();
    this.log.info({ export: e.key }, 'export removed');
  }

  /**
   * Hands an export's changed state to the persistence hook. Saves of one
   * export never overlap: a change made while one runs is saved when it ends.
   */
  private persist(e: Export): void {
    if (!this.hooks.saveState) {
      e.savedVersion = e.durableVersion = e.state.version;
      e.setDurable(e.snapshotState());
      this.hooks.onStateChange?.(e.key, e.durableState);
      this.settleWaiters(e, null);
      return;
    }
    if (e.saving || e.savedVersion === e.state.version) return;
    const version = e.state.version;
    const state = e.snapshotState();
    e.saving = true;
    e.savedVersion = version;
    this.hooks.saveState(e.key, state).then(
      () => {
        e.saving = false;
        e.durableVersion = version;
        e.setDurable(state);
        this.engine.stateSaved(e, version);
        this.settleWaiters(e, null);
        if (e.state.version !== e.savedVersion) this.persist(e);
      },
      (err: Error) => {
        e.saving = false;
        e.failedSaves++;
        e.lastSaveError = err.message;
        // Back to what is on disk: nothing may act on, or show, a state that a restart would lose.
        const held = e.heldReplies.length;
        e.restore(e.durableState);
        e.state.version++;
        e.savedVersion = e.durableVersion = e.state.version;
        this.engine.stateLost(e);
        this.settleWaiters(e, err);
        this.log.error(
          { export: e.key, err: err.message, failedSaves: e.failedSaves, refused: held },
          `state change of ${e.key} not saved (${err.message}); went back to the saved state and refused the ${held} request(s) waiting for it with AoE error 3 (device unavailable)`,
        );
      },
    );
  }

  /** Resolves the waiters of versions now durable, or rejects them all when a save failed. */
  private settleWaiters(e: Export, err: Error | null): void {
    const list = this.stateWaiters.get(e);
    if (!list) return;
    const keep = list.filter((w) => {
      if (err) w.reject(err);
      else if (w.version <= e.durableVersion) w.resolve();
      else return true;
      return false;
    });
    if (keep.length) this.stateWaiters.set(e, keep);
    else this.stateWaiters.delete(e);
  }

  /** Applies a state change made outside the frame path and resolves once it is on disk. */
  private commitState(e: Export, next: ExportState): Promise<void> {
    if (next.macMask.length > e.state.mask.capacity || next.reserve.length > e.state.reserve.capacity) {
      return Promise.reject(new Error(`a list holds at most ${e.state.mask.capacity} MAC addresses`));
    }
    e.restore(next);
    e.state.version++;
    const version = e.state.version;
    const done = new Promise<void>((resolve, reject) => {
      const list = this.stateWaiters.get(e) ?? [];
      list.push({ version, resolve, reject });
      this.stateWaiters.set(e, list);
    });
    this.engine.stateChangedOutside(e);
    return done;
  }

  // ---- links ---------------------------------------------------------------

  /** Opens a link's socket if it has none; at start-up a missing interface is fatal. */
  private ensureOpen(link: Link, fatal: boolean): void {
    if (link.socket !== null || link.inflight > 0) return;
    const info = link.readInfo();
    if (info === null) {
      if (fatal) throw new ConfigError(`interface ${link.name} not found; list interfaces with \`ip link\``);
      return;
    }
    try {
      link.open(info);
    } catch (err) {
      if (fatal) throw err;
      this.log.warn({ interface: link.name, err: (err as Error).message }, 'cannot open interface yet');
      return;
    }
    this.engine.registerLinkMemory(link);
    link.accepting = true;
    link.socket!.startPolling((status) => {
      if (status < 0) this.checkLink(link);
      else this.engine.receive(link);
    });
    this.log.info({ interface: link.name, mtu: info.mtu, up: info.up, sectors: link.ctx.maxSectors }, 'interface open');
    if (info.up) this.engine.announce(link);
  }

  /** Stops taking frames on a link and closes it once nothing refers to its memory. */
  private retire(link: Link, why: string): void {
    if (link.socket === null) return;
    link.pause();
    link.reopenWanted = true;
    this.log.warn({ interface: link.name, reason: why }, 'closing interface');
    if (link.inflight === 0) this.closeLink(link);
  }

  private closeLink(link: Link): void {
    this.engine.flushLink(link);
    this.engine.unregisterLinkMemory(link);
    link.close();
  }

  private checkLinks(): void {
    for (const link of this.linksByName.values()) this.checkLink(link);
  }

  /** Follows an interface through MTU, MAC and carrier changes, and through its removal and return. */
  private checkLink(link: Link): void {
    if (this.stopping) return;
    const info = link.readInfo();
    const sock = link.socket;
    if (info === null) {
      if (sock !== null) {
        link.counters[LinkCounter.LinkDowns]++;
        this.retire(link, 'interface vanished');
      }
      link.info = null;
      return;
    }
    if (sock === null) {
      if (link.inflight === 0) this.ensureOpen(link, false);
      return;
    }
    if (link.reopenWanted) return;
    if (info.ifindex !== sock.ifindex) {
      link.counters[LinkCounter.LinkDowns]++;
      this.retire(link, 'interface was recreated');
      return;
    }
    if (link.outgrown(info)) {
      this.retire(link, `MTU grew to ${info.mtu}; resizing the ring`);
      return;
    }
    const was = link.info;
    link.applyInfo(info);
    if (was && was.mtu !== info.mtu)
      this.log.info({ interface: link.name, mtu: info.mtu, sectors: link.ctx.maxSectors }, 'MTU changed');
    if (was && was.up && !info.up) {
      link.counters[LinkCounter.LinkDowns]++;
      this.log.warn({ interface: link.name }, 'link down');
    }
    if (was && !was.up && info.up) {
      this.log.info({ interface: link.name }, 'link up');
      this.engine.announce(link);
    }
  }

  private onDrained(): void {
    for (const link of this.linksByName.values()) {
      if (link.reopenWanted && link.inflight === 0 && link.socket !== null) {
        this.closeLink(link);
        if (!this.stopping) setImmediate(() => this.checkLink(link));
      }
    }
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private waitDrain(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  // ---- reload and stop -----------------------------------------------------

  /**
   * Applies a new configuration: exports that are gone are removed, new ones
   * added, changed ones (or ones whose backing store changed size) replaced
   * with their protocol state carried over; the others are not touched.
   */
  async apply(config: ServerConfig): Promise<{ added: string[]; removed: string[]; changed: string[] }> {
    const wanted = new Map(config.exports.map((c) => [exportKey(c), c]));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    for (const [key, e] of this.exportsByKey) {
      const c = wanted.get(key);
      if (!c) {
        removed.push(key);
        await this.removeExport(e);
      } else if (JSON.stringify(c) !== JSON.stringify(e.config) || this.sizeChanged(e)) {
        changed.push(key);
        const state = e.snapshotState();
        await this.removeExport(e);
        this.addExport(c, state);
      }
    }
    for (const [key, c] of wanted) {
      if (!this.exportsByKey.has(key)) {
        added.push(key);
        this.addExport(c);
      }
    }
    for (const link of this.linksByName.values()) this.ensureOpen(link, false);
    for (const key of [...added, ...changed]) {
      const e = this.exportsByKey.get(key)!;
      for (const name of e.config.interfaces) this.engine.announce(this.linksByName.get(name)!);
    }
    this.log.info({ added, removed, changed }, 'configuration applied');
    return { added, removed, changed };
  }

  private sizeChanged(e: Export): boolean {
    if (e.store.kind !== 'file' || e.config.lengthSectors !== undefined) return false;
    try {
      const probe = this.openStore({ ...e.config, readOnly: true, direct: false });
      const differs = probe.sectors !== e.store.sectors;
      probe.close();
      return differs;
    } catch {
      return false;
    }
  }

  /** Stops taking requests, answers those in flight, makes written data durable and closes everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.monitor) clearInterval(this.monitor);
    for (const link of this.linksByName.values()) link.pause();
    for (const e of this.exportsByKey.values()) e.closing = true; // so that the last reply signals drained()
    while (this.engine.inflight > 0) await this.waitDrain();
    // A change from the control socket has no reply in flight: wait for its save too.
    while (this.exports.some((e) => e.saving)) await new Promise((r) => setTimeout(r, 5));
    this.engine.flushAll();
    for (const e of this.exportsByKey.values()) {
      // What the export did, for the log a user reads after stopping it.
      this.log.info(
        { export: e.key, ...Object.fromEntries(EXPORT_COUNTER_NAMES.map((n, i) => [n, e.counters[i]])) },
        'export counters at stop',
      );
      if (e.store.kind === 'file' && !e.config.readOnly) {
        try {
          fs.fdatasyncSync(e.store.fd);
        } catch (err) {
          this.log.error({ export: e.key, err: (err as Error).message }, 'final fdatasync failed');
        }
      }
      e.store.close();
    }
    this.exportsByKey.clear();
    for (const link of this.linksByName.values()) {
      if (link.socket) this.closeLink(link);
    }
    this.engine.io.stopPolling();
    this.engine.io.close();
  }

  // ---- observation ---------------------------------------------------------

  stats(): ServerStats {
    return {
      exports: this.exports.map((e) => ({
        key: e.key,
        file: e.store.description,
        sectors: e.store.sectors,
        interfaces: e.config.interfaces,
        readOnly: e.config.readOnly,
        inflight: e.inflight,
        ...(e.held !== null ? { held: e.held } : {}),
        stateDurable: e.durable,
        failedSaves: e.failedSaves,
        ...(e.lastSaveError !== null ? { lastSaveError: e.lastSaveError } : {}),
        config: e.state.configString(),
        macMask: e.state.mask.toStrings(),
        reserve: e.state.reserve.toStrings(),
        counters: Object.fromEntries(EXPORT_COUNTER_NAMES.map((n, i) => [n, e.counters[i]])),
        latencyUsLog2: Array.from(e.latency),
      })),
      interfaces: this.links.map((l) => {
        const k = l.socket?.stats();
        if (k) l.counters[LinkCounter.RxRingDrops] += k.drops;
        return {
          name: l.name,
          open: l.socket !== null,
          up: l.info?.up ?? false,
          mtu: l.info?.mtu ?? 0,
          sectorsPerFrame: l.ctx.maxSectors,
          counters: Object.fromEntries(LINK_COUNTER_NAMES.map((n, i) => [n, l.counters[i]])),
        };
      }),
    };
  }

  /**
   * Changes an export's state from the control socket (mask and reserve
   * commands); resolves with the new state once it is on disk, rejects with
   * the reason when it could not be saved (the old state stays in force).
   */
  async changeState(key: string, change: (s: ExportState) => ExportState): Promise<ExportState> {
    const e = this.served(key);
    if (e.held !== null) throw new Error(`${key} is held: ${e.held}`);
    await this.commitState(e, change(e.snapshotState()));
    return e.snapshotState();
  }

  /**
   * Ends the hold of an export whose saved state was unreadable: saves
   * `state` (the repaired file's, or an empty one), then serves it and
   * announces it. Rejects, still held, when the save fails.
   */
  async release(key: string, state: ExportState): Promise<ExportState> {
    const e = this.served(key);
    if (e.held === null) throw new Error(`${key} is not held; it serves its saved state already`);
    await this.commitState(e, state);
    e.held = null;
    this.heldKeys.delete(key);
    this.log.info({ export: key }, `${key} serves again`);
    for (const name of e.config.interfaces) {
      const link = this.linksByName.get(name);
      if (link) this.engine.announce(link);
    }
    return e.snapshotState();
  }

  private served(key: string): Export {
    const e = this.exportsByKey.get(key);
    if (!e) throw new Error(`${key} is not being served right now`);
    return e;
  }
}

export interface ServerStats {
  exports: {
    key: string;
    file: string;
    sectors: number;
    interfaces: string[];
    readOnly: boolean;
    inflight: number;
    /** Why the export serves nothing (its saved state is unreadable), and what to do. */
    held?: string;
    /** The state in force is on disk. */
    stateDurable: boolean;
    /** Saves of the state that failed since the start, and the last failure. */
    failedSaves: number;
    lastSaveError?: string;
    config: string;
    macMask: string[];
    reserve: string[];
    counters: Record<string, number>;
    latencyUsLog2: number[];
  }[];
  interfaces: {
    name: string;
    open: boolean;
    up: boolean;
    mtu: number;
    sectorsPerFrame: number;
    counters: Record<string, number>;
  }[];
}
