// The files of an export's views from an earlier run: found at start
// without opening them (a restart with more views than descriptors must
// serve), checked when opened, and refused when one is not what it claims:
// missing though views.json lists it, shorter than the image, a link, a
// hard link, not a regular file, or of another owner. A refused view is
// never served and never silently replaced; its initiator gets error
// replies until an operator resets or drops it.

import * as fs from 'node:fs';
import { kindOf } from '../safe-files/checks';
import type { TrustedDir } from '../safe-files/trusted-dir';
import type { ViewEvents } from './view';
import { readViewDates, type ViewDates } from './view-meta';

const VIEW_FILE = /^([0-9a-f]{12})\.img$/;

/** A view known by its file and dates only. */
export interface ViewEntry {
  name: string;
  dates: ViewDates;
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
    private readonly imageFd: number,
    private readonly events: Pick<ViewEvents, 'failed' | 'refused'>,
  ) {}

  /** Finds the views of views.json and of the directory; each is either not opened yet or refused. */
  find(): void {
    let dates = readViewDates(this.d);
    if (dates === undefined) {
      this.events.failed(
        'views.json',
        `${this.d.pathOf('views.json')} cannot be read (damaged, or not a regular file); the views' dates are lost and it is rewritten at the next save`,
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
      if (why === null) this.unopened.set(parseInt(name, 16), { name, dates: d });
      else this.refuse(parseInt(name, 16), { name, dates: d }, why);
    }
  }

  /** What is wrong with the file of view `name` (null: nothing seen); `st` its lstat or fstat. */
  private problemOf(name: string, st: fs.Stats | undefined): string | null {
    const file = this.d.pathOf(`${name}.img`);
    if (st === undefined) return `its file ${file} is missing (views.json lists it)`;
    if (!st.isFile()) return `${file} is ${kindOf(st)}, not a regular file`;
    if (st.nlink !== 1) return `${file} has ${st.nlink} names (a hard link: writing it would change another file)`;
    if (!this.owners.includes(st.uid)) return `${file} belongs to uid ${st.uid}, not to uid ${this.owners.join(' or ')}`;
    const size = fs.fstatSync(this.imageFd).size;
    if (st.size < size) return `${file} has ${st.size} bytes, fewer than the image's ${size}`;
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

  /** Opens view `v` with `flags` and checks it; refuses it (and returns undefined) when it is not what it must be. */
  open(key: number, v: ViewEntry, flags: number): number | undefined {
    this.unopened.delete(key);
    let fd: number;
    try {
      fd = this.d.openFile(`${v.name}.img`, { flags, singleLink: true, owners: this.owners, what: 'view' });
    } catch (e) {
      this.refuse(key, v, (e as Error).message);
      return undefined;
    }
    const why = this.problemOf(v.name, fs.fstatSync(fd));
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
