// Temporary directories and backing files for tests, loop devices and small
// tmpfs mounts; each removed in the test's teardown, with a process-exit
// safety net.
//
// The sector pattern: sector `lba` starts with the ASCII text `SECT%08d`
// (its number, zero-padded to 8 digits) and continues with pseudo-random bytes
// from a xorshift32 generator seeded by (seed, lba). So any sector read back
// can be checked on its own, and a sector served from the wrong place names
// the place it came from.

import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitOrder, TestLike, onProcessExit, ownPrefix, skipOrFail, uniqueId } from './common';
import { run, runOk, runSyncQuiet, which } from './process';

/** Where temporary directories go: $AOET_TMPDIR, else the OS temp dir. */
export function tempRoot(): string {
  return process.env.AOET_TMPDIR || tmpdir();
}

/** A new empty directory, removed with its contents in teardown. */
export function tempDir(t: TestLike, label = 'tmp'): string {
  const dir = mkdtempSync(join(tempRoot(), `${uniqueId()}-${label.replace(/[^\w.-]/g, '_')}-`));
  const unregister = onProcessExit(ExitOrder.Files, () => rmSync(dir, { recursive: true, force: true }));
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true });
    unregister();
  });
  return dir;
}

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

export interface PatternOptions {
  /** Bytes per sector; default 512. */
  sectorSize?: number;
  /** Seed of the pseudo-random part; default 1. Different seeds give different contents. */
  seed?: number;
  /** Number of the first sector written into the file (the file's sector 0 carries this number); default 0. */
  firstLba?: number;
}

function sectorState(lba: number, seed: number): number {
  // Mix (seed, lba) into a non-zero 32-bit state (a murmur3-style finalizer).
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ (lba >>> 0) ^ Math.floor(lba / 0x100000000)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 0x6d2b79f5 : h;
}

/** Writes the pattern of sector `lba` into `buf` at `offset`. */
export function fillSector(buf: Uint8Array, offset: number, lba: number, opts: PatternOptions = {}): void {
  const size = opts.sectorSize ?? 512;
  const seed = opts.seed ?? 1;
  const head = `SECT${String(lba).padStart(8, '0')}`;
  const n = Math.min(head.length, size);
  for (let i = 0; i < n; i++) buf[offset + i] = head.charCodeAt(i);
  let s = sectorState(lba, seed);
  for (let i = n; i < size; i += 4) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const o = offset + i;
    buf[o] = s & 0xff;
    if (i + 1 < size) buf[o + 1] = (s >>> 8) & 0xff;
    if (i + 2 < size) buf[o + 2] = (s >>> 16) & 0xff;
    if (i + 3 < size) buf[o + 3] = (s >>> 24) & 0xff;
  }
}

/** The expected contents of `count` sectors starting at `lba`. */
export function patternSectors(lba: number, count = 1, opts: PatternOptions = {}): Buffer {
  const size = opts.sectorSize ?? 512;
  const buf = Buffer.alloc(size * count);
  for (let i = 0; i < count; i++) fillSector(buf, i * size, lba + i, opts);
  return buf;
}

/**
 * Checks `buf` (holding consecutive sectors from `lba`) against the pattern.
 * Returns undefined when it matches, else a description of the first bad
 * sector: which one, the first differing byte, and what its header says.
 */
export function checkPattern(buf: Uint8Array, lba: number, opts: PatternOptions = {}): string | undefined {
  const size = opts.sectorSize ?? 512;
  if (buf.length % size !== 0) return `length ${buf.length} is not a multiple of the sector size ${size}`;
  const want = Buffer.alloc(size);
  for (let i = 0; i * size < buf.length; i++) {
    fillSector(want, 0, lba + i, opts);
    const got = buf.subarray(i * size, (i + 1) * size);
    if (Buffer.compare(want, got) !== 0) {
      let j = 0;
      while (j < size && got[j] === want[j]) j++;
      const header = Buffer.from(got.subarray(0, 12)).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
      return `sector ${lba + i}: first difference at byte ${j} (got 0x${got[j].toString(16)}, want 0x${want[j].toString(16)}); header reads "${header}"`;
    }
  }
  return undefined;
}

/** A file of `sectors` sectors, each filled with the pattern (see the top of this file). */
export async function patternFile(t: TestLike, sectors: number, opts: PatternOptions & FileOptions = {}): Promise<string> {
  const size = opts.sectorSize ?? 512;
  const first = opts.firstLba ?? 0;
  const dir = opts.dir ?? tempDir(t, 'pattern');
  const path = join(dir, opts.name ?? 'disk.img');
  const chunkSectors = Math.max(1, Math.floor((1 << 20) / size));
  const buf = Buffer.alloc(chunkSectors * size);
  const fh = await open(path, 'w', 0o600);
  try {
    for (let s = 0; s < sectors; s += chunkSectors) {
      const n = Math.min(chunkSectors, sectors - s);
      for (let i = 0; i < n; i++) fillSector(buf, i * size, first + s + i, opts);
      await fh.write(buf, 0, n * size, s * size);
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
