// The foreground supervisor of vbladed (under systemd, or the child the
// launcher detached): logging, the pid file, the export locks, sd_notify,
// the worker (supervisor.ts), the control socket and metrics, reloads and a
// clean stop.
//
// Start order: logger, run directory and pid file, export locks, worker,
// control socket, metrics. A failure to take the pid file or a lock is fatal
// and releases what was taken before it, in reverse; the control socket and
// metrics are extras whose failure is logged. Stop: the worker first (it
// answers the requests in flight), then the listeners, then the locks and
// the pid file.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { changesNeedingRestart, serverConfigOf } from '../config/daemon-settings';
import type { DaemonSettings } from '../config/keys';
import { exportKey } from '../config/export-config';
import { describeExport, type LoadedExports } from '../config/load';
import { ControlServer, type ControlTarget } from './control';
import { createLogger, logSocketPaths, type LogOptions } from './log';
import { MetricsServer } from './metrics';
import { ExportLocks, PidFile } from './pidfile';
import { checkPrivateDir } from './private-dir';
import { uidToBecome } from './privilege';
import { loadAddon } from '../native/addon';
import { SdNotify } from './sd-notify';
import { DEFAULT_BACKOFF, Supervisor, type Backoff } from './supervisor';

/** What the detached daemon tells its launcher over IPC (launcher.ts). */
export type Handshake =
  | { type: 'started'; pid: number }
  | { type: 'ready'; pid: number }
  | { type: 'worker-failed'; pid: number; message: string }
  | { type: 'failed'; message: string };

/** The configuration as re-read for a reload. */
export interface Reread {
  loaded: LoadedExports;
  settings: DaemonSettings;
}

export interface DaemonOptions {
  settings: DaemonSettings;
  loaded: LoadedExports;
  /** Re-reads the configuration (SIGHUP, `vblade ctl reload`); throws with a message that says what is wrong. */
  reread: () => Reread;
  /** Started by the launcher: report start-up on the IPC channel, then close it. */
  toLauncher: boolean;
  /** Test hooks: another worker module, faster back-off, a shorter heartbeat timeout. */
  workerModule?: string;
  backoff?: Backoff;
  heartbeatTimeoutMs?: number;
}

/** What a reload did (the log line, `vblade ctl reload`). */
export interface ReloadResult {
  added: string[];
  removed: string[];
  changed: string[];
  resized: string[];
  /** [daemon] keys whose new value waits for the next start. */
  needsRestart: string[];
  /** What will not take effect, or was accepted but ignored. */
  warnings: string[];
}

/** "1 added (e1.3), 0 removed, ..." */
export function describeReload(r: ReloadResult): string {
  const part = (n: string, l: string[]): string => `${l.length} ${n}${l.length ? ` (${l.join(' ')})` : ''}`;
  const s = [part('added', r.added), part('removed', r.removed), part('changed', r.changed), part('resized', r.resized)].join(
    ', ',
  );
  return r.needsRestart.length ? `${s}; needs a restart: ${r.needsRestart.join(', ')}` : s;
}

/** Where syslog records go when there is no /dev/log and no journal socket, unless log-file says. */
export function defaultLogFile(name: string): string {
  return `/var/log/vblade/${name}.log`;
}

export function logOptionsOf(s: DaemonSettings): LogOptions {
  const o: LogOptions = {
    destination: s.log === 'auto' ? 'syslog' : s.log,
    format: s.logFormat,
    level: s.logLevel,
    syslogFormat: s.syslogFormat,
    tag: 'vbladed',
    ...logSocketPaths(),
    fallbackFile: s.logFile ?? defaultLogFile(s.name),
  };
  if (s.logFile) o.file = s.logFile;
  return o;
}

/** Runs the supervisor in this process until SIGTERM or SIGINT, then exits the process. */
export async function runDaemon(o: DaemonOptions): Promise<void> {
  const settings = o.settings;
  let loaded = o.loaded;
  const handshake = (m: Handshake): void => {
    if (o.toLauncher && process.connected) process.send!(m);
  };
  const endHandshake = (): void => {
    if (o.toLauncher && process.connected) process.disconnect();
  };
  const { logger: log, sink } = createLogger(logOptionsOf(settings), { instance: settings.name });
  for (const w of loaded.warnings) log.warn(w);

  // What start-up has taken, released in reverse on a fatal error or at stop.
  const held: (() => void)[] = [];
  const releaseHeld = (): void => {
    for (const release of held.splice(0).reverse()) release();
  };
  const locks = new ExportLocks(settings.runDir, ({ file, pid }) =>
    log.warn({ file, stalePid: pid }, `removed stale ${file}${pid ? ` of pid ${pid}, which no longer runs vbladed` : ''}`),
  );
  try {
    fs.mkdirSync(settings.runDir, { recursive: true, mode: 0o755 });
    // Where the pid file, locks and control socket go: nobody else may plant links there.
    for (const dir of new Set([settings.runDir, path.dirname(settings.pidFile)])) checkPrivateDir(dir, 'run directory');
    if (settings.stateDir) {
      fs.mkdirSync(settings.stateDir, { recursive: true, mode: 0o750 });
      // The worker writes it, as `user =` when that is set.
      const switchTo = settings.user === undefined ? undefined : uidToBecome(loadAddon(), settings.user);
      checkPrivateDir(settings.stateDir, 'state directory', switchTo);
    }
    const pidFile = PidFile.acquire(settings.pidFile, {
      what: `instance ${settings.name}`,
      // stalePid, not pid: a record's pid is the process that logs it.
      onStale: ({ file, pid }) =>
        log.warn(
          { file, stalePid: pid },
          `removed stale pid file ${file}${pid ? ` of pid ${pid}, which no longer runs vbladed` : ''}`,
        ),
    });
    held.push(() => pidFile.release());
    locks.acquire(loaded.exports.map((e) => ({ key: exportKey(e), interfaces: e.interfaces })));
    held.push(() => locks.releaseAll());
  } catch (e) {
    log.fatal({ err: e }, (e as Error).message);
    handshake({ type: 'failed', message: (e as Error).message });
    releaseHeld();
    sink.flushSync();
    process.exit(1);
  }
  // Everything is absolute now; do not keep the start directory busy.
  process.chdir('/');

  const notify = new SdNotify();
  const supervisor = new Supervisor({
    workerModule: o.workerModule ?? path.join(__dirname, 'worker.js'),
    config: serverConfigOf(loaded.exports, settings),
    log,
    sink,
    logLevel: settings.logLevel,
    backoff: o.backoff ?? DEFAULT_BACKOFF,
    stopTimeoutMs: settings.stopTimeoutSeconds * 1000,
    heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 30000,
  });

  const statusLine = (): string => {
    const s = supervisor.status();
    return s.ready
      ? `serving ${s.exports.join(' ')}`
      : s.restartInMs !== undefined
        ? `worker down (${s.lastExit?.reason ?? ''}); restart in ${Math.ceil(s.restartInMs / 1000)} s`
        : 'starting';
  };

  let firstReady = true;
  supervisor.on('ready', () => {
    notify.status(statusLine());
    if (firstReady) {
      firstReady = false;
      if (!notify.ready(statusLine()) && notify.enabled) log.error(`cannot notify systemd: ${notify.error}`);
      handshake({ type: 'ready', pid: process.pid });
      endHandshake();
    }
  });
  supervisor.on('worker-failed', (message: string) => {
    if (firstReady) {
      handshake({ type: 'worker-failed', pid: process.pid, message });
      endHandshake();
    }
  });
  supervisor.on('worker-exit', () => notify.status(statusLine()));

  // Reloads are serialized: a SIGHUP during a reload waits for it.
  let reloadChain: Promise<unknown> = Promise.resolve();
  // A reload applies completely or changes nothing: the worker checks the
  // new exports before it touches any, and the locks this reload took are
  // given back when it is refused.
  const reloadOnce = async (): Promise<ReloadResult> => {
    notify.reloading('reloading');
    sink.reopen();
    log.info('reloading the configuration');
    const locksBefore = new Set(locks.names());
    try {
      const { loaded: next, settings: nextSettings } = o.reread();
      const needsRestart = changesNeedingRestart(settings, nextSettings);
      const toDrop = locks.acquire(next.exports.map((e) => ({ key: exportKey(e), interfaces: e.interfaces })));
      // The running settings, not the new ones: what needs a restart waits for it.
      const applied = await supervisor.apply(serverConfigOf(next.exports, settings));
      locks.drop(toDrop);
      loaded = next;
      if (nextSettings.logLevel !== settings.logLevel) {
        log.level = nextSettings.logLevel;
        settings.logLevel = nextSettings.logLevel;
      }
      const warnings = [...next.warnings];
      if (needsRestart.length)
        warnings.push(
          `changed daemon settings take effect at the next start: ${needsRestart.join(', ')}; restart the service to apply them`,
        );
      if (applied.deferred)
        warnings.push('the worker is not serving right now; the new configuration takes effect when it starts again');
      for (const w of warnings) log.warn(w);
      const result: ReloadResult = {
        added: applied.added,
        removed: applied.removed,
        changed: applied.changed,
        resized: applied.resized,
        needsRestart,
        warnings,
      };
      log.info(result, `reloaded: ${describeReload(result)}`);
      return result;
    } catch (e) {
      locks.drop(locks.names().filter((n) => !locksBefore.has(n)));
      const msg = `reload refused, nothing changed: ${(e as Error).message}`;
      log.error(msg);
      throw new Error(msg, { cause: e });
    } finally {
      notify.ready(statusLine());
    }
  };
  const reload = (): Promise<unknown> => {
    const p = reloadChain.then(reloadOnce);
    reloadChain = p.catch(() => undefined);
    return p;
  };

  const target: ControlTarget = {
    request: (op, key, macs, extra) => supervisor.request(op, key, macs, extra),
    reload,
    status: () => supervisor.status(),
  };
  let control: ControlServer | undefined;
  let metrics: MetricsServer | undefined;

  let stopping = false;
  const shutdown = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info(`stopping (${why})`);
    notify.stopping('stopping: finishing in-flight requests');
    notify.stopWatchdog();
    const code = await supervisor.stop();
    await Promise.all([control?.close(), metrics?.close()].map((p) => p?.catch(() => undefined) ?? Promise.resolve()));
    releaseHeld();
    log.info({ code }, code === 0 ? 'stopped' : 'stopped; the worker did not stop cleanly');
    sink.flushSync();
    process.exit(code);
  };

  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    if (!stopping) reload().catch(() => undefined);
  });
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, `supervisor error: ${e.message}`);
    void shutdown('supervisor error');
  });

  log.info(
    { exports: loaded.exports.map(describeExport), pidFile: settings.pidFile },
    `vbladed ${settings.name} starting (pid ${process.pid})`,
  );
  supervisor.start();
  handshake({ type: 'started', pid: process.pid });
  notify.startWatchdog();

  if (settings.controlSocket) {
    try {
      control = await ControlServer.listen(target, { socketPath: settings.controlSocket, group: settings.controlGroup, log });
    } catch (e) {
      log.error({ err: e }, `no control socket: ${(e as Error).message}`);
    }
  }
  if (settings.metrics) {
    try {
      metrics = await MetricsServer.listen(
        { stats: () => supervisor.request('stats'), supervisor: () => supervisor.status() },
        settings.metrics,
        log,
      );
    } catch (e) {
      log.error({ err: e }, `no metrics listener on ${settings.metrics.host}:${settings.metrics.port}: ${(e as Error).message}`);
    }
  }
}
