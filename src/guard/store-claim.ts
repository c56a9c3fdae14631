// One writer of a disk per host, across processes: shared-writers.ts finds
// two exports of one file within a configuration; this finds them between
// processes (a vbladed and a `vblade` started by hand). Each export claims
// its byte range of what it serves with open file description locks
// (F_OFD_SETLK), which the kernel drops when the holder exits or is killed.
//
// The locks are on a lock file per backing store in the claims directory of
// address-claim.ts, named by what the store is, not by its path:
//
//   CLAIMS/stores/f<dev>-<ino>.lock    a regular file (hard and symbolic links match)
//   CLAIMS/stores/b<rdev>.lock         a block device (/dev/dm-0 and /dev/mapper/x match)
//
// Not on the image itself: a local user who may read the image could then
// lock it and keep the daemon from serving, and opening an image for
// writing breaks the read leases views hold on it. The claims directory is
// root's (or the daemon user's) alone.
//
// The rule is shared-writers.ts's: two claims of overlapping ranges are
// allowed when both are read-only or both say shared = yes. A lock's "byte"
// is a 512-byte sector of the store (lock offsets are JavaScript numbers, up
// to 2^53), and the lock file has three regions, each as long as the largest
// range (2^51 sectors, 1 EiB; a range beyond that claims the region's last
// sector, so two of them conflict rather than pass):
//
//   P   plain exports: a writer write-locks it, a read-only one read-locks it
//   SW  shared writers read-lock it; a plain writer write-locks it
//   SR  shared read-only exports read-lock it; a plain writer write-locks it
//
// A plain read-only export also tests that no shared writer holds SW, and a
// shared writer that no plain export holds P (the one pair the locks alone
// cannot tell apart; two such starts within the same microseconds could
// both pass the test). All of one process's claims of one store are locks
// of one open file description, so its own claims never conflict.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../api/errors';
import type { ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { claimBaseDir, ensurePrivateDir, ForeignClaimDir, giveClaimFile } from './address-claim';

/** How long one region is, in sectors: the ranges of exports end below it (those that do not are moved to its end). */
const REGION = 2 ** 51;
const P = 0;
const SW = REGION;
const SR = 2 * REGION;

type Kind = 'writer' | 'reader' | 'shared-writer' | 'shared-reader';

type Lock = { op: 'r' | 'w'; base: number };

/** The locks each kind takes, and the locks it only tests for. */
const RULES: Record<Kind, { take: Lock[]; test: Lock[] }> = {
  writer: {
    take: [
      { op: 'w', base: P },
      { op: 'w', base: SW },
      { op: 'w', base: SR },
    ],
    test: [],
  },
  reader: { take: [{ op: 'r', base: P }], test: [{ op: 'w', base: SW }] },
  'shared-writer': { take: [{ op: 'r', base: SW }], test: [{ op: 'w', base: P }] },
  'shared-reader': { take: [{ op: 'r', base: SR }], test: [] },
};

function kindOf(c: ExportConfig): Kind {
  // Per-initiator views read the image and write their own files: readers of it.
  const reads = c.readOnly || c.views !== undefined;
  if (c.shared) return reads ? 'shared-reader' : 'shared-writer';
  return reads ? 'reader' : 'writer';
}

export interface Claim {
  kind: Kind;
  start: number;
  length: number;
}

interface Held {
  fd: number;
  claims: Set<Claim>;
}

/** Whether a lock line of /proc/PID/fdinfo ("lock: 1: OFDLCK ADVISORY WRITE -1 fe:00:123 0 EOF") covers bytes of `claim` in some region. */
function coversClaim(line: string, claim: Claim): boolean {
  const m = /([0-9]+) ([0-9]+|EOF)\s*$/.exec(line);
  if (!m) return true;
  const first = Number(m[1]);
  const last = m[2] === 'EOF' ? Infinity : Number(m[2]);
  return [P, SW, SR].some((base) => first < base + claim.start + claim.length && last >= base + claim.start);
}

/** The processes that hold a lock on the file `st` names over bytes of `claim` (by /proc/PID/fdinfo), other than this one; "pid N (command)". */
export function lockHolders(st: fs.Stats, claim: Claim): string[] {
  const found = new Set<string>();
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((p) => /^[0-9]+$/.test(p) && Number(p) !== process.pid);
  } catch {
    return [];
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or another user's
    }
    for (const fd of fds) {
      try {
        const s = fs.statSync(`/proc/${pid}/fd/${fd}`);
        if (s.dev !== st.dev || s.ino !== st.ino) continue;
        const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
        if (!info.split('\n').some((l) => l.startsWith('lock:') && coversClaim(l, claim))) continue;
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).slice(0, 4).join(' ');
        found.add(`pid ${pid}${cmd ? ` (${cmd.slice(0, 120)})` : ''}`);
      } catch {
        // closed meanwhile
      }
    }
  }
  return [...found];
}

/** The lock file's name of the store `st` is: the same for every path of one file or device. */
function storeId(st: fs.Stats): string {
  return st.isBlockDevice() ? `b${st.rdev}` : `f${st.dev}-${st.ino}`;
}

/** The store claim files of these exports, given to `owner` (address-claim.ts giveClaimFile): a reload may add them. */
export function giveStoreClaims(
  configs: readonly ExportConfig[],
  owner: { uid: number; gid: number },
  addon: Pick<NativeAddon, 'rangeLockTest'>,
): void {
  // Free when no lock of another open file covers any of it.
  const isFree = (fd: number): boolean => addon.rangeLockTest(fd, 'w', 0, 0);
  for (const c of configs) {
    if (c.nullStore) continue;
    let st: fs.Stats;
    try {
      st = fs.statSync(c.file); // what the worker's open of the path will find
    } catch {
      continue; // missing (the reload says so), or a remote store
    }
    if (st.isFile() || st.isBlockDevice()) giveClaimFile(['stores'], `${storeId(st)}.lock`, owner, isFree);
  }
}

let ofProcess: StoreClaims | undefined;

export class StoreClaims {
  /** The claims of this process: every server in it claims through one open file per store, so they never conflict. */
  static ofProcess(addon: Pick<NativeAddon, 'rangeLock' | 'rangeLockTest'>): StoreClaims {
    return (ofProcess ??= new StoreClaims(addon));
  }

  private readonly held = new Map<string, Held>();
  private base: string | undefined;

  constructor(
    private readonly addon: Pick<NativeAddon, 'rangeLock' | 'rangeLockTest'>,
    baseDir?: string,
  ) {
    this.base = baseDir;
  }

  /**
   * Claims the range `c` exports of the store open on `fd`; returns the
   * release. Throws ConfigError naming the other holder and the fixes when
   * another process of ours serves an overlapping range in a way the rule
   * refuses. A null store, or a claims directory this process may not use
   * (another user's), claims nothing.
   */
  claim(c: ExportConfig, fd: number): () => void {
    if (c.nullStore) return () => undefined;
    const st = fs.fstatSync(fd);
    if (!st.isFile() && !st.isBlockDevice()) return () => undefined;
    const id = storeId(st);
    // In sectors: bytes would leave a region at 2^51 bytes (2 PiB), and a far offset would make a negative length.
    const start = Math.min(c.offsetSectors, REGION - 1);
    const length = Math.max(1, Math.min(c.lengthSectors ?? REGION, REGION - start));
    const claim: Claim = { kind: kindOf(c), start, length };
    const h = this.open(id);
    if (h === undefined) return () => undefined;
    const rule = RULES[claim.kind];
    const taken: Lock[] = [];
    let bad: Lock | undefined;
    for (const l of rule.take) {
      if (!this.addon.rangeLock(h.fd, l.op, l.base + start, length)) {
        bad = l;
        break;
      }
      taken.push(l);
    }
    if (bad === undefined) bad = rule.test.find((l) => !this.addon.rangeLockTest(h.fd, l.op, l.base + start, length));
    if (bad !== undefined) {
      for (const l of taken) this.addon.rangeLock(h.fd, 'u', l.base + start, length);
      this.relock(h);
      throw new ConfigError(this.refusal(c, h.fd, id, claim));
    }
    h.claims.add(claim);
    return () => this.release(id, claim);
  }

  /** The lock file of store `id`, opened once per process; undefined when claims cannot be made here. */
  private open(id: string): Held | undefined {
    const found = this.held.get(id);
    if (found) return found;
    const base = (this.base ??= claimBaseDir());
    const dir = path.join(base, 'stores');
    let fd: number;
    try {
      ensurePrivateDir(path.dirname(base), 0o755);
      ensurePrivateDir(base, 0o755);
      ensurePrivateDir(dir, 0o755);
      const k = fs.constants;
      fd = fs.openSync(path.join(dir, `${id}.lock`), k.O_RDWR | k.O_CREAT | k.O_NOFOLLOW | k.O_NONBLOCK, 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw new ConfigError(`the store claim file ${dir}/${id}.lock is a symbolic link; remove it`);
      // Switched to its user after start: the host's claims are root's.
      if (code === 'EACCES' || code === 'EPERM')
        throw new ConfigError(
          `cannot claim the backing store in ${dir} (${(e as Error).message}): the claims are root's and this process has switched to its user since it started; put the export in the config file (or a fragment of config-dir, written as root) and restart the service to serve it`,
        );
      // Another user's claims directory: that user must not keep us from serving (address-claim.ts does the same).
      if (e instanceof ForeignClaimDir && (process.geteuid?.() ?? 0) !== 0) return undefined;
      throw e;
    }
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      throw new ConfigError(`the store claim file ${dir}/${id}.lock is not a regular file; remove it`);
    }
    const h: Held = { fd, claims: new Set() };
    this.held.set(id, h);
    return h;
  }

  /** Takes again every claim still held on `h`: an unlock of one range also unlocks another claim's overlap. */
  private relock(h: Held): void {
    for (const c of h.claims) for (const l of RULES[c.kind].take) this.addon.rangeLock(h.fd, l.op, l.base + c.start, c.length);
  }

  private release(id: string, claim: Claim): void {
    const h = this.held.get(id);
    if (!h || !h.claims.delete(claim)) return;
    if (h.claims.size === 0) {
      fs.closeSync(h.fd); // the kernel drops every lock of this open file
      this.held.delete(id);
      return;
    }
    for (const l of RULES[claim.kind].take) this.addon.rangeLock(h.fd, 'u', l.base + claim.start, claim.length);
    this.relock(h);
  }

  /** Why `c` is refused, naming the holders found and the fixes. */
  private refusal(c: ExportConfig, fd: number, id: string, claim: Claim): string {
    const holders = lockHolders(fs.fstatSync(fd), claim);
    const who = holders.length > 0 ? holders.join(', ') : 'a process this user cannot see';
    const range =
      c.offsetSectors === 0 && c.lengthSectors === undefined
        ? ''
        : `, sectors ${c.offsetSectors}..${c.lengthSectors === undefined ? 'end' : c.offsetSectors + c.lengthSectors - 1}`;
    // A read-only export is refused only beside a writer: say that, not "export both read-only" alone.
    const why = c.readOnly
      ? `cannot export ${c.file}${range} even read-only: another aoe-target process on this host writes it (${who}; claim ${id}); ` +
        'its initiators would see a disk that changes under them; stop the other, make the other read-only too (read-only = yes, vblade -r), '
      : `cannot write ${c.file}${range}: another aoe-target process on this host serves it (${who}; claim ${id}); ` +
        'two writers that do not know of each other corrupt the disk; stop the other, export both read-only (read-only = yes, vblade -r), ';
    return (
      why +
      'give them ranges that do not overlap (offset, length; vblade -o, -l), or, if both are meant to write (a cluster file system), ' +
      'set shared = yes on both (vblade --shared)'
    );
  }

  /** Gives up every claim (stop). */
  releaseAll(): void {
    for (const h of this.held.values()) fs.closeSync(h.fd);
    this.held.clear();
  }
}
