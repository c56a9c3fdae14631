// Two exports that write one disk corrupt it: neither knows what the other
// caches or reorders. Found by what the files are, not by their names:
// device and inode (so hard links and symbolic links match), or the device
// number of a block device (so /dev/sdb and /dev/disk/by-id/... match), a
// remote store by what its URI names (nbd://HOST/x and nbd://host:10809/x
// match), and only when the exported sector ranges overlap.

import * as fs from 'node:fs';
import { exportKey, type ExportConfig } from '../config/export-config';
import { remoteStoreIdentity } from '../remote/remote-uri';

interface Extent {
  key: string;
  config: ExportConfig;
  /** What the file is: "b<rdev>" for a block device, "f<dev>:<ino>" otherwise. */
  identity: string;
  first: number;
  /** One past the last sector; Infinity = to the end of the store. */
  end: number;
}

/** Whether an export writes its store: per-initiator views write their own files, never the image. */
function writes(c: ExportConfig): boolean {
  return !c.readOnly && c.views === undefined;
}

function extentOf(c: ExportConfig): Extent | undefined {
  if (c.nullStore) return undefined;
  const end = c.lengthSectors === undefined ? Infinity : c.offsetSectors + c.lengthSectors;
  const remote = remoteStoreIdentity(c.file, c.cephConf);
  if (remote !== undefined) return { key: exportKey(c), config: c, identity: remote, first: c.offsetSectors, end };
  let st: fs.Stats;
  try {
    st = fs.statSync(c.file);
  } catch {
    return undefined; // opening the store reports it
  }
  if (!st.isFile() && !st.isBlockDevice()) return undefined; // /dev/zero and the like hold no data to corrupt
  const identity = st.isBlockDevice() ? `b${st.rdev}` : `f${st.dev}:${st.ino}`;
  return { key: exportKey(c), config: c, identity, first: c.offsetSectors, end };
}

function describe(a: Extent, b: Extent): string {
  const alias = a.config.file === b.config.file ? '' : ` (${b.key} names it ${b.config.file})`;
  const first = Math.max(a.first, b.first);
  const end = Math.min(a.end, b.end);
  const whole = a.first === 0 && b.first === 0 && a.end === Infinity && b.end === Infinity;
  const range = whole ? '' : `, sectors ${first}..${end === Infinity ? 'end' : end - 1}`;
  const where = `${a.config.file}${alias}${range}`;
  const writers = [a, b].filter((x) => writes(x.config));
  const what = writers.length === 2 ? `both write to ${where}` : `both use ${where} and ${writers[0].key} writes to it`;
  const fixes = `export one read-only (read-only = yes, vblade -r), give them ranges that do not overlap (offset, length)`;
  // rbd refuses shared = yes: the image's exclusive lock lets one gateway write.
  const shared = a.identity.startsWith('rbd:')
    ? ''
    : `, or, if both are meant to write (a cluster file system), set shared = yes in both exports`;
  return `${a.key} and ${b.key} ${what}: two writers that do not know of each other corrupt the disk; ${fixes}${shared}`;
}

/**
 * Every pair of exports that would write one disk, described for the user
 * (empty when there is none). A pair is allowed when both are read-only or
 * both say shared = yes.
 */
export function sharedWriterProblems(exports: readonly ExportConfig[]): string[] {
  const extents = exports.map(extentOf).filter((x): x is Extent => x !== undefined);
  const problems: string[] = [];
  for (let i = 0; i < extents.length; i++) {
    for (let j = i + 1; j < extents.length; j++) {
      const a = extents[i];
      const b = extents[j];
      if (a.identity !== b.identity || a.first >= b.end || b.first >= a.end) continue;
      if (!writes(a.config) && !writes(b.config)) continue;
      if (a.config.shared && b.config.shared) continue;
      problems.push(describe(a, b));
    }
  }
  return problems;
}
