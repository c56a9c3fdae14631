// The multi-export config file (/etc/vblade.conf): format, the one table of
// keys, a pure parser/validator, and the renderers that turn the table into
// `vbladed --help`, systemd/vblade.conf.example and docs/vblade.conf.5.
//
// Format (documented in vblade.conf(5), rendered below):
//
//   # a comment (also ';')
//   [daemon]
//   state-dir = /var/lib/vblade
//
//   [export e1.1]
//   file = /srv/vblade/disk1.img
//   interfaces = eth1 eth2    # two paths to one disk
//
// A value runs from after '=' to the end of the line or to a comment, trimmed;
// a comment starts with # or ; at the start of a line or after a blank outside
// double quotes (so file = /srv/disk#1.img keeps its #). Write a value in
// double quotes to keep leading or trailing spaces. Keys and sections are
// case-sensitive lower case. Relative paths are taken relative to the
// directory of the config file (only path arithmetic: no file is touched).

import * as path from 'node:path';
import { MAC_LIST_CAPACITY } from '../aoe/constants';
import type { ExportConfig, ServerConfig } from './export-config';
import {
  DEFAULT_TUNABLES,
  MAX_ANNOUNCE_SECONDS,
  MAX_DUPLICATE_PROBE_MS,
  MAX_SPIN_MICROS,
  SPIN_POLICIES,
  exportKey,
  type SpinPolicyName,
} from './export-config';
import {
  DEFAULT_BUFFER_COUNT,
  MAX_BUFFER_COUNT,
  MAX_SHELF,
  MAX_SLOT,
  parseInterfaceName,
  parseMacList,
  parseShelf,
  parseSlot,
} from './vblade-args';

/** One problem found in a config file. */
export interface ConfigProblem {
  file: string;
  /** 1-based; 0 when the problem is about the whole file. */
  line: number;
  message: string;
}

/** Every problem of one file, in line order; `message` lists them one per line as file:line: text. */
export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  return p.line > 0 ? `${p.file}:${p.line}: ${p.message}` : `${p.file}: ${p.message}`;
}

// ---------------------------------------------------------------------------
// The table

export type ValueType = 'string' | 'path' | 'bool' | 'count' | 'sectors' | 'enum' | 'interfaces' | 'macs' | 'listen';

export interface KeyDef {
  key: string;
  section: 'daemon' | 'export';
  type: ValueType;
  /** The default as one would write it in the file; '' = unset. */
  default: string;
  /** How the default reads in help and docs when it is computed or unset. */
  defaultText?: string;
  /** One line: what the key does. */
  meaning: string;
  /** Allowed values of an enum. */
  values?: readonly string[];
  /** The matching vblade option, for the docs. */
  vbladeOption?: string;
  /** Placeholder for the value in --help (e.g. DIR). */
  arg?: string;
  /** Export keys that must be present. */
  required?: boolean;
  /** Smallest and largest value of a count. */
  range?: readonly [number, number];
  /** An environment variable read as this key's value when neither the file nor the command line sets it (kept for scripts that used it before the key existed). */
  environment?: string;
}

export const LOG_DESTINATIONS = ['auto', 'stdout', 'stderr', 'syslog', 'file'] as const;
export const LOG_FORMATS = ['json', 'text'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const SYSLOG_FORMATS = ['rfc3164', 'rfc5424'] as const;

export const KEYS: readonly KeyDef[] = [
  // [daemon]: also the long options of vbladed (--state-dir DIR ...).
  {
    key: 'name',
    section: 'daemon',
    type: 'string',
    default: '',
    arg: 'NAME',
    defaultText: 'the config file name without .conf; eS.L@NETIF on the command line',
    meaning: 'Instance name: names the pid file and control socket and tells instances apart in the log.',
  },
  {
    key: 'state-dir',
    section: 'daemon',
    type: 'path',
    default: '/var/lib/vblade',
    arg: 'DIR',
    meaning:
      'Where config strings, MAC masks and reservations are kept across restarts; "none" keeps them in memory only. Must belong to the daemon\'s user and be writable by nobody else (mode 0750 or stricter).',
  },
  {
    key: 'run-dir',
    section: 'daemon',
    type: 'path',
    default: '/run/vblade',
    arg: 'DIR',
    meaning:
      "Directory for the pid file, the control socket and the per-export lock files. Must belong to the daemon's user and be writable by nobody else (e.g. mode 0755).",
  },
  {
    key: 'pid-file',
    section: 'daemon',
    type: 'path',
    default: '',
    arg: 'FILE',
    defaultText: 'RUN-DIR/NAME.pid',
    meaning: 'The supervisor writes its pid here and removes the file on exit.',
  },
  {
    key: 'control-socket',
    section: 'daemon',
    type: 'path',
    default: '',
    arg: 'FILE',
    defaultText: 'RUN-DIR/NAME.sock',
    meaning: 'Unix socket for "vblade ctl"; "none" turns it off.',
  },
  {
    key: 'control-group',
    section: 'daemon',
    type: 'string',
    default: '',
    arg: 'GROUP',
    defaultText: "the daemon's own group",
    meaning: 'Group that owns the control socket (mode 0660); its members may run "vblade ctl".',
  },
  {
    key: 'metrics',
    section: 'daemon',
    type: 'listen',
    default: '',
    arg: 'HOST:PORT',
    defaultText: 'off',
    meaning: 'Serve Prometheus metrics over HTTP at this address, e.g. 127.0.0.1:9469.',
  },
  {
    key: 'log',
    section: 'daemon',
    type: 'enum',
    default: 'auto',
    values: LOG_DESTINATIONS,
    arg: 'WHERE',
    meaning:
      'Log destination; auto = file when log-file is set, else syslog for vbladed and stderr for vblade. syslog without /dev/log goes to the journal socket, else to log-file.',
  },
  {
    key: 'log-file',
    section: 'daemon',
    type: 'path',
    default: '',
    arg: 'FILE',
    defaultText: 'unset; the syslog fallback is /var/log/vblade/NAME.log',
    meaning:
      'Append the log to this file; reopened on SIGHUP so log rotation works. With log = syslog, where records go when there is no /dev/log and no journal socket.',
  },
  {
    key: 'log-format',
    section: 'daemon',
    type: 'enum',
    default: 'json',
    values: LOG_FORMATS,
    arg: 'FORMAT',
    meaning: 'json: one pino JSON object per line; text: a readable line per record.',
  },
  {
    key: 'log-level',
    section: 'daemon',
    type: 'enum',
    default: 'info',
    values: LOG_LEVELS,
    arg: 'LEVEL',
    meaning: 'Least severe level that is logged.',
  },
  {
    key: 'syslog-format',
    section: 'daemon',
    type: 'enum',
    default: 'rfc3164',
    values: SYSLOG_FORMATS,
    arg: 'FORMAT',
    meaning: 'Framing of records sent to /dev/log with the tag vbladed.',
  },
  {
    key: 'stop-timeout',
    section: 'daemon',
    type: 'count',
    default: '30',
    arg: 'SECONDS',
    meaning: 'On SIGTERM, how long to wait for in-flight writes to finish before killing the worker.',
  },
  {
    key: 'spin-us',
    section: 'daemon',
    type: 'count',
    default: String(DEFAULT_TUNABLES.spinMicros),
    arg: 'MICROSECONDS',
    range: [0, MAX_SPIN_MICROS],
    environment: 'AOE_SPIN_US',
    meaning: `After each batch of requests, how many microseconds (0..${MAX_SPIN_MICROS}) the server keeps polling for more before it sleeps; more saves a wake-up under dense load and costs CPU.`,
  },
  {
    key: 'spin-policy',
    section: 'daemon',
    type: 'enum',
    default: DEFAULT_TUNABLES.spinPolicy,
    values: SPIN_POLICIES,
    arg: 'adaptive|always',
    meaning:
      'adaptive: poll (spin-us) only while polls find the next frame, and pause polling when they do not (a CPU shared with the initiator or other work, a slow initiator); always: poll after every batch.',
  },
  {
    key: 'map-in-memory',
    section: 'daemon',
    type: 'bool',
    default: DEFAULT_TUNABLES.mapInMemory ? 'yes' : 'no',
    arg: 'yes|no',
    environment: 'AOE_MAP',
    meaning:
      'Map backing files that live on tmpfs or ramfs into memory so a request is one copy (files with holes are never mapped).',
  },
  {
    key: 'duplicate-probe-ms',
    section: 'daemon',
    type: 'count',
    default: String(DEFAULT_TUNABLES.duplicateProbeMs),
    arg: 'MILLISECONDS',
    range: [0, MAX_DUPLICATE_PROBE_MS],
    meaning: `At start-up, how long (0..${MAX_DUPLICATE_PROBE_MS} ms) to wait for another target answering one of our shelf.slot addresses on an interface, or another process of ours serving it on this host; such an export is not served unless shared = yes. 0 does not look.`,
  },
  {
    key: 'user',
    section: 'daemon',
    type: 'string',
    default: '',
    arg: 'USER',
    defaultText: 'stay the user that started it',
    meaning:
      'Started as root, the serving process switches to this user (and its groups) once its backing files and sockets are open, keeping only CAP_NET_RAW. state-dir and the files of exports added by a reload must be usable by the user.',
  },
  {
    key: 'announce-interval',
    section: 'daemon',
    type: 'count',
    default: String(DEFAULT_TUNABLES.announceSeconds),
    arg: 'SECONDS',
    range: [0, MAX_ANNOUNCE_SECONDS],
    meaning:
      'Seconds between unsolicited announcements of every export on every interface that is up, so that initiators started before the target find it without waiting for their next discovery (Linux: 60 s); 0 announces only at start, on link up and when an export is added.',
  },

  // [export eS.L]
  {
    key: 'file',
    section: 'export',
    type: 'path',
    default: '',
    required: true,
    defaultText: 'required unless null-store = yes',
    meaning: 'Backing file or block device.',
  },
  {
    key: 'interfaces',
    section: 'export',
    type: 'interfaces',
    default: '',
    required: true,
    defaultText: 'required',
    meaning:
      'Network interfaces to serve on, separated by spaces or commas; several are several paths to one disk. One that does not exist (yet) is waited for while the others serve.',
  },
  {
    key: 'read-only',
    section: 'export',
    type: 'bool',
    default: 'no',
    vbladeOption: '-r',
    meaning: 'Refuse writes.',
  },
  {
    key: 'direct',
    section: 'export',
    type: 'bool',
    default: 'no',
    vbladeOption: '-d',
    meaning: 'Open the backing store with O_DIRECT (bypass the page cache).',
  },
  {
    key: 'sync',
    section: 'export',
    type: 'bool',
    default: 'no',
    vbladeOption: '-s',
    meaning: 'Acknowledge a write only once it is on stable storage.',
  },
  {
    key: 'offset',
    section: 'export',
    type: 'sectors',
    default: '0',
    vbladeOption: '-o',
    meaning: 'Sectors (512 bytes) to skip at the start of the backing store.',
  },
  {
    key: 'length',
    section: 'export',
    type: 'sectors',
    default: '',
    vbladeOption: '-l',
    defaultText: 'to the end of the backing store',
    meaning: 'Sectors to export, starting at offset.',
  },
  {
    key: 'mac-mask',
    section: 'export',
    type: 'macs',
    default: '',
    vbladeOption: '-m',
    defaultText: 'empty: every initiator',
    meaning: `Initiator MACs allowed to use the export, separated by spaces or commas (at most ${MAC_LIST_CAPACITY}); a value changed here wins over the saved mask (at start and on reload), otherwise the saved mask wins.`,
  },
  {
    key: 'broadcast-edits',
    section: 'export',
    type: 'bool',
    default: 'no',
    meaning:
      'Take MAC mask edits and reserve sets sent to the broadcast shelf or slot; by default they must name this export exactly (one forged broadcast frame must not lock everyone out of every export).',
  },
  {
    key: 'buffer-count',
    section: 'export',
    type: 'count',
    default: String(DEFAULT_BUFFER_COUNT),
    vbladeOption: '-b',
    range: [1, MAX_BUFFER_COUNT],
    meaning: `Buffer Count advertised to initiators: requests each may keep outstanding (1..${MAX_BUFFER_COUNT}).`,
  },
  {
    key: 'shared',
    section: 'export',
    type: 'bool',
    default: 'no',
    meaning:
      'Another writer of this disk is intended (a cluster file system, an active-active failover pair): allow another read-write export of the same file (when it says shared = yes too) and another target answering this shelf.slot (vblade: --shared).',
  },
  {
    key: 'views',
    section: 'export',
    type: 'enum',
    default: 'none',
    values: ['none', 'per-initiator'],
    meaning:
      'per-initiator: each initiator MAC reads and writes its own copy-on-write clone of file (made on its first ATA request, normally IDENTIFY; kept across restarts), and file itself is never written; needs views-dir on the same reflink file system (XFS made with mkfs.xfs -m reflink=1, or btrfs).',
  },
  {
    key: 'views-dir',
    section: 'export',
    type: 'path',
    default: '',
    defaultText: 'required with views = per-initiator',
    meaning:
      'Directory of the views and snapshots (one subdirectory per export, created if missing); on the same file system as file, which must make reflinks.',
  },
  {
    key: 'null-store',
    section: 'export',
    type: 'bool',
    default: 'no',
    meaning: 'Serve zeros and drop writes without touching storage (network tests); needs null-sectors, ignores file.',
  },
  {
    key: 'null-sectors',
    section: 'export',
    type: 'sectors',
    default: '',
    defaultText: 'required with null-store',
    meaning: 'Size of a null store in sectors.',
  },
];

export function keyDef(section: 'daemon' | 'export', key: string): KeyDef | undefined {
  return KEYS.find((k) => k.section === section && k.key === key);
}

// ---------------------------------------------------------------------------
// Settled values

export type LogDestination = (typeof LOG_DESTINATIONS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type SyslogFormat = (typeof SYSLOG_FORMATS)[number];

/** The [daemon] section as written: only the keys that were set, as strings. */
export type DaemonKeys = Partial<Record<string, string>>;

/** The daemon settings with every default applied. */
export interface DaemonSettings {
  name: string;
  /** undefined = in memory only. */
  stateDir?: string;
  runDir: string;
  pidFile: string;
  /** undefined = no control socket. */
  controlSocket?: string;
  controlGroup?: string;
  /** host and port, or undefined = off. */
  metrics?: { host: string; port: number };
  log: LogDestination;
  logFile?: string;
  logFormat: LogFormat;
  logLevel: LogLevel;
  syslogFormat: SyslogFormat;
  stopTimeoutSeconds: number;
  spinMicros: number;
  spinPolicy: SpinPolicyName;
  mapInMemory: boolean;
  duplicateProbeMs: number;
  /** undefined = stay the user that started the daemon. */
  user?: string;
  announceSeconds: number;
}

/** What a config file declares. */
export interface ConfigFile {
  file: string;
  daemon: DaemonKeys;
  /** Line of each daemon key, for messages. */
  daemonLines: Record<string, number>;
  exports: ExportConfig[];
}

export const BOOL_WORDS: Record<string, boolean> = {
  yes: true,
  true: true,
  on: true,
  '1': true,
  no: false,
  false: false,
  off: false,
  '0': false,
};

/** Decimal or 0x hexadecimal, no sign, up to Number.MAX_SAFE_INTEGER. Leading zeros are decimal (no octal surprise). */
export function parseConfigInteger(s: string): number | undefined {
  let big: bigint;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) big = BigInt(s.toLowerCase());
  else if (/^[0-9]+$/.test(s)) big = BigInt(s);
  else return undefined;
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(big);
}

/** "host:port" or "[v6]:port" → parts; throws a message on error. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):([0-9]+)$/.exec(s);
  if (!m) throw new Error(`"${s}" is not HOST:PORT; write e.g. 127.0.0.1:9469 or [::1]:9469`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`port ${m[3]} is out of range; use 1..65535`);
  return { host: m[1] ?? m[2], port };
}

/** Splits a list value on spaces and commas. */
function splitList(v: string): string[] {
  return v.split(/[\s,]+/).filter((x) => x !== '');
}

/** Checks one value against its key's type; returns an error message or undefined. */
export function checkValue(def: KeyDef, value: string): string | undefined {
  switch (def.type) {
    case 'bool':
      if (!(value.toLowerCase() in BOOL_WORDS)) return `${def.key} = "${value}" is not yes or no; write yes or no`;
      return undefined;
    case 'enum':
      if (!def.values!.includes(value))
        return `${def.key} = "${value}" is not one of ${def.values!.join(', ')}; pick one of them`;
      return undefined;
    case 'count': {
      const n = parseConfigInteger(value);
      if (n === undefined)
        return `${def.key} = "${value}" is not a whole number; write digits, e.g. ${def.key} = ${def.default || '1'}`;
      if (def.range && (n < def.range[0] || n > def.range[1])) {
        return `${def.key} = ${value} is out of range; use ${def.range[0]}..${def.range[1]}`;
      }
      return undefined;
    }
    case 'sectors': {
      const n = parseConfigInteger(value);
      if (n === undefined) {
        return `${def.key} = "${value}" is not a sector count; write a whole number of 512-byte sectors (decimal or 0x hex)`;
      }
      if ((def.key === 'length' || def.key === 'null-sectors') && n < 1) {
        return `${def.key} = 0 exports nothing; give at least 1 sector${def.key === 'length' ? ' or leave length out to export to the end' : ''}`;
      }
      return undefined;
    }
    case 'listen':
      if (value === '' || value === 'off') return undefined;
      try {
        parseListen(value);
        return undefined;
      } catch (e) {
        return `${def.key}: ${(e as Error).message}`;
      }
    case 'interfaces': {
      const names = splitList(value);
      if (names.length === 0) return 'interfaces is empty; list at least one interface, e.g. interfaces = eth1';
      const seen = new Set<string>();
      for (const n of names) {
        try {
          parseInterfaceName(n);
        } catch (e) {
          return (e as Error).message;
        }
        if (seen.has(n)) return `interface ${n} is listed twice; list each interface once`;
        seen.add(n);
      }
      return undefined;
    }
    case 'macs':
      try {
        parseMacList(splitList(value).join(','), 'mac-mask');
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    case 'path':
    case 'string':
      if (/[\0\n]/.test(value)) return `${def.key} contains a control character; remove it`;
      return undefined;
  }
}

// ---------------------------------------------------------------------------
// Parsing

/** Edit distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length];
}

function suggest(word: string, candidates: readonly string[]): string {
  let best = '';
  let bestD = 3;
  for (const c of candidates) {
    const dd = distance(word, c);
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

/**
 * The value part of a key = value line without its trailing comment: from the
 * first # or ; that follows a blank outside double quotes. Unbalanced quotes
 * are left for unquote() to report.
 */
export function withoutTrailingComment(text: string): string {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && (c === '#' || c === ';') && i > 0 && /[ \t]/.test(text[i - 1])) return text.slice(0, i);
  }
  return text;
}

function unquote(v: string): string | undefined {
  if (v.length >= 2 && v[0] === '"' && v[v.length - 1] === '"') {
    const inner = v.slice(1, -1);
    if (/(^|[^\\])"/.test(inner)) return undefined;
    return inner.replace(/\\(["\\])/g, '$1');
  }
  if (v.startsWith('"')) return undefined;
  return v;
}

interface Section {
  kind: 'daemon' | 'export';
  line: number;
  name: string;
  shelf?: number;
  slot?: number;
  values: Map<string, { value: string; line: number }>;
  /** Keys whose line had an error (already reported; not "missing"). */
  bad: Set<string>;
}

const SECTION_HELP = 'sections are [daemon] and [export eSHELF.SLOT], e.g. [export e1.1]';

/**
 * Parses and validates the text of a config file. Collects every problem and
 * throws one ConfigError listing them; returns only a fully valid result.
 */
export function parseConfigFile(text: string, file: string): ConfigFile {
  const problems: ConfigProblem[] = [];
  const problem = (line: number, message: string): void => {
    problems.push({ file, line, message });
  };
  const sections: Section[] = [];
  let current: Section | undefined;
  let daemonSeen: Section | undefined;

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i].replace(/\r$/, '').trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;

    if (line[0] === '[') {
      const m = /^\[\s*([a-z]+)(?:\s+(\S+))?\s*\]$/.exec(line);
      if (!m) {
        problem(lineNo, `"${line}" is not a section header; ${SECTION_HELP}`);
        current = undefined;
        continue;
      }
      const [, kind, name] = m;
      if (kind === 'daemon') {
        if (name !== undefined) {
          problem(lineNo, `[daemon] takes no name; write just [daemon]`);
        }
        if (daemonSeen) {
          problem(lineNo, `[daemon] appears twice (first on line ${daemonSeen.line}); merge the two sections`);
        }
        current = { kind: 'daemon', line: lineNo, name: 'daemon', values: new Map(), bad: new Set() };
        daemonSeen ??= current;
        sections.push(current);
        continue;
      }
      if (kind === 'export') {
        current = { kind: 'export', line: lineNo, name: name ?? '', values: new Map(), bad: new Set() };
        sections.push(current);
        const am = name === undefined ? null : /^e?([0-9]+)\.([0-9]+)$/.exec(name);
        if (!am) {
          problem(
            lineNo,
            name === undefined
              ? `[export] needs the export's address; write [export eSHELF.SLOT], e.g. [export e1.1]`
              : `"${name}" is not an export address; write eSHELF.SLOT, e.g. [export e1.1]`,
          );
          continue;
        }
        try {
          current.shelf = parseShelf(am[1]);
          current.slot = parseSlot(am[2]);
        } catch (e) {
          problem(lineNo, (e as Error).message);
        }
        continue;
      }
      problem(
        lineNo,
        `unknown section [${kind}${name ? ' ' + name : ''}]${suggest(kind, ['daemon', 'export'])}; ${SECTION_HELP}`,
      );
      current = undefined;
      continue;
    }

    const eq = line.indexOf('=');
    if (eq < 0) {
      problem(lineNo, `"${line}" is not a key = value line; write key = value, or start a comment with #`);
      continue;
    }
    const key = line.slice(0, eq).trim();
    const raw = withoutTrailingComment(line.slice(eq + 1)).trim();
    if (!current) {
      if (sections.length === 0)
        problem(lineNo, `"${key}" is outside any section; put it under [daemon] or [export eSHELF.SLOT]`);
      // After a bad header the problem is already reported; skip the body.
      continue;
    }
    const known = KEYS.filter((k) => k.section === current!.kind).map((k) => k.key);
    const def = keyDef(current.kind, key);
    const where = current.kind === 'daemon' ? '[daemon]' : `[export ${current.name}]`;
    if (!def) {
      const other = keyDef(current.kind === 'daemon' ? 'export' : 'daemon', key);
      const hint = other
        ? `; ${key} belongs in ${other.section === 'daemon' ? '[daemon]' : 'an [export] section'}`
        : `${suggest(key, known)}; known keys: ${known.join(', ')}`;
      problem(lineNo, `unknown key "${key}" in ${where}${hint}`);
      continue;
    }
    const value = unquote(raw);
    if (value === undefined) {
      problem(
        lineNo,
        `unbalanced quotes in the value of ${key}; quote the whole value as "..." and write \\" for a quote inside`,
      );
      current.bad.add(key);
      continue;
    }
    const prev = current.values.get(key);
    if (prev) {
      problem(lineNo, `${key} is set twice in ${where} (first on line ${prev.line}); keep one`);
      continue;
    }
    if (value !== '') {
      const err = checkValue(def, value);
      if (err) {
        problem(lineNo, err);
        current.bad.add(key);
        continue;
      }
    }
    current.values.set(key, { value, line: lineNo });
  }

  const declared: ExportConfig[] = [];
  const byKey = new Map<string, number>();
  const daemon: DaemonKeys = {};
  const daemonLines: Record<string, number> = {};
  for (const s of sections) {
    if (s.kind === 'daemon') {
      for (const [k, v] of s.values) {
        const def = keyDef('daemon', k)!;
        daemon[k] =
          def.type === 'path' && v.value !== '' && v.value !== 'none' ? path.resolve(path.dirname(file), v.value) : v.value;
        daemonLines[k] = v.line;
      }
      continue;
    }
    if (s.shelf === undefined || s.slot === undefined) continue;
    const key = exportKey({ shelf: s.shelf, slot: s.slot });
    const first = byKey.get(key);
    if (first !== undefined) {
      problem(
        s.line,
        `export ${key} is declared twice (first on line ${first}); one section per export, list all its interfaces there`,
      );
      continue;
    }
    byKey.set(key, s.line);
    const e = exportFromSection(s, file, problem);
    if (e) declared.push(e);
  }
  if (problems.length === 0 && declared.length === 0) {
    problem(0, 'declares no export; add an [export eSHELF.SLOT] section with file and interfaces');
  }
  if (problems.length) {
    problems.sort((a, b) => a.line - b.line);
    throw new ConfigError(problems);
  }
  return { file, daemon, daemonLines, exports: declared };
}

function exportFromSection(
  s: Section,
  configFile: string,
  problem: (line: number, message: string) => void,
): ExportConfig | undefined {
  const get = (k: string): string | undefined => {
    const v = s.values.get(k)?.value;
    return v === '' ? undefined : v;
  };
  const bool = (k: string): boolean => BOOL_WORDS[(get(k) ?? keyDef('export', k)!.default).toLowerCase()];
  const int = (k: string): number | undefined => {
    const v = get(k);
    return v === undefined ? undefined : parseConfigInteger(v);
  };
  const where = `[export ${s.name}]`;
  const nullStore = bool('null-store');
  let ok = true;
  const file = get('file');
  if (file === undefined && !nullStore && !s.bad.has('file')) {
    problem(s.line, `${where} has no file; add file = /path/to/image-or-device`);
    ok = false;
  }
  const ifs = get('interfaces');
  if (ifs === undefined) {
    if (!s.bad.has('interfaces')) problem(s.line, `${where} has no interfaces; add interfaces = eth1 (several may be listed)`);
    ok = false;
  }
  const nullSectors = int('null-sectors');
  if (nullStore && nullSectors === undefined && !s.bad.has('null-sectors')) {
    problem(s.line, `${where} has null-store = yes but no null-sectors; add null-sectors = SIZE (in 512-byte sectors)`);
    ok = false;
  }
  if (!nullStore && nullSectors !== undefined) {
    problem(
      s.values.get('null-sectors')!.line,
      `null-sectors is set but null-store is not; add null-store = yes or remove null-sectors`,
    );
    ok = false;
  }
  const views = get('views') ?? 'none';
  const viewsDir = get('views-dir');
  if (views === 'per-initiator' && viewsDir === undefined && !s.bad.has('views-dir')) {
    problem(
      s.values.get('views')!.line,
      `views = per-initiator needs views-dir; add views-dir = /srv/aoe/views (on the same file system as file)`,
    );
    ok = false;
  }
  if (views === 'per-initiator' && nullStore) {
    problem(s.values.get('views')!.line, `views = per-initiator cannot be used with null-store = yes; remove one of them`);
    ok = false;
  }
  if (!ok) return undefined;
  const macs = splitList(get('mac-mask') ?? '');
  const e: ExportConfig = {
    shelf: s.shelf!,
    slot: s.slot!,
    file: file === undefined ? '' : path.resolve(path.dirname(configFile), file),
    interfaces: splitList(ifs!),
    readOnly: bool('read-only'),
    direct: bool('direct'),
    sync: bool('sync'),
    offsetSectors: int('offset') ?? 0,
    macMask: macs.length ? parseMacList(macs.join(','), 'mac-mask', []) : [],
    broadcastEdits: bool('broadcast-edits'),
    bufferCount: int('buffer-count') ?? DEFAULT_BUFFER_COUNT,
    nullStore,
  };
  const length = int('length');
  if (length !== undefined) e.lengthSectors = length;
  if (bool('shared')) e.shared = true;
  if (nullSectors !== undefined) e.nullSectors = nullSectors;
  if (views === 'per-initiator') e.views = views;
  if (viewsDir !== undefined) e.viewsDir = path.resolve(path.dirname(configFile), viewsDir);
  return e;
}

// ---------------------------------------------------------------------------
// Daemon settings: defaults, file values and command-line values combined

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

/**
 * Resolves daemon settings: command-line values win over the file's
 * [daemon] keys, which win over environment variables, which win over the
 * table's defaults. Values must already have been checked with checkValue
 * (parseConfigFile, the CLI and environmentDaemonKeys do).
 */
export function resolveDaemonSettings(fromFile: DaemonKeys, fromCli: DaemonKeys, ctx: SettingsContext): DaemonSettings {
  const value = (k: string): string => fromCli[k] || fromFile[k] || ctx.fromEnvironment?.[k] || keyDef('daemon', k)!.default;
  const name = value('name') || ctx.defaultName;
  const runDir = value('run-dir') || '/run/vblade';
  const stateDir = value('state-dir');
  const control = value('control-socket');
  const metrics = value('metrics');
  const logFile = value('log-file');
  let log = value('log') as LogDestination;
  if (log === 'auto') log = logFile ? 'file' : ctx.program === 'vbladed' ? 'syslog' : 'stderr';
  const s: DaemonSettings = {
    name,
    runDir,
    pidFile: value('pid-file') || `${runDir}/${name}.pid`,
    log,
    logFormat: value('log-format') as LogFormat,
    logLevel: value('log-level') as LogLevel,
    syslogFormat: value('syslog-format') as SyslogFormat,
    stopTimeoutSeconds: parseConfigInteger(value('stop-timeout')) ?? 30,
    spinMicros: parseConfigInteger(value('spin-us')) ?? DEFAULT_TUNABLES.spinMicros,
    spinPolicy: (value('spin-policy') || DEFAULT_TUNABLES.spinPolicy) as SpinPolicyName,
    mapInMemory: BOOL_WORDS[value('map-in-memory').toLowerCase()] ?? DEFAULT_TUNABLES.mapInMemory,
    duplicateProbeMs: parseConfigInteger(value('duplicate-probe-ms')) ?? DEFAULT_TUNABLES.duplicateProbeMs,
    announceSeconds: parseConfigInteger(value('announce-interval')) ?? DEFAULT_TUNABLES.announceSeconds,
  };
  const user = value('user');
  if (user) s.user = user;
  if (stateDir && stateDir !== 'none') s.stateDir = stateDir;
  if (control !== 'none') s.controlSocket = control || `${runDir}/${name}.sock`;
  const group = value('control-group');
  if (group) s.controlGroup = group;
  if (metrics && metrics !== 'off') s.metrics = parseListen(metrics);
  if (logFile) s.logFile = logFile;
  return s;
}

/** Settings problems that need several keys together (e.g. log = file without log-file). */
export function checkDaemonSettings(s: DaemonSettings): string | undefined {
  if (s.log === 'file' && !s.logFile) return 'log = file needs log-file; set log-file = /var/log/vblade.log (or --log-file)';
  return undefined;
}

export function serverConfigOf(list: ExportConfig[], settings: DaemonSettings): ServerConfig {
  const c: ServerConfig = {
    exports: list,
    tunables: {
      spinMicros: settings.spinMicros,
      spinPolicy: settings.spinPolicy,
      mapInMemory: settings.mapInMemory,
      duplicateProbeMs: settings.duplicateProbeMs,
      announceSeconds: settings.announceSeconds,
    },
  };
  if (settings.stateDir) c.stateDir = settings.stateDir;
  if (settings.user) c.user = settings.user;
  return c;
}

// ---------------------------------------------------------------------------
// Renderers: the table is the only source of these texts.

function defaultShown(k: KeyDef): string {
  return k.defaultText ?? (k.default === '' ? 'unset' : k.default);
}

/** Long options of vbladed/vblade for --help, one key per entry; `only` picks some of them. */
export function renderDaemonHelp(width = 100, only?: readonly string[]): string {
  const rows = KEYS.filter((k) => k.section === 'daemon' && (!only || only.includes(k.key))).map((k) => {
    const left = `  --${k.key} ${k.arg ?? 'VALUE'}`;
    const env = k.environment ? `, or ${k.environment} from the environment` : '';
    const right = `${k.meaning} [default: ${defaultShown(k)}${env}]`;
    return { left, right };
  });
  const pad = Math.max(...rows.map((r) => r.left.length)) + 2;
  return rows
    .map((r) =>
      wrap(r.right, width - pad)
        .map((l, i) => (i === 0 ? r.left.padEnd(pad) : ' '.repeat(pad)) + l)
        .join('\n'),
    )
    .join('\n');
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

function commentBlock(k: KeyDef): string {
  const values = k.values ? ` One of: ${k.values.join(', ')}.` : '';
  const opt = k.vbladeOption ? ` (vblade ${k.vbladeOption})` : '';
  const env = k.environment ? ` When unset here and on the command line, the environment variable ${k.environment} is used.` : '';
  const lines = wrap(`${k.meaning}${opt}${values} Default: ${defaultShown(k)}.${env}`, 76).map((l) => `# ${l}`);
  return lines.join('\n');
}

/** systemd/vblade.conf.example: every key, commented, with its default. */
export function renderExampleConfig(): string {
  const out: string[] = [
    '# vblade.conf: exports served by one vbladed (see vblade.conf(5)).',
    '# Generated from src/config/config-file.ts; regenerate with',
    '#   node scripts/render-config-docs.js',
    '# A comment starts with # or ; at the start of a line or after a blank:',
    '#   interfaces = eth1 eth2   # two paths to one disk',
    '# A # or ; inside a word (file = /srv/disk#1.img) or in "..." is part of',
    '# the value. A value runs to the end of the line or to a comment; quote it',
    '# as "..." to keep leading or trailing spaces.',
    '',
    '[daemon]',
  ];
  for (const k of KEYS.filter((x) => x.section === 'daemon')) {
    out.push(commentBlock(k));
    out.push(`#${k.key} = ${k.default}`);
    out.push('');
  }
  out.push('# One section per export, named by its AoE address eSHELF.SLOT');
  out.push(`# (shelf 0..${MAX_SHELF}, slot 0..${MAX_SLOT}).`);
  out.push('[export e1.1]');
  const example: Record<string, string> = { file: '/srv/vblade/disk1.img', interfaces: 'eth1 eth2' };
  for (const k of KEYS.filter((x) => x.section === 'export')) {
    out.push(commentBlock(k));
    if (example[k.key]) out.push(`${k.key} = ${example[k.key]}`);
    else out.push(`#${k.key} = ${k.default}`);
    out.push('');
  }
  out.push('# A second export: read-only, on one interface, only for two initiators.');
  out.push('#[export e1.2]');
  out.push('#file = /dev/vg0/boot');
  out.push('#interfaces = eth1');
  out.push('#read-only = yes');
  out.push('#mac-mask = 52:54:00:12:34:56, 52:54:00:12:34:57');
  return out.join('\n') + '\n';
}

/** Escapes text for roff: backslashes, leading dots/quotes, hyphens in options. */
function roff(s: string): string {
  let t = s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  if (/^[.']/.test(t)) t = '\\&' + t;
  return t;
}

/** docs/vblade.conf.5, whole. */
export function renderConfManPage(): string {
  const out: string[] = [];
  const p = (...l: string[]): void => {
    out.push(...l);
  };
  p(
    '.\\" Generated from src/config/config-file.ts by scripts/render-config-docs.js; do not edit.',
    '.TH VBLADE.CONF 5 "" "aoe-target" "File Formats"',
    '.SH NAME',
    'vblade.conf \\- exports and daemon settings of vbladed',
    '.SH SYNOPSIS',
    '.B /etc/vblade.conf',
    '.SH DESCRIPTION',
    'The file declares any number of ATA over Ethernet exports served by one',
    '.BR vbladed (8)',
    'process, and settings of the daemon itself.',
    'It is read at start and again on',
    '.BR SIGHUP ;',
    'a reload adds, removes, changes and resizes exports without disturbing the ones',
    'whose section did not change.',
    'A reload applies completely or not at all: it first opens the backing file and',
    'looks up the interfaces of every new or changed export, and any problem refuses',
    'it with nothing changed.',
    '.PP',
    'The file is plain text in sections.',
    'A section starts with a header line in brackets:',
    '.B [daemon]',
    'for the daemon settings (at most once) and',
    '.BI "[export e" SHELF . SLOT ]',
    'for each export, named by its AoE address (shelf 0\\(en' + MAX_SHELF + ', slot 0\\(en' + MAX_SLOT + ';',
    'the leading e may be left out).',
    'Other lines are',
    '.IB key " = " value',
    'pairs.',
    'A comment starts with',
    '.B #',
    'or',
    '.B ;',
    'at the start of a line, or after a blank (space or tab) outside double',
    'quotes, and runs to the end of the line, so',
    '.B "interfaces = eth1 eth2   # two paths"',
    'means eth1 and eth2.',
    'A',
    '.B #',
    'or',
    '.B ;',
    'that does not follow a blank is part of the value',
    '.RB ( "file = /srv/disk#1.img" ),',
    'and so is one inside double quotes.',
    'A value runs from after the',
    '.B =',
    'to the end of the line or to a comment, with surrounding blanks removed;',
    'write it in double quotes to keep them, or a blank followed by',
    '.BR # ,',
    'with',
    '.B \\e"',
    'for a quote inside.',
    'Booleans are',
    '.BR yes / no',
    '(also true/false, on/off, 1/0).',
    'Numbers are decimal or 0x hexadecimal; a leading zero does not mean octal.',
    'Lists are separated by blanks or commas.',
    'An empty value means the default.',
    'Relative paths are taken relative to the directory of the file.',
    '.PP',
    'Every problem is reported at once as',
    '.IB file : line : " what is wrong; what to do"',
    'and the file is not used until all are fixed; on a reload the daemon keeps',
    'running with the previous configuration.',
    'Check a file without starting anything with',
    '.BR "vbladed \\-\\-check \\-\\-config" " FILE" ,',
    'which also opens every backing file and looks up every interface.',
  );
  const section = (title: string, which: 'daemon' | 'export', intro: string[]): void => {
    p(`.SH ${title}`, ...intro);
    for (const k of KEYS.filter((x) => x.section === which)) {
      p('.TP', `.B ${roff(k.key)}`);
      p(roff(k.meaning));
      if (k.values) p(`Values: ${k.values.map(roff).join(', ')}.`);
      if (k.vbladeOption) p(`Same as vblade's`, `.B ${roff(k.vbladeOption)}`, 'option.');
      p(`Default: ${roff(defaultShown(k))}.`);
      if (k.environment) {
        p(
          'When neither the file nor the command line sets it, the environment variable',
          `.B ${roff(k.environment)}`,
          'is used (as before the key existed).',
        );
      }
    }
  };
  section('DAEMON SETTINGS', 'daemon', [
    'Keys of the',
    '.B [daemon]',
    'section.',
    'Each is also a long option of',
    '.BR vbladed (8),',
    'for example',
    '.BR "\\-\\-state\\-dir " DIR ,',
    'which wins over the file.',
  ]);
  section('EXPORT SETTINGS', 'export', [
    'Keys of an',
    '.B [export]',
    'section.',
    'An export with several interfaces is reachable over each; initiators use',
    'every path.',
  ]);
  p(
    '.SH STATE',
    'The config string, MAC mask list and reserve list that initiators set are',
    'saved per export in',
    '.IR state\\-dir / eSHELF.SLOT .json',
    'and restored at start, so they survive restarts and, with a shared state',
    'directory, a failover to another host.',
    'A',
    '.B mac\\-mask',
    'added, changed or removed in the file is applied at the next start or reload',
    'and wins over the saved mask from then on; otherwise the saved mask (which',
    'initiators may have edited) wins.',
    '.PP',
    'A change is acknowledged only once it is on disk. When it cannot be saved',
    '(a full or read\\-only file system) the request gets AoE error 3 and the',
    'saved state stays in force; the log, \\(lqvblade ctl list\\(rq and the metric',
    '.B vblade_export_state_save_failures_total',
    'say so.',
    'A state file that cannot be read (damaged, empty, a directory, a link or',
    'a FIFO in its place) is not followed and not overwritten: its export is',
    '.I held',
    '\\(em it answers nothing \\(em while the other exports serve, until an',
    'operator runs',
    '.BR "vblade ctl restore\\-state" " (after fixing the file) or"',
    '.B vblade ctl reset\\-state',
    '(which sets the file aside as',
    '.IR eSHELF.SLOT .json.corrupt\\- TIME',
    'and starts empty); see',
    '.BR vblade (8).',
    '.SH EXAMPLE',
    '.nf',
    '[daemon]',
    'log\\-format = text',
    'metrics = 127.0.0.1:9469',
    '',
    '[export e1.1]',
    'file = /srv/vblade/disk1.img',
    'interfaces = eth1 eth2',
    'sync = yes',
    '',
    '[export e1.2]',
    'file = /dev/vg0/boot',
    'interfaces = eth1',
    'read\\-only = yes',
    'mac\\-mask = 52:54:00:12:34:56',
    '.fi',
    '.SH FILES',
    '.TP',
    '.B /etc/vblade.conf',
    'read by',
    '.BR vblade.service .',
    '.TP',
    '.B /usr/share/doc/aoe\\-target/vblade.conf.example',
    'every key with its default (systemd/vblade.conf.example in the source).',
    '.SH SEE ALSO',
    '.BR vbladed (8),',
    '.BR vblade (8)',
  );
  return out.join('\n') + '\n';
}
