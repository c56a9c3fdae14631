// vbladed: vblade as a daemon.
//
//   vbladed [daemon options] [vblade options] shelf slot netif file
//   vbladed [daemon options] --config /etc/vblade.conf
//   vbladed [daemon options] --debian-config /etc/vblade.conf.d/NAME.conf
//
// This file turns the command line into settings and loaded exports, then
// hands them on: --check prints them; without --foreground the launcher
// (service/launcher.ts) starts the supervisor detached and returns; with
// --foreground (systemd, or the detached child itself) this process is the
// supervisor (service/daemon.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  checkDaemonSettings,
  environmentDaemonKeys,
  remoteMetricsWarning,
  resolveDaemonSettings,
} from '../config/daemon-settings';
import { KEYS, keyDef, type DaemonKeys, type DaemonSettings } from '../config/keys';
import { renderDaemonHelp } from '../config/render-docs';
import { checkValue } from '../config/values';
import { describeExport, describeGroup, loadExports, type ExportSource, type LoadedExports } from '../config/load';
import { exportKey, type ExportConfig } from '../config/export-config';
import { packageVersion } from './version';
import { UsageError, VBLADE_USAGE } from '../config/vblade-args';
import { loadAddon } from '../native/addon';
import { runDaemon, runDirProblems } from '../service/daemon';
import { preflightExports } from '../target/preflight';
import { problemsAsUser, type UserProblems } from '../target/preflight-as-user';
import { launch, logDestination, precheck } from '../service/launcher';
import { logFileProblem } from '../service/log';
import { ConfigError as ConfigFileError } from '../config/config-file';
import type { Backoff } from '../service/supervisor';
import { checkUserExists } from '../service/privilege';
import { sharedWriterProblems } from '../guard/shared-writers';

// ---------------------------------------------------------------------------
// Command line

/** Long options that are not config keys. */
const FLAGS = {
  config: {
    arg: 'FILE',
    meaning: 'Serve the exports of this config file (vblade.conf(5)) instead of one from the command line.',
  },
  'debian-config': { arg: 'FILE', meaning: 'Serve the one export of a Debian /etc/vblade.conf.d/NAME.conf fragment.' },
  foreground: { meaning: 'Do not detach: run the supervisor in this process (for systemd and debugging).' },
  check: {
    meaning:
      'Check the configuration, open every backing file and look up every interface as serving would, print what would be served, and exit (1 when something cannot be served).',
  },
  help: { meaning: 'Show this help.' },
  version: { meaning: 'Show the version.' },
} as const;

// Hidden options, not in --help: --worker FILE (a test stub worker),
// --backoff MIN,MAX,RESET and --heartbeat-timeout MS (tests),
// --supervisor-child (set by the launcher on the detached child).

export interface VbladedArgs extends ExportSource {
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
      if (![minMs, maxMs, resetAfterMs].every((n) => Number.isFinite(n) && n >= 0))
        throw new UsageError('--backoff needs MIN,MAX,RESET in milliseconds');
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
  } else if (a.vbladeArgv.length === 0 && !a.help && !a.version) {
    // The usual mistake is a forgotten --config, not a forgotten vblade command line.
    throw new UsageError(
      "name what to serve: --config FILE (e.g. vbladed --config /etc/vblade.conf), --debian-config FILE, or vblade's arguments shelf slot netif file",
    );
  }
  return a;
}

export function vbladedUsage(): string {
  const vbladeKeys = KEYS.filter((k) => k.vbladeOption);
  const optArg: Record<string, string> = { '-b': ' bufcnt', '-m': ' mac[,mac...]', '-o': ' offset', '-l': ' length' };
  const vlines = vbladeKeys.map(
    (k) =>
      `  ${(k.vbladeOption! + (optArg[k.vbladeOption!] ?? '')).padEnd(18)}${k.meaning} [default: ${k.defaultText ?? (k.default || 'unset')}]`,
  );
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

/**
 * --check as root with `user =`: each file the other checks passed is opened
 * again as that user (a reload opens added files as the user), so that the
 * verdict is the user's.
 */
function asServingUser(
  exports: readonly ExportConfig[],
  found: readonly string[],
  settings: Pick<DaemonSettings, 'user' | 'stateDir'>,
): UserProblems {
  const user = settings.user;
  if (user === undefined || process.geteuid?.() !== 0 || loadAddon().lookupUser(user)?.uid === 0)
    return { files: [], views: [], state: [] };
  const failed = new Set(found.map((p) => p.slice(0, p.indexOf(':'))));
  return problemsAsUser(
    exports.filter((c) => !failed.has(exportKey(c))),
    user,
    settings.stateDir,
  );
}

function fail(message: string, withUsage = false): number {
  const lines = message
    .split('\n')
    .map((l) => `vbladed: ${l}\n`)
    .join('');
  process.stderr.write(lines + (withUsage ? VBLADE_USAGE.replace('vblade', 'vbladed [daemon options]') + '\n' : ''));
  return 1;
}

/**
 * The systemd service this process runs in (its cgroup's last part, e.g.
 * vblade@disk1.service), or undefined when started by hand.
 */
export function ownServiceUnit(cgroup = readCgroup()): string | undefined {
  for (const line of cgroup.split('\n')) {
    const m = /^0::.*\/([^/]+\.service)$/.exec(line.trim());
    if (m) return m[1];
  }
  return undefined;
}

function readCgroup(): string {
  try {
    return fs.readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return '';
  }
}

/**
 * In the foreground with its log on a terminal (`vblade --config`), a person
 * reads the lines: text unless log-format is set somewhere. Weakest of all
 * sources, so the config's or the command line's log-format wins.
 */
function terminalDefaults(a: VbladedArgs): DaemonKeys {
  return a.foreground && a.daemonKeys.log === 'stderr' && process.stderr.isTTY ? { 'log-format': 'text' } : {};
}

/** Settings from the file's [daemon] keys, the command line and the compatibility environment. */
function settingsOf(a: VbladedArgs, loaded: LoadedExports): DaemonSettings {
  return resolveDaemonSettings(loaded.fileDaemonKeys, a.daemonKeys, {
    program: 'vbladed',
    defaultName: loaded.defaultName,
    fromEnvironment: a.environmentKeys,
  });
}

/** Where the records will go, as --check says it: the route start takes now (syslog may fall back to a file). */
function checkedLogPlace(settings: DaemonSettings): string {
  const detached = logDestination(settings).text;
  if (settings.log !== 'stdout' && settings.log !== 'stderr') return detached;
  return `${settings.log} with --foreground; detached, ${detached}`;
}

/**
 * Start's verdict on the log file the records would go to (nothing made).
 * log = file: start refuses a file it cannot open, a problem. The syslog
 * fallback file (no /dev/log, no journal): only the detached launcher
 * refuses it, in the foreground (the units) records go to standard error,
 * so a warning.
 */
function logFileVerdict(settings: DaemonSettings): { problems: string[]; warnings: string[] } {
  const none = { problems: [], warnings: [] };
  if (settings.log === 'stdout' || settings.log === 'stderr') return none;
  const { file } = logDestination(settings);
  const problem = file === undefined ? undefined : logFileProblem(file);
  if (problem === undefined) return none;
  const said = `cannot open the log file ${file}: ${problem}`;
  if (settings.log === 'file') return { problems: [said], warnings: [] };
  return {
    problems: [],
    warnings: [`${said}; started detached, vbladed refuses to start; in the foreground (the units) it logs to standard error`],
  };
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
    process.stdout.write(`vbladed ${packageVersion()}\n`);
    return process.exit(0);
  }
  let loaded: LoadedExports;
  let settings: DaemonSettings;
  try {
    a.environmentKeys = { ...terminalDefaults(a), ...environmentDaemonKeys() };
    if (a.mode === 'debian') a.systemdUnit = ownServiceUnit();
    loaded = loadExports(a);
    settings = settingsOf(a, loaded);
    const bad = checkDaemonSettings(settings);
    if (bad) throw new UsageError(bad);
    const writers = sharedWriterProblems(loaded.exports);
    if (writers.length > 0) throw new Error(writers.join('\n'));
    if (settings.user !== undefined) checkUserExists(loadAddon(), settings.user);
  } catch (e) {
    const code = fail((e as Error).message, e instanceof UsageError && a.mode === 'args');
    if (a.check && e instanceof ConfigFileError) {
      // The files and interfaces of the exports without a mistake, in the same round; then the count.
      const tried = e.sound.length > 0 ? await preflightExports(e.sound, loadAddon()) : { problems: [], warnings: [] };
      for (const w of tried.warnings) process.stderr.write(`vbladed: warning: ${w}\n`);
      const more = tried.problems;
      for (const p of more) fail(p);
      const n = e.problems.length + more.length;
      fail(
        `${a.configFile ?? 'command line'}: ${n} problem${n === 1 ? '' : 's'}; fix ${n === 1 ? 'it' : 'them'} and check again`,
      );
    }
    return process.exit(code);
  }
  const remote = remoteMetricsWarning(settings);
  const warnings = remote === undefined ? loaded.warnings : [...loaded.warnings, remote];
  if (a.check) {
    for (const w of warnings) process.stderr.write(`vbladed: warning: ${w}\n`);
    const src = a.configFile ?? 'command line';
    // Files and interfaces as the worker would meet them, in this network namespace.
    const preflight = await preflightExports(loaded.exports, loadAddon());
    // Start opens the files as root before becoming the user (so they may stay root's): for the user, a warning.
    const asUser = asServingUser(loaded.exports, preflight.problems, settings);
    const fileWarnings = asUser.files.map(
      (p) =>
        `${p}; start opens it as root before becoming ${settings.user}, so it is served, but a reload that adds or changes this export cannot open it`,
    );
    const logFile = logFileVerdict(settings);
    for (const w of [...preflight.warnings, ...fileWarnings, ...logFile.warnings])
      process.stderr.write(`vbladed: warning: ${w}\n`);
    // The run and state directories as start checks them.
    // Views directories the user cannot make views in: start refuses them too.
    const problems = [...preflight.problems, ...asUser.views, ...runDirProblems(settings), ...asUser.state, ...logFile.problems];
    if (problems.length) {
      for (const p of problems) process.stderr.write(`vbladed: ${p}\n`);
      const n = problems.length;
      return process.exit(fail(`${src}: ${n} problem${n === 1 ? '' : 's'}; fix ${n === 1 ? 'it' : 'them'} and check again`));
    }
    process.stdout.write(`${src}: OK, ${loaded.exports.length} export${loaded.exports.length === 1 ? '' : 's'}\n`);
    for (const e of loaded.exports) process.stdout.write(`  ${describeExport(e)}\n`);
    for (const g of loaded.groups ?? []) process.stdout.write(`  ${describeGroup(g)}\n`);
    if (loaded.configDir && fs.existsSync(loaded.configDir)) process.stdout.write(`  fragments from ${loaded.configDir}\n`);
    process.stdout.write(
      `  instance ${settings.name}, pid file ${settings.pidFile}, state ${settings.stateDir ?? 'in memory only'}, log to ${checkedLogPlace(settings)}\n`,
    );
    return process.exit(0);
  }
  if (!a.foreground) {
    for (const w of warnings) process.stderr.write(`vbladed: warning: ${w}\n`);
    const busy = precheck(settings, loaded.exports);
    if (busy) return process.exit(fail(busy));
    return process.exit(await launch(argv, settings));
  }
  const first = loaded;
  await runDaemon({
    settings,
    loaded,
    reread: () => {
      // Vblade arguments do not change; a file is read again.
      const next = a.mode === 'args' ? first : loadExports(a);
      return { loaded: next, settings: settingsOf(a, next) };
    },
    toLauncher: a.supervisorChild,
    configFiles:
      a.mode === 'config'
        ? {
            configFile: path.resolve(a.configFile!),
            commandLineConfigDir: a.daemonKeys['config-dir'],
            defaultName: loaded.defaultName,
          }
        : undefined,
    workerModule: a.worker,
    backoff: a.backoff,
    heartbeatTimeoutMs: a.heartbeatTimeoutMs,
  });
}
