// Where an export's requests go: the store a request reads and writes, and
// the descriptors a group commit syncs. The resolver is chosen once per
// export (one store, or a view per initiator), so the frame path asks it
// without looking at which kind it has.

import type { BlockStore } from '../backend/block-store';

/** The engine's view of an export's storage, asked once or twice per request (no allocation). */
export interface ExportStores {
  /**
   * The store of the initiator whose MAC is at `b[off..off+6]`: STORE_PENDING
   * while it is being made, null when it could not be (the request gets an
   * error reply). `now` is the engine's clock.
   */
  storeFor(b: Uint8Array, off: number, now: number): BlockStore | null;
  /**
   * The initiator whose MAC is at `b[off..off+6]` sent an ATA IDENTIFY (before storeFor for it): true
   * when its store is replaced now (views = per-boot: a new boot), off the frame path.
   */
  identified(b: Uint8Array, off: number, now: number): boolean;
  /** While the initiator's store is pending: the store a read may use meanwhile, or null (the read is dropped). */
  readsWhilePending(): BlockStore | null;
  /** The index the request keeps for readFd/writing/written (-1: no per-initiator store). */
  indexOf(store: BlockStore): number;
  /** The descriptor a read of [pos, pos+bytes) from `store` (index `index`) goes to. */
  readFd(store: BlockStore, index: number, pos: number, bytes: number): number;
  /** A write of [pos, pos+bytes) to `index` is about to be submitted. */
  writing(index: number, pos: number, bytes: number): void;
  /** A write to `index` completed: the next group commit must cover it. */
  written(index: number): void;
  /** A request of `index` was submitted to storage (views = per-boot: its machine is busy, not silent). */
  started(index: number): void;
  /** A request of `index` was answered (`now`: the engine clock). */
  finished(index: number, now: number): void;
  /** Starts a group commit: the descriptors to fdatasync are syncFd(0 .. n-1). */
  startSync(): number;
  syncFd(i: number): number;
  /** One fdatasync of the group commit finished; true when it was the last, with syncResult the first failure (or 0). */
  syncDone(result: number): boolean;
  readonly syncResult: number;
}

/** An export served from its one store: every initiator reads and writes it. */
export class SingleStore implements ExportStores {
  private result = 0;

  constructor(private readonly store: BlockStore) {}

  storeFor(): BlockStore {
    return this.store;
  }

  identified(): boolean {
    return false;
  }

  readsWhilePending(): BlockStore | null {
    return null;
  }

  indexOf(): number {
    return -1;
  }

  readFd(store: BlockStore): number {
    return store.fd;
  }

  writing(): void {}

  written(): void {}

  started(): void {}

  finished(): void {}

  startSync(): number {
    return 1;
  }

  syncFd(): number {
    return this.store.fd;
  }

  syncDone(result: number): boolean {
    this.result = result < 0 ? result : 0;
    return true;
  }

  get syncResult(): number {
    return this.result;
  }
}
