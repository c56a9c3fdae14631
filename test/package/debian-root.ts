// A clean Debian root for the package test, made with debootstrap once and
// kept in a cache outside the checkout (AOET_DEBIAN_ROOT_CACHE, default
// /var/cache/aoe-target-test), keyed by suite, architecture and the recipe
// below; each test copies it and works on the copy.
//
// Debian 13 "trixie": its nodejs is 20.x, what the package depends on
// (nodejs >= 20, package.json's engines); bookworm's is 18. The root has
// what installing the package needs (nodejs with ca-certificates, which it
// recommends and without which every node start warns), what the test
// looks at (man-db for `man -w`, logrotate for the snippet), systemd, which
// Debian's vblade depends on, and Debian's vblade .deb itself, downloaded
// but not installed, so that a run after the first needs no network.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestLike } from '../../lab/common';
import { describeRun, run, runOk } from '../../lab/process';

export const SUITE = 'trixie';
/** Changes whenever INCLUDE or the steps change, so that an old cache is not used. */
const RECIPE = 1;
const INCLUDE = ['nodejs', 'systemd', 'man-db'];
const APT_INCLUDE = ['ca-certificates', 'logrotate'];
const APT = { timeoutMs: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } };
const MIRROR = process.env.AOET_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
const CACHE = process.env.AOET_DEBIAN_ROOT_CACHE || '/var/cache/aoe-target-test';

export interface CachedRoot {
  /** The pristine root: copy it, never change it. */
  root: string;
  /** Debian's vblade package, inside the root (install it with dpkg -i in a copy). */
  vbladeDeb: string;
  /** Seconds the debootstrap took, when this call made the cache. */
  builtInS?: number;
}

function vbladeDebIn(root: string): string | undefined {
  const archives = path.join(root, 'var/cache/apt/archives');
  const deb = fs.readdirSync(archives).find((f) => /^vblade_.*\.deb$/.test(f));
  return deb && path.join('/var/cache/apt/archives', deb);
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return `(no ${file})`;
  }
}

function mounted(dir: string): boolean {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);
}

/** Runs fn with /proc mounted in root, unmounted by its exact path afterwards. */
async function withProc<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const proc = path.join(root, 'proc');
  await runOk('mount', ['-t', 'proc', 'proc', proc]);
  try {
    return await fn();
  } finally {
    await runOk('umount', [proc]);
  }
}

/** The cached root for this machine's architecture, made first when it is not there. */
export async function debianRoot(arch: string): Promise<CachedRoot> {
  const key = path.join(CACHE, `debootstrap-${SUITE}-${arch}-r${RECIPE}`);
  const done = path.join(key, 'complete');
  if (fs.existsSync(done)) {
    const root = path.join(key, 'root');
    const deb = vbladeDebIn(root);
    if (deb) return { root, vbladeDeb: deb };
  }
  fs.mkdirSync(CACHE, { recursive: true, mode: 0o755 });
  // Made beside the final place and renamed: a run killed half-way leaves no cache that looks complete.
  const work = fs.mkdtempSync(path.join(CACHE, `.build-${SUITE}-${arch}-`));
  const started = Date.now();
  try {
    const root = path.join(work, 'root');
    const args = ['--variant=minbase', `--arch=${arch}`, `--include=${INCLUDE.join(',')}`, SUITE, root, MIRROR];
    const r = await run('debootstrap', args, { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`${describeRun(r)}\n${tail(path.join(root, 'debootstrap/debootstrap.log'))}`);
    // apt orders these better than debootstrap's one dpkg --install of every extra (logrotate's cron-daemon-common failed there).
    await withProc(root, async () => {
      await runOk('chroot', [root, 'apt-get', 'update', '-q'], { timeoutMs: 300_000 });
      await runOk('chroot', [root, 'apt-get', 'install', '-q', '-y', '--no-install-recommends', ...APT_INCLUDE], APT);
      await runOk('chroot', [root, 'apt-get', 'install', '-q', '-y', '--download-only', 'vblade'], APT);
    });
    // Only vblade's .deb is kept of the downloaded packages: each test copies the root.
    const archives = path.join(root, 'var/cache/apt/archives');
    for (const f of fs.readdirSync(archives))
      if (f.endsWith('.deb') && !f.startsWith('vblade_')) fs.rmSync(path.join(archives, f));
    fs.writeFileSync(path.join(work, 'complete'), `${new Date().toISOString()} ${[...INCLUDE, ...APT_INCLUDE].join(' ')}\n`);
    if (fs.existsSync(done)) {
      // Another run made it meanwhile and may be copying it: keep theirs.
      fs.rmSync(work, { recursive: true, force: true });
    } else {
      fs.rmSync(key, { recursive: true, force: true }); // what a killed run left
      fs.renameSync(work, key);
    }
  } catch (e) {
    // Never remove through a /proc that is still mounted (its unmount failed).
    if (!mounted(path.join(work, 'root/proc'))) fs.rmSync(work, { recursive: true, force: true });
    throw e;
  }
  const root = path.join(key, 'root');
  const deb = vbladeDebIn(root);
  if (!deb) throw new Error(`the cached root ${root} has no vblade .deb in /var/cache/apt/archives`);
  return { root, vbladeDeb: deb, builtInS: Math.round((Date.now() - started) / 1000) };
}

/**
 * A copy of the cached root in a new directory under `parent`, with /proc
 * mounted (apt and the daemon read it). One teardown unmounts /proc by its
 * exact path and only then removes the copy, so the removal never walks
 * into a mounted /proc.
 */
export async function rootCopy(t: TestLike, cached: CachedRoot, parent: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(parent, 'debian-root-'));
  const root = path.join(dir, 'root');
  const proc = path.join(root, 'proc');
  let mounted = false;
  t.teardown(async () => {
    if (mounted) await runOk('umount', [proc]);
    await fs.promises.rm(dir, { recursive: true, force: true });
  });
  await runOk('cp', ['-a', '--reflink=auto', cached.root, root], { timeoutMs: 300_000 });
  await runOk('mount', ['-t', 'proc', 'proc', proc]);
  mounted = true;
  return root;
}

/** Every path under root (relative, directories with a trailing /), for a before/after comparison. */
export function listTree(root: string, skip: (rel: string) => boolean): Set<string> {
  const out = new Set<string>();
  const walk = (rel: string): void => {
    for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (skip(r)) continue;
      if (d.isDirectory()) {
        out.add(`${r}/`);
        walk(r);
      } else out.add(r);
    }
  };
  walk('');
  return out;
}
