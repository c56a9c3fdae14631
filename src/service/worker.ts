// The serving process. The supervisor forks this module, sends it the
// ServerConfig, and restarts it when it dies. It runs the server, keeps each
// export's persisted state in the state store, and answers the supervisor's
// requests (for the control socket and metrics).
//
// WorkerCore is the same thing without the process plumbing, so tests can
// drive it directly. (`vblade --config` does not use it: it runs vbladed's
// supervisor in the foreground, which forks this module like vbladed does.)
//
// Messages (child_process IPC, JSON):
//   supervisor → worker  start {config, logLevel, restart} | apply {id, config} | stop | request {id, op, key?, macs?}
//   worker → supervisor  ready {exports} | heartbeat | applied {id, ok, summary?, error?}
//                        | fatal {message} | response {id, ok, result?, error?}
//
// The seam to the serving core is StartServer: startServing from
// serving-process.ts (tests inject their own, test/helpers/stub-worker.ts).

import pino, { type Logger } from 'pino';
import * as os from 'node:os';
import type { ExportConfig, ExportState, SavedState, ServerConfig } from '../config/export-config';
import { exportKey } from '../config/export-config';
import type { LogLevel } from '../config/keys';
import { LOG_SERIALIZERS } from './log';
import { formatMac, parseMac } from '../aoe/mac-list';
import type { ServerHooks } from '../target/server';
import { StateStore } from './state-store';
import { CONFINE_ARG, confineThreads, uidToBecome } from './privilege';
import { loadAddon } from '../native/addon';
import { isPermanentStartError } from '../api/errors';
// Types only: the server module is required lazily, in loadServerStarter.
import type { ReloadSummary, ResizeResult, SnapshotInfo, SnapshotTaken, ViewListing } from '../api/control';

export type { ReloadSummary };

export type { ServerHooks };

/** What the worker needs of the serving core (src/target/server.ts `Server`). */
export interface ServerLike {
  /**
   * Reload: add, remove and change exports, completely or not at all;
   * exports whose ExportConfig did not change are not touched. Resolves to
   * what it did (ReloadSummary, src/api/control.ts), or to nothing (test stubs).
   */
  apply(config: ServerConfig): Promise<ReloadSummary | void>;
  /** Stop taking requests, finish and flush those in flight, close. */
  stop(): Promise<void>;
  /** Counters (ServerStats in src/api/control.ts; metrics.ts renders them). */
  stats(): object;
  /** Exports configured but not served (another process or target serves the address), and why. */
  notServed?(): { key: string; reason: string }[];
  /** Exports configured but not served because their store cannot open as configured, and why. */
  unservableExports?(): { key: string; reason: string }[];
  /**
   * Changes an export's state for the control socket (mask and reserve
   * commands); resolves with the new state once it is saved, rejects with
   * why not (the old state stays in force). Server.changeState.
   */
  changeState?(key: string, change: (s: ExportState) => ExportState): Promise<ExportState>;
  /** Serves a held export (unreadable saved state) with `state`, saved first. Server.release. */
  release?(key: string, state: ExportState): Promise<ExportState>;
  /** Takes an export's backing store at its size now (control socket resize); throws when it shrank. */
  resizeExport?(key: string): Promise<ResizeResult>;
  /** Breaks the lock of a standby rbd export's owner and serves it here (control socket takeover). Server.takeover. */
  takeover?(key: string): Promise<{ key: string; brokeFrom: string | null; ms: number }>;
  /** Per-initiator views and snapshots (server.ts); absent in test stubs. */
  listViews?(key: string): ViewListing[];
  resetViews?(key: string, macs: string | readonly string[], force?: boolean): Promise<string[]>;
  dropViews?(key: string, macs: readonly string[], force?: boolean): Promise<string[]>;
  snapshot?(key: string, name?: string, viewMac?: string): Promise<SnapshotTaken>;
  listSnapshots?(key: string): SnapshotInfo[];
  deleteSnapshot?(key: string, name: string): string;
  revert?(key: string, name: string, force?: boolean): Promise<{ key: string; name: string; of: string }>;
}

/** What a control command carries besides the export and MACs: words after the export and its options. */
export interface CommandExtra {
  words?: string[];
  all?: boolean;
  force?: boolean;
  view?: string;
}

export interface StartOptions {
  /**
   * The first start of the serving process: fail when none of the
   * configured interfaces exists. A restarted worker waits for them instead.
   */
  firstStart: boolean;
}

export type StartServer = (config: ServerConfig, log: Logger, hooks: ServerHooks, opts: StartOptions) => Promise<ServerLike>;

export type WorkerOp =
  | 'list'
  | 'stats'
  | 'show-mask'
  | 'clear-mask'
  | 'set-mask'
  | 'add-mask'
  | 'del-mask'
  | 'show-reserve'
  | 'clear-reserve'
  | 'set-reserve'
  | 'show-state'
  | 'restore-state'
  | 'reset-state'
  | 'resize'
  | 'takeover'
  | 'views'
  | 'view-reset'
  | 'view-drop'
  | 'snapshot'
  | 'snapshots'
  | 'snapshot-delete'
  | 'revert';

export type ToWorker =
  | { type: 'start'; config: ServerConfig; logLevel?: LogLevel; restart?: boolean }
  | { type: 'apply'; id: number; config: ServerConfig }
  | { type: 'stop' }
  | { type: 'request'; id: number; op: WorkerOp; key?: string; macs?: string[]; extra?: CommandExtra };

export type FromWorker =
  | { type: 'ready'; exports: string[] }
  | { type: 'heartbeat' }
  | { type: 'applied'; id: number; ok: boolean; summary?: ReloadSummary; error?: string }
  | { type: 'fatal'; message: string; permanent?: boolean }
  | { type: 'response'; id: number; ok: boolean; result?: unknown; error?: string };

/** How often a worker tells the supervisor it is alive. */
export const HEARTBEAT_MS = 2000;

/**
 * The serving process's own start (serving-process.ts: Server.start, the
 * test fault wrapper, the switch to the configured user), loaded when first
 * needed because it loads the server and the native addon. A restarted
 * worker waits for its interfaces instead of failing without them.
 */
export function loadServerStarter(): StartServer {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startServing } = require('./serving-process') as typeof import('./serving-process');
  return (config, log, hooks, opts) => startServing(config, log, hooks, { requireAnInterface: opts.firstStart });
}

/** One export as the control socket lists it. */
export interface ExportListing {
  key: string;
  config: ExportConfig;
  state: ExportState;
  /** Each interface and what it does for the export now ("serving", "waiting for the interface"); absent when unknown. */
  paths?: { interface: string; state: string }[];
  /** Why the export serves nothing (unreadable saved state) and what to do. */
  held?: string;
  /** Why the export is not served: another process or target serves its address (tried again later). */
  notServed?: string;
  /** Why the export is not served: its store cannot open as configured (served again by a reload that fixes it). */
  unservable?: string;
  /** False when the state in force is not on disk (a save is running or failed). */
  stateDurable?: boolean;
  failedSaves?: number;
  lastSaveError?: string;
}

/** How the server describes an export's state in its stats (ServerStats in src/api/control.ts). */
interface StateStatus {
  key: string;
  held?: string;
  stateDurable?: boolean;
  failedSaves?: number;
  lastSaveError?: string;
}

function copyState(s: ExportState): ExportState {
  const c: ExportState = { config: s.config, macMask: s.macMask.slice(), reserve: s.reserve.slice() };
  if (s.configMask) c.configMask = s.configMask.slice();
  return c;
}

/** MAC addresses as given on the command line, checked and written the one way the state files use. */
function normalMacs(macs: readonly string[] | undefined, op: string): string[] {
  if (!macs || macs.length === 0) throw new Error(`${op} needs one or more MAC addresses, e.g. 52:54:00:12:34:56`);
  return [...new Set(macs.map((m) => formatMac(parseMac(m), 0)))];
}

/** A control request as the worker's command table takes it. */
interface ControlRequest {
  op: WorkerOp;
  key?: string;
  macs?: string[];
  extra: CommandExtra;
}

/** A server with the views and snapshot administration (test stubs may lack it). */
type ViewsServer = Required<
  Pick<ServerLike, 'listViews' | 'resetViews' | 'dropViews' | 'snapshot' | 'listSnapshots' | 'deleteSnapshot' | 'revert'>
>;

export class WorkerCore {
  private server: ServerLike | undefined;
  private config: ServerConfig = { exports: [] };
  private store: StateStore | undefined;
  private readonly states = new Map<string, ExportState>();

  constructor(
    private readonly startServer: StartServer,
    private readonly log: Logger,
  ) {}

  private hooks(): ServerHooks {
    const store = this.store;
    const hooks: ServerHooks = {
      initialState: (key): SavedState => {
        const s: SavedState = store?.load(key) ?? { status: 'absent' };
        if (s.status === 'ok') this.states.set(key, copyState(s.state));
        return s;
      },
      onStateChange: (key, state) => this.states.set(key, copyState(state)),
    };
    // With a state directory, the server answers a change only once this resolved.
    if (store) {
      hooks.saveState = async (key, state) => {
        await store.save(key, state);
        this.states.set(key, copyState(state));
      };
    }
    return hooks;
  }

  async start(config: ServerConfig, opts: StartOptions = { firstStart: true }): Promise<void> {
    this.config = config;
    if (config.stateDir) {
      this.store = new StateStore(
        config.stateDir,
        this.log,
        config.user === undefined ? undefined : uidToBecome(loadAddon(), config.user),
      );
      this.store.open();
    }
    this.server = await this.startServer(config, this.log, this.hooks(), opts);
  }

  /** The exports served now: those configured less those another process or target serves. */
  served(): string[] {
    const refused = new Set(
      [...(this.server?.notServed?.() ?? []), ...(this.server?.unservableExports?.() ?? [])].map((n) => n.key),
    );
    return this.config.exports.map(exportKey).filter((k) => !refused.has(k));
  }

  async apply(config: ServerConfig): Promise<ReloadSummary | void> {
    if (!this.server) throw new Error('not started');
    const summary = await this.server.apply(config);
    this.config = config;
    const keys = new Set(config.exports.map(exportKey));
    for (const k of [...this.states.keys()]) if (!keys.has(k)) this.states.delete(k);
    return summary;
  }

  /** Each export's interfaces and their state, from the server's stats (when it reports them). */
  private pathsByKey(): Map<string, ExportListing['paths']> {
    const stats = this.server?.stats() as { exports?: { key: string; paths?: ExportListing['paths'] }[] } | undefined;
    return new Map((stats?.exports ?? []).map((e) => [e.key, e.paths]));
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await s.stop();
    await this.store?.flush();
  }

  private stateOf(e: ExportConfig): ExportState {
    return this.states.get(exportKey(e)) ?? { config: '', macMask: e.macMask.slice(), reserve: [] };
  }

  /** The server's word on each export's state (held, durable, failed saves), by key. */
  private statusByKey(): Map<string, StateStatus> {
    const stats = this.server?.stats() as { exports?: StateStatus[] } | undefined;
    return new Map((stats?.exports ?? []).map((x) => [x.key, x]));
  }

  private find(key: string | undefined): ExportConfig {
    if (!key) throw new Error('this command needs an export, e.g. e1.1');
    const k = /^[0-9]+\.[0-9]+$/.test(key) ? `e${key}` : key;
    const e = this.config.exports.find((x) => exportKey(x) === k);
    if (!e) throw new Error(`no export ${key}; "vblade ctl list" shows the exports`);
    return e;
  }

  /** A state change from the control socket, answered once it is on disk. */
  private async change(key: string, change: (s: ExportState) => ExportState): Promise<ExportState> {
    if (!this.server?.changeState) throw new Error('this server cannot change export state from the control socket');
    try {
      return await this.server.changeState(key, change);
    } catch (e) {
      const msg = (e as Error).message;
      if (/is not being served|is held|at most/.test(msg)) throw e;
      throw new Error(`the state of ${key} could not be saved (${msg}); the previous state stays in force`, { cause: e });
    }
  }

  private async release(key: string, state: ExportState): Promise<ExportState> {
    if (!this.server?.release) throw new Error('this server cannot change export state from the control socket');
    try {
      return await this.server.release(key, state);
    } catch (e) {
      const msg = (e as Error).message;
      if (/is not being served|is not held/.test(msg)) throw e;
      throw new Error(`the state of ${key} could not be saved (${msg}); ${key} stays held`, { cause: e });
    }
  }

  private requireStore(op: string): StateStore {
    if (!this.store) throw new Error(`${op} needs a state directory; this instance keeps state in memory only`);
    return this.store;
  }

  /**
   * The control commands the worker answers, one entry per name that
   * control.ts COMMANDS sends (WorkerOp); the type makes both lists the same.
   */
  private readonly commands: { readonly [op in WorkerOp]: (r: ControlRequest) => unknown } = {
    list: () => this.list(),
    stats: () => this.stats(),
    'show-mask': (r) => this.showLists(r.key, 'macMask'),
    'show-reserve': (r) => this.showLists(r.key, 'reserve'),
    'clear-mask': (r) => this.clearList(r.key, 'macMask'),
    'clear-reserve': (r) => this.clearList(r.key, 'reserve'),
    'set-mask': (r) => this.changeMask(r, (_mask, given) => given),
    'add-mask': (r) => this.changeMask(r, (mask, given) => [...mask, ...given.filter((m) => !mask.includes(m))]),
    'del-mask': (r) => this.changeMask(r, (mask, given) => mask.filter((m) => !given.includes(m))),
    'set-reserve': (r) => this.setReserve(r),
    'show-state': (r) => this.showState(r.key),
    'restore-state': (r) => this.restoreState(r.key),
    'reset-state': (r) => this.resetState(r.key),
    resize: (r) => this.resize(r.key),
    takeover: (r) => this.takeover(r.key),
    views: (r) => this.withViews(r, (s, k) => ({ key: k, views: s.listViews(k) })),
    'view-reset': (r) =>
      this.withViews(r, (s, k, words) => this.viewReset(s, k, words, r.extra.all === true, r.extra.force === true)),
    'view-drop': (r) =>
      this.withViews(r, async (s, k, words) => ({ key: k, dropped: await s.dropViews(k, words, r.extra.force === true) })),
    snapshot: (r) => this.withViews(r, (s, k, words) => s.snapshot(k, words[0], r.extra.view)),
    snapshots: (r) => this.withViews(r, (s, k) => ({ key: k, snapshots: s.listSnapshots(k) })),
    'snapshot-delete': (r) =>
      this.withViews(r, (s, k, words) => ({ key: k, name: words[0], deleted: s.deleteSnapshot(k, words[0]) })),
    revert: (r) => this.withViews(r, (s, k, words) => s.revert(k, words[0], r.extra.force === true)),
  };

  /** Answers a control request. */
  async request(op: WorkerOp, key?: string, macs?: string[], extra: CommandExtra = {}): Promise<unknown> {
    // The name crossed a process boundary: only the table's own entries answer.
    if (!Object.hasOwn(this.commands, op)) throw new Error(`unknown request ${op}`);
    return await this.commands[op]({ op, key, macs, extra });
  }

  private list(): ExportListing[] {
    const status = this.statusByKey();
    const paths = this.pathsByKey();
    const notServed = new Map((this.server?.notServed?.() ?? []).map((n) => [n.key, n.reason]));
    const unservable = new Map((this.server?.unservableExports?.() ?? []).map((n) => [n.key, n.reason]));
    return this.config.exports.map((e): ExportListing => {
      const k = exportKey(e);
      const s = status.get(k);
      const l: ExportListing = { key: k, config: e, state: this.stateOf(e) };
      const p = paths.get(k);
      if (p) l.paths = p;
      if (s?.held !== undefined) l.held = s.held;
      const why = notServed.get(k);
      if (why !== undefined) l.notServed = why;
      const cannot = unservable.get(k);
      if (cannot !== undefined) l.unservable = cannot;
      if (s?.stateDurable !== undefined) l.stateDurable = s.stateDurable;
      if (s?.failedSaves !== undefined) l.failedSaves = s.failedSaves;
      if (s?.lastSaveError !== undefined) l.lastSaveError = s.lastSaveError;
      return l;
    });
  }

  private stats(): object {
    if (!this.server) throw new Error('not serving');
    return this.server.stats();
  }

  /** show-mask, show-reserve: one export's list, or every export's. */
  private showLists(key: string | undefined, field: 'macMask' | 'reserve'): Record<string, string[]> {
    const list = key ? [this.find(key)] : this.config.exports;
    return Object.fromEntries(list.map((e) => [exportKey(e), this.stateOf(e)[field]]));
  }

  private async clearList(key: string | undefined, field: 'macMask' | 'reserve'): Promise<{ key: string; cleared: string }> {
    const k = exportKey(this.find(key));
    await this.change(k, (s) => ({ ...s, [field]: [] }));
    return { key: k, cleared: field === 'macMask' ? 'mask' : 'reserve' };
  }

  /** set-mask, add-mask, del-mask: the new mask from the one in force and the MACs given. */
  private async changeMask(
    r: ControlRequest,
    next: (mask: string[], given: string[]) => string[],
  ): Promise<{ key: string; macMask: string[] }> {
    const k = exportKey(this.find(r.key));
    const given = normalMacs(r.macs, r.op);
    const changed = await this.change(k, (s) => ({ ...s, macMask: next(s.macMask, given) }));
    return { key: k, macMask: changed.macMask };
  }

  private async setReserve(r: ControlRequest): Promise<{ key: string; reserve: string[] }> {
    const k = exportKey(this.find(r.key));
    const given = normalMacs(r.macs, r.op);
    const changed = await this.change(k, (s) => ({ ...s, reserve: given }));
    return { key: k, reserve: changed.reserve };
  }

  private showState(key: string | undefined): object {
    const e = this.find(key);
    const k = exportKey(e);
    const store = this.requireStore('show-state');
    const onDisk = store.inspect(k);
    const s = this.statusByKey().get(k);
    return {
      key: k,
      ...(s?.held !== undefined ? { held: s.held } : {}),
      inForce: this.stateOf(e),
      file: onDisk.file,
      ...(onDisk.state ? { onDisk: onDisk.state } : onDisk.absent ? { absent: true } : { unreadable: onDisk.reason }),
    };
  }

  private async restoreState(key: string | undefined): Promise<{ key: string; state: ExportState }> {
    const k = exportKey(this.find(key));
    const store = this.requireStore('restore-state');
    const onDisk = store.inspect(k);
    if (!onDisk.state) {
      const why = onDisk.absent ? 'is gone' : `is still unreadable (${onDisk.reason})`;
      throw new Error(
        `${onDisk.file} ${why}; fix it and run restore-state again, or run "vblade ctl reset-state ${k}" to start empty`,
      );
    }
    return { key: k, state: await this.release(k, onDisk.state) };
  }

  private async resetState(key: string | undefined): Promise<{ key: string; state: ExportState; keptAs?: string }> {
    const e = this.find(key);
    const k = exportKey(e);
    const store = this.requireStore('reset-state');
    const status = this.statusByKey().get(k);
    if (status && status.held === undefined) throw new Error(`${k} is not held; it serves its saved state already`);
    const keptAs = store.setAside(k);
    const state = await this.release(k, { config: '', macMask: e.macMask.slice(), reserve: [] });
    return { key: k, state, ...(keptAs ? { keptAs } : {}) };
  }

  private takeover(key: string | undefined): Promise<unknown> {
    const e = this.find(key);
    if (!this.server?.takeover) throw new Error('this server cannot take rbd exports over');
    return this.server.takeover(exportKey(e));
  }

  private resize(key: string | undefined): Promise<ResizeResult> {
    const e = this.find(key);
    if (!this.server?.resizeExport) throw new Error('this server cannot resize exports');
    return this.server.resizeExport(exportKey(e));
  }

  /** The views and snapshot commands: the server does the work, the export paused where needed. */
  private withViews<T>(r: ControlRequest, run: (s: ViewsServer, k: string, words: string[]) => T): T {
    const k = exportKey(this.find(r.key));
    const s = this.server;
    if (!s?.listViews || !s.resetViews || !s.dropViews || !s.snapshot || !s.listSnapshots || !s.deleteSnapshot || !s.revert)
      throw new Error('this server has no views or snapshots');
    return run(s as ViewsServer, k, r.extra.words ?? []);
  }

  private async viewReset(
    s: ViewsServer,
    k: string,
    words: string[],
    all: boolean,
    force: boolean,
  ): Promise<{ key: string; reset: string[] }> {
    if (all && words.length > 0) throw new Error('give MACs or --all, not both');
    if (!all && words.length === 0)
      throw new Error(`view-reset needs MACs or --all, e.g. vblade ctl view-reset ${k} 52:54:00:12:34:56`);
    return { key: k, reset: await s.resetViews(k, all ? 'all' : words, force) };
  }
}

/** Runs this process as the supervisor's worker. */
export function runWorkerProcess(startServer: StartServer = loadServerStarter()): void {
  const send = (m: FromWorker): void => {
    if (process.connected) process.send!(m);
  };
  let log: Logger = pino(
    { base: { pid: process.pid, hostname: os.hostname(), role: 'worker' }, serializers: LOG_SERIALIZERS },
    pino.destination({ dest: 1, sync: true }),
  );
  let core: WorkerCore | undefined;
  let stopping = false;
  const heartbeat = setInterval(() => {
    // Also covers a channel that closed before the 'disconnect' listener could see it.
    if (!process.connected) stop('supervisor gone');
    else send({ type: 'heartbeat' });
  }, HEARTBEAT_MS);
  send({ type: 'heartbeat' });

  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`worker stopping (${why})`);
    const c = core;
    (c ? c.stop() : Promise.resolve()).then(
      () => {
        log.info('worker stopped: in-flight requests finished and state saved');
        clearInterval(heartbeat);
        process.exit(0);
      },
      (e: Error) => {
        log.error({ err: e }, `worker could not stop cleanly: ${e.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => undefined); // reloads come over IPC; a stray group SIGHUP must not kill us
  process.on('disconnect', () => stop('supervisor gone'));

  process.on('message', (raw) => {
    const m = raw as ToWorker;
    if (m.type === 'start') {
      if (m.logLevel) log.level = m.logLevel;
      log = log.child({});
      const starting = (core = new WorkerCore(startServer, log));
      starting.start(m.config, { firstStart: !m.restart }).then(
        () => send({ type: 'ready', exports: starting.served() }),
        (e: Error) => {
          // One that comes back at every try is not tried again: the supervisor stops, saying why.
          const permanent = isPermanentStartError(e);
          log.error({ err: e }, `cannot start serving: ${e.message}`);
          send({ type: 'fatal', message: e.message, permanent });
          setImmediate(() => process.exit(1));
        },
      );
    } else if (m.type === 'apply') {
      if (!core) return send({ type: 'applied', id: m.id, ok: false, error: 'not started' });
      core.apply(m.config).then(
        (summary) => send(summary ? { type: 'applied', id: m.id, ok: true, summary } : { type: 'applied', id: m.id, ok: true }),
        (e: Error) => send({ type: 'applied', id: m.id, ok: false, error: e.message }),
      );
    } else if (m.type === 'stop') {
      stop('asked by the supervisor');
    } else if (m.type === 'request') {
      if (!core) return send({ type: 'response', id: m.id, ok: false, error: 'not started' });
      core.request(m.op, m.key, m.macs, m.extra).then(
        (result) => send({ type: 'response', id: m.id, ok: true, result }),
        (e: Error) => send({ type: 'response', id: m.id, ok: false, error: e.message }),
      );
    }
  });
}

if (require.main === module) {
  // Before anything is sent or opened: the exec keeps only the IPC channel and standard streams.
  try {
    if (process.argv.includes(CONFINE_ARG)) confineThreads(loadAddon());
  } catch (e) {
    process.stderr.write(`worker: ${(e as Error).message}\n`);
    process.exit(1);
  }
  runWorkerProcess();
}
