// `vblade ctl`: the control socket's client.
//
//   vblade ctl [--socket FILE | --name NAME] [--run-dir DIR] [--json] COMMAND [EXPORT [MAC...]]
//
// Commands and their help come from control.ts COMMANDS; ctl-args.ts reads the command line. Without --socket
// or --name it uses the only *.sock in the run directory that a vbladed
// listens on; a socket nobody listens on (left by one that died) is named,
// so that it can be removed, and not counted.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { commandByName, probeSocket } from '../service/control';
import { controlRequest } from './control-client';
import type { ReloadResult } from '../service/daemon';
import type { CommandExtra, ExportListing } from '../service/worker';
import { describeAccess, describeSize } from '../config/export-config';
import type { ResizeResult, ServerStats, SnapshotInfo, SnapshotTaken, ViewListing } from '../api/control';
import { formatInitiatorTables, formatStatsTables } from './stats-table';
import { escapeForTerminal } from '../service/log';
import { ctlHelp, CtlUsageError, parseCtlArgs, type CtlOptions } from './ctl-args';
import { runConfigEdit } from './ctl-edit';

export { commandListing, parseCtlArgs, type CtlOptions } from './ctl-args';

export interface ResolvedSocket {
  socket?: string;
  /** Sockets in the run directory that nobody listens on. */
  stale: string[];
  /** Why no socket was chosen. */
  error?: string;
}

/** The socket to talk to, or why it cannot be decided. */
export async function resolveSocket(o: { socket?: string; name?: string; runDir: string }): Promise<ResolvedSocket> {
  if (o.socket) return { socket: o.socket, stale: [] };
  if (o.name) return { socket: path.join(o.runDir, `${o.name}.sock`), stale: [] };
  let files: string[] = [];
  try {
    files = fs.readdirSync(o.runDir).filter((f) => f.endsWith('.sock'));
  } catch {
    // no run dir: no vbladed
  }
  const live: string[] = [];
  const stale: string[] = [];
  for (const f of files.sort()) {
    const p = path.join(o.runDir, f);
    const state = await probeSocket(p);
    // One we may not connect to still counts: connecting says why it fails.
    if (state === 'stale') stale.push(p);
    else if (state !== 'gone') live.push(p);
  }
  if (live.length === 1) return { socket: live[0], stale };
  if (live.length === 0) {
    const error =
      files.length === 0
        ? `no control socket in ${o.runDir}; is vbladed running? (or give --socket FILE)`
        : `no vbladed answers in ${o.runDir}; is it running? (or give --socket FILE)`;
    return { stale, error };
  }
  const names = live.map((p) => path.basename(p, '.sock'));
  return { stale, error: `several vbladed instances run (${names.join(', ')}); choose one with --name NAME` };
}

interface SupervisorFacts {
  workerPid?: number;
  restarts?: number;
  ready?: boolean;
  lastExit?: { reason?: string; at?: string };
}

/** "worker 12 serving, 2 restarts; last: worker exited with code 1 (...) at 2026-...": the worker's last error too. */
function supervisorLine(s: SupervisorFacts): string {
  const line = `worker ${s.workerPid ?? '-'} ${s.ready ? 'serving' : 'not serving'}, ${s.restarts ?? 0} restarts`;
  const r = s.lastExit?.reason;
  if (typeof r !== 'string' || !s.restarts) return line;
  return `${line}; last: ${/^(exited|was killed)/.test(r) ? `worker ${r}` : r}${s.lastExit?.at ? ` at ${s.lastExit.at}` : ''}`;
}

function formatStats(result: { stats: Partial<ServerStats>; supervisor?: SupervisorFacts }): string {
  return [...(result.supervisor ? [supervisorLine(result.supervisor)] : []), ...formatStatsTables(result.stats ?? {})].join('\n');
}

function formatList(result: { exports: ExportListing[]; supervisor?: SupervisorFacts }): string {
  const lines: string[] = [];
  const s = result.supervisor;
  if (s) lines.push(supervisorLine(s));
  for (const e of result.exports) {
    const c = e.config;
    const what = c.nullStore ? `null:${c.nullSectors}` : c.file;
    const flags = [
      c.readOnly ? 'ro' : c.views !== undefined ? 'views' : 'rw',
      c.direct ? 'direct' : '',
      c.sync ? 'sync' : '',
      c.broadcastEdits ? 'broadcast-edits' : '',
      c.detectZeroes ? `detect-zeroes=${c.detectZeroes}` : '',
    ]
      .filter(Boolean)
      .join(',');
    lines.push(`${e.key}\t${c.interfaces.join(',')}\t${flags}\t${what}`);
    if (c.views !== undefined) lines.push(`\t${describeAccess(c)}`);
    if (e.paths) lines.push(`\tinterfaces: ${e.paths.map((p) => `${p.interface} ${p.state}`).join(', ')}`);
    // An rbd export waiting for, or fenced from, its image's lock says which (remote/rbd-failover.ts).
    if (e.held !== undefined) lines.push(`\tNOT SERVED, ${/^(standby|starting|fenced):/.test(e.held) ? '' : 'held: '}${e.held}`);
    if (e.notServed !== undefined) lines.push(`\tnot served: ${e.notServed} (tried again every duplicate-retry-s)`);
    if (e.unservable !== undefined)
      lines.push(`\tNOT SERVED: ${e.unservable} (not tried again: fix it, then \`vblade ctl reload\`)`);
    if (e.stateDurable === false) lines.push('\tstate: NOT SAVED yet (a save is running)');
    if (e.failedSaves)
      lines.push(
        `\tstate saves failed: ${e.failedSaves}, last: ${e.lastSaveError ?? '?'} (the state in force is the last one saved)`,
      );
    lines.push(`\tmask: ${e.state.macMask.length ? e.state.macMask.join(' ') : '(empty: everyone)'}`);
    lines.push(`\treserve: ${e.state.reserve.length ? e.state.reserve.join(' ') : '(none)'}`);
    lines.push(`\tconfig: ${JSON.stringify(e.state.config)}`);
  }
  return lines.join('\n');
}

function formatLists(result: Record<string, string[]>, empty: string): string {
  return Object.entries(result)
    .map(([k, list]) => `${k}\t${list.length ? list.join(' ') : empty}`)
    .join('\n');
}

/** What `add` or `remove` did, then the reload it ran: what else the reload applied is named, warnings are of this export. */
function formatEdit(command: string, r: { key: string; fragment: string; reload: ReloadResult }): string {
  const did = command === 'add' ? `added, kept in ${r.fragment}` : `removed, ${r.fragment} deleted`;
  const d = r.reload;
  const others = [
    ...(d.added ?? []).filter((k) => k !== r.key).map((k) => `added ${k}`),
    ...(d.removed ?? []).filter((k) => k !== r.key).map((k) => `removed ${k}`),
    ...(d.changed ?? []).map((k) => `changed ${k}`),
  ];
  // Of this export: it names the export as a word ("e2.5: …", "interface eth9 not found; e2.5 waits for it").
  const named = new RegExp(`(^|[^\\w.])${r.key.replace(/\./g, '\\.')}([^\\w.]|$)`);
  const mine = (w: string): boolean => named.test(w);
  const lines = [`${r.key}: ${did}`, formatResult('reload', { ...d, warnings: (d.warnings ?? []).filter(mine) })];
  if (others.length > 0) lines.push(`also applied, from edits of the config not reloaded before: ${others.join(', ')}`);
  return lines.join('\n');
}

function formatTakeover(r: { key: string; brokeFrom: string | null; ms: number }): string {
  const broke = r.brokeFrom === null ? 'nobody held the lock' : `broke the lock of ${r.brokeFrom} (the cluster blocklists it)`;
  return `${r.key}: taken over in ${r.ms} ms: ${broke}; served from here and announced`;
}

/** Human-readable output of a command's result. */
export function formatResult(command: string, result: unknown, byInitiator = false): string {
  switch (command) {
    case 'list':
      return formatList(result as Parameters<typeof formatList>[0]);
    case 'stats':
      if (byInitiator) return formatInitiatorTables((result as { stats?: Partial<ServerStats> }).stats ?? {}).join('\n');
      return formatStats(result as Parameters<typeof formatStats>[0]);
    case 'show-mask':
      return formatLists(result as Record<string, string[]>, '(empty: every initiator is allowed)');
    case 'show-reserve':
      return formatLists(result as Record<string, string[]>, '(not reserved)');
    case 'clear-mask':
    case 'clear-reserve': {
      const r = result as { key: string };
      return `${r.key}: ${command === 'clear-mask' ? 'mask list cleared' : 'reservation released'} and saved`;
    }
    case 'set-mask':
    case 'add-mask':
    case 'del-mask': {
      const r = result as { key: string; macMask: string[] };
      return `${r.key}: mask saved: ${r.macMask.length ? r.macMask.join(' ') : '(empty: every initiator is allowed)'}`;
    }
    case 'set-reserve': {
      const r = result as { key: string; reserve: string[] };
      return `${r.key}: reservation saved: ${r.reserve.join(' ')}`;
    }
    case 'show-state': {
      const r = result as {
        key: string;
        held?: string;
        inForce: { config: string; macMask: string[]; reserve: string[] };
        file: string;
        onDisk?: { config: string; macMask: string[]; reserve: string[] };
        absent?: boolean;
        unreadable?: string;
      };
      const show = (s: { config: string; macMask: string[]; reserve: string[] }): string =>
        `config ${JSON.stringify(s.config)}; mask ${s.macMask.join(' ') || '(empty)'}; reserve ${s.reserve.join(' ') || '(none)'}`;
      const lines = [`${r.key}: ${r.held !== undefined ? `NOT SERVED, held: ${r.held}` : 'served'}`];
      lines.push(`\tin force: ${r.held !== undefined ? '(nothing: not served)' : show(r.inForce)}`);
      lines.push(`\t${r.file}: ${r.onDisk ? show(r.onDisk) : r.absent ? '(no file)' : `unreadable: ${r.unreadable ?? '?'}`}`);
      return lines.join('\n');
    }
    case 'restore-state':
    case 'reset-state': {
      const r = result as { key: string; keptAs?: string };
      const kept = r.keptAs ? `; the unreadable file is kept as ${r.keptAs}` : '';
      return `${r.key}: ${command === 'restore-state' ? 'state restored from its file' : 'state reset to empty'}, saved, and served${kept}`;
    }
    case 'takeover':
      return formatTakeover(result as { key: string; brokeFrom: string | null; ms: number });
    case 'resize': {
      const r = result as ResizeResult;
      if (r.unchanged) return `${r.key}: unchanged at ${describeSize(r.oldSectors)}: ${r.unchanged}`;
      const told = r.announced
        ? 'announced'
        : 'not announced (no interface of the export is up); initiators see the size at their next IDENTIFY';
      return `${r.key}: ${describeSize(r.oldSectors)} -> ${describeSize(r.newSectors)} (${r.file}); ${told}`;
    }
    case 'views': {
      const r = result as { key: string; views: ViewListing[] };
      if (r.views.length === 0) return `${r.key}: no views yet (one is made by an initiator's first request)`;
      return [
        `MAC\tOWN\tCREATED\tLAST SEEN`,
        ...r.views.map((v) => `${v.mac}\t${bytes(v.ownBytes)}\t${v.created}\t${v.lastSeen ?? '-'}`),
        ...r.views.filter((v) => v.refused !== undefined).map((v) => `${v.mac} REFUSED (gets error replies): ${v.refused}`),
        ...r.views.filter((v) => v.stale !== undefined).map((v) => `${v.mac} STALE (serves the old image's disk): ${v.stale}`),
      ].join('\n');
    }
    case 'view-reset': {
      const r = result as { key: string; reset: string[] };
      return `${r.key}: ${r.reset.length} view(s) reset to the image: ${r.reset.join(' ') || '-'}`;
    }
    case 'view-drop': {
      const r = result as { key: string; dropped: string[] };
      return `${r.key}: view(s) removed: ${r.dropped.join(' ')}`;
    }
    case 'snapshot': {
      const r = result as SnapshotTaken;
      return `${r.key}: snapshot ${r.name} of ${r.of === 'export' ? 'the export' : `the view of ${r.of}`} in ${r.file}; I/O paused ${r.pausedMs.toFixed(1)} ms`;
    }
    case 'snapshots': {
      const r = result as { key: string; snapshots: SnapshotInfo[] };
      if (r.snapshots.length === 0) return `${r.key}: no snapshots`;
      return [
        'NAME\tOF\tCREATED\tOWN\tFILE',
        ...r.snapshots.map((s) => `${s.name}\t${s.of}\t${s.created}\t${bytes(s.ownBytes)}\t${s.file}`),
      ].join('\n');
    }
    case 'snapshot-delete': {
      const r = result as { key: string; name: string; deleted: string };
      return `${r.key}: snapshot ${r.name} deleted (${r.deleted})`;
    }
    case 'revert': {
      const r = result as { key: string; name: string; of: string };
      return `${r.key}: ${r.of === 'export' ? 'the export' : `the view of ${r.of}`} is snapshot ${r.name} again`;
    }
    case 'add':
    case 'remove': {
      return formatEdit(command, result as { key: string; fragment: string; reload: ReloadResult });
    }
    case 'reload': {
      const d = result as ReloadResult;
      const part = (w: string, l: string[] = []): string => `${w}: ${l.length ? l.join(' ') : '-'}`;
      const lines = [
        `reloaded; ${part('added', d.added)}; ${part('removed', d.removed)}; ${part('changed', d.changed)}; ${part('resized', d.resized)}`,
      ];
      if (d.refused?.length) lines.push(`not served: ${d.refused.join(' ')} (held; \`vblade ctl list\` says why)`);
      if (d.needsRestart?.length) lines.push(`needs a restart: ${d.needsRestart.join(', ')}`);
      for (const w of d.warnings ?? []) lines.push(`warning: ${w}`);
      return lines.join('\n');
    }
    default:
      return JSON.stringify(result, null, 2);
  }
}

/** "12.0 KiB": sizes of views and snapshots. */
function bytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

/** Where `vblade ctl` prints: the process's stdout and stderr, or a test's buffers. */
export interface CtlOutput {
  out: (text: string) => void;
  err: (text: string) => void;
}

const PROCESS_OUTPUT: CtlOutput = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Runs `vblade ctl ARGS`; returns the exit code (0 ok, 1 the command failed, 2 usage). */
export async function runCtl(argv: readonly string[], raw: CtlOutput = PROCESS_OUTPUT): Promise<number> {
  // Strings in the answers may come from the wire (a config string set by any initiator): never raw control characters.
  const io: CtlOutput = { out: (text) => raw.out(escapeForTerminal(text)), err: (text) => raw.err(escapeForTerminal(text)) };
  let o: CtlOptions;
  try {
    const help = ctlHelp(argv);
    if (help !== undefined) {
      io.out(help + '\n');
      return 0;
    }
    o = parseCtlArgs(argv);
  } catch (e) {
    if (!(e instanceof CtlUsageError)) throw e;
    io.err(`vblade ctl: ${e.message}\n`);
    return 2;
  }
  const cmd = commandByName(o.command);
  if (!cmd) return 2;
  const { socket, stale, error } = await resolveSocket(o);
  for (const p of stale)
    io.err(`vblade ctl: ignored ${p}: nobody listens on it (left by a vbladed that died); remove it with rm ${p}\n`);
  if (!socket) {
    io.err(`vblade ctl: ${error}\n`);
    return 1;
  }
  try {
    if (cmd.local) {
      const edit = await runConfigEdit(socket, o.command as 'add' | 'remove', o.export!, o.extra?.words ?? []);
      io.out((o.json ? JSON.stringify(edit, null, 2) : formatResult(o.command, edit)) + '\n');
      return 0;
    }
    const req: { command: string; export?: string; macs?: string[] } & CommandExtra = { command: o.command };
    if (o.export) req.export = o.export;
    if (o.macs) req.macs = o.macs;
    if (o.extra) Object.assign(req, o.extra);
    const reply = await controlRequest(socket, req);
    if (!reply.ok) {
      io.err(`vblade ctl ${o.command}: ${reply.error}\n`);
      return 1;
    }
    io.out((o.json ? JSON.stringify(reply.result, null, 2) : formatResult(o.command, reply.result, o.byInitiator)) + '\n');
    return 0;
  } catch (e) {
    // An edit's own refusals read as the daemon's answers used to: "vblade ctl add: ...".
    io.err(`vblade ctl${cmd.local ? ` ${o.command}` : ''}: ${(e as Error).message}\n`);
    return 1;
  }
}
