// A directory opened once and checked (it and every directory above it),
// then used only through its descriptor: a path renamed or replaced after
// the open changes nothing, no symbolic link is followed, and a FIFO or
// device planted under a file's name is refused instead of opened.
//
// Node has no openat(); /proc/self/fd/FD/NAME gives the same: the kernel
// resolves /proc/self/fd/FD to the held directory itself, not to its path.
// A process may use its own /proc/self/fd after it switched users and is no
// longer dumpable (test/safe-files checks it as nobody).

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { allowedOwners, checkFile, kindOf, checkParent, checkTrusted, UnsafePathError, type FileRules } from './checks';

const C = fs.constants;
/** Linux O_PATH: a descriptor that names an inode without opening it (no FIFO wait, no device open). */
const O_PATH = 0o10000000;
const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

export interface TrustedDirOptions {
  /** What the directory is, for messages: "views directory". */
  what: string;
  /** Uids besides root and the effective uid that may own it and its parents (the `user =` uid). */
  owners?: readonly number[];
  /** Make it (and missing parents, each under a checked one) when missing, with this mode. */
  create?: { mode: number; uid?: number; gid?: number };
}

export interface OpenFileOptions extends Omit<FileRules, 'owners'> {
  /** O_RDONLY (default) or O_RDWR, plus O_DIRECT and the like. */
  flags?: number;
  /** Refuse a file owned by a uid not in this list. */
  owners?: readonly number[];
  /** For messages: "view", "snapshot". */
  what?: string;
}

function isMissing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === 'ENOENT';
}

/** One name in a directory: no separators, not "." or "..". */
function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new Error(`"${name}" is not a file name`);
}

/** The real path of `p` as far as it exists, with the missing rest appended. */
function realPathSoFar(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let d = abs;
  for (;;) {
    try {
      return path.join(fs.realpathSync(d), ...rest.reverse());
    } catch (e) {
      if (!isMissing(e)) throw e;
      const up = path.dirname(d);
      if (up === d) throw e;
      rest.push(path.basename(d));
      d = up;
    }
  }
}

/**
 * The symbolic links on the way to `p` (followed by realPathSoFar): each
 * must have been put there by root (or us): in a directory of root's that
 * nobody else may write, or, in a sticky one (/tmp), a link of root's. A
 * link in a directory of the `user =` account would let that user point a
 * root daemon at any directory (say /etc) that passes the checks.
 */
function checkLinksOnTheWay(p: string): void {
  const trusted = allowedOwners();
  const parts = path
    .resolve(p)
    .split('/')
    .filter((x) => x !== '');
  let at = '/';
  for (const part of parts) {
    const next = path.join(at, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(next);
    } catch (e) {
      if (isMissing(e)) return;
      throw e;
    }
    if (st.isSymbolicLink()) {
      const dir = fs.statSync(at);
      const openToOthers = (dir.mode & 0o022) !== 0;
      if (!trusted.has(dir.uid) || (openToOthers && ((dir.mode & 0o1000) === 0 || !trusted.has(st.uid))))
        throw new UnsafePathError(
          `${next} is a symbolic link in ${at}, which uid ${openToOthers ? `${st.uid} (or anyone)` : dir.uid} may change, so it could point anywhere; ` +
            `name the directory itself (${realPathSoFar(next)}) or make the link where only root may`,
          next,
        );
    }
    // Where the link leads is checked on from there, as the walk below goes.
    at = st.isSymbolicLink() ? fs.realpathSync(next) : next;
  }
}

export class TrustedDir {
  private closed = false;

  private constructor(
    /** Held open for the life of this object. */
    readonly fd: number,
    /** Its real path when opened, for messages: operations never use it. */
    readonly path: string,
    private readonly what: string,
    private readonly owners: ReadonlySet<number>,
  ) {}

  /**
   * Opens `dir` from `/` component by component, never following a link,
   * checking each parent (checkParent) and the directory itself
   * (checkTrusted); throws an UnsafePathError saying what to fix.
   */
  static open(dir: string, o: TrustedDirOptions): TrustedDir {
    const owners = allowedOwners(o.owners);
    checkLinksOnTheWay(dir);
    const real = realPathSoFar(dir);
    const parts = real.split('/').filter((s) => s !== '');
    let fd = fs.openSync('/', DIR_FLAGS);
    let at = '/';
    try {
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        const next = path.join(at, parts[i]);
        checkParent(fs.fstatSync(fd), at, next, owners);
        const child = openDirAt(fd, parts[i], next, last ? DIR_FLAGS : O_PATH | C.O_DIRECTORY | C.O_NOFOLLOW, o.create);
        fs.closeSync(fd);
        fd = child;
        at = next;
      }
      checkTrusted(fs.fstatSync(fd), at, o.what, owners);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return new TrustedDir(fd, at, o.what, owners);
  }

  /** A directory in this one, checked like it (and made when asked). */
  child(name: string, o: Omit<TrustedDirOptions, 'owners'>): TrustedDir {
    checkName(name);
    const full = path.join(this.path, name);
    const fd = openDirAt(this.fd, name, full, DIR_FLAGS, o.create);
    try {
      checkTrusted(fs.fstatSync(fd), full, o.what, this.owners);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return new TrustedDir(fd, full, o.what, this.owners);
  }

  /** The uid that owns it now. */
  get owner(): number {
    return fs.fstatSync(this.fd).uid;
  }

  /** EACCES (the process switched to a user the directory is not open to) as what it means and what to do; other errors unchanged. */
  private denied(e: unknown): unknown {
    if ((e as NodeJS.ErrnoException).code !== 'EACCES') return e;
    const uid = process.geteuid?.() ?? -1;
    const what = this.what.startsWith('the ') ? this.what : `the ${this.what}`;
    return new Error(
      `cannot look in ${what} ${this.path} as uid ${uid}: permission denied; ` +
        `give it to that user (chown -R ${uid}:${process.getegid?.() ?? -1} ${this.path}) and try again`,
    );
  }

  /** Its owner, group and mode now. */
  stat(): fs.Stats {
    return fs.fstatSync(this.fd);
  }

  /** Its owner and mode are still what open() accepted (someone with root may have changed them since). */
  recheck(): void {
    checkTrusted(fs.fstatSync(this.fd), this.path, this.what, this.owners);
  }

  /** /proc/self/fd/FD/NAME: NAME in the held directory, whatever its path is now. */
  at(name: string): string {
    checkName(name);
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  /** For messages: where `name` is. */
  pathOf(name: string): string {
    return path.join(this.path, name);
  }

  /**
   * Opens an existing regular file of this directory: the name is looked up
   * without following a link and without opening what it names (a FIFO
   * does not block, a device is not opened); only when the inode is a
   * regular file (and passes `o`) is it opened with `o.flags`.
   * Throws ENOENT when missing, UnsafePathError when refused.
   */
  openFile(name: string, o: OpenFileOptions = {}): number {
    const probe = fs.openSync(this.at(name), O_PATH | C.O_NOFOLLOW);
    try {
      checkFile(fs.fstatSync(probe), this.pathOf(name), o.what ?? 'file', {
        owners: o.owners && new Set(o.owners),
        singleLink: o.singleLink,
      });
      // Reopening through the descriptor opens that very inode, not the name again
      // (/proc/self/fd/N is a link to it: O_NOFOLLOW would refuse it, and the lookup above had it).
      return fs.openSync(`/proc/self/fd/${probe}`, ((o.flags ?? C.O_RDONLY) & ~C.O_NOFOLLOW) | C.O_NOCTTY);
    } finally {
      fs.closeSync(probe);
    }
  }

  /** What `name` is, without following a link; undefined when missing. */
  lstat(name: string): fs.Stats | undefined {
    try {
      return fs.lstatSync(this.at(name));
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw this.denied(e);
    }
  }

  /** A regular file's contents, at most `maxBytes`; undefined when missing; refused like openFile. */
  readFile(name: string, maxBytes = 1 << 20, o: Omit<OpenFileOptions, 'flags'> = {}): Buffer | undefined {
    let fd: number;
    try {
      fd = this.openFile(name, { ...o, flags: C.O_RDONLY });
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
    try {
      const buf = Buffer.alloc(maxBytes + 1);
      let n = 0;
      for (let r; n < buf.length && (r = fs.readSync(fd, buf, n, buf.length - n, n)) > 0;) n += r;
      if (n > maxBytes) throw new UnsafePathError(`${this.pathOf(name)} is larger than ${maxBytes} bytes`, this.pathOf(name));
      return buf.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Creates a new file (never an existing name, never through a link); its descriptor, opened with `flags` (O_RDWR default). */
  createFile(name: string, mode: number, flags = C.O_RDWR): number {
    return fs.openSync(this.at(name), flags | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NOCTTY, mode);
  }

  /** A new file under an unguessable name `.PREFIX.RANDOM.tmp`. */
  createTemp(prefix: string, mode: number, flags = C.O_RDWR): { name: string; fd: number } {
    for (;;) {
      const name = `.${prefix}.${randomBytes(8).toString('hex')}.tmp`;
      try {
        return { name, fd: this.createFile(name, mode, flags) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  }

  /** Replaces `name` with `data` atomically and durably: a crash leaves the old file or the new one. */
  writeFileAtomic(name: string, data: string | Uint8Array, mode: number): void {
    const tmp = this.createTemp(name, mode, C.O_WRONLY);
    try {
      try {
        fs.writeFileSync(tmp.fd, data);
        fs.fsyncSync(tmp.fd);
      } finally {
        fs.closeSync(tmp.fd);
      }
      this.rename(tmp.name, name);
    } catch (e) {
      this.unlink(tmp.name);
      throw e;
    }
    this.sync();
  }

  /** writeFileAtomic with the write and the syncs on the pool, off the event loop's thread. */
  async writeFileAtomicAsync(name: string, data: string | Uint8Array, mode: number): Promise<void> {
    const tmp = this.createTemp(name, mode, C.O_WRONLY);
    try {
      try {
        await promisify(fs.writeFile)(tmp.fd, data);
        await promisify(fs.fsync)(tmp.fd);
      } finally {
        fs.closeSync(tmp.fd);
      }
      this.rename(tmp.name, name);
    } catch (e) {
      this.unlink(tmp.name);
      throw e;
    }
    await promisify(fs.fsync)(this.fd);
  }

  /** The names in it (without "." and ".."). */
  list(): string[] {
    return fs.readdirSync(`/proc/self/fd/${this.fd}`);
  }

  /** Renames within this directory (or into `to`, another trusted directory on the same file system). */
  rename(from: string, name: string, to: TrustedDir = this): void {
    fs.renameSync(this.at(from), to.at(name));
  }

  /** Removes a file (never a directory); false when it was not there. */
  unlink(name: string): boolean {
    try {
      fs.unlinkSync(this.at(name));
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  /** Makes its entries (creations, renames, removals) durable. */
  sync(): void {
    fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** Opens directory `name` of `parentFd` without following a link; makes it first when `create` says so and it is missing. */
function openDirAt(parentFd: number, name: string, full: string, flags: number, create: TrustedDirOptions['create']): number {
  const at = `/proc/self/fd/${parentFd}/${name}`;
  try {
    return openDir(at, full, flags);
  } catch (e) {
    if (!isMissing(e) || create === undefined) throw e;
  }
  try {
    fs.mkdirSync(at, { mode: create.mode });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      // Said with the path, not the descriptor's /proc/self/fd name the call used.
      const uid = process.geteuid?.() ?? 0;
      const err = new Error(
        `cannot make ${full}: ${code === 'EROFS' ? 'the file system is read-only' : `uid ${uid} may not write ${path.dirname(full)}`}; ` +
          `make it yourself (install -d -o ${uid} -m ${create.mode.toString(8)} ${full}) or choose another path`,
      ) as NodeJS.ErrnoException;
      err.code = code;
      throw err;
    }
    if (code !== 'EEXIST') throw e; // made meanwhile: checked below like any other
  }
  const fd = openDir(at, full, DIR_FLAGS);
  try {
    const st = fs.fstatSync(fd);
    if (st.uid === (process.geteuid?.() ?? st.uid)) {
      // The owner first: a change of owner may clear a setgid bit the mode asks for.
      if (create.uid !== undefined) fs.fchownSync(fd, create.uid, create.gid ?? -1);
      fs.fchmodSync(fd, create.mode); // the umask may have taken bits the caller asked for
    }
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return fd;
}

function openDir(at: string, full: string, flags: number): number {
  try {
    return fs.openSync(at, flags);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const st = fs.lstatSync(at, { throwIfNoEntry: false });
      if (st?.isSymbolicLink())
        throw new UnsafePathError(`${full} is a symbolic link, which is not followed; put the directory itself there`, full);
      throw new UnsafePathError(
        `${full} is ${st ? kindOf(st) : 'gone'}, not a directory; remove it or choose another path`,
        full,
      );
    }
    if (code === 'ENOENT') {
      const err = new Error(`${full} does not exist`) as NodeJS.ErrnoException;
      err.code = 'ENOENT';
      throw err;
    }
    throw e;
  }
}
