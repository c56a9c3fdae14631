// When each view of an export was made and last used, kept in
// VIEWSDIR/eS.L/views.json so that `vblade ctl views` can tell an operator
// which machines of a lab have not been seen for a while, across restarts.
// Written whole (temporary name, fsync, rename, fsync of the directory), so
// that a crash leaves the old file or the new one, never half of one. The
// views themselves are the .img files; this file also says which views
// there were, so that a view file gone missing is noticed, not remade empty.

import { performance } from 'node:perf_hooks';
import type { TrustedDir } from '../safe-files/trusted-dir';
import { isImageRecord, type ImageRecord } from './image-growth';

export interface ViewDates {
  /** Milliseconds since the epoch. */
  created: number;
  /** Milliseconds since the epoch; 0 when never seen since it was made. */
  lastSeen: number;
  /** The image it was cloned from and its size then (grown with it); absent when not known (a view of an older version). */
  image?: ImageRecord;
}

export const META_FILE = 'views.json';

/** How much of views.json is read: about 80 bytes a view. */
const META_MAX = 64 << 20;

/** Whether `ms` is milliseconds since the epoch that a Date can hold (a damaged file can say 1e300). */
export function isDate(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isFinite(new Date(ms).getTime());
}

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
    const parsed = JSON.parse(text) as { views?: Record<string, Partial<ViewDates> & { image?: unknown }> };
    for (const [name, d] of Object.entries(parsed.views ?? {})) {
      // A date that is no date is unknown (created 0: the file's own date is taken; lastSeen 0: never).
      if (/^[0-9a-f]{12}$/.test(name) && typeof d.created === 'number')
        out.set(name, {
          created: isDate(d.created) ? d.created : 0,
          lastSeen: isDate(d.lastSeen) ? d.lastSeen : 0,
          ...(isImageRecord(d.image) ? { image: d.image } : {}),
        });
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

export interface ViewDatesFileOptions {
  dir: TrustedDir;
  /** How often the dates are saved while views are in use. */
  everyMs: number;
  /** The dates to write now, by view name. */
  collect(): Map<string, ViewDates>;
  /** Whether a view was used since `t` (performance.now()). */
  usedSince(t: number): boolean;
  failed(message: string): void;
}

/** Keeps views.json up to date: soon after a view is made or dropped, now and then while views are in use, and at stop. */
export class ViewDatesFile {
  private soon: NodeJS.Timeout | null = null;
  private readonly periodic: NodeJS.Timeout;
  /** performance.now() of the last save. */
  private savedAt = 0;
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly o: ViewDatesFileOptions) {
    this.periodic = setInterval(() => {
      if (o.usedSince(this.savedAt)) void this.save();
    }, o.everyMs);
    this.periodic.unref();
  }

  /** A view was made, dropped or reset: saved within a second (one save for a burst of changes). */
  changed(): void {
    this.soon ??= setTimeout(() => {
      this.soon = null;
      void this.save();
    }, 1000);
    this.soon.unref();
  }

  /** Writes the file; resolves when it is on disk, never rejects. */
  save(): Promise<void> {
    this.savedAt = performance.now();
    const dates = this.o.collect();
    this.saving = this.saving.then(() =>
      writeViewDates(this.o.dir, dates).catch((e: Error) => this.o.failed(`cannot save view dates: ${e.message}`)),
    );
    return this.saving;
  }

  /** Whether a change is waiting for its save (the timer of changed() has not fired yet). */
  get pending(): boolean {
    return this.soon !== null;
  }

  /** Stops saving by itself; `save()` still writes when asked. */
  close(): void {
    clearInterval(this.periodic);
    if (this.soon !== null) clearTimeout(this.soon);
    this.soon = null;
  }
}
