// Point-in-time copies of an export or of one of its views: reflink clones
// in VIEWSDIR/eS.L/snapshots/NAME.img, with NAME.json saying when and of
// what. Only files here; the server pauses the export around take() and
// revert() so that no request is in flight while the clone is made.

import * as fs from 'node:fs';
import type { SnapshotInfo } from '../api/control';
import type { TrustedDir } from '../safe-files/trusted-dir';
import { isDate } from './view-meta';

export interface SnapshotFunctions {
  reflinkClone(srcFd: number, dstFd: number): void;
  unsharedBytes(fd: number): number;
  unsharedBytesAsync(fd: number): Promise<number>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A name from the clock, e.g. 20261202T021500.123Z, when the user gives none. */
export function defaultSnapshotName(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '');
}

export function checkSnapshotName(name: string): void {
  if (!NAME.test(name) || name.endsWith('.img') || name.endsWith('.json'))
    throw new Error(
      `"${name}" is not a snapshot name; use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
}

/** How much of NAME.json is read: a few dozen bytes are written. */
const META_MAX = 4096;

export class SnapshotDir {
  constructor(
    /** VIEWSDIR/eS.L/snapshots, held open (views-dir.ts): every file is opened relative to it, no link followed. */
    private readonly d: TrustedDir,
    private readonly fns: SnapshotFunctions,
  ) {}

  get dir(): string {
    return this.d.path;
  }

  fileOf(name: string): string {
    return this.d.pathOf(`${name}.img`);
  }

  /** Refuses a name in use before the export is paused for nothing. */
  checkFree(name: string): void {
    checkSnapshotName(name);
    for (const f of [`${name}.img`, `${name}.json`])
      if (this.d.lstat(f) !== undefined)
        throw new Error(`${this.d.pathOf(f)} exists; choose another name or delete it first (vblade ctl snapshot-delete)`);
  }

  /**
   * Flushes `srcFd` and clones it to NAME.img, durably (the clone and its
   * name are synced). Runs while the export is paused.
   */
  take(name: string, srcFd: number, of: string): string {
    this.checkFree(name);
    fs.fdatasyncSync(srcFd);
    const tmp = this.d.createTemp(name, 0o600);
    try {
      try {
        this.fns.reflinkClone(srcFd, tmp.fd);
        fs.fsyncSync(tmp.fd);
      } finally {
        fs.closeSync(tmp.fd);
      }
      this.d.rename(tmp.name, `${name}.img`);
    } catch (e) {
      this.d.unlink(tmp.name);
      throw e;
    }
    this.d.writeFileAtomic(`${name}.json`, JSON.stringify({ created: Date.now(), of }) + '\n', 0o600);
    return this.fileOf(name);
  }

  /** The snapshot NAME was taken of: 'export' or a view's MAC. Throws when there is none of that name. */
  find(name: string): { file: string; of: string } {
    checkSnapshotName(name);
    if (this.d.lstat(`${name}.img`) === undefined)
      throw new Error(`no snapshot "${name}" in ${this.dir}; list them with vblade ctl snapshots`);
    return { file: this.fileOf(name), of: this.readMeta(name, 0).of };
  }

  /** NAME.json (a regular file, never through a link); what it cannot say comes from the image's date, `mtimeMs`. */
  private readMeta(name: string, mtimeMs: number): { created: number; of: string } {
    try {
      const m = JSON.parse(this.d.readFile(`${name}.json`, META_MAX)?.toString('utf8') ?? '') as {
        created?: unknown;
        of?: unknown;
      };
      return { created: isDate(m.created) ? m.created : mtimeMs, of: typeof m.of === 'string' ? m.of : 'export' };
    } catch {
      return { created: mtimeMs, of: 'export' };
    }
  }

  /** NAME.img opened for reading: a regular file with no other name, or refused. */
  private open(name: string): number {
    return this.d.openFile(`${name}.img`, { what: 'snapshot', singleLink: true });
  }

  /** Puts the snapshot back into `dstFd` (the export's file or a view), in place. Runs while the export is paused. */
  revertInto(name: string, dstFd: number): void {
    this.find(name);
    const src = this.open(name);
    try {
      this.fns.reflinkClone(src, dstFd);
      fs.fdatasyncSync(dstFd);
    } finally {
      fs.closeSync(src);
    }
  }

  /** Every snapshot; a file that is not one (a link, a FIFO, ...) is left out, never opened in a way that could block. */
  list(): SnapshotInfo[] {
    const out: SnapshotInfo[] = [];
    for (const f of this.d.list().sort()) {
      if (!f.endsWith('.img') || f.startsWith('.')) continue;
      const name = f.slice(0, -4);
      let fd: number;
      try {
        fd = this.open(name);
      } catch {
        continue;
      }
      try {
        const meta = this.readMeta(name, fs.fstatSync(fd).mtimeMs);
        out.push({
          name,
          file: this.fileOf(name),
          created: new Date(meta.created).toISOString(),
          of: meta.of,
          ownBytes: this.fns.unsharedBytes(fd),
        });
      } finally {
        fs.closeSync(fd);
      }
    }
    return out;
  }

  /**
   * How many snapshots there are and the bytes they have of their own, for
   * stats: measured on pool threads, so it may run while the export serves.
   * Only regular files are opened, without waiting (a FIFO planted here
   * must not hold a thread). Throws when the directory or a snapshot cannot
   * be read (a process that switched to a user without access).
   */
  async totals(): Promise<{ count: number; ownBytes: number }> {
    // A directory or file this process may not read throws: a count without them would be a false figure.
    const files = this.d.list();
    let count = 0;
    let ownBytes = 0;
    for (const f of files) {
      if (!f.endsWith('.img') || f.startsWith('.')) continue;
      let fh: fs.promises.FileHandle;
      try {
        // Relative to the held directory (a swapped path changes nothing), without following a link.
        fh = await fs.promises.open(this.d.at(f), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ELOOP') continue; // deleted meanwhile, or a link
        throw e;
      }
      try {
        if (!(await fh.stat()).isFile()) continue;
        ownBytes += await this.fns.unsharedBytesAsync(fh.fd);
        count++;
      } finally {
        await fh.close();
      }
    }
    return { count, ownBytes };
  }

  delete(name: string): string {
    const { file } = this.find(name);
    this.d.unlink(`${name}.img`);
    this.d.unlink(`${name}.json`);
    this.d.sync();
    return file;
  }
}
