// The files of an export's views: a new one made under an unguessable
// name and renamed into place; those from an earlier run found at start
// without opening them (a restart with more views than descriptors must
// serve), checked when opened, and refused when one is not what it claims:
// missing though views.json lists it, a link, a hard link, not a regular
// file, of another owner, or not of the image's size (image-growth.ts: a
// view of an image grown in place is grown; one of a replaced or shrunk
// image is stale). A refused view is never served and never silently
// replaced; its initiator gets error replies until an operator resets or
// drops it.

import * as fs from 'node:fs';
import { kindOf } from '../safe-files/checks';
import type { TrustedDir } from '../safe-files/trusted-dir';
import type { ViewEvents } from './view';
import { fitOf, type ImageFit } from './image-growth';
import { readViewDates, type ViewDates } from './view-meta';

const VIEW_FILE = /^([0-9a-f]{12})\.img$/;

/** A view known by its file and dates only. */
export interface ViewEntry {
  name: string;
  dates: ViewDates;
  /** Made from an image replaced since: served (the old image's disk), marked with why. */
  stale?: string;
}

export class ViewFiles {
  /** Views not opened yet (by MAC key): opened at their initiator's first request. */
  readonly unopened = new Map<number, ViewEntry>();
  /** Views refused (by MAC key), and why. */
  readonly refusals = new Map<number, ViewEntry & { why: string }>();

  constructor(
    private readonly d: TrustedDir,
    /** Who may own a view file. */
    private readonly owners: readonly number[],
    private readonly image: ImageFit,
    private readonly events: Pick<ViewEvents, 'failed' | 'refused'>,
  ) {}

  /** Finds the views of views.json and of the directory; each is either not opened yet or refused. */
  find(): void {
    let dates = readViewDates(this.d);
    if (dates === undefined) {
      this.events.failed(
        `${this.d.pathOf('views.json')} cannot be read (damaged, or not a regular file); the views' dates are lost and it is rewritten at the next save`,
        this.d.pathOf('views.json'),
      );
      dates = new Map();
    }
    const names = new Set(dates.keys());
    for (const f of this.d.list()) {
      const m = VIEW_FILE.exec(f);
      if (m !== null) names.add(m[1]);
    }
    for (const name of names) {
      const st = this.d.lstat(`${name}.img`);
      const d = dates.get(name) ?? { created: 0, lastSeen: 0 };
      if (d.created === 0) d.created = st?.birthtimeMs || Date.now();
      const why = this.problemOf(name, st);
      if (why !== null) {
        this.refuse(parseInt(name, 16), { name, dates: d }, why);
        continue;
      }
      // Grown, marked stale or refused now, not at its machine's first request: the log at start says which.
      const key = parseInt(name, 16);
      const u: ViewEntry = { name, dates: d };
      this.unopened.set(key, u);
      if (this.fitOf(d, st!.size).kind === 'fits') continue; // problemOf: a regular file
      const fd = this.open(key, u, fs.constants.O_RDWR);
      if (fd === undefined) continue; // refused
      fs.closeSync(fd);
      this.unopened.set(key, u);
    }
  }

  private fitOf(d: ViewDates, size: number): ReturnType<typeof fitOf> {
    return fitOf(d.image, this.image.now(), size);
  }

  /**
   * Fits view `v` open on `fd` (of `size` bytes) to the image: grown when
   * the image grew in place, marked stale when it was replaced; a view of
   * an unknown image (views.json lost it) of the image's size is taken as
   * the image's. Why it is refused, or null.
   */
  private fit(v: ViewEntry, fd: number, size: number): string | null {
    const f = this.fitOf(v.dates, size);
    const now = this.image.now();
    if (f.kind === 'refuse') return f.why;
    if (f.kind === 'stale') {
      if (v.stale === undefined) this.image.stale(v.name, f.why);
      v.stale = f.why;
      return null;
    }
    if (f.kind === 'grow') {
      try {
        this.image.grow(v.name, fd, f.from);
      } catch (e) {
        return `it could not be grown from ${f.from} to the image's ${now.bytes} bytes: ${(e as Error).message}`;
      }
    }
    v.dates.image = now;
    return null;
  }

  /** What is wrong with the file of view `name` (null: nothing seen); `st` its lstat or fstat. */
  private problemOf(name: string, st: fs.Stats | undefined): string | null {
    const file = this.d.pathOf(`${name}.img`);
    if (st === undefined) return `its file ${file} is missing (views.json lists it)`;
    if (!st.isFile()) return `${file} is ${kindOf(st)}, not a regular file`;
    if (st.nlink !== 1) return `${file} has ${st.nlink} names (a hard link: writing it would change another file)`;
    if (!this.owners.includes(st.uid)) return `${file} belongs to uid ${st.uid}, not to uid ${this.owners.join(' or ')}`;
    return null;
  }

  refuse(key: number, v: ViewEntry, why: string): void {
    this.unopened.delete(key);
    this.refusals.set(key, { ...v, why });
    this.events.refused(v.name, why);
  }

  /** A view whose name could not be removed: refused (with `why`, unless it was refused already), never made anew over it. */
  keepRefused(key: number, name: string, dates: ViewDates | undefined, why: string): void {
    if (this.refusals.has(key)) return;
    this.refuse(key, this.unopened.get(key) ?? { name, dates: dates ?? { created: Date.now(), lastSeen: 0 } }, why);
  }

  /**
   * Opens view `v` with `flags` and checks it, fitting it to the image
   * (`fit`: to serve it; not for a look); refuses it (and returns undefined)
   * when it is not what it must be.
   */
  open(key: number, v: ViewEntry, flags: number, fit = true): number | undefined {
    this.unopened.delete(key);
    let fd: number;
    try {
      fd = this.d.openFile(`${v.name}.img`, { flags, singleLink: true, owners: this.owners, what: 'view' });
    } catch (e) {
      this.refuse(key, v, (e as Error).message);
      return undefined;
    }
    const st = fs.fstatSync(fd);
    const why = this.problemOf(v.name, st) ?? (fit ? this.fit(v, fd, st.size) : null);
    if (why === null) return fd;
    fs.closeSync(fd);
    this.refuse(key, v, why);
    return undefined;
  }

  has(key: number): boolean {
    return this.unopened.has(key) || this.refusals.has(key);
  }

  /** Forgets a view (reset or dropped); what was known of it. */
  take(key: number): ViewEntry | undefined {
    const v = this.unopened.get(key) ?? this.refusals.get(key);
    this.unopened.delete(key);
    this.refusals.delete(key);
    return v;
  }

  /** Every view not open: not opened yet, then refused. */
  all(): ViewEntry[] {
    return [...this.unopened.values(), ...this.refusals.values()];
  }

  get size(): number {
    return this.unopened.size + this.refusals.size;
  }
}

/** An error's message without the /proc/self/fd/N/... path the system call was given (the message names the real path). */
export function errorText(e: Error): string {
  return e.message.replace(/, \w+ '\/proc\/self\/fd\/[^']*'.*$/, '');
}

/** What an operation on views says when the export was reloaded or stopped under it. */
export function gone(dir: string): Error {
  return new Error(`the views of ${dir} were closed meanwhile (the export was reloaded or stopped); run the command again`);
}

/** The clone was made but cannot take the view's name: something else is there. */
export class NameTaken extends Error {}

/**
 * A new clone (`clone` fills the file open on the descriptor it is given) under
 * a new unguessable name in `d`, then renamed to `name`.img and the name made
 * durable; its descriptor. Throws NameTaken when something else holds the
 * name, gone() when the views were closed meanwhile (`closed`).
 */
export async function cloneView(
  d: TrustedDir,
  name: string,
  flags: number,
  clone: (fd: number) => Promise<void>,
  closed: () => boolean,
): Promise<number> {
  const tmp = d.createTemp(`${name}.img`, 0o600, flags);
  try {
    await clone(tmp.fd);
    if (closed()) throw gone(d.path);
    try {
      d.rename(tmp.name, `${name}.img`);
    } catch (e) {
      throw new NameTaken(`${d.pathOf(`${name}.img`)} cannot be replaced (${errorText(e as Error)})`, { cause: e });
    }
    // The name must be durable before a write to it is acknowledged as durable.
    await new Promise<void>((resolve, reject) => fs.fsync(d.fd, (err) => (err ? reject(err) : resolve())));
  } catch (e) {
    fs.closeSync(tmp.fd);
    if (!closed()) d.unlink(tmp.name); // else its directory is closed: a stale clone, removed at the next start
    throw e;
  }
  if (closed()) {
    fs.closeSync(tmp.fd);
    throw gone(d.path);
  }
  return tmp.fd;
}
