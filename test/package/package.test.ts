// The Debian package from `npm run package`, on a clean Debian root (a copy
// of a debootstrap'ed trixie kept in a cache, test/package/debian-root.ts):
// what the .deb holds; installed with apt it puts our commands, units, man
// pages and logrotate snippet in place; vbladed started from it in the root
// serves a sector to a client; its log survives a logrotate run; it
// replaces an installed Debian vblade with no file conflict; dpkg -r and
// dpkg -P take away everything it brought.
//
// Network safety: vbladed and `vblade ctl` run only in a namespace this
// test creates (ip netns exec NS chroot ROOT ...), on a veth pair it
// creates; the client is in the pair's other namespace. Both are deleted in
// teardown; the daemon is stopped by the pid it wrote.

import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AoeClient, linkInfo } from '../../src/client';
import { pidAlive, sleep } from '../../lab/common';
import { type NetnsPair, createNetnsPair, requireRoot } from '../../lab/netns';
import { type RunResult, requireCommands, run, runOk } from '../../lab/process';
import { patternSectors, tempDir } from '../helpers/files';
import { REPO } from '../helpers/targets';
import { type CachedRoot, SUITE, debianRoot, listTree, rootCopy } from './debian-root';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const COMMANDS = ['vblade', 'vbladed', 'aoe-client', 'aoe-bench'];

/** The environment of a root shell in the root: none of the test runner's (NODE_OPTIONS names its loaders). */
const ROOT_ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'HOME=/root',
  'LANG=C.UTF-8',
  'DEBIAN_FRONTEND=noninteractive',
];

/** A command inside the root, optionally in a namespace; never rejects. */
function inRoot(root: string, args: string[], netns?: string): Promise<RunResult> {
  return run('env', ['-i', ...ROOT_ENV, 'chroot', root, ...args], { netns, timeoutMs: 120_000 });
}

async function inRootOk(root: string, args: string[], netns?: string): Promise<RunResult> {
  const r = await inRoot(root, args, netns);
  if (r.code !== 0) throw new Error(`chroot ${root} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Paths that change with any package operation, or are the test's own. */
function volatile(rel: string): boolean {
  return (
    /^(proc|run|tmp|dev|sys)$/.test(rel) ||
    /^var\/(lib\/(dpkg|apt|systemd|logrotate)|cache|log\/(apt|dpkg\.log|alternatives\.log))(\/|$)/.test(rel) ||
    /^etc\/(ld\.so\.cache|vblade\.conf)$/.test(rel) ||
    /^srv\/vblade(\/|$)/.test(rel) ||
    // useradd's and systemd-sysusers' backups of the account files they edit.
    /^etc\/(passwd|group|shadow|gshadow)-$/.test(rel) ||
    /^etc\/\.pwd\.lock$/.test(rel)
  );
}

function diff(before: Set<string>, after: Set<string>): string[] {
  return [...after].filter((p) => !before.has(p)).sort();
}

async function buildDeb(outDir: string): Promise<string> {
  const r = await runOk(process.execPath, [path.join(REPO, 'scripts/package.js'), '--no-build', '--out', outDir], {
    cwd: REPO,
    timeoutMs: 300_000,
  });
  return r.stdout.trim();
}

async function gitStatus(): Promise<string> {
  return (await runOk('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: REPO })).stdout;
}

async function readsPattern(pair: NetnsPair, slot = 3): Promise<boolean> {
  const c = AoeClient.open(pair.initIf, { netns: pair.init.path, timeoutMs: 400, retries: 2 });
  try {
    const target = { shelf: 7, slot, mac: linkInfo(pair.targetIf, pair.target.path).mac };
    return Buffer.from(await c.read(target, 0, 1)).equals(patternSectors(0, 1));
  } catch {
    return false;
  } finally {
    c.close();
  }
}

/**
 * `vblade ctl add` of /srv/vblade/disk4.img as e7.4, as root: served at once,
 * its fragment root's with group vblade; `remove` takes it away again.
 */
async function addAndRemove(t: Test, root: string, pair: NetnsPair, daemon: string): Promise<void> {
  const add = await inRoot(
    root,
    ['vblade', 'ctl', 'add', 'e7.4', pair.targetIf, '/srv/vblade/disk4.img', '--read-only'],
    pair.target.name,
  );
  t.equal(add.code, 0, `${daemon}: ctl add ${add.stderr}`);
  t.match(add.stdout, /^e7\.4: added, kept in \/etc\/vblade\.d\/e7\.4\.conf\nreloaded; added: e7\.4;/);
  await until(`e7.4 served by ${daemon}`, () => readsPattern(pair, 4));
  t.equal(
    (await inRootOk(root, ['stat', '-c', '%U:%G %a', '/etc/vblade.d/e7.4.conf'])).stdout,
    'root:vblade 640\n',
    `${daemon}: the fragment is root's, readable by vblade`,
  );
  const remove = await inRoot(root, ['vblade', 'ctl', 'remove', 'e7.4'], pair.target.name);
  t.equal(remove.code, 0, `${daemon}: ctl remove ${remove.stderr}`);
  t.same(fs.readdirSync(path.join(root, 'etc/vblade.d')), [], `${daemon}: the fragment is gone`);
  t.notOk(await readsPattern(pair, 4), `${daemon}: e7.4 is no longer served`);
}

async function until(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Starts vbladed in the root in the pair's target namespace; returns the supervisor's pid, stopped in teardown. */
async function startDaemon(t: Test, root: string, pair: NetnsPair): Promise<number> {
  fs.mkdirSync(path.join(root, 'srv/vblade'), { recursive: true });
  fs.writeFileSync(path.join(root, 'srv/vblade/disk.img'), patternSectors(0, 64));
  fs.writeFileSync(
    path.join(root, 'etc/vblade.conf'),
    `[daemon]\nuser = vblade\n\n[export e7.3]\nfile = /srv/vblade/disk.img\ninterfaces = ${pair.targetIf}\n`,
  );
  const started = await inRootOk(root, ['vbladed', '--config', '/etc/vblade.conf'], pair.target.name);
  const pid = Number(fs.readFileSync(path.join(root, 'run/vblade/vblade.pid'), 'utf8').trim());
  t.equal(started.stdout.trim(), String(pid), 'vbladed detaches and prints the pid it wrote to /run/vblade/vblade.pid');
  t.teardown(() => {
    if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
  });
  return pid;
}

/**
 * What systemd does before vblade.service's ExecStartPre, on the installed
 * unit: the directories of its *Directory= lines made as systemd.exec(5)
 * says (ConfigurationDirectory= root's, the others User='s; an existing one
 * left as it is), then ExecStartPre run as User=: the check must pass,
 * which reads the fragments directory.
 */
async function asTheUnitStartsIt(t: Test, root: string): Promise<void> {
  const unit = fs.readFileSync(path.join(root, 'lib/systemd/system/vblade.service'), 'utf8');
  const value = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1];
  const user = value('User')!;
  const bases: Record<string, string> = { Configuration: 'etc', State: 'var/lib', Logs: 'var/log', Runtime: 'run' };
  for (const [kind, base] of Object.entries(bases))
    for (const name of value(`${kind}Directory`)?.split(/\s+/) ?? []) {
      const dir = path.join(root, base, name);
      if (fs.existsSync(dir)) continue;
      fs.mkdirSync(dir, { mode: Number.parseInt(value(`${kind}DirectoryMode`) ?? '0755', 8) });
      if (kind !== 'Configuration') await inRootOk(root, ['chown', `${user}:${user}`, `/${base}/${name}`]);
    }
  fs.writeFileSync(path.join(root, 'etc/vblade.conf'), '[export e7.3]\nnull-store = yes\nnull-sectors = 64\ninterfaces = lo\n', {
    mode: 0o644,
  });
  const asUser = ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups'];
  const check = await inRoot(root, [...asUser, ...value('ExecStartPre')!.split(' ')]);
  t.equal(check.code, 0, `ExecStartPre as ${user} passes: ${check.stdout}${check.stderr}`);
  t.equal(
    (await inRootOk(root, ['stat', '-c', '%U:%G %a', '/etc/vblade.d'])).stdout,
    `root:${user} 2750\n`,
    `/etc/vblade.d is root's, readable by ${user}, its fragments too (setgid)`,
  );
  fs.rmSync(path.join(root, 'etc/vblade.conf'));
  // The run directories go with the check: the root-run daemon below makes its own (a kept /run/vblade of
  // the unit's user would be refused to it).
  for (const name of value('RuntimeDirectory')?.split(/\s+/) ?? []) fs.rmSync(path.join(root, 'run', name), { recursive: true });
}

if (requireRoot(t) && requireCommands(t, ['debootstrap', 'dpkg-deb', 'chroot', 'git'])) {
  let cached: CachedRoot;
  let deb: string;
  const debDir = tempDir(t, 'deb');

  t.before(async () => {
    const machineArch = (await runOk('dpkg', ['--print-architecture'])).stdout.trim();
    cached = await debianRoot(machineArch);
    if (cached.builtInS !== undefined)
      t.comment(`debootstrap ${SUITE} ${machineArch} made the cached root in ${cached.builtInS} s`);
  });

  t.test('npm run package: the .deb and what it holds; the checkout is left as it was', async (t) => {
    const before = await gitStatus();
    const byDefault = (
      await runOk(process.execPath, [path.join(REPO, 'scripts/package.js'), '--no-build'], { cwd: REPO, timeoutMs: 300_000 })
    ).stdout.trim();
    t.equal(path.dirname(byDefault), path.join(REPO, 'dist-deb'), 'by default the .deb goes to dist-deb/');
    const out = debDir;
    deb = await buildDeb(out);
    const machineArch = (await runOk('dpkg', ['--print-architecture'])).stdout.trim();
    t.equal(deb, path.join(out, `aoe-target_${VERSION}_${machineArch}.deb`), 'the path it prints is in --out');
    t.ok(fs.existsSync(deb));
    t.equal(await gitStatus(), before, 'git status is the same after the build');
    const field = async (name: string): Promise<string> => (await runOk('dpkg-deb', ['-f', deb, name])).stdout.trim();
    t.equal(await field('Package'), 'aoe-target');
    t.equal(await field('Architecture'), machineArch, 'the native addon is built for this architecture');
    t.match(await field('Depends'), /^nodejs \(>= 20\), libc6 \(>= 2\.\d+\)$/);
    for (const f of ['Conflicts', 'Replaces', 'Provides']) t.equal(await field(f), 'vblade', `${f}: vblade`);
    const files = (await runOk('dpkg-deb', ['-c', deb])).stdout;
    const names = files.split('\n').map((l) => l.split(/\s+/)[5] ?? '');
    const lib = './usr/lib/aoe-target/';
    t.ok(names.includes(`${lib}build/Release/aoe_native.node`), 'the native addon');
    t.ok(names.includes('./usr/share/doc/aoe-target/changelog.gz') && names.includes('./usr/share/doc/aoe-target/copyright'));
    for (const guide of ['README.md', 'operations.md', 'views.md', 'reliability.md', 'failover.md'])
      t.ok(names.includes(`./usr/share/doc/aoe-target/${guide}`), `the guide ${guide}, which the man pages name, is installed`);
    t.same(
      names.filter((n) => /\/\.[^/]+\/?$|\.html$/.test(n)),
      [],
      "no dotfiles (.npmignore, .github) and no HTML pages of the dependencies' docs",
    );
    t.ok(names.includes(`${lib}dist/src/cli/vbladed.js`), 'the compiled sources');
    t.ok(names.includes(`${lib}node_modules/pino/package.json`) && names.includes(`${lib}node_modules/yargs/package.json`));
    t.same(
      names.filter((n) => !n.includes('/node_modules/') && /dist\/(test|lab|bench)\/|\.map$|\.ts$/.test(n)),
      [],
      'of ours, no tests, lab, bench, sources or source maps',
    );
    t.same(
      names.filter((n) => /node_modules\/(typescript|tap|eslint|prettier|c8|@types|dependency-cruiser)\//.test(n)),
      [],
      'no dev dependencies',
    );
    for (const c of COMMANDS) t.ok(files.includes(`./usr/bin/${c} -> ../lib/aoe-target/bin/${c}.js`), `/usr/bin/${c}`);
  });

  t.test('npm run package: arguments it cannot use are refused with what to do', async (t) => {
    const pkg = (args: string[]): Promise<RunResult> =>
      run(process.execPath, [path.join(REPO, 'scripts/package.js'), ...args], { cwd: REPO });
    const file = path.join(debDir, 'a-file');
    fs.writeFileSync(file, '');
    const cases: [string[], string][] = [
      [['--out'], 'package: --out needs a directory, e.g. --out /tmp/debs\n'],
      [['--frob'], 'package: unknown argument --frob (see npm run package -- --help)\n'],
      [['--no-build', '--out', file], `package: --out ${file} is not a directory\n`],
    ];
    for (const [args, message] of cases) {
      const r = await pkg(args);
      t.equal(r.code, 1, `${args.join(' ')}: exit 1`);
      t.equal(r.stderr, message, `${args.join(' ')}: the message`);
    }
  });

  t.test('installed on a clean root: files, a served sector, log rotation; removed and purged', async (t) => {
    t.ok(deb, 'the .deb was built');
    const root = await rootCopy(t, cached, tempDir(t, 'pkg-root'));
    fs.copyFileSync(deb, path.join(root, 'tmp/aoe-target.deb'));
    const pristine = listTree(root, volatile);

    const inst = await inRootOk(root, ['apt-get', 'install', '-y', '-q', '/tmp/aoe-target.deb']);
    t.notMatch(inst.stdout + inst.stderr, /trying to overwrite|dpkg: error/);
    const version = await inRootOk(root, ['vblade', '--version']);
    t.equal(version.stdout, `vblade ${VERSION}\n`, 'vblade in the root is ours');
    t.equal(version.stderr, '', 'and says nothing else');
    t.equal((await inRootOk(root, ['sh', '-c', 'command -v vblade'])).stdout, '/usr/bin/vblade\n');
    for (const page of ['vblade', 'vbladed', 'vblade.conf'])
      t.match(
        (await inRootOk(root, ['man', '-w', page])).stdout,
        /^\/usr\/share\/man\/man[58]\/vblade.*\.gz\n$/,
        `man -w ${page}`,
      );
    for (const unit of ['vblade.service', 'vblade@.service'])
      t.equal(
        fs.readFileSync(path.join(root, 'lib/systemd/system', unit), 'utf8'),
        fs.readFileSync(path.join(REPO, 'systemd', unit), 'utf8'),
        `/lib/systemd/system/${unit}`,
      );
    t.ok(fs.existsSync(path.join(root, 'etc/logrotate.d/vblade')), '/etc/logrotate.d/vblade');
    t.match(
      (await inRootOk(root, ['getent', 'passwd', 'vblade'])).stdout,
      /^vblade:x:\d+:\d+:[^:]*:\/var\/lib\/vblade:\/usr\/sbin\/nologin\n$/,
    );
    t.match((await inRootOk(root, ['stat', '-c', '%U:%G %a', '/var/lib/vblade'])).stdout, 'vblade:vblade 750\n');

    await asTheUnitStartsIt(t, root);

    const pair = await createNetnsPair(t);
    const pid = await startDaemon(t, root, pair);
    await until('a sector read from the packaged vbladed', () => readsPattern(pair));
    t.pass('a client in the other namespace reads sector 0 from the packaged vbladed (user = vblade)');
    const log = path.join(root, 'var/log/vblade/vblade.log');
    t.match(
      fs.readFileSync(log, 'utf8'),
      /"msg":"worker \d+ is serving e7\.3"/,
      'it logs to /var/log/vblade/vblade.log (no /dev/log in the root)',
    );

    // logrotate with the packaged snippet; the daemon keeps writing to the emptied file, from its start.
    await inRootOk(root, ['logrotate', '-f', '/etc/logrotate.d/vblade']);
    t.match(fs.readFileSync(`${log}.1`, 'utf8'), /vbladed vblade starting/, 'the old records are in vblade.log.1');
    await inRootOk(root, ['vblade', 'ctl', 'reload'], pair.target.name);
    await until(
      'a record in the rotated log',
      () => fs.readFileSync(log, 'utf8').includes('reloading the configuration'),
      10_000,
    );
    const after = fs.readFileSync(log);
    t.equal(after[0], '{'.charCodeAt(0), 'the new records start the emptied file');
    t.equal(after.indexOf(0), -1, 'no hole of zero bytes before them (O_APPEND)');
    t.ok(await readsPattern(pair), 'still serving after the rotation');

    // ctl add of a new file to the root-run daemon with user = vblade: root's vblade ctl writes the fragment, and
    // the supervisor makes the store's claim file for the worker, which has switched to vblade and cannot.
    fs.writeFileSync(path.join(root, 'srv/vblade/disk4.img'), patternSectors(0, 64));
    await addAndRemove(t, root, pair, 'the root-run daemon with user = vblade');
    process.kill(pid, 'SIGTERM');
    await until('vbladed to stop', () => !pidAlive(pid));

    // As vblade.service starts it: the user vblade from the start, with CAP_NET_RAW and CAP_LEASE only.
    fs.writeFileSync(
      path.join(root, 'etc/vblade.conf'),
      `[export e7.3]\nfile = /srv/vblade/disk.img\nread-only = yes\ninterfaces = ${pair.targetIf}\n`,
    );
    for (const dir of ['run/vblade', 'run/aoe-target-vblade']) {
      fs.mkdirSync(path.join(root, dir), { recursive: true, mode: 0o755 });
      await inRootOk(root, ['chown', 'vblade:vblade', `/${dir}`]);
    }
    // No journal in the root: it logs to the file the root-run daemon made.
    await inRootOk(root, ['chown', '-R', 'vblade:vblade', '/var/log/vblade']);
    const caps = ['--inh-caps=+net_raw,+lease', '--ambient-caps=+net_raw,+lease', '--bounding-set=-all,+net_raw,+lease'];
    const asUnit = ['setpriv', '--reuid=vblade', '--regid=vblade', '--init-groups', ...caps];
    const started = await inRootOk(root, [...asUnit, 'vbladed', '--config', '/etc/vblade.conf'], pair.target.name);
    const unitPid = Number(started.stdout.trim());
    t.teardown(() => {
      if (pidAlive(unitPid)) process.kill(unitPid, 'SIGTERM');
    });
    await until('a sector read from vbladed run as vblade', () => readsPattern(pair));
    await addAndRemove(t, root, pair, 'the daemon run as vblade, as the unit runs it');
    process.kill(unitPid, 'SIGTERM');
    await until('vbladed to stop', () => !pidAlive(unitPid));

    await inRootOk(root, ['dpkg', '-r', 'aoe-target']);
    for (const c of COMMANDS) t.notOk(fs.existsSync(path.join(root, 'usr/bin', c)), `dpkg -r removes /usr/bin/${c}`);
    t.notOk(fs.existsSync(path.join(root, 'usr/lib/aoe-target')), 'and /usr/lib/aoe-target');
    t.ok(fs.existsSync(path.join(root, 'etc/logrotate.d/vblade')), 'the conffile stays until purge');
    // A state file as the daemon writes it, and what someone else put beside it (a views-dir).
    fs.writeFileSync(path.join(root, 'var/lib/vblade/e7.3.json'), '{}');
    fs.mkdirSync(path.join(root, 'var/lib/vblade/views'));
    fs.writeFileSync(path.join(root, 'var/lib/vblade/views/disk.img'), "not the package's");
    // What the user vblade (owner of /var/lib/vblade) can plant under the names purge deletes: a
    // directory (rm -f fails on it, and set -e would fail the purge) and a link to someone else's file.
    fs.mkdirSync(path.join(root, 'var/lib/vblade/e9.9.json'));
    fs.writeFileSync(path.join(root, 'srv/theirs.json'), 'theirs');
    fs.symlinkSync('/srv/theirs.json', path.join(root, 'var/lib/vblade/e8.8.json'));
    const purge = await inRootOk(root, ['dpkg', '-P', 'aoe-target']);
    t.match(purge.stderr, "aoe-target: /var/lib/vblade holds files that are not the package's: kept");
    t.notOk(fs.existsSync(path.join(root, 'var/lib/vblade/e7.3.json')), 'dpkg -P removes the state files');
    t.notOk(fs.existsSync(path.join(root, 'var/lib/vblade/e8.8.json')), 'and the planted link');
    t.equal(fs.readFileSync(path.join(root, 'srv/theirs.json'), 'utf8'), 'theirs', 'not what it leads to');
    t.equal(fs.readFileSync(path.join(root, 'var/lib/vblade/views/disk.img'), 'utf8'), "not the package's", 'and keeps the rest');
    fs.rmSync(path.join(root, 'srv/theirs.json'));
    t.same(
      diff(pristine, listTree(root, volatile)),
      ['var/lib/vblade/', 'var/lib/vblade/e9.9.json/', 'var/lib/vblade/views/', 'var/lib/vblade/views/disk.img'],
      'after dpkg -P nothing else the package or the daemon made is left',
    );
  });

  t.test("replaces Debian's vblade: no file conflict, vblade is ours, purging both leaves nothing", async (t) => {
    t.ok(deb, 'the .deb was built');
    const root = await rootCopy(t, cached, tempDir(t, 'pkg-replace'));
    fs.copyFileSync(deb, path.join(root, 'tmp/aoe-target.deb'));
    const pristine = listTree(root, volatile);
    // An export of Debian's layout, which its vblade started at boot.
    fs.mkdirSync(path.join(root, 'etc/vblade.conf.d'));
    fs.writeFileSync(
      path.join(root, 'etc/vblade.conf.d/disk1.conf'),
      'shelf=1\nslot=1\nnetif=eth1\nfilename=/srv/vblade/disk1.img\n',
    );
    await inRootOk(root, ['dpkg', '-i', cached.vbladeDeb]);
    t.ok(fs.existsSync(path.join(root, 'usr/sbin/vblade')), "Debian's vblade is installed (/usr/sbin/vblade)");

    // dpkg -i, not apt: apt would remove vblade first; dpkg unpacks ours, then removes vblade, the order
    // in which a unit in /lib/systemd/system would be deleted through the /lib -> usr/lib alias.
    const inst = await inRootOk(root, ['dpkg', '-i', '/tmp/aoe-target.deb']);
    t.comment(inst.stdout.trim().replace(/\n/g, ' | '));
    t.notMatch(inst.stdout + inst.stderr, /trying to overwrite|dpkg: error/, 'no file conflict');
    t.match(inst.stdout, /Unpacking aoe-target [^]*Removing vblade /, 'dpkg removes vblade after unpacking ours');
    t.equal(
      inst.stderr
        .split('\n')
        .filter((l) => l.startsWith('aoe-target:'))
        .join('\n'),
      'aoe-target: /etc/vblade.conf.d/disk1.conf is not started at boot; to serve it: systemctl enable --now vblade@disk1',
      'it says how to serve the fragment (not skeleton.conf, which serves nothing)',
    );
    t.match(
      (await inRootOk(root, ['dpkg-query', '-W', '-f=${Status}', 'vblade'])).stdout,
      /^\w+ ok config-files$/,
      'vblade: removed, its conffiles kept',
    );
    t.equal((await inRootOk(root, ['sh', '-c', 'command -v vblade'])).stdout, '/usr/bin/vblade\n', 'vblade is ours');
    t.equal((await inRootOk(root, ['vblade', '--version'])).stdout, `vblade ${VERSION}\n`);
    // Debian's vblade ships its units in /usr/lib; were ours in /lib, removing it would delete them through the alias.
    for (const unit of ['vblade.service', 'vblade@.service'])
      t.equal(
        fs.readFileSync(path.join(root, 'usr/lib/systemd/system', unit), 'utf8'),
        fs.readFileSync(path.join(REPO, 'systemd', unit), 'utf8'),
        `${unit} is ours`,
      );
    const verify = await inRoot(root, ['dpkg', '--verify', 'aoe-target']);
    t.equal(verify.stdout + verify.stderr, '', 'dpkg --verify: every file of ours as shipped');

    // /var/log/vblade as a link to someone else's directory: purge leaves what it leads to alone.
    fs.mkdirSync(path.join(root, 'srv/other'));
    fs.writeFileSync(path.join(root, 'srv/other/app.log'), 'theirs');
    fs.symlinkSync('/srv/other', path.join(root, 'var/log/vblade'));
    await inRootOk(root, ['dpkg', '-P', 'aoe-target']);
    t.equal(
      fs.readFileSync(path.join(root, 'srv/other/app.log'), 'utf8'),
      'theirs',
      'purge does not follow a /var/log/vblade link',
    );
    fs.rmSync(path.join(root, 'var/log/vblade'));
    fs.rmSync(path.join(root, 'srv/other'), { recursive: true });
    const left = diff(pristine, listTree(root, volatile));
    t.comment(`left after dpkg -P aoe-target (Debian vblade's conffiles and unit link until it is purged): ${left.join(' ')}`);
    t.ok(
      left.every((p) => /^etc\/(init\.d\/vblade|vblade\.conf\.d\/|vblade\.conf\.d\/skeleton\.conf|systemd\/|rc\d\.d\/)/.test(p)),
      "only Debian vblade's own conffiles and links are left",
    );
    await inRootOk(root, ['dpkg', '-P', 'vblade']);
    t.same(
      diff(pristine, listTree(root, volatile)),
      ['etc/vblade.conf.d/', 'etc/vblade.conf.d/disk1.conf'],
      'purging vblade too leaves nothing but the fragment the administrator wrote',
    );
  });
}
