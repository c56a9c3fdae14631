// What `vblade ctl views` shows of an export's views: each machine's view
// with the space it does not share (FIEMAP, measured now), when it was made
// or reset, when its machine last used it, and why it is refused or stale.

import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ViewListing } from '../api/control';
import type { TrustedDir } from '../safe-files/trusted-dir';
import { macOfName, type View, type ViewFunctions } from './view';
import type { ViewFiles } from './view-files';
import type { ViewDates } from './view-meta';

/** When a view was last used: in this run, or as views.json says (ms since the epoch; 0: never). */
export function lastSeenOf(v: View): number {
  return v.seenAt > 0 ? performance.timeOrigin + v.seenAt : v.dates.lastSeen;
}

/**
 * LAST SEEN as `ctl views` shows it: the machine's last request to the view
 * as it is now, null when none since it was made or reset. (The machine's
 * last request before, kept for the activity checks, would be earlier than
 * CREATED.)
 */
function shownLastSeen(dates: ViewDates, seen: number): string | null {
  return seen === 0 || seen < dates.created ? null : new Date(seen).toISOString();
}

/** The open views (`list`), those not opened yet and the refused ones, by MAC. */
export function listViews(
  list: readonly (View | null)[],
  files: ViewFiles,
  dir: TrustedDir,
  fns: Pick<ViewFunctions, 'unsharedBytes'>,
): ViewListing[] {
  const out: ViewListing[] = [];
  const entry = (name: string, dates: ViewDates, seen: number, ownBytes: number, marks: Partial<ViewListing> = {}) => ({
    mac: macOfName(name),
    file: dir.pathOf(`${name}.img`),
    ownBytes,
    created: new Date(dates.created).toISOString(),
    lastSeen: shownLastSeen(dates, seen),
    ...marks,
  });
  const staleOf = (stale: string | undefined) => (stale === undefined ? {} : { stale });
  for (const v of list) {
    if (v !== null) out.push(entry(v.name, v.dates, lastSeenOf(v), fns.unsharedBytes(v.store.fd), staleOf(v.stale)));
  }
  for (const [key, u] of [...files.unopened]) {
    const fd = files.open(key, u, fs.constants.O_RDONLY, false);
    if (fd === undefined) continue; // refused now: listed below
    files.unopened.set(key, u);
    try {
      out.push(entry(u.name, u.dates, u.dates.lastSeen, fns.unsharedBytes(fd), staleOf(u.stale)));
    } finally {
      fs.closeSync(fd);
    }
  }
  for (const r of files.refusals.values()) out.push(entry(r.name, r.dates, r.dates.lastSeen, 0, { refused: r.why }));
  return out.sort((a, b) => (a.mac < b.mac ? -1 : 1));
}
