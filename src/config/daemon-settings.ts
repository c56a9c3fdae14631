// Daemon settings: the [daemon] keys of the file, the long options and the
// environment combined over the table's defaults into DaemonSettings, the
// serving core's tunables picked out of them, and what a reload cannot apply.
// Every mapping from a key to a field comes from the table (keys.ts).

import {
  DAEMON_KEYS,
  KEYS,
  TUNABLE_KEYS,
  type DaemonKeyDef,
  type DaemonKeys,
  type DaemonSettings,
  type LogDestination,
} from './keys';
import { DEFAULT_TUNABLES, type ExportConfig, type ServerConfig, type ServingTunables } from './export-config';
import { checkValue, parseValue, type Value } from './values';

/** What the defaults depend on. */
export interface SettingsContext {
  /** 'vbladed' logs to syslog by default, 'vblade' to stderr. */
  program: 'vblade' | 'vbladed';
  /** Instance name when `name` is not set. */
  defaultName: string;
  /** Keys taken from environment variables (environmentDaemonKeys); weaker than the file and the command line. */
  fromEnvironment?: DaemonKeys;
}

/**
 * The values of keys that have an environment variable (AOE_SPIN_US,
 * AOE_MAP), checked like the file's. The only place those variables are
 * read; the command lines call it once at start. Throws an Error that names
 * the variable when a value is not valid.
 */
export function environmentDaemonKeys(env: NodeJS.ProcessEnv = process.env): DaemonKeys {
  const keys: DaemonKeys = {};
  for (const def of KEYS) {
    const value = def.environment ? env[def.environment] : undefined;
    if (value === undefined || value === '') continue;
    const err = checkValue(def, value);
    if (err)
      throw new Error(
        `${def.environment}=${value} in the environment: ${err}; fix or unset ${def.environment} (--${def.key} and the config file's ${def.key} win over it)`,
      );
    keys[def.key] = value;
  }
  return keys;
}

/** Defaults that depend on other settings: used when the key is unset (the table's defaultText says them in words). */
const COMPUTED_DEFAULTS: Partial<Record<string, (s: Partial<DaemonSettings>, ctx: SettingsContext) => Value>> = {
  name: (_s, ctx) => ctx.defaultName,
  'pid-file': (s) => `${s.runDir}/${s.name}.pid`,
  'control-socket': (s) => `${s.runDir}/${s.name}.sock`,
};

/**
 * Resolves daemon settings: command-line values win over the file's
 * [daemon] keys, which win over environment variables, which win over the
 * table's defaults. Values must already have been checked with checkValue
 * (parseConfigFile, the CLI and environmentDaemonKeys do).
 */
export function resolveDaemonSettings(fromFile: DaemonKeys, fromCli: DaemonKeys, ctx: SettingsContext): DaemonSettings {
  // Filled field by field from the table, in its order (computed defaults need the keys above them).
  const s: Partial<Record<keyof DaemonSettings, Value>> = {};
  for (const def of DAEMON_KEYS) {
    const text = fromCli[def.key] || fromFile[def.key] || ctx.fromEnvironment?.[def.key] || def.default;
    const value = text === '' ? COMPUTED_DEFAULTS[def.key]?.(s as Partial<DaemonSettings>, ctx) : parseValue(def, text);
    if (value !== undefined) s[def.field] = value;
  }
  const settings = s as unknown as DaemonSettings;
  if (settings.log === 'auto') settings.log = autoLog(settings, ctx);
  return settings;
}

/** log = auto: a file when log-file is set, else syslog for vbladed and stderr for vblade. */
function autoLog(s: DaemonSettings, ctx: SettingsContext): LogDestination {
  if (s.logFile) return 'file';
  return ctx.program === 'vbladed' ? 'syslog' : 'stderr';
}

/** Settings problems that need several keys together (e.g. log = file without log-file). */
export function checkDaemonSettings(s: DaemonSettings): string | undefined {
  if (s.log === 'file' && !s.logFile) return 'log = file needs log-file; set log-file = /var/log/vblade.log (or --log-file)';
  return undefined;
}

/** Whether `host` (an address or a name as written) is a loopback address of this host. */
function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

/** A warning (what is wrong and what to do) when metrics listen where others than this host may reach them and that was not acknowledged. */
export function remoteMetricsWarning(s: DaemonSettings): string | undefined {
  const m = s.metrics;
  if (m === undefined || s.metricsAllowRemote || isLoopback(m.host)) return undefined;
  const at = `${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.port}`;
  const where = ['0.0.0.0', '::'].includes(m.host) ? 'listens on every address of this host' : 'is not a loopback address';
  return (
    `metrics = ${at} ${where}: anyone who can reach port ${m.port} can read the metrics (export names and files, counters) ` +
    `and make the daemon answer; bind 127.0.0.1:${m.port} (a Prometheus on this host, or a tunnel to it), ` +
    `or let only your Prometheus reach the port (a firewall rule, or IPAddressAllow= in the systemd unit) and set metrics-allow-remote = yes`
  );
}

/** The [daemon] keys whose value differs between two settings and that only a restart applies, in table order. */
export function changesNeedingRestart(running: DaemonSettings, next: DaemonSettings): string[] {
  const differs = (def: DaemonKeyDef): boolean => JSON.stringify(next[def.field]) !== JSON.stringify(running[def.field]);
  return DAEMON_KEYS.filter((def) => def.reload === 'restart' && differs(def)).map((def) => def.key);
}

/** The tunables: the first of the layers that sets a key wins (vblade: its long options, then the environment), then the default. */
export function tunablesOf(...layers: DaemonKeys[]): ServingTunables {
  const t: Partial<Record<keyof ServingTunables, Value>> = { ...DEFAULT_TUNABLES };
  for (const def of TUNABLE_KEYS) {
    const text = layers.map((keys) => keys[def.key]).find((v) => v !== undefined);
    if (text !== undefined) t[def.field as keyof ServingTunables] = parseValue(def, text);
  }
  return t as ServingTunables;
}

/** The tunables among the daemon settings. */
function tunablesIn(settings: DaemonSettings): ServingTunables {
  const t: Partial<Record<keyof ServingTunables, Value>> = {};
  for (const def of TUNABLE_KEYS) {
    const field = def.field as keyof ServingTunables;
    t[field] = settings[field];
  }
  return t as ServingTunables;
}

/** What the worker is handed: the exports and the settings the serving process needs. */
export function serverConfigOf(list: ExportConfig[], settings: DaemonSettings): ServerConfig {
  const c: ServerConfig = { exports: list, tunables: tunablesIn(settings) };
  if (settings.stateDir) c.stateDir = settings.stateDir;
  if (settings.user) c.user = settings.user;
  return c;
}
