// The storm bench's targets and where their image lives: an XFS file system
// with reflinks on a loop device in the bench's temporary directory (views
// need it; the plain exports read the same file, so the three differ only in
// the target), and how each target is started on it in the target namespace.

import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { DEBIAN_VBLADE } from '../../lab/peers';
import { ROOT, RunningTarget, TargetSpec } from '../targets';

export const SHELF = 1;
export const SLOT = 1;

export const STORM_TARGET_NAMES = ['ours', 'ours-views', 'vblade'] as const;
export type StormTargetName = (typeof STORM_TARGET_NAMES)[number];

export const STORM_LABELS: Record<StormTargetName, string> = {
  ours: 'aoe-target, read-only',
  'ours-views': 'aoe-target, views = per-initiator',
  vblade: 'vblade 25 (Debian), -r',
};

/** XFS with reflinks on a loop device; remove() undoes exactly what was made. */
export class LoopXfs {
  private dev: string | undefined;
  private mounted = false;
  readonly mnt: string;
  private readonly backing: string;

  constructor(readonly dir: string) {
    this.mnt = join(dir, 'xfs');
    this.backing = join(dir, 'xfs.img');
  }

  /** Makes a sparse `bytes` file, attaches it, makes XFS with reflinks and mounts it. */
  create(bytes: number): void {
    mkdirSync(this.mnt, { recursive: true, mode: 0o700 });
    writeFileSync(this.backing, '');
    execFileSync('truncate', ['-s', String(bytes), this.backing]);
    const dev = execFileSync('losetup', ['--find', '--show', this.backing], { encoding: 'utf8' }).trim();
    if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed "${dev}"`);
    this.dev = dev;
    execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', dev]);
    execFileSync('mount', [dev, this.mnt]);
    this.mounted = true;
  }

  /** Synchronous, so that the exit handler can call it too. */
  remove(): void {
    const quiet = (cmd: string, args: string[]): boolean => {
      try {
        execFileSync(cmd, args, { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };
    if (this.mounted && !quiet('umount', [this.mnt])) quiet('umount', ['-l', this.mnt]);
    this.mounted = false;
    if (this.dev !== undefined) {
      let shows = '';
      try {
        shows = execFileSync('losetup', ['--noheadings', '--output', 'BACK-FILE', this.dev], { encoding: 'utf8' });
      } catch {
        // already detached
      }
      if (shows.includes(this.backing)) quiet('losetup', ['-d', this.dev]);
      this.dev = undefined;
    }
  }
}

/** Writes `bytes` of random data (not holes: every read costs what a real image's would) and syncs it. */
export function writeBootImage(path: string, bytes: number): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    const chunk = Buffer.alloc(2 ** 20);
    for (let at = 0; at < bytes; at += chunk.length) {
      randomFillSync(chunk);
      writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - at));
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface StormSetup {
  image: string;
  ifname: string;
  /** A directory for run files (config, control socket). */
  runDir: string;
  /** Where views go (removed between runs: every run is a lab's first boot). */
  viewsDir: string;
}

function daemonConfig(s: StormSetup, views: boolean): string {
  return (
    `[daemon]\nname = storm\nstate-dir = none\nrun-dir = ${s.runDir}\ncontrol-socket = ${join(s.runDir, 'storm.sock')}\n` +
    `log = stderr\nduplicate-probe-ms = 0\n\n` +
    `[export e${SHELF}.${SLOT}]\nfile = ${s.image}\ninterfaces = ${s.ifname}\n` +
    // Every replaying machine gets its view (up to the process's open-file bound), the warm-up's too.
    (views ? `views = per-initiator\nviews-dir = ${s.viewsDir}\nmax-views = 4097\n` : 'read-only = yes\n')
  );
}

/** The command that serves the image as `name`; writes the daemon's config file first where it has one. */
export function stormTargetSpec(name: StormTargetName, s: StormSetup): TargetSpec {
  const label = STORM_LABELS[name];
  if (name === 'vblade')
    return {
      name,
      label,
      command: () => [DEBIAN_VBLADE, '-r', String(SHELF), String(SLOT), s.ifname, s.image],
      verify: 'pattern',
      sync: false,
    };
  const config = join(s.runDir, `${name}.conf`);
  writeFileSync(config, daemonConfig(s, name === 'ours-views'));
  return {
    name,
    label,
    command: () => [process.execPath, join(ROOT, 'bin', 'vbladed.js'), '--foreground', '--config', config],
    verify: 'pattern',
    sync: false,
  };
}

/** Waits until our daemon says its interface is open (vblade says nothing useful: a short pause). */
export async function waitReady(t: RunningTarget, timeoutMs = 30000): Promise<void> {
  const until = Date.now() + timeoutMs;
  const ours = t.spec.name !== 'vblade';
  for (;;) {
    if (!t.alive) throw new Error(`${t.spec.name} exited at start:\n${t.log}`);
    if (!ours || /interface open/.test(t.log)) break;
    if (Date.now() > until) throw new Error(`${t.spec.name} did not open its interface within ${timeoutMs / 1000} s:\n${t.log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!ours) await new Promise((r) => setTimeout(r, 300));
}

/** Removes the views a run made (the next run is again a first boot). */
export function clearViews(s: StormSetup): void {
  rmSync(s.viewsDir, { recursive: true, force: true });
}
