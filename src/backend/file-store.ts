// A regular file or block device as an export's backing store.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LocalStore } from './block-store';

export const SECTOR = 512;

export interface FileStoreOptions {
  file: string;
  readOnly: boolean;
  direct: boolean;
  offsetSectors: number;
  lengthSectors?: number;
  /** Size of a block device in bytes (BLKGETSIZE64); injected so this module stays free of the addon. */
  blockDeviceSize: (fd: number) => number;
}

/** A store that cannot be opened, `message` saying what is wrong and what to do; `code` is the errno behind it, when there is one. */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Errors that can pass by themselves (a busy or short-of-resources system); every other refusal is the configuration's. */
const PASSING_CODES = new Set(['EIO', 'EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EBUSY', 'EINTR', 'ETXTBSY', 'ENOSPC', 'EDQUOT']);

/** Whether a store that could not be opened would open if tried again unchanged (false: fix the configuration or the file). */
export function mayPass(e: unknown): boolean {
  if (!(e instanceof StoreError)) return true;
  return e.code !== undefined && PASSING_CODES.has(e.code);
}

function describeOpenError(file: string, err: NodeJS.ErrnoException, readOnly: boolean): string {
  switch (err.code) {
    case 'ENOENT':
      return `cannot open ${file}: no such file; check the path or create it (e.g. truncate -s 1G ${file})`;
    case 'EACCES':
    case 'EPERM':
      return deniedMessage(file, readOnly);
    case 'EISDIR':
      return `cannot export ${file}: it is a directory; give a regular file or a block device`;
    case 'EROFS':
      return `cannot open ${file} for writing: read-only file system; export it read-only (read-only = yes, vblade -r)`;
    case 'EINVAL':
      return `cannot open ${file}${readOnly ? '' : ' read-write'} with the requested flags (${err.message}); the file system may not support O_DIRECT, drop -d`;
    case 'EBUSY':
      return `cannot open ${file}: device or resource busy; another program holds it exclusively`;
    default:
      return `cannot open ${file}: ${err.message}`;
  }
}

/** "user nobody (uid 65534)": who this process is, for a refusal it met. */
function thisUser(): { name: string | undefined; text: string } {
  const uid = process.geteuid?.() ?? 0;
  try {
    const name = os.userInfo().username;
    return { name, text: `user ${name} (uid ${uid})` };
  } catch {
    return { name: undefined, text: `uid ${uid}` };
  }
}

function readable(file: string): boolean {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
}

/** The first directory above `file` this process may not pass through, when one is why it was refused. */
function closedDirAbove(file: string): { dir: string; mode: string } | undefined {
  const parts = path.resolve(file).split('/').slice(1, -1);
  let dir = '';
  for (const p of parts) {
    dir += `/${p}`;
    try {
      fs.accessSync(dir, fs.constants.X_OK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EACCES') return undefined;
      let mode = '?';
      try {
        mode = `0${(fs.statSync(dir).mode & 0o777).toString(8)}`;
      } catch {
        // the mode of a directory we may not look into from its parent: unknown
      }
      return { dir, mode };
    }
  }
  return undefined;
}

/**
 * Permission denied, naming who was refused and the fixes that help: access
 * for that user, another user, and read-only only when this user may read it.
 * A daemon that switched to `user =` opens what a reload adds as that user.
 */
function deniedMessage(file: string, readOnly: boolean): string {
  const who = thisUser();
  const name = who.name ?? String(process.geteuid?.() ?? 0);
  const closed = closedDirAbove(file);
  if (closed !== undefined)
    return `cannot open ${file} as ${who.text}: it may not enter ${closed.dir} (mode ${closed.mode}); give ${name} access to that directory (setfacl -m u:${name}:x ${closed.dir}, or chmod o+x ${closed.dir}), move the file, or run as a user that may (user = or --user when started as root; User= in a unit)`;
  const fixes = [
    `give ${name} access (chown ${name} ${file}, or setfacl -m u:${name}:${readOnly ? 'r' : 'rw'} ${file})`,
    'run as a user that may (user = or --user when started as root; User= in a unit)',
  ];
  if (!readOnly && readable(file)) fixes.push('export it read-only (read-only = yes, vblade -r)');
  const last = fixes.pop()!;
  return `cannot open ${file} ${readOnly ? 'for reading' : 'for reading and writing'} as ${who.text}: permission denied; ${fixes.join(', ')} or ${last}`;
}

/**
 * Opens `file` with `flags`, never waiting on what is not a disk: opening a
 * FIFO for reading waits for a writer, which would hang --check, a start, or
 * a reload on the serving thread (a user who owns the file's directory can
 * plant one). So a non-blocking look comes first (read-only: it breaks no
 * read lease), and the inode it found is opened again through
 * /proc/self/fd, so that nothing can be swapped in between.
 */
function openDiskFile(file: string, flags: number): number {
  const k = fs.constants;
  let probe: number;
  try {
    probe = fs.openSync(file, k.O_RDONLY | k.O_NONBLOCK | k.O_NOCTTY);
  } catch (e) {
    // A lease another program holds on a regular file (it is asked to give it up): the plain open waits for that, as before.
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return fs.openSync(file, flags);
    throw e;
  }
  try {
    const st = fs.fstatSync(probe);
    if (st.isDirectory())
      throw Object.assign(new Error(`EISDIR: illegal operation on a directory, open '${file}'`), { code: 'EISDIR' });
    if (!st.isFile() && !st.isBlockDevice())
      throw new StoreError(`cannot export ${file}: it is neither a regular file nor a block device`);
    try {
      return fs.openSync(`/proc/self/fd/${probe}`, flags);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      throw new StoreError(
        `cannot open ${file}: /proc is not mounted here (the file is opened again through /proc/self/fd); mount it`,
      );
    }
  } finally {
    fs.closeSync(probe);
  }
}

export function openFileStore(o: FileStoreOptions): LocalStore {
  let flags = o.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
  if (o.direct) flags |= fs.constants.O_DIRECT;
  let fd: number;
  try {
    fd = openDiskFile(o.file, flags);
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError(describeOpenError(o.file, e as NodeJS.ErrnoException, o.readOnly), (e as NodeJS.ErrnoException).code);
  }
  try {
    const st = fs.fstatSync(fd);
    let bytes: number;
    if (st.isBlockDevice()) bytes = o.blockDeviceSize(fd);
    else if (st.isFile()) bytes = st.size;
    else throw new StoreError(`cannot export ${o.file}: it is neither a regular file nor a block device`);
    const total = Math.floor(bytes / SECTOR);
    const sectors = exportedSectors(o.file, total, o.offsetSectors, o.lengthSectors);
    return {
      kind: 'file',
      fd,
      byteOffset: o.offsetSectors * SECTOR,
      sectors,
      direct: o.direct,
      inlineIo: st.isFile() && isMemoryFileSystem(o.file),
      description: o.file,
      // With -l the end is chosen; without it, a size that is no multiple of 512 loses its last bytes.
      unservedTailBytes: o.lengthSectors === undefined && bytes > o.offsetSectors * SECTOR ? bytes % SECTOR : 0,
      close() {
        fs.closeSync(fd);
      },
    };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * Sectors of an open backing store from `offsetSectors` to its end, as it is
 * now (a file or logical volume may have grown since it was opened); 0 or
 * less when it ends before the offset.
 */
export function sectorsAfterOffset(fd: number, offsetSectors: number, blockDeviceSize: (fd: number) => number): number {
  const st = fs.fstatSync(fd);
  const bytes = st.isBlockDevice() ? blockDeviceSize(fd) : st.size;
  return Math.floor(bytes / SECTOR) - offsetSectors;
}

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/** Whether a file lives in memory (tmpfs, ramfs), where reads and writes never wait for a device. */
export function isMemoryFileSystem(file: string): boolean {
  try {
    const t = fs.statfsSync(file).type;
    return t === TMPFS_MAGIC || t === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

/** Applies -o/-l to a backing store of `total` sectors, with vblade's rules and clear messages. */
export function exportedSectors(file: string, total: number, offset: number, length?: number): number {
  if (total === 0) {
    throw new StoreError(`${file} is smaller than one 512-byte sector; make it larger (e.g. truncate -s 1G ${file})`);
  }
  if (offset >= total) {
    throw new StoreError(`offset ${offset} sectors is at or beyond the end of ${file} (${total} sectors); choose a smaller -o`);
  }
  const remaining = total - offset;
  if (length === undefined) return remaining;
  if (length > remaining) {
    throw new StoreError(
      `length ${length} sectors exceeds ${file}: only ${remaining} sectors remain after offset ${offset}; choose a smaller -l`,
    );
  }
  return length;
}
