// `vblade ctl`'s command line, read against the command table (control.ts
// COMMANDS): which command, its export, MACs and words, its options. Every
// mistake is a CtlUsageError whose message names what is missing or wrong
// with an example; `vblade ctl` alone and --help give the list of commands.
// Pure: no I/O.
//
//   vblade ctl [--socket FILE | --name NAME] [--run-dir DIR] [--json] COMMAND [EXPORT [MAC...]]

import * as path from 'node:path';
import yargs, { type Argv } from 'yargs';
import { suggest } from '../config/values';
import { COMMANDS, type CommandDef } from '../service/control';
import { isRemoteUri } from '../remote/remote-uri';
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

const EXAMPLE_MAC = '52:54:00:12:34:56';

/** Options which take a value, with what the value is. */
const VALUE_OPTIONS: Record<string, string> = {
  socket: "the control socket's path, e.g. --socket /run/vblade/NAME.sock",
  name: "the instance's name, e.g. --name vblade",
  'run-dir': 'a directory, e.g. --run-dir /run/vblade',
  view: `an initiator's MAC, e.g. --view ${EXAMPLE_MAC}`,
};

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

/**
 * The words of `add` as the daemon takes them: --read-only and --mac-mask
 * LIST become read-only=yes and mac-mask=LIST, and a relative FILE (not an
 * rbd image or NBD URI) is made absolute here, where it means something (the daemon's directory is not
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
  // EXPORT INTERFACES FILE: the file is the third word; an rbd image or NBD URI is no path.
  if (words.length >= 3 && words[2] !== '' && !words[2].includes('=') && !isRemoteUri(words[2]))
    words[2] = path.resolve(words[2]);
  return [...out, ...words];
}

/** A command's positionals as yargs reads them; how many words add needs is counted on reading. */
function positionals(c: CommandDef): string {
  const p = c.exportArg === 'required' ? ['<export>'] : c.exportArg === 'optional' ? ['[export]'] : [];
  if (c.macsArg) p.push('<macs..>');
  if (c.wordsArg) p.push(c.wordsArg.min > 0 ? '<words..>' : '[words..]');
  return [c.name, ...p].join(' ');
}

const usageOf = (c: CommandDef): string => `usage: vblade ctl ${commandSynopsis(c)}; e.g. ${example(c)}`;

const needsValue = (name: string): CtlUsageError => new CtlUsageError(`--${name} needs a value: ${VALUE_OPTIONS[name]}`);
/** An option given twice: the last one counts. */
const VALUED = { type: 'string', requiresArg: true, coerce: (v: string | string[]) => [v].flat().pop() } as const;

const tooMany = (c: CommandDef, rest: readonly string[]): CtlUsageError =>
  new CtlUsageError(`${c.name} takes no more arguments; remove ${rest.map((r) => `"${r}"`).join(' ')} (${usageOf(c)})`);

/** yargs counted `got` positionals after the command, fewer than it needs: say which one is missing. */
function missingOperand(c: CommandDef, got: number): CtlUsageError {
  if (got === 0 && c.exportArg === 'required')
    return new CtlUsageError(`${c.name} needs an export address such as e1.1 (${usageOf(c)})`);
  if (c.macsArg) return new CtlUsageError(`${c.name} needs one or more MAC addresses after the export (${usageOf(c)})`);
  const w = c.wordsArg!;
  const word = w.name === 'macs' ? 'MAC address' : w.name;
  // A synopsis names the words (add: INTERFACES FILE); its part before the first [ is what is required.
  const what = w.synopsis ? w.synopsis.split(' [')[0] : w.min > 1 ? `${w.min} ${word}s` : `a ${word}`;
  return new CtlUsageError(`${c.name} needs ${what} after the export (${usageOf(c)})`);
}

function unknownOption(name: string, c: CommandDef | undefined): CtlUsageError {
  if (c && ['all', 'force', 'view'].includes(name)) {
    const takes = (c.options ?? []).map((o) => `--${o.name}`);
    return new CtlUsageError(
      `${c.name} has no option --${name}; ${takes.length ? `it takes ${takes.join(' ')}` : 'it takes none'} (usage: vblade ctl ${commandSynopsis(c)})`,
    );
  }
  const known = ['--socket', '--name', '--run-dir', '--json', '--by-initiator', '--help', '--all', '--force', '--view'];
  const given = `${name.length > 1 ? '--' : '-'}${name}`;
  return new CtlUsageError(
    `unknown option ${given}${suggest(given, known)}; vblade ctl takes --socket FILE, --name NAME, --run-dir DIR and --json, stats --by-initiator, add --read-only and --mac-mask LIST, and some commands --all, --force or --view MAC (see vblade ctl COMMAND --help)`,
  );
}

/** yargs's message for a mistake (its English) → ours; `c` is the command yargs matched, if any. */
function translate(msg: string, c: CommandDef | undefined, argv: readonly string[]): CtlUsageError {
  let m: RegExpExecArray | null;
  if ((m = /^Not enough arguments following: (\S+)$/.exec(msg))) return needsValue(m[1]);
  if (c && (m = /^Not enough non-option arguments: got (\d+)/.exec(msg))) return missingOperand(c, Number(m[1]));
  if ((m = /^Unknown arguments?: (.*)$/s.exec(msg))) {
    const words = m[1].split(', ');
    const option = words.find((w) => argv.some((a) => a === `--${w}` || a.startsWith(`--${w}=`) || a === `-${w}`));
    if (option !== undefined) return unknownOption(option, c);
    if (!c) {
      const names = COMMANDS.map((d) => d.name);
      return new CtlUsageError(
        `unknown command ${words[0]}${suggest(words[0], names)}; commands are ${names.join(', ')} (see vblade ctl --help)`,
      );
    }
    return tooMany(c, words);
  }
  return new CtlUsageError(msg);
}

/** What ARGS ask for, read by yargs against the command table: help to print, or a command to run. */
function readCtlArgs(argv: readonly string[]): { help?: string; options?: CtlOptions } {
  const args = addArguments(argv);
  // yargs reads --json=yes as false, "-" as true, --export X as the export, and keeps words after "--" apart: say so instead.
  const flag = args.find((a) => /^--(json|by-initiator|help|all|force)=/.test(a))?.split('=')[0];
  if (flag) throw new CtlUsageError(`${flag} takes no value; write ${flag} alone`);
  const positional = args.find((a) => /^--(export|macs|words)(=|$)/.test(a));
  if (positional) throw unknownOption(positional.slice(2).split('=')[0], undefined);
  const dash = args.find((a) => a === '-' || a === '--');
  if (dash) throw new CtlUsageError(`"${dash}" means nothing to vblade ctl (no export, MAC or name begins with "-"); remove it`);
  let command: CommandDef | undefined;
  let options: CtlOptions | undefined;
  let y = yargs(args)
    // An export, a MAC, a name are text: "1.10" and "0123" stay as written.
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false })
    .option('socket', VALUED)
    .option('name', VALUED)
    .option('run-dir', { ...VALUED, default: DEFAULT_RUN_DIR })
    .boolean(['json', 'by-initiator'])
    .help('help')
    .alias('help', 'h')
    .version(false)
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      throw err instanceof CtlUsageError ? err : translate(msg ?? err.message, command, args);
    });
  for (const c of COMMANDS) {
    const builder = (b: Argv): Argv => {
      command = c;
      for (const o of c.options ?? []) b.option(o.name, o.name === 'view' ? VALUED : { type: 'boolean' });
      return b;
    };
    y = y.command(positionals(c), c.summary, builder, (a: Record<string, unknown>) => {
      for (const k of ['socket', 'name', 'run-dir', 'view']) if (a[k] === '') throw needsValue(k);
      if (a['by-initiator'] && c.name !== 'stats') throw new CtlUsageError(`--by-initiator goes with stats only, not ${c.name}`);
      const words = ((a.words as unknown[] | undefined) ?? []).map(String);
      if (words.length < (c.wordsArg?.min ?? 0)) throw missingOperand(c, 1 + words.length);
      if (words.length > (c.wordsArg?.max ?? 0)) throw tooMany(c, words.slice(c.wordsArg?.max));
      const o: CtlOptions = { command: c.name, runDir: String(a['run-dir']), json: a.json === true };
      if (a['by-initiator']) o.byInitiator = true;
      for (const k of ['socket', 'name'] as const) if (a[k] !== undefined) o[k] = a[k] as string;
      if (a.export !== undefined) o.export = a.export as string;
      if (a.macs) o.macs = (a.macs as unknown[]).map(String);
      if (c.wordsArg || c.options) {
        o.extra = words.length ? { words } : {};
        for (const k of ['all', 'force'] as const) if (a[k] === true) o.extra[k] = true;
        if (a.view !== undefined) o.extra.view = a.view as string;
      }
      options = o;
    });
  }
  // A parse callback keeps yargs from printing its own help; ours is built from the table.
  if (y.parseSync(args, {}, () => undefined).help === true || !command)
    return { help: command ? commandHelp(command) : commandListing() };
  return { options };
}

/**
 * The text `vblade ctl` prints and exits 0 with: the list of commands when
 * no command is given or --help is, one command's help for COMMAND --help.
 * Undefined when a command is to run. Throws CtlUsageError as parseCtlArgs.
 */
export function ctlHelp(argv: readonly string[]): string | undefined {
  return readCtlArgs(argv).help;
}

/** `vblade ctl ARGS` → what to ask; throws CtlUsageError for a command line that cannot be meant. */
export function parseCtlArgs(argv: readonly string[]): CtlOptions {
  const { options } = readCtlArgs(argv);
  if (!options) throw new CtlUsageError(`give a command; ${CTL_USAGE.slice('usage: '.length)}`);
  return options;
}
