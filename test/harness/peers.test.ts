// What set-up leaves on the system: the programs the tests compare us with
// must not take our commands' names on the PATH. Debian's vblade package
// did (its /usr/sbin/vblade comes before /usr/bin on root's PATH, so after
// `npm link` the README's commands ran the C vblade); it is now unpacked
// where only the tests look (lab/peers.ts).

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BENCH_PACKAGES, INTEROP_PACKAGES } from '../../lab/packages';
import { DEBIAN_VBLADE } from '../../lab/peers';
import { REPO } from '../helpers/targets';

const PACKAGE = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string> };
const OUR_COMMANDS = Object.keys(PACKAGE.bin);
/** Where a shell finds commands, root's PATH included. */
const PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The names in scripts/setup.sh's PACKAGES=( … ) list. */
function setupPackages(): string[] {
  const text = readFileSync(join(REPO, 'scripts', 'setup.sh'), 'utf8');
  const list = /^PACKAGES=\(\n([\s\S]*?)\n\)/m.exec(text);
  if (!list) throw new Error('scripts/setup.sh has no PACKAGES=( … ) list');
  return list[1]
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((name) => name !== '');
}

/** The files an installed Debian package put on the system; undefined when it is not installed. */
function packageFiles(pkg: string): string[] | undefined {
  try {
    return execFileSync('dpkg', ['-L', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n');
  } catch {
    return undefined;
  }
}

t.test('no package set-up installs puts a command of our names on the PATH', async (t) => {
  const packages = [...new Set([...setupPackages(), ...INTEROP_PACKAGES, ...BENCH_PACKAGES])];
  t.ok(packages.length > 10, `set-up and the lab install ${packages.length} packages`);
  t.notOk(packages.includes('vblade'), "Debian's vblade is not among them");
  for (const pkg of packages) {
    const files = packageFiles(pkg);
    if (files === undefined) continue; // not installed here: what it would install is not known
    const clashes = files.filter((f) => PATH_DIRS.includes(dirname(f)) && OUR_COMMANDS.includes(basename(f)));
    t.same(clashes, [], `${pkg}: no command named ${OUR_COMMANDS.join(', ')}`);
  }
});

t.test(
  "Debian's vblade for the tests is unpacked off the PATH",
  { skip: process.getuid?.() !== 0 && 'needs root' },
  async (t) => {
    accessSync(DEBIAN_VBLADE, constants.X_OK);
    t.pass(`${DEBIAN_VBLADE} is there and executable`);
    t.notOk(PATH_DIRS.includes(dirname(DEBIAN_VBLADE)), 'its folder is not one a shell searches');
    t.notOk((process.env.PATH ?? '').split(':').includes(dirname(DEBIAN_VBLADE)), 'nor on this PATH');
  },
);
