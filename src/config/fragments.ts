// Config fragments: the *.conf files of config-dir, read in name order
// after the main config file (vblade.conf(5), FRAGMENTS). They say what
// root opens and serves, so they are read like the main file's own
// directory would be trusted: the directory is neither a symbolic link nor
// writable by anyone but root or the daemon's user (nor is any directory
// above it), and a fragment is a regular file of root or the daemon's user
// that nobody else may write. A FIFO, link or device under a fragment's name
// is refused without being opened.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { TrustedDir } from '../safe-files/trusted-dir';
import type { ConfigProblem, ConfigText } from './config-file';
import type { DaemonKeys } from './keys';

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

/** Opens the fragments directory after checking it (not a link, not writable by others); undefined when it does not exist. */
export function openConfigDir(dir: string, create = false): TrustedDir | undefined {
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
  return TrustedDir.open(dir, { what: 'config-dir', create: create ? { mode: 0o750 } : undefined });
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
