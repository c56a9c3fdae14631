// The check every directory the daemon writes into must pass (state dir, run
// dir, log dir): it belongs to the daemon's user (or root, or the user a root
// daemon switches to with user =) and nobody else may create, rename or
// delete entries in it, nor in any directory above it. Otherwise another
// local user could plant a symbolic link or FIFO where a state file, pid
// file, control socket or log file goes, or put another directory in its
// place. The walk is src/safe-files' (by descriptor, no link followed).

import { TrustedDir } from '../safe-files/trusted-dir';

export interface PrivateDirOptions {
  /** The uid a root daemon becomes (user =): it may own the directory. */
  switchTo?: number;
  /** Make it, and missing directories above it, with this mode when missing. */
  createMode?: number;
  /** Who gets what it makes (a directory it did not make is never given away). */
  createOwner?: { uid: number; gid: number };
}

/** The directory, checked and held open; throws a message naming the directory found wrong, what is wrong and the fix. */
export function openPrivateDir(dir: string, what: string, o: PrivateDirOptions = {}): TrustedDir {
  return TrustedDir.open(dir, {
    what,
    owners: o.switchTo === undefined ? [] : [o.switchTo],
    create: o.createMode === undefined ? undefined : { mode: o.createMode, ...o.createOwner },
  });
}

/** openPrivateDir for a directory used by path afterwards (run files, the control socket). */
export function checkPrivateDir(dir: string, what: string, o: PrivateDirOptions = {}): void {
  openPrivateDir(dir, what, o).close();
}
