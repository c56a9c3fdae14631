// `vblade ctl`'s command line, read against the command table (control.ts
// COMMANDS): which command, its export, MACs and words, its options. Every
// mistake is a CtlUsageError whose message names what is missing or wrong
// with an example; `vblade ctl` alone and --help give the list of commands.
// Pure: no I/O.
//
//   vblade ctl [--socket FILE | --name NAME] [--run-dir DIR] [--json] COMMAND [EXPORT [MAC...]]

import * as path from 'node:path';
import { suggest } from '../config/values';
import { COMMANDS, commandByName, type CommandDef } from '../service/control';
import type { CommandExtra } from '../service/worker';

export const CTL_USAGE =
  'usage: vblade ctl [--socket FILE | --name NAME] [--run-dir DIR] [--json] [--by-initiator] COMMAND [EXPORT [MAC...]]';
export const DEFAULT_RUN_DIR = '/run/vblade';

export interface CtlOptions {
  socket?: string;
  name?: string;
  runDir: string;
  json: boolean;
  /** stats: one row per initiator MAC of each export instead of the summary tables. */
  byInitiator?: boolean;
  command: string;
  export?: string;
  /** MAC addresses of set-mask, add-mask, del-mask, set-reserve. */
  macs?: string[];
  /** Words after the export and options of the views and snapshot commands. */
  extra?: CommandExtra;
}

/** A mistake on the command line; the message says what and how to write it. */
export class CtlUsageError extends Error {
  override name = 'CtlUsageError';
}

/** Options of ctl itself, which take a value, with what the value is. */
const VALUE_OPTIONS: Record<string, string> = {
  socket: "the control socket's path, e.g. --socket /run/vblade/NAME.sock",
  name: "the instance's name, e.g. --name vblade",
  'run-dir': 'a directory, e.g. --run-dir /run/vblade',
};

const EXAMPLE_MAC = '52:54:00:12:34:56';

/** `COMMAND EXPORT MAC...`: the command's arguments as --help and the messages write them. */
export function commandSynopsis(c: CommandDef): string {
  let s = c.exportArg === 'required' ? `${c.name} EXPORT` : c.exportArg === 'optional' ? `${c.name} [EXPORT]` : c.name;
  if (c.macsArg) s += ' MAC...';
  const w = c.wordsArg;
  if (w?.synopsis) s += ` ${w.synopsis}`;
  else if (w) {
    const word = w.name.toUpperCase().replace(/S$/, '');
    const many = w.max > 1 ? '...' : '';
    s += w.min > 0 ? ` ${word}${many}` : ` [${word}${many}]`;
  }
  for (const o of c.options ?? []) s += o.name === 'view' ? ' [--view MAC]' : ` [--${o.name}]`;
  return s;
}

/** A command line that works: the synopsis with an address, a MAC and a name in place. */
function example(c: CommandDef): string {
  let s = `vblade ctl ${c.name}`;
  if (c.exportArg === 'required') s += ' e1.1';
  if (c.macsArg) s += ` ${EXAMPLE_MAC}`;
  const w = c.wordsArg;
  if (w?.example) s += ` ${w.example}`;
  else if (w && w.min > 0) s += w.name === 'macs' ? ` ${EXAMPLE_MAC}` : ' monday';
  return s;
}

/** Usage and every command of the table with its summary, for `vblade ctl` without a command. */
export function commandListing(): string {
  // A synopsis longer than most (add's) gets its summary on the next line, so the column stays narrow.
  const SYNOPSIS_COLUMN = 32;
  const line = (c: CommandDef): string => {
    const s = commandSynopsis(c);
    return s.length < SYNOPSIS_COLUMN
      ? `  ${s.padEnd(SYNOPSIS_COLUMN)}${c.summary}`
      : `  ${s}\n  ${' '.repeat(SYNOPSIS_COLUMN)}${c.summary}`;
  };
  return [
    CTL_USAGE,
    'commands:',
    ...COMMANDS.map(line),
    '',
    'EXPORT is an address such as e1.1; "vblade ctl COMMAND --help" shows one command.',
  ].join('\n');
}

function commandHelp(c: CommandDef): string {
  const lines = [`usage: vblade ctl [--socket FILE | --name NAME] [--run-dir DIR] [--json] ${commandSynopsis(c)}`, '', c.summary];
  if (c.wordsArg) lines.push(`  ${c.wordsArg.name.toUpperCase().replace(/S$/, '')}: ${c.wordsArg.describe}`);
  for (const o of c.options ?? []) lines.push(`  --${o.name}${o.name === 'view' ? ' MAC' : ''}: ${o.describe}`);
  lines.push('', `example: ${example(c)}`);
  return lines.join('\n');
}

interface Scanned {
  values: Record<string, string>;
  json: boolean;
  byInitiator: boolean;
  help: boolean;
  /** Options for the command (--all, --force, --view MAC), as given. */
  commandOptions: Map<string, string | true>;
  words: string[];
}

/**
 * The words of `add` as the daemon takes them: --read-only and --mac-mask
 * LIST become read-only=yes and mac-mask=LIST, and a relative FILE is made
 * absolute here, where it means something (the daemon's directory is not
 * the caller's). Other arguments are left as they are.
 */
export function addArguments(argv: readonly string[]): string[] {
  // The command is the first word that is neither an option nor an option's value.
  let at = 0;
  while (at < argv.length && argv[at].startsWith('-')) at += ['--socket', '--name', '--run-dir'].includes(argv[at]) ? 2 : 1;
  if (argv[at] !== 'add') return [...argv];
  const out = argv.slice(0, at + 1);
  const words: string[] = [];
  for (let i = at + 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--read-only') words.push('read-only=yes');
    else if (a === '--mac-mask' && i + 1 < argv.length) words.push(`mac-mask=${argv[++i]}`);
    else if (a.startsWith('--mac-mask=')) words.push(`mac-mask=${a.slice('--mac-mask='.length)}`);
    else if (a.startsWith('-')) out.push(a);
    else words.push(a);
  }
  // EXPORT INTERFACES FILE: the file is the third word.
  if (words.length >= 3 && words[2] !== '' && !words[2].includes('=')) words[2] = path.resolve(words[2]);
  return [...out, ...words];
}

function scan(argv: readonly string[]): Scanned {
  const s: Scanned = { values: {}, json: false, byInitiator: false, help: false, commandOptions: new Map(), words: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      s.words.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      s.help = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      s.words.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(arg.startsWith('--') ? 2 : 1, eq < 0 ? undefined : eq);
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const flag = (set: () => void): void => {
      if (inline !== undefined) throw new CtlUsageError(`--${name} takes no value; write --${name} alone`);
      set();
    };
    if (name in VALUE_OPTIONS || name === 'view') {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '' || (inline === undefined && v.startsWith('-'))) {
        const what = name === 'view' ? `an initiator's MAC, e.g. --view ${EXAMPLE_MAC}` : VALUE_OPTIONS[name];
        throw new CtlUsageError(`--${name} needs a value: ${what}`);
      }
      if (name === 'view') s.commandOptions.set(name, v);
      else s.values[name] = v;
    } else if (name === 'json') flag(() => (s.json = true));
    else if (name === 'by-initiator') flag(() => (s.byInitiator = true));
    else if (name === 'help') flag(() => (s.help = true));
    else if (name === 'all' || name === 'force') flag(() => s.commandOptions.set(name, true));
    else {
      const known = ['--socket', '--name', '--run-dir', '--json', '--by-initiator', '--help', '--all', '--force', '--view'];
      throw new CtlUsageError(
        `unknown option ${arg.slice(0, eq < 0 ? undefined : eq)}${suggest(`--${name}`, known)}; vblade ctl takes --socket FILE, --name NAME, --run-dir DIR and --json, stats --by-initiator, add --read-only and --mac-mask LIST, and some commands --all, --force or --view MAC (see vblade ctl COMMAND --help)`,
      );
    }
  }
  return s;
}

/**
 * The text `vblade ctl` prints and exits 0 with: the list of commands when
 * no command is given or --help is, one command's help for COMMAND --help.
 * Undefined when a command is to run. Throws CtlUsageError as parseCtlArgs.
 */
export function ctlHelp(argv: readonly string[]): string | undefined {
  const s = scan(addArguments(argv));
  if (s.words.length === 0) return commandListing();
  if (!s.help) return undefined;
  const c = commandByName(s.words[0]);
  return c ? commandHelp(c) : commandListing();
}

function unknownCommand(word: string): CtlUsageError {
  const names = COMMANDS.map((c) => c.name);
  return new CtlUsageError(
    `unknown command ${word}${suggest(word, names)}; commands are ${names.join(', ')} (see vblade ctl --help)`,
  );
}

/** What the words after the command are: export, MACs and words, counted against the table. */
function takeOperands(c: CommandDef, words: string[]): Pick<CtlOptions, 'export' | 'macs'> & { words?: string[] } {
  const rest = [...words];
  const usage = `usage: vblade ctl ${commandSynopsis(c)}; e.g. ${example(c)}`;
  const o: Pick<CtlOptions, 'export' | 'macs'> & { words?: string[] } = {};
  if (c.exportArg !== 'none') {
    if (rest.length === 0 && c.exportArg === 'required')
      throw new CtlUsageError(`${c.name} needs an export address such as e1.1 (${usage})`);
    if (rest.length > 0) o.export = rest.shift();
  }
  if (c.macsArg) {
    if (rest.length === 0) throw new CtlUsageError(`${c.name} needs one or more MAC addresses after the export (${usage})`);
    o.macs = rest.splice(0);
  }
  const w = c.wordsArg;
  if (w) {
    const word = w.name === 'macs' ? 'MAC address' : w.name;
    if (rest.length < w.min)
      throw new CtlUsageError(`${c.name} needs ${w.min > 1 ? `${w.min} ${word}s` : `a ${word}`} after the export (${usage})`);
    o.words = rest.splice(0, w.max);
  }
  if (rest.length > 0) {
    throw new CtlUsageError(`${c.name} takes no more arguments; remove ${rest.map((r) => `"${r}"`).join(' ')} (${usage})`);
  }
  return o;
}

/** `vblade ctl ARGS` → what to ask; throws CtlUsageError for a command line that cannot be meant. */
export function parseCtlArgs(argv: readonly string[]): CtlOptions {
  const s = scan(addArguments(argv));
  if (s.words.length === 0) throw new CtlUsageError(`give a command; ${CTL_USAGE.slice('usage: '.length)}`);
  const c = commandByName(s.words[0]);
  if (!c) throw unknownCommand(s.words[0]);
  for (const name of s.commandOptions.keys()) {
    if (!(c.options ?? []).some((o) => o.name === name)) {
      const takes = (c.options ?? []).map((o) => `--${o.name}`);
      throw new CtlUsageError(
        `${c.name} has no option --${name}; ${takes.length ? `it takes ${takes.join(' ')}` : 'it takes none'} (usage: vblade ctl ${commandSynopsis(c)})`,
      );
    }
  }
  const operands = takeOperands(c, s.words.slice(1));
  const parsed: CtlOptions = { command: c.name, runDir: s.values['run-dir'] ?? DEFAULT_RUN_DIR, json: s.json };
  if (s.byInitiator) {
    if (c.name !== 'stats') throw new CtlUsageError(`--by-initiator goes with stats only, not ${c.name}`);
    parsed.byInitiator = true;
  }
  if (s.values.socket !== undefined) parsed.socket = s.values.socket;
  if (s.values.name !== undefined) parsed.name = s.values.name;
  if (operands.export !== undefined) parsed.export = operands.export;
  if (operands.macs) parsed.macs = operands.macs;
  if (c.wordsArg || c.options) {
    const extra: CommandExtra = {};
    if (operands.words && operands.words.length > 0) extra.words = operands.words;
    if (s.commandOptions.get('all') === true) extra.all = true;
    if (s.commandOptions.get('force') === true) extra.force = true;
    const view = s.commandOptions.get('view');
    if (typeof view === 'string') extra.view = view;
    parsed.extra = extra;
  }
  return parsed;
}
