// When each view of an export was made and last used, kept in
// VIEWSDIR/eS.L/views.json so that `vblade ctl views` can tell an operator
// which machines of a lab have not been seen for a while, across restarts.
// Written whole (temporary name, fsync, rename, fsync of the directory), so
// that a crash leaves the old file or the new one, never half of one. The
// views themselves are the .img files: losing this file loses only dates.

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ViewDates {
  /** Milliseconds since the epoch. */
  created: number;
  /** Milliseconds since the epoch; 0 when never seen since it was made. */
  lastSeen: number;
}

export const META_FILE = 'views.json';

/** The saved dates by view name (12 hex digits); empty when the file is missing or unreadable. */
export function readViewDates(dir: string): Map<string, ViewDates> {
  const out = new Map<string, ViewDates>();
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, META_FILE), 'utf8');
  } catch {
    return out;
  }
  try {
    const parsed = JSON.parse(text) as { views?: Record<string, Partial<ViewDates>> };
    for (const [name, d] of Object.entries(parsed.views ?? {})) {
      if (typeof d.created === 'number')
        out.set(name, { created: d.created, lastSeen: typeof d.lastSeen === 'number' ? d.lastSeen : 0 });
    }
  } catch {
    // A damaged file costs only dates: the views are still found by their files.
  }
  return out;
}

/** Replaces the dates file atomically and durably. */
export async function writeViewDates(dir: string, dates: ReadonlyMap<string, ViewDates>): Promise<void> {
  const file = path.join(dir, META_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  const body = JSON.stringify({ version: 1, views: Object.fromEntries(dates) }) + '\n';
  const fh = await fs.promises.open(
    tmp,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW,
    0o600,
  );
  try {
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  const d = await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
