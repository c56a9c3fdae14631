// Opening an export's backing store from its config: the one way the server
// opens it and `vbladed --check` tries it.

import * as fs from 'node:fs';
import type { BlockStore, LocalStore } from '../backend/block-store';
import { openFileStore, StoreError } from '../backend/file-store';
import { openNullStore } from '../backend/null-store';
import { checkReflinkPlace } from '../backend/reflink';
import { exportKey, type ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { openRemoteStore, type RemoteAddon, type RemoteOpenOptions } from '../remote/remote-store';
import { isRemoteUri } from '../remote/remote-uri';
import { holdsViews, viewsDirOf } from '../views/views-dir';

const DEFAULT_SIZE_NULL = 2 * 1024 * 1024 * 2; // 2 GiB in sectors

/**
 * The warning for a file whose size is no multiple of 512 bytes: an AoE disk
 * is whole sectors, so the last bytes are not served. Undefined otherwise.
 */
export function partialSectorWarning(c: ExportConfig, store: BlockStore): string | undefined {
  const tail = store.unservedTailBytes ?? 0;
  if (tail === 0) return undefined;
  if (store.kind === 'remote')
    return `${exportKey(c)}: the server of ${c.file} reports a size that is not a multiple of 512: its last ${tail} bytes are not served (initiators see ${store.sectors} sectors)`;
  const bytes = store.byteOffset + store.sectors * 512 + tail;
  const whole = bytes + 512 - tail;
  return `${exportKey(c)}: ${c.file} is ${bytes} bytes, not a multiple of 512: its last ${tail} bytes are not served (initiators see ${store.sectors} sector${store.sectors === 1 ? '' : 's'}); to serve them, grow the file to whole sectors, e.g. truncate -s ${whole} ${c.file}`;
}

/**
 * Opens the store an export config names; rejects with StoreError with what
 * to do. A remote store is opened off the event loop (its server may take up
 * to remote-timeout to answer); a file, a block device or a null store is
 * opened at once. `opts.onMessage`: where a remote store's news goes (its
 * server went away, came back); `opts.signal`: the opener gave it up.
 */
export async function openExportStore(
  c: ExportConfig,
  addon: Pick<NativeAddon, 'blockDeviceSize' | 'reflinkSupported' | 'punchHole'> & RemoteAddon,
  opts: RemoteOpenOptions = {},
): Promise<BlockStore> {
  if (c.nullStore) return openNullStore(c.nullSectors ?? DEFAULT_SIZE_NULL);
  if (isRemoteUri(c.file)) return openRemoteStore(c, addon, opts);
  // With views there already the file system makes clones: no try, which needs free space (a full one must not stop a restart).
  if (c.views !== undefined) checkReflinkPlace(c.file, viewsDirOf(c), 'views', addon, holdsViews(c));
  else if (c.viewsDir !== undefined) checkReflinkPlace(c.file, viewsDirOf(c), 'snapshots', addon);
  const store = openExportFile(c, addon);
  if (c.detectZeroes === 'unmap' && !c.readOnly && c.views === undefined) {
    try {
      checkPunchable(c.file, store.fd, addon);
    } catch (e) {
      store.close();
      throw e;
    }
  }
  return store;
}

/** Opens an export's file (or block device) alone, as the server does after its other checks. */
export function openExportFile(c: ExportConfig, addon: Pick<NativeAddon, 'blockDeviceSize'>): LocalStore {
  return openFileStore({
    file: c.file,
    // With views the image is only ever cloned and read.
    readOnly: c.readOnly || c.views !== undefined,
    direct: c.direct,
    offsetSectors: c.offsetSectors,
    lengthSectors: c.lengthSectors,
    blockDeviceSize: (fd) => addon.blockDeviceSize(fd),
  });
}

/**
 * Refuses detect-zeroes = unmap where a zero write could not become a hole:
 * a block device (fallocate there may write zeroes, or fail, depending on the
 * device: not the thin provisioning asked for) and a file system that cannot
 * punch holes. The try is past the file's end, where a punch changes nothing.
 * Views need no try: their file system makes reflinks, and those punch holes.
 */
function checkPunchable(file: string, fd: number, addon: Pick<NativeAddon, 'punchHole'>): void {
  const st = fs.fstatSync(fd);
  if (!st.isFile())
    throw new StoreError(
      `detect-zeroes = unmap works on regular files only, and ${file} is a block device; discard on the device itself (blkdiscard, lvm thin) or set detect-zeroes = off`,
    );
  const end = Math.ceil(st.size / 4096) * 4096;
  try {
    addon.punchHole(fd, end, 4096);
  } catch (e) {
    throw new StoreError(
      `detect-zeroes = unmap: the file system of ${file} cannot punch holes (${(e as Error).message}); move the file to ext4, XFS, btrfs or tmpfs, or set detect-zeroes = off`,
    );
  }
}
