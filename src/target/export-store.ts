// Opening an export's backing store from its config: the one way the server
// opens it and `vbladed --check` tries it.

import type { BlockStore } from '../backend/block-store';
import { openFileStore } from '../backend/file-store';
import { openNullStore } from '../backend/null-store';
import { checkReflinkPlace } from '../backend/reflink';
import type { ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { holdsViews, viewsDirOf } from '../views/views-dir';

const DEFAULT_SIZE_NULL = 2 * 1024 * 1024 * 2; // 2 GiB in sectors

/** Opens the store an export config names; throws StoreError with what to do. */
export function openExportStore(c: ExportConfig, addon: Pick<NativeAddon, 'blockDeviceSize' | 'reflinkSupported'>): BlockStore {
  if (c.nullStore) return openNullStore(c.nullSectors ?? DEFAULT_SIZE_NULL);
  // With views there already the file system makes clones: no try, which needs free space (a full one must not stop a restart).
  if (c.views !== undefined) checkReflinkPlace(c.file, viewsDirOf(c), 'views', addon, holdsViews(c));
  else if (c.viewsDir !== undefined) checkReflinkPlace(c.file, viewsDirOf(c), 'snapshots', addon);
  return openExportFile(c, addon);
}

/** Opens an export's file (or block device) alone, as the server does after its other checks. */
export function openExportFile(c: ExportConfig, addon: Pick<NativeAddon, 'blockDeviceSize'>): BlockStore {
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
