// One serving process per address and interface on a host. Two processes on
// one interface never see each other's frames (the packet socket ignores
// outgoing ones), so the wire probe cannot find them; instead each claims
// its shelf.slot and interface with an flock on a file only root (or the
// daemon's own user) can open:
//
//   /run/aoe-target/claims/net-INODE/eS.L@IFNAME.lock     (0600, holds the holder's pid)
//
// INODE is the network namespace's, so that two namespaces may serve the
// same address, as they do on separate wires. A process that is not root
// claims under /run/aoe-target-USER when that exists (the shipped units make
// it for the user vblade, shared by every instance), else under
// $XDG_RUNTIME_DIR/aoe-target, or ~/.aoe-target, or /tmp/aoe-target-UID; if
// another user made that one first, the export is served on the wire probe
// alone, with a warning (a local user must not keep us from serving).
// Every directory on the way is ours, owned by root or by us and writable by
// nobody else, so no other user can take a claim first, hold it, or plant a
// link or a FIFO in its place; and there is nothing to connect to. The
// kernel drops the lock when the holder dies. Files stay behind when
// released: removing one could let two processes lock two different files.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../api/errors';
import type { NativeAddon } from '../native/addon';

/**
 * What a claim found: taken (held by us now), held by another process, not
 * possible here (and why), or unchecked: the place for claims belongs to
 * another user, who must not be able to keep us from serving by making it.
 */
export type ClaimResult =
  | { taken: true }
  | { taken: false; holderPid?: number }
  | { taken: 'unavailable'; why: string }
  | { taken: 'unchecked'; why: string };

/** The claim directory is another user's: said so, and the export is served on the wire probe alone. */
export class ForeignClaimDir extends ConfigError {}

/** Whether `dir` is a directory of `uid`'s that nobody else may write. */
function ownDirectory(dir: string, uid: number): boolean {
  try {
    const st = fs.statSync(dir);
    return st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** Whether `dir` is a directory (not a link to one). */
function isDirectory(dir: string): boolean {
  try {
    return fs.lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The directory under which claims are made by a process with this euid.
 * Every process of one user on the host must find the same one: under
 * systemd /tmp is private to each unit and XDG_RUNTIME_DIR unset, so the
 * units make /run/aoe-target-vblade (RuntimeDirectory) for their user.
 */
export function claimBaseDir(
  euid = process.geteuid?.() ?? 0,
  env: NodeJS.ProcessEnv = process.env,
  user = os.userInfo().username,
  exists: (dir: string) => boolean = isDirectory,
): string {
  if (euid === 0) return '/run/aoe-target/claims';
  const shared = `/run/aoe-target-${user}`;
  if (exists(shared)) return path.join(shared, 'claims');
  const runtime = env.XDG_RUNTIME_DIR;
  if (!(runtime && path.isAbsolute(runtime)) && env.HOME && path.isAbsolute(env.HOME) && ownDirectory(env.HOME, euid))
    return path.join(env.HOME, '.aoe-target', 'claims'); // private to the user, unlike a shared temp dir
  const base =
    runtime && path.isAbsolute(runtime) ? path.join(runtime, 'aoe-target') : path.join(os.tmpdir(), `aoe-target-${euid}`);
  return path.join(base, 'claims');
}

/**
 * Makes `dir` when it is missing and checks it: a directory (not a link),
 * owned by root or by us, writable by nobody else. Throws ConfigError with
 * what to do.
 */
export function ensurePrivateDir(dir: string, mode: number): void {
  try {
    fs.mkdirSync(dir, { mode });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = fs.lstatSync(dir);
  const euid = process.geteuid?.() ?? 0;
  if (!st.isDirectory()) {
    throw new ConfigError(
      `the address claim directory ${dir} is not a directory (a link?); remove it so that it can be made anew`,
    );
  }
  if (st.uid !== 0 && st.uid !== euid) {
    throw new ForeignClaimDir(
      `the address claim directory ${dir} belongs to uid ${st.uid}, who could take or block claims; remove it so that it can be made anew`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new ConfigError(
      `the address claim directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 755 ${dir}`,
    );
  }
}

/** The network namespace's inode: the same for every process in it. */
function netnsInode(netns?: string): string {
  return String(fs.statSync(netns ?? '/proc/self/ns/net').ino);
}

function readHolderPid(fd: number): number | undefined {
  const buf = Buffer.alloc(32);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  const m = /^([0-9]+)\n/.exec(buf.toString('latin1', 0, n));
  return m ? Number(m[1]) : undefined;
}

/**
 * Makes the claim file DIRS/NAME under root's claims directory (as root) and
 * gives it to `owner`: a worker that has switched to `user =` can open an
 * existing claim file but not create one there. The directories stay
 * root's, so the user can neither plant a link nor remove a claim; what it
 * can do with its files is lock them, which serving is anyway. A file that
 * exists is given only while nobody holds it (`isFree`): another instance's
 * claim must not become the user's to block. Best effort: one that cannot
 * be given is refused by the worker's own claim, with why.
 */
export function giveClaimFile(
  dirs: readonly string[],
  name: string,
  owner: { uid: number; gid: number },
  isFree: (fd: number) => boolean,
): void {
  if ((process.geteuid?.() ?? 0) !== 0) return;
  const base = claimBaseDir();
  let fd: number | undefined;
  try {
    ensurePrivateDir(path.dirname(base), 0o755);
    let dir = base;
    ensurePrivateDir(dir, 0o755);
    for (const d of dirs) ensurePrivateDir((dir = path.join(dir, d)), 0o755);
    const c = fs.constants;
    let made = true;
    try {
      fd = fs.openSync(path.join(dir, name), c.O_RDWR | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW | c.O_NONBLOCK, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      made = false;
      fd = fs.openSync(path.join(dir, name), c.O_RDWR | c.O_NOFOLLOW | c.O_NONBLOCK);
    }
    const st = fs.fstatSync(fd);
    if (st.isFile() && (st.uid !== owner.uid || st.gid !== owner.gid) && (made || isFree(fd)))
      fs.fchownSync(fd, owner.uid, owner.gid);
  } catch {
    // a planted entry or an unsafe directory: the worker's claim refuses it and says so
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The address claim files of these exports on their interfaces, given to `owner` (giveClaimFile). */
export function giveAddressClaims(
  exports: readonly { key: string; interfaces: readonly string[] }[],
  owner: { uid: number; gid: number },
  addon: Pick<NativeAddon, 'lockFile'>,
): void {
  const scope = `net-${netnsInode()}`;
  // Free when this process can take the flock (closing the descriptor gives it back).
  const isFree = (fd: number): boolean => addon.lockFile(fd);
  for (const e of exports) for (const name of e.interfaces) giveClaimFile([scope], `${e.key}@${name}.lock`, owner, isFree);
}

/** Held claims, by "eS.L@IFNAME" and scope; released one export at a time (reload) or all at once (stop). */
export class AddressClaims {
  private readonly held = new Map<string, number>();
  private base: string | undefined;

  /** `baseDir`: where claims are made (default claimBaseDir(), fixed on first use). */
  constructor(
    private readonly addon: Pick<NativeAddon, 'lockFile'>,
    baseDir?: string,
  ) {
    this.base = baseDir;
  }

  /**
   * Claims eS.L on `ifname` in the network namespace `netns` (a path such
   * as /run/netns/NAME; default: ours). Claiming what this object holds
   * already is taken. Throws ConfigError when the claim directory is unsafe.
   */
  claim(key: string, ifname: string, netns?: string): ClaimResult {
    const scope = `net-${netnsInode(netns)}`;
    const id = `${scope}/${key}@${ifname}`;
    if (this.held.has(id)) return { taken: true };
    const base = (this.base ??= claimBaseDir());
    let fd: number;
    try {
      ensurePrivateDir(path.dirname(base), 0o755);
      ensurePrivateDir(base, 0o755);
      ensurePrivateDir(path.join(base, scope), 0o755);
      const c = fs.constants;
      fd = fs.openSync(path.join(base, `${id}.lock`), c.O_RDWR | c.O_CREAT | c.O_NOFOLLOW | c.O_NONBLOCK, 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Switched to an unprivileged user after start: the host's claims are root's.
      if (code === 'EACCES' || code === 'EPERM') return { taken: 'unavailable', why: (e as Error).message };
      if (code === 'ELOOP') throw new ConfigError(`the address claim file ${base}/${id}.lock is a symbolic link; remove it`);
      if (e instanceof ForeignClaimDir && (process.geteuid?.() ?? 0) !== 0) return { taken: 'unchecked', why: e.message };
      throw e;
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new ConfigError(`the address claim file ${base}/${id}.lock is not a regular file; remove it`);
      if (!this.addon.lockFile(fd)) {
        const holderPid = readHolderPid(fd);
        fs.closeSync(fd);
        return holderPid === undefined ? { taken: false } : { taken: false, holderPid };
      }
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, `${process.pid}\n`, 0);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.held.set(id, fd);
    return { taken: true };
  }

  /** Gives up the claims of one export (removed by a reload, or refused), except on the interfaces in `keep`. */
  releaseExport(key: string, keep: readonly string[] = []): void {
    for (const [id, fd] of this.held) {
      const [k, ifname] = id.slice(id.indexOf('/') + 1).split('@');
      if (k === key && !keep.includes(ifname)) {
        fs.closeSync(fd);
        this.held.delete(id);
      }
    }
  }

  release(): void {
    for (const fd of this.held.values()) fs.closeSync(fd);
    this.held.clear();
  }
}
