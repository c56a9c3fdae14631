// `vbladed --check` with `user =` judges the backing files as that user (a
// daemon started as root opens the files a reload adds as the user): each
// file is opened in a child that has become the user, so that its groups
// count. A refusal names the user and the fixes that help: read-only only
// when the user may read the file. The same words come from a serving
// process that has switched to the user (a reload's open).
//
// Network safety: vbladed runs only inside a namespace this test creates,
// with a veth pair it creates; --check sends nothing.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { patternFile, tempDir } from '../helpers/files';
import { createNetns, createVeth, requireRoot } from '../../lab/netns';
import { REPO } from '../helpers/targets';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';

const VBLADED = path.join(REPO, 'bin', 'vbladed.js');
const NOBODY = 65534;

/** A directory anyone may pass through, holding root's files of the given modes (and groups). */
async function files(t: Parameters<typeof tempDir>[0]): Promise<Record<'priv' | 'world' | 'worldRo' | 'group' | 'own', string>> {
  const dir = tempDir(t, 'check-user');
  fs.chmodSync(dir, 0o755);
  const make = async (name: string, mode: number, uid = 0, gid = 0): Promise<string> => {
    const f = await patternFile(t, 64, { dir, name });
    fs.chownSync(f, uid, gid);
    fs.chmodSync(f, mode);
    return f;
  };
  return {
    priv: await make('priv.img', 0o600), // root's alone: nobody may not even read it
    world: await make('world.img', 0o644), // nobody may read, not write
    worldRo: await make('world-ro.img', 0o644), // the same, exported read-only
    group: await make('group.img', 0o660, 0, NOBODY), // nobody's group (nogroup) may write
    own: await make('own.img', 0o600, NOBODY, NOBODY),
  };
}

if (requireRoot(t)) {
  t.test('--check with user = nobody opens each file as nobody; the warnings name the user and the fixes', async (t) => {
    const ns = await createNetns(t, 'chkuser');
    const veth = await createVeth(t, ns, ns);
    const f = await files(t);
    const dir = tempDir(t, 'check-user-conf');
    const conf = path.join(dir, 'vblade.conf');
    const section = (key: string, file: string, extra = ''): string =>
      `[export ${key}]\nfile = ${file}\ninterfaces = ${veth.a.ifname}\n${extra}\n`;
    const check = () =>
      ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run'), '--state-dir', 'none']);

    fs.writeFileSync(
      conf,
      '[daemon]\nuser = nobody\n\n' +
        section('e8.1', f.priv) +
        section('e8.2', f.world) +
        section('e8.3', f.worldRo, 'read-only = yes') +
        section('e8.4', f.group) +
        section('e8.5', f.own),
    );
    const r = await check();
    // Start opens the files as root before it becomes nobody (the files may stay root's), so they are served:
    // --check agrees with start and warns about what a reload, which opens as nobody, could not do.
    const later =
      'start opens it as root before becoming nobody, so it is served, but a reload that adds or changes this export cannot open it';
    t.equal(r.code, 0, 'served at start, as start would');
    t.match(r.stdout, /: OK, 5 exports/);
    t.equal(
      r.stderr,
      [
        `vbladed: warning: e8.1: cannot open ${f.priv} for reading and writing as user nobody (uid ${NOBODY}): permission denied; give nobody access (chown nobody ${f.priv}, or setfacl -m u:nobody:rw ${f.priv}) or run as a user that may (user = or --user when started as root; User= in a unit); ${later}`,
        `vbladed: warning: e8.2: cannot open ${f.world} for reading and writing as user nobody (uid ${NOBODY}): permission denied; give nobody access (chown nobody ${f.world}, or setfacl -m u:nobody:rw ${f.world}), run as a user that may (user = or --user when started as root; User= in a unit) or export it read-only (read-only = yes, vblade -r); ${later}`,
        '',
      ].join('\n'),
      'the 0600 file of root: no read-only advice; the 0644 one: read-only helps; group and owner pass',
    );

    // Without user = the same files are root's to open: OK.
    fs.writeFileSync(conf, section('e8.1', f.priv) + section('e8.2', f.world));
    const asRoot = await check();
    t.equal(asRoot.code, 0, asRoot.stderr);
  });

  t.test('--check with user = nobody: a views-dir (or its eS.L) nobody cannot write is refused with the chown', async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const ns = await createNetns(t, 'chkviews');
    const veth = await createVeth(t, ns, ns);
    const mnt = await loopFs(t, 'xfs-reflink');
    fs.chmodSync(path.dirname(mnt), 0o755);
    fs.chmodSync(mnt, 0o755);
    const image = await patternFile(t, 64, { dir: mnt, name: 'golden.img' });
    fs.chownSync(image, NOBODY, NOBODY);
    const views = path.join(mnt, 'views');
    fs.mkdirSync(path.join(views, 'e8.6'), { recursive: true, mode: 0o700 }); // root's, as an admin or a run as root left it
    const dir = tempDir(t, 'check-views-conf');
    const conf = path.join(dir, 'vblade.conf');
    fs.writeFileSync(
      conf,
      `[daemon]\nuser = nobody\n\n[export e8.6]\nfile = ${image}\ninterfaces = ${veth.a.ifname}\nviews = per-initiator\nmac-mask = 52:54:00:00:00:01\nviews-dir = ${views}\n`,
    );
    const check = () =>
      ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run'), '--state-dir', 'none']);
    const fix = `chown -R nobody: ${views}`;
    const r = await check();
    t.equal(r.code, 1, 'refused');
    t.equal(r.stdout, '', 'no OK');
    t.match(
      r.stderr,
      `vbladed: e8.6: user nobody (uid ${NOBODY}) cannot make views in views-dir ${views}: permission denied; give it to that user: ${fix}\n`,
      r.stderr,
    );
    fs.chownSync(views, NOBODY, NOBODY); // the parent fixed, VIEWSDIR/e8.6 still root's 0700
    const sub = await check();
    t.equal(sub.code, 1, 'still refused');
    t.match(
      sub.stderr,
      `vbladed: e8.6: user nobody (uid ${NOBODY}) cannot make views in the views directory of e8.6 ${path.join(views, 'e8.6')}: permission denied; give it to that user: ${fix}\n`,
      sub.stderr,
    );
    fs.chownSync(path.join(views, 'e8.6'), NOBODY, NOBODY); // what the chown -R does
    const ok = await check();
    t.equal(ok.code, 0, ok.stderr);
  });

  t.test(
    "user = nobody and a state directory nobody cannot write: --check refuses it, start stops; one start makes is nobody's",
    async (t) => {
      const ns = await createNetns(t, 'chkstate');
      const veth = await createVeth(t, ns, ns);
      const f = await files(t);
      const dir = tempDir(t, 'check-state');
      fs.chmodSync(dir, 0o755);
      const state = path.join(dir, 'state');
      fs.mkdirSync(state, { mode: 0o750 }); // root's, as `mkdir` or a root vbladed made it
      const conf = path.join(dir, 'vblade.conf');
      const run = path.join(dir, 'run');
      fs.writeFileSync(
        conf,
        `[daemon]\nuser = nobody\nstate-dir = ${state}\n\n[export e8.7]\nfile = ${f.own}\ninterfaces = ${veth.a.ifname}\n`,
      );
      const fix = `the state directory ${state} is not writable by user nobody (EACCES); give it to that user (chown nobody: ${state}) or set another state-dir`;
      const checked = await ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', run]);
      t.equal(checked.code, 1, '--check refuses it (it said OK)');
      t.equal(checked.stdout, '');
      t.match(checked.stderr, `vbladed: ${fix}\n`);

      // Start: the worker cannot write it after the switch, and a restart would meet the same: it stops, saying why.
      const t0 = Date.now();
      // Without tap's NODE_OPTIONS: its loaders are not for a process that becomes nobody.
      const started = await ns.run('env', [
        '-u',
        'NODE_OPTIONS',
        'timeout',
        '60',
        process.execPath,
        VBLADED,
        '--config',
        conf,
        '--run-dir',
        run,
      ]);
      t.equal(started.code, 1, `start exits 1 (it said it keeps retrying) after ${Date.now() - t0} ms: ${started.stderr}`);
      t.match(started.stderr, /nothing can be served, so vbladed stops/);
      t.match(started.stderr, /is not writable by user nobody/);
      t.notOk(fs.existsSync(path.join(run, 'vblade.pid')), 'no daemon left running');

      // A state directory that does not exist yet: start makes it nobody's, and serves.
      const fresh = path.join(dir, 'fresh-state');
      fs.writeFileSync(
        conf,
        `[daemon]\nuser = nobody\nstate-dir = ${fresh}\n\n[export e8.7]\nfile = ${f.own}\ninterfaces = ${veth.a.ifname}\n`,
      );
      const ok = await ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', run]);
      t.equal(ok.code, 0, `a missing one passes --check: ${ok.stderr}`);
      t.notOk(fs.existsSync(fresh), '--check made nothing');
      const serving = await ns.run('env', ['-u', 'NODE_OPTIONS', process.execPath, VBLADED, '--config', conf, '--run-dir', run]);
      t.equal(serving.code, 0, serving.stderr);
      t.teardown(() => {
        const pid = Number(fs.readFileSync(path.join(run, 'vblade.pid'), 'utf8'));
        if (pid > 0) process.kill(pid, 'SIGTERM');
      });
      const st = fs.statSync(fresh);
      t.same([st.uid, st.mode & 0o777], [NOBODY, 0o750], 'made for nobody, mode 0750');
    },
  );

  t.test(
    '--check with user = nobody: a file under a directory nobody may not enter names that directory, not a chown of the file',
    async (t) => {
      const ns = await createNetns(t, 'chkclosed');
      const veth = await createVeth(t, ns, ns);
      const dir = tempDir(t, 'check-closed');
      fs.chmodSync(dir, 0o755);
      const closed = path.join(dir, 'closed');
      fs.mkdirSync(closed, { mode: 0o700 });
      const file = await patternFile(t, 64, { dir: closed, name: 'open.img' });
      fs.chownSync(file, NOBODY, NOBODY); // the file is nobody's already: a chown of it would not help
      const conf = path.join(dir, 'vblade.conf');
      fs.writeFileSync(conf, `[daemon]\nuser = nobody\n\n[export e8.8]\nfile = ${file}\ninterfaces = ${veth.a.ifname}\n`);
      const r = await ns.run(process.execPath, [
        VBLADED,
        '--check',
        '--config',
        conf,
        '--run-dir',
        path.join(dir, 'run'),
        '--state-dir',
        'none',
      ]);
      t.equal(r.code, 0, r.stderr);
      t.match(
        r.stderr,
        `vbladed: warning: e8.8: cannot open ${file} as user nobody (uid ${NOBODY}): it may not enter ${closed} (mode 0700); give nobody access to that directory (setfacl -m u:nobody:x ${closed}, or chmod o+x ${closed}), move the file, or run as a user that may (user = or --user when started as root; User= in a unit)`,
      );
      t.notMatch(r.stderr, /chown nobody/, 'no chown of the file, which nobody owns');
    },
  );

  t.test('a process that switched to nobody (a reload adding an export) says the same', async (t) => {
    const f = await files(t);
    const dist = path.join(__dirname, '../..');
    const script = `
      const { native } = require(${JSON.stringify(path.join(dist, 'src/native/addon.js'))});
      const { openExportFile } = require(${JSON.stringify(path.join(dist, 'src/target/export-store.js'))});
      native.dropPrivileges('nobody');
      const c = { file: ${JSON.stringify(f.priv)}, readOnly: false, direct: false, offsetSectors: 0 };
      try { openExportFile(c, native); console.log('opened'); } catch (e) { console.log(e.message); }
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: '/', encoding: 'utf8', env: { PATH: process.env.PATH } });
    t.equal(
      r.stdout.trim(),
      `cannot open ${f.priv} for reading and writing as user nobody (uid ${NOBODY}): permission denied; give nobody access (chown nobody ${f.priv}, or setfacl -m u:nobody:rw ${f.priv}) or run as a user that may (user = or --user when started as root; User= in a unit)`,
      r.stderr.slice(0, 300),
    );
  });
}
