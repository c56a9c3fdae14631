// The engine's store resolver for an export with per-initiator views: each
// request goes to its initiator's view (src/views/views.ts; STORE_PENDING
// while it is being made), and a group commit syncs the views written since
// the last one. The server wires it in when it opens
// an export's views, so the engine never imports the views code.

import type { BlockStore } from '../backend/block-store';
import type { ExportStores } from '../engine/export-stores';
import type { ExportViews } from '../views/views';

export class ViewStores implements ExportStores {
  constructor(
    private readonly views: ExportViews,
    /** The image: with the lease held, what a read may use while its initiator's view is being made. */
    private readonly image: BlockStore,
  ) {}

  storeFor(b: Uint8Array, off: number, now: number): BlockStore | null {
    return this.views.storeFor(b, off, now);
  }

  identified(b: Uint8Array, off: number, now: number): boolean {
    return this.views.identified(b, off, now);
  }

  /**
   * A new view will be the image as it is now, and the lease keeps it so: a
   * read can be answered from the image. Not so for a view of an earlier
   * run being opened: it has blocks of its own.
   */
  readsWhilePending(): BlockStore | null {
    return this.views.sharesImage && this.views.pendingIsNew ? this.image : null;
  }

  indexOf(store: BlockStore): number {
    return this.views.indexOf(store);
  }

  /** A view's blocks it never wrote are read from the image, whose page cache every view shares (own-blocks.ts). */
  readFd(store: BlockStore, index: number, pos: number, bytes: number): number {
    return index < 0 ? store.fd : this.views.readFd(index, pos, bytes);
  }

  writing(index: number, pos: number, bytes: number): void {
    if (index >= 0) this.views.writing(index, pos, bytes);
  }

  written(index: number): void {
    this.views.written(index);
  }

  /** views = per-boot: a machine with a request in flight is not silent (ExportViews.identified). */
  started(index: number): void {
    if (index >= 0) this.views.viewAt(index)?.started();
  }

  finished(index: number, now: number): void {
    if (index >= 0) this.views.viewAt(index)?.finished(now);
  }

  /** One fdatasync per view written since the last group commit. */
  startSync(): number {
    return this.views.syncs.start();
  }

  syncFd(i: number): number {
    return this.views.syncs.fd(i);
  }

  syncDone(result: number): boolean {
    return this.views.syncs.done(result);
  }

  get syncResult(): number {
    return this.views.syncs.result;
  }
}
