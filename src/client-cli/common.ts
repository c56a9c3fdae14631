// Pieces shared by the aoe-client and aoe-bench command lines.

/** A command-line mistake: printed without a stack, exit status 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/** "e1.2", "1.2" → {shelf: 1, slot: 2}. */
export function parseTargetAddress(text: string): { shelf: number; slot: number } {
  const m = /^e?(\d+)\.(\d+)$/i.exec(text.trim());
  if (m === null) throw new CliError(`not a target address: "${text}" (write shelf.slot as e1.2 or 1.2)`);
  const shelf = Number(m[1]);
  const slot = Number(m[2]);
  if (shelf > 65534) throw new CliError(`shelf ${shelf} is out of range: use 0..65534 (65535 is the broadcast shelf)`);
  if (slot > 254) throw new CliError(`slot ${slot} is out of range: use 0..254 (255 is the broadcast slot)`);
  return { shelf, slot };
}

/** A namespace name ("blue") or path ("/run/netns/blue") → the path. */
export function netnsPath(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  return value.includes('/') ? value : `/run/netns/${value}`;
}

/** Classic hex dump: offset, 16 bytes in hex, printable ASCII. */
export function hexDump(data: Uint8Array, baseOffset = 0): string {
  const lines: string[] = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, Math.min(i + 16, data.length));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0'));
    const left = hex.slice(0, 8).join(' ');
    const right = hex.slice(8).join(' ');
    const text = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${(baseOffset + i).toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${text}|`);
  }
  return lines.join('\n');
}

export function hex4(v: number): string {
  return `0x${v.toString(16).padStart(4, '0')}`;
}

/** C0 (but newline and tab), DEL and C1 characters as \uXXXX. */
export function escapeControlChars(text: string): string {
  return text.replace(/\p{Cc}/gu, (c) => (c === '\n' || c === '\t' ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** Prints a failure the way every command of the project does, and sets the exit status. */
export function reportFailure(program: string, e: unknown): void {
  const err = e as Error;
  const known = ['CliError', 'AoeError', 'AtaError', 'TimeoutError', 'ReplyFormatError', 'RangeError'];
  // Errors from the native addon carry the errno name in `code` and say what to do in the message.
  const native = typeof (err as { code?: unknown })?.code === 'string';
  const text =
    known.includes(err?.name) || native || /native addon|no network interface|is down/.test(String(err?.message))
      ? err.message
      : (err?.stack ?? String(e));
  // A word from the command line (an unknown command) may hold escape sequences: they must not reach the terminal raw.
  process.stderr.write(`${program}: ${escapeControlChars(text)}\n`);
  process.exitCode = 1;
}

/** The package version, for --version; package.json is three levels above dist/src/client-cli. */
export function clientVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../../package.json') as { version: string }).version;
}

/** A subcommand as the usage messages name it: `read <target> <lba> [count]` and a line that works. */
export interface CommandUsage {
  usage: string;
  example: string;
}

export interface UsageContext {
  program: string;
  argv: readonly string[];
  /** Subcommands by name (aoe-client); none for a program without (aoe-bench). */
  commands?: Record<string, CommandUsage>;
  /** A command line that works, for the program as a whole. */
  example: string;
}

function commandOf(ctx: UsageContext): string | undefined {
  const first = ctx.argv.find((a) => !a.startsWith('-'));
  return first !== undefined && ctx.commands && first in ctx.commands ? first : undefined;
}

function quoteList(text: string): string {
  return text.replace(/"/g, '').split(/,\s*/).join(', ');
}

/**
 * yargs's own message for a command-line mistake (English, in its words) →
 * ours: which argument is missing or wrong, with the usage and an example.
 * A message yargs did not word (one of ours) comes back as it is.
 */
export function usageMessage(msg: string, ctx: UsageContext): string {
  const name = commandOf(ctx);
  const cmd = name !== undefined ? ctx.commands![name] : undefined;
  const usage = cmd
    ? `usage: ${ctx.program} ${cmd.usage}; e.g. ${cmd.example}`
    : `e.g. ${ctx.example}; see ${ctx.program} --help`;
  let m: RegExpExecArray | null;
  if ((m = /^Not enough non-option arguments: got (\d+), need at least \d+$/.exec(msg)) && cmd) {
    const required = [...cmd.usage.matchAll(/<(\w+)(\.\.)?>/g)].map((r) => r[1]).slice(Number(m[1]));
    return `${name} needs ${required.map((r) => `<${r}>`).join(' ')} (${usage})`;
  }
  if ((m = /^Unknown arguments?: (.*)$/.exec(msg))) {
    const words = m[1].split(', ');
    if (ctx.commands && !cmd && !words[0].startsWith('-')) {
      return `unknown command ${words[0]}; commands are ${Object.keys(ctx.commands).join(', ')} (see ${ctx.program} --help)`;
    }
    const options = words.filter(
      (w) => w.length > 1 && ctx.argv.some((a) => a === `--${w}` || a.startsWith(`--${w}=`) || a === `-${w}`),
    );
    const extra = words.filter((w) => !options.includes(w));
    const parts = [
      ...(options.length ? [`unknown option ${options.map((o) => (o.length > 1 ? `--${o}` : `-${o}`)).join(' ')}`] : []),
      ...(extra.length ? [`too many arguments: ${extra.map((w) => `"${w}"`).join(' ')}`] : []),
    ];
    return `${parts.join('; ')} (${usage})`;
  }
  if ((m = /^Did you mean (.*)\?$/.exec(msg)) && ctx.commands) {
    const given = ctx.argv.find((a) => !a.startsWith('-')) ?? '';
    return `unknown command ${given} (did you mean "${m[1]}"?); commands are ${Object.keys(ctx.commands).join(', ')}`;
  }
  if ((m = /^Missing required arguments?: ([^\n]*)\n?(.*)$/s.exec(msg))) {
    // yargs adds the demandOption texts, one a line, after its own.
    const hints = [...new Set(m[2].split('\n').filter(Boolean))];
    const missing = m[1].split(', ').map((o) => `--${o}`);
    return `missing ${missing.join(', ')}${hints.length ? `: ${hints.join('; ')}` : ''} (${usage})`;
  }
  if ((m = /^Invalid values:\s*Argument: (\S+), Given: (.*), Choices: (.*)$/s.exec(msg))) {
    const isOption = ctx.argv.some((a) => a === `--${m![1]}` || a.startsWith(`--${m![1]}=`));
    return `${isOption ? `--${m[1]}` : m[1]} ${m[2]} is not one of ${quoteList(m[3])} (${usage})`;
  }
  if ((m = /^(?:Not enough arguments following|Missing argument value): (\S+)$/.exec(msg))) {
    return `--${m[1]} needs a value (${usage})`;
  }
  if ((m = /^Arguments (\S+) and (\S+) are mutually exclusive$/.exec(msg))) {
    return `give --${m[1]} or --${m[2]}, not both (${usage})`;
  }
  if ((m = /^Too many non-option arguments: got (\d+), maximum of (\d+)$/.exec(msg))) {
    return `too many arguments (${usage})`;
  }
  return msg;
}

/** yargs's fail handler for our programs: its mistakes become a CliError in our words, ours pass through. */
export function failHandler(ctx: UsageContext): (msg: string | null, err: Error | undefined) => never {
  return (msg, err) => {
    // yargs reports a few mistakes (an option without its value) as a YError rather than a message.
    if (err && err.name !== 'YError') throw err;
    throw new CliError(usageMessage(msg ?? err?.message ?? 'command-line mistake', ctx));
  };
}
