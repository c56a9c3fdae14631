// vbladed: vblade as a daemon.
//
//   vbladed [daemon options] [vblade options] shelf slot netif file
//   vbladed [daemon options] --config /etc/vblade.conf
//   vbladed [daemon options] --debian-config /etc/vblade.conf.d/NAME.conf
//
// Without --foreground it is a launcher: it checks the configuration, starts
// the supervisor detached (its own session, no controlling terminal, stdin
// /dev/null, stdout/stderr to the log file or nowhere), prints the
// supervisor's pid and returns. With --foreground (systemd, or the detached
// child itself) it is the supervisor: pid file, export locks, logging,
// sd_notify, control socket, metrics, and the worker (supervisor.ts).

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExportConfig } from '../config/export-config';
import { exportKey } from '../config/export-config';
import {
  ConfigError,
  KEYS,
  checkDaemonSettings,
  checkValue,
  environmentDaemonKeys,
  formatProblem,
  keyDef,
  parseConfigFile,
  renderDaemonHelp,
  resolveDaemonSettings,
  serverConfigOf,
  type DaemonKeys,
  type DaemonSettings,
} from '../config/config-file';
import { parseDebianConf } from '../config/debian-conf';
import { UsageError, VBLADE_USAGE, parseVbladeArgs } from '../config/vblade-args';
import { createLogger, type LogOptions } from '../service/log';
import { SdNotify } from '../service/sd-notify';
import { ExportLocks, PidFile, checkPidFile, exportLockFile } from '../service/pidfile';
import { Supervisor, DEFAULT_BACKOFF, type Backoff } from '../service/supervisor';
import { ControlServer, type ControlTarget } from '../service/control';
import { MetricsServer } from '../service/metrics';

// ---------------------------------------------------------------------------
// Command line

/** Long options that are not config keys. */
const FLAGS = {
  config: { arg: 'FILE', meaning: 'Serve the exports of this config file (vblade.conf(5)) instead of one from the command line.' },
  'debian-config': { arg: 'FILE', meaning: "Serve the one export of a Debian /etc/vblade.conf.d/NAME.conf fragment." },
  foreground: { meaning: 'Do not detach: run the supervisor in this process (for systemd and debugging).' },
  check: { meaning: 'Check the configuration, print what would be served, and exit.' },
  help: { meaning: 'Show this help.' },
  version: { meaning: 'Show the version.' },
} as const;

// Hidden options, not in --help: --worker FILE (a test stub worker),
// --backoff MIN,MAX,RESET and --heartbeat-timeout MS (tests),
// --supervisor-child (set by the launcher on the detached child).

export interface VbladedArgs {
  mode: 'args' | 'config' | 'debian';
  /** Absolute path of --config / --debian-config. */
  configFile?: string;
  vbladeArgv: string[];
  /** [daemon] keys given as long options (paths made absolute). */
  daemonKeys: DaemonKeys;
  /** [daemon] keys from compatibility environment variables (AOE_SPIN_US, AOE_MAP), read once at start. */
  environmentKeys?: DaemonKeys;
  foreground: boolean;
  check: boolean;
  help: boolean;
  version: boolean;
  worker?: string;
  backoff?: Backoff;
  heartbeatTimeoutMs?: number;
  supervisorChild: boolean;
}

export function parseVbladedArgs(argv: readonly string[], cwd = process.cwd()): VbladedArgs {
  const a: VbladedArgs = {
    mode: 'args',
    vbladeArgv: [],
    daemonKeys: {},
    foreground: false,
    check: false,
    help: false,
    version: false,
    supervisorChild: false,
  };
  let config: string | undefined;
  let debian: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      a.vbladeArgv.push(...argv.slice(i));
      break;
    }
    if (arg === '-h') {
      a.help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      a.vbladeArgv.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const takeValue = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      return argv[++i];
    };
    if (name === 'foreground' || name === 'check' || name === 'help' || name === 'version' || name === 'supervisor-child') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      if (name === 'foreground') a.foreground = true;
      else if (name === 'check') a.check = true;
      else if (name === 'help') a.help = true;
      else if (name === 'version') a.version = true;
      else a.supervisorChild = true;
      continue;
    }
    if (name === 'config') config = path.resolve(cwd, takeValue());
    else if (name === 'debian-config') debian = path.resolve(cwd, takeValue());
    else if (name === 'worker') a.worker = path.resolve(cwd, takeValue());
    else if (name === 'heartbeat-timeout') a.heartbeatTimeoutMs = Number(takeValue());
    else if (name === 'backoff') {
      const [minMs, maxMs, resetAfterMs] = takeValue().split(',').map(Number);
      if (![minMs, maxMs, resetAfterMs].every((n) => Number.isFinite(n) && n >= 0)) throw new UsageError('--backoff needs MIN,MAX,RESET in milliseconds');
      a.backoff = { minMs, maxMs, resetAfterMs };
    } else {
      const def = keyDef('daemon', name);
      if (!def) {
        const known = [...Object.keys(FLAGS), ...KEYS.filter((k) => k.section === 'daemon').map((k) => k.key)];
        throw new UsageError(`unknown option --${name}; vbladed --help lists ${known.map((k) => '--' + k).join(' ')}`);
      }
      let value = takeValue();
      const err = value === '' ? undefined : checkValue(def, value);
      if (err) throw new UsageError(`--${err.startsWith(name) ? err : `${name}: ${err}`}`);
      if (def.type === 'path' && value !== '' && value !== 'none') value = path.resolve(cwd, value);
      a.daemonKeys[name] = value;
    }
  }
  if (config && debian) throw new UsageError('give either --config or --debian-config, not both');
  if (config || debian) {
    if (a.vbladeArgv.length) {
      throw new UsageError(
        `with --${config ? 'config' : 'debian-config'} the exports come from the file; remove "${a.vbladeArgv.join(' ')}" or put it in the file`,
      );
    }
    a.mode = config ? 'config' : 'debian';
    a.configFile = config ?? debian;
  }
  return a;
}

export function vbladedUsage(): string {
  const vbladeKeys = KEYS.filter((k) => k.vbladeOption);
  const optArg: Record<string, string> = { '-b': ' bufcnt', '-m': ' mac[,mac...]', '-o': ' offset', '-l': ' length' };
  const vlines = vbladeKeys.map((k) => `  ${(k.vbladeOption! + (optArg[k.vbladeOption!] ?? '')).padEnd(18)}${k.meaning} [default: ${k.defaultText ?? (k.default || 'unset')}]`);
  const flagLines = Object.entries(FLAGS).map(([k, v]) => `  ${`--${k}${'arg' in v ? ' ' + v.arg : ''}`.padEnd(26)}${v.meaning}`);
  return [
    'usage: vbladed [daemon options] [-b bufcnt] [-d] [-s] [-r] [-m mac[,mac...]] [-o offset] [-l length] shelf slot netif file',
    '       vbladed [daemon options] --config FILE',
    '       vbladed [daemon options] --debian-config /etc/vblade.conf.d/NAME.conf',
    '',
    'Serves ATA over Ethernet exports as a daemon: detaches, logs to syslog (tag vbladed) or a file,',
    'writes a pid file, restarts the serving process if it dies. SIGTERM stops cleanly, SIGHUP reloads.',
    '',
    'vblade options (one export from the command line):',
    ...vlines,
    '',
    'Modes:',
    ...flagLines,
    '',
    'Daemon options (also [daemon] keys of the config file; the command line wins):',
    renderDaemonHelp(),
    '',
    'See vbladed(8) and vblade.conf(5).',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// Loading the exports

export interface Loaded {
  exports: ExportConfig[];
  fileDaemonKeys: DaemonKeys;
  defaultName: string;
  /** Things accepted but ignored, as "file:line: text". */
  warnings: string[];
}

/** Reads and validates what the arguments point at. Throws UsageError, ConfigError or Error (unreadable file). */
export function loadExports(a: VbladedArgs): Loaded {
  if (a.mode === 'args') {
    const e = parseVbladeArgs(a.vbladeArgv);
    e.file = path.resolve(e.file);
    return { exports: [e], fileDaemonKeys: {}, defaultName: `${exportKey(e)}@${e.interfaces[0]}`, warnings: [] };
  }
  const file = a.configFile!;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? 'create it (see vblade.conf(5) and systemd/vblade.conf.example)' : code === 'EACCES' ? 'check its permissions' : 'check the path';
    throw new Error(`cannot read ${file}: ${(e as Error).message}; ${hint}`);
  }
  const defaultName = path.basename(file).replace(/\.conf$/, '');
  if (a.mode === 'config') {
    const c = parseConfigFile(text, file);
    return { exports: c.exports, fileDaemonKeys: c.daemon, defaultName, warnings: [] };
  }
  const d = parseDebianConf(text, file);
  return { exports: [d.export], fileDaemonKeys: {}, defaultName, warnings: d.warnings.map(formatProblem) };
}

export function logOptionsOf(s: DaemonSettings): LogOptions {
  const o: LogOptions = {
    destination: s.log === 'auto' ? 'syslog' : s.log,
    format: s.logFormat,
    level: s.logLevel,
    syslogFormat: s.syslogFormat,
    tag: 'vbladed',
  };
  if (s.logFile) o.file = s.logFile;
  return o;
}

function describeExport(e: ExportConfig): string {
  const flags = [e.readOnly ? 'read-only' : 'read-write', e.direct ? 'direct' : '', e.sync ? 'sync' : ''].filter(Boolean).join(',');
  const what = e.nullStore ? `null store of ${e.nullSectors} sectors` : e.file;
  const range = e.offsetSectors || e.lengthSectors !== undefined ? ` sectors ${e.offsetSectors}..${e.lengthSectors !== undefined ? e.offsetSectors + e.lengthSectors : 'end'}` : '';
  const mask = e.macMask.length ? ` mask ${e.macMask.join(',')}` : '';
  return `${exportKey(e)} on ${e.interfaces.join(' ')}: ${what}${range} (${flags}, buffer count ${e.bufferCount})${mask}`;
}

// ---------------------------------------------------------------------------
// Launcher

function fail(message: string, withUsage = false): number {
  const lines = message.split('\n').map((l) => `vbladed: ${l}\n`).join('');
  process.stderr.write(lines + (withUsage ? VBLADE_USAGE.replace('vblade', 'vbladed [daemon options]') + '\n' : ''));
  return 1;
}

/** Refuses early, on the terminal, what the supervisor would refuse in the log. */
function precheck(settings: DaemonSettings, exports: ExportConfig[]): string | undefined {
  const pid = checkPidFile(settings.pidFile, `instance ${settings.name}`);
  if (pid) return pid.message;
  for (const e of exports) {
    for (const i of e.interfaces) {
      const err = checkPidFile(exportLockFile(settings.runDir, exportKey(e), i), `${exportKey(e)} on ${i}`);
      if (err) return err.message;
    }
  }
  return undefined;
}

type Handshake = { type: 'started'; pid: number } | { type: 'ready'; pid: number } | { type: 'worker-failed'; pid: number; message: string } | { type: 'failed'; message: string };

async function launch(argv: readonly string[], settings: DaemonSettings): Promise<number> {
  if (settings.log === 'stdout' || settings.log === 'stderr') {
    process.stderr.write(`vbladed: log = ${settings.log} goes nowhere once detached; logging to syslog (use --foreground or --log-file to choose)\n`);
  }
  let out: number | 'ignore' = 'ignore';
  if (settings.log === 'file' && settings.logFile) {
    try {
      fs.mkdirSync(path.dirname(settings.logFile), { recursive: true });
      out = fs.openSync(settings.logFile, 'a', 0o640);
    } catch (e) {
      return fail(`cannot open the log file ${settings.logFile}: ${(e as Error).message}`);
    }
  }
  const script = path.resolve(process.argv[1]);
  const childArgv = [...argv.filter((x) => x !== '--foreground' && x !== '--supervisor-child')];
  // The child re-parses the same arguments; options go before a possible `--`.
  const dd = childArgv.indexOf('--');
  const extra = ['--foreground', '--supervisor-child'];
  if (settings.log === 'stdout' || settings.log === 'stderr') extra.push('--log=syslog');
  if (dd >= 0) childArgv.splice(dd, 0, ...extra);
  else childArgv.push(...extra);
  const child = spawn(process.execPath, [...process.execArgv, script, ...childArgv], {
    detached: true, // setsid(): own session and process group, no controlling terminal
    stdio: ['ignore', out, out, 'ipc'],
  });
  if (typeof out === 'number') fs.closeSync(out);
  const pid = child.pid!;
  const result = await new Promise<{ code: number; text?: string; pidLine: boolean }>((resolve) => {
    const timer = setTimeout(() => resolve({ code: 0, pidLine: true, text: `vbladed: pid ${pid} started; not serving yet after 10 s (see the log)` }), 10000);
    const done = (r: { code: number; text?: string; pidLine: boolean }): void => {
      clearTimeout(timer);
      resolve(r);
    };
    child.on('message', (raw) => {
      const m = raw as Handshake;
      if (m.type === 'ready') done({ code: 0, pidLine: true });
      else if (m.type === 'worker-failed') {
        done({ code: 0, pidLine: true, text: `vbladed: pid ${pid} started, but serving failed: ${m.message}\nvbladed: it keeps retrying with back-off; stop it with "kill ${pid}"` });
      } else if (m.type === 'failed') done({ code: 1, pidLine: false, text: `vbladed: ${m.message}` });
    });
    child.on('exit', (code, signal) => done({ code: 1, pidLine: false, text: `vbladed: the daemon ${signal ? `was killed by ${signal}` : `exited with code ${code}`} while starting; see the log` }));
  });
  if (child.connected) child.disconnect();
  child.unref();
  if (result.pidLine) process.stdout.write(`${pid}\n`);
  if (result.text) process.stderr.write(result.text + '\n');
  return result.code;
}

// ---------------------------------------------------------------------------
// Supervisor (foreground)

async function superviseForeground(a: VbladedArgs, loaded: Loaded, settings: DaemonSettings): Promise<void> {
  const handshake = (m: Handshake): void => {
    if (a.supervisorChild && process.connected) process.send!(m);
  };
  const endHandshake = (): void => {
    if (a.supervisorChild && process.connected) process.disconnect();
  };
  const { logger: log, sink } = createLogger(logOptionsOf(settings), { instance: settings.name });
  for (const w of loaded.warnings) log.warn(w);

  let pidFile: PidFile;
  const locks = new ExportLocks(settings.runDir, ({ file, pid }) => log.warn({ file, pid }, `removed stale ${file}${pid ? ` of pid ${pid}, which is gone` : ''}`));
  try {
    fs.mkdirSync(settings.runDir, { recursive: true, mode: 0o755 });
    pidFile = PidFile.acquire(settings.pidFile, {
      what: `instance ${settings.name}`,
      onStale: ({ file, pid }) => log.warn({ file, pid }, `removed stale pid file ${file}${pid ? ` of pid ${pid}, which is gone` : ''}`),
    });
  } catch (e) {
    log.fatal({ err: e }, (e as Error).message);
    handshake({ type: 'failed', message: (e as Error).message });
    sink.flushSync();
    process.exit(1);
  }
  try {
    locks.acquire(loaded.exports.map((e) => ({ key: exportKey(e), interfaces: e.interfaces })));
  } catch (e) {
    log.fatal({ err: e }, (e as Error).message);
    handshake({ type: 'failed', message: (e as Error).message });
    pidFile.release();
    sink.flushSync();
    process.exit(1);
  }
  // Everything is absolute now; do not keep the start directory busy.
  process.chdir('/');

  const notify = new SdNotify();
  const supervisor = new Supervisor({
    workerModule: a.worker ?? path.join(__dirname, '..', 'service', 'worker.js'),
    config: serverConfigOf(loaded.exports, settings),
    log,
    sink,
    logLevel: settings.logLevel,
    backoff: a.backoff ?? DEFAULT_BACKOFF,
    stopTimeoutMs: settings.stopTimeoutSeconds * 1000,
    heartbeatTimeoutMs: a.heartbeatTimeoutMs ?? 30000,
  });

  const statusLine = (): string => {
    const s = supervisor.status();
    return s.ready ? `serving ${s.exports.join(' ')}` : s.restartInMs !== undefined ? `worker down (${s.lastExit?.reason ?? ''}); restart in ${Math.ceil(s.restartInMs / 1000)} s` : 'starting';
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
  const reloadOnce = async (): Promise<unknown> => {
    notify.reloading('reloading');
    sink.reopen();
    log.info('reloading the configuration');
    try {
      let next: Loaded = loaded;
      if (a.mode !== 'args') next = loadExports(a);
      const nextSettings = resolveDaemonSettings(next.fileDaemonKeys, a.daemonKeys, { program: 'vbladed', defaultName: loaded.defaultName, fromEnvironment: a.environmentKeys });
      if (nextSettings.logLevel !== settings.logLevel) {
        log.level = nextSettings.logLevel;
        settings.logLevel = nextSettings.logLevel;
      }
      const restartOnly = (['stateDir', 'runDir', 'pidFile', 'controlSocket', 'controlGroup', 'log', 'logFile', 'logFormat', 'syslogFormat', 'spinMicros', 'mapInMemory'] as const).filter(
        (k) => JSON.stringify(nextSettings[k]) !== JSON.stringify(settings[k]),
      );
      if (JSON.stringify(nextSettings.metrics) !== JSON.stringify(settings.metrics)) restartOnly.push('metrics' as never);
      if (restartOnly.length) log.warn({ settings: restartOnly }, `changed daemon settings take effect at the next start: ${restartOnly.join(', ')}`);
      for (const w of next.warnings) log.warn(w);
      const toDrop = locks.acquire(next.exports.map((e) => ({ key: exportKey(e), interfaces: e.interfaces })));
      const diff = await supervisor.apply(serverConfigOf(next.exports, settings));
      locks.drop(toDrop);
      loaded = next;
      log.info(diff, `reloaded: ${diff.added.length} added (${diff.added.join(' ')}), ${diff.removed.length} removed (${diff.removed.join(' ')}), ${diff.changed.length} changed (${diff.changed.join(' ')})`);
      return diff;
    } catch (e) {
      const msg = e instanceof ConfigError ? e.message : (e as Error).message;
      log.error({ err: e }, `reload failed, still serving the previous configuration: ${msg}`);
      throw new Error(msg);
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
    request: (op, key) => supervisor.request(op, key),
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
    await Promise.all([control?.close(), metrics?.close()].map((p) => p?.catch(() => undefined)));
    locks.releaseAll();
    pidFile.release();
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

  log.info({ exports: loaded.exports.map(describeExport), pidFile: settings.pidFile }, `vbladed ${settings.name} starting (pid ${process.pid})`);
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
      metrics = await MetricsServer.listen({ stats: () => supervisor.request('stats'), supervisor: () => supervisor.status() }, settings.metrics, log);
    } catch (e) {
      log.error({ err: e }, `no metrics listener on ${settings.metrics.host}:${settings.metrics.port}: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------

export async function main(argv: readonly string[]): Promise<void> {
  let a: VbladedArgs;
  try {
    a = parseVbladedArgs(argv);
  } catch (e) {
    process.exit(fail((e as Error).message, true));
  }
  if (a.help) {
    process.stdout.write(vbladedUsage() + '\n');
    return process.exit(0);
  }
  if (a.version) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    process.stdout.write(`vbladed ${(require('../../../package.json') as { version: string }).version}\n`);
    return process.exit(0);
  }
  let loaded: Loaded;
  let settings: DaemonSettings;
  try {
    a.environmentKeys = environmentDaemonKeys();
    loaded = loadExports(a);
    settings = resolveDaemonSettings(loaded.fileDaemonKeys, a.daemonKeys, { program: 'vbladed', defaultName: loaded.defaultName, fromEnvironment: a.environmentKeys });
    const bad = checkDaemonSettings(settings);
    if (bad) throw new UsageError(bad);
  } catch (e) {
    return process.exit(fail((e as Error).message, e instanceof UsageError && a.mode === 'args'));
  }
  if (a.check) {
    for (const w of loaded.warnings) process.stderr.write(`vbladed: warning: ${w}\n`);
    const src = a.configFile ?? 'command line';
    process.stdout.write(`${src}: OK, ${loaded.exports.length} export${loaded.exports.length === 1 ? '' : 's'}\n`);
    for (const e of loaded.exports) process.stdout.write(`  ${describeExport(e)}\n`);
    process.stdout.write(`  instance ${settings.name}, pid file ${settings.pidFile}, state ${settings.stateDir ?? 'in memory only'}, log ${settings.log}${settings.logFile ? ' ' + settings.logFile : ''}\n`);
    return process.exit(0);
  }
  if (!a.foreground) {
    for (const w of loaded.warnings) process.stderr.write(`vbladed: warning: ${w}\n`);
    const busy = precheck(settings, loaded.exports);
    if (busy) return process.exit(fail(busy));
    return process.exit(await launch(argv, settings));
  }
  await superviseForeground(a, loaded, settings);
}
