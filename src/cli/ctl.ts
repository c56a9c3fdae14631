// `vblade ctl`: the control socket's client.
//
//   vblade ctl [--socket FILE | --name NAME] [--run-dir DIR] [--json] COMMAND [EXPORT [MAC...]]
//
// Commands and their help come from control.ts COMMANDS. Without --socket
// or --name it uses the only *.sock in the run directory.

import * as fs from 'node:fs';
import * as path from 'node:path';
import yargs from 'yargs';
import { COMMANDS, commandByName, controlRequest } from '../service/control';
import type { ExportListing } from '../service/worker';

export interface CtlOptions {
  socket?: string;
  name?: string;
  runDir: string;
  json: boolean;
  command: string;
  export?: string;
  /** MAC addresses of set-mask, add-mask, del-mask, set-reserve. */
  macs?: string[];
}

/** The socket to talk to; throws a message when it cannot be decided. */
export function resolveSocket(o: { socket?: string; name?: string; runDir: string }): string {
  if (o.socket) return o.socket;
  if (o.name) return path.join(o.runDir, `${o.name}.sock`);
  let socks: string[] = [];
  try {
    socks = fs.readdirSync(o.runDir).filter((f) => f.endsWith('.sock'));
  } catch {
    // no run dir: no vbladed
  }
  if (socks.length === 1) return path.join(o.runDir, socks[0]);
  if (socks.length === 0) throw new Error(`no control socket in ${o.runDir}; is vbladed running? (or give --socket FILE)`);
  throw new Error(
    `several vbladed instances run (${socks.map((s) => s.replace(/\.sock$/, '')).join(', ')}); choose one with --name NAME`,
  );
}

function formatList(result: {
  exports: ExportListing[];
  supervisor?: { workerPid?: number; restarts?: number; ready?: boolean };
}): string {
  const lines: string[] = [];
  const s = result.supervisor;
  if (s) lines.push(`worker ${s.workerPid ?? '-'} ${s.ready ? 'serving' : 'not serving'}, ${s.restarts ?? 0} restarts`);
  for (const e of result.exports) {
    const c = e.config;
    const what = c.nullStore ? `null:${c.nullSectors}` : c.file;
    const flags = [c.readOnly ? 'ro' : 'rw', c.direct ? 'direct' : '', c.sync ? 'sync' : ''].filter(Boolean).join(',');
    lines.push(`${e.key}\t${c.interfaces.join(',')}\t${flags}\t${what}`);
    if (e.held !== undefined) lines.push(`\tNOT SERVED, held: ${e.held}`);
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

/** Human-readable output of a command's result. */
export function formatResult(command: string, result: unknown): string {
  switch (command) {
    case 'list':
      return formatList(result as Parameters<typeof formatList>[0]);
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
    case 'reload': {
      const d = result as { added: string[]; removed: string[]; changed: string[] };
      const part = (w: string, l: string[]): string => `${w}: ${l.length ? l.join(' ') : '-'}`;
      return `reloaded; ${part('added', d.added)}; ${part('removed', d.removed)}; ${part('changed', d.changed)}`;
    }
    default:
      return JSON.stringify(result, null, 2);
  }
}

export function parseCtlArgs(argv: readonly string[]): CtlOptions {
  let parsed: CtlOptions | undefined;
  let y = yargs([...argv])
    .scriptName('vblade ctl')
    .usage('usage: vblade ctl [--socket FILE | --name NAME] [--json] COMMAND [EXPORT [MAC...]]')
    .option('socket', { type: 'string', describe: 'control socket of the vbladed to talk to' })
    .option('name', { type: 'string', describe: 'instance name: uses RUN-DIR/NAME.sock' })
    .option('run-dir', { type: 'string', default: '/run/vblade', describe: 'where vbladed keeps its sockets' })
    .option('json', { type: 'boolean', default: false, describe: 'print the raw JSON result' })
    .strict()
    .demandCommand(1, 'give a command')
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    })
    .help()
    .version(false);
  for (const c of COMMANDS) {
    let pos = c.exportArg === 'required' ? `${c.name} <export>` : c.exportArg === 'optional' ? `${c.name} [export]` : c.name;
    if (c.macsArg) pos += ' <macs..>';
    y = y.command(
      pos,
      c.summary,
      (b) => {
        if (c.exportArg === 'none') return b;
        const withExport = b.positional('export', { type: 'string', describe: 'export address, e.g. e1.1' });
        return c.macsArg
          ? withExport.positional('macs', { type: 'string', array: true, describe: 'MAC addresses, e.g. 52:54:00:12:34:56' })
          : withExport;
      },
      (args) => {
        parsed = {
          command: c.name,
          runDir: args['run-dir'],
          json: args.json,
        };
        if (typeof args.socket === 'string') parsed.socket = args.socket;
        if (typeof args.name === 'string') parsed.name = args.name;
        if (typeof args.export === 'string') parsed.export = args.export;
        const macs = (args as { macs?: unknown }).macs;
        if (Array.isArray(macs)) parsed.macs = macs.map(String);
      },
    );
  }
  y.parseSync();
  if (!parsed) throw new Error('help shown');
  return parsed;
}

/** Runs `vblade ctl ARGS`; returns the exit code (0 ok, 1 the command failed, 2 usage). */
export async function runCtl(argv: readonly string[]): Promise<number> {
  let o: CtlOptions;
  try {
    o = parseCtlArgs(argv);
  } catch (e) {
    if ((e as Error).message === 'help shown') return 0;
    process.stderr.write(`vblade ctl: ${(e as Error).message}\n`);
    return 2;
  }
  if (!commandByName(o.command)) return 2;
  let socket: string;
  try {
    socket = resolveSocket(o);
  } catch (e) {
    process.stderr.write(`vblade ctl: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    const req: { command: string; export?: string; macs?: string[] } = { command: o.command };
    if (o.export) req.export = o.export;
    if (o.macs) req.macs = o.macs;
    const reply = await controlRequest(socket, req);
    if (!reply.ok) {
      process.stderr.write(`vblade ctl ${o.command}: ${reply.error}\n`);
      return 1;
    }
    process.stdout.write((o.json ? JSON.stringify(reply.result, null, 2) : formatResult(o.command, reply.result)) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`vblade ctl: ${(e as Error).message}\n`);
    return 1;
  }
}
