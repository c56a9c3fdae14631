// The root pino logger and where its lines go.
//
// pino always produces JSON lines; a sink takes each line and writes it to
// one destination, turning it into a readable line first when the text
// format is asked for:
//
//   stdout / stderr   sonic-boom on fd 1 / 2
//   file              sonic-boom on a file opened by openLogFile; reopen() after
//                     log rotation (SIGHUP) opens the file again the same way
//   syslog            one datagram per record to /dev/log (journald or a syslog
//                     daemon), RFC 3164 or RFC 5424 framing, tag "vbladed",
//                     facility daemon, severity from the pino level; without
//                     /dev/log, to journald's native socket; without either,
//                     to a file (syslogRoute), so that the records of a
//                     detached daemon, whose stdio is /dev/null, are kept
//
// The worker process logs JSON to its stdout; the supervisor feeds those
// lines into its own sink (writeLine), so one process owns the destination
// and a reopen covers both.
//
// No pretty-printing package: formatText below is the whole readable form.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino, { type Logger } from 'pino';
import type { LogDestination, LogFormat, LogLevel, SyslogFormat } from '../config/keys';
import { loadAddon } from '../native/addon';
import { TrustedDir } from '../safe-files/trusted-dir';

export interface LogOptions {
  destination: Exclude<LogDestination, 'auto'>;
  file?: string;
  format: LogFormat;
  level: LogLevel;
  syslogFormat?: SyslogFormat;
  /** Default /dev/log. */
  syslogPath?: string;
  /** journald's native socket, used when syslogPath is not there; default /run/systemd/journal/socket. */
  journalPath?: string;
  /** The file used when neither socket is there (or both fail); without one, stderr. */
  fallbackFile?: string;
  /** Default 'vbladed'. */
  tag?: string;
  /** Text format: times in local time with the UTC offset (a terminal's reader) rather than UTC. */
  localTime?: boolean;
  /** Datagram sender for syslog; default: the native addon's unixDatagramSend. */
  send?: (path: string, message: string) => void;
}

export interface LogSink {
  /** One line of pino JSON (with or without the trailing newline), or any other text (logged as is). */
  writeLine(line: string): void;
  /** Reopens a log file (after rotation); for syslog, looks for /dev/log again. */
  reopen(): void;
  /** Writes out anything buffered (synchronously). */
  flushSync(): void;
}

export const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** pino level → syslog severity (RFC 5424 §6.2.1). */
export function syslogSeverity(level: number): number {
  if (level >= 60) return 2; // crit
  if (level >= 50) return 3; // err
  if (level >= 40) return 4; // warning
  if (level >= 30) return 6; // info
  return 7; // debug
}

/** Facility "daemon" (3). */
const FACILITY_DAEMON = 3;

const STANDARD_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'name', 'v']);

/**
 * Characters that must not reach a terminal or a log reader raw: C0, DEL and
 * C1 controls (U+0080-U+009F: a config string set over the wire is decoded
 * latin1, and xterm acts on UTF-8 C1 such as CSI U+009B), format characters
 * (bidi overrides, zero-width), line and paragraph separators, lone surrogates.
 */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

function escapeChar(c: string): string {
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  // Each UTF-16 unit: a format character beyond U+FFFF is two.
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/** Non-printable characters as JSON writes them (\n, \t, \u0000, \u009b ...), so a log line is one line of printable text. */
export function escapeControl(text: string): string {
  return text.replace(NON_PRINTABLE, escapeChar);
}

/**
 * The same, keeping newlines and tabs: for output whose lines and columns
 * are ours (`vblade ctl`). In JSON text (which escapes C0 itself) the result
 * is still JSON and reads back as the same strings.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(NON_PRINTABLE, (c) => (c === '\n' || c === '\t' ? c : escapeChar(c)));
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]+$/u.test(v) ? v : escapeControl(JSON.stringify(v));
  if (v === null || typeof v !== 'object') return String(v);
  // JSON escapes C0 only.
  return escapeControl(JSON.stringify(v));
}

/** "2025-01-02T04:04:05.678+01:00": a time in this machine's zone, with the offset so that it stays unambiguous. */
export function localIsoTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const zone = `${off < 0 ? '-' : '+'}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}${zone}`;
}

/**
 * A pino JSON record as one readable line (plus an indented stack for
 * errors): `2025-01-02T03:04:05.678Z INFO  [1234] message key=value ...`
 * (with localTime, the time is localIsoTime's).
 * Control characters are escaped (escapeControl): a NUL or an escape
 * sequence from a corrupt file must not reach a terminal or make grep call
 * the log binary. Lines that are not JSON records come back escaped.
 */
export function formatText(line: string, localTime = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return escapeControl(line);
  }
  if (typeof rec !== 'object' || rec === null || typeof rec.level !== 'number') return escapeControl(line);
  const time = typeof rec.time !== 'number' ? '-' : localTime ? localIsoTime(rec.time) : new Date(rec.time).toISOString();
  const level = (LEVEL_NAMES[rec.level] ?? String(rec.level)).padEnd(5);
  const parts = [`${time} ${level} [${typeof rec.pid === 'number' ? rec.pid : '-'}]`];
  if (typeof rec.name === 'string') parts.push(`${escapeControl(rec.name)}:`);
  if (rec.msg !== undefined) parts.push(escapeControl(typeof rec.msg === 'string' ? rec.msg : JSON.stringify(rec.msg)));
  let stack = '';
  for (const [k, v] of Object.entries(rec)) {
    if (STANDARD_FIELDS.has(k)) continue;
    if (k === 'err' && v && typeof v === 'object') {
      const err = v as { message?: unknown; stack?: unknown };
      parts.push(`err=${formatValue(err.message)}`);
      if (typeof err.stack === 'string')
        stack =
          '\n' +
          err.stack
            .split('\n')
            .map((l) => `    ${escapeControl(l)}`)
            .join('\n');
      continue;
    }
    parts.push(`${escapeControl(k)}=${formatValue(v)}`);
  }
  return parts.join(' ') + stack;
}

/**
 * Errors a user makes or meets, by class: a config file with mistakes
 * (ConfigError of the parser, and of the server for a missing interface), a
 * backing file that cannot be opened (StoreError), a command-line mistake
 * (UsageError), an instance already running. Their message says what went
 * wrong and what to do; a stack would only bury it. By name, because
 * backend/ and api/ define some of them and this room may not import
 * every one (test/service/log.test.ts checks each real class).
 */
const USER_ERROR_CLASSES = new Set(['ConfigError', 'StoreError', 'UsageError', 'AlreadyRunningError']);

/**
 * A user error (above), a failed system call (ENOENT, EACCES, EADDRINUSE
 * ...), or an error that wraps one as its cause (config/load.ts's "cannot
 * read FILE"): logged without a stack.
 */
export function isUserError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (USER_ERROR_CLASSES.has(e.constructor.name) || typeof (e as NodeJS.ErrnoException).syscall === 'string') return true;
  return e.cause !== undefined && isUserError(e.cause);
}

/** pino's error serializer, minus the stack (and the repeated causes) of a user error; programming errors keep theirs. */
export function serializeError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const out: Partial<ReturnType<typeof pino.stdSerializers.err>> = pino.stdSerializers.err(e);
  if (isUserError(e)) {
    delete out.stack;
    // Ours already say what their cause said; pino would append it again.
    out.message = e.message;
  }
  return out;
}

/** The serializers of every logger of ours (supervisor, worker, vblade). */
export const LOG_SERIALIZERS = { err: serializeError };

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 3164 timestamp "Mmm dd hh:mm:ss" in local time (day padded with a space). */
function bsdTime(d: Date): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

/**
 * One syslog datagram for a line. RFC 3164 as the local /dev/log expects it
 * (no hostname, like glibc's syslog(3)): `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`;
 * RFC 5424: `<PRI>1 TIMESTAMP HOST TAG PID - - MSG`.
 */
export function syslogFrame(
  body: string,
  level: number,
  pid: number,
  opts: { tag: string; format: SyslogFormat; hostname?: string; now?: Date },
): string {
  const pri = FACILITY_DAEMON * 8 + syslogSeverity(level);
  const now = opts.now ?? new Date();
  if (opts.format === 'rfc5424') {
    return `<${pri}>1 ${now.toISOString()} ${opts.hostname ?? os.hostname()} ${opts.tag} ${pid} - - ${body}`;
  }
  return `<${pri}>${bsdTime(now)} ${opts.tag}[${pid}]: ${body}`;
}

/**
 * One datagram of journald's native protocol: KEY=VALUE lines. `body` holds
 * no newline (the caller joins lines), so the simple form serves.
 */
export function journalFrame(body: string, level: number, pid: number, tag: string): string {
  return `PRIORITY=${syslogSeverity(level)}\nSYSLOG_FACILITY=${FACILITY_DAEMON}\nSYSLOG_IDENTIFIER=${tag}\nSYSLOG_PID=${pid}\nMESSAGE=${body}\n`;
}

export const DEFAULT_SYSLOG_SOCKET = '/dev/log';
export const DEFAULT_JOURNAL_SOCKET = '/run/systemd/journal/socket';

/**
 * Tests only: "SYSLOG-SOCKET:JOURNAL-SOCKET" to use instead of /dev/log and
 * the journal socket, so a test can stand for a machine without them.
 */
export const LOG_SOCKETS_ENV = 'AOET_TEST_LOG_SOCKETS';

/** The two socket paths: the defaults, or what LOG_SOCKETS_ENV says. */
export function logSocketPaths(env: NodeJS.ProcessEnv = process.env): { syslogPath: string; journalPath: string } {
  const v = env[LOG_SOCKETS_ENV];
  if (!v) return { syslogPath: DEFAULT_SYSLOG_SOCKET, journalPath: DEFAULT_JOURNAL_SOCKET };
  const [syslogPath, journalPath] = v.split(':');
  return { syslogPath, journalPath: journalPath ?? DEFAULT_JOURNAL_SOCKET };
}

/** Where syslog records go: a socket, or the fallback file (or stderr, without one). */
export type SyslogRoute =
  { kind: 'syslog'; path: string } | { kind: 'journal'; path: string } | { kind: 'file'; path: string } | { kind: 'stderr' };

function isSocket(p: string): boolean {
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}

/** The first of /dev/log and the journal socket that is there, else the fallback file. */
export function syslogRoute(opts: Pick<LogOptions, 'syslogPath' | 'journalPath' | 'fallbackFile'>): SyslogRoute {
  const syslogPath = opts.syslogPath ?? DEFAULT_SYSLOG_SOCKET;
  const journalPath = opts.journalPath ?? DEFAULT_JOURNAL_SOCKET;
  if (isSocket(syslogPath)) return { kind: 'syslog', path: syslogPath };
  if (isSocket(journalPath)) return { kind: 'journal', path: journalPath };
  return opts.fallbackFile ? { kind: 'file', path: opts.fallbackFile } : { kind: 'stderr' };
}

/** The route in words: "syslog through /dev/log", a file name ... */
function routeName(r: SyslogRoute, tag: string): string {
  switch (r.kind) {
    case 'syslog':
      return `syslog through ${r.path} (tag ${tag})`;
    case 'journal':
      return `the journal through ${r.path} (tag ${tag})`;
    case 'file':
      return r.path;
    case 'stderr':
      return 'standard error';
  }
}

/** The route in words with why it was taken, for "logging to ..." at launch. */
export function describeRoute(r: SyslogRoute, opts: Pick<LogOptions, 'syslogPath' | 'journalPath' | 'tag'> = {}): string {
  const name = routeName(r, opts.tag ?? 'vbladed');
  const syslogPath = opts.syslogPath ?? DEFAULT_SYSLOG_SOCKET;
  const journalPath = opts.journalPath ?? DEFAULT_JOURNAL_SOCKET;
  if (r.kind === 'syslog') return name;
  if (r.kind === 'journal') return `${name}; there is no ${syslogPath}`;
  return `${name} (there is no ${syslogPath} or ${journalPath})`;
}

/** Largest datagram we send; longer records are cut (journald's limit is higher, classic syslogd's 8 KiB-ish). */
const MAX_SYSLOG_BYTES = 8192;

function levelAndPid(line: string): { level: number; pid: number } {
  const lm = /"level":(\d+)/.exec(line);
  const pm = /"pid":(\d+)/.exec(line);
  return { level: lm ? Number(lm[1]) : 30, pid: pm ? Number(pm[1]) : process.pid };
}

function defaultSend(): (path: string, message: string) => void {
  // Loaded only here so that a build without the addon can still log elsewhere.
  const addon = loadAddon();
  return (p, m) => addon.unixDatagramSend(p, m);
}

type Boom = ReturnType<typeof pino.destination> & { reopen(file?: string): void; flushSync(): void };

/**
 * Opens a log file for appending so that nobody else can send the writes
 * elsewhere (the supervisor writes as root, whole lines of them the
 * worker's): its directory is checked along its whole path (src/safe-files:
 * no link followed, no directory above it that others may write) and made
 * 0750 when missing, though never its parents; the file itself is never
 * opened through a link, must be a regular file of this process's user, and
 * is made 0640. Throws a message that names the path and the fix.
 */
export function openLogFile(file: string): number {
  const abs = path.resolve(file);
  const name = path.basename(abs);
  const dir = openLogDir(path.dirname(abs));
  const flags = fs.constants.O_WRONLY | fs.constants.O_APPEND;
  try {
    for (;;) {
      try {
        return dir.openFile(name, { flags, owners: [process.geteuid?.() ?? 0], what: 'log file' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      try {
        return dir.createFile(name, 0o640, flags);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // made meanwhile: open it as an existing one
      }
    }
  } finally {
    dir.close();
  }
}

/**
 * What a start would say of log-file FILE (for --check), without making or
 * writing anything: undefined when start could open or make it.
 */
export function logFileProblem(file: string): string | undefined {
  const abs = path.resolve(file);
  try {
    const dir = openLogDir(path.dirname(abs), false);
    if (dir === undefined) return undefined; // start makes it, in a parent it trusts
    try {
      const flags = fs.constants.O_WRONLY | fs.constants.O_APPEND;
      fs.closeSync(dir.openFile(path.basename(abs), { flags, owners: [process.geteuid?.() ?? 0], what: 'log file' }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    } finally {
      dir.close();
    }
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function openLogDir(dir: string): TrustedDir;
function openLogDir(dir: string, create: false): TrustedDir | undefined;
/** The log directory, made 0750 in a trusted parent when missing (create false: undefined instead). */
function openLogDir(dir: string, create = true): TrustedDir | undefined {
  try {
    return TrustedDir.open(dir, { what: 'log directory' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  let parent: TrustedDir;
  try {
    parent = TrustedDir.open(path.dirname(dir), { what: 'directory above the log directory' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw new Error(`${path.dirname(dir)} does not exist; create ${dir} (mode 0750) or choose another log-file`, { cause: e });
  }
  try {
    return create ? parent.child(path.basename(dir), { what: 'log directory', create: { mode: 0o750 } }) : undefined;
  } finally {
    parent.close();
  }
}

/** A sonic-boom on openLogFile(file). */
function logFileBoom(file: string): Boom {
  return pino.destination({ dest: openLogFile(file), sync: true });
}

/** Creates the sink for a destination. */
export function createSink(opts: LogOptions): LogSink {
  // JSON escapes C0 only: DEL, C1 and the like are escaped here (still JSON, read back the same).
  const transform = opts.format === 'text' ? (l: string): string => formatText(l, opts.localTime) : escapeControl;
  if (opts.destination === 'syslog') return syslogSink(opts, transform);
  let boom: Boom;
  const file = opts.destination === 'file' ? opts.file : undefined;
  if (opts.destination === 'file') {
    if (!file) throw new Error('log destination "file" needs a file name');
    boom = logFileBoom(file);
  } else {
    boom = pino.destination({ dest: opts.destination === 'stderr' ? 2 : 1, sync: true });
  }
  const writeLine = (raw: string): void => {
    const line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    boom.write(transform(line) + '\n');
  };
  return {
    writeLine,
    reopen() {
      if (file === undefined) return;
      let next: Boom;
      try {
        next = logFileBoom(file);
      } catch (e) {
        // Keep writing where we were (the rotated file) rather than lose the records.
        writeLine(
          wrapForeignLine(
            `cannot reopen the log file ${file}: ${(e as Error).message}; still logging to the file open before`,
            50,
            process.pid,
          ),
        );
        return;
      }
      boom.end();
      boom = next;
    },
    flushSync() {
      try {
        boom.flushSync();
      } catch {
        // nothing buffered (sync mode) or fd gone
      }
    },
  };
}

/**
 * The syslog destination: records go to the route syslogRoute picks. When a
 * send fails (the syslog daemon stopped), a notice and the record go to the
 * next route (journal socket, then the fallback file, then stderr), which
 * is kept until reopen() (SIGHUP) looks for the sockets again.
 */
function syslogSink(opts: LogOptions, transform: (line: string) => string): LogSink {
  const tag = opts.tag ?? 'vbladed';
  let send = opts.send;
  let route = syslogRoute(opts);
  /** The open file or stderr stream of a file or stderr route; `isFile` when it is a file of ours. */
  let file: Boom | undefined;
  let isFile = false;
  const openFile = (r: SyslogRoute): Boom => {
    isFile = false;
    if (r.kind === 'file') {
      try {
        const b = logFileBoom(r.path);
        isFile = true;
        return b;
      } catch (e) {
        route = { kind: 'stderr' };
        const err = pino.destination({ dest: 2, sync: true }) as Boom;
        err.write(`vbladed: cannot open the log file ${r.path} (${(e as Error).message}); logging to standard error\n`);
        return err;
      }
    }
    return pino.destination({ dest: 2, sync: true });
  };
  /** The route after `failed`: the journal socket (if there and not the one that failed), else the file or stderr. */
  const nextRoute = (failed: SyslogRoute): SyslogRoute => {
    const journalPath = opts.journalPath ?? DEFAULT_JOURNAL_SOCKET;
    if (failed.kind === 'syslog' && isSocket(journalPath)) return { kind: 'journal', path: journalPath };
    return opts.fallbackFile ? { kind: 'file', path: opts.fallbackFile } : { kind: 'stderr' };
  };
  const deliver = (line: string): void => {
    const { level, pid } = levelAndPid(line);
    if (route.kind === 'file' || route.kind === 'stderr') {
      file ??= openFile(route);
      file.write(transform(line) + '\n');
      return;
    }
    let body = transform(line).replace(/\n/g, ' ');
    if (Buffer.byteLength(body) > MAX_SYSLOG_BYTES) body = Buffer.from(body).subarray(0, MAX_SYSLOG_BYTES).toString();
    try {
      send ??= defaultSend();
      send(
        route.path,
        route.kind === 'journal'
          ? journalFrame(body, level, pid, tag)
          : syslogFrame(body, level, pid, { tag, format: opts.syslogFormat ?? 'rfc3164' }),
      );
    } catch (e) {
      const failed = route;
      route = nextRoute(failed);
      const why = `cannot log to ${failed.path} (${(e as Error).message}); logging to ${routeName(route, tag)} until SIGHUP`;
      deliver(wrapForeignLine(why, 40, process.pid));
      deliver(line);
    }
  };
  return {
    writeLine(raw) {
      const line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
      if (line !== '') deliver(line);
    },
    reopen() {
      route = syslogRoute(opts);
      // The next record opens the route's file again (openLogFile), or goes to a socket.
      if (file && isFile) file.end();
      file = undefined;
    },
    flushSync() {
      try {
        file?.flushSync();
      } catch {
        // nothing buffered (sync mode)
      }
    },
  };
}

/** A pino logger writing through `sink`. */
export function loggerOnSink(sink: LogSink, level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  const stream = { write: (s: string) => sink.writeLine(s) };
  return pino({ level, base: { pid: process.pid, hostname: os.hostname(), ...bindings }, serializers: LOG_SERIALIZERS }, stream);
}

/** The root logger and its sink. */
export function createLogger(opts: LogOptions, bindings: Record<string, unknown> = {}): { logger: Logger; sink: LogSink } {
  const sink = createSink(opts);
  return { logger: loggerOnSink(sink, opts.level, bindings), sink };
}

/**
 * Splits a byte stream (a child's stdout/stderr) into lines and hands each
 * to `onLine`; text that is not a pino record becomes one, at `level`, so a
 * crash trace on stderr still reaches the log.
 */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer | string) => void {
  let rest = '';
  return (chunk) => {
    const text = rest + chunk.toString();
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    if (rest.length > 65536) {
      lines.push(rest);
      rest = '';
    }
    for (const l of lines) if (l !== '') onLine(l);
  };
}

/** Fields of a worker's record that are ours to set: the worker cannot claim another process or role. */
const WORKER_RESERVED_FIELDS = new Set([...STANDARD_FIELDS, 'role', 'stream']);
/** How long a field name of a worker's record may be. */
const MAX_FIELD_NAME = 64;

/**
 * One line of a worker's stdout or stderr as a record of the supervisor's
 * log. The worker is not trusted with the log (the supervisor may be root):
 * a pino record is parsed and written again with the level, time, message
 * and the worker's own fields, but with its real pid, `role: worker` (and
 * `extra`) forced, so it cannot pass for a supervisor record; anything else
 * becomes the quoted field `text` of a record "worker output". Either way
 * the JSON has no raw non-printable character (escapeControl).
 */
export function workerLogLine(line: string, level: number, pid: number, extra: Record<string, unknown> = {}): string {
  const base = { time: Date.now(), pid, hostname: os.hostname(), ...extra, role: 'worker' };
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    rec = undefined;
  }
  const r = rec as Record<string, unknown> | undefined;
  if (typeof r !== 'object' || r === null || Array.isArray(r) || typeof r.level !== 'number' || !(r.level in LEVEL_NAMES))
    return escapeControl(JSON.stringify({ level, ...base, msg: 'worker output', text: line }));
  const out: Record<string, unknown> = { level: r.level, ...base };
  if (typeof r.time === 'number' && Number.isFinite(r.time)) out.time = r.time;
  for (const [k, v] of Object.entries(r)) {
    if (WORKER_RESERVED_FIELDS.has(k) || k.length > MAX_FIELD_NAME || !/^[A-Za-z0-9_]+$/.test(k)) continue;
    out[k] = v;
  }
  out.msg = typeof r.msg === 'string' ? r.msg : r.msg === undefined ? '' : JSON.stringify(r.msg);
  return escapeControl(JSON.stringify(out));
}

/** Wraps a stray text line (not JSON) as a pino record so every destination gets the same shape. */
export function wrapForeignLine(line: string, level: number, pid: number, extra: Record<string, unknown> = {}): string {
  if (line.startsWith('{"level":')) return line;
  return JSON.stringify({ level, time: Date.now(), pid, hostname: os.hostname(), ...extra, msg: line });
}
