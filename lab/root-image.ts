// The diskless guest's root file system: an ext4 image holding static busybox
// (its applets linked in /bin) and lab/guest-scripts/rootfs/init.sh as
// /sbin/init, built on the host with `mke2fs -d`. The interop suite's diskless
// scenarios boot it; the storm bench's recorder boots it to capture a boot.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { runOk } from './process';
import { guestScriptDir } from './guest';

export const ROOT_BYTES = 64 * 1024 * 1024;

/**
 * Builds the root image at `image` (default: root.img in `dir`), staging its
 * files in `dir`/rootfs. Returns the image's path.
 */
export async function buildRootImage(dir: string, image = path.join(dir, 'root.img')): Promise<string> {
  const staging = path.join(dir, 'rootfs');
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'root', 'etc', 'mnt', 'run'])
    fs.mkdirSync(path.join(staging, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(staging, 'bin', 'busybox'));
  fs.chmodSync(path.join(staging, 'bin', 'busybox'), 0o755);
  const applets = (await runOk('/bin/busybox', ['--list'])).stdout
    .split('\n')
    .filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(staging, 'bin', a));
  fs.copyFileSync(path.join(guestScriptDir(), 'rootfs', 'init.sh'), path.join(staging, 'sbin', 'init'));
  fs.chmodSync(path.join(staging, 'sbin', 'init'), 0o755);
  fs.writeFileSync(image, '');
  fs.truncateSync(image, ROOT_BYTES);
  await runOk('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'aoeroot', '-d', staging, image], { timeoutMs: 10 * 60 * 1000 });
  return image;
}
