// Debian's /etc/vblade.conf.d/NAME.conf fragments (vblade package >= 24-2,
// contrib/persistence): one export per file as shell-style assignments
//
//   shelf=1
//   slot=2
//   netif=eth1
//   filename=/srv/vblade/disk.img
//   options='-r -m 52:54:00:12:34:56'
//   ionice='-c2 -n7'
//
// Comments are whole lines starting with # or ;, or, as in the shell, a #
// that starts a word after the value: slot=2   # the second disk.
// Debian's unit reads the file with EnvironmentFile= (no shell expansion) and
// passes `$options` split on blanks to vblade; we read it the same way and
// reuse vblade's option parser, so a fragment means what it meant there.
// Pure: the caller reads the file.

import * as path from 'node:path';
import type { ExportConfig } from './export-config';
import { ConfigError, type ConfigProblem } from './config-file';
import { suggest } from './values';
import { exportFromParts, parseInterfaceName, parseShelf, parseSlot, parseVbladeOptions } from './vblade-args';

export const DEBIAN_REQUIRED = ['shelf', 'slot', 'netif', 'filename'] as const;
export const DEBIAN_OPTIONAL = ['options', 'ionice'] as const;

/** Where the fragment is served from, for what its messages say. */
export interface DebianContext {
  /** The systemd unit this process runs in (vblade@NAME.service), when it runs in one. */
  unit?: string;
}

/** ionice's -c classes by number and name. */
const IO_CLASSES: Record<string, string> = {
  '0': 'none',
  none: 'none',
  '1': 'realtime',
  realtime: 'realtime',
  '2': 'best-effort',
  'best-effort': 'best-effort',
  '3': 'idle',
  idle: 'idle',
};

/** `-c2 -n7`, `-c 2 -n 7`, `--class idle` ... → the class and level ionice would set; undefined when unreadable. */
export function parseIonice(value: string): { ioClass: string; level?: number } | undefined {
  const words = value.split(/\s+/).filter((w) => w !== '');
  let ioClass: string | undefined;
  let level: number | undefined;
  for (let i = 0; i < words.length; i++) {
    const m = /^(-c|--classdata|--class|-n)(?:=?(.+))?$/.exec(words[i]);
    if (!m) return undefined;
    const v = m[2] ?? words[++i];
    if (v === undefined) return undefined;
    if (m[1] === '-c' || m[1] === '--class') {
      ioClass = IO_CLASSES[v];
      if (ioClass === undefined) return undefined;
    } else if (/^[0-7]$/.test(v)) level = Number(v);
    else return undefined;
  }
  return ioClass === undefined ? undefined : { ioClass, level };
}

/** What the shipped vblade@.service sets: IOSchedulingClass=best-effort, IOSchedulingPriority=7. */
const UNIT_IO = { ioClass: 'best-effort', level: 7 };

/**
 * The warning for `ionice=`: vbladed does not run ionice as Debian's unit
 * did. Under our unit, which sets best-effort/7, a fragment asking for the
 * same needs no word; anything else names the unit to edit. Run by hand,
 * it says what ionice would have done and how to get it.
 */
function ioniceWarning(raw: string, ctx: DebianContext): string | undefined {
  const io = parseIonice(raw);
  // The value is repeated in the message: no control character of a corrupt file goes to a terminal raw.
  const value = raw.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const wanted = io ? `${io.ioClass}${io.level !== undefined ? ` I/O priority ${io.level}` : ' I/O'}` : undefined;
  if (ctx.unit !== undefined) {
    if (io && io.ioClass === UNIT_IO.ioClass && (io.level ?? 4) === UNIT_IO.level) return undefined;
    return `ionice='${value}' is not applied: vbladed does not run ionice; ${ctx.unit} sets the I/O priority (IOSchedulingClass=best-effort, IOSchedulingPriority=7 as shipped)${wanted ? `; for ${wanted}` : ''}, change them with "systemctl edit ${ctx.unit}"`;
  }
  return `ionice='${value}' is not applied: vbladed does not run ionice, as Debian's unit did${wanted ? ` (it would have set ${wanted})` : ''}; to get it, run vbladed under "ionice ${value}" or start it with "systemctl start vblade@NAME", whose unit sets best-effort I/O priority 7`;
}

export interface DebianConf {
  export: ExportConfig;
  /** Things that were accepted but do nothing here (e.g. ionice), as file:line problems. */
  warnings: ConfigProblem[];
}

/**
 * The value without a trailing comment, as the shell reads one: a # that
 * starts a word (after a blank, outside quotes and not escaped). A # inside a
 * word, e.g. filename=/srv/disk#1.img, stays part of the value.
 */
function withoutShellComment(text: string): string {
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
    } else if (c === '\\') i++;
    else if (quote === '"') {
      if (c === '"') quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && i > 0 && /[ \t]/.test(text[i - 1])) return text.slice(0, i);
  }
  return text;
}

/** Removes one level of shell-style quoting the way systemd's EnvironmentFile does. */
function unquoteValue(raw: string): string | undefined {
  if (raw.startsWith("'")) {
    if (raw.length < 2 || !raw.endsWith("'") || raw.slice(1, -1).includes("'")) return undefined;
    return raw.slice(1, -1);
  }
  if (raw.startsWith('"')) {
    if (raw.length < 2 || !raw.endsWith('"')) return undefined;
    const inner = raw.slice(1, -1);
    if (/(^|[^\\])(\\\\)*"/.test(inner)) return undefined;
    return inner.replace(/\\(["\\$`])/g, '$1');
  }
  return raw;
}

export function parseDebianConf(text: string, file: string, ctx: DebianContext = {}): DebianConf {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const values = new Map<string, { value: string; line: number }>();
  const problem = (line: number, message: string): void => {
    problems.push({ file, line, message });
  };

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i].replace(/\r$/, '').trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(line);
    if (!m) {
      problem(lineNo, `"${line}" is not a name=value assignment; write e.g. shelf=1`);
      continue;
    }
    const [, key, raw] = m;
    const value = unquoteValue(withoutShellComment(raw).trim());
    if (value === undefined) {
      problem(lineNo, `unbalanced quotes in the value of ${key}; quote the whole value, e.g. ${key}='...'`);
      continue;
    }
    const keys: readonly string[] = [...DEBIAN_REQUIRED, ...DEBIAN_OPTIONAL];
    if (!keys.includes(key)) {
      // A near miss was meant as that key: ignoring it would change what is served (options='-r' lost serves read-write).
      const near = suggest(key, keys);
      if (near !== '') {
        problem(lineNo, `${key} is not a vblade.conf.d key${near}; the keys are ${keys.join(', ')}`);
        continue;
      }
      // Another name is left alone, as the EnvironmentFile= of Debian's unit left it: other tools may keep variables here.
      warnings.push({
        file,
        line: lineNo,
        message: `${key} is not a vblade.conf.d key and is ignored; the keys are ${[...DEBIAN_REQUIRED, ...DEBIAN_OPTIONAL].join(', ')}`,
      });
      continue;
    }
    const prev = values.get(key);
    if (prev) {
      problem(lineNo, `${key} is set twice (first on line ${prev.line}); keep one`);
      continue;
    }
    values.set(key, { value, line: lineNo });
  }

  for (const key of DEBIAN_REQUIRED) {
    const v = values.get(key);
    if (!v || v.value === '') {
      const example = { shelf: 'shelf=1', slot: 'slot=1', netif: 'netif=eth1', filename: 'filename=/srv/vblade/disk.img' }[key];
      problem(v?.line ?? 0, `${key} is ${v ? 'empty' : 'missing'}; add a line like ${example}`);
    }
  }

  const check = (key: string, parse: (s: string) => unknown): void => {
    const v = values.get(key);
    if (!v || v.value === '') return;
    try {
      parse(v.value);
    } catch (e) {
      problem(v.line, (e as Error).message);
    }
  };
  check('shelf', parseShelf);
  check('slot', parseSlot);
  check('netif', parseInterfaceName);

  let options = parseVbladeOptions([]).options;
  const opt = values.get('options');
  if (opt) {
    try {
      const parsed = parseVbladeOptions(opt.value.split(/\s+/).filter((t) => t !== ''));
      if (parsed.operands.length) {
        problem(
          opt.line,
          `options holds "${parsed.operands.join(' ')}", which is not a vblade option; shelf, slot, netif and filename have their own lines`,
        );
      }
      options = parsed.options;
    } catch (e) {
      problem(opt.line, `options: ${(e as Error).message}`);
    }
  }
  const ionice = values.get('ionice');
  const ioniceText = ionice && ionice.value !== '' ? ioniceWarning(ionice.value, ctx) : undefined;
  if (ionice && ioniceText !== undefined) warnings.push({ file, line: ionice.line, message: ioniceText });

  if (problems.length) {
    problems.sort((a, b) => a.line - b.line);
    throw new ConfigError(problems);
  }
  const v = (k: string): string => values.get(k)!.value;
  // Debian's unit runs vblade from / (systemd's default working directory), so a relative filename meant a path under /.
  const filename = path.resolve('/', v('filename'));
  return { export: exportFromParts(options, v('shelf'), v('slot'), v('netif'), filename), warnings };
}
