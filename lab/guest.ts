// Builds (once, cached) what the QEMU guest boots: Debian's kernel and a busybox
// initramfs holding the aoe, virtio and ext4 modules and the scenario scripts.
//
// Cache layout (AOE_INTEROP_CACHE, else $XDG_CACHE_HOME/aoe-target-interop, else
// /var/cache/aoe-target-interop):
//   kernel-<version>/root/...        the unpacked linux-image-<version> package, depmod done
//   kernel-<version>/complete        written last: the unpack finished
//   initramfs-<version>-<hash>.cpio   keyed by the kernel version and the inputs (path, size, mtime)
//   initramfs-<variant>-<version>-<hash>.cpio   the same with extra host programs (e.g. "bench": fio)
// Nothing is installed into the host's /boot or /lib/modules.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { CpioWriter } from './cpio';
import { runOk } from './process';
import { debianKernelVersion, downloadKernelPackage } from './packages';

/** Modules the guest needs; their dependencies come from modprobe --show-depends. */
export const GUEST_MODULES = ['virtio_pci', 'virtio_net', 'ext4', 'aoe'];

/** A host program copied into the guest (with the shared libraries `ldd` lists) at `to`. */
export interface HostProgram {
  from: string;
  to: string;
}

/** Host programs every guest gets. */
// (not in /sbin: busybox's ash runs its own applet of the same name before any PATH lookup)
const HOST_PROGRAMS: HostProgram[] = [
  { from: '/usr/sbin/mke2fs', to: '/opt/host/mke2fs' },
  { from: '/usr/sbin/resize2fs', to: '/opt/host/resize2fs' },
];

/** Host shell scripts copied into the guest as they are (aoetools' aoe-revalidate writes to /dev/etherd/revalidate). */
const HOST_SCRIPTS: Array<{ from: string; to: string }> = [{ from: '/usr/sbin/aoe-revalidate', to: '/opt/host/aoe-revalidate' }];

export interface GuestImage {
  kernelVersion: string;
  /**
   * What to give QEMU's -kernel: the uncompressed ELF vmlinux (entered through
   * its PVH note, which skips the slow XZ decompression under TCG), or the
   * bzImage when it could not be extracted.
   */
  kernel: string;
  /** newc cpio archive (not compressed) to give QEMU's -initrd. */
  initrd: string;
  /** Module file names in load order, as /init loads them. */
  modules: string[];
  /** Whether this call had to build something (false: all came from the cache). */
  built: boolean;
}

export function cacheRoot(): string {
  if (process.env.AOE_INTEROP_CACHE) return process.env.AOE_INTEROP_CACHE;
  if (process.env.XDG_CACHE_HOME) return path.join(process.env.XDG_CACHE_HOME, 'aoe-target-interop');
  return '/var/cache/aoe-target-interop';
}

/** The repository root (where package.json names aoe-target), found from this file's place in src or dist. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        if ((JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: unknown }).name === 'aoe-target') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no aoe-target package.json above ${__dirname}`);
    dir = up;
  }
}

/** Directory of the guest shell scripts (kept as .sh files in the source tree, not compiled). */
export function guestScriptDir(): string {
  return path.join(repoRoot(), 'lab', 'guest-scripts');
}

/** Unpacks linux-image-<version> into the cache (once) and returns the tree's root. */
async function unpackedKernel(version: string): Promise<{ root: string; built: boolean }> {
  const base = path.join(cacheRoot(), `kernel-${version}`);
  const root = path.join(base, 'root');
  if (fs.existsSync(path.join(base, 'complete'))) return { root, built: false };
  fs.mkdirSync(cacheRoot(), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheRoot(), `.kernel-${version}-`));
  try {
    // apt-get download drops privileges to _apt when it can write the directory
    fs.chmodSync(tmp, 0o755);
    await downloadKernelPackage(version, tmp);
    const deb = fs.readdirSync(tmp).find((f) => f.startsWith(`linux-image-${version}_`) && f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download left no linux-image-${version} package in ${tmp}`);
    // Unpacking and indexing a kernel can take minutes on a busy machine.
    await runOk('dpkg-deb', ['-x', path.join(tmp, deb), path.join(tmp, 'root')], { timeoutMs: 10 * 60 * 1000 });
    fs.rmSync(path.join(tmp, deb));
    await runOk('depmod', ['-b', path.join(tmp, 'root'), version], { timeoutMs: 10 * 60 * 1000 });
    fs.writeFileSync(path.join(tmp, 'complete'), `${deb}\n`);
    if (fs.existsSync(base)) fs.rmSync(base, { recursive: true, force: true }); // an unfinished earlier try
    fs.renameSync(tmp, base);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return { root, built: true };
}

/**
 * Extracts the uncompressed vmlinux from a bzImage (XZ- or gzip-compressed
 * payload, found by its magic bytes) into `out`. Returns false when it cannot.
 */
async function extractVmlinux(bzImage: string, out: string): Promise<boolean> {
  const image = fs.readFileSync(bzImage);
  const formats: Array<{ magic: Buffer; inflate: (b: Buffer) => Promise<Buffer> }> = [
    {
      magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
      inflate: async (b) => {
        const tmp = `${out}.xz.${process.pid}`;
        fs.writeFileSync(tmp, b);
        try {
          // trailing bytes after the stream make xz complain; what it decoded is still written
          await runOk('sh', ['-c', 'xz -dc -- "$1" > "$2" 2>/dev/null; exit 0', 'sh', tmp, `${out}.raw`], {
            timeoutMs: 10 * 60 * 1000,
          });
          return fs.readFileSync(`${out}.raw`);
        } finally {
          fs.rmSync(tmp, { force: true });
          fs.rmSync(`${out}.raw`, { force: true });
        }
      },
    },
    {
      magic: Buffer.from([0x1f, 0x8b, 0x08]),
      inflate: (b) => Promise.resolve(zlib.gunzipSync(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH })),
    },
  ];
  for (const f of formats) {
    const at = image.indexOf(f.magic);
    if (at < 0) continue;
    try {
      const elf = await f.inflate(image.subarray(at));
      if (elf.length > 1024 * 1024 && elf.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
        fs.writeFileSync(`${out}.tmp`, elf);
        fs.renameSync(`${out}.tmp`, out);
        return true;
      }
    } catch {
      /* try the next format */
    }
  }
  return false;
}

/** Absolute paths of the .ko files to insmod, dependencies first, each once. */
async function moduleLoadOrder(root: string, version: string): Promise<string[]> {
  const order: string[] = [];
  for (const mod of GUEST_MODULES) {
    const r = await runOk('modprobe', ['-d', root, '-S', version, '--show-depends', mod]);
    for (const line of r.stdout.split('\n')) {
      const m = /^insmod\s+(\S+)/.exec(line.trim());
      if (m && !order.includes(m[1])) order.push(m[1]);
    }
  }
  return order;
}

/** Shared libraries (and the loader) that `ldd` lists for a host program. */
async function sharedLibraries(program: string): Promise<string[]> {
  const r = await runOk('ldd', [program]);
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]);
  }
  return libs;
}

/**
 * A guest with more host programs than the interop scenarios need, cached
 * under its own name (fio and its libraries add some 80 MB, which every
 * scenario's boot would otherwise copy and unpack).
 */
export interface GuestVariant {
  /** A word for the cache file name, e.g. "bench". */
  name: string;
  programs: HostProgram[];
}

/** The guest's initramfs as an uncompressed cpio archive. */
async function initramfsArchive(modules: string[], programs: HostProgram[]): Promise<Buffer> {
  const cpio = new CpioWriter();
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'dev',
    'proc',
    'sys',
    'tmp',
    'run',
    'mnt',
    'newroot',
    'etc',
    'lib64',
    'lib/x86_64-linux-gnu',
    'modules',
    'aoetest',
  ]) {
    cpio.dir(d);
  }
  cpio.charDevice('dev/console', 5, 1);
  cpio.charDevice('dev/null', 1, 3, 0o666);
  cpio.file('bin/busybox', fs.readFileSync('/bin/busybox'), 0o755);
  cpio.symlink('bin/sh', 'busybox');

  const scripts = guestScriptDir();
  cpio.file('init', fs.readFileSync(path.join(scripts, 'init.sh')), 0o755);
  for (const f of fs.readdirSync(scripts).sort()) {
    if (f.endsWith('.sh') && f !== 'init.sh') cpio.file(`aoetest/${f}`, fs.readFileSync(path.join(scripts, f)), 0o755);
  }

  const names: string[] = [];
  for (const ko of modules) {
    const name = path.basename(ko);
    names.push(name);
    cpio.file(`modules/${name}`, fs.readFileSync(ko));
  }
  cpio.file('modules/order', names.join('\n') + '\n');

  const libs = new Set<string>();
  for (const prog of programs) {
    cpio.file(prog.to, fs.readFileSync(prog.from), 0o755);
    for (const lib of await sharedLibraries(prog.from)) libs.add(lib);
  }
  for (const lib of [...libs].sort()) cpio.file(lib, fs.readFileSync(lib), 0o755);
  for (const script of HOST_SCRIPTS) cpio.file(script.to, fs.readFileSync(script.from), 0o755);
  if (fs.existsSync('/etc/mke2fs.conf')) cpio.file('etc/mke2fs.conf', fs.readFileSync('/etc/mke2fs.conf'));
  return cpio.finish();
}

/** Builds or reuses the guest kernel and initramfs (with a variant's extra programs). Idempotent. */
export async function buildGuest(variant?: GuestVariant): Promise<GuestImage> {
  for (const p of variant?.programs ?? []) {
    if (!fs.existsSync(p.from)) throw new Error(`${p.from} is not installed on the host; it is copied into the guest`);
  }
  const programs = [...HOST_PROGRAMS, ...(variant?.programs ?? [])];
  const version = await debianKernelVersion();
  const { root, built: kernelBuilt } = await unpackedKernel(version);
  const bzImage = path.join(root, 'boot', `vmlinuz-${version}`);
  if (!fs.existsSync(bzImage)) throw new Error(`no ${bzImage} in the unpacked kernel package`);
  const vmlinux = path.join(root, 'boot', `vmlinux-${version}`);
  const noVmlinux = `${vmlinux}.unavailable`;
  if (!fs.existsSync(vmlinux) && !fs.existsSync(noVmlinux)) {
    if (!(await extractVmlinux(bzImage, vmlinux))) fs.writeFileSync(noVmlinux, '');
  }
  const kernel = fs.existsSync(vmlinux) && !process.env.AOE_INTEROP_BZIMAGE ? vmlinux : bzImage;
  const modules = await moduleLoadOrder(root, version);
  for (const want of GUEST_MODULES) {
    if (
      !modules.some(
        (m) =>
          path
            .basename(m)
            .replace(/\.ko(\.\w+)?$/, '')
            .replace(/-/g, '_') === want,
      )
    ) {
      throw new Error(`module ${want} not found in linux-image-${version}`);
    }
  }
  // keyed by what goes in (paths, sizes, modification times), so that a cached
  // initramfs is found without building the archive again
  const hash = crypto.createHash('sha256').update(version);
  const scripts = guestScriptDir();
  const inputs = [
    '/bin/busybox',
    '/etc/mke2fs.conf',
    ...modules,
    ...programs.map((p) => p.from),
    ...HOST_SCRIPTS.map((p) => p.from),
  ];
  for (const prog of programs) inputs.push(...(await sharedLibraries(prog.from)));
  inputs.push(
    ...fs
      .readdirSync(scripts)
      .sort()
      .map((f) => path.join(scripts, f)),
  );
  for (const f of inputs) {
    const st = fs.existsSync(f) ? fs.statSync(f) : null;
    hash.update(`${f}\0${st?.size ?? -1}\0${st?.mtimeMs ?? -1}\n`);
  }
  // uncompressed: the kernel then has nothing to inflate (a little faster under TCG)
  const prefix = variant ? `initramfs-${variant.name}-${version}-` : `initramfs-${version}-`;
  const initrd = path.join(cacheRoot(), `${prefix}${hash.digest('hex').slice(0, 16)}.cpio`);
  let built = kernelBuilt;
  if (!fs.existsSync(initrd)) {
    const archive = await initramfsArchive(modules, programs);
    const tmp = `${initrd}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, archive);
    fs.renameSync(tmp, initrd);
    built = true;
    // drop this kernel's older initramfs builds (an hour old: a parallel run may still boot one)
    for (const f of fs.readdirSync(cacheRoot())) {
      const full = path.join(cacheRoot(), f);
      if (f.startsWith(prefix) && full !== initrd && Date.now() - fs.statSync(full).mtimeMs > 3600 * 1000)
        fs.rmSync(full, { force: true });
    }
  }
  return { kernelVersion: version, kernel, initrd, modules: modules.map((m) => path.basename(m)), built };
}

/** The guest kernel command line: serial console, hpet (idle TCG vCPUs stall on the TSC), and aoetest.* parameters. */
export function kernelAppend(params: Record<string, string | number>): string {
  const words = ['console=ttyS0,115200', 'clocksource=hpet', 'panic=-1', 'mitigations=off'];
  if (!process.env.AOE_INTEROP_VERBOSE) words.push('quiet');
  for (const [k, v] of Object.entries(params)) words.push(`aoetest.${k}=${v}`);
  return words.join(' ');
}

/** Why the interop scenarios cannot or should not run here, or '' when they can. */
export function interopDisabled(): string {
  if (process.env.AOE_INTEROP === '0') return 'AOE_INTEROP=0';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, tap devices, apt-get)';
  if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  return '';
}
