// Whether a new initiator may have a view made now, and what a refusal
// costs. Any station on the segment can send a frame from a new source MAC,
// and each view is a file, a descriptor and up to the image's size on disk:
// new views are bounded per export (max-views) and per process (the
// descriptors), and none is made while the views file system is below its
// free-space floor (views-min-free), which keeps room for the views that
// exist. A refusal keeps no memory per machine and is logged once per
// interval with a count, so a flood of forged MACs grows neither the process
// nor the log.

import * as fs from 'node:fs';

/** The descriptor limit when /proc does not say. */
const FALLBACK = 1024;

/**
 * The process's limit on open descriptors (RLIMIT_NOFILE, soft), which bounds
 * how many views can stay open. Node has no getrlimit; /proc has it (Node
 * raised the soft limit to the hard one when it started).
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number {
  try {
    const line = fs
      .readFileSync(limitsFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(soft);
    return Number.isInteger(n) && n > 0 ? n : FALLBACK;
  } catch {
    return FALLBACK;
  }
}

export const REFUSAL_REASONS = ['max-views', 'open-files', 'min-free', 'views-dir', 'failed'] as const;
/** Why a new initiator got no view: the export's bound, the process's, the free-space floor, a views directory it cannot use, or making one failed. */
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Views the whole process may keep open, one descriptor each: one budget shared by the views of every export. */
export class ViewBudget {
  /** Views open, over all exports. */
  open = 0;
  /** Views being made or opened, over all exports. */
  pending = 0;
  constructor(readonly limit: number) {}

  get used(): number {
    return this.open + this.pending;
  }
}

export interface AdmissionOptions {
  /** The export's views directory (its file system is the one whose free space counts). */
  dir: string;
  /** Views this export may have (max-views). */
  maxViews: number;
  /** Percent of the views file system kept free (views-min-free); 0 = no floor. */
  minFreePercent: number;
  budget: ViewBudget;
  /** A refusal to log: `count` refusals of `reason` since the last line, over `seconds` (0: the first one). */
  refused(reason: RefusalReason, count: number, seconds: number, message: string): void;
  /** How often refusals are summed up in the log (default 60 s). */
  summaryMs?: number;
}

/** After making a view failed (a full file system, an I/O error): no new view is tried for this long. */
export const RETRY_MS = 5000;
/** The free space is looked at no more often than this (statfs is a system call, and a flood calls often). */
const SPACE_CHECK_MS = 1000;
const SUMMARY_MS = 60_000;

export class ViewAdmission {
  /** Refusals since the start, by reason. */
  readonly refusals: Record<RefusalReason, number> = {
    'max-views': 0,
    'open-files': 0,
    'min-free': 0,
    'views-dir': 0,
    failed: 0,
  };
  /** The reason of the last refusal; its text is made only when asked for (no allocation per refused frame). */
  private lastReason: RefusalReason | null = null;
  /** Until then (engine clock) new views are refused because making one failed. */
  private failedUntil = -Infinity;
  private failedMessage = '';
  private spaceCheckedAt = -Infinity;
  /** Why the file system is below its floor at the last look; null when it was not. */
  private lowSpace: string | null = null;
  /** Why the views directory could not be looked at (statfs failed: the user may not enter it, or it is gone); null when it could. */
  private dirProblem: string | null = null;
  /** Refusals not logged yet, by reason. */
  private readonly unlogged: Record<RefusalReason, number> = {
    'max-views': 0,
    'open-files': 0,
    'min-free': 0,
    'views-dir': 0,
    failed: 0,
  };
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: AdmissionOptions) {}

  /** Views this export may have (max-views). */
  get maxViews(): number {
    return this.o.maxViews;
  }

  /** Total refusals since the start. */
  get total(): number {
    let n = 0;
    for (const r of REFUSAL_REASONS) n += this.refusals[r];
    return n;
  }

  /**
   * True (and the refusal counted and logged) when no new view may be made
   * now; `held` is this export's views, open or being made; `now` the engine
   * clock (performance.now()).
   */
  refuses(held: number, now: number): boolean {
    const o = this.o;
    if (held >= o.maxViews) return this.refuse('max-views');
    if (o.budget.used >= o.budget.limit) return this.refuse('open-files');
    if (now < this.failedUntil) return this.refuse('failed');
    if (this.spaceBelowFloor(now) !== null) return this.refuse(this.dirProblem === null ? 'min-free' : 'views-dir');
    return false;
  }

  /** A machine whose view exists cannot have it opened: the process's descriptors are used up (counted and logged as open-files). */
  refuseOpening(): null {
    this.refuse('open-files');
    return null;
  }

  /** Making a view failed: new views are refused for RETRY_MS (one time for all machines, not one per machine). */
  failed(message: string, now: number): void {
    this.failedUntil = now + RETRY_MS;
    this.failedMessage = `${message}; no new view is tried for ${RETRY_MS / 1000} s`;
    this.spaceCheckedAt = -Infinity; // a full file system shows at the next look
    this.refuse('failed');
  }

  /** What the last refusal says, with what to do. */
  get lastMessage(): string | null {
    return this.lastReason === null ? null : this.message(this.lastReason);
  }

  private message(reason: RefusalReason): string {
    const o = this.o;
    switch (reason) {
      case 'max-views':
        return `view limit ${o.maxViews} of this export reached (max-views); drop views no machine uses (vblade ctl view-drop) or raise max-views`;
      case 'open-files':
        return `${o.budget.limit} views are open in this process, the most its open-file limit allows; drop views no machine uses (vblade ctl view-drop) or raise LimitNOFILE`;
      case 'failed':
        return this.failedMessage;
      case 'views-dir':
        return this.dirProblem ?? `the views directory ${o.dir} could not be used`;
      case 'min-free':
        return this.lowSpace ?? `the file system of ${o.dir} was below views-min-free ${o.minFreePercent} %`;
    }
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private spaceBelowFloor(now: number): string | null {
    const floor = this.o.minFreePercent;
    if (floor <= 0) return null;
    if (now - this.spaceCheckedAt < SPACE_CHECK_MS) return this.lowSpace;
    this.spaceCheckedAt = now;
    let free: number;
    try {
      const s = fs.statfsSync(this.o.dir);
      free = s.blocks > 0 ? (100 * s.bavail) / s.blocks : 100;
    } catch (e) {
      this.dirProblem =
        `cannot use the views directory ${this.o.dir}: ${(e as Error).message}; the daemon's user must be able to enter and write it and views-dir: ` +
        'give them to it (chown -R USER: VIEWSDIR) and reload; vbladed --check names what is wrong';
      this.lowSpace = this.dirProblem;
      return this.lowSpace;
    }
    this.dirProblem = null;
    this.lowSpace =
      free < floor
        ? `the file system of ${this.o.dir} has ${free.toFixed(1)} % free, below views-min-free ${floor} %; the views that exist keep working; free space there (vblade ctl view-drop, or grow it)`
        : null;
    return this.lowSpace;
  }

  private refuse(reason: RefusalReason): true {
    this.refusals[reason]++;
    this.lastReason = reason;
    if (this.timer === null) {
      // The first refusal after a quiet interval is logged at once; the rest are summed up at its end.
      this.o.refused(reason, 1, 0, this.message(reason));
      this.startSummary();
    } else this.unlogged[reason]++;
    return true;
  }

  private startSummary(): void {
    const ms = this.o.summaryMs ?? SUMMARY_MS;
    this.timer = setTimeout(() => {
      this.timer = null;
      let logged = false;
      for (const reason of REFUSAL_REASONS) {
        const n = this.unlogged[reason];
        if (n === 0) continue;
        this.o.refused(reason, n, ms / 1000, this.message(reason));
        this.unlogged[reason] = 0;
        logged = true;
      }
      if (logged) this.startSummary();
    }, ms);
    this.timer.unref();
  }
}
