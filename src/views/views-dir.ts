// Where an export's views and snapshots live: VIEWSDIR/eS.L, and its
// snapshots/ folder. One place, so that opening a store, making views and
// taking snapshots agree on it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { exportKey, type ExportConfig } from '../config/export-config';

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
