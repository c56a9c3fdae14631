// The control socket: a unix stream socket (default RUN-DIR/NAME.sock, mode
// 0660, group control-group) speaking line-delimited JSON.
//
//   request   {"id": 1, "command": "show-mask", "export": "e1.1"}\n
//             {"id": 2, "command": "add-mask", "export": "e1.1", "macs": ["52:54:00:12:34:56"]}\n
//   reply     {"id": 1, "ok": true, "result": {...}}\n
//             {"id": 1, "ok": false, "error": "no export e9.9; ..."}\n
//
// A connection may send any number of requests; replies come in order, at
// most MAX_IN_FLIGHT answered at once; at most MAX_CONNECTIONS connections.
// Access control is the socket's mode and group: root and members of the
// group may connect, nobody else. Each command that changes data or state is
// logged with the uid and pid of who asked (SO_PEERCRED). `add` and
// `remove` are not answered here: `vblade ctl` runs them itself, as root
// (it writes the config fragment, then asks for a reload), so the daemon
// never writes its configuration and may run as a user who cannot; the
// daemon only says which config file it serves (config-files). `takeover`
// (it fences another gateway) is answered only for root or the daemon's own
// user (SO_PEERCRED).
//
// COMMANDS is the one table of commands: the server dispatches through it
// and `vblade ctl` builds its help and checks arguments from it.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { checkPrivateDir } from './private-dir';
import { loadAddon } from '../native/addon';
import type { CommandExtra, WorkerOp } from './worker';
import type { ServerStats } from '../api/control';
import { ConfigError } from '../api/errors';

/** What the control socket drives: the supervisor, which asks its worker. */
export interface ControlTarget {
  request(op: WorkerOp, key?: string, macs?: string[], extra?: CommandExtra): Promise<unknown>;
  /** Re-reads the configuration (as on SIGHUP); resolves to a summary. */
  reload(): Promise<unknown>;
  /** Supervisor facts (worker pid, restarts, ...); merged into list and stats. */
  status?(): unknown;
  /** The config file served, for `vblade ctl add` and `remove`; absent without --config. */
  configFiles?(): ConfigFiles;
}

/** What `vblade ctl add` and `remove` need to know of the daemon: the file they edit, and a --config-dir given to it. */
export interface ConfigFiles {
  configFile: string;
  /** --config-dir on vbladed's command line, which a fragment written next to the file's own config-dir would miss. */
  commandLineConfigDir?: string;
  defaultName: string;
}

export interface CommandDef {
  /** The command's name; one the worker answers is also its request to the worker (WorkerOp). */
  name: WorkerOp | 'reload' | 'add' | 'remove' | 'config-files';
  summary: string;
  /** Whether the command takes an export (eS.L) argument. */
  exportArg: 'none' | 'optional' | 'required';
  /** Whether the command takes MAC addresses after the export ("macs" in a request). */
  macsArg?: boolean;
  /** Words after the export ("words" in a request): a snapshot name, MACs of a view command; min and max count. */
  wordsArg?: { name: string; describe: string; min: number; max: number; synopsis?: string; example?: string };
  /** Options of the command ("all", "force": booleans; "view": a MAC). */
  options?: { name: 'all' | 'force' | 'view'; describe: string }[];
  /** Whether the command changes data or state: the socket logs who asked for it. */
  changes?: boolean;
  /** Run by `vblade ctl` itself, as root (it writes the configuration): the daemon only answers the reload it asks for. */
  local?: boolean;
  /** Only root or the daemon's own user may ask (takeover: it fences another gateway). */
  rootOnly?: boolean;
  /** What the command does; without it, the request of its name, with the arguments the command takes (runCommand). */
  run?(target: ControlTarget, exportKey: string | undefined, macs?: string[], extra?: CommandExtra): Promise<unknown>;
}

/** The stats of one export (its interfaces with it), or all of them; an export not there is an error with the list. */
function statsOf(stats: unknown, key: string | undefined): unknown {
  if (key === undefined) return stats;
  const s = stats as ServerStats;
  const e = s.exports.find((x) => x.key === key);
  if (e === undefined)
    throw new ConfigError(`no export ${key}; exports: ${s.exports.map((x) => x.key).join(' ') || 'none'} (vblade ctl list)`);
  return { ...s, exports: [e], interfaces: s.interfaces.filter((i) => e.interfaces.includes(i.name)) };
}

export const COMMANDS: readonly CommandDef[] = [
  {
    name: 'list',
    summary: 'exports with their settings and saved state (config string, mask, reserve)',
    exportArg: 'none',
    run: async (t) => ({ exports: await t.request('list'), supervisor: t.status?.() }),
  },
  {
    name: 'stats',
    summary:
      'counters per export and per interface: requests, bytes, errors by kind, drops, latency; with an export, that one; --by-initiator: per initiator MAC',
    exportArg: 'optional',
    run: async (t, key) => ({ stats: statsOf(await t.request('stats'), key), supervisor: t.status?.() }),
  },
  {
    name: 'show-mask',
    summary: 'MAC mask list of one export or of all (empty: every initiator is allowed)',
    exportArg: 'optional',
  },
  {
    name: 'clear-mask',
    summary: 'empty the MAC mask list of an export (every initiator is allowed again); answered once saved',
    exportArg: 'required',
    changes: true,
  },
  {
    name: 'set-mask',
    summary: 'replace the MAC mask list of an export with these MACs; answered once saved',
    exportArg: 'required',
    changes: true,
    macsArg: true,
  },
  {
    name: 'add-mask',
    summary: 'add MACs to the MAC mask list of an export; answered once saved',
    exportArg: 'required',
    changes: true,
    macsArg: true,
  },
  {
    name: 'del-mask',
    summary: 'remove MACs from the MAC mask list of an export; answered once saved',
    exportArg: 'required',
    changes: true,
    macsArg: true,
  },
  {
    name: 'show-reserve',
    summary: 'reserve list of one export or of all (empty: not reserved)',
    exportArg: 'optional',
  },
  {
    name: 'clear-reserve',
    summary: 'release the reservation of an export (e.g. after its holder died); answered once saved',
    exportArg: 'required',
    changes: true,
  },
  {
    name: 'set-reserve',
    summary: 'reserve an export for these MACs (as a Reserve force set); answered once saved',
    exportArg: 'required',
    changes: true,
    macsArg: true,
  },
  {
    name: 'show-state',
    summary: 'state of an export in force and in its state file (also an unreadable one, and why)',
    exportArg: 'required',
  },
  {
    name: 'restore-state',
    summary: 'serve a held export from its state file once it has been fixed',
    exportArg: 'required',
    changes: true,
  },
  {
    name: 'reset-state',
    summary: "set a held export's unreadable state file aside and serve it with empty state",
    exportArg: 'required',
    changes: true,
  },
  {
    name: 'reload',
    summary: 're-read the configuration and apply it, as SIGHUP does',
    exportArg: 'none',
    changes: true,
  },
  {
    name: 'config-files',
    summary: 'the config file the daemon serves, whose fragments add and remove edit',
    exportArg: 'none',
    run: (t) =>
      t.configFiles
        ? Promise.resolve(t.configFiles())
        : Promise.reject(
            new ConfigError(
              "add and remove need a daemon started with --config FILE: its exports are kept in the config's fragments",
            ),
          ),
  },
  {
    name: 'add',
    summary: 'serve a new export now and keep it in a config fragment, so that it is served after a restart too; root only',
    exportArg: 'required',
    changes: true,
    local: true,
    wordsArg: {
      name: 'words',
      describe: 'interfaces (comma-separated), backing file, then key=value settings',
      min: 2,
      max: 34,
      synopsis: 'INTERFACES FILE [KEY=VALUE...] [--read-only] [--mac-mask LIST]',
      example: 'eth1 /srv/aoe/disk3.img --mac-mask @lab',
    },
  },
  {
    name: 'remove',
    summary: 'stop serving an export added with add (drained as a reload does) and delete its fragment; root only',
    exportArg: 'required',
    changes: true,
    local: true,
  },
  {
    name: 'takeover',
    summary:
      "serve an rbd export this gateway stands by for now: break the owner's lock of the image (the Ceph cluster blocklists the old gateway, so its late writes are refused), take it, announce; root only",
    exportArg: 'required',
    changes: true,
    rootOnly: true,
  },
  {
    name: 'resize',
    summary: 'take the size of a grown backing file or volume now, without a reload (prints old -> new size)',
    exportArg: 'required',
    changes: true,
  },
  {
    name: 'views',
    summary:
      'per-initiator views of an export: MAC, OWN (space it shares with no other file, not bytes written), created or reset, last seen since; stale and refused ones with why',
    exportArg: 'required',
  },
  {
    name: 'view-reset',
    summary:
      "turn views (these MACs, or --all) back into the image as it is now; their writes are lost; refused after that machine's recent I/O unless --force",
    exportArg: 'required',
    changes: true,
    wordsArg: { name: 'macs', describe: 'initiator MACs whose views to reset', min: 0, max: 4096 },
    options: [
      { name: 'all', describe: 'reset every view of the export' },
      { name: 'force', describe: 'reset although that machine used its view in the last 5 minutes (it would not know)' },
    ],
  },
  {
    name: 'view-drop',
    summary:
      "remove views (their files too); an initiator's next request makes a new one; refused after that machine's recent I/O unless --force",
    exportArg: 'required',
    changes: true,
    wordsArg: { name: 'macs', describe: 'initiator MACs whose views to remove', min: 1, max: 4096 },
    options: [
      { name: 'force', describe: 'remove although that machine used its view in the last 5 minutes (it would not know)' },
    ],
  },
  {
    name: 'snapshot',
    summary: 'take a point-in-time copy of an export (or, with --view MAC, of one view); prints how long I/O paused',
    exportArg: 'required',
    changes: true,
    wordsArg: { name: 'name', describe: 'snapshot name (default: the time now)', min: 0, max: 1 },
    options: [{ name: 'view', describe: 'snapshot the view of this initiator MAC instead of the export' }],
  },
  {
    name: 'snapshots',
    summary: 'snapshots of an export: name, of what, created, bytes of its own, file',
    exportArg: 'required',
  },
  {
    name: 'snapshot-delete',
    summary: 'delete a snapshot',
    exportArg: 'required',
    changes: true,
    wordsArg: { name: 'name', describe: 'snapshot name', min: 1, max: 1 },
  },
  {
    name: 'revert',
    summary: 'put a snapshot back into the export or view it was taken of; refused after recent I/O unless --force',
    exportArg: 'required',
    changes: true,
    wordsArg: { name: 'name', describe: 'snapshot name', min: 1, max: 1 },
    options: [
      { name: 'force', describe: 'revert although an initiator was active in the last 5 minutes (its cache would not know)' },
    ],
  },
];

export function commandByName(name: string): CommandDef | undefined {
  return COMMANDS.find((c) => c.name === name);
}

export interface ControlRequest {
  id?: unknown;
  command?: unknown;
  export?: unknown;
  macs?: unknown;
  words?: unknown;
  all?: unknown;
  force?: unknown;
  view?: unknown;
  /** What a reload is for ("add e1.3 eth1 /srv/d.img"): `vblade ctl add` and `remove` say so, and the log has it. */
  for?: unknown;
}

export interface ControlReply {
  id?: unknown;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** The longest "for" of a reload: an add's words fit; the log line stays short of syslog's 8 KiB. */
const MAX_FOR = 2048;

/** No control, format (bidi overrides) or line-separator characters: text that reads in a log as what it is. */
function isPrintable(text: string, max: number): boolean {
  return text.length <= max && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(text);
}

/** Runs one request through the table. Never throws. */
export async function dispatch(target: ControlTarget, req: ControlRequest): Promise<ControlReply> {
  const id = req.id;
  const fail = (error: string): ControlReply => ({ id, ok: false, error });
  if (typeof req.command !== 'string') return fail('the request has no "command"; send {"command": "list"}');
  const cmd = commandByName(req.command);
  if (!cmd) return fail(`unknown command "${req.command}"; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
  if (cmd.local)
    return fail(
      `${cmd.name} is run by \`vblade ctl ${cmd.name}\` itself, as root: it writes the config fragment, then asks the daemon for a reload; use vblade ctl of this version`,
    );
  if (req.for !== undefined && (cmd.name !== 'reload' || typeof req.for !== 'string' || !isPrintable(req.for, MAX_FOR)))
    return fail(
      `"for" (what a reload is for, for the log) is printable text of at most ${MAX_FOR} characters, and only reload takes it`,
    );
  const key = typeof req.export === 'string' && req.export !== '' ? req.export : undefined;
  if (cmd.exportArg === 'required' && !key)
    return fail(`${cmd.name} needs an export, e.g. {"command": "${cmd.name}", "export": "e1.1"}`);
  if (cmd.exportArg === 'none' && key) return fail(`${cmd.name} takes no export`);
  let macs: string[] | undefined;
  if (cmd.macsArg) {
    if (!Array.isArray(req.macs) || req.macs.length === 0 || !req.macs.every((m) => typeof m === 'string'))
      return fail(
        `${cmd.name} needs MAC addresses, e.g. {"command": "${cmd.name}", "export": "e1.1", "macs": ["52:54:00:12:34:56"]}`,
      );
    macs = req.macs;
  } else if (req.macs !== undefined) return fail(`${cmd.name} takes no MAC addresses`);
  const extra: CommandExtra = {};
  if (req.words !== undefined) {
    const w = cmd.wordsArg;
    if (!w) return fail(`${cmd.name} takes no words after the export`);
    if (!Array.isArray(req.words) || !req.words.every((x) => typeof x === 'string'))
      return fail(`"words" must be a list of strings, e.g. {"command": "${cmd.name}", "export": "e1.1", "words": ["..."]}`);
    extra.words = req.words;
  }
  const count = extra.words?.length ?? 0;
  if (cmd.wordsArg && (count < cmd.wordsArg.min || count > cmd.wordsArg.max))
    return fail(
      `${cmd.name} takes ${cmd.wordsArg.min === cmd.wordsArg.max ? cmd.wordsArg.min : `${cmd.wordsArg.min} to ${cmd.wordsArg.max}`} ${cmd.wordsArg.name} (${cmd.wordsArg.describe}), not ${count}`,
    );
  for (const o of ['all', 'force', 'view'] as const) {
    if (req[o] === undefined) continue;
    if (!cmd.options?.some((d) => d.name === o)) return fail(`${cmd.name} takes no --${o}`);
    if (o === 'view' ? typeof req[o] !== 'string' : typeof req[o] !== 'boolean') return fail(`"${o}" has the wrong type`);
    (extra as Record<string, unknown>)[o] = req[o];
  }
  try {
    return { id, ok: true, result: await runCommand(cmd, target, key, macs, extra) };
  } catch (e) {
    return fail((e as Error).message);
  }
}

/**
 * Runs a command whose arguments were checked: its own `run`, or else the
 * request of its name (the supervisor's reload, or the worker's request with
 * the export, and the MACs or words and options the command takes).
 */
export function runCommand(
  cmd: CommandDef,
  target: ControlTarget,
  key?: string,
  macs?: string[],
  extra?: CommandExtra,
): Promise<unknown> {
  if (cmd.run) return cmd.run(target, key, macs, extra);
  if (cmd.name === 'reload') return target.reload();
  if (cmd.name === 'add' || cmd.name === 'remove' || cmd.name === 'config-files')
    return Promise.reject(new Error(`${cmd.name} has no handler`));
  const takesExtra = cmd.wordsArg !== undefined || cmd.options !== undefined;
  return target.request(cmd.name, key, cmd.macsArg ? macs : undefined, takesExtra ? extra : undefined);
}

/** Looks a group up in /etc/group (Node has no getgrnam). */
export function groupId(name: string, groupFile = '/etc/group'): number | undefined {
  if (/^[0-9]+$/.test(name)) return Number(name);
  let text: string;
  try {
    text = fs.readFileSync(groupFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && /^[0-9]+$/.test(f[2])) return Number(f[2]);
  }
  return undefined;
}

export interface ControlServerOptions {
  socketPath: string;
  /** Group name or id that may connect; default the process's group. */
  group?: string;
  log: Logger;
  /** Who connected (tests); default SO_PEERCRED through the addon. */
  peerOf?: (sock: net.Socket) => PeerCredentials | undefined;
}

/**
 * Whether a process listens on a unix socket path: 'listening'; 'stale' when
 * the file is there but nobody listens (its process died); 'gone' when there
 * is no such file; 'unknown' when connecting fails otherwise (e.g. no
 * permission).
 */
export function probeSocket(p: string): Promise<'listening' | 'stale' | 'gone' | 'unknown'> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.destroy();
      resolve('listening');
    });
    s.once('error', (e: NodeJS.ErrnoException) =>
      resolve(e.code === 'ECONNREFUSED' ? 'stale' : e.code === 'ENOENT' ? 'gone' : 'unknown'),
    );
  });
}

async function socketAlive(p: string): Promise<boolean> {
  return (await probeSocket(p)) === 'listening';
}

/** Largest request line accepted. */
const MAX_LINE = 64 * 1024;
/** Connections at once: a few admins and scripts; more only hold the daemon's descriptors. */
export const MAX_CONNECTIONS = 8;
/** Requests of one connection being answered at once; the rest wait unread in the socket. */
export const MAX_IN_FLIGHT = 4;

/** Who is at the other end of a control connection (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** The peer of an accepted unix socket, through the addon; undefined when it cannot be read. */
function socketPeer(sock: net.Socket): PeerCredentials | undefined {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return loadAddon().peerCredentials(fd);
  } catch {
    return undefined;
  }
}

/** "uid 0 (pid 123)" for the log. */
function describePeer(peer: PeerCredentials | undefined): string {
  return peer ? `uid ${peer.uid} (pid ${peer.pid})` : 'an unknown peer';
}

/** A request of a command that changes data or state, for the log: what, on what, and who asked. */
function auditRequest(log: Logger, peer: PeerCredentials | undefined, req: ControlRequest): void {
  const cmd = typeof req.command === 'string' ? commandByName(req.command) : undefined;
  if (!cmd?.changes) return;
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? (v as unknown[]) : []);
  const words: unknown[] = [req.export, ...list(req.macs), ...list(req.words)];
  for (const o of ['all', 'force'] as const) if (req[o] === true) words.push(`--${o}`);
  if (typeof req.view === 'string') words.push(`--view ${req.view}`);
  if (typeof req.for === 'string') words.push(`for vblade ctl ${req.for}`);
  const args = words.filter((w) => typeof w === 'string').join(' ');
  log.info(
    { command: cmd.name, export: req.export, peerUid: peer?.uid, peerPid: peer?.pid, peerGid: peer?.gid },
    `control socket: ${cmd.name}${args ? ` ${args}` : ''}, asked by ${describePeer(peer)}`,
  );
}

/** Root, or the user the daemon runs as: who may ask for a rootOnly command. */
function isAdmin(peer: PeerCredentials | undefined): boolean {
  return peer !== undefined && (peer.uid === 0 || peer.uid === process.geteuid?.());
}

/** The reply to one request line; never throws. */
async function answer(
  line: string,
  target: ControlTarget,
  log: Logger,
  peer: PeerCredentials | undefined,
): Promise<ControlReply> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: 'the request is not JSON; send one JSON object per line' };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req))
    return { ok: false, error: 'the request is not a JSON object; send e.g. {"command": "list"}' };
  auditRequest(log, peer, req);
  const cmd =
    typeof (req as ControlRequest).command === 'string' ? commandByName((req as ControlRequest).command as string) : undefined;
  if (cmd?.rootOnly && !isAdmin(peer)) {
    log.warn(`control socket: ${cmd.name} refused to ${describePeer(peer)}: only root may ask for it`);
    return {
      id: (req as ControlRequest).id,
      ok: false,
      error: `${cmd.name} is for root only: it fences another gateway; run it with sudo (members of the control group may use the other commands)`,
    };
  }
  return dispatch(target, req);
}

/** A connection idle this long (no request being answered) is closed: a held slot must not lock others out. */
const IDLE_MS = 10_000;

/** What the server knows of one connection: who it is, whether a request is being answered, when it last did something. */
interface Connection {
  peer: PeerCredentials | undefined;
  inFlight: number;
  lastActive: number;
}

function whoText(peer: PeerCredentials | undefined): string {
  return peer === undefined ? 'an unknown peer' : `uid ${peer.uid} (pid ${peer.pid})`;
}

/**
 * One connection: request lines in, replies out in order. At most
 * MAX_IN_FLIGHT requests are answered and not yet delivered at once
 * (reading pauses meanwhile, so a client that never reads its replies holds
 * no more than that); a line over MAX_LINE ends the connection.
 */
function serveConnection(sock: net.Socket, target: ControlTarget, log: Logger, conn: Connection): void {
  const peer = conn.peer;
  let buf = '';
  let inFlight = 0;
  let chain = Promise.resolve();
  let closing = false;
  const drain = (): void => {
    let nl: number;
    while (!closing && inFlight < MAX_IN_FLIGHT && (nl = buf.indexOf('\n')) >= 0) {
      if (nl > MAX_LINE) break; // refused below, however it arrived
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === '') continue;
      inFlight++;
      conn.inFlight = inFlight;
      chain = chain.then(async () => {
        const reply = JSON.stringify(await answer(line, target, log, peer)) + '\n';
        // Counted until the client has taken it: written into the kernel's buffer, not queued here.
        if (!sock.destroyed && !sock.write(reply)) {
          await new Promise<void>((resolve) => {
            sock.once('drain', resolve);
            sock.once('close', resolve);
          });
        }
        inFlight--;
        conn.inFlight = inFlight;
        conn.lastActive = Date.now();
        drain();
      });
    }
    if (closing) return;
    const end = buf.indexOf('\n');
    if (end > MAX_LINE || (buf.length > MAX_LINE && end < 0)) {
      // Nothing more is read: the rest of the line would only grow the buffer.
      closing = true;
      buf = '';
      sock.pause();
      sock.end(JSON.stringify({ ok: false, error: `request line longer than ${MAX_LINE} bytes; connection closed` }) + '\n');
      setTimeout(() => sock.destroy(), 1000).unref();
      return;
    }
    if (inFlight >= MAX_IN_FLIGHT) sock.pause();
    else sock.resume();
  };
  sock.on('data', (chunk) => {
    if (closing) return;
    conn.lastActive = Date.now();
    buf += chunk.toString('utf8');
    drain();
  });
  sock.setTimeout(IDLE_MS, () => {
    if (inFlight === 0) sock.destroy();
  });
}

/** With every slot taken, closes the connection idle longest (none of its requests being answered); false when all are busy. */
function closeIdlest(sockets: Map<net.Socket, Connection>, log: Logger, newcomer: PeerCredentials | undefined): boolean {
  let idlest: [net.Socket, Connection] | undefined;
  for (const entry of sockets)
    if (entry[1].inFlight === 0 && (!idlest || entry[1].lastActive < idlest[1].lastActive)) idlest = entry;
  if (!idlest) return false;
  log.warn(
    `control socket: all ${MAX_CONNECTIONS} connections in use; closed an idle one of ${whoText(idlest[1].peer)} for ${whoText(newcomer)}`,
  );
  sockets.delete(idlest[0]);
  idlest[0].destroy();
  return true;
}

export class ControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
    private readonly sockets: Map<net.Socket, Connection>,
  ) {}

  /** Listens; replaces a stale socket file; refuses when another process answers on it. */
  static async listen(target: ControlTarget, opts: ControlServerOptions): Promise<ControlServer> {
    const p = opts.socketPath;
    checkPrivateDir(path.dirname(p), 'control socket directory', { createMode: 0o755 });
    if (fs.existsSync(p)) {
      if (await socketAlive(p))
        throw new Error(`another process answers on the control socket ${p}; stop it or set control-socket to another path`);
      fs.rmSync(p, { force: true });
    }
    let gid: number | undefined;
    if (opts.group) {
      gid = groupId(opts.group);
      if (gid === undefined)
        throw new Error(`control-group "${opts.group}" does not exist; create it (groupadd ${opts.group}) or set another group`);
    }
    const sockets = new Map<net.Socket, Connection>();
    const server = net.createServer((sock) => {
      sock.on('error', () => undefined);
      const conn: Connection = { peer: (opts.peerOf ?? socketPeer)(sock), inFlight: 0, lastActive: Date.now() };
      if (sockets.size >= MAX_CONNECTIONS && !closeIdlest(sockets, opts.log, conn.peer)) {
        const holders = [...new Set([...sockets.values()].map((c) => whoText(c.peer)))].join(', ');
        opts.log.warn(
          `control socket: all ${MAX_CONNECTIONS} connections busy (held by ${holders}); refused ${whoText(conn.peer)}`,
        );
        sock.end(
          JSON.stringify({
            ok: false,
            error: `too many control connections (${MAX_CONNECTIONS}); try again when one has closed`,
          }) + '\n',
        );
        setTimeout(() => sock.destroy(), 1000).unref();
        return;
      }
      sockets.set(sock, conn);
      sock.on('close', () => sockets.delete(sock));
      serveConnection(sock, target, opts.log, conn);
    });
    // The socket is created by bind() with the umask applied: make it 0660 from the start.
    const oldMask = process.umask(0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(p, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(p, 0o660);
    if (gid !== undefined) {
      try {
        fs.chownSync(p, process.getuid?.() ?? 0, gid);
      } catch (e) {
        opts.log.warn({ err: e }, `cannot give the control socket to group ${opts.group}: ${(e as Error).message}`);
      }
    }
    opts.log.info({ socket: p }, `control socket at ${p}`);
    return new ControlServer(server, p, sockets);
  }

  async close(): Promise<void> {
    for (const s of this.sockets.keys()) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }
}
