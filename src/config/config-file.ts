// The multi-export config file (/etc/vblade.conf): its format and a pure
// parser/validator that checks every line against the key table (keys.ts)
// and reports every problem at once.
//
// Format (documented in vblade.conf(5), rendered by render-docs.ts):
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
import { exportKey, type ExportConfig } from './export-config';
import { EXPORT_KEYS, KEYS, keyDef, type DaemonKeys } from './keys';
import { BOOL_WORDS, checkValue, parseValue, type Value } from './values';
import { parseShelf, parseSlot } from './vblade-args';

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

/** What a config file declares. */
export interface ConfigFile {
  file: string;
  daemon: DaemonKeys;
  /** Line of each daemon key, for messages. */
  daemonLines: Record<string, number>;
  exports: ExportConfig[];
}

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

type Report = (line: number, message: string) => void;

/** The sections read so far, line by line. */
interface Reader {
  sections: Section[];
  /** The section the next key = value line belongs to; undefined after a bad header. */
  current?: Section;
  daemonSeen?: Section;
  problem: Report;
}

/**
 * Parses and validates the text of a config file. Collects every problem and
 * throws one ConfigError listing them; returns only a fully valid result.
 */
export function parseConfigFile(text: string, file: string): ConfigFile {
  const problems: ConfigProblem[] = [];
  const problem: Report = (line, message) => {
    problems.push({ file, line, message });
  };
  const reader: Reader = { sections: [], problem };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '').trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    // A header may carry a trailing comment like any other line ("[export e1.1]   # the lab").
    if (line[0] === '[') readHeader(reader, withoutTrailingComment(line).trimEnd(), i + 1);
    else readKeyLine(reader, line, i + 1);
  }
  const result = settle(reader.sections, file, problem);
  if (problems.length === 0 && result.exports.length === 0) {
    problem(0, 'declares no export; add an [export eSHELF.SLOT] section with file and interfaces');
  }
  if (problems.length) {
    problems.sort((a, b) => a.line - b.line);
    throw new ConfigError(problems);
  }
  return result;
}

/** A [section] line: opens the section it names, or reports why it cannot. */
function readHeader(r: Reader, line: string, lineNo: number): void {
  r.current = undefined;
  const m = /^\[\s*([a-z]+)(?:\s+(\S+))?\s*\]$/.exec(line);
  if (!m) {
    r.problem(lineNo, `"${line}" is not a section header; ${SECTION_HELP}`);
    return;
  }
  const [, kind, name] = m;
  if (kind === 'daemon') {
    if (name !== undefined) r.problem(lineNo, `[daemon] takes no name; write just [daemon]`);
    if (r.daemonSeen) {
      r.problem(lineNo, `[daemon] appears twice (first on line ${r.daemonSeen.line}); merge the two sections`);
    }
    r.current = { kind: 'daemon', line: lineNo, name: 'daemon', values: new Map(), bad: new Set() };
    r.daemonSeen ??= r.current;
    r.sections.push(r.current);
  } else if (kind === 'export') {
    r.current = { kind: 'export', line: lineNo, name: name ?? '', values: new Map(), bad: new Set() };
    r.sections.push(r.current);
    readExportAddress(r, r.current, lineNo);
  } else {
    r.problem(
      lineNo,
      `unknown section [${kind}${name ? ' ' + name : ''}]${suggest(kind, ['daemon', 'export'])}; ${SECTION_HELP}`,
    );
  }
}

/** The eSHELF.SLOT of an [export] header, into the section. */
function readExportAddress(r: Reader, s: Section, lineNo: number): void {
  const am = s.name === '' ? null : /^e?([0-9]+)\.([0-9]+)$/.exec(s.name);
  if (!am) {
    r.problem(
      lineNo,
      s.name === ''
        ? `[export] needs the export's address; write [export eSHELF.SLOT], e.g. [export e1.1]`
        : `"${s.name}" is not an export address; write eSHELF.SLOT, e.g. [export e1.1]`,
    );
    return;
  }
  try {
    s.shelf = parseShelf(am[1]);
    s.slot = parseSlot(am[2]);
  } catch (e) {
    r.problem(lineNo, (e as Error).message);
  }
}

/** A key = value line: checked against the table and kept in the current section. */
function readKeyLine(r: Reader, line: string, lineNo: number): void {
  const eq = line.indexOf('=');
  if (eq < 0) {
    r.problem(lineNo, `"${line}" is not a key = value line; write key = value, or start a comment with #`);
    return;
  }
  const key = line.slice(0, eq).trim();
  const raw = withoutTrailingComment(line.slice(eq + 1)).trim();
  const current = r.current;
  if (!current) {
    if (r.sections.length === 0)
      r.problem(lineNo, `"${key}" is outside any section; put it under [daemon] or [export eSHELF.SLOT]`);
    // After a bad header the problem is already reported; skip the body.
    return;
  }
  const def = keyDef(current.kind, key);
  const where = current.kind === 'daemon' ? '[daemon]' : `[export ${current.name}]`;
  if (!def) {
    r.problem(lineNo, `unknown key "${key}" in ${where}${unknownKeyHint(current.kind, key)}`);
    return;
  }
  const value = unquote(raw);
  if (value === undefined) {
    r.problem(
      lineNo,
      `unbalanced quotes in the value of ${key}; quote the whole value as "..." and write \\" for a quote inside`,
    );
    current.bad.add(key);
    return;
  }
  const prev = current.values.get(key);
  if (prev) {
    r.problem(lineNo, `${key} is set twice in ${where} (first on line ${prev.line}); keep one`);
    return;
  }
  const err = value === '' ? undefined : checkValue(def, value);
  if (err) {
    r.problem(lineNo, err);
    current.bad.add(key);
    return;
  }
  current.values.set(key, { value, line: lineNo });
}

/** Where a key that is not one of its section's belongs, or what it may be a typo of. */
function unknownKeyHint(kind: Section['kind'], key: string): string {
  const other = keyDef(kind === 'daemon' ? 'export' : 'daemon', key);
  if (other) return `; ${key} belongs in ${other.section === 'daemon' ? '[daemon]' : 'an [export] section'}`;
  const known = KEYS.filter((k) => k.section === kind).map((k) => k.key);
  return `${suggest(key, known)}; known keys: ${known.join(', ')}`;
}

/** The sections read, as daemon keys and exports; reports exports declared twice and incomplete ones. */
function settle(sections: Section[], file: string, problem: Report): ConfigFile {
  const exports: ExportConfig[] = [];
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
    if (e) exports.push(e);
  }
  return { file, daemon, daemonLines, exports };
}

/** The export a section declares, or undefined after reporting what is missing or contradictory. */
function exportFromSection(s: Section, configFile: string, problem: Report): ExportConfig | undefined {
  if (!checkExportSection(s, problem)) return undefined;
  // Fields an export always has, also when their keys are unset.
  const e: Partial<Record<keyof ExportConfig, Value>> = { shelf: s.shelf!, slot: s.slot!, file: '', macMask: [] };
  for (const def of EXPORT_KEYS) {
    const text = s.values.get(def.key)?.value || def.default;
    const value = text === '' ? undefined : parseValue(def, text);
    if (value === undefined) continue;
    e[def.field] = def.type === 'path' ? path.resolve(path.dirname(configFile), value as string) : value;
  }
  return e as ExportConfig;
}

/** Problems that need several keys of one export together: a missing file or interface, a null store or views set up by half. */
function checkExportSection(s: Section, problem: Report): boolean {
  const get = (k: string): string | undefined => s.values.get(k)?.value || undefined;
  const where = `[export ${s.name}]`;
  const nullStore = BOOL_WORDS[(get('null-store') ?? 'no').toLowerCase()];
  let ok = true;
  if (get('file') === undefined && !nullStore && !s.bad.has('file')) {
    problem(s.line, `${where} has no file; add file = /path/to/image-or-device`);
    ok = false;
  }
  if (get('interfaces') === undefined) {
    if (!s.bad.has('interfaces')) problem(s.line, `${where} has no interfaces; add interfaces = eth1 (several may be listed)`);
    ok = false;
  }
  const nullSectors = get('null-sectors');
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
  const hasViews = views === 'per-initiator' || views === 'per-boot';
  if (hasViews && get('views-dir') === undefined && !s.bad.has('views-dir')) {
    problem(
      s.values.get('views')!.line,
      `views = ${views} needs views-dir; add views-dir = /srv/aoe/views (on the same file system as file)`,
    );
    ok = false;
  }
  if (hasViews && nullStore) {
    problem(s.values.get('views')!.line, `views = ${views} cannot be used with null-store = yes; remove one of them`);
    ok = false;
  }
  if (get('per-boot-gap') !== undefined && views !== 'per-boot' && !s.bad.has('views')) {
    problem(
      s.values.get('per-boot-gap')!.line,
      `per-boot-gap is set but views is not per-boot; set views = per-boot or remove per-boot-gap`,
    );
    ok = false;
  }
  return ok;
}
