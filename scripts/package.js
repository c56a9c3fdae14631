#!/usr/bin/env node
'use strict';
// Builds the Debian package from the tree:
//
//   npm run package                      build (tsc), then dist-deb/aoe-target_VERSION_ARCH.deb
//   npm run package -- --out DIR         the .deb goes to DIR instead
//   npm run package -- --no-build        use dist/ as it is (the tests: npm test built it)
//
// The Maintainer field is DEBFULLNAME <DEBEMAIL> when DEBEMAIL is set (as
// for dch), else a placeholder address. Needs dpkg-deb, objdump and strip.
//
// What it holds (docs/operations.md, "Install from the package"):
//   /usr/lib/aoe-target/        package.json (the version), bin/*.js, dist/src
//                               (compiled JS of src/ only), the native addon
//                               build/Release/aoe_native.node, and node_modules
//                               with the production dependencies (pino, yargs
//                               and theirs), copied from this checkout's
//   /usr/bin/                   vblade vbladed aoe-client aoe-bench (symbolic links)
//   /usr/lib/systemd/system/    vblade.service vblade@.service
//   /usr/lib/sysusers.d/        vblade.conf: the user the units run as
//   /usr/share/man/             vblade.8 vbladed.8 vblade.conf.5 (and any other page in docs/)
//   /usr/share/doc/aoe-target/  copyright, changelog.gz (the commit), examples/vblade.conf, README.md and the
//                               guides the man pages name (operations.md, views.md, reliability.md, failover.md)
//   /etc/logrotate.d/vblade     for the /var/log/vblade/NAME.log files
//
// The addon is compiled for this machine's architecture (N-API: any Node
// 20 or later loads it), so the package is Architecture: that one, and
// Depends on the libc version its symbols need. It replaces Debian's vblade
// package (Conflicts/Replaces/Provides: vblade).
//
// dpkg-deb --root-owner-group makes every file root's without fakeroot; the
// staging directory is a temporary one, so the checkout is left as it was
// apart from the output directory (ignored by .gitignore).
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const root = path.resolve(__dirname, '..');
const PACKAGE = 'aoe-target';
const PREFIX = `usr/lib/${PACKAGE}`;
const COMMANDS = ['vblade', 'vbladed', 'aoe-client', 'aoe-bench'];

function fail(message) {
  process.stderr.write(`package: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { out: path.join(root, 'dist-deb'), build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') continue;
    if (a === '--no-build') opts.build = false;
    else if (a === '--out' || a.startsWith('--out=')) {
      const v = a === '--out' ? argv[++i] : a.slice('--out='.length);
      if (!v) fail('--out needs a directory, e.g. --out /tmp/debs');
      opts.out = path.resolve(v);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npm run package [-- --out DIR] [--no-build]\n');
      process.exit(0);
    } else fail(`unknown argument ${a} (see npm run package -- --help)`);
  }
  return opts;
}

function run(cmd, args, options = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options });
}

function mkdirp(dir) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
}

/** Copies a file with the mode the package gives it (the checkout's umask and modes do not matter). */
function install(from, to, mode = 0o644) {
  mkdirp(path.dirname(to));
  fs.copyFileSync(from, to);
  fs.chmodSync(to, mode);
}

function writeFile(to, text, mode = 0o644) {
  mkdirp(path.dirname(to));
  fs.writeFileSync(to, text);
  fs.chmodSync(to, mode);
}

/** Executable and starting with #!: a file npm ships with the x bit but no interpreter line is not run. */
function isScript(file) {
  if ((fs.statSync(file).mode & 0o111) === 0) return false;
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(2);
    return fs.readSync(fd, head, 0, 2, 0) === 2 && head.toString() === '#!';
  } finally {
    fs.closeSync(fd);
  }
}

/** Copies a directory tree, leaving out what `skip(relativePath, dirent)` says. */
function copyTree(from, to, skip) {
  mkdirp(to);
  for (const d of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, d.name);
    if (skip(path.relative(from, src), d)) continue;
    const dst = path.join(to, d.name);
    if (d.isDirectory()) copyTree(src, dst, skip);
    else if (d.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), dst);
    else install(src, dst, isScript(src) ? 0o755 : 0o644);
  }
}

/** dist/src, without source maps and without the output of sources that are gone from src/. */
function stageCompiledSources(lib) {
  const dist = path.join(root, 'dist', 'src');
  if (!fs.existsSync(dist)) fail('dist/src is missing: build first (npx tsc -p tsconfig.json), or leave out --no-build');
  const walk = (rel) => {
    for (const d of fs.readdirSync(path.join(dist, rel), { withFileTypes: true })) {
      const r = path.join(rel, d.name);
      if (d.isDirectory()) walk(r);
      else if (d.name.endsWith('.js') && fs.existsSync(path.join(root, 'src', r.replace(/\.js$/, '.ts'))))
        install(path.join(dist, r), path.join(lib, 'dist', 'src', r));
    }
  };
  walk('');
}

/** The production dependencies as npm sees them in this checkout (pino, yargs and theirs, no dev ones). */
function stageDependencies(lib) {
  const out = run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root });
  const modules = fs.realpathSync(path.join(root, 'node_modules'));
  for (const line of out.split('\n')) {
    const p = line.trim();
    if (!p || path.resolve(p) === root) continue;
    const rel = path.relative(path.join(root, 'node_modules'), p);
    if (rel.startsWith('..')) fail(`npm ls names ${p}, outside node_modules`);
    // A package's own nested node_modules are listed (and copied) on their own lines. Left out:
    // dotfiles (.npmignore, .github, ...) and HTML pages (pino's docs page loads scripts from CDNs).
    copyTree(
      path.join(modules, rel),
      path.join(lib, 'node_modules', rel),
      (_r, d) => d.name === 'node_modules' || d.name.startsWith('.') || d.name.endsWith('.html'),
    );
  }
}

/** The newest GLIBC_x.y symbol version the addon needs: the libc6 it depends on. */
function libcVersion(addon) {
  const syms = run('objdump', ['-T', addon]);
  const versions = [...syms.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  if (versions.length === 0) fail(`objdump -T ${addon} lists no GLIBC symbol version`);
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return versions[versions.length - 1].join('.');
}

function gzipTo(from, to) {
  mkdirp(path.dirname(to));
  // Level 9 and no name or time in the header, as dh_compress does.
  fs.writeFileSync(to, zlib.gzipSync(fs.readFileSync(from), { level: 9 }));
  fs.chmodSync(to, 0o644);
}

function stageManPages(staging) {
  for (const name of fs.readdirSync(path.join(root, 'docs'))) {
    const m = /^[a-z][a-z0-9.-]*\.([1-8])$/.exec(name);
    if (m) gzipTo(path.join(root, 'docs', name), path.join(staging, 'usr/share/man', `man${m[1]}`, `${name}.gz`));
  }
}

const COPYRIGHT = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: aoe-target

Files: *
Copyright: @YEARS@ the aoe-target developers
License: GPL-2+
 On Debian systems the full text of the GNU General Public License
 version 2 is in /usr/share/common-licenses/GPL-2.

Files: node_modules/*
Copyright: their authors (see each package.json)
License: MIT or ISC, as each package.json says
`;

// Rotated without a signal: SIGHUP, the signal that reopens the log file, is
// also vbladed's reload, and a nightly rotation must not apply half-made
// edits of vblade.conf. The daemon opens the file with O_APPEND, so after
// copytruncate its next record lands at the start of the emptied file (no
// hole). The records written between the copy and the truncation are lost;
// for none lost, log to syslog or the journal.
const LOGROTATE = `# The files vbladed logs to when there is no /dev/log and no journal
# socket (vblade.conf(5), log-file). copytruncate: SIGHUP would reopen the
# file, but it also reloads vblade.conf (see docs/operations.md).
/var/log/vblade/*.log {
\tweekly
\trotate 4
\tcompress
\tdelaycompress
\tmissingok
\tnotifempty
\tcopytruncate
}
`;

const POSTINST = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
\t# The units run as the system user vblade (/usr/lib/sysusers.d/vblade.conf).
\tif ! getent passwd vblade >/dev/null; then
\t\tif command -v systemd-sysusers >/dev/null; then
\t\t\tsystemd-sysusers /usr/lib/sysusers.d/vblade.conf
\t\telse
\t\t\tuseradd --system --user-group --home-dir /var/lib/vblade --no-create-home \\
\t\t\t\t--shell /usr/sbin/nologin --comment "ATA over Ethernet target" vblade
\t\tfi
\tfi
\t# The default state-dir, for a vbladed started outside systemd (whose
\t# StateDirectory= makes it) with user = vblade: made by vbladed itself, as
\t# root, it would not be writable by that user.
\tif [ ! -e /var/lib/vblade ]; then
\t\tinstall -d -o vblade -g vblade -m 0750 /var/lib/vblade
\tfi
\t# The fragments directory, read at every start by vblade.service
\t# (User=vblade): root's (root-run vbladed trusts no other owner), group
\t# vblade, setgid so that the fragments made in it are vblade's to read.
\t# A root:root 0750 one is what an earlier unit's ConfigurationDirectory=
\t# made, which vblade could not read.
\tif [ ! -e /etc/vblade.d ]; then
\t\tinstall -d -o root -g vblade -m 2750 /etc/vblade.d
\telif [ ! -L /etc/vblade.d ] && [ "$(stat -c %U:%G:%a /etc/vblade.d)" = root:root:750 ]; then
\t\tchgrp vblade /etc/vblade.d
\t\tchmod 2750 /etc/vblade.d
\tfi
\t# Debian's vblade started every fragment of /etc/vblade.conf.d at boot
\t# (its generator); here each is enabled on its own. Said, not done: which
\t# fragments were meant to run is the administrator's to decide.
\tif [ -z "$2" ]; then
\t\tfor conf in /etc/vblade.conf.d/*.conf; do
\t\t\tname=$(basename "$conf" .conf)
\t\t\tif [ -f "$conf" ] && [ "$name" != skeleton ] &&
\t\t\t\t[ ! -e "/etc/systemd/system/multi-user.target.wants/vblade@$name.service" ]; then
\t\t\t\techo "aoe-target: $conf is not started at boot; to serve it: systemctl enable --now vblade@$name" >&2
\t\t\tfi
\t\tdone
\tfi
\tif [ -d /run/systemd/system ]; then
\t\tsystemctl --system daemon-reload >/dev/null || true
\tfi
fi
`;

const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
\tsystemctl --system stop vblade.service 'vblade@*.service' >/dev/null || true
fi
`;

// Purge takes the logs and the state files (saved masks, config strings,
// reservations), by name: whatever else is in those directories (a
// views-dir, an image put there) is not the package's and stays, with them.
// The user vblade stays (Debian leaves system users: files elsewhere may
// still belong to it).
const POSTRM = `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
\tsystemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
\tfor dir in /var/lib/vblade /var/log/vblade; do
\t\t# A link put there leads to files that are not the package's.
\t\tif [ -L "$dir" ] || [ ! -d "$dir" ]; then
\t\t\tcontinue
\t\tfi
\t\t# Files and links of those names, not a directory (the user vblade owns
\t\t# /var/lib/vblade and may make one, on which rm fails the purge); a
\t\t# link is removed, never followed.
\t\tcase "$dir" in
\t\t/var/lib/*) set -- -name 'e*.json' -o -name '.e*.json.tmp-*' -o -name 'e*.corrupt-*' ;;
\t\t*) set -- -name '*.log' -o -name '*.log.[0-9]*' ;;
\t\tesac
\t\tfind "$dir" -mindepth 1 -maxdepth 1 ! -type d \\( "$@" \\) -delete
\t\tif ! rmdir "$dir" 2>/dev/null; then
\t\t\techo "aoe-target: $dir holds files that are not the package's: kept" >&2
\t\tfi
\tdone
\t# Fragments are configuration: the directory goes only when empty.
\tif [ -d /etc/vblade.d ] && [ ! -L /etc/vblade.d ] && ! rmdir /etc/vblade.d 2>/dev/null; then
\t\techo "aoe-target: /etc/vblade.d holds config fragments: kept" >&2
\tfi
fi
`;

/** What git says of the tree: the commit, whether it has changes, the years of its history (none: an unpacked release). */
function gitFacts() {
  try {
    const git = (...args) => run('git', args, { cwd: root }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    const years = git('log', '--format=%ad', '--date=format:%Y').split('\n');
    return {
      commit: git('rev-parse', '--short=12', 'HEAD') + (dirty ? ' and changes' : ''),
      first: years[years.length - 1],
      last: years[0],
    };
  } catch {
    return undefined;
  }
}

/** RFC 2822 date, as a Debian changelog's trailer has it. */
function rfc2822(d) {
  const pad = (n) => String(n).padStart(2, '0');
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()];
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `${day}, ${pad(d.getUTCDate())} ${month} ${d.getUTCFullYear()} ${time} +0000`;
}

/** A native package's changelog, in Debian's format: one entry, the commit it was built from (the history is git's). */
function changelog(version, facts) {
  const from = facts ? `commit ${facts.commit}` : 'a tree without git';
  return `aoe-target (${version}) unstable; urgency=medium

  * Built from ${from}.
  * The changes are the git history of aoe-target.

 -- ${maintainer()}  ${rfc2822(new Date())}
`;
}

/** Debian's convention (dch, reportbug): DEBFULLNAME and DEBEMAIL name the maintainer of a build. */
function maintainer() {
  const { DEBFULLNAME: name, DEBEMAIL: email } = process.env;
  if (email) return `${name || 'aoe-target developers'} <${email}>`;
  return 'aoe-target developers <aoe-target@localhost>';
}

function control({ version, arch, libc, size }) {
  return `Package: ${PACKAGE}
Version: ${version}
Architecture: ${arch}
Maintainer: ${maintainer()}
Installed-Size: ${size}
Depends: nodejs (>= 20), libc6 (>= ${libc})
Suggests: aoetools, libnbd0, librbd1
Conflicts: vblade
Replaces: vblade
Provides: vblade
Section: net
Priority: optional
Description: ATA-over-Ethernet (AoE r11) target, a replacement for vblade
 Exports files and block devices over AoE: vblade (one export in the
 foreground, vblade's command line), vbladed (a daemon serving the exports
 of /etc/vblade.conf or of Debian's /etc/vblade.conf.d fragments, with
 systemd units), aoe-client (an initiator for checks and scripts) and
 aoe-bench.
 .
 Replaces Debian's vblade package: same command names and unit names.
`;
}

/** Directories 0755 whatever the umask was when they were made. */
function fixDirModes(dir) {
  fs.chmodSync(dir, 0o755);
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) fixDirModes(path.join(dir, d.name));
}

function md5sums(staging) {
  const lines = [];
  const walk = (rel) => {
    for (const d of fs.readdirSync(path.join(staging, rel), { withFileTypes: true })) {
      const r = path.join(rel, d.name);
      if (r === 'DEBIAN') continue;
      if (d.isDirectory()) walk(r);
      else if (d.isFile())
        lines.push(
          `${crypto
            .createHash('md5')
            .update(fs.readFileSync(path.join(staging, r)))
            .digest('hex')}  ${r}`,
        );
    }
  };
  walk('');
  return lines.sort().join('\n') + '\n';
}

function stage(staging) {
  const lib = path.join(staging, PREFIX);
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  // The version is all the programs read (src/cli/version.ts); no scripts, no dev dependencies.
  const runtimePkg = { name: pkg.name, version: pkg.version, description: pkg.description, license: pkg.license };
  writeFile(path.join(lib, 'package.json'), JSON.stringify({ ...runtimePkg, dependencies: pkg.dependencies }, null, 2) + '\n');
  for (const c of COMMANDS) {
    install(path.join(root, 'bin', `${c}.js`), path.join(lib, 'bin', `${c}.js`), 0o755);
    mkdirp(path.join(staging, 'usr/bin'));
    fs.symlinkSync(`../lib/${PACKAGE}/bin/${c}.js`, path.join(staging, 'usr/bin', c));
  }
  stageCompiledSources(lib);
  const addon = path.join(root, 'build/Release/aoe_native.node');
  if (!fs.existsSync(addon)) fail('build/Release/aoe_native.node is missing: run npx node-gyp rebuild (or npm ci)');
  const stagedAddon = path.join(lib, 'build/Release/aoe_native.node');
  install(addon, stagedAddon);
  // Debug symbols out (dh_strip does the same): about a third of the file.
  run('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', stagedAddon]);
  stageDependencies(lib);
  for (const unit of ['vblade.service', 'vblade@.service'])
    install(path.join(root, 'systemd', unit), path.join(staging, 'usr/lib/systemd/system', unit));
  install(path.join(root, 'systemd/vblade.sysusers.conf'), path.join(staging, 'usr/lib/sysusers.d/vblade.conf'));
  stageManPages(staging);
  const doc = path.join(staging, 'usr/share/doc', PACKAGE);
  const facts = gitFacts();
  const year = String(new Date().getUTCFullYear());
  const years = facts ? (facts.first === facts.last ? facts.first : `${facts.first}-${facts.last}`) : year;
  writeFile(path.join(doc, 'copyright'), COPYRIGHT.replace('@YEARS@', years));
  writeFile(path.join(doc, 'changelog'), changelog(pkg.version, facts));
  gzipTo(path.join(doc, 'changelog'), path.join(doc, 'changelog.gz'));
  fs.rmSync(path.join(doc, 'changelog'));
  install(path.join(root, 'systemd/vblade.conf.example'), path.join(doc, 'examples/vblade.conf'));
  // The man pages and unit comments point to docs/operations.md and docs/views.md: the guides an admin reads.
  for (const guide of ['operations.md', 'views.md', 'reliability.md', 'failover.md'])
    install(path.join(root, 'docs', guide), path.join(doc, guide));
  install(path.join(root, 'README.md'), path.join(doc, 'README.md'));
  writeFile(path.join(staging, 'etc/logrotate.d/vblade'), LOGROTATE);
  return { version: pkg.version, libc: libcVersion(addon) };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.build) run('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aoe-target-deb-'));
  try {
    const staging = path.join(tmp, 'root');
    const { version, libc } = stage(staging);
    fixDirModes(staging);
    const arch = run('dpkg', ['--print-architecture']).trim();
    const size = Number(run('du', ['-sk', '--apparent-size', staging]).split('\t')[0]);
    const debian = path.join(staging, 'DEBIAN');
    writeFile(path.join(debian, 'control'), control({ version, arch, libc, size }));
    writeFile(path.join(debian, 'conffiles'), '/etc/logrotate.d/vblade\n');
    writeFile(path.join(debian, 'postinst'), POSTINST, 0o755);
    writeFile(path.join(debian, 'prerm'), PRERM, 0o755);
    writeFile(path.join(debian, 'postrm'), POSTRM, 0o755);
    writeFile(path.join(debian, 'md5sums'), md5sums(staging));
    if (fs.existsSync(opts.out) && !fs.statSync(opts.out).isDirectory()) fail(`--out ${opts.out} is not a directory`);
    mkdirp(opts.out);
    const deb = path.join(opts.out, `${PACKAGE}_${version}_${arch}.deb`);
    run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', staging, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
    process.stdout.write(`${deb}\n`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
