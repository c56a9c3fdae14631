// Temporary directories and backing files for tests, loop devices and small
// tmpfs mounts; each removed in the test's teardown, with a process-exit
// safety net.
//
// The sector pattern is the client's (src/client/pattern.ts): sector `lba`
// starts with the ASCII text `SECT%08d` and continues with pseudo-random
// bytes seeded by its number, so any sector read back can be checked on its
// own, and a sector served from the wrong place names the place it came from.
// One pattern for the tests, the initiator's load engine and the bench means
// a file made here can be checked by any of them.

import { rmSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SECTOR_SIZE } from '../../src/client/wire';
import { checkSector, checkSectors, fillSectors, sectorPattern } from '../../src/client/pattern';
import { ExitOrder, TestLike, onProcessExit, ownPrefix, skipOrFail, tempDir, tempRoot, uniqueId } from '../../lab/common';
import { run, runOk, runSyncQuiet, which } from '../../lab/process';

export { tempDir, tempRoot } from '../../lab/common';

export interface FileOptions {
  /** Directory to create the file in; default a new tempDir. */
  dir?: string;
  /** File name; default `disk.img`. */
  name?: string;
}

/** A sparse file of `size` bytes (all zeros, no blocks allocated). */
export async function sparseFile(t: TestLike, size: number, opts: FileOptions = {}): Promise<string> {
  const dir = opts.dir ?? tempDir(t, 'sparse');
  const path = join(dir, opts.name ?? 'disk.img');
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  return path;
}

export interface PatternFileOptions extends FileOptions {
  /** Number of the first sector written into the file (the file's sector 0 carries this number); default 0. */
  firstLba?: number;
}

/** The expected contents of `count` sectors starting at `lba`. */
export function patternSectors(lba: number, count = 1): Buffer {
  const buf = Buffer.alloc(SECTOR_SIZE * count);
  fillSectors(buf, 0, lba, count);
  return buf;
}

/**
 * Checks `buf` (holding consecutive sectors from `lba`) against the pattern.
 * Returns undefined when it matches, else a description of the first bad
 * sector: which one, the first differing byte, and what its header says.
 */
export function checkPattern(buf: Uint8Array, lba: number): string | undefined {
  if (buf.length % SECTOR_SIZE !== 0) return `length ${buf.length} is not a multiple of the sector size ${SECTOR_SIZE}`;
  const bad = checkSectors(buf, 0, lba, buf.length / SECTOR_SIZE);
  if (bad < 0) return undefined;
  const off = bad * SECTOR_SIZE;
  const at = checkSector(buf, off, lba + bad);
  const want = sectorPattern(lba + bad);
  const header = Buffer.from(buf.subarray(off, off + 12))
    .toString('latin1')
    .replace(/[^\x20-\x7e]/g, '.');
  return `sector ${lba + bad}: first difference at byte ${at} (got 0x${buf[off + at].toString(16)}, want 0x${want[at].toString(16)}); header reads "${header}"`;
}

/** A file of `sectors` sectors, each filled with the pattern (see the top of this file). */
export async function patternFile(t: TestLike, sectors: number, opts: PatternFileOptions = {}): Promise<string> {
  const first = opts.firstLba ?? 0;
  const dir = opts.dir ?? tempDir(t, 'pattern');
  const path = join(dir, opts.name ?? 'disk.img');
  const chunkSectors = (1 << 20) / SECTOR_SIZE;
  const buf = Buffer.alloc(chunkSectors * SECTOR_SIZE);
  const fh = await open(path, 'w', 0o600);
  try {
    for (let s = 0; s < sectors; s += chunkSectors) {
      const n = Math.min(chunkSectors, sectors - s);
      fillSectors(buf, 0, first + s, n);
      await fh.write(buf, 0, n * SECTOR_SIZE, s * SECTOR_SIZE);
    }
  } finally {
    await fh.close();
  }
  return path;
}

export interface LoopOptions {
  readOnly?: boolean;
  /** Logical sector size of the loop device (512, 4096, ...). */
  sectorSize?: number;
  directIo?: boolean;
}

/** Attaches a file to a free loop device (losetup --find); detached in teardown. Returns e.g. /dev/loop3. */
export async function loopDevice(t: TestLike, file: string, opts: LoopOptions = {}): Promise<string> {
  const args = ['--find', '--show'];
  if (opts.readOnly) args.push('--read-only');
  if (opts.sectorSize) args.push('--sector-size', String(opts.sectorSize));
  if (opts.directIo) args.push('--direct-io=on');
  args.push(file);
  const r = await runOk('losetup', args);
  const dev = r.stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed "${dev}"`);
  const unregister = onProcessExit(ExitOrder.Mounts, () => runSyncQuiet('losetup', ['-d', dev]));
  t.teardown(async () => {
    await detachLoop(dev, file);
    unregister();
  });
  return dev;
}

async function detachLoop(dev: string, file: string): Promise<void> {
  // Only detach when the device still shows our file (a loop number can be
  // reused by someone else once it is free).
  const r = await run('losetup', ['--noheadings', '--output', 'BACK-FILE', dev]);
  if (r.code !== 0 || !r.stdout.includes(file)) return;
  await run('losetup', ['-d', dev]);
}

/** Skips (outside CI) or fails (in CI) when loop devices cannot be used. */
export function requireLoop(t: TestLike): boolean {
  if (which('losetup') === undefined) return skipOrFail(t, 'losetup not found (util-linux)');
  return true;
}

/**
 * Mounts a tmpfs of the given size (e.g. '64M', or bytes) on a new temporary
 * directory, for tests that need a file system that runs full. Unmounted
 * (lazily if still busy) and removed in teardown.
 */
export async function tmpfsMount(t: TestLike, size: string | number): Promise<string> {
  const dir = join(tempRoot(), `${uniqueId()}-tmpfs`);
  await mkdir(dir, { mode: 0o700 });
  const unregisterDir = onProcessExit(ExitOrder.Files, () => rmSync(dir, { recursive: true, force: true }));
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true });
    unregisterDir();
  });
  await runOk('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, `${ownPrefix()}tmpfs`, dir]);
  const unregisterMount = onProcessExit(ExitOrder.Mounts, () => {
    if (runSyncQuiet('umount', [dir]) !== 0) runSyncQuiet('umount', ['-l', dir]);
  });
  t.teardown(async () => {
    const r = await run('umount', [dir]);
    if (r.code !== 0) await run('umount', ['-l', dir]);
    unregisterMount();
  });
  return dir;
}

/** Whether `dir` is a mount point (per /proc/self/mountinfo). */
export async function isMountPoint(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === dir);
}
