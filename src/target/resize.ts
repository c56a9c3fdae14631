// Online resize: an export takes its backing store's size now (a file or
// logical volume grown under it) without being replaced or paused, on
// request (`vblade ctl resize`, a reload) or found by a periodic check.
// An export with views grows its views with it (../views/image-growth.ts).

import { fstatSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ResizeResult } from '../api/control';
import { ResizeError } from '../api/errors';
import { sectorsAfterOffset } from '../backend/file-store';
import { describeSize } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import type { Engine } from '../engine/engine';
import type { ExportSet } from './export-set';
import type { LinkSet } from './link-set';

export interface ResizerParts {
  engine: Engine;
  exports: ExportSet;
  links: LinkSet;
  addon: NativeAddon;
  log: Logger;
  /** How often backing stores are checked for growth; 0 only on request. */
  sizeCheckMs: number;
}

export class Resizer {
  private sizeWatch: NodeJS.Timeout | null = null;
  /** The resize refusal last logged for an export by the size watch. */
  private readonly shrinkReported = new Map<string, string>();
  /** Exports whose size the watch is reading now. */
  private readonly checking = new Set<string>();
  private stopping = false;

  constructor(private readonly p: ResizerParts) {}

  /**
   * Takes an export's backing store at its size now (a file or logical
   * volume grown under it): the export serves the new sectors and IDENTIFY
   * reports them at once, without replacing the export or pausing its I/O,
   * and it is announced so that initiators that do not have it open look
   * again (Linux re-reads IDENTIFY then; an open device needs
   * aoe-revalidate). A backing store now smaller than the exported size is
   * refused: the export keeps its size.
   */
  async resizeExport(key: string): Promise<ResizeResult> {
    const e = this.p.exports.get(key);
    if (!e) throw new ResizeError(`no export ${key}; "vblade ctl list" shows the exports`);
    const base = { key, file: e.store.description, oldSectors: e.store.sectors, newSectors: e.store.sectors };
    if (e.store.kind === 'null')
      throw new ResizeError(`${key} is a null store; its size is null-sectors: change it in the configuration and reload`);
    if (e.store.kind === 'remote' && e.store.sizeNow === undefined)
      throw new ResizeError(
        `${key} is served from ${e.store.description}, whose size is the server's: reload the export to take a new size`,
      );
    if (e.config.lengthSectors !== undefined)
      return {
        ...base,
        unchanged: `the export has a fixed length (length / -l ${e.config.lengthSectors}); change it and reload to grow`,
      };
    // A remote store that follows its size (an rbd image) says it, off the event loop (it may wait on its cluster);
    // a file is asked with fstat.
    let now: number;
    if (e.store.sizeNow !== undefined) {
      now = await e.store.sizeNow();
      if (this.p.exports.get(key) !== e || e.closing) throw new ResizeError(`${key} was removed while its size was read`);
    } else {
      now = sectorsAfterOffset(e.store.fd, e.config.offsetSectors, (fd) => this.p.addon.blockDeviceSize(fd));
    }
    if (now < e.store.sectors) {
      throw new ResizeError(
        `${key}: ${e.store.description} is now ${describeSize(Math.max(0, now))} after the offset, smaller than the ` +
          `exported ${describeSize(e.store.sectors)}; the export keeps its size (reads and writes past the new end fail). ` +
          `Grow the backing store back, or, once no file system or data uses the end of the disk, reload or restart to export the smaller size`,
      );
    }
    if (now === e.store.sectors) return { ...base, unchanged: 'the backing store has not changed size' };
    if (e.views !== null) {
      // Each view grows first, its new tail the image's: no machine reads past the end of its view.
      try {
        e.views.grow(fstatSync(e.store.fd).size);
      } catch (err) {
        throw new ResizeError(
          `${key}: ${e.store.description} grew, but ${(err as Error).message}; the export keeps its size. Free space on the views' file system and resize again`,
        );
      }
    }
    e.grow(now);
    this.p.log.info({ export: key, file: e.store.description, from: base.oldSectors, to: now }, 'export grown');
    let announced = false;
    for (const name of e.config.interfaces) {
      const link = this.p.links.get(name);
      if (link && link.socket !== null && link.info?.up) {
        this.p.engine.announce(link);
        announced = true;
      }
    }
    return { ...base, newSectors: now, announced };
  }

  /** Grows exports whose backing store grew, every sizeCheckMs: an lvextend or truncate needs no command. */
  startSizeWatch(): void {
    if (!(this.p.sizeCheckMs > 0)) return;
    this.sizeWatch = setInterval(() => this.checkSizes(), this.p.sizeCheckMs);
    this.sizeWatch.unref();
  }

  stop(): void {
    this.stopping = true;
    if (this.sizeWatch) clearInterval(this.sizeWatch);
  }

  private checkSizes(): void {
    if (this.stopping) return;
    for (const e of this.p.exports.values()) {
      const follows = e.store.kind === 'file' || e.store.sizeNow !== undefined;
      // One check of an export at a time: a cluster that hangs holds one, not one more every period.
      if (!follows || e.config.lengthSectors !== undefined || e.closing || this.checking.has(e.key)) continue;
      this.checking.add(e.key);
      this.resizeExport(e.key)
        .then(
          () => this.shrinkReported.delete(e.key),
          (err: Error) => {
            // Stopping, or removed meanwhile (its store closed under the check): nothing to say.
            if (this.stopping || this.p.exports.get(e.key) !== e) return;
            // Said once, not at every check.
            if (this.shrinkReported.get(e.key) === err.message) return;
            this.shrinkReported.set(e.key, err.message);
            this.p.log.error({ export: e.key, file: e.store.description }, err.message);
          },
        )
        .finally(() => this.checking.delete(e.key));
    }
  }
}
