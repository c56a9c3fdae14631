// The rules a directory (and a file in it) must pass before the daemon
// trusts it, and the messages that say which path is wrong, what is wrong
// and the command that fixes it. Pure: the caller fstat()s, this decides.

import type * as fs from 'node:fs';

/** A path refused because another user could change what it names (or it is not what it must be). */
export class UnsafePathError extends Error {
  constructor(
    message: string,
    /** The path found wrong. */
    readonly path: string,
  ) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

/** Who may own a trusted directory: root, the process's effective uid, and those given (the `user =` uid). */
export function allowedOwners(extra: readonly number[] = []): Set<number> {
  return new Set([0, process.geteuid?.() ?? 0, ...extra]);
}

function modeText(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function writers(mode: number): string {
  if (mode & 0o020) return mode & 0o002 ? 'its group and others' : 'its group';
  return 'others';
}

/** "a FIFO", "a symbolic link", ...: what an entry is, for a message. */
export function kindOf(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  return 'not a regular file';
}

/**
 * A directory above a trusted one: it must belong to root or an allowed uid,
 * and others may not rename entries in it (not writable by group or others,
 * unless sticky like /tmp, where only an entry's owner may rename it).
 */
export function checkParent(st: fs.Stats, dir: string, below: string, owners: ReadonlySet<number>): void {
  if (!st.isDirectory()) throw new UnsafePathError(`${dir} (above ${below}) is not a directory`, dir);
  if (!owners.has(st.uid))
    throw new UnsafePathError(
      `${dir} (above ${below}) belongs to uid ${st.uid}, who could put another directory in place of ${below}; ` +
        `give it to root (chown root ${dir}) or choose a path whose parents only root can change`,
      dir,
    );
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0)
    throw new UnsafePathError(
      `${dir} (above ${below}) is writable by ${writers(st.mode)} (mode ${modeText(st.mode)}) without the sticky bit, ` +
        `so another user could put another directory in place of ${below}; choose a path whose parents only root can change, ` +
        `or chmod go-w ${dir}`,
      dir,
    );
}

/** The trusted directory itself: owned by an allowed uid, and nobody else may create, rename or delete entries in it. */
export function checkTrusted(st: fs.Stats, dir: string, what: string, owners: ReadonlySet<number>): void {
  if (!st.isDirectory()) throw new UnsafePathError(`${what} ${dir} is not a directory; remove it or choose another path`, dir);
  if (!owners.has(st.uid)) {
    const to = [...owners].filter((u) => u !== 0).pop() ?? 0;
    throw new UnsafePathError(
      `${what} ${dir} belongs to uid ${st.uid}, not to the daemon's user (uid ${[...owners].join(' or ')}); ` +
        `that user could replace its files: chown ${to} ${dir}`,
      dir,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    // A sticky directory open to all (/tmp, /var/tmp) is shared on purpose: taking its mode away would break the system.
    const fix =
      (st.mode & 0o1002) === 0o1002
        ? 'it is a directory every user shares (do not change its mode); use a directory of its own, made with install -d -m 750 DIR'
        : `chmod go-w ${dir}`;
    throw new UnsafePathError(
      `${what} ${dir} is writable by ${writers(st.mode)} (mode ${modeText(st.mode)}); another user could replace its files: ${fix}`,
      dir,
    );
  }
}

export interface FileRules {
  /** Uids that may own the file; any owner when undefined. */
  owners?: ReadonlySet<number>;
  /** Refuse a file with another name (a hard link): writing it would change that other file too. */
  singleLink?: boolean;
}

/** A file about to be used: a regular file, of an allowed owner, not linked elsewhere when asked. */
export function checkFile(st: fs.Stats, file: string, what: string, rules: FileRules): void {
  if (!st.isFile())
    throw new UnsafePathError(`${what} ${file} is ${kindOf(st)}, not a regular file; it is not used: remove it`, file);
  if (rules.owners !== undefined && !rules.owners.has(st.uid))
    throw new UnsafePathError(
      `${what} ${file} belongs to uid ${st.uid}, not to the daemon's user; it is not used: remove it (or chown ${[...rules.owners].pop()} ${file} if it is yours)`,
      file,
    );
  if (rules.singleLink && st.nlink !== 1)
    throw new UnsafePathError(
      `${what} ${file} has ${st.nlink} names (a hard link to another file, which writing it would change too); it is not used: remove it`,
      file,
    );
}
