// Maps a store whose file lives in memory (tmpfs, ramfs), so that a read or
// write is one memcpy instead of a system call and a page-cache lookup
// (native/mapped.c). Where mapping fails the store keeps pread/pwrite, which
// work the same, only slower.

import * as fs from 'node:fs';
import { SECTOR } from './file-store';
import type { NativeAddon } from '../native/addon';
import type { BlockStore } from './block-store';

/** The two addon calls this needs; passed in so that this room loads no addon. */
export type MapFunctions = Pick<NativeAddon, 'mapFile' | 'unmapFile'>;

/**
 * Returns `store` mapped, or `store` itself when it is not worth or not
 * possible to map: not a file in memory, opened O_DIRECT, or sparse. A sparse
 * file is left alone because touching a hole through a mapping allocates a
 * tmpfs page even for a read, so an initiator scanning a thin export would
 * fill memory. Closing the returned store unmaps the file first.
 */
export function mapInMemory(
  store: BlockStore,
  writable: boolean,
  addon: MapFunctions,
  warn: (file: string, reason: string) => void,
): BlockStore {
  if (store.kind !== 'file' || !store.inlineIo || store.direct) return store;
  const st = fs.fstatSync(store.fd);
  if (st.blocks * 512 < st.size) return store;
  try {
    addon.mapFile(store.fd, store.byteOffset + store.sectors * SECTOR, writable);
  } catch (e) {
    warn(store.description, (e as Error).message);
    return store;
  }
  const close = store.close.bind(store);
  return {
    ...store,
    // Replaced whole between two batches: no mapped copy runs meanwhile (the engine is one thread).
    // A file grown with a hole keeps its old mapping, for the reason above; the new part uses pread/pwrite.
    remap: (bytes: number) => {
      const now = fs.fstatSync(store.fd);
      if (now.blocks * 512 < now.size) return;
      addon.unmapFile(store.fd);
      try {
        addon.mapFile(store.fd, bytes, writable);
      } catch (e) {
        warn(store.description, (e as Error).message);
      }
    },
    close: () => {
      addon.unmapFile(store.fd);
      return close();
    },
  };
}
