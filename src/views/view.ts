// One initiator's view of an export (its clone of the image, its own blocks
// and dates), and what the rest of the room is handed to reach the addon
// and the server: the pieces ExportViews and ImageSharing both use.

import * as fs from 'node:fs';
import type { BlockStore, LocalStore } from '../backend/block-store';
import { OwnBlocks } from './own-blocks';
import type { ViewDates } from './view-meta';

/** The addon calls views need, passed in so that tests and this room stay free of the addon. */
export interface ViewFunctions {
  reflinkCloneAsync(srcFd: number, dstFd: number): Promise<void>;
  reflinkCloneRange(srcFd: number, srcOffset: number, length: number, dstFd: number, dstOffset: number): void;
  unsharedBytes(fd: number): number;
  unsharedBytesAsync(fd: number): Promise<number>;
  fileExtents(fd: number): Float64Array;
  imageLease(fd: number, take: boolean): void;
  imageLeaseHeld(fd: number): boolean;
}

export interface ViewEvents {
  created(name: string, ms: number): void;
  /** Something of the views failed: `message` says what; `file` the file it concerns, if one. */
  failed(message: string, file?: string): void;
  /** A view's file is not what it must be (`why`): its initiator gets error replies until it is reset or dropped. */
  refused(name: string, why: string): void;
  /** Reads of shared blocks go to the image from now on (on) or no longer (off, with why). */
  sharing(on: boolean, why: string): void;
  /** A view was grown with the image (its new tail cloned from it), from `from` to `to` bytes. */
  grown(name: string, from: number, to: number): void;
  /** A view made from an image replaced since serves on, marked stale (`why` says what to do). */
  stale(name: string, why: string): void;
  /** views = per-boot: the machine of view `name` booted again (an IDENTIFY after `silentMs` without a request): discard its view now (discardForBoot). */
  newBoot(name: string, silentMs: number): void;
  /** Someone waits to open the image for writing: pause the export and call stopSharing(). */
  imageWriter(): void;
}

/** "aa:bb:cc:dd:ee:ff" from a view name: how every message and log line names a machine. */
export function macOfName(name: string): string {
  return name.match(/../g)!.join(':');
}

export class View {
  /** Position in ExportViews.list: what a request in flight remembers. */
  index = -1;
  /** Written since the last group commit took it. */
  dirty = false;
  /** performance.now() of its last request (its start, and its reply) in this process; 0: none yet. */
  seenAt = 0;
  /** Its requests submitted to storage and not answered yet: a machine waiting for its disk is not silent (views = per-boot). */
  inflight = 0;
  /** Blocks that may differ from the image: reads of them go to the view's file. */
  own = new OwnBlocks();
  /** Bytes of its own when last measured (sizes.ts), for stats. */
  ownBytes = 0;
  /** Written (or changed by a snapshot) since it was last measured. */
  unmeasured = true;
  /** performance.now() when it was last measured. */
  measuredAt = 0;
  /** Written since it was made, reset or discarded (views = per-boot); not known for a view of an earlier run: taken as written. */
  written = true;
  /** Made from an image replaced since (image-growth.ts): served, marked with why. */
  stale: string | undefined = undefined;

  constructor(
    readonly name: string,
    public store: LocalStore,
    readonly dates: ViewDates,
  ) {}

  /** A request of its machine went to storage: while one is in flight, its machine waits for its disk, it is not booting (per-boot). */
  started(): void {
    this.inflight++;
  }

  /** A request of its machine was answered (`now`: the engine clock): it was heard from until now. */
  finished(now: number): void {
    if (this.inflight === 0) return;
    this.inflight--;
    this.seenAt = now;
  }
}

/** A view's store remembers its view, so the engine can mark it written without a lookup. */
export interface ViewStore extends LocalStore {
  viewIndex: number;
}

/** The store of a view open as `fd` (its file `file`): the export's size and offset are the image's, a view being a whole clone of it. */
export function viewStore(image: BlockStore, fd: number, file: string, direct: boolean): ViewStore {
  return {
    kind: 'file',
    fd,
    byteOffset: image.byteOffset,
    get sectors() {
      return image.sectors;
    },
    set sectors(_n: number) {
      // Resizing is the image's business.
    },
    direct,
    inlineIo: image.inlineIo,
    description: file,
    viewIndex: -1,
    close() {
      fs.closeSync(fd);
    },
  };
}
