// What the request engine needs to know about a backing store. The engine
// itself submits the I/O (through the io ring, straight into and out of frame
// memory), so a store is a description plus its open file descriptor.

export interface BlockStore {
  /**
   * 'null' serves zeros and drops writes without any I/O; 'remote' is served
   * through a client library (NBD: src/remote/), its I/O still through the
   * io ring, flagged IoOpFlag.Remote.
   */
  readonly kind: 'file' | 'null' | 'remote';
  /** Open descriptor of the backing file or device; a remote store's handle (native/remote.h); -1 for a null store. */
  readonly fd: number;
  /** Byte position in the backing file of exported sector 0 (-o × 512). */
  readonly byteOffset: number;
  /** Exported size in sectors; grows only through Server.resizeExport. */
  sectors: number;
  /** Opened with O_DIRECT: buffers and lengths must be aligned. */
  readonly direct: boolean;
  /**
   * I/O on this store never waits for a device (tmpfs, ramfs): the engine
   * runs it synchronously instead of through io_uring, which would hand
   * it to a kernel worker thread (tmpfs cannot do non-blocking reads) and
   * cost a thread switch per request.
   */
  readonly inlineIo: boolean;
  /** What the store is, for logs and errors ("/srv/disk.img", "null"). */
  readonly description: string;
  /** Bytes at the end of a file exported to its end that make no whole sector, so are not served (0 or unset: none). */
  readonly unservedTailBytes?: number;
  /**
   * Every write is on stable storage when it completes (an NBD write with FUA):
   * a sync export answers it then, with no flush after it.
   */
  readonly durableWrites?: boolean;
  /** An rbd image's POOL/[NAMESPACE/]IMAGE: a writer serves it only while holding its exclusive lock (remote/rbd-failover.ts). */
  readonly rbdSpec?: string;
  /**
   * Set on a store mapped in memory: maps `bytes` of the file instead of the
   * old length, so that a grown export is served from the mapping too.
   * Without it (or when it fails) accesses past the mapping use pread/pwrite.
   */
  remap?(bytes: number): void;
  /**
   * Set on a remote store whose size can change under it (an rbd image
   * resized): its sectors after the offset now, for the size watch and
   * `vblade ctl resize`, read off the event loop (it may wait on the
   * cluster). Without it a remote store keeps its size.
   */
  sizeNow?(): Promise<number>;
  /**
   * Closes it. A remote store closes off the event loop (its requests in
   * flight answered, a last flush, each bounded by its timeout): the promise
   * settles, never rejected, once it has; the daemon waits for it at stop
   * (remote/remote-closes.ts). Other stores close at once.
   */
  close(): void | Promise<void>;
}

/** A store on this host (a file, a block device, null): it closes at once. */
export interface LocalStore extends BlockStore {
  readonly kind: 'file' | 'null';
  close(): void;
}

/**
 * The store a resolver names while the initiator's own store (a view) is
 * still being made: the frame path compares with it and waits, no I/O is done
 * on it. One object, so that the views that make stores and the engine that
 * asks for them agree on it without importing each other.
 */
export const STORE_PENDING: LocalStore = Object.freeze({
  kind: 'null',
  fd: -1,
  byteOffset: 0,
  sectors: 0,
  direct: false,
  inlineIo: false,
  description: 'a store being made',
  close() {},
});
