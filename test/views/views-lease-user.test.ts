// The read lease of a views export when the daemon does not run as root: with
// `user = nobody` (the worker switches after start) and as the shipped units
// start it (as the service user from the first instruction, with the
// capabilities the unit grants). In both, a program that opens the image for
// writing gets in within seconds, not after the kernel's lease-break-time
// (45 s); a non-blocking opener (coreutils truncate) fails once and succeeds
// when run again; and the export takes the lease again afterwards, so the
// views share the image's page cache again. The image is root's (0644), as an
// admin leaves it.
//
// Network safety: vbladed and `vblade ctl` run only inside the namespace pair
// this test creates; it is removed in teardown.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { sleep } from '../../lab/common';
import { createNetnsPair, requireRoot, type Netns } from '../../lab/netns';
import { requireCommands, type Proc } from '../../lab/process';
import { patternFile } from '../helpers/files';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { checkoutForUser, REPO } from '../helpers/targets';

const NOBODY = 65534;
const SECTORS = 2048;
/** What the writer may wait: the daemon pauses and gives the lease up; the kernel would hold it 45 s. */
const WRITER_MAX_MS = 5000;
/** The views try to share the image again this soon after a writer (30 s by default; AOET_TEST_VIEW_LEASE_RETRY_MS). */
const LEASE_RETRY_MS = 3000;

/** `vblade ctl --json ARGS` in `ns` against the one daemon of `runDir`. */
async function ctlJson(ns: Netns, repo: string, runDir: string, ...args: string[]): Promise<unknown> {
  const r = await ns.run(process.execPath, [join(repo, 'bin', 'vblade.js'), 'ctl', '--run-dir', runDir, '--json', ...args], {
    timeoutMs: 30000,
  });
  if (r.code !== 0) throw new Error(`vblade ctl ${args.join(' ')}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as unknown;
}

async function sharesImage(ns: Netns, repo: string, runDir: string): Promise<boolean | undefined> {
  const s = (await ctlJson(ns, repo, runDir, 'stats')) as { stats: { exports: { views?: { sharesImage: boolean } }[] } };
  return s.stats.exports[0]?.views?.sharesImage;
}

async function untilShared(t: Test, ns: Netns, repo: string, runDir: string, what: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: boolean | undefined;
  while (Date.now() < end) {
    // Until the daemon listens, ctl fails: asked again.
    last = await sharesImage(ns, repo, runDir).catch(() => undefined);
    if (last === true) break;
    await sleep(250);
  }
  t.equal(last, true, what);
}

/** Runs a node program that opens `image` for writing (blocking open), writes nothing, closes; resolves to the ms it took. */
function timeWriter(image: string): Promise<{ ms: number; code: number | null }> {
  const started = Date.now();
  const w = spawn(process.execPath, ['-e', `require('fs').closeSync(require('fs').openSync(${JSON.stringify(image)}, 'r+'))`], {
    stdio: 'ignore',
  });
  return new Promise((resolve) => w.on('exit', (code) => resolve({ ms: Date.now() - started, code })));
}

/** `truncate -s SIZE image` (the size it has: changes nothing); coreutils opens non-blocking. */
async function truncateSame(ns: Netns, image: string): Promise<{ code: number | null; stderr: string }> {
  const size = fs.statSync(image).size;
  return ns.run('truncate', ['-s', String(size), image], { timeoutMs: 60000 });
}

/** A views export on a real XFS with reflinks: the image root's and 0644, the views directory nobody's, `dir` root's. */
async function lab(t: Test): Promise<{ image: string; views: string; dir: string }> {
  const mnt = await loopFs(t, 'xfs-reflink');
  // As under /srv: every user may pass through the directories above the image.
  fs.chmodSync(dirname(mnt), 0o755);
  fs.chmodSync(mnt, 0o755);
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  fs.chmodSync(image, 0o644);
  const views = join(mnt, 'views');
  fs.mkdirSync(views, { mode: 0o750 });
  fs.chownSync(views, NOBODY, NOBODY);
  const dir = join(mnt, 'daemon');
  fs.mkdirSync(dir, { mode: 0o755 });
  return { image, views, dir };
}

/** The writer, the non-blocking opener and the lease taken again, against a running daemon. */
async function writersGetIn(t: Test, ns: Netns, repo: string, runDir: string, image: string): Promise<void> {
  await untilShared(t, ns, repo, runDir, 'at start the views share the image (the export holds the lease)', 30000);
  const w = await timeWriter(image);
  t.equal(w.code, 0, 'the writer opened the image');
  t.ok(w.ms < WRITER_MAX_MS, `the writer waited ${w.ms} ms (the kernel's lease-break-time is 45 s)`);
  t.comment(`writer wait: ${w.ms} ms`);
  t.equal(await sharesImage(ns, repo, runDir), false, 'the lease was given up: the views read their own files');

  // Taken again within the retry interval (30 s; LEASE_RETRY_MS here); then a non-blocking opener meets it.
  await untilShared(t, ns, repo, runDir, 'the export takes the lease again once the writer closed the image', 60000);
  const first = await truncateSame(ns, image);
  t.not(first.code, 0, 'truncate while the lease is held fails once, as with root');
  t.match(first.stderr, /Resource temporarily unavailable/, `with EAGAIN: ${first.stderr.trim()}`);
  const started = Date.now();
  let second = first;
  while (second.code !== 0 && Date.now() - started < WRITER_MAX_MS) {
    await sleep(100);
    second = await truncateSame(ns, image);
  }
  t.equal(second.code, 0, `truncate succeeds when run again (${second.stderr.trim()})`);
  t.ok(Date.now() - started < WRITER_MAX_MS, `within ${Date.now() - started} ms of the first try`);
  await untilShared(t, ns, repo, runDir, 'and the export shares the image again after truncate', 60000);
}

/** The capabilities of a line of vblade.service, as setpriv takes them: "+net_raw,+lease". */
function unitCaps(key: string): string {
  const unit = fs.readFileSync(join(REPO, 'systemd', 'vblade.service'), 'utf8');
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(unit);
  if (!m) throw new Error(`vblade.service has no ${key}=`);
  return m[1]
    .trim()
    .split(/\s+/)
    .map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)
    .join(',');
}

async function stopDaemon(t: Test, d: Proc): Promise<void> {
  await d.stop();
  t.notOk(d.running, 'vbladed stopped');
}

if (requireRoot(t) && requireLoopFs(t, 'xfs-reflink') && requireCommands(t, ['truncate', 'setpriv'])) {
  t.test(
    'user = nobody: a writer of the image gets in within seconds, truncate after one retry, the lease comes back',
    async (t) => {
      const net = await createNetnsPair(t, { mtu: 1500 });
      const { image, views, dir } = await lab(t);
      const runDir = join(dir, 'run');
      const conf = join(dir, 'vblade.conf');
      fs.writeFileSync(
        conf,
        `[daemon]\nuser = nobody\nstate-dir = none\nrun-dir = ${runDir}\n\n` +
          `[export e61.7]\nfile = ${image}\ninterfaces = ${net.targetIf}\nviews = per-initiator\nviews-dir = ${views}\n` +
          `mac-mask = 02:00:00:00:0a:01\n`,
      );
      const daemon = net.target.spawn(
        t,
        'env',
        [
          '-u',
          'NODE_OPTIONS',
          `AOET_TEST_VIEW_LEASE_RETRY_MS=${LEASE_RETRY_MS}`,
          process.execPath,
          join(REPO, 'bin', 'vbladed.js'),
          '--foreground',
          '--log',
          'stderr',
          '--config',
          conf,
        ],
        { label: 'vbladed' },
      );
      await daemon.waitFor(/switched user/, { timeoutMs: 60000 });
      await writersGetIn(t, net.target, REPO, runDir, image);
      await stopDaemon(t, daemon);
    },
  );

  t.test('as the units start it (the service user, the unit file capabilities): the same, with a root-owned image', async (t) => {
    const net = await createNetnsPair(t, { mtu: 1500 });
    const { image, views, dir } = await lab(t);
    const ambient = unitCaps('AmbientCapabilities');
    const bounding = unitCaps('CapabilityBoundingSet');
    const repo = checkoutForUser(t);
    // The unit's RuntimeDirectory: the service user's.
    const runDir = join(dir, 'run');
    fs.mkdirSync(runDir, { mode: 0o755 });
    fs.chownSync(runDir, NOBODY, NOBODY);
    const conf = join(dir, 'vblade.conf');
    fs.writeFileSync(
      conf,
      `[daemon]\nstate-dir = none\nrun-dir = ${runDir}\n\n` +
        `[export e61.8]\nfile = ${image}\ninterfaces = ${net.targetIf}\nviews = per-initiator\nviews-dir = ${views}\n` +
        `mac-mask = 02:00:00:00:0a:01\n`,
    );
    fs.chmodSync(conf, 0o644);
    const daemon = net.target.spawn(
      t,
      'env',
      [
        '-u',
        'NODE_OPTIONS',
        `AOET_TEST_VIEW_LEASE_RETRY_MS=${LEASE_RETRY_MS}`,
        'setpriv',
        '--reuid=nobody',
        '--regid=nogroup',
        '--clear-groups',
        `--inh-caps=${ambient}`,
        `--ambient-caps=${ambient}`,
        `--bounding-set=-all,${bounding}`,
        '--no-new-privs',
        process.execPath,
        join(repo, 'bin', 'vbladed.js'),
        '--foreground',
        '--log',
        'stderr',
        '--config',
        conf,
      ],
      { label: 'vbladed as the unit', cwd: dir },
    );
    await daemon.waitFor(/started worker/, { timeoutMs: 60000 });
    await writersGetIn(t, net.target, repo, runDir, image);
    await stopDaemon(t, daemon);
  });
}

if (requireRoot(t) && requireLoopFs(t, 'xfs-reflink') && requireCommands(t, ['setpriv'])) {
  t.test(
    'without CAP_LEASE (a unit of ones own): --check warns, the log says why and how; with it, or as root, no warning',
    async (t) => {
      const net = await createNetnsPair(t, { mtu: 1500 });
      const { image, views, dir } = await lab(t);
      const repo = checkoutForUser(t);
      const conf = join(dir, 'vblade.conf');
      const body =
        `[export e61.9]\nfile = ${image}\ninterfaces = ${net.targetIf}\nviews = per-initiator\nviews-dir = ${views}\n` +
        `mac-mask = 02:00:00:00:0a:01\n`;
      const daemonKeys = `state-dir = none\nrun-dir = ${join(dir, 'run')}\n`;
      // The unit's RuntimeDirectory, which systemd makes the service user's before ExecStartPre.
      fs.mkdirSync(join(dir, 'run'), { mode: 0o755 });
      fs.chownSync(join(dir, 'run'), NOBODY, NOBODY);
      const check = (caps: string[]) =>
        net.target.run(
          'env',
          ['-u', 'NODE_OPTIONS', ...caps, process.execPath, join(repo, 'bin', 'vbladed.js'), '--check', '--config', conf],
          { timeoutMs: 60000, cwd: dir },
        );
      const asNobody = (ambient: string): string[] => [
        'setpriv',
        '--reuid=nobody',
        '--regid=nogroup',
        '--clear-groups',
        `--inh-caps=${ambient}`,
        `--ambient-caps=${ambient}`,
        `--bounding-set=-all,${ambient}`,
        '--no-new-privs',
      ];
      fs.writeFileSync(conf, `[daemon]\n${daemonKeys}\n${body}`, { mode: 0o644 });
      const leaseWarning =
        /^vbladed: warning: e61\.9: its views will read only their own files, not share the image's page cache: user uid 65534 neither owns .*golden\.img nor holds CAP_LEASE, which the read lease on it needs; give the unit CAP_LEASE/m;

      const without = await check(asNobody('+net_raw'));
      t.equal(without.code, 0, `a unit without CAP_LEASE: served (exit 0): ${without.stderr}`);
      t.match(without.stderr, leaseWarning, 'and warned, with the fix');

      const unit = await check(asNobody(unitCaps('AmbientCapabilities')));
      t.equal(unit.code, 0, `as vblade.service starts it: exit 0 ${unit.stderr}`);
      t.notMatch(unit.stderr, /CAP_LEASE/, 'no lease warning: the unit grants CAP_LEASE');

      // What that unit would meet at start: the same words in the log, and no shared cache.
      const runDir = join(dir, 'run'); // made above, as systemd makes it
      const daemon = net.target.spawn(
        t,
        'env',
        [
          '-u',
          'NODE_OPTIONS',
          ...asNobody('+net_raw'),
          process.execPath,
          join(repo, 'bin', 'vbladed.js'),
          '--foreground',
          '--log',
          'stderr',
          '--config',
          conf,
        ],
        { label: 'vbladed without CAP_LEASE', cwd: dir },
      );
      const logged = await daemon.waitFor(/no read lease on the image/, { timeoutMs: 60000 });
      t.match(
        logged.input,
        /Permission denied\); views read their own files: the serving user neither owns the image nor holds CAP_LEASE\. Under systemd, give the unit CAP_LEASE/,
        `the log says why the views do not share the image, and the fix: ${logged.input}`,
      );
      t.equal(await sharesImage(net.target, repo, runDir), false, 'ctl stats: shared cache no');
      await stopDaemon(t, daemon);

      fs.chownSync(runDir, 0, 0); // root's again for a daemon started as root
      fs.writeFileSync(conf, `[daemon]\nuser = nobody\n${daemonKeys}\n${body}`, { mode: 0o644 });
      const asRoot = await check([]);
      t.equal(asRoot.code, 0, `as root with user = nobody: exit 0 ${asRoot.stderr}`);
      t.notMatch(asRoot.stderr, /CAP_LEASE/, 'no lease warning: the worker keeps CAP_LEASE');
    },
  );
}
