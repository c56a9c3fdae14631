// One writer of a disk per host, across processes: two of our processes
// exporting one file under different addresses (a vbladed and a `vblade`
// started by hand) are refused unless the rule of shared-writers.ts allows
// them (both read-only, both shared = yes, or ranges that do not overlap).
// The claim dies with its process (kill -9 frees it), and a local user who
// is not root cannot block an export by taking a lock where the claims are.
//
// Network safety: every target runs inside the namespace pair this test
// creates; it is removed in teardown.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestLike } from '../../lab/common';
import { loopDevice, requireLoop, sparseFile, tempDir } from '../helpers/files';
import { createNetnsPair, requireRoot, type NetnsPair } from '../../lab/netns';
import { REPO, startTarget, targetCommand, vbladedArgs, waitLinkUp, type RunningTarget } from '../helpers/targets';

const SECTORS = 4096;

async function setup(t: TestLike): Promise<{ net: NetnsPair; file: string; other: string }> {
  const net = await createNetnsPair(t, { mtu: 1500 });
  await waitLinkUp(net.target, net.targetIf);
  const dir = tempDir(t, 'store-claims');
  const file = await sparseFile(t, SECTORS * 512, { dir, name: 'disk.img' });
  const other = path.join(dir, 'alias.img');
  fs.linkSync(file, other); // another name of the same file: the claim is by device and inode
  return { net, file, other };
}

/** Our vblade in the target namespace until it exits (or 60 s). */
function runOurs(net: NetnsPair, args: string[]) {
  const [cmd, argv] = targetCommand(args);
  return net.target.run(cmd, argv, { timeoutMs: 60000 });
}

async function stop(...targets: RunningTarget[]): Promise<void> {
  for (const x of targets) x.proc.signal('SIGTERM');
  for (const x of targets) await x.proc.waitExit(10000);
}

const ADVICE =
  'two writers that do not know of each other corrupt the disk; stop the other, export both read-only (read-only = yes, vblade -r), ' +
  'give them ranges that do not overlap (offset, length; vblade -o, -l), or, if both are meant to write (a cluster file system), ' +
  'set shared = yes on both (vblade --shared)';

if (requireRoot(t)) {
  t.test('a second writer of one file under another address is refused, naming the first', async (t) => {
    const { net, file, other } = await setup(t);
    const first = await startTarget(t, net.target, ['51', '1', net.targetIf, file], { label: 'first' });
    const r = await runOurs(net, ['51', '2', net.targetIf, other]);
    t.equal(r.code, 1, 'exit status 1');
    t.match(
      r.stderr,
      new RegExp(
        `^vblade: cannot write ${other}: another aoe-target process on this host serves it \\(pid ${first.pid} \\([^)]*vblade[^)]*\\); claim f[0-9]+-[0-9]+\\); `,
      ),
      `names the holder: ${r.stderr}`,
    );
    t.match(r.stderr, ADVICE, 'and the fixes');
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');

    // vbladed with a config: the same refusal; nothing else to serve, so the launcher says why and exits 1.
    const dir = tempDir(t, 'store-claims-vbladed');
    const conf = path.join(dir, 'vblade.conf');
    fs.writeFileSync(conf, `[export e51.3]\nfile = ${file}\ninterfaces = ${net.targetIf}\n`);
    const d = await net.target.run(process.execPath, vbladedArgs(dir, conf), { timeoutMs: 60000 });
    t.equal(d.code, 1, 'vbladed exits 1');
    t.match(d.stderr, `  e51.3: cannot write ${file}: another aoe-target process on this host serves it (pid ${first.pid} (`);

    // A read-only export beside the writer: refused too (as within one config).
    const ro = await runOurs(net, ['-r', '51', '4', net.targetIf, file]);
    t.equal(ro.code, 1, 'read-only beside a writer: refused');
    t.match(
      ro.stderr,
      `vblade: cannot export ${file} even read-only: another aoe-target process on this host writes it (pid ${first.pid} (`,
    );
    t.match(ro.stderr, 'make the other read-only too (read-only = yes, vblade -r)', 'it does not tell a -r export to use -r');

    // kill -9 of the first: the kernel drops its claim, and the second starts.
    first.proc.signal('SIGKILL');
    await first.proc.waitExit(10000);
    const second = await startTarget(t, net.target, ['51', '2', net.targetIf, other], { label: 'second' });
    t.equal(second.mode, 'O_RDWR', 'served once the first is gone');
  });

  t.test('allowed: ranges that do not overlap, both shared, both read-only', async (t) => {
    const { net, file } = await setup(t);
    const low = await startTarget(t, net.target, ['-l', '2048', '52', '1', net.targetIf, file], { label: 'low' });
    const high = await startTarget(t, net.target, ['-o', '2048', '52', '2', net.targetIf, file], { label: 'high' });
    t.same([low.sectors, high.sectors], [2048, 2048], 'two halves of one file');
    const overlap = await runOurs(net, ['-o', '2047', '-l', '2', '52', '3', net.targetIf, file]);
    t.equal(overlap.code, 1, 'a range that overlaps both: refused');
    t.match(
      overlap.stderr,
      `vblade: cannot write ${file}, sectors 2047..2048: another aoe-target process on this host serves it`,
    );
    await stop(low, high);

    const s1 = await startTarget(t, net.target, ['--shared', '52', '4', net.targetIf, file], { label: 'shared1' });
    const s2 = await startTarget(t, net.target, ['--shared', '52', '5', net.targetIf, file], { label: 'shared2' });
    t.same([s1.mode, s2.mode], ['O_RDWR', 'O_RDWR'], 'both shared = yes: both write');
    const plain = await runOurs(net, ['52', '6', net.targetIf, file]);
    t.equal(plain.code, 1, 'a writer that does not say shared: refused');
    const plainRo = await runOurs(net, ['-r', '52', '7', net.targetIf, file]);
    t.equal(plainRo.code, 1, 'a read-only export that does not say shared, beside shared writers: refused (as in one config)');
    await stop(s1, s2);

    const r1 = await startTarget(t, net.target, ['-r', '52', '8', net.targetIf, file], { label: 'ro1' });
    const r2 = await startTarget(t, net.target, ['-r', '52', '9', net.targetIf, file], { label: 'ro2' });
    t.same([r1.mode, r2.mode], ['O_RDONLY', 'O_RDONLY'], 'two read-only exports');
  });

  t.test('a block device under two names (another node of the same device number): one claim', async (t) => {
    if (!requireLoop(t)) return;
    const { net, file } = await setup(t);
    const dev = await loopDevice(t, file);
    const st = fs.statSync(dev);
    const alias = path.join(tempDir(t, 'devnode'), 'same-disk');
    spawnSync('mknod', [
      alias,
      'b',
      String(Math.floor(st.rdev / 256) & 0xfff),
      String((st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)),
    ]);
    t.equal(fs.statSync(alias).rdev, st.rdev, 'a second node of the device');
    const first = await startTarget(t, net.target, ['54', '1', net.targetIf, dev], { label: 'dev' });
    const r = await runOurs(net, ['54', '2', net.targetIf, alias]);
    t.equal(r.code, 1, 'refused');
    t.match(
      r.stderr,
      new RegExp(
        `^vblade: cannot write ${alias}: another aoe-target process on this host serves it \\(pid ${first.pid} .*; claim b${st.rdev}\\)`,
      ),
    );
  });

  t.test('reload: a range grown over another process is refused; removing the export frees it', async (t) => {
    const { net, file } = await setup(t);
    const dir = tempDir(t, 'store-claims-reload');
    const conf = path.join(dir, 'vblade.conf');
    const socket = path.join(dir, 'ctl.sock');
    const section = (extra: string): string =>
      `[daemon]\ncontrol-socket = ${socket}\n\n[export e55.1]\nfile = ${file}\ninterfaces = ${net.targetIf}\n${extra}\n`;
    fs.writeFileSync(conf, section('length = 2048'));
    const d = await net.target.run(process.execPath, vbladedArgs(dir, conf), { timeoutMs: 60000 });
    t.equal(d.code, 0, d.stderr);
    t.teardown(() => void net.target.run('kill', [d.stdout.trim()]));
    const high = await startTarget(t, net.target, ['-o', '2048', '55', '2', net.targetIf, file], { label: 'high' });
    const ctl = (...args: string[]) =>
      net.target.run(process.execPath, [path.join(REPO, 'bin', 'vblade.js'), 'ctl', '--socket', socket, ...args], {
        timeoutMs: 20000,
      });
    fs.writeFileSync(conf, section(''));
    const grown = await ctl('reload');
    t.equal(grown.code, 1, 'the whole file over the other process: refused');
    t.match(
      grown.stderr,
      `reload refused, nothing changed: e55.1: cannot write ${file}: another aoe-target process on this host serves it (pid ${high.pid} (`,
    );
    const low = await runOurs(net, ['-l', '2048', '55', '3', net.targetIf, file]);
    t.equal(low.code, 1, 'the old range is still claimed by vbladed');
    t.match(
      low.stderr,
      /serves it \(pid [0-9]+ \([^)]*worker\.js\); claim /,
      'only the holder of that range is named: the worker',
    );
    fs.writeFileSync(
      conf,
      `[daemon]\ncontrol-socket = ${socket}\n\n[export e55.9]\nnull-store = yes\nnull-sectors = 8\ninterfaces = ${net.targetIf}\n`,
    );
    const removed = await ctl('reload');
    t.equal(removed.code, 0, removed.stderr);
    const after = await startTarget(t, net.target, ['-l', '2048', '55', '3', net.targetIf, file], { label: 'low' });
    t.equal(after.sectors, 2048, 'served once the reload removed e55.1');
  });

  t.test('a local user who is not root cannot block an export through the claims', async (t) => {
    const { net, file } = await setup(t);
    fs.chmodSync(path.dirname(file), 0o755);
    fs.chmodSync(file, 0o644); // nobody may read the image, and so lock it
    // As nobody: try to make or open a lock file where the claims are, and hold a lock on the image itself.
    const script = `
      const fs = require('fs');
      const st = fs.statSync(${JSON.stringify(file)});
      let claims;
      try { fs.openSync('/run/aoe-target/claims/stores/f' + st.dev + '-' + st.ino + '.lock', 'a+'); claims = 'opened'; }
      catch (e) { claims = e.code; }
      const fd = fs.openSync(${JSON.stringify(file)}, 'r');
      console.log(JSON.stringify({ uid: process.getuid(), claims }));
      setTimeout(() => fs.closeSync(fd), 30000);`;
    // A checkout in a private directory is no working directory for nobody, and the NODE_OPTIONS tap gives every
    // child (also through env:) load modules from it.
    const blocker = spawnSync(
      'env',
      ['-u', 'NODE_OPTIONS', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script],
      { encoding: 'utf8', timeout: 5000, cwd: '/' },
    );
    const out = JSON.parse(blocker.stdout.split('\n')[0] || '{}') as { uid?: number; claims?: string };
    t.equal(out.uid, 65534, 'ran as nobody');
    t.match(out.claims, /^(EACCES|ENOENT)$/, 'nobody can neither make nor open a claim file');
    const served = await startTarget(t, net.target, ['53', '1', net.targetIf, file], { label: 'served' });
    t.equal(served.mode, 'O_RDWR', 'root serves the file all the same');
  });
}
