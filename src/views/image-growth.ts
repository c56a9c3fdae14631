// Which image a view was cloned from, and at what size (kept in views.json
// with its dates), so that a view is never served at a size it was not made
// for. An image grown in place (same file, larger) grows each view: the new
// tail is cloned from the image (FICLONERANGE), so its machine reads the
// image's new data there and keeps its own blocks below. An image replaced
// (another file) or shrunk makes the views stale: the views of the same size
// serve on (each is a whole disk of the old image) and are marked; the
// others are refused until an operator resets or drops them.

import * as fs from 'node:fs';
import { describeSize } from '../config/export-config';

/** The image a view was made from: its inode and birth time (the device number may change across boots), and its size then. */
export interface ImageRecord {
  ino: number;
  /** Birth time in ms (statx), 0 when the file system does not keep one. */
  born: number;
  bytes: number;
}

/** The image open on `fd` as it is now. */
export function imageRecordOf(fd: number): ImageRecord {
  const st = fs.fstatSync(fd);
  return { ino: st.ino, born: st.birthtimeMs || 0, bytes: st.size };
}

/** Whether `x` is an ImageRecord read from a file (a damaged views.json can hold anything). */
export function isImageRecord(x: unknown): x is ImageRecord {
  const r = x as ImageRecord;
  return (
    typeof x === 'object' &&
    x !== null &&
    [r.ino, r.born, r.bytes].every((n) => typeof n === 'number' && Number.isSafeInteger(Math.floor(n)) && n >= 0)
  );
}

/** What to do with a view of `viewBytes` made from `made` (undefined: not known, a view of an older version) now that the image is `now`. */
export type Fit =
  | { kind: 'fits' }
  | { kind: 'grow'; from: number }
  /** Served (a whole disk of the old image), marked stale with why. */
  | { kind: 'stale'; why: string }
  | { kind: 'refuse'; why: string };

const WHAT_TO_DO = 'reset it to the image as it is now (vblade ctl view-reset) or drop it (vblade ctl view-drop)';

export function fitOf(made: ImageRecord | undefined, now: ImageRecord, viewBytes: number): Fit {
  const same = made !== undefined && made.ino === now.ino && (made.born === 0 || now.born === 0 || made.born === now.born);
  if (made !== undefined && !same) {
    const why = 'the image was replaced by another file since this view was made';
    return viewBytes === now.bytes
      ? { kind: 'stale', why: `${why}: it serves the old image's disk with its writes; ${WHAT_TO_DO}` }
      : {
          kind: 'refuse',
          why: `${why}, and its ${describeSize(viewBytes / 512)} are not the new image's ${describeSize(now.bytes / 512)}; ${WHAT_TO_DO}`,
        };
  }
  if (same && viewBytes < made.bytes)
    return {
      kind: 'refuse',
      why: `it has ${viewBytes} bytes, fewer than the image's ${made.bytes} it was cloned from (cut short: what was past its end is lost); ${WHAT_TO_DO}`,
    };
  if (viewBytes === now.bytes) return { kind: 'fits' };
  if (viewBytes < now.bytes && same) return { kind: 'grow', from: viewBytes };
  if (viewBytes < now.bytes)
    return {
      kind: 'refuse',
      why: `it has ${viewBytes} bytes, fewer than the image's ${now.bytes}, and views.json does not say it was made from this image; ${WHAT_TO_DO}`,
    };
  return {
    kind: 'refuse',
    why: `the image shrank to ${now.bytes} bytes since this view was made with ${viewBytes}; a view is not served at a size it was not made for: ${WHAT_TO_DO}`,
  };
}

/** The file system block size clones are aligned to (XFS and btrfs: 4 KiB for the file systems views run on). */
const BLOCK = 4096;

/**
 * Grows the view open on `viewFd` from `from` to `to` bytes: the tail is
 * the image's, the view's own bytes below `from` are not touched. A clone
 * is block-aligned, so when `from` is not, the image's bytes up to the next
 * block are copied and the clone starts there: reading the view's last
 * partial block and writing it back would undo a write of the initiator's
 * that the kernel completes in between.
 */
export function growView(
  clone: (srcFd: number, srcOff: number, len: number, dstFd: number, dstOff: number) => void,
  imageFd: number,
  viewFd: number,
  from: number,
  to: number,
): void {
  // A buffered descriptor of the same file: the view's own may be O_DIRECT, and the copied bytes are not aligned.
  const fd = fs.openSync(`/proc/self/fd/${viewFd}`, fs.constants.O_RDWR);
  try {
    const blockEnd = Math.min(to, Math.ceil(from / BLOCK) * BLOCK);
    if (blockEnd > from) {
      const head = readImage(imageFd, from, blockEnd - from);
      fs.writeSync(fd, head, 0, head.length, from);
    }
    if (to > blockEnd) clone(imageFd, blockEnd, to - blockEnd, fd, blockEnd);
    if (fs.fstatSync(fd).size !== to) fs.ftruncateSync(fd, to);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** `length` bytes of the image at `at`, through its served descriptor (a root-only image is not opened again after a switch to user =). */
function readImage(imageFd: number, at: number, length: number): Buffer {
  const head = Buffer.alloc(length);
  let got: number;
  try {
    got = fs.readSync(imageFd, head, 0, length, at);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
    // Opened O_DIRECT (direct = yes): these bytes are not aligned, a buffered descriptor reads them.
    const buffered = fs.openSync(`/proc/self/fd/${imageFd}`, fs.constants.O_RDONLY);
    try {
      got = fs.readSync(buffered, head, 0, length, at);
    } finally {
      fs.closeSync(buffered);
    }
  }
  if (got !== length) throw new Error(`the image gave ${got} of ${length} bytes at ${at}`);
  return head;
}

/** What the views need to know of their image and do to fit it (ViewFiles for views of an earlier run, ExportViews for open ones). */
export interface ImageFit {
  /** The image as it is served now (bytes: its size when the export last took it). */
  now(): ImageRecord;
  /** Grows the view open on `fd` from `from` bytes to the image's size, its tail cloned from the image. */
  grow(name: string, fd: number, from: number): void;
  /** A view made from a replaced image serves on, marked (said once). */
  stale(name: string, why: string): void;
}

/** An open view as growing needs it. */
interface GrowingView {
  readonly name: string;
  readonly store: { readonly fd: number };
  readonly dates: { image?: ImageRecord };
}

/** The image of one export's views, and growing them with it. */
export class ViewGrowth implements ImageFit {
  private image: ImageRecord;

  constructor(
    private readonly imageFd: number,
    private readonly clone: (srcFd: number, srcOff: number, len: number, dstFd: number, dstOff: number) => void,
    private readonly events: { grown(name: string, from: number, to: number): void; stale(name: string, why: string): void },
  ) {
    this.image = imageRecordOf(imageFd);
  }

  now(): ImageRecord {
    return this.image;
  }

  /** What a clone just made on `fd` was made from: the image, at the clone's size. */
  madeFrom(fd: number): ImageRecord {
    return { ...this.image, bytes: fs.fstatSync(fd).size };
  }

  grow(name: string, fd: number, from: number): void {
    growView(this.clone, this.imageFd, fd, from, this.image.bytes);
    this.events.grown(name, from, this.image.bytes);
  }

  stale(name: string, why: string): void {
    this.events.stale(name, why);
  }

  /**
   * The image grew in place to `bytes` (an online resize): every open view
   * is grown to it before the export serves the new size; views not opened
   * yet are grown when they are opened. Throws when one cannot be; the
   * views grown before it stay grown (larger than the export: harmless).
   */
  growAll(bytes: number, views: Iterable<GrowingView | null>): void {
    this.image = { ...this.image, bytes };
    for (const v of views) {
      if (v === null) continue;
      const size = fs.fstatSync(v.store.fd).size;
      if (size < bytes) {
        try {
          this.grow(v.name, v.store.fd, size);
        } catch (e) {
          throw new Error(`the view of ${v.name.match(/../g)!.join(':')} cannot be grown: ${(e as Error).message}`, {
            cause: e,
          });
        }
      }
      v.dates.image = { ...this.image, bytes: Math.max(size, bytes) };
    }
  }
}
