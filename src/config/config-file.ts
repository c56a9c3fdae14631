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
//
// Fragments (config-dir, `vblade ctl add`) are more [export] and [group]
// sections read after the main file: parseConfigFiles checks them all
// together, so an address declared twice or a group named in another file
// is found wherever it is.

import * as path from 'node:path';
import { isRemoteUri } from '../remote/remote-uri';
import { exportKey, type ExportConfig } from './export-config';
import { EXPORT_KEYS, KEYS, keyDef, type DaemonKeys } from './keys';
import { checkMacListText, expandMacList, groupNameProblem, groupRefs, type GroupUse, type MacGroup } from './mac-groups';
import { BOOL_WORDS, checkValue, parseValue, suggest, type Value } from './values';
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
  constructor(
    readonly problems: ConfigProblem[],
    /** The exports whose sections have no mistake: --check tries their files and interfaces in the same round. */
    readonly sound: readonly ExportConfig[] = [],
  ) {
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
  /** Where each export (by eS.L) is declared. */
  origins: Record<string, { file: string; line: number }>;
  /** The [group] sections, with the exports that name each. */
  groups: GroupUse[];
  /** Accepted but worth a look (a group no export names), as file:line: text. */
  warnings: string[];
}

/** One file's text, for parseConfigFiles. */
export interface ConfigText {
  text: string;
  file: string;
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
  kind: 'daemon' | 'export' | 'group';
  file: string;
  line: number;
  name: string;
  shelf?: number;
  slot?: number;
  values: Map<string, { value: string; line: number }>;
  /** Keys whose line had an error (already reported; not "missing"). */
  bad: Set<string>;
}

const SECTION_HELP = 'sections are [daemon], [export eSHELF.SLOT] and [group NAME], e.g. [export e1.1]';

type Report = (line: number, message: string) => void;
/** A problem in any of the files read together. */
type ReportIn = (file: string, line: number, message: string) => void;

/** The sections read so far, line by line. */
interface Reader {
  file: string;
  /** A fragment holds no [daemon] section. */
  fragment: boolean;
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
  return parseConfigFiles({ text, file }, []);
}

/**
 * The main config file and its fragments (in the order read), checked
 * together: one ConfigError lists every problem of every file.
 */
export function parseConfigFiles(main: ConfigText, fragments: readonly ConfigText[], needExport = true): ConfigFile {
  const problems: ConfigProblem[] = [];
  const problemIn: ReportIn = (file, line, message) => {
    problems.push({ file, line, message });
  };
  const sections: Section[] = [];
  for (const [i, f] of [main, ...fragments].entries()) {
    sections.push(...readSections(f, i > 0, (line, message) => problemIn(f.file, line, message)));
  }
  const result = settle(sections, main.file, problemIn);
  if (needExport && problems.length === 0 && result.exports.length === 0) {
    problemIn(main.file, 0, 'declares no export; add an [export eSHELF.SLOT] section with file and interfaces');
  }
  if (problems.length) {
    const order = [main, ...fragments].map((f) => f.file);
    problems.sort((a, b) => order.indexOf(a.file) - order.indexOf(b.file) || a.line - b.line);
    throw new ConfigError(problems, result.exports);
  }
  return result;
}

/** The sections of one file, line by line; problems of single lines are reported here. */
function readSections(f: ConfigText, fragment: boolean, problem: Report): Section[] {
  const reader: Reader = { file: f.file, fragment, sections: [], problem };
  const lines = f.text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '').trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    // A header may carry a trailing comment like any other line ("[export e1.1]   # the lab").
    if (line[0] === '[') readHeader(reader, withoutTrailingComment(line).trimEnd(), i + 1);
    else readKeyLine(reader, line, i + 1);
  }
  return reader.sections;
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
  const open = (k: Section['kind'], n: string): Section => {
    const section: Section = { kind: k, file: r.file, line: lineNo, name: n, values: new Map(), bad: new Set() };
    r.sections.push(section);
    return section;
  };
  if (kind === 'daemon') {
    if (name !== undefined) r.problem(lineNo, `[daemon] takes no name; write just [daemon]`);
    if (r.fragment) {
      r.problem(lineNo, `a fragment holds [export] and [group] sections; put [daemon] keys in the main config file`);
      // Its body is read (and checked) but not used.
      r.current = { kind: 'daemon', file: r.file, line: lineNo, name: 'daemon', values: new Map(), bad: new Set() };
      return;
    }
    if (r.daemonSeen) {
      r.problem(lineNo, `[daemon] appears twice (first on line ${r.daemonSeen.line}); merge the two sections`);
    }
    r.current = open('daemon', 'daemon');
    r.daemonSeen ??= r.current;
  } else if (kind === 'export') {
    r.current = open('export', name ?? '');
    readExportAddress(r, r.current, lineNo);
  } else if (kind === 'group') {
    const bad = name === undefined ? '[group] needs a name; write [group NAME], e.g. [group lab]' : groupNameProblem(name);
    if (!bad) r.current = open('group', name);
    else {
      r.problem(lineNo, bad);
      // Its body is read (and checked) but the group is not kept.
      r.current = { kind: 'group', file: r.file, line: lineNo, name: '', values: new Map(), bad: new Set() };
    }
  } else {
    r.problem(
      lineNo,
      `unknown section [${kind}${name ? ' ' + name : ''}]${suggest(kind, ['daemon', 'export', 'group'])}; ${SECTION_HELP}`,
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
      r.problem(lineNo, `"${key}" is outside any section; put it under [daemon], [export eSHELF.SLOT] or [group NAME]`);
    // After a bad header the problem is already reported; skip the body.
    return;
  }
  const def = keyDef(current.kind, key);
  const where = current.kind === 'daemon' ? '[daemon]' : `[${current.kind} ${current.name}]`;
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
  // A MAC list may name groups in an export (mac-mask = @lab), not in a group.
  const err =
    value === ''
      ? undefined
      : def.type === 'macs'
        ? checkMacListText(key, value, current.kind === 'export')
        : checkValue(def, value);
  if (err) {
    r.problem(lineNo, err);
    current.bad.add(key);
    return;
  }
  current.values.set(key, { value, line: lineNo });
}

/** Where a key that is not one of its section's belongs, or what it may be a typo of. */
function unknownKeyHint(kind: Section['kind'], key: string): string {
  const other = KEYS.find((k) => k.section !== kind && k.key === key);
  if (other) {
    const where = { daemon: '[daemon]', export: 'an [export] section', group: 'a [group] section' }[other.section];
    return `; ${key} belongs in ${where}`;
  }
  const known = KEYS.filter((k) => k.section === kind).map((k) => k.key);
  return `${suggest(key, known)}; known keys: ${known.join(', ')}`;
}

/** "line 3" in the same file, "FILE:3" in another. */
function lineRef(s: { file: string; line: number }, from: string): string {
  return s.file === from ? `line ${s.line}` : `${s.file}:${s.line}`;
}

/** The sections read, as daemon keys, groups and exports; reports what is declared twice and incomplete exports. */
function settle(sections: Section[], mainFile: string, problemIn: ReportIn): ConfigFile {
  const exports: ExportConfig[] = [];
  const origins: ConfigFile['origins'] = {};
  const daemon: DaemonKeys = {};
  const daemonLines: Record<string, number> = {};
  const groups = readGroups(sections, problemIn);
  const usedBy = new Map<string, string[]>();
  for (const s of sections) {
    if (s.kind === 'daemon') {
      for (const [k, v] of s.values) {
        const def = keyDef('daemon', k)!;
        daemon[k] =
          def.type === 'path' && v.value !== '' && v.value !== 'none' ? path.resolve(path.dirname(s.file), v.value) : v.value;
        daemonLines[k] = v.line;
      }
      continue;
    }
    if (s.kind !== 'export' || s.shelf === undefined || s.slot === undefined) continue;
    const key = exportKey({ shelf: s.shelf, slot: s.slot });
    const first = origins[key];
    if (first !== undefined) {
      problemIn(
        s.file,
        s.line,
        `export ${key} is declared twice (first on ${lineRef(first, s.file)}); one section per export, list all its interfaces there`,
      );
      continue;
    }
    origins[key] = { file: s.file, line: s.line };
    let mistaken = false;
    const e = exportFromSection(s, groups, (line, message) => {
      mistaken = true;
      problemIn(s.file, line, message);
    });
    if (!e || mistaken) continue;
    exports.push(e);
    for (const g of groupRefs(s.values.get('mac-mask')?.value ?? '')) usedBy.set(g, [...(usedBy.get(g) ?? []), key]);
  }
  const warnings = [...groups.values()]
    .filter((g) => !usedBy.has(g.name))
    .map((g) =>
      formatProblem({
        file: g.file,
        line: g.line,
        message: `[group ${g.name}] is named by no mac-mask; use it as mac-mask = @${g.name} or remove it`,
      }),
    );
  const uses = [...groups.values()].map((g) => ({ name: g.name, macs: g.macs, usedBy: usedBy.get(g.name) ?? [] }));
  return { file: mainFile, daemon, daemonLines, exports, origins, groups: uses, warnings };
}

/** The [group] sections by name; reports a group declared twice or without MACs. */
function readGroups(sections: readonly Section[], problemIn: ReportIn): Map<string, MacGroup> {
  const groups = new Map<string, MacGroup>();
  for (const s of sections) {
    if (s.kind !== 'group') continue;
    const first = groups.get(s.name);
    if (first) {
      problemIn(s.file, s.line, `group ${s.name} is declared twice (first on ${lineRef(first, s.file)}); merge the two`);
      continue;
    }
    const text = s.values.get('macs')?.value ?? '';
    if (text === '') {
      if (!s.bad.has('macs'))
        problemIn(s.file, s.line, `[group ${s.name}] lists no MACs; add macs = 52:54:00:12:34:56 ... or remove the group`);
      // Still known, so that exports naming it are not told it is missing.
      groups.set(s.name, { name: s.name, macs: [], file: s.file, line: s.line });
      continue;
    }
    groups.set(s.name, { name: s.name, macs: expandMacList('macs', text, new Map()), file: s.file, line: s.line });
  }
  return groups;
}

/** The export a section declares, or undefined after reporting what is missing or contradictory. */
function exportFromSection(s: Section, groups: ReadonlyMap<string, MacGroup>, problem: Report): ExportConfig | undefined {
  const sound = checkExportSection(s, problem);
  // The mask is checked too when the section has other problems: every mistake is named in one round.
  const mask = s.values.get('mac-mask');
  let macMask: string[] = [];
  if (mask) {
    try {
      macMask = expandMacList('mac-mask', mask.value, groups);
    } catch (e) {
      problem(mask.line, (e as Error).message);
      return undefined;
    }
  }
  if (!sound) return undefined;
  // Fields an export always has, also when their keys are unset.
  const e: Partial<Record<keyof ExportConfig, Value>> = { shelf: s.shelf!, slot: s.slot!, file: '', macMask };
  for (const def of EXPORT_KEYS) {
    if (def.field === 'macMask') continue;
    const text = s.values.get(def.key)?.value || def.default;
    const value = text === '' ? undefined : parseValue(def, text);
    if (value === undefined) continue;
    // A path is relative to the file that names it; a remote store's URI is taken as written.
    const relative = def.type === 'path' || (def.type === 'store' && !isRemoteUri(value as string));
    e[def.field] = relative ? path.resolve(path.dirname(s.file), value as string) : value;
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
  if (get('detect-zeroes') === 'unmap' && BOOL_WORDS[(get('shared') ?? 'no').toLowerCase()]) {
    // Making a block a hole once it reads zero is two steps: another writer's data landing between them is lost.
    problem(
      s.values.get('detect-zeroes')!.line,
      'detect-zeroes = unmap cannot be used with shared = yes: another writer of the file could lose data written to a block the target frees; remove one of them',
    );
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
