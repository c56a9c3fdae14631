// A configuration that can never serve is not a crash: vbladed with views on
// a file system without copy-on-write clones (tmpfs), or a file that is not
// there, is not restarted in a loop. When nothing can be served the launcher
// prints every reason and exits 1, and the daemon is gone; when some exports
// can serve, they do, the others are held with their reason in
// `vblade ctl list`, and the worker is started once.
//
// Network safety: vbladed and `vblade ctl` run only inside the namespace pair
// this test creates; it is removed in teardown.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep } from '../../lab/common';
import { patternFile, tempDir, tmpfsMount } from '../helpers/files';
import { createNetnsPair, requireRoot, type Netns } from '../../lab/netns';
import { OUR_VBLADE, REPO, isAlive, vbladedArgs } from '../helpers/targets';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';

const VBLADE = path.join(REPO, 'bin', 'vblade.js');

/** The worker starts the log records. */
function workerStarts(dir: string): number {
  const log = fs.readFileSync(path.join(dir, 'vbladed.log'), 'utf8');
  return log.split('\n').filter((l) => /"msg":"started worker [0-9]+"/.test(l)).length;
}

async function ctl(ns: Netns, socket: string, ...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await ns.run(process.execPath, [VBLADE, 'ctl', '--socket', socket, ...args], { timeoutMs: 20000 });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

if (requireRoot(t)) {
  t.test('nothing can be served (views on tmpfs, a missing file): the launcher says why and exits 1; no restarts', async (t) => {
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'permanent');
    const mnt = await tmpfsMount(t, '16M');
    const image = await patternFile(t, 64, { dir: mnt, name: 'image.img' });
    const conf = path.join(dir, 'vblade.conf');
    fs.writeFileSync(
      conf,
      `[export e7.1]\nfile = ${image}\ninterfaces = ${pair.targetIf}\nviews = per-initiator\nviews-dir = ${mnt}/views\n\n` +
        `[export e7.2]\nfile = ${dir}/missing.img\ninterfaces = ${pair.targetIf}\n`,
    );
    const started = Date.now();
    const r = await pair.target.run(process.execPath, vbladedArgs(dir, conf), { timeoutMs: 60000 });
    t.equal(r.code, 1, 'the launcher exits 1');
    t.equal(r.stdout, '', 'no pid is printed: nothing runs');
    t.match(
      r.stderr,
      /^vbladed: nothing can be served, so vbladed stops; fix the configuration \(or the files it names\) and start it again:\n {2}e7\.1: views of .*image\.img need a file system that makes copy-on-write clones \(reflinks\), and .* is on tmpfs without them; .*\n {2}e7\.2: cannot open .*missing\.img: no such file; check the path or create it/m,
      `every reason, each with its export: ${r.stderr}`,
    );
    t.notMatch(r.stderr, /retrying|back-off/, 'no word of retrying');
    // The daemon stops by itself; its log says it started the worker once.
    const log = fs.readFileSync(path.join(dir, 'vbladed.log'), 'utf8');
    const pid = Number(/vbladed [^ ]+ starting \(pid ([0-9]+)\)/.exec(log)?.[1]);
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(100);
    t.notOk(isAlive(pid), 'the daemon is gone');
    await sleep(Math.max(0, 10000 - (Date.now() - started)));
    t.equal(workerStarts(dir), 1, 'one worker start in 10 s, not one every 1, 2, 4, 8 s');
    t.match(fs.readFileSync(path.join(dir, 'vbladed.log'), 'utf8'), /"code":78,"msg":"stopped: nothing to serve"/);
  });

  t.test('the foreground daemon (under systemd) exits 78, which the shipped units do not restart', async (t) => {
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'permanent-fg');
    const conf = path.join(dir, 'vblade.conf');
    fs.writeFileSync(conf, `[export e7.3]\nfile = ${dir}/missing.img\ninterfaces = ${pair.targetIf}\n`);
    const r = await pair.target.run(process.execPath, [...vbladedArgs(dir, conf), '--foreground'], { timeoutMs: 60000 });
    t.equal(r.code, 78, 'exit status 78 (EX_CONFIG)');
    t.equal(workerStarts(dir), 1, 'the worker was started once');
    for (const unit of ['vblade.service', 'vblade@.service'])
      t.match(fs.readFileSync(path.join(REPO, 'systemd', unit), 'utf8'), /^RestartPreventExitStatus=78$/m, unit);
  });

  t.test('one export cannot be served: the others serve, ctl list says why, no restarts', async (t) => {
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'permanent-some');
    const mnt = await tmpfsMount(t, '16M');
    const image = await patternFile(t, 64, { dir: mnt, name: 'image.img' });
    const good = await patternFile(t, 64);
    const socket = path.join(dir, 'ctl.sock');
    const conf = path.join(dir, 'vblade.conf');
    const views = `[export e7.5]\nfile = ${image}\ninterfaces = ${pair.targetIf}\nviews = per-initiator\nviews-dir = ${mnt}/views\n`;
    const served = `[daemon]\ncontrol-socket = ${socket}\n\n[export e7.4]\nfile = ${good}\ninterfaces = ${pair.targetIf}\n\n`;
    fs.writeFileSync(conf, served + views);
    const started = Date.now();
    const r = await pair.target.run(process.execPath, vbladedArgs(dir, conf), { timeoutMs: 60000 });
    const pid = Number(r.stdout.trim());
    if (pid > 0) t.teardown(() => void pair.target.run('kill', [String(pid)]));
    t.equal(r.code, 0, `the launcher exits 0: ${r.stderr}`);
    t.ok(pid > 0, 'and prints the pid');
    const list = await ctl(pair.target, socket, 'list');
    t.equal(list.code, 0, list.err);
    t.match(
      list.out,
      /\ne7\.5\t[^\n]*\n(?:\t[^\n]*\n)*?\tNOT SERVED: e7\.5: views of .*image\.img need a file system that makes copy-on-write clones .* \(not tried again: fix it, then `vblade ctl reload`\)\n/,
      `the held export and why: ${list.out}`,
    );
    t.notMatch(list.out.split('\ne7.5')[0], /NOT SERVED/, 'e7.4 serves');
    await sleep(Math.max(0, 10000 - (Date.now() - started)));
    t.equal(workerStarts(dir), 1, 'one worker start in 10 s');
    t.ok(isAlive(pid), 'the daemon runs on');
    // A reload that removes the export that cannot be served: applied.
    fs.writeFileSync(conf, served);
    const reload = await ctl(pair.target, socket, 'reload');
    t.equal(reload.code, 0, reload.err);
    t.notMatch((await ctl(pair.target, socket, 'list')).out, /NOT SERVED/, 'nothing is held after the reload');
  });

  t.test(
    'another target answering the only address at start is not permanent: once it is gone, the address serves',
    async (t) => {
      // What a host on the segment that answers every Query Config (or a second target, started by mistake) does at start-up.
      const pair = await createNetnsPair(t);
      const dir = tempDir(t, 'permanent-dup');
      const file = await patternFile(t, 64);
      const other = await patternFile(t, 64);
      const squatter = pair.init.spawn(t, process.execPath, [OUR_VBLADE, '7', '6', pair.initIf, other], { label: 'squatter' });
      await sleep(3000); // it has started and answers
      const conf = path.join(dir, 'vblade.conf');
      fs.writeFileSync(conf, `[export e7.6]\nfile = ${file}\ninterfaces = ${pair.targetIf}\n`);
      const r = await pair.target.run(process.execPath, vbladedArgs(dir, conf), { timeoutMs: 60000 });
      const log = () => fs.readFileSync(path.join(dir, 'vbladed.log'), 'utf8');
      const pid = Number(/vbladed [^ ]+ starting \(pid ([0-9]+)\)/.exec(log())?.[1]);
      if (pid > 0) t.teardown(() => void pair.target.run('kill', [String(pid)]));
      t.match(r.stderr, /e7\.6/, `the launcher says e7.6 is answered by another target: ${r.stderr}`);
      await squatter.stop();
      for (let i = 0; i < 300 && !/is serving e7\.6/.test(log()); i++) await sleep(100);
      t.ok(isAlive(pid), 'the daemon did not give up');
      t.match(log(), /is serving e7\.6/, 'and serves e7.6 once the other target is gone');
    },
  );

  t.test('user = nobody and a views-dir of root 0700: start refuses and names views-dir and the chown', async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'permanent-viewsdir');
    const mnt = await loopFs(t, 'xfs-reflink');
    const image = await patternFile(t, 64, { dir: mnt, name: 'image.img' });
    const views = path.join(mnt, 'views');
    fs.mkdirSync(views, { mode: 0o700 }); // made by an admin, or by a run as root
    const conf = path.join(dir, 'vblade.conf');
    fs.writeFileSync(
      conf,
      `[daemon]\nuser = nobody\n\n[export e7.7]\nfile = ${image}\ninterfaces = ${pair.targetIf}\n` +
        `views = per-initiator\nmac-mask = 52:54:00:00:00:01\nviews-dir = ${views}\n`,
    );
    // Without tap's NODE_OPTIONS: its loaders are not for a process that becomes nobody.
    const r = await pair.target.run('env', ['-u', 'NODE_OPTIONS', process.execPath, ...vbladedArgs(dir, conf)], {
      timeoutMs: 60000,
    });
    t.equal(r.code, 1, 'the launcher exits 1');
    const why =
      `e7.7: cannot open the views in ${views}/e7.7: views-dir ${views} belongs to uid 0 (mode 0700), and user nobody (uid 65534), ` +
      `which the daemon switches to, cannot make files in it; give it to that user: chown -R nobody: ${views}\n`;
    t.ok(r.stderr.includes(`\n  ${why}`), `the reason, with the fix: ${r.stderr}`);
  });
}
