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
      dir = root.child(exportKey(c), { what: `the views directory of ${exportKey(c)}`, create });
    } finally {
      root.close();
    }
    const d = new ExportDirs(dir, user);
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
        `give it to that user: chown -R ${u.uid}:${u.gid} ${d.path}`,
      d.path,
    );
  }

  close(): void {
    this.snaps?.close();
    this.snaps = null;
    this.dir.close();
  }
}
