// One place that knows every field of an ExportConfig, for tests that build
// them by hand: the defaults vblade gives an export, with what a test cares
// about given on top.

import type { ExportConfig } from '../../src/config/export-config';
import { DEFAULT_BUFFER_COUNT } from '../../src/config/vblade-args';

/** e1.1 on an interface no machine has, read-write, no file; `over` sets the rest. */
export function exportConfig(over: Partial<ExportConfig> = {}): ExportConfig {
  return {
    shelf: 1,
    slot: 1,
    file: '',
    interfaces: ['vt-none'],
    readOnly: false,
    direct: false,
    sync: false,
    offsetSectors: 0,
    macMask: [],
    broadcastEdits: false,
    bufferCount: DEFAULT_BUFFER_COUNT,
    nullStore: false,
    ...over,
  };
}
