// A real file system on a loop device for one test: XFS with reflinks (where
// views and snapshots work), or ext4 and XFS without them (where they must be
// refused). The loop device is backed by a sparse file in a temporary
// directory and mounted on another; teardown unmounts it, detaches exactly
// the device it attached (when it still shows our file) and removes both.
// Needs root, losetup and the mkfs of the type.

import { rmSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitOrder, onProcessExit, skipOrFail, uniqueId, type TestLike } from '../../lab/common';
import { tempRoot } from './files';
import { requireRoot } from '../../lab/netns';
import { run, runOk, runSyncQuiet, which } from '../../lab/process';

export type LoopFsType = 'xfs-reflink' | 'xfs-noreflink' | 'ext4';

const MKFS: Record<LoopFsType, [string, string[]]> = {
  'xfs-reflink': ['mkfs.xfs', ['-q', '-m', 'reflink=1']],
  'xfs-noreflink': ['mkfs.xfs', ['-q', '-m', 'reflink=0']],
  ext4: ['mkfs.ext4', ['-q', '-F']],
};

/** XFS refuses file systems smaller than 300 MiB; the backing file is sparse, so this costs little. */
const DEFAULT_SIZE = 320 * 1024 * 1024;

/** Skips (outside CI) or fails (in CI) unless root with losetup and the mkfs for `type`. */
export function requireLoopFs(t: TestLike, type: LoopFsType): boolean {
  if (!requireRoot(t)) return false;
  if (which('losetup') === undefined) return skipOrFail(t, 'losetup not found (util-linux)');
  const mkfs = MKFS[type][0];
  if (which(mkfs) === undefined)
    return skipOrFail(t, `${mkfs} not found (bash scripts/setup.sh installs xfsprogs and e2fsprogs)`);
  return true;
}

/** Makes a `type` file system of `bytes` on a new loop device and mounts it; returns the mount point. */
export async function loopFs(t: TestLike, type: LoopFsType, bytes = DEFAULT_SIZE): Promise<string> {
  const base = join(tempRoot(), `${uniqueId()}-loopfs`);
  const mnt = join(base, 'mnt');
  const image = join(base, 'fs.img');
  await mkdir(mnt, { recursive: true, mode: 0o700 });
  const fh = await open(image, 'w', 0o600);
  await fh.truncate(bytes);
  await fh.close();
  // What exists so far, for the cleanups.
  const made: { dev?: string; mounted: boolean } = { mounted: false };
  const cleanSync = (): void => {
    if (made.mounted && runSyncQuiet('umount', [mnt]) !== 0) runSyncQuiet('umount', ['-l', mnt]);
    if (made.dev !== undefined) runSyncQuiet('losetup', ['-d', made.dev]);
    rmSync(base, { recursive: true, force: true });
  };
  const unregister = onProcessExit(ExitOrder.Mounts, cleanSync);
  // One teardown in the order the pieces depend on each other (tap's own order of several is not that).
  t.teardown(async () => {
    if (made.mounted) {
      const r = await run('umount', [mnt]);
      if (r.code !== 0) await run('umount', ['-l', mnt]);
    }
    if (made.dev !== undefined) {
      const shows = await run('losetup', ['--noheadings', '--output', 'BACK-FILE', made.dev]);
      if (shows.code === 0 && shows.stdout.includes(image)) await run('losetup', ['-d', made.dev]);
    }
    await rm(base, { recursive: true, force: true });
    unregister();
  });
  const dev = (await runOk('losetup', ['--find', '--show', image])).stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed "${dev}"`);
  made.dev = dev;
  const [mkfs, args] = MKFS[type];
  await runOk(mkfs, [...args, dev]);
  await runOk('mount', [dev, mnt]);
  made.mounted = true;
  return mnt;
}
