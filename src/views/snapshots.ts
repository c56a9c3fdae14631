// Point-in-time copies of an export or of one of its views: reflink clones
// in VIEWSDIR/eS.L/snapshots/NAME.img, with NAME.json saying when and of
// what. Only files here; the server pauses the export around take() and
// revert() so that no request is in flight while the clone is made.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SnapshotInfo } from '../api/control';

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

export class SnapshotDir {
  constructor(
    /** VIEWSDIR/eS.L/snapshots */
    readonly dir: string,
    private readonly fns: SnapshotFunctions,
  ) {}

  fileOf(name: string): string {
    return path.join(this.dir, `${name}.img`);
  }

  private metaOf(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  private syncDir(): void {
    const d = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(d);
    } finally {
      fs.closeSync(d);
    }
  }

  /** Refuses a name in use before the export is paused for nothing. */
  checkFree(name: string): void {
    checkSnapshotName(name);
    if (fs.existsSync(this.fileOf(name)))
      throw new Error(`${this.fileOf(name)} exists; choose another name or delete it first (vblade ctl snapshot-delete)`);
  }

  /**
   * Flushes `srcFd` and clones it to NAME.img, durably (the clone and its
   * name are synced). Runs while the export is paused.
   */
  take(name: string, srcFd: number, of: string): string {
    this.checkFree(name);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.fdatasyncSync(srcFd);
    const file = this.fileOf(name);
    const tmp = path.join(this.dir, `.${name}.${process.pid}.tmp`);
    const fd = fs.openSync(tmp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      this.fns.reflinkClone(srcFd, fd);
      fs.fsyncSync(fd);
      fs.renameSync(tmp, file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    } finally {
      fs.closeSync(fd);
    }
    fs.writeFileSync(this.metaOf(name), JSON.stringify({ created: Date.now(), of }) + '\n', { mode: 0o600 });
    this.syncDir();
    return file;
  }

  /** The snapshot NAME was taken of: 'export' or a view's MAC. Throws when there is none of that name. */
  find(name: string): { file: string; of: string } {
    checkSnapshotName(name);
    const file = this.fileOf(name);
    if (!fs.existsSync(file)) throw new Error(`no snapshot "${name}" in ${this.dir}; list them with vblade ctl snapshots`);
    return { file, of: this.readMeta(name).of };
  }

  private readMeta(name: string): { created: number; of: string } {
    try {
      const m = JSON.parse(fs.readFileSync(this.metaOf(name), 'utf8')) as { created?: unknown; of?: unknown };
      return { created: typeof m.created === 'number' ? m.created : 0, of: typeof m.of === 'string' ? m.of : 'export' };
    } catch {
      return { created: fs.statSync(this.fileOf(name)).mtimeMs, of: 'export' };
    }
  }

  /** Puts the snapshot back into `dstFd` (the export's file or a view), in place. Runs while the export is paused. */
  revertInto(name: string, dstFd: number): void {
    const src = fs.openSync(this.find(name).file, fs.constants.O_RDONLY);
    try {
      this.fns.reflinkClone(src, dstFd);
      fs.fdatasyncSync(dstFd);
    } finally {
      fs.closeSync(src);
    }
  }

  list(): SnapshotInfo[] {
    let files: string[];
    try {
      files = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: SnapshotInfo[] = [];
    for (const f of files.sort()) {
      if (!f.endsWith('.img') || f.startsWith('.')) continue;
      const name = f.slice(0, -4);
      const file = path.join(this.dir, f);
      const meta = this.readMeta(name);
      const fd = fs.openSync(file, fs.constants.O_RDONLY);
      let own: number;
      try {
        own = this.fns.unsharedBytes(fd);
      } finally {
        fs.closeSync(fd);
      }
      out.push({ name, file, created: new Date(meta.created).toISOString(), of: meta.of, ownBytes: own });
    }
    return out;
  }

  /**
   * How many snapshots there are and the bytes they have of their own, for
   * stats: measured on pool threads, so it may run while the export serves.
   * Only regular files are opened, without waiting (a FIFO planted here
   * must not hold a thread).
   */
  async totals(): Promise<{ count: number; ownBytes: number }> {
    let files: string[];
    try {
      files = await fs.promises.readdir(this.dir);
    } catch {
      return { count: 0, ownBytes: 0 };
    }
    let count = 0;
    let ownBytes = 0;
    for (const f of files) {
      if (!f.endsWith('.img') || f.startsWith('.')) continue;
      let fh: fs.promises.FileHandle;
      try {
        fh = await fs.promises.open(
          path.join(this.dir, f),
          fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
        );
      } catch {
        continue; // deleted meanwhile, or a link
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
    fs.rmSync(file);
    fs.rmSync(this.metaOf(name), { force: true });
    this.syncDir();
    return file;
  }
}
