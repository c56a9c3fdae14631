// Opening an export's backing store from its config: the one way the server
// opens it and `vbladed --check` tries it.

import type { BlockStore } from '../backend/block-store';
import { openFileStore } from '../backend/file-store';
import { openNullStore } from '../backend/null-store';
import type { ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';

const DEFAULT_SIZE_NULL = 2 * 1024 * 1024 * 2; // 2 GiB in sectors

/** Opens the store an export config names; throws StoreError with what to do. */
export function openExportStore(c: ExportConfig, addon: Pick<NativeAddon, 'blockDeviceSize'>): BlockStore {
  if (c.nullStore) return openNullStore(c.nullSectors ?? DEFAULT_SIZE_NULL);
  return openFileStore({
    file: c.file,
    readOnly: c.readOnly,
    direct: c.direct,
    offsetSectors: c.offsetSectors,
    lengthSectors: c.lengthSectors,
    blockDeviceSize: (fd) => addon.blockDeviceSize(fd),
  });
}
