// Where an export's views and snapshots live: VIEWSDIR/eS.L, and its
// snapshots/ folder. One place, so that opening a store, making views and
// taking snapshots agree on it. Both are opened once as trusted directories
// (src/safe-files): views-dir and everything above it checked, every file
// operation relative to the held descriptors, so that a user who could
// write there cannot swap a machine's disk or make the daemon write through
// a link.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { exportKey, type ExportConfig } from '../config/export-config';
import { UnsafePathError } from '../safe-files/checks';
import { TrustedDir } from '../safe-files/trusted-dir';

/** A views place others could tamper with, or of the wrong owner (a directory's owner or mode): the configuration is wrong, never served. */
export function isUnsafeViewsPlace(e: unknown): boolean {
  return e instanceof UnsafePathError;
}

/** VIEWSDIR/eS.L: where an export's views (and snapshots) live. */
export function viewsDirOf(c: ExportConfig): string {
  return path.join(c.viewsDir ?? '', exportKey(c));
}

/** Whether an export's views dir holds a view (aabbccddeeff.img): clones were made there. */
export function holdsViews(c: ExportConfig): boolean {
  try {
    return fs.readdirSync(viewsDirOf(c)).some((f) => /^[0-9a-f]{12}\.img$/.test(f));
  } catch {
    return false;
  }
}

/** VIEWSDIR/eS.L/snapshots. */
export function snapshotsDirOf(c: ExportConfig): string {
  return path.join(viewsDirOf(c), 'snapshots');
}

/** The user a root daemon switches to (`user =`): its views must be that user's to be written after the switch. */
export interface ViewsUser {
  name: string;
  uid: number;
  gid: number;
}

/** An export's directory and its snapshots/, held open. */
export class ExportDirs {
  private snaps: TrustedDir | null = null;
  /** Why snapshots/ could not be opened at start (a link, a file, open to all); null when it could. Only the snapshots are refused. */
  snapshotsProblem: string | null = null;

  private constructor(
    /** VIEWSDIR/eS.L */
    readonly dir: TrustedDir,
    private readonly user: ViewsUser | undefined,
    /** views-dir: the fix (chown -R) names it, so that one command mends it and everything under it. */
    private readonly viewsDir: string,
  ) {}

  /**
   * Opens (making what is missing, for `user` when given) views-dir and
   * VIEWSDIR/eS.L, and snapshots/ when it exists. Throws a message that says
   * what is wrong and how to fix it.
   */
  static open(c: ExportConfig, user?: ViewsUser, make = true): ExportDirs {
    const create = make ? { mode: 0o700, uid: user?.uid, gid: user?.gid } : undefined;
    const owners = user === undefined ? [] : [user.uid];
    const root = TrustedDir.open(c.viewsDir ?? '', { what: 'views-dir', owners, create });
    let dir: TrustedDir;
    try {
      if (user !== undefined) checkUserMayWrite(root, user);
      dir = root.child(exportKey(c), { what: `the views directory of ${exportKey(c)}`, create });
    } finally {
      root.close();
    }
    const d = new ExportDirs(dir, user, root.path);
    try {
      d.checkUser(dir);
    } catch (e) {
      d.close();
      throw e;
    }
    // A damaged snapshots/ costs the snapshots, never the export: it serves, and ctl snapshot(s) say why (snapshots() throws again).
    try {
      if (dir.lstat('snapshots') !== undefined) d.snapshots();
    } catch (e) {
      d.snapshotsProblem = (e as Error).message;
    }
    return d;
  }

  /** VIEWSDIR/eS.L/snapshots, made when missing; null when missing and not to be made. */
  snapshots(make = true): TrustedDir | null {
    if (this.snaps === null) {
      if (!make && this.dir.lstat('snapshots') === undefined) return null;
      const s = this.dir.child('snapshots', {
        what: 'snapshots directory',
        create: { mode: 0o700, uid: this.user?.uid, gid: this.user?.gid },
      });
      try {
        this.checkUser(s);
      } catch (e) {
        s.close();
        throw e;
      }
      this.snaps = s;
    }
    return this.snaps;
  }

  /** After the switch to `user =` the daemon makes views and snapshots here as that user: it must own the directory. */
  private checkUser(d: TrustedDir): void {
    const u = this.user;
    if (u === undefined || d.owner === u.uid) return;
    throw new UnsafePathError(
      `${d.path} belongs to uid ${d.owner}, but the daemon switches to user ${u.name} (uid ${u.uid}), which could not make views or snapshots there; ` +
        `give it to that user: ${chownFix(u, this.viewsDir)}`,
      d.path,
    );
  }

  close(): void {
    this.snaps?.close();
    this.snaps = null;
    this.dir.close();
  }
}

/** The command that gives views-dir and all under it to the user. */
export function chownFix(u: { name: string }, viewsDir: string): string {
  return `chown -R ${u.name}: ${viewsDir}`;
}

/**
 * views-dir may be root's (an admin made it), but the user must enter it to
 * reach its views and write in it to make the directory of an export a reload
 * adds: else every new machine is refused long after start said nothing.
 * Judged by the mode bits for the user's uid and primary group.
 */
function checkUserMayWrite(d: TrustedDir, u: ViewsUser): void {
  const s = d.stat();
  const shift = s.uid === u.uid ? 6 : s.gid === u.gid ? 3 : 0;
  if (((s.mode >> shift) & 0o3) === 0o3) return;
  const mode = (s.mode & 0o7777).toString(8).padStart(4, '0');
  throw new UnsafePathError(
    `views-dir ${d.path} belongs to uid ${s.uid} (mode ${mode}), and user ${u.name} (uid ${u.uid}), which the daemon switches to, cannot make files in it; ` +
      `give it to that user: ${chownFix(u, d.path)}`,
    d.path,
  );
}
