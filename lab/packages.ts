// The Debian packages the QEMU guests need on the host (the interop tests, the
// initiator bench), installed on demand.
//
// scripts/setup.sh can list the same names (INTEROP_PACKAGES); the test calls
// ensureInteropPackages() itself so that a fresh machine needs nothing else.

import { run, runOk } from './process';

export const INTEROP_PACKAGES = [
  'qemu-system-x86', // the guest machine (TCG here)
  'seabios', // its BIOS (a dependency of qemu-system-x86 too)
  'ipxe', // ipxe.lkrn, booted with -kernel
  'ipxe-qemu', // the NIC option ROMs QEMU loads for network boot
  'busybox-static', // the guest's userland, and udhcpd for the DHCP scenario
  'kmod', // depmod and modprobe --show-depends on the unpacked kernel tree
  'xz-utils', // unpacks the vmlinux inside the bzImage (booted directly via PVH: faster under TCG)
  'e2fsprogs', // mke2fs (copied into the guest; also builds the diskless root), e2fsck
  'iproute2', // ip netns / link / tuntap
  'aoetools', // only its aoe-revalidate script, copied into the guest (no aoetools program runs on the host)
];

/** What `npm run bench:initiator` adds to the guest: fio (with libaio) and GNU dd (its summary line times a copy to the microsecond). */
export const BENCH_PACKAGES = ['fio', 'coreutils'];

let updated = false;

async function aptUpdateOnce(): Promise<void> {
  if (updated) return;
  await runOk('apt-get', ['update', '-qq'], { timeoutMs: 10 * 60 * 1000 });
  updated = true;
}

/** Which of `names` are not installed. */
export async function missingPackages(names: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const name of names) {
    const r = await run('dpkg-query', ['-W', '-f=${Status}', name]);
    if (r.code !== 0 || !r.stdout.includes('install ok installed')) missing.push(name);
  }
  return missing;
}

/** Installs what is missing (idempotent; does nothing when all are there). Returns what it installed. */
export async function ensureInteropPackages(names: string[] = INTEROP_PACKAGES): Promise<string[]> {
  const missing = await missingPackages(names);
  if (missing.length === 0) return [];
  await aptUpdateOnce();
  await runOk('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    timeoutMs: 15 * 60 * 1000,
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
  return missing;
}

/** The kernel package version that the meta package linux-image-amd64 depends on, e.g. "6.1.0-56-amd64". */
export async function debianKernelVersion(): Promise<string> {
  const fromEnv = process.env.AOE_INTEROP_KERNEL;
  if (fromEnv) return fromEnv;
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await run('apt-cache', ['depends', 'linux-image-amd64']);
    const m = /Depends:\s+linux-image-(\d\S*-amd64)\b/.exec(r.stdout);
    if (m) return m[1];
    await aptUpdateOnce();
  }
  throw new Error('cannot tell which kernel linux-image-amd64 depends on (apt-cache depends linux-image-amd64)');
}

/** Fetches linux-image-<version> into `dir` with apt-get download (updating the lists once if needed). */
export async function downloadKernelPackage(version: string, dir: string): Promise<void> {
  const r = await run('apt-get', ['download', `linux-image-${version}`], { cwd: dir, timeoutMs: 10 * 60 * 1000 });
  if (r.code === 0) return;
  await aptUpdateOnce();
  await runOk('apt-get', ['download', `linux-image-${version}`], { cwd: dir, timeoutMs: 10 * 60 * 1000 });
}
