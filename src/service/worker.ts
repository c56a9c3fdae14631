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
//   supervisor → worker  start {config, logLevel, restart} | apply {id, config} | stop | request {id, op, key?}
//   worker → supervisor  ready {exports} | heartbeat | applied {id, ok, summary?, error?}
//                        | fatal {message} | response {id, ok, result?, error?}
//
// The seam to the serving core is StartServer: Server.start from
// ../target/server.ts (tests inject their own, test/helpers/stub-worker.ts).

import pino, { type Logger } from 'pino';
import * as os from 'node:os';
import type { ExportConfig, ExportState, ServerConfig } from '../config/export-config';
import { exportKey } from '../config/export-config';
import type { LogLevel } from '../config/config-file';
import { LOG_SERIALIZERS } from './log';
import { StateStore } from './state-store';
import { switchToUser } from './privilege';
import { loadAddon } from '../native/addon';
// Types only: the server module is required lazily, in loadServerStarter.
import type { ReloadSummary, ResizeResult } from '../target/server';

export type { ReloadSummary };

export interface ServerHooks {
  /** The server reports every change of an export's persisted state (config string, mask, reserve). */
  onStateChange(key: string, state: ExportState): void;
  /** Saved state of an export when it is (re)created; undefined = start from the ExportConfig. */
  initialState(key: string): ExportState | undefined;
}

/** What the worker needs of the serving core (src/target/server.ts `Server`). */
export interface ServerLike {
  /**
   * Reload: add, remove and change exports, completely or not at all;
   * exports whose ExportConfig did not change are not touched. Resolves to
   * what it did (server.ts ReloadSummary), or to nothing (test stubs).
   */
  apply(config: ServerConfig): Promise<ReloadSummary | void>;
  /** Stop taking requests, finish and flush those in flight, close. */
  stop(): Promise<void>;
  /** Counters (server.ts ServerStats; metrics.ts renders them). */
  stats(): object;
  /**
   * Empties an export's MAC mask or reserve list (control socket
   * clear-mask / clear-reserve); the server reports the change through
   * onStateChange like any other. False when there is no such export.
   */
  clearList?(key: string, list: 'mask' | 'reserve'): boolean;
  /** Takes an export's backing store at its size now (control socket resize); throws when it shrank. */
  resizeExport?(key: string): ResizeResult;
}

export interface StartOptions {
  /**
   * The first start of the serving process: fail when none of the
   * configured interfaces exists. A restarted worker waits for them instead.
   */
  firstStart: boolean;
}

export type StartServer = (config: ServerConfig, log: Logger, hooks: ServerHooks, opts: StartOptions) => Promise<ServerLike>;

export type WorkerOp = 'list' | 'stats' | 'show-mask' | 'clear-mask' | 'show-reserve' | 'clear-reserve' | 'resize';

export type ToWorker =
  | { type: 'start'; config: ServerConfig; logLevel?: LogLevel; restart?: boolean }
  | { type: 'apply'; id: number; config: ServerConfig }
  | { type: 'stop' }
  | { type: 'request'; id: number; op: WorkerOp; key?: string };

export type FromWorker =
  | { type: 'ready'; exports: string[] }
  | { type: 'heartbeat' }
  | { type: 'applied'; id: number; ok: boolean; summary?: ReloadSummary; error?: string }
  | { type: 'fatal'; message: string }
  | { type: 'response'; id: number; ok: boolean; result?: unknown; error?: string };

/** How often a worker tells the supervisor it is alive. */
export const HEARTBEAT_MS = 2000;

/**
 * Server.start from ../target/server.ts, loaded when first needed (it loads
 * the native addon), with the tunables the supervisor resolved and the test
 * fault wrapper (inert unless a test sets its environment variables). With
 * a user set, the worker becomes that user once the server is up: what
 * needs root (files, sockets) is open by then.
 */
export function loadServerStarter(): StartServer {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Server } = require('../target/server') as typeof import('../target/server');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { withTestFaults } = require('../testing/fault-io') as typeof import('../testing/fault-io');
  return async (config, log, hooks, opts) => {
    const server = await Server.start(config, log, hooks, {
      ...(config.tunables ?? {}),
      requireAnInterface: opts.firstStart,
      wrapIoRing: (io) => withTestFaults(io),
    });
    if (config.user !== undefined) {
      try {
        const ids = switchToUser(loadAddon(), config.user, config.stateDir);
        log.info({ user: config.user, ...ids }, 'switched user; only CAP_NET_RAW kept');
      } catch (e) {
        await server.stop();
        throw e;
      }
    }
    return server;
  };
}

/** One export as the control socket lists it. */
export interface ExportListing {
  key: string;
  config: ExportConfig;
  state: ExportState;
  /** Each interface and what it does for the export now ("serving", "waiting for the interface"); absent when unknown. */
  paths?: { interface: string; state: string }[];
}

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
    return {
      initialState: (key) => {
        const s = this.store?.load(key);
        if (s) this.states.set(key, s);
        return s;
      },
      onStateChange: (key, state) => {
        const copy: ExportState = { config: state.config, macMask: state.macMask.slice(), reserve: state.reserve.slice() };
        if (state.configMask) copy.configMask = state.configMask.slice();
        this.states.set(key, copy);
        this.store?.save(key, copy).catch(() => undefined); // logged by the store
      },
    };
  }

  async start(config: ServerConfig, opts: StartOptions = { firstStart: true }): Promise<void> {
    this.config = config;
    if (config.stateDir) {
      this.store = new StateStore(config.stateDir, this.log);
      this.store.open();
    }
    this.server = await this.startServer(config, this.log, this.hooks(), opts);
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

  private find(key: string | undefined): ExportConfig {
    if (!key) throw new Error('this command needs an export, e.g. e1.1');
    const k = /^[0-9]+\.[0-9]+$/.test(key) ? `e${key}` : key;
    const e = this.config.exports.find((x) => exportKey(x) === k);
    if (!e) throw new Error(`no export ${key}; "vblade ctl list" shows the exports`);
    return e;
  }

  /** Answers a control request. */
  // eslint-disable-next-line @typescript-eslint/require-await -- async so that a throw reaches the caller as a rejection
  async request(op: WorkerOp, key?: string): Promise<unknown> {
    switch (op) {
      case 'list': {
        const paths = this.pathsByKey();
        return this.config.exports.map((e): ExportListing => {
          const l: ExportListing = { key: exportKey(e), config: e, state: this.stateOf(e) };
          const p = paths.get(exportKey(e));
          if (p) l.paths = p;
          return l;
        });
      }
      case 'stats':
        if (!this.server) throw new Error('not serving');
        return this.server.stats();
      case 'show-mask':
      case 'show-reserve': {
        const list = key ? [this.find(key)] : this.config.exports;
        const field = op === 'show-mask' ? 'macMask' : 'reserve';
        return Object.fromEntries(list.map((e) => [exportKey(e), this.stateOf(e)[field]]));
      }
      case 'clear-mask':
      case 'clear-reserve': {
        const e = this.find(key);
        if (!this.server?.clearList) throw new Error('this server cannot change export state from the control socket');
        if (!this.server.clearList(exportKey(e), op === 'clear-mask' ? 'mask' : 'reserve'))
          throw new Error(`${exportKey(e)} is not being served right now`);
        return { key: exportKey(e), cleared: op === 'clear-mask' ? 'mask' : 'reserve' };
      }
      case 'resize': {
        const e = this.find(key);
        if (!this.server?.resizeExport) throw new Error('this server cannot resize exports');
        return this.server.resizeExport(exportKey(e));
      }
    }
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
      core = new WorkerCore(startServer, log);
      core.start(m.config, { firstStart: !m.restart }).then(
        () => send({ type: 'ready', exports: m.config.exports.map(exportKey) }),
        (e: Error) => {
          log.error({ err: e }, `cannot start serving: ${e.message}`);
          send({ type: 'fatal', message: e.message });
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
      core.request(m.op, m.key).then(
        (result) => send({ type: 'response', id: m.id, ok: true, result }),
        (e: Error) => send({ type: 'response', id: m.id, ok: false, error: e.message }),
      );
    }
  });
}

if (require.main === module) runWorkerProcess();
