// When each view of an export was made and last used, kept in
// VIEWSDIR/eS.L/views.json so that `vblade ctl views` can tell an operator
// which machines of a lab have not been seen for a while, across restarts.
// Written whole (temporary name, fsync, rename, fsync of the directory), so
// that a crash leaves the old file or the new one, never half of one. The
// views themselves are the .img files; this file also says which views
// there were, so that a view file gone missing is noticed, not remade empty.

import type { TrustedDir } from '../safe-files/trusted-dir';

export interface ViewDates {
  /** Milliseconds since the epoch. */
  created: number;
  /** Milliseconds since the epoch; 0 when never seen since it was made. */
  lastSeen: number;
}

export const META_FILE = 'views.json';

/** How much of views.json is read: about 80 bytes a view. */
const META_MAX = 64 << 20;

/** The saved dates by view name (12 hex digits); empty when the file is missing; undefined when it cannot be read (which view it listed is then unknown). */
export function readViewDates(dir: TrustedDir): Map<string, ViewDates> | undefined {
  const out = new Map<string, ViewDates>();
  let text: string | undefined;
  try {
    text = dir.readFile(META_FILE, META_MAX)?.toString('utf8');
  } catch {
    return undefined;
  }
  if (text === undefined) return out;
  try {
    const parsed = JSON.parse(text) as { views?: Record<string, Partial<ViewDates>> };
    for (const [name, d] of Object.entries(parsed.views ?? {})) {
      if (/^[0-9a-f]{12}$/.test(name) && typeof d.created === 'number')
        out.set(name, { created: d.created, lastSeen: typeof d.lastSeen === 'number' ? d.lastSeen : 0 });
    }
  } catch {
    return undefined;
  }
  return out;
}

/** Replaces the dates file atomically and durably (a random temporary name, never through a link). */
export async function writeViewDates(dir: TrustedDir, dates: ReadonlyMap<string, ViewDates>): Promise<void> {
  const body = JSON.stringify({ version: 1, views: Object.fromEntries(dates) }) + '\n';
  await dir.writeFileAtomicAsync(META_FILE, body, 0o600);
}
