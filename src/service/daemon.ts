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
import { changesNeedingRestart, remoteMetricsWarning, serverConfigOf } from '../config/daemon-settings';
import type { DaemonSettings } from '../config/keys';
import { exportKey } from '../config/export-config';
import { describeExport, type LoadedExports } from '../config/load';
import { giveAddressClaims } from '../guard/address-claim';
import { giveStoreClaims } from '../guard/store-claim';
import { ControlServer, type ConfigFiles, type ControlTarget } from './control';
import type { Logger } from 'pino';
import { createLogger, logSocketPaths, type LogOptions, type LogSink } from './log';
import { MetricsServer } from './metrics';
import { ExportLocks, PidFile } from './pidfile';
import { checkPrivateDir } from './private-dir';
import { uidToBecome } from './privilege';
import { loadAddon } from '../native/addon';
import { SdNotify } from './sd-notify';
import { DEFAULT_BACKOFF, Supervisor, type Backoff } from './supervisor';

/**
 * vbladed's exit status when nothing can be served (EX_CONFIG of
 * sysexits.h): the shipped units do not restart on it (RestartPreventExitStatus).
 */
export const EXIT_CONFIG = 78;

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
  /** The config file, which `vblade ctl add`/`remove` edit (as root, themselves); undefined without --config. */
  configFiles?: ConfigFiles;
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
  /** Added, but not served: another process or target serves the address. */
  refused?: string[];
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
  let created: ReturnType<typeof createLogger>;
  try {
    created = createLogger(logOptionsOf(o.settings), { instance: o.settings.name });
  } catch (e) {
    // No log to say it in (a log file refused, say): standard error, and the launcher.
    process.stderr.write(`vbladed: ${(e as Error).message}\n`);
    new LauncherChannel(o.toLauncher).send({ type: 'failed', message: (e as Error).message });
    process.exit(1);
  }
  const { logger: log, sink } = created;
  for (const w of o.loaded.warnings) log.warn(w);
  const launcher = new LauncherChannel(o.toLauncher);
  const locks = new ExportLocks(o.settings.runDir, ({ file, pid }) =>
    log.warn({ file, stalePid: pid }, `removed stale ${file}${pid ? ` of pid ${pid}, which no longer runs vbladed` : ''}`),
  );
  const held: (() => void)[] = [];
  try {
    takeRunFiles(o.settings, o.loaded, log, locks, held);
  } catch (e) {
    log.fatal({ err: e }, (e as Error).message);
    launcher.send({ type: 'failed', message: (e as Error).message });
    releaseInReverse(held);
    sink.flushSync();
    process.exit(1);
  }
  // Everything is absolute now; do not keep the start directory busy.
  process.chdir('/');
  const daemon = new Daemon(o, { log, sink, launcher, locks, held });
  daemon.handleSignals();
  await daemon.start();
}

/** The IPC channel to the launcher that detached this process (launcher.ts); without one, messages go nowhere. */
class LauncherChannel {
  constructor(private readonly open: boolean) {}

  send(m: Handshake): void {
    if (this.open && process.connected) process.send!(m);
  }

  /** Start-up is over: let the launcher exit. */
  end(): void {
    if (this.open && process.connected) process.disconnect();
  }
}

/** Releases what start-up took, the last taken first. */
function releaseInReverse(held: (() => void)[]): void {
  for (const release of held.splice(0).reverse()) release();
}

/**
 * What `vbladed --check` says of the run and state directories: start's
 * verdict on those that exist (a missing one is made at start, under
 * parents checked then), nothing made. One message per directory found wrong.
 */
/** Why this process could not make the missing directory `dir`, or undefined when it could. */
function cannotMake(dir: string, what: string): string | undefined {
  let up = path.dirname(path.resolve(dir));
  while (!fs.existsSync(up) && path.dirname(up) !== up) up = path.dirname(up);
  try {
    fs.accessSync(up, fs.constants.W_OK | fs.constants.X_OK);
    return undefined;
  } catch {
    const uid = process.geteuid?.() ?? 0;
    return `the ${what} ${dir} does not exist, and start cannot make it: uid ${uid} may not write ${up}; make it yourself (install -d -o ${uid} -m 755 ${dir}) or set another`;
  }
}

export function runDirProblems(settings: DaemonSettings): string[] {
  const dirs: Array<[string, string, number | undefined]> = [[settings.runDir, 'run directory', undefined]];
  if (path.dirname(settings.pidFile) !== settings.runDir) dirs.push([path.dirname(settings.pidFile), 'run directory', undefined]);
  if (settings.stateDir) {
    const switchTo = settings.user === undefined ? undefined : uidToBecome(loadAddon(), settings.user);
    dirs.push([settings.stateDir, 'state directory', switchTo]);
  }
  const problems: string[] = [];
  for (const [dir, what, switchTo] of dirs) {
    if (!fs.existsSync(dir)) {
      // Start makes it: said now when it could not (its nearest existing parent is not ours to write).
      const cannot = cannotMake(dir, what);
      if (cannot !== undefined) problems.push(cannot);
      continue;
    }
    try {
      checkPrivateDir(dir, what, { switchTo });
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return problems;
}

/**
 * Takes, in order, the run and state directories, the pid file and the
 * export locks, pushing a release for each onto `held`. Throws with a
 * message for the log at the first that fails; the caller releases `held`.
 */
function takeRunFiles(
  settings: DaemonSettings,
  loaded: LoadedExports,
  log: Logger,
  locks: ExportLocks,
  held: (() => void)[],
): void {
  // Where the pid file, locks and control socket go: nobody else may plant links there.
  checkPrivateDir(settings.runDir, 'run directory', { createMode: 0o755 });
  if (path.dirname(settings.pidFile) !== settings.runDir) checkPrivateDir(path.dirname(settings.pidFile), 'run directory');
  if (settings.stateDir) {
    // The worker writes it, as `user =` when that is set.
    const switchTo = settings.user === undefined ? undefined : uidToBecome(loadAddon(), settings.user);
    // One made now, for a worker that becomes the user, is the user's (as the package's postinst makes /var/lib/vblade):
    // given by the descriptor of the directory made, never one found at the path (a planted link).
    const ids = settings.user === undefined ? null : loadAddon().lookupUser(settings.user);
    checkPrivateDir(settings.stateDir, 'state directory', {
      switchTo,
      createMode: 0o750,
      createOwner: ids === null ? undefined : { uid: ids.uid, gid: ids.gid },
    });
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
}

/** What runDaemon took before the supervisor starts, handed to it whole. */
interface RunResources {
  log: Logger;
  sink: LogSink;
  launcher: LauncherChannel;
  locks: ExportLocks;
  /** Releases of the pid file and locks, in the order taken. */
  held: (() => void)[];
}

/** The running supervisor of vbladed: one method per job (start, reload, stop, signals). */
class Daemon {
  private readonly settings: DaemonSettings;
  private loaded: LoadedExports;
  private readonly log: Logger;
  private readonly sink: LogSink;
  private readonly launcher: LauncherChannel;
  private readonly locks: ExportLocks;
  private readonly held: (() => void)[];
  private readonly notify = new SdNotify();
  private readonly supervisor: Supervisor;
  private control: ControlServer | undefined;
  private metrics: MetricsServer | undefined;
  private firstReady = true;
  private stopping = false;
  // Reloads are serialized: a SIGHUP during a reload waits for it.
  private reloadChain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly o: DaemonOptions,
    run: RunResources,
  ) {
    this.settings = o.settings;
    this.loaded = o.loaded;
    ({ log: this.log, sink: this.sink, launcher: this.launcher, locks: this.locks, held: this.held } = run);
    this.supervisor = new Supervisor({
      workerModule: o.workerModule ?? path.join(__dirname, 'worker.js'),
      config: serverConfigOf(this.loaded.exports, this.settings),
      log: this.log,
      sink: this.sink,
      logLevel: this.settings.logLevel,
      backoff: o.backoff ?? DEFAULT_BACKOFF,
      stopTimeoutMs: this.settings.stopTimeoutSeconds * 1000,
      heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 30000,
    });
    this.watchSupervisor();
  }

  private statusLine(): string {
    const s = this.supervisor.status();
    return s.ready
      ? `serving ${s.exports.join(' ')}`
      : s.restartInMs !== undefined
        ? `worker down (${s.lastExit?.reason ?? ''}); restart in ${Math.ceil(s.restartInMs / 1000)} s`
        : 'starting';
  }

  /** systemd and the launcher hear of the first ready worker (or its failure); systemd's status follows the worker. */
  private watchSupervisor(): void {
    this.supervisor.on('ready', () => {
      this.notify.status(this.statusLine());
      if (this.firstReady) {
        this.firstReady = false;
        if (!this.notify.ready(this.statusLine()) && this.notify.enabled)
          this.log.error(`cannot notify systemd: ${this.notify.error}`);
        this.launcher.send({ type: 'ready', pid: process.pid });
        this.launcher.end();
      }
    });
    this.supervisor.on('worker-failed', (message: string) => {
      if (this.firstReady) {
        this.launcher.send({ type: 'worker-failed', pid: process.pid, message });
        this.launcher.end();
      }
    });
    this.supervisor.on('worker-exit', () => this.notify.status(this.statusLine()));
    // Nothing can be served and trying again would not change that: stop, so that the launcher and systemd show why.
    this.supervisor.on('gave-up', (message: string) => {
      const text = `nothing can be served, so vbladed stops; fix the configuration (or the files it names) and start it again:\n${message
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n')}`;
      this.log.fatal(text);
      if (this.firstReady) {
        this.launcher.send({ type: 'failed', message: text });
        this.launcher.end();
      }
      void this.shutdown('nothing can be served', EXIT_CONFIG);
    });
  }

  handleSignals(): void {
    process.on('SIGTERM', () => void this.shutdown('SIGTERM'));
    process.on('SIGINT', () => void this.shutdown('SIGINT'));
    process.on('SIGHUP', () => {
      if (!this.stopping) this.reload().catch(() => undefined);
    });
    process.on('uncaughtException', (e) => {
      if (this.supervisor.workerChannelError(e)) return;
      this.log.fatal({ err: e }, `supervisor error: ${e.message}`);
      void this.shutdown('supervisor error');
    });
  }

  /** Starts the worker, then the control socket and metrics: extras whose failure is logged, not fatal. */
  async start(): Promise<void> {
    this.log.info(
      { exports: this.loaded.exports.map(describeExport), pidFile: this.settings.pidFile },
      `vbladed ${this.settings.name} starting (pid ${process.pid})`,
    );
    this.supervisor.start();
    this.launcher.send({ type: 'started', pid: process.pid });
    this.notify.startWatchdog();
    await this.openControlSocket();
    await this.openMetrics();
  }

  private async openControlSocket(): Promise<void> {
    const socketPath = this.settings.controlSocket;
    if (!socketPath) return;
    const target: ControlTarget = {
      request: (op, key, macs, extra) => this.supervisor.request(op, key, macs, extra),
      reload: () => this.reload(),
      status: () => this.supervisor.status(),
    };
    const files = this.o.configFiles;
    if (files) target.configFiles = () => files;
    try {
      this.control = await ControlServer.listen(target, { socketPath, group: this.settings.controlGroup, log: this.log });
    } catch (e) {
      this.log.error({ err: e }, `no control socket: ${(e as Error).message}`);
    }
  }

  private async openMetrics(): Promise<void> {
    const listen = this.settings.metrics;
    if (!listen) return;
    const remote = remoteMetricsWarning(this.settings);
    if (remote !== undefined) this.log.warn(remote);
    try {
      this.metrics = await MetricsServer.listen(
        { stats: () => this.supervisor.request('stats'), supervisor: () => this.supervisor.status() },
        listen,
        this.log,
      );
    } catch (e) {
      this.log.error({ err: e }, `no metrics listener on ${listen.host}:${listen.port}: ${(e as Error).message}`);
    }
  }

  /** A reload (SIGHUP, `vblade ctl reload`), run after the one before it has finished. */
  reload(): Promise<ReloadResult> {
    const p = this.reloadChain.then(() => this.reloadOnce());
    this.reloadChain = p.catch(() => undefined);
    return p;
  }

  /**
   * A reload applies completely or changes nothing: the worker checks the
   * new exports before it touches any, and the locks this reload took are
   * given back when it is refused.
   */
  private async reloadOnce(): Promise<ReloadResult> {
    const { log, locks, settings } = this;
    this.notify.reloading('reloading');
    this.sink.reopen();
    log.info('reloading the configuration');
    const locksBefore = new Set(locks.names());
    try {
      const { loaded: next, settings: nextSettings } = this.o.reread();
      const needsRestart = changesNeedingRestart(settings, nextSettings);
      const toDrop = locks.acquire(next.exports.map((e) => ({ key: exportKey(e), interfaces: e.interfaces })));
      // A worker that has become `user =` cannot make a claim file in root's claims directory: made for it here.
      const owner = settings.user === undefined ? null : loadAddon().lookupUser(settings.user);
      if (owner !== null) {
        const addon = loadAddon();
        giveAddressClaims(
          next.exports.map((e) => ({ key: exportKey(e), interfaces: e.interfaces })),
          owner,
          addon,
        );
        giveStoreClaims(next.exports, owner, addon);
      }
      // The running settings, not the new ones: what needs a restart waits for it.
      const applied = await this.supervisor.apply(serverConfigOf(next.exports, settings));
      locks.drop(toDrop);
      // The file's warnings the log has already (at start or the reload before) are not logged again; the reply has them all.
      const logged = new Set(this.loaded.warnings);
      this.loaded = next;
      if (nextSettings.logLevel !== settings.logLevel) {
        log.level = nextSettings.logLevel;
        settings.logLevel = nextSettings.logLevel;
      }
      const warnings = [...next.warnings, ...(applied.waiting ?? [])];
      if (needsRestart.length)
        warnings.push(
          `changed daemon settings take effect at the next start: ${needsRestart.join(', ')}; restart the service to apply them`,
        );
      if (applied.deferred)
        warnings.push('the worker is not serving right now; the new configuration takes effect when it starts again');
      for (const w of warnings) if (!logged.has(w)) log.warn(w);
      const { added, removed, changed, resized, refused } = applied;
      const result: ReloadResult = { added, removed, changed, resized, needsRestart, warnings };
      if (refused?.length) result.refused = refused;
      log.info(result, `reloaded: ${describeReload(result)}`);
      return result;
    } catch (e) {
      locks.drop(locks.names().filter((n) => !locksBefore.has(n)));
      const msg = `reload refused, nothing changed: ${(e as Error).message}`;
      log.error(msg);
      throw new Error(msg, { cause: e });
    } finally {
      this.notify.ready(this.statusLine());
    }
  }

  /** Stops the worker first (it answers the requests in flight), then the listeners, then the locks and the pid file; exits. */
  private async shutdown(why: string, exitCode = 0): Promise<void> {
    if (this.stopping) {
      if (why === 'SIGTERM' || why === 'SIGINT') this.stopNow(why);
      return;
    }
    this.stopping = true;
    this.log.info(`stopping (${why})`);
    this.notify.stopping('stopping: finishing in-flight requests');
    this.notify.stopWatchdog();
    const code = Math.max(await this.supervisor.stop(), exitCode);
    await Promise.all([this.control?.close(), this.metrics?.close()].map((p) => p?.catch(() => undefined) ?? Promise.resolve()));
    releaseInReverse(this.held);
    this.log.info(
      { code },
      code === 0 ? 'stopped' : code === EXIT_CONFIG ? 'stopped: nothing to serve' : 'stopped; the worker did not stop cleanly',
    );
    this.sink.flushSync();
    process.exit(code);
  }

  /** A second SIGTERM while stopping: the operator will not wait; the worker is killed and vbladed exits 1. */
  private stopNow(why: string): void {
    this.log.warn(`${why} again while stopping: killing the worker and exiting now`);
    this.supervisor.kill();
    releaseInReverse(this.held);
    this.sink.flushSync();
    process.exit(1);
  }
}
