// Whether an image and a directory can hold copy-on-write clones of it, with
// a message that says what to do when not: views and snapshots are reflinks
// (FICLONE) and nothing else, never a silent full copy.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { StoreError } from './file-store';

/** The addon calls this module needs, passed in so that it stays free of the addon. */
export interface ReflinkFunctions {
  reflinkSupported(dir: string): boolean;
}

const FS_NAMES: Record<number, string> = {
  0xef53: 'ext2/3/4',
  0x01021994: 'tmpfs',
  0x858458f6: 'ramfs',
  0x58465342: 'XFS',
  0x9123683e: 'btrfs',
  0x6969: 'NFS',
  0x2fc12fc1: 'ZFS',
  0x65735546: 'FUSE',
  0x794c7630: 'overlayfs',
};

const NEEDED = 'XFS made with `mkfs.xfs -m reflink=1` (the default since xfsprogs 5.1) or btrfs';

/** "ext2/3/4", "XFS", or the magic number in hex. */
export function fileSystemName(p: string): string {
  const t = fs.statfsSync(p).type;
  return FS_NAMES[t] ?? `type 0x${t.toString(16)}`;
}

/** The directory itself when it exists, else its nearest existing parent (where it would be made). */
function existingAncestor(dir: string): string {
  let d = path.resolve(dir);
  while (!fs.existsSync(d)) {
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  return d;
}

/**
 * Throws a StoreError unless `image` is a regular file and `dir` (or, when it
 * does not exist yet, its nearest parent) is on the same file system and that
 * file system clones files. `what` names the feature ("views", "snapshots").
 * `cloned`: `dir` already holds clones of the image, so the try (which writes
 * a file, and fails on a full file system) is skipped.
 */
export function checkReflinkPlace(image: string, dir: string, what: string, fns: ReflinkFunctions, cloned = false): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(image);
  } catch (e) {
    throw new StoreError(`cannot use ${what} of ${image}: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code);
  }
  if (st.isBlockDevice())
    throw new StoreError(
      `${what} need a regular file as the image, and ${image} is a block device; put the image on ${NEEDED}, or use LVM thin snapshots for a logical volume (docs/operations.md, "Serving a lab from one image")`,
    );
  if (!st.isFile()) throw new StoreError(`${what} need a regular file as the image, and ${image} is not one`);
  const place = existingAncestor(dir);
  const here = fs.statSync(place);
  if (here.dev !== st.dev)
    throw new StoreError(
      `${what} directory ${dir} is not on the file system of ${image}; a clone can only be made within one file system: put both on the same ${NEEDED}`,
    );
  if (cloned) return;
  let ok: boolean;
  try {
    ok = fns.reflinkSupported(place);
  } catch (e) {
    // A full file system (or quota) cannot be tried now; it says so again when a clone is made, and what exists still serves.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return;
    // A reload (or ctl add) runs as the daemon's user, who may not write where start, as root, made the directory.
    const fix =
      code === 'EACCES' || code === 'EPERM'
        ? `; make ${dir} and give it to uid ${process.geteuid?.()} (install -d -o ${process.geteuid?.()} -g ${process.getegid?.()} -m 750 ${dir}), then reload`
        : '';
    throw new StoreError(`cannot try a clone in ${place} for the ${what} of ${image}: ${(e as Error).message}${fix}`, code);
  }
  if (!ok)
    throw new StoreError(
      `${what} of ${image} need a file system that makes copy-on-write clones (reflinks), and ${place} is on ${fileSystemName(place)} without them; use ${NEEDED} (for a logical volume: LVM thin snapshots, see docs/operations.md)`,
    );
}
