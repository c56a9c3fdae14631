// The `vblade` command: vblade 25's command line, served in the foreground.
//
//   vblade [-b bufcnt] [-d] [-s] [-r] [-m mac[,mac...]] [-o offset] [-l length] shelf slot netif file
//
// plus long options of our own (--help, --version, --null, --shared,
// --state-dir, --log-level, --log-format, --spin-us, --map-in-memory,
// --duplicate-probe-ms, --announce-interval, --user, --config).

import * as path from 'node:path';
import { suggest } from '../config/values';
import { environmentDaemonKeys, tunablesOf } from '../config/daemon-settings';
import type { ExportConfig, ServerConfig, ServingTunables } from '../config/export-config';
import { keyDef, TUNABLE_KEYS, type DaemonKeys, type LogFormat, type LogLevel } from '../config/keys';
import { renderDaemonHelp } from '../config/render-docs';
import { checkValue, parseValue } from '../config/values';
import { createLogger, escapeForTerminal } from '../service/log';
import { serveInForeground } from '../service/serving-process';
import { parseVbladeArgs, UsageError, VBLADE_USAGE } from '../config/vblade-args';
import { packageVersion } from './version';

export const VBLADE_HELP = `${VBLADE_USAGE}

Export a file or block device as an ATA-over-Ethernet (AoE r11) disk at the
address shelf.slot (e<shelf>.<slot>) on the network interface netif. Runs in
the foreground until SIGTERM or SIGINT; answers every request in flight and
makes written data durable before it exits. Needs CAP_NET_RAW (root).

arguments:
  shelf          AoE shelf (major) address, 0..65534
  slot           AoE slot (minor) address, 0..254
  netif          network interface to serve on, e.g. eth1 (see \`ip link\`)
  file           backing regular file or block device (/dev/sdX, /dev/vg/lv, /dev/loopN)

options (as vblade 25):
  -b bufcnt      Buffer Count advertised to initiators: requests each may keep
                 outstanding (default 16)
  -d             open the backing store with O_DIRECT (bypass the page cache)
  -s             synchronous writes: no write is acknowledged before its data
                 is durable (concurrent writes share one fdatasync)
  -r             export read-only: writes fail with an ATA error
  -m mac[,mac]   initial MAC mask list: only these initiators are answered
  -o offset      sectors (512 bytes) to skip at the start of the file
  -l length      sectors to export (default: to the end of the file)
  Numbers for -b/-o/-l may be decimal, 0x-hexadecimal or 0-octal.

options of aoe-target:
  --config FILE  serve every export of a config file (vblade.conf(5)) by
                 running vbladed --foreground --log=stderr --config FILE:
                 reload on SIGHUP, vbladed's long options, no -b/-d/-s/-r/-m/
                 -o/-l; see vbladed(8)
  --null         serve zeros and drop writes instead of using a file; the file
                 argument is then the size, e.g. 1G, 512M or 2097152 (sectors)
  --shared       another target serving this shelf.slot is intended (hosts
                 of a cluster file system; not failover: docs/failover.md):
                 start even when one answers (vblade.conf: shared = yes)
  --detect-zeroes M  unmap: a write of zeros punches a hole in the file
                 (keeps a sparse file thin); off (default) writes it
                 (vblade.conf: detect-zeroes)
  --nbd-connections N, --remote-timeout S  with file = nbd://HOST/NAME or
                 nbd+unix:///NAME?socket=PATH: connections to the NBD server
                 (default 4) and seconds a request may wait for it (30)
  --ceph-conf F, --ceph-id ID  with file = rbd:POOL/IMAGE: the cluster's
                 ceph.conf (default /etc/ceph/ceph.conf) and the cephx id
                 without client. (default admin); --remote-timeout bounds
                 the connection and each request
  --state-dir D  persist the config string, MAC mask and reserve list in D
                 (owned by this user, mode 0750 or stricter); a change is
                 acknowledged only once saved
  --user USER    started as root: once the file and the socket are open,
                 become USER (and its groups) keeping only CAP_NET_RAW;
                 --state-dir must be writable by USER
  --log-level L  fatal, error, warn, info (default), debug
  --log-format F text: a readable line per record (local time, level,
                 message, key=value fields); json: one pino JSON object per
                 line. Default: text when standard error is a terminal, else json
${renderDaemonHelp(80, TUNABLE_KEYS)}
  -h, --help     show this help
  --version      show the version

  vblade ctl COMMAND   ask a running vbladed or vblade --config; "vblade ctl"
                       alone lists the commands

Start-up prints "pid N: e<shelf>.<slot>, S sectors O_RDWR|O_RDONLY" on
standard output; logs go to standard error (see --log-format).`;

/** The long options, for the message about one that is not. */
const LONG_OPTIONS = [
  'config',
  'null',
  'shared',
  'detect-zeroes',
  'nbd-connections',
  'remote-timeout',
  'ceph-conf',
  'ceph-id',
  'state-dir',
  'user',
  'log-level',
  'log-format',
  ...TUNABLE_KEYS.map((k) => k.key),
  'help',
  'version',
];

const DETECT_ZEROES_KEY = keyDef('export', 'detect-zeroes')!;
/** Export keys of remote stores that vblade takes as long options, checked by their key. */
const REMOTE_KEYS = ['nbd-connections', 'remote-timeout', 'ceph-conf', 'ceph-id'].map((k) => keyDef('export', k)!);

interface LongOptions {
  help: boolean;
  version: boolean;
  nullStore: boolean;
  shared: boolean;
  detectZeroes?: string;
  /** --nbd-connections, --remote-timeout, --ceph-conf, --ceph-id as given, checked. */
  remoteKeys: Partial<Pick<ExportConfig, 'nbdConnections' | 'remoteTimeout' | 'cephConf' | 'cephId'>>;
  stateDir?: string;
  user?: string;
  logLevel: LogLevel;
  /** --log-format as given; unset: text on a terminal, else json. */
  logFormat?: LogFormat;
  /** --spin-us, --map-in-memory and --duplicate-probe-ms as given, checked. */
  tunableKeys: DaemonKeys;
  rest: string[];
}

function takeLongOptions(argv: readonly string[]): LongOptions {
  const o: LongOptions = {
    help: false,
    version: false,
    nullStore: false,
    shared: false,
    remoteKeys: {},
    logLevel: 'info',
    tunableKeys: {},
    rest: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [name, inline] = a.startsWith('--') ? a.split(/=(.*)/s, 2) : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`option ${name} needs a value`);
      return v;
    };
    // The log keys of vbladed, checked the same way.
    const checked = (key: 'log-level' | 'log-format'): string => {
      const v = value();
      const err = checkValue(keyDef('daemon', key)!, v);
      if (err) throw new UsageError(`--${err}`);
      return v;
    };
    const tunable = TUNABLE_KEYS.find((k) => name === `--${k.key}`);
    const remote = REMOTE_KEYS.find((k) => name === `--${k.key}`);
    if (a === '--') {
      o.rest.push(...argv.slice(i));
      break;
    } else if (a === '-h' || name === '--help') o.help = true;
    else if (name === '--version') o.version = true;
    else if (name === '--null') o.nullStore = true;
    else if (name === '--shared') o.shared = true;
    else if (name === '--detect-zeroes') o.detectZeroes = value();
    else if (name === '--state-dir') o.stateDir = value();
    else if (name === '--user') o.user = value();
    else if (name === '--log-level') o.logLevel = checked('log-level') as LogLevel;
    else if (name === '--log-format') o.logFormat = checked('log-format') as LogFormat;
    else if (remote) {
      const v = value();
      const err = checkValue(remote, v);
      if (err) throw new UsageError(`--${err}`);
      const parsed = parseValue(remote, v);
      // A path as given is relative to where vblade runs.
      o.remoteKeys = { ...o.remoteKeys, [remote.field]: remote.type === 'path' ? path.resolve(v) : parsed };
    } else if (tunable) {
      const v = value();
      const err = checkValue(tunable, v);
      if (err) throw new UsageError(`--${err}`);
      o.tunableKeys[tunable.key] = v;
    } else if (name.startsWith('--') && name !== '--config') {
      const known = LONG_OPTIONS.map((k) => `--${k}`);
      throw new UsageError(
        `unknown option ${name}${suggest(name, known)}; vblade's options are -b -d -s -r -m -o -l and ${known.join(' ')} (see vblade --help)`,
      );
    } else o.rest.push(a);
  }
  return o;
}

/** "1G", "512M", "4096K", "1T" (bytes) or a plain number of sectors. */
export function parseNullSize(text: string): number {
  const m = /^(\d+)([KMGT])?$/i.exec(text);
  if (!m) throw new UsageError(`"${text}" is not a size; write e.g. 1G, 512M or a number of sectors`);
  const n = Number(m[1]);
  if (!m[2]) return n;
  const shift = { K: 10, M: 20, G: 30, T: 40 }[m[2].toUpperCase() as 'K' | 'M' | 'G' | 'T'];
  return Math.floor((n * 2 ** shift) / 512);
}

export interface CommandLine {
  help: boolean;
  version: boolean;
  config?: ExportConfig;
  stateDir?: string;
  /** --user: who to become once the file and the socket are open. */
  user?: string;
  logLevel: LogLevel;
  logFormat?: LogFormat;
  /** --spin-us, --map-in-memory and --duplicate-probe-ms as given (the environment is added by main). */
  tunableKeys: DaemonKeys;
}

export function parseCommandLine(argv: readonly string[]): CommandLine {
  const long = takeLongOptions(argv);
  if (long.help || long.version)
    return {
      help: long.help,
      version: long.version,
      logLevel: long.logLevel,
      logFormat: long.logFormat,
      tunableKeys: long.tunableKeys,
    };
  const config = parseVbladeArgs(long.rest);
  if (long.nullStore) {
    config.nullStore = true;
    config.nullSectors = parseNullSize(config.file);
    if (config.nullSectors < 1) throw new UsageError('a null export needs at least one sector');
  }
  if (long.shared) config.shared = true;
  Object.assign(config, long.remoteKeys);
  if (long.detectZeroes !== undefined) {
    const err = checkValue(DETECT_ZEROES_KEY, long.detectZeroes);
    if (err) throw new UsageError(`--${err}`);
    if (long.detectZeroes === 'unmap') config.detectZeroes = 'unmap';
  }
  if (config.detectZeroes === 'unmap' && config.shared)
    throw new UsageError(
      '--detect-zeroes unmap cannot be used with --shared: another writer of the file could lose data written to a block the target frees; drop one of them',
    );
  return {
    help: false,
    version: false,
    config,
    stateDir: long.stateDir,
    user: long.user,
    logLevel: long.logLevel,
    logFormat: long.logFormat,
    tunableKeys: long.tunableKeys,
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'ctl') {
    const { runCtl } = await import('./ctl');
    return runCtl(argv.slice(1));
  }
  if (argv.some((a) => a === '--config' || a.startsWith('--config='))) {
    // Many exports from a config file: vbladed's supervisor, in the foreground.
    const { main: vbladed } = await import('./vbladed');
    await vbladed(['--foreground', '--log=stderr', ...argv]);
    return new Promise<number>(() => undefined); // vbladed exits the process itself
  }
  let parsed: CommandLine;
  try {
    parsed = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      // The message may quote a word of the command line: never its control characters raw.
      process.stderr.write(`vblade: ${escapeForTerminal(e.message)}\n${VBLADE_USAGE}\n`);
      return 1;
    }
    throw e;
  }
  if (parsed.help) {
    process.stdout.write(VBLADE_HELP + '\n');
    return 0;
  }
  if (parsed.version) {
    process.stdout.write(`vblade ${packageVersion()}\n`);
    return 0;
  }
  let tunables: ServingTunables;
  try {
    tunables = tunablesOf(parsed.tunableKeys, environmentDaemonKeys());
  } catch (e) {
    process.stderr.write(`vblade: ${(e as Error).message}\n`);
    return 1;
  }
  // A person at a terminal reads lines; a pipe or a file (a service, a log collector) gets JSON.
  const format = parsed.logFormat ?? (process.stderr.isTTY ? 'text' : 'json');
  const { logger: log } = createLogger(
    { destination: 'stderr', format, level: parsed.logLevel, localTime: true },
    { name: 'vblade' },
  );
  const serverConfig: ServerConfig = { exports: [parsed.config!], stateDir: parsed.stateDir, tunables, user: parsed.user };
  return serveInForeground(serverConfig, log);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`vblade: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
