// Config fragments: the *.conf files of config-dir, read in name order
// after the main config file (vblade.conf(5), FRAGMENTS). They say what
// root opens and serves, so they are read like the main file's own
// directory would be trusted: the directory is neither a symbolic link nor
// writable by anyone but root or the daemon's user (nor is any directory
// above it), and a fragment is a regular file of root or the daemon's user
// that nobody else may write. A FIFO, link or device under a fragment's name
// is refused without being opened.
//
// The fragment `vblade ctl add` writes: one [export] section rendered from
// the words of the request (INTERFACES FILE [KEY=VALUE...]). The words come
// from a control socket, so each is checked before it becomes a line: no
// control character (a newline would start a line of its own, a section or
// a key the request did not name), only keys of an export, each once, and
// every value written quoted so that '#', ';' or ']' stay in it. The text
// is then checked by the same parser as any config (load.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { TrustedDir } from '../safe-files/trusted-dir';
import type { ConfigProblem, ConfigText } from './config-file';
import { EXPORT_KEYS, type DaemonKeys } from './keys';
import { suggest } from './values';
import { isRemoteUri } from '../remote/remote-uri';

/** Largest fragment read: a few exports; a bigger file is a mistake, not a config. */
export const MAX_FRAGMENT_BYTES = 256 * 1024;

/** Names read as fragments: NAME.conf, not hidden (the temporary files of an atomic write start with a dot). */
export function isFragmentName(name: string): boolean {
  return /^[^.].*\.conf$/.test(name);
}

/** The fragments directory of a config file: config-dir, or FILE without .conf plus .d; undefined for "none". */
export function configDirOf(configFile: string, daemon: DaemonKeys): string | undefined {
  const set = daemon['config-dir'];
  if (set === 'none') return undefined;
  if (set) return path.resolve(set);
  return configFile.replace(/\.conf$/, '') + '.d';
}

/**
 * Opens the fragments directory after checking it (not a link, not writable
 * by others); undefined when it does not exist, unless `create`: then made
 * root's, 0750, or, for a daemon that runs as another user, with that
 * user's group and setgid (2750), as the package makes /etc/vblade.d, so
 * that the daemon reads it and the fragments made in it.
 */
export function openConfigDir(dir: string, create: false | { gid?: number } = false): TrustedDir | undefined {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (st?.isSymbolicLink())
    throw new Error(
      `config-dir ${dir} is a symbolic link; its fragments say what is served as root, so name the directory itself (config-dir = ${fs.realpathSync(dir)}) or remove the link`,
    );
  if (!st && !create) return undefined;
  const made =
    create === false ? undefined : create.gid === undefined ? { mode: 0o750 } : { mode: 0o2750, uid: 0, gid: create.gid };
  return TrustedDir.open(dir, { what: 'config-dir', create: made });
}

/** The fragments of `dir` in name order, and the problems of those refused (each names its file). */
export function readFragments(dir: string): { texts: ConfigText[]; problems: ConfigProblem[] } {
  const texts: ConfigText[] = [];
  const problems: ConfigProblem[] = [];
  let d: TrustedDir | undefined;
  try {
    d = openConfigDir(dir);
  } catch (e) {
    return { texts, problems: [{ file: dir, line: 0, message: (e as Error).message }] };
  }
  if (!d) return { texts, problems };
  try {
    const names = d.list().filter(isFragmentName).sort();
    for (const name of names) {
      const file = d.pathOf(name);
      try {
        const st = d.lstat(name);
        if (st?.isFile() && (st.mode & 0o022) !== 0)
          throw new Error(
            `fragment ${file} is writable by ${st.mode & 0o002 ? 'every user' : 'its group'}; another user could change what is served: chmod go-w ${file}`,
          );
        const buf = d.readFile(name, MAX_FRAGMENT_BYTES, { what: 'fragment', owners: [0, process.geteuid?.() ?? 0] });
        if (buf) texts.push({ text: buf.toString('utf8'), file });
      } catch (e) {
        problems.push({ file, line: 0, message: (e as Error).message });
      }
    }
  } finally {
    d.close();
  }
  return { texts, problems };
}

/** Longest word taken: a path or a MAC list, not a file's worth of text. */
export const MAX_WORD = 4096;
/** Most KEY=VALUE words: there are not many more export keys. */
export const MAX_SETTINGS = 32;

/**
 * Characters a word may not hold: controls (C0, DEL and C1: a newline would
 * start a line of its own, CSI drives a terminal), line and paragraph
 * separators (an editor shows a new line), format characters (a bidi
 * override shows the path another way round) and lone surrogates (written
 * as UTF-8 they become U+FFFD: the file would not say what was checked).
 */
const HIDDEN_CHARACTER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** `w` as JSON writes it (a newline as \n, a lone surrogate as \ud800), and what JSON leaves raw (C1, U+2028, ...) as \uXXXX. */
function escapeHidden(w: string): string {
  return JSON.stringify(w)
    .slice(1, -1)
    .replace(new RegExp(HIDDEN_CHARACTER.source, 'gu'), (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function hiddenKind(c: string): string {
  if (/\p{Cc}/u.test(c)) return 'a control character (a newline, a tab, ...)';
  if (/\p{Cs}/u.test(c)) return 'half of a UTF-16 surrogate pair (not a character)';
  return 'an invisible character (a line separator or a format character)';
}

/** The file name of an export's fragment, and its text. */
export interface ExportFragment {
  key: string;
  name: string;
  text: string;
}

/** A value as the parser reads it back: in double quotes, with " and \ escaped. */
function quoted(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => '\\' + c)}"`;
}

/** "e1.3" or "1.3" → "e1.3"; throws for anything else (the parser checks the ranges). */
export function fragmentKey(address: string): string {
  const m = /^e?([0-9]{1,5})\.([0-9]{1,3})$/.exec(address);
  if (!m) throw new Error(`"${address}" is not an export address; write eSHELF.SLOT, e.g. e1.3`);
  return `e${Number(m[1])}.${Number(m[2])}`;
}

/**
 * Renders the fragment of one export from `words`: interfaces (separated by
 * commas or spaces), the backing file (an absolute path, an rbd image or an
 * NBD URI) and KEY=VALUE
 * settings. Throws a message that says what is wrong with the request.
 */
export function renderExportFragment(address: string, words: readonly string[]): ExportFragment {
  const key = fragmentKey(address);
  if (words.length < 2)
    throw new Error(`add needs INTERFACES and FILE after the export, e.g. vblade ctl add ${key} eth1 /srv/vblade/disk.img`);
  if (words.length > 2 + MAX_SETTINGS) throw new Error(`add takes at most ${MAX_SETTINGS} KEY=VALUE settings`);
  for (const w of words) {
    if (w.length > MAX_WORD) throw new Error(`a word of the request is longer than ${MAX_WORD} characters`);
    const bad = HIDDEN_CHARACTER.exec(w);
    if (bad) throw new Error(`"${escapeHidden(w)}" holds ${hiddenKind(bad[0])}; remove it`);
  }
  const [interfaces, file, ...settings] = words;
  if (!file.startsWith('/') && !isRemoteUri(file))
    throw new Error(
      `file "${file}" is not an absolute path; give the full path, e.g. /srv/vblade/disk.img (or an image rbd:POOL/IMAGE, an NBD URI nbd://HOST/NAME)`,
    );
  const lines = [
    `# Written by "vblade ctl add"; "vblade ctl remove ${key}" removes it.`,
    `[export ${key}]`,
    `file = ${quoted(file)}`,
    `interfaces = ${quoted(interfaces)}`,
  ];
  const seen = new Set(['file', 'interfaces']);
  const known = EXPORT_KEYS.map((k) => k.key).filter((k) => !seen.has(k));
  for (const s of settings) {
    const eq = s.indexOf('=');
    const k = eq < 0 ? s : s.slice(0, eq);
    if (eq < 0) throw new Error(`"${s}" is not KEY=VALUE; write e.g. read-only=yes`);
    if (k === 'file' || k === 'interfaces') throw new Error(`${k} is given before the settings; do not set it again`);
    if (!known.includes(k)) throw new Error(`unknown key "${k}"${suggest(k, known)}; an export's keys: ${known.join(', ')}`);
    if (seen.has(k)) throw new Error(`${k} is set twice; keep one`);
    // A relative path in a fragment means the fragment's directory (/etc/vblade.d), not where ctl ran.
    const value = s.slice(eq + 1);
    if (EXPORT_KEYS.find((d) => d.key === k)?.type === 'path' && value !== '' && !value.startsWith('/'))
      throw new Error(`${k} "${value}" is not an absolute path; give the full path, e.g. ${k}=/srv/aoe/views`);
    seen.add(k);
    lines.push(`${k} = ${quoted(s.slice(eq + 1))}`);
  }
  return { key, name: `${key}.conf`, text: lines.join('\n') + '\n' };
}
