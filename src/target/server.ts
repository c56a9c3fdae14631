// The serving core: builds exports and links from a ServerConfig, wires the
// engine to socket and io-ring wake-ups, watches the interfaces, applies
// reloads and stops cleanly. Start order: io ring, stores, links; stop order
// is the reverse, after every request in flight has been answered.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { BlockStore } from '../backend/block-store';
import { sectorsAfterOffset } from '../backend/file-store';
import { mapInMemory } from '../backend/mapped-store';
import { EXPORT_COUNTER_NAMES, LINK_COUNTER_NAMES, LinkCounter } from './counters';
import { Engine } from './engine';
import type { ReloadSummary, ResizeResult, ServerStats, SnapshotInfo, SnapshotTaken, ViewListing } from '../api/control';
import { ConfigError, ReloadRefused, ResizeError } from '../api/errors';
import { openExportStore, viewsDirOf } from './export-store';
import { ExportViews, macOfName, nameOfMac } from '../views/views';
import { defaultSnapshotName, SnapshotDir } from '../views/snapshots';
import { checkReflinkPlace } from '../backend/reflink';
import { openFileLimit } from '../views/file-limit';
import { performance } from 'node:perf_hooks';
import { Export } from './export';
import {
  DEFAULT_TUNABLES,
  describeSize,
  exportKey,
  type ExportConfig,
  type ExportState,
  type SavedState,
  type ServerConfig,
  type SpinPolicyName,
} from '../config/export-config';
import { reconcileState } from '../config/reconcile-state';
import { Link } from './link';
import { AddressClaims } from '../guard/address-claim';
import { probeAddresses } from '../guard/duplicate-probe';
import { sharedWriterProblems } from '../guard/shared-writers';
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
  /**
   * At start, fail when none of the configured interfaces exists (default);
   * false for a restarted worker, which waits for them. A missing interface
   * among others never fails: its exports wait for it there.
   */
  requireAnInterface?: boolean;
  /** Network namespace to open sockets in (tests). */
  netns?: string;
  addon?: NativeAddon;
  /** Busy-poll window after each batch, microseconds; 0 sleeps at once ([daemon] spin-us). */
  spinMicros?: number;
  /** 'adaptive': poll only while polls find work; 'always': after every batch ([daemon] spin-policy). */
  spinPolicy?: SpinPolicyName;
  /** Map backing files that live in memory ([daemon] map-in-memory). */
  mapInMemory?: boolean;
  /** Seconds between announcements on every interface that is up; 0 turns them off ([daemon] announce-interval). */
  announceSeconds?: number;
  /** How often backing stores are checked for growth (resizeExport); 0 only on request. */
  sizeCheckMs?: number;
  /** Wraps the io ring before the engine uses it: where the process set-up adds test fault injection. */
  wrapIoRing?: (io: IoRing) => IoRing;
  /**
   * How long start-up waits for another target to answer our own addresses
   * ([daemon] duplicate-probe-ms); 0 (the default here) skips the probe and
   * the claim of each address on this host.
   */
  duplicateProbeMs?: number;
  /** Views one export may keep open (one descriptor each); default: RLIMIT_NOFILE less what the rest of the process needs. */
  maxViews?: number;
  /** After a writer had a views export's image open: how often sharing its page cache is tried again (default 30 s). */
  viewLeaseRetryMs?: number;
  /** How often views' last-seen dates are saved while initiators use them (default 60 s). */
  viewDatesSaveMs?: number;
}

/** How long an export must have served no I/O before `revert` runs without --force. */
export const REVERT_QUIET_MS = 5 * 60_000;

/** Descriptors left for sockets, the io ring, backing files, logs and the control socket when views take the rest. */
const FDS_KEPT_FREE = 256;

/** A store that cannot be opened (missing file, no permission, ...): the message says what to do. */
export { StoreError } from '../backend/file-store';

/** A reload checked and prepared: stores opened, nothing serving touched yet. */
interface ReloadPlan {
  removed: Export[];
  replaced: { old: Export; config: ExportConfig; store: BlockStore }[];
  added: { config: ExportConfig; store: BlockStore }[];
  masked: { old: Export; config: ExportConfig }[];
  /** Exports whose backing store grew: taken in place, like `vblade ctl resize`. */
  grown: Export[];
  summary: ReloadSummary;
}

const DUPLICATE_ADVICE =
  "two targets with one address write one disk behind each other's back; stop the other one or give this export " +
  'another shelf.slot, or, if both are meant to serve it (an active-active failover pair on one shared disk), ' +
  'set shared = yes in its export section (vblade: --shared)';

export class Server {
  private readonly engine: Engine;
  private readonly linksByName = new Map<string, Link>();
  private readonly exportsByKey = new Map<string, Export>();
  private monitor: NodeJS.Timeout | null = null;
  private announcer: NodeJS.Timeout | null = null;
  private sizeWatch: NodeJS.Timeout | null = null;
  /** The resize refusal last logged for an export by the size watch. */
  private readonly shrinkReported = new Map<string, string>();
  private stopping = false;
  private drainWaiters: (() => void)[] = [];
  private readonly stateWaiters = new Map<Export, StateWaiter[]>();
  /** Exports held because their saved state is unreadable, by key; kept when removed, so a re-add stays held. */
  private readonly heldKeys = new Map<string, string>();
  private readonly addon: NativeAddon;
  private readonly claims = new AddressClaims();
  private readonly opts: Required<Omit<ServerOptions, 'netns' | 'addon' | 'wrapIoRing' | 'requireAnInterface'>> & {
    netns?: string;
  };

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
      spinPolicy: options.spinPolicy ?? DEFAULT_TUNABLES.spinPolicy,
      mapInMemory: options.mapInMemory ?? DEFAULT_TUNABLES.mapInMemory,
      duplicateProbeMs: options.duplicateProbeMs ?? 0,
      announceSeconds: options.announceSeconds ?? DEFAULT_TUNABLES.announceSeconds,
      sizeCheckMs: options.sizeCheckMs ?? 5000,
      maxViews: options.maxViews ?? Math.max(0, openFileLimit() - FDS_KEPT_FREE),
      viewLeaseRetryMs: options.viewLeaseRetryMs ?? 30_000,
      viewDatesSaveMs: options.viewDatesSaveMs ?? 60_000,
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
      { windowMs: this.opts.spinMicros / 1000, adaptive: this.opts.spinPolicy === 'adaptive' },
      hooks.saveState !== undefined,
      this.addon.openFrameWaiter?.() ?? null,
    );
    io.startPolling(() => this.engine.ioReady());
    log.debug({ io: io.kind, depth: io.depth }, 'io ring ready');
  }

  static async start(config: ServerConfig, log: Logger, hooks: ServerHooks = {}, options: ServerOptions = {}): Promise<Server> {
    const server = new Server(log, hooks, options);
    const requireAnInterface = options.requireAnInterface ?? true;
    // Stores opened before the duplicate check, so that a file that cannot be served says so, whoever else runs.
    const stores = new Map<string, BlockStore>();
    try {
      const names = [...new Set(config.exports.flatMap((c) => c.interfaces))];
      const missing = names.filter((n) => server.addon.linkInfo(n, server.opts.netns) === null);
      // A typo in the only interface fails at once, as vblade does; otherwise the others serve.
      if (requireAnInterface && names.length > 0 && missing.length === names.length)
        throw new ConfigError(`interface ${missing[0]} not found; list interfaces with \`ip link\``);
      for (const c of config.exports) {
        const key = exportKey(c);
        if (stores.has(key)) throw new ConfigError(`${key} is exported twice; give each export its own shelf.slot`);
        stores.set(key, server.openMappedStore(c));
      }
      config = await server.refuseDuplicates(config);
      for (const c of config.exports) {
        const key = exportKey(c);
        const store = stores.get(key);
        stores.delete(key);
        server.addExport(c, undefined, store);
      }
      for (const store of stores.values()) store.close(); // refused exports
      stores.clear();
      for (const link of server.linksByName.values()) server.ensureOpen(link, requireAnInterface);
      for (const name of missing) {
        const waiting = server.linksByName.get(name)!.exports.map((e) => e.key);
        log.warn(
          { interface: name, exports: waiting },
          `interface ${name} not found; ${waiting.join(' ')} ${waiting.length === 1 ? 'waits' : 'wait'} for it (list interfaces with \`ip link\`)`,
        );
      }
    } catch (e) {
      for (const store of stores.values()) store.close();
      await server.stop();
      throw e;
    }
    server.monitor = setInterval(() => server.checkLinks(), server.opts.linkCheckMs);
    server.startAnnouncing();
    server.startSizeWatch();
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
    if (!c.nullStore && !c.readOnly && c.views === undefined) this.stopSharingImage(c.file);
    return openExportStore(c, this.addon);
  }

  /**
   * This process is about to open `file` for writing (a reload that exports
   * an image writable): views that read it through a lease stop doing so
   * first; else the open would wait, in this very thread, for the lease
   * this thread holds until the kernel breaks it (45 s).
   */
  private stopSharingImage(file: string): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return; // opening it will say what is wrong
    }
    for (const e of this.exportsByKey.values()) {
      if (e.views === null || !e.views.sharesImage) continue;
      const image = fs.fstatSync(e.store.fd);
      if (image.ino === st.ino && image.dev === st.dev) e.views.stopSharing();
    }
  }

  /** The store for an export, mapped when its file lives in memory (unless mapping is turned off). */
  private openMappedStore(c: ExportConfig): BlockStore {
    const store = this.openStore(c);
    if (!this.opts.mapInMemory) return store;
    return mapInMemory(store, !c.readOnly, this.addon, (file, reason) =>
      this.log.warn({ file, err: reason }, 'cannot map the backing file; using read and write calls'),
    );
  }

  /** Adds an export, with a store a reload has already opened for it, or opening one. */
  private addExport(c: ExportConfig, carried?: ExportState, prepared?: BlockStore): Export {
    const key = exportKey(c);
    if (this.exportsByKey.has(key)) throw new ConfigError(`${key} is exported twice; give each export its own shelf.slot`);
    if (c.interfaces.length === 0) throw new ConfigError(`${key} has no interface to serve on`);
    const store = prepared ?? this.openMappedStore(c);
    let id = this.engine.exports.indexOf(null);
    if (id < 0) id = this.engine.exports.length;
    let saved = carried;
    if (!this.heldKeys.has(key) && !saved) {
      const found = this.hooks.initialState?.(key);
      if (found?.status === 'ok') saved = found.state;
      else if (found?.status === 'unreadable') this.heldKeys.set(key, heldMessage(key, found.file, found.reason));
    }
    const held = this.heldKeys.get(key) ?? null;
    // Saved (or carried) state meets the config: a mask the operator changed in the config wins.
    const reconciled = held === null && saved ? reconcileState(saved, c.macMask) : undefined;
    let e: Export;
    try {
      e = new Export(id, c, store, this.opts.requestSlots, reconciled?.state);
    } catch (err) {
      store.close();
      throw new ConfigError(`${key}: ${(err as Error).message}`);
    }
    e.held = held;
    if (c.views !== undefined) {
      try {
        e.views = this.openViews(c, store);
      } catch (err) {
        store.close();
        throw new ConfigError(`${key}: cannot open the views in ${viewsDirOf(c)}: ${(err as Error).message}`);
      }
    }
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
    if (reconciled?.changed) this.persist(e);
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
    await e.views?.closeAndSave();
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

  /**
   * Opens a link's socket if it has none. A missing interface waits (the
   * link checks open it when it appears); at a first start, an interface
   * that exists but cannot be opened is fatal.
   */
  private ensureOpen(link: Link, fatal: boolean): void {
    if (link.socket !== null || link.inflight > 0) return;
    const info = link.readInfo();
    if (info === null) return;
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
    this.engine.forgetLink(link);
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

  /**
   * Announces every export on every interface that is up, every
   * announce-interval seconds: an initiator whose driver came up before the
   * target, or whose start-up announcement was lost (a switch port still
   * blocking), finds it within that time rather than at its own next
   * discovery round.
   */
  private startAnnouncing(): void {
    const seconds = this.opts.announceSeconds;
    if (!(seconds > 0)) return;
    this.announcer = setInterval(() => this.announceAll(), seconds * 1000);
    this.announcer.unref();
  }

  private announceAll(): void {
    if (this.stopping) return;
    for (const link of this.linksByName.values()) {
      if (link.socket !== null && !link.reopenWanted && link.info?.up) this.engine.announce(link);
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

  // ---- two writers of one disk ---------------------------------------------

  /** Two exports of this config that would write one disk: refused, naming both and the key that allows it. */
  private refuseSharedWriters(exports: readonly ExportConfig[]): void {
    const problems = sharedWriterProblems(exports);
    if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  }

  /**
   * Start-up: refuses exports of one file that would both write, then (when
   * probing is on) leaves out each export whose address another process on
   * this host, or another target on the wire, already serves. Those are
   * logged as errors; when none is left, start-up fails with the reason.
   */
  private async refuseDuplicates(config: ServerConfig): Promise<ServerConfig> {
    this.refuseSharedWriters(config.exports);
    if (this.opts.duplicateProbeMs <= 0) return config;
    const refused = new Map<string, string>();
    const byInterface = new Map<string, ExportConfig[]>();
    for (const c of config.exports) {
      const key = exportKey(c);
      if (c.shared) continue;
      for (const name of c.interfaces) {
        if (await this.claims.claim(key, name, this.opts.netns)) {
          byInterface.set(name, [...(byInterface.get(name) ?? []), c]);
        } else if (!refused.has(key)) {
          refused.set(key, `another aoe-target process on this host already serves ${key} on ${name}`);
        }
      }
    }
    const probes = [...byInterface].map(async ([name, list]) => {
      try {
        const answers = await probeAddresses(this.addon, name, list, this.opts.duplicateProbeMs, this.opts.netns);
        for (const [key, mac] of answers) {
          if (!refused.has(key)) refused.set(key, `${key} is already served on ${name} by ${mac}`);
        }
      } catch (err) {
        // No CAP_NET_RAW: opening the serving socket says so, with what to do.
        if ((err as NodeJS.ErrnoException).code === 'EPERM') return;
        this.log.warn({ interface: name, err: (err as Error).message }, 'cannot look for other targets on this interface');
      }
    });
    await Promise.all(probes);
    const messages = [...refused.values()].map((why) => `${why}; ${DUPLICATE_ADVICE}`);
    for (const [key, message] of [...refused.keys()].map((k, i) => [k, messages[i]])) {
      this.log.error({ export: key }, `not serving ${key}: ${message}`);
    }
    const kept = config.exports.filter((c) => !refused.has(exportKey(c)));
    if (kept.length === 0 && messages.length > 0) throw new ConfigError(messages.join('\n'));
    return { ...config, exports: kept };
  }

  // ---- reload and stop -----------------------------------------------------

  /**
   * Applies a new configuration, completely or not at all. First everything
   * is checked and prepared without touching what serves (prepareReload);
   * any problem refuses the reload with nothing changed. Then exports that
   * are gone are removed, new ones added, changed ones (or ones whose backing
   * store changed size) replaced with their protocol state carried over, and
   * a changed mac-mask alone is applied in place; the others are not touched.
   */
  async apply(config: ServerConfig): Promise<ReloadSummary> {
    this.refuseSharedWriters(config.exports);
    const plan = this.prepareReload(config);
    for (const e of plan.removed) await this.removeExport(e);
    for (const r of plan.replaced) {
      const state = r.old.snapshotState();
      await this.removeExport(r.old);
      this.addExport(r.config, state, r.store);
    }
    for (const a of plan.added) this.addExport(a.config, undefined, a.store);
    for (const m of plan.masked) if (m.old.reconfigureMask(m.config)) this.persist(m.old);
    for (const e of plan.grown) {
      try {
        this.resizeExport(e.key); // announces it
      } catch (err) {
        // Shrunk again since the probe: the export keeps its size, as the size watch would.
        this.log.warn({ export: e.key, err: (err as Error).message }, 'cannot grow the export');
      }
    }
    for (const link of this.linksByName.values()) this.ensureOpen(link, false);
    const announced = new Set<Link>();
    for (const key of [...plan.summary.added, ...plan.summary.changed, ...plan.summary.resized]) {
      for (const name of this.exportsByKey.get(key)!.config.interfaces) announced.add(this.linksByName.get(name)!);
    }
    for (const link of announced) this.engine.announce(link);
    this.log.info(plan.summary, 'configuration applied');
    return plan.summary;
  }

  /**
   * Phase one of a reload: opens the store of every added, changed and
   * resized export and checks every interface it names, without changing
   * anything that serves. Throws ReloadRefused, with every store it opened
   * closed again, when something is wrong.
   */
  private prepareReload(config: ServerConfig): ReloadPlan {
    const wanted = new Map(config.exports.map((c) => [exportKey(c), c]));
    const plan: ReloadPlan = {
      removed: [],
      replaced: [],
      added: [],
      masked: [],
      grown: [],
      summary: { added: [], removed: [], changed: [], resized: [] },
    };
    const opened: BlockStore[] = [];
    const open = (key: string, c: ExportConfig): BlockStore => {
      if (c.interfaces.length === 0) throw new ReloadRefused(`${key} has no interface to serve on`);
      for (const name of c.interfaces) {
        if (!this.linksByName.has(name) && this.addon.linkInfo(name, this.opts.netns) === null)
          throw new ReloadRefused(`${key}: interface ${name} not found; list interfaces with \`ip link\``);
      }
      try {
        const store = this.openMappedStore(c);
        opened.push(store);
        return store;
      } catch (err) {
        throw new ReloadRefused(`${key}: ${(err as Error).message}`, { cause: err });
      }
    };
    try {
      for (const [key, e] of this.exportsByKey) {
        const c = wanted.get(key);
        if (!c) {
          plan.removed.push(e);
          plan.summary.removed.push(key);
          continue;
        }
        const configChanged = JSON.stringify(c) !== JSON.stringify(e.config);
        const onlyMask = configChanged && JSON.stringify({ ...c, macMask: [] }) === JSON.stringify({ ...e.config, macMask: [] });
        if (configChanged) plan.summary.changed.push(key);
        const size = !configChanged || onlyMask ? this.sizeChange(e) : 'same';
        if (size !== 'same') plan.summary.resized.push(key);
        if ((configChanged && !onlyMask) || size === 'shrunk') plan.replaced.push({ old: e, config: c, store: open(key, c) });
        else {
          if (onlyMask) plan.masked.push({ old: e, config: c });
          if (size === 'grown') plan.grown.push(e);
        }
      }
      for (const [key, c] of wanted) {
        if (this.exportsByKey.has(key)) continue;
        plan.added.push({ config: c, store: open(key, c) });
        plan.summary.added.push(key);
      }
    } catch (err) {
      for (const store of opened) store.close();
      throw err;
    }
    return plan;
  }

  /**
   * How an export's backing file compares with the exported size (a probe;
   * unreadable counts as unchanged): grown is taken in place at apply,
   * smaller replaces the export, since a reload is the operator's word that
   * the end is unused.
   */
  private sizeChange(e: Export): 'same' | 'grown' | 'shrunk' {
    // An export with views keeps its size: each view is a clone of the image at it (resizeExport says more).
    if (e.store.kind !== 'file' || e.config.lengthSectors !== undefined || e.views !== null) return 'same';
    try {
      const probe = this.openStore({ ...e.config, readOnly: true, direct: false });
      const now = probe.sectors;
      probe.close();
      return now === e.store.sectors ? 'same' : now > e.store.sectors ? 'grown' : 'shrunk';
    } catch {
      return 'same';
    }
  }

  /** Stops taking requests, answers those in flight, makes written data durable and closes everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.monitor) clearInterval(this.monitor);
    if (this.announcer) clearInterval(this.announcer);
    if (this.sizeWatch) clearInterval(this.sizeWatch);
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
          e.views?.syncAllNow();
        } catch (err) {
          this.log.error({ export: e.key, err: (err as Error).message }, 'final fdatasync failed');
        }
      }
      await e.views?.closeAndSave();
      e.store.close();
    }
    this.exportsByKey.clear();
    for (const link of this.linksByName.values()) {
      if (link.socket) this.closeLink(link);
    }
    this.engine.io.stopPolling();
    this.engine.io.close();
    this.claims.release();
  }

  // ---- observation ---------------------------------------------------------

  stats(): ServerStats {
    return {
      exports: this.exports.map((e) => ({
        key: e.key,
        file: e.store.description,
        sectors: e.store.sectors,
        interfaces: e.config.interfaces,
        paths: e.config.interfaces.map((name) => ({ interface: name, state: this.linksByName.get(name)!.state })),
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
        ...(e.views !== null
          ? {
              views: {
                count: e.views.count,
                ownBytes: e.views.ownBytes(),
                failures: e.views.failures,
                sharesImage: e.views.sharesImage,
                ...(e.views.lastError !== null ? { lastError: e.views.lastError } : {}),
              },
            }
          : {}),
        ...(e.config.viewsDir !== undefined ? { snapshots: this.snapshotTotals(e) } : {}),
        latencyUsLog2: Array.from(e.latency),
        latencySumUs: e.latencySumUs,
      })),
      interfaces: this.links.map((l) => {
        const k = l.socket?.stats();
        if (k) l.counters[LinkCounter.RxRingDrops] += k.drops;
        return {
          name: l.name,
          open: l.socket !== null,
          state: l.state,
          up: l.info?.up ?? false,
          mtu: l.info?.mtu ?? 0,
          sectorsPerFrame: l.ctx.maxSectors,
          counters: Object.fromEntries(LINK_COUNTER_NAMES.map((n, i) => [n, l.counters[i]])),
        };
      }),
      frameLoop: { ...this.engine.loopCounters(), spinMicros: this.opts.spinMicros, spinPolicy: this.opts.spinPolicy },
    };
  }

  // ---- views ----------------------------------------------------------------

  private openViews(c: ExportConfig, image: BlockStore): ExportViews {
    const key = exportKey(c);
    return ExportViews.open({
      dir: viewsDirOf(c),
      image,
      direct: c.direct,
      readOnly: c.readOnly,
      maxViews: this.opts.maxViews,
      leaseRetryMs: this.opts.viewLeaseRetryMs,
      datesSaveMs: this.opts.viewDatesSaveMs,
      fns: this.addon,
      events: {
        created: (name, ms) => this.log.info({ export: key, view: name, ms: Number(ms.toFixed(3)) }, 'view created'),
        failed: (name, message) => this.log.error({ export: key, view: name }, message),
        sharing: (on, why) =>
          on
            ? this.log.info({ export: key, image: image.description }, why)
            : this.log.warn({ export: key, image: image.description }, why),
        imageWriter: () => void this.stopSharing(key),
      },
    });
  }

  /**
   * Someone waits to open an export's image for writing: pause the export
   * (no read of the image in flight), point reads back at the views, and
   * give up the lease so that the writer goes on.
   */
  private async stopSharing(key: string): Promise<void> {
    const e = this.exportsByKey.get(key);
    const views = e?.views;
    if (!e || !views) return;
    try {
      while (e.paused) await new Promise((r) => setTimeout(r, 5));
      await this.whilePaused(e, () => views.stopSharing());
    } catch (err) {
      // Never keep reading the image for a writer: stop now, even with reads of it in flight.
      views.stopSharing();
      this.log.error({ export: key, err: (err as Error).message }, 'could not pause the export for a writer of its image');
    }
  }

  private viewsOf(key: string): { e: Export; views: ExportViews } {
    const e = this.exportsByKey.get(key);
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
   * Runs `fn` while no ATA request of `e` is in flight: new ones are dropped
   * (initiators retransmit them) until it returns; resolves with its result
   * and how long the export was paused.
   */
  async whilePaused<T>(e: Export, fn: () => T | Promise<T>): Promise<{ result: T; pausedMs: number }> {
    if (e.paused) throw new ConfigError(`${e.key} is paused for another operation; try again`);
    const t0 = performance.now();
    e.paused = true;
    try {
      while (e.inflight > 0) await this.waitDrain();
      const result = await fn();
      return { result, pausedMs: performance.now() - t0 };
    } finally {
      e.paused = false;
    }
  }

  /** Turns a view (or every view, mac 'all') back into the image as it is now; the MACs reset. */
  async resetViews(key: string, mac: string): Promise<string[]> {
    const { e, views } = this.viewsOf(key);
    const { result } = await this.whilePaused(e, async () => (mac === 'all' ? views.resetAll() : [await views.reset(mac)]));
    this.log.info({ export: key, views: result }, 'views reset');
    return result;
  }

  /** Removes a view; its initiator's next request makes a new one. */
  async dropView(key: string, mac: string): Promise<string> {
    const { e, views } = this.viewsOf(key);
    const { result } = await this.whilePaused(e, () => views.drop(mac));
    this.log.info({ export: key, view: result }, 'view dropped');
    return result;
  }

  // ---- snapshots ------------------------------------------------------------

  private snapshotsOf(key: string): { e: Export; dir: SnapshotDir } {
    const e = this.exportsByKey.get(key);
    if (!e) throw new ConfigError(`no export ${key}; list them with vblade ctl list`);
    if (e.config.viewsDir === undefined || e.store.kind !== 'file')
      throw new ConfigError(
        `${key} has no place for snapshots; set views-dir in its [export] section (on the file system of its file)`,
      );
    return { e, dir: new SnapshotDir(path.join(viewsDirOf(e.config), 'snapshots'), this.addon) };
  }

  /**
   * A crash-consistent copy of an export (or of the view of `viewMac`) as it
   * is now: new requests are dropped (initiators retransmit), those in
   * flight finish, the data is flushed and cloned, and requests resume.
   */
  async snapshot(key: string, name = defaultSnapshotName(), viewMac?: string): Promise<SnapshotTaken> {
    const { e, dir } = this.snapshotsOf(key);
    dir.checkFree(name);
    checkReflinkPlace(e.config.file, dir.dir, 'snapshots', this.addon);
    const views = e.views;
    if (viewMac !== undefined && views === null) throw new ConfigError(`${key} has no views; leave out the view`);
    const view = viewMac === undefined || views === null ? undefined : views.storeOfMac(viewMac); // throws when it has none
    const of = viewMac === undefined ? 'export' : macOfName(nameOfMac(viewMac)!);
    const { result: file, pausedMs } = await this.whilePaused(e, () => dir.take(name, (view ?? e.store).fd, of));
    this.log.info({ export: key, snapshot: name, file, pausedMs: Number(pausedMs.toFixed(3)) }, 'snapshot taken');
    return { key, name, file, pausedMs, of };
  }

  private snapshotTotals(e: Export): { count: number; ownBytes: number } {
    try {
      const list = this.snapshotsOf(e.key).dir.list();
      return { count: list.length, ownBytes: list.reduce((n, s) => n + s.ownBytes, 0) };
    } catch {
      return { count: 0, ownBytes: 0 };
    }
  }

  listSnapshots(key: string): SnapshotInfo[] {
    return this.snapshotsOf(key).dir.list();
  }

  deleteSnapshot(key: string, name: string): string {
    const file = this.snapshotsOf(key).dir.delete(name);
    this.log.info({ export: key, snapshot: name }, 'snapshot deleted');
    return file;
  }

  /**
   * Puts a snapshot back into the export (or the view it was taken of).
   * Refused while the export served I/O in the last REVERT_QUIET_MS unless
   * `force`: an initiator that has the disk open keeps what it read in its
   * cache and would write its idea of the old disk over the reverted one.
   */
  async revert(key: string, name: string, force = false): Promise<{ key: string; name: string; of: string }> {
    const { e, dir } = this.snapshotsOf(key);
    const { of } = dir.find(name);
    const quietMs = e.lastIoAt === 0 ? Infinity : performance.now() - e.lastIoAt;
    if (!force && quietMs < REVERT_QUIET_MS)
      throw new ConfigError(
        `${key} served an initiator ${(quietMs / 1000).toFixed(0)} s ago; an initiator that has the disk open would not know its data changed. ` +
          `Shut the initiators down (or unmount) and wait ${REVERT_QUIET_MS / 60_000} minutes, or give --force`,
      );
    if (of !== 'export' && e.views === null)
      throw new ConfigError(`snapshot ${name} is of the view of ${of}, and ${key} has no views now`);
    if (of === 'export' && e.views !== null)
      throw new ConfigError(
        `snapshot ${name} is of the image, which views never write; replace the image with it and reset the views instead`,
      );
    const dst = of === 'export' || e.views === null ? e.store : e.views.storeOfMac(of);
    await this.whilePaused(e, () => {
      dir.revertInto(name, dst.fd);
      if (of !== 'export') e.views!.refreshOwn(of);
    });
    this.log.warn({ export: key, snapshot: name, of, forced: force }, 'snapshot reverted');
    return { key, name, of };
  }

  // ---- online resize --------------------------------------------------------

  /**
   * Takes an export's backing store at its size now (a file or logical
   * volume grown under it): the export serves the new sectors and IDENTIFY
   * reports them at once, without replacing the export or pausing its I/O,
   * and it is announced so that initiators that do not have it open look
   * again (Linux re-reads IDENTIFY then; an open device needs
   * aoe-revalidate). A backing store now smaller than the exported size is
   * refused: the export keeps its size.
   */
  resizeExport(key: string): ResizeResult {
    const e = this.exportsByKey.get(key);
    if (!e) throw new ResizeError(`no export ${key}; "vblade ctl list" shows the exports`);
    const base = { key, file: e.store.description, oldSectors: e.store.sectors, newSectors: e.store.sectors };
    if (e.store.kind === 'null')
      throw new ResizeError(`${key} is a null store; its size is null-sectors: change it in the configuration and reload`);
    if (e.config.lengthSectors !== undefined)
      return {
        ...base,
        unchanged: `the export has a fixed length (length / -l ${e.config.lengthSectors}); change it and reload to grow`,
      };
    const now = sectorsAfterOffset(e.store.fd, e.config.offsetSectors, (fd) => this.addon.blockDeviceSize(fd));
    if (now < e.store.sectors) {
      throw new ResizeError(
        `${key}: ${e.store.description} is now ${describeSize(Math.max(0, now))} after the offset, smaller than the ` +
          `exported ${describeSize(e.store.sectors)}; the export keeps its size (reads and writes past the new end fail). ` +
          `Grow the backing store back, or, once no file system or data uses the end of the disk, reload or restart to export the smaller size`,
      );
    }
    if (now === e.store.sectors) return { ...base, unchanged: 'the backing store has not changed size' };
    if (e.views !== null)
      throw new ResizeError(
        `${key}: ${e.store.description} grew, but the export has views, each a clone of the image at its old size; ` +
          `the export keeps its size. A new image version is a new file: replace the image, restart, and reset the views (vblade ctl view-reset ${key} --all)`,
      );
    e.grow(now);
    this.log.info({ export: key, file: e.store.description, from: base.oldSectors, to: now }, 'export grown');
    let announced = false;
    for (const name of e.config.interfaces) {
      const link = this.linksByName.get(name);
      if (link && link.socket !== null && link.info?.up) {
        this.engine.announce(link);
        announced = true;
      }
    }
    return { ...base, newSectors: now, announced };
  }

  /** Grows exports whose backing store grew, every sizeCheckMs: an lvextend or truncate needs no command. */
  private startSizeWatch(): void {
    if (!(this.opts.sizeCheckMs > 0)) return;
    this.sizeWatch = setInterval(() => this.checkSizes(), this.opts.sizeCheckMs);
    this.sizeWatch.unref();
  }

  private checkSizes(): void {
    if (this.stopping) return;
    for (const e of this.exportsByKey.values()) {
      if (e.store.kind !== 'file' || e.config.lengthSectors !== undefined || e.closing) continue;
      try {
        this.resizeExport(e.key);
        this.shrinkReported.delete(e.key);
      } catch (err) {
        // Said once, not at every check.
        const message = (err as Error).message;
        if (this.shrinkReported.get(e.key) === message) continue;
        this.shrinkReported.set(e.key, message);
        this.log.error({ export: e.key, file: e.store.description }, message);
      }
    }
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

/** The errors callers of the server tell apart. */
export { ConfigError, ReloadRefused, ResizeError } from '../api/errors';
