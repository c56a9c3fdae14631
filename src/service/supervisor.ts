// The supervisor: runs the worker (worker.ts) as a child process, restarts
// it with exponential back-off when it dies, logs every restart with its
// reason, relays reloads and control requests to it, and stops it cleanly.
//
// Back-off: the first restart waits minMs (1 s); each further crash doubles
// the wait up to maxMs (60 s); a worker that stayed up resetAfterMs (60 s)
// before dying is restarted after minMs again.
//
// Signals are installed by the caller (daemon.ts), so this class can be
// driven directly in tests.

import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/export-config';
import { exportKey } from '../config/export-config';
import type { LogLevel } from '../config/keys';
import { escapeForTerminal, lineSplitter, workerLogLine, type LogSink } from './log';
import { CONFINE_ARG } from './privilege';
import { withoutNotifyEnv } from './sd-notify';
import type { CommandExtra, FromWorker, ReloadSummary, ToWorker, WorkerOp } from './worker';

/** What a reload did; `deferred` when no worker was serving, so that the new config waits for the next start. */
export interface AppliedReload extends ReloadSummary {
  deferred: boolean;
}

export interface Backoff {
  minMs: number;
  maxMs: number;
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { minMs: 1000, maxMs: 60000, resetAfterMs: 60000 };

export interface SupervisorOptions {
  /** Path of the worker module (worker.js, or a test stub). */
  workerModule: string;
  config: ServerConfig;
  log: Logger;
  /** Where the worker's log lines go. */
  sink: LogSink;
  logLevel?: LogLevel;
  backoff?: Backoff;
  /** How long stop() waits for the worker before SIGKILL. */
  stopTimeoutMs?: number;
  /** A worker silent this long is killed and restarted; 0 = never. */
  heartbeatTimeoutMs?: number;
  /** How long a control request or reload may take in the worker. */
  requestTimeoutMs?: number;
  /** execArgv for the worker (default: this process's). */
  execArgv?: string[];
}

export interface SupervisorStatus {
  workerPid?: number;
  workerUptimeMs?: number;
  ready: boolean;
  restarts: number;
  /** When the next start is due, if the worker is down. */
  restartInMs?: number;
  lastExit?: { code: number | null; signal: string | null; reason: string; at: string };
  /** Why the worker is not started again: its start failed for a reason that comes back at every try (a configuration error). */
  gaveUp?: string;
  exports: string[];
}

/** Describes a child's end: "exited with code 1", "was killed by SIGKILL". */
export function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `was killed by ${signal}`;
  return `exited with code ${code}`;
}

function secs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Export keys added, removed and changed between two configs (no resizes: only the worker can see those). */
export function diffConfigs(a: ServerConfig, b: ServerConfig): ReloadSummary {
  const am = new Map(a.exports.map((e) => [exportKey(e), JSON.stringify(e)]));
  const bm = new Map(b.exports.map((e) => [exportKey(e), JSON.stringify(e)]));
  return {
    added: [...bm.keys()].filter((k) => !am.has(k)),
    removed: [...am.keys()].filter((k) => !bm.has(k)),
    changed: [...bm.keys()].filter((k) => am.has(k) && am.get(k) !== bm.get(k)),
    resized: [],
  };
}

// What the worker may send. The worker runs as the unprivileged user and
// the supervisor often as root, so a message is data to check, not to
// trust: one that does not fit is logged and ignored, never thrown on.
// Fields not in the table are dropped; a new field is one line here.

/** Largest string a message may carry (an error text, an export key). */
const MAX_STRING = 64 * 1024;
/** Most export keys in a ready message. */
const MAX_KEYS = 65536;
/** How deep and how big a request's result may be. */
const MAX_RESULT_DEPTH = 32;
const MAX_RESULT_BYTES = 16 * 1024 * 1024;

type FieldCheck = (v: unknown) => string | undefined;

const isString: FieldCheck = (v) =>
  typeof v !== 'string' ? 'is not a string' : v.length > MAX_STRING ? `is longer than ${MAX_STRING} characters` : undefined;
const isId: FieldCheck = (v) => (Number.isSafeInteger(v) && (v as number) > 0 ? undefined : 'is not a request id');
const isBoolean: FieldCheck = (v) => (typeof v === 'boolean' ? undefined : 'is not true or false');
function listOf(item: FieldCheck, max: number): FieldCheck {
  return (v) => {
    if (!Array.isArray(v)) return 'is not a list';
    if (v.length > max) return `has more than ${max} entries`;
    for (const [i, x] of v.entries()) {
      const bad = item(x);
      if (bad) return `entry ${i} ${bad}`;
    }
    return undefined;
  };
}
const keyList = listOf(isString, MAX_KEYS);
const isSummary: FieldCheck = (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'is not an object';
  for (const f of ['added', 'removed', 'changed', 'resized']) {
    const bad = keyList((v as Record<string, unknown>)[f]);
    if (bad) return `field ${f} ${bad}`;
  }
  for (const f of ['waiting', 'refused']) {
    const list = (v as Record<string, unknown>)[f];
    const bad = list === undefined ? undefined : keyList(list);
    if (bad) return `field ${f} ${bad}`;
  }
  return undefined;
};
/** Any JSON value within the depth and size limits (what a control command answers). */
const isResult: FieldCheck = (v) => {
  let bytes = 0;
  const walk = (x: unknown, depth: number): string | undefined => {
    if (depth > MAX_RESULT_DEPTH) return `nests deeper than ${MAX_RESULT_DEPTH}`;
    if (typeof x === 'string') bytes += x.length;
    else if (Array.isArray(x) || (typeof x === 'object' && x !== null)) {
      for (const [k, y] of Object.entries(x)) {
        bytes += k.length + 8;
        const bad = walk(y, depth + 1);
        if (bad) return bad;
      }
    } else bytes += 8;
    return bytes > MAX_RESULT_BYTES ? `is larger than ${MAX_RESULT_BYTES} bytes` : undefined;
  };
  return walk(v, 0);
};

/** Per message type: each field, whether it must be there, and its check. */
const WORKER_MESSAGES: Record<FromWorker['type'], Record<string, { required: boolean; check: FieldCheck }>> = {
  ready: { exports: { required: true, check: keyList } },
  heartbeat: {},
  fatal: { message: { required: true, check: isString }, permanent: { required: false, check: isBoolean } },
  applied: {
    id: { required: true, check: isId },
    ok: { required: true, check: isBoolean },
    summary: { required: false, check: isSummary },
    error: { required: false, check: isString },
  },
  response: {
    id: { required: true, check: isId },
    ok: { required: true, check: isBoolean },
    result: { required: false, check: isResult },
    error: { required: false, check: isString },
  },
};

/** A worker message checked against WORKER_MESSAGES (only the known fields kept), or what is wrong with it. */
export function checkWorkerMessage(m: unknown): { message: FromWorker } | { problem: string } {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return { problem: 'it is not an object' };
  const type = (m as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(WORKER_MESSAGES, type))
    return { problem: `unknown type ${JSON.stringify(type)?.slice(0, 80) ?? 'undefined'}` };
  const out: Record<string, unknown> = { type };
  for (const [name, field] of Object.entries(WORKER_MESSAGES[type as FromWorker['type']])) {
    const v = (m as Record<string, unknown>)[name];
    if (v === undefined) {
      if (field.required) return { problem: `${type}: field ${name} is missing` };
      continue;
    }
    const bad = field.check(v);
    if (bad) return { problem: `${type}: field ${name} ${bad}` };
    out[name] = v;
  }
  return { message: out as FromWorker };
}

/** Bad messages of one worker logged before the rest are only ignored. */
const MAX_BAD_MESSAGES_LOGGED = 5;

interface Waiting {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Events: 'ready' (worker pid) each time a worker reports it serves;
 * 'worker-exit' ({pid, code, signal, reason, restartInMs}); 'worker-failed'
 * (message) when a worker could not start; 'gave-up' (message) when it could
 * not start for a reason that comes back at every try, so that it is not
 * started again; 'stopped'.
 */
export class Supervisor extends EventEmitter {
  private child: ChildProcess | undefined;
  private childStarted = 0;
  private ready = false;
  private stopping: Promise<number> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartAt = 0;
  private delayMs: number;
  private restarts = 0;
  private lastExit: SupervisorStatus['lastExit'];
  private lastFatal: string | undefined;
  /** The last start failed for a reason a restart would meet again: no restart. */
  private fatalIsPermanent = false;
  private gaveUp: string | undefined;
  private lastHeartbeat = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  /** Workers started so far; all but the first are restarts, which wait for missing interfaces. */
  private spawned = 0;
  private readonly waiting = new Map<number, Waiting>();
  /** Messages of the current worker that did not fit the schema. */
  private badMessages = 0;
  private config: ServerConfig;
  private readonly backoff: Backoff;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.config = opts.config;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.delayMs = this.backoff.minMs;
  }

  get currentConfig(): ServerConfig {
    return this.config;
  }

  get workerPid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    this.spawnWorker();
    const hb = this.opts.heartbeatTimeoutMs ?? 30000;
    if (hb > 0) {
      this.heartbeatTimer = setInterval(() => this.checkHeartbeat(hb), Math.min(hb, 1000));
      this.heartbeatTimer.unref();
    }
  }

  status(): SupervisorStatus {
    const s: SupervisorStatus = {
      ready: this.ready,
      restarts: this.restarts,
      exports: this.config.exports.map(exportKey),
    };
    if (this.child?.pid) {
      s.workerPid = this.child.pid;
      s.workerUptimeMs = Date.now() - this.childStarted;
    }
    if (this.restartTimer) s.restartInMs = Math.max(0, this.restartAt - Date.now());
    if (this.lastExit) s.lastExit = this.lastExit;
    if (this.gaveUp !== undefined) s.gaveUp = this.gaveUp;
    return s;
  }

  private spawnWorker(): void {
    const { log, sink } = this.opts;
    this.restartTimer = undefined;
    this.ready = false;
    this.lastFatal = undefined;
    this.fatalIsPermanent = false;
    this.badMessages = 0;
    let child: ChildProcess;
    try {
      // A worker that will switch user runs itself again with its threads' privileges lowered first.
      child = fork(this.opts.workerModule, this.config.user !== undefined ? [CONFINE_ARG] : [], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        env: withoutNotifyEnv(process.env),
        execArgv: this.opts.execArgv ?? process.execArgv,
      });
    } catch (e) {
      this.spawnFailed(e as Error);
      return;
    }
    // A fork that failed at once (EMFILE, EAGAIN) has no pid and no pipes; it reports the error later and never exits.
    if (child.pid === undefined || !child.stdout || !child.stderr) {
      child.once('error', () => undefined);
      this.spawnFailed(new Error('the process could not be created'), child);
      return;
    }
    this.child = child;
    this.childStarted = Date.now();
    this.lastHeartbeat = Date.now();
    const pid = child.pid;
    child.stdout.on(
      'data',
      lineSplitter((l) => sink.writeLine(workerLogLine(l, 30, pid, { role: 'worker' }))),
    );
    child.stderr.on(
      'data',
      lineSplitter((l) => sink.writeLine(workerLogLine(l, 50, pid, { role: 'worker', stream: 'stderr' }))),
    );
    child.on('message', (m) => this.onMessage(child, m));
    child.on('error', (e) => log.error({ err: e }, `worker process error: ${e.message}`));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    log.info({ workerPid: pid, exports: this.config.exports.map(exportKey) }, `started worker ${pid}`);
    this.send(child, { type: 'start', config: this.config, logLevel: this.opts.logLevel, restart: this.spawned++ > 0 });
  }

  /** A worker that could not be created (too many open files, no memory): logged, and tried again after the back-off. */
  private spawnFailed(e: Error, child?: ChildProcess): void {
    // The error the child reports later names the cause (spawn EMFILE); wait a turn for it.
    const report = (err: Error): void => {
      const delay = this.delayMs;
      this.delayMs = Math.min(this.backoff.maxMs, this.delayMs * 2);
      const why = `cannot start a worker (${err.message})`;
      this.lastExit = { code: null, signal: null, reason: why, at: new Date().toISOString() };
      this.opts.log.error({ err, restartInMs: delay }, `${why}; trying again in ${secs(delay)}`);
      this.emit('worker-failed', why);
      if (this.stopping) return;
      this.restartAt = Date.now() + delay;
      this.restartTimer = setTimeout(() => this.spawnWorker(), delay);
    };
    if (!child) return report(e);
    let reported = false;
    const once = (err: Error): void => {
      if (reported) return;
      reported = true;
      report(err);
    };
    child.once('error', once);
    setImmediate(() => once(e));
  }

  private send(child: ChildProcess, m: ToWorker): boolean {
    if (!child.connected) return false;
    try {
      child.send(m);
      return true;
    } catch {
      return false;
    }
  }

  private onMessage(child: ChildProcess, raw: unknown): void {
    if (child !== this.child) return;
    this.lastHeartbeat = Date.now();
    const checked = checkWorkerMessage(raw);
    if ('problem' in checked) return this.badMessage(child, checked.problem);
    const m = checked.message;
    switch (m.type) {
      case 'ready':
        this.ready = true;
        this.opts.log.info(
          { workerPid: child.pid, exports: m.exports },
          `worker ${child.pid} is serving ${m.exports.join(' ') || 'no exports'}`,
        );
        this.emit('ready', child.pid);
        break;
      case 'fatal':
        this.lastFatal = m.message;
        this.fatalIsPermanent = m.permanent === true;
        // The launcher prints it on the terminal that started vbladed (one that is permanent once the worker exits: 'gave-up').
        if (!this.fatalIsPermanent) this.emit('worker-failed', escapeForTerminal(m.message));
        break;
      case 'applied':
      case 'response': {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        clearTimeout(w.timer);
        if (m.ok) w.resolve(m.type === 'response' ? m.result : m.summary);
        else w.reject(new Error(m.error ?? 'failed'));
        break;
      }
      case 'heartbeat':
        break;
    }
  }

  /** A message that does not fit: ignored; logged, but only the first few of one worker (it could send millions). */
  private badMessage(child: ChildProcess, problem: string): void {
    this.badMessages++;
    if (this.badMessages > MAX_BAD_MESSAGES_LOGGED) return;
    const more = this.badMessages === MAX_BAD_MESSAGES_LOGGED ? '; further ones of this worker are not logged' : '';
    this.opts.log.warn(
      { workerPid: child.pid, problem },
      `worker ${child.pid} sent a message that does not fit (${problem}); ignored${more}`,
    );
  }

  private checkHeartbeat(limitMs: number): void {
    const c = this.child;
    if (!c || this.stopping || c.exitCode !== null || c.signalCode !== null) return;
    const silent = Date.now() - this.lastHeartbeat;
    if (silent > limitMs) {
      this.lastFatal = `no heartbeat for ${secs(Math.round(silent / 100) * 100)}`;
      this.opts.log.error(
        { workerPid: c.pid },
        `worker ${c.pid} sent no heartbeat for ${secs(Math.round(silent / 100) * 100)}; killing it`,
      );
      this.lastHeartbeat = Date.now();
      c.kill('SIGKILL');
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.ready = false;
    const pid = child.pid;
    const upMs = Date.now() - this.childStarted;
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new Error(`worker ${pid} ${exitReason(code, signal)}`));
      this.waiting.delete(id);
    }
    let reason = exitReason(code, signal);
    // The worker's words reach terminals (ctl list, the launcher): escaped.
    if (this.lastFatal) reason += ` (${escapeForTerminal(this.lastFatal)})`;
    this.lastExit = { code, signal, reason, at: new Date().toISOString() };
    if (this.stopping) {
      this.opts.log.info({ workerPid: pid, code, signal }, `worker ${pid} ${reason}`);
      this.emit('worker-exit', { pid, code, signal, reason });
      return;
    }
    if (this.fatalIsPermanent && this.lastFatal !== undefined) {
      this.gaveUp = this.lastFatal;
      this.opts.log.error(
        { workerPid: pid, code, signal },
        `worker ${pid} cannot serve: ${this.lastFatal}; not started again: fix the configuration and start vbladed again`,
      );
      this.emit('worker-exit', { pid, code, signal, reason });
      this.emit('gave-up', escapeForTerminal(this.lastFatal));
      return;
    }
    if (upMs >= this.backoff.resetAfterMs) this.delayMs = this.backoff.minMs;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.backoff.maxMs, this.delayMs * 2);
    this.restarts++;
    this.opts.log.warn(
      { workerPid: pid, code, signal, uptimeMs: upMs, restartInMs: delay, restarts: this.restarts },
      `worker ${pid} ${reason} after ${secs(Math.round(upMs / 100) * 100)}; restarting in ${secs(delay)} (restart ${this.restarts})`,
    );
    this.emit('worker-exit', { pid, code, signal, reason, restartInMs: delay });
    this.restartAt = Date.now() + delay;
    this.restartTimer = setTimeout(() => this.spawnWorker(), delay);
  }

  private ask<T>(build: (id: number) => ToWorker, what: string): Promise<T> {
    const c = this.child;
    if (!c || !this.ready) {
      const when = this.restartTimer ? `; next start in ${secs(Math.max(0, this.restartAt - Date.now()))}` : '';
      const r = this.lastExit?.reason;
      const last = r !== undefined && !c ? ` (last: ${/^(exited|was killed)/.test(r) ? `worker ${r}` : r})` : '';
      return Promise.reject(new Error(`the worker is not serving right now${last}${when}`));
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the worker did not answer ${what} in time`));
      }, this.opts.requestTimeoutMs ?? 30000);
      this.waiting.set(id, { resolve: resolve, reject, timer });
      if (!this.send(c, build(id))) {
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(new Error('the worker is not reachable'));
      }
    });
  }

  /** A control request answered by the worker. */
  request(op: WorkerOp, key?: string, macs?: string[], extra?: CommandExtra): Promise<unknown> {
    return this.ask((id) => ({ type: 'request', id, op, key, ...(macs ? { macs } : {}), ...(extra ? { extra } : {}) }), op);
  }

  /**
   * Switches to a new config: tells a serving worker to apply it (resolves
   * when it has), or keeps it for the next start when the worker is down.
   */
  async apply(config: ServerConfig): Promise<AppliedReload> {
    const diff = diffConfigs(this.config, config);
    const previous = this.config;
    this.config = config;
    if (!this.child || !this.ready) return { ...diff, deferred: true };
    try {
      // The worker's own account when it gives one: it also sees resized stores.
      const summary = await this.ask<ReloadSummary | undefined>((id) => ({ type: 'apply', id, config }), 'the reload');
      return { ...(summary ?? diff), deferred: false };
    } catch (e) {
      this.config = previous;
      throw e;
    }
  }

  /**
   * Bytes on the worker's IPC channel that are not a message make Node's
   * channel reader throw in this process, where nothing can catch it but the
   * process's uncaughtException handler. Returns true (after killing the
   * worker, which is then restarted as after a crash) when `e` is such an
   * error: the worker is untrusted, and its garbage must not stop vbladed.
   */
  workerChannelError(e: unknown): boolean {
    const stack = e instanceof Error ? (e.stack ?? '') : '';
    if (!/\bparseChannelMessages\b|\bchannel\.onread\b/.test(stack)) return false;
    const c = this.child;
    this.lastFatal = 'it wrote bytes that are not a message on its IPC channel';
    this.opts.log.error(
      { workerPid: c?.pid, err: escapeForTerminal((e as Error).message) },
      `worker ${c?.pid ?? '?'} wrote bytes that are not a message on its IPC channel; killing it`,
    );
    if (c?.pid !== undefined && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    return true;
  }

  /** Kills the worker at once (SIGKILL), for an exit that cannot wait. */
  kill(): void {
    const c = this.child;
    if (c?.pid !== undefined && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }

  /**
   * Stops the worker: SIGTERM (it stops taking requests, finishes and
   * flushes those in flight, saves state and exits 0), SIGKILL after the
   * stop timeout. Resolves to the exit code vbladed should use: 0 when the
   * worker stopped cleanly or was not running.
   */
  stop(): Promise<number> {
    if (this.stopping) return this.stopping;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const c = this.child;
    this.stopping = new Promise<number>((resolve) => {
      if (!c || c.pid === undefined || c.exitCode !== null || c.signalCode !== null) {
        resolve(0);
        return;
      }
      const timeoutMs = this.opts.stopTimeoutMs ?? 30000;
      const killer = setTimeout(() => {
        this.opts.log.error({ workerPid: c.pid }, `worker ${c.pid} did not stop within ${secs(timeoutMs)}; killing it`);
        c.kill('SIGKILL');
      }, timeoutMs);
      c.once('exit', (code) => {
        clearTimeout(killer);
        resolve(code === 0 ? 0 : 1);
      });
      this.opts.log.info({ workerPid: c.pid }, `stopping worker ${c.pid}`);
      c.kill('SIGTERM');
    }).then((code) => {
      this.emit('stopped', code);
      return code;
    });
    return this.stopping;
  }
}
