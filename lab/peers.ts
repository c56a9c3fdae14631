// The programs the tests and the bench compare us with, kept where only they
// find them. Installing Debian's vblade package would put its /usr/sbin/vblade
// and vbladed (and units and man pages of our names) ahead of our commands on
// root's PATH, so that every command of the README ran the C vblade; its files
// are unpacked into PEERS_DIR instead, and nothing of it is on the PATH.
//
//   node dist/lab/peers.js      unpack what is missing (scripts/setup.sh runs it as root)

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runOk } from './process';

/** Where the peers are unpacked: one folder per Debian package, as its .deb lays out its files. */
export const PEERS_DIR = process.env.AOE_PEERS_DIR ?? '/opt/aoe-target-peers';

/** Debian's vblade (version 25 on bookworm): the reference target of the comparison tests and the bench. */
export const DEBIAN_VBLADE = path.join(PEERS_DIR, 'vblade', 'usr', 'sbin', 'vblade');

/** The Debian version of the unpacked vblade ("25-1"), or undefined when it is not there. */
export function debianVbladeVersion(): string | undefined {
  try {
    return fs.readFileSync(path.join(PEERS_DIR, 'vblade', 'VERSION'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** `apt-get download PACKAGE` into `dir`; refreshes the package lists once when they do not know it. */
async function download(pkg: string, dir: string): Promise<string> {
  // Downloads as root into a folder _apt cannot write: say so instead of a warning per run.
  const args = ['-q', '-o', 'APT::Sandbox::User=root', 'download', pkg];
  if ((await run('apt-get', args, { cwd: dir, timeoutMs: 5 * 60 * 1000 })).code !== 0) {
    await runOk('apt-get', ['update', '-qq'], { timeoutMs: 10 * 60 * 1000 });
    await runOk('apt-get', args, { cwd: dir, timeoutMs: 5 * 60 * 1000 });
  }
  const deb = fs.readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (deb === undefined) throw new Error(`apt-get download ${pkg} left no .deb in ${dir}`);
  return path.join(dir, deb);
}

/**
 * Unpacks Debian's vblade into PEERS_DIR unless it is there; returns the
 * program's path. Needs root (and the network) the first time only.
 */
export async function ensureDebianVblade(): Promise<string> {
  if (fs.existsSync(DEBIAN_VBLADE)) return DEBIAN_VBLADE;
  fs.mkdirSync(PEERS_DIR, { recursive: true, mode: 0o755 });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'aoe-peer-'));
  try {
    const deb = await download('vblade', work);
    const tree = fs.mkdtempSync(path.join(PEERS_DIR, '.vblade-'));
    await runOk('dpkg-deb', ['-x', deb, tree]);
    const version = (await runOk('dpkg-deb', ['-f', deb, 'Version'])).stdout.trim();
    fs.writeFileSync(path.join(tree, 'VERSION'), `${version}\n`);
    fs.chmodSync(tree, 0o755);
    // Whole or not at all: a half-unpacked tree never has the final name.
    fs.renameSync(tree, path.join(PEERS_DIR, 'vblade'));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return DEBIAN_VBLADE;
}

if (require.main === module) {
  ensureDebianVblade().then(
    (file) => console.log(`[setup] Debian's vblade ${debianVbladeVersion() ?? ''} for the tests: ${file} (not on the PATH)`),
    (err: Error) => {
      console.error(`[setup] cannot unpack Debian's vblade for the tests: ${err.message}`);
      process.exit(1);
    },
  );
}
