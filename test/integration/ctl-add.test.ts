// `vblade ctl add` / `remove` against a real vbladed: an added export is
// served at once and again after a restart (its fragment is read at
// start); remove stops serving it and deletes the fragment; an add the
// reload refuses leaves no fragment; the main file's export is not removed.
//
// Network safety: vbladed, `vblade ctl` and the client run only inside
// namespaces this test creates (createNetnsPair: deleted by exact name in
// teardown), on the veth pair it creates; the daemon is stopped by its pid.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatMac, linkInfo, type Target } from '../../src/client';
import { patternFile, tempDir } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { checkoutForUser, waitLinkUp } from '../helpers/targets';
import { ctlIn as ctl, readsPattern as reads, spawnVbladed, until } from '../helpers/vbladed';

if (requireRoot(t)) {
  t.test('ctl add serves an export and keeps it across a restart; ctl remove takes it away with its fragment', async (t) => {
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'ctl-add');
    fs.chmodSync(dir, 0o755);
    const file1 = await patternFile(t, 64);
    const file3 = await patternFile(t, 64);
    const conf = path.join(dir, 'lab.conf');
    const fragments = path.join(dir, 'lab.d');
    const socket = path.join(dir, 'ctl.sock');
    const initMac = formatMac(linkInfo(pair.initIf, pair.init.path).mac);
    const config = (labMacs: string, e71Mask = ''): string =>
      `[daemon]\ncontrol-socket = ${socket}\n\n[group lab]\nmacs = ${labMacs}\n\n[export e7.1]\nfile = ${file1}\ninterfaces = ${pair.targetIf}\n${e71Mask}`;
    fs.writeFileSync(conf, config(initMac));
    const start = () => spawnVbladed(t, pair.target, conf, dir);
    let daemon = start();
    await daemon.waitFor(/worker [0-9]+ is serving e7\.1/, { timeoutMs: 60000 });
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const mac = linkInfo(pair.targetIf, pair.target.path).mac;
    const e73: Target = { shelf: 7, slot: 3, mac };
    t.notOk(await reads(pair.init, pair.initIf, e73), 'before: e7.3 is not served');

    const added = await ctl(pair.target, socket, 'add', 'e7.3', pair.targetIf, file3, '--read-only', '--mac-mask', '@lab');
    t.equal(added.code, 0, added.err);
    const fragment = path.join(fragments, 'e7.3.conf');
    t.equal(added.out, `e7.3: added, kept in ${fragment}\nreloaded; added: e7.3; removed: -; changed: -; resized: -\n`);
    t.ok(await reads(pair.init, pair.initIf, e73), 'e7.3 is served at once');
    t.match(
      daemon.stderr(),
      /control socket: reload for vblade ctl add e7\.3 \S+ \S+ read-only=yes mac-mask=@lab, asked by uid 0/,
    );
    t.match((await ctl(pair.target, socket, 'list')).out, `e7.3\t${pair.targetIf}\tro\t${file3}\n`);

    // Refused by the reload (the file does not exist): an error, and no fragment left.
    const missing = await ctl(pair.target, socket, 'add', 'e7.4', pair.targetIf, path.join(dir, 'missing.img'));
    t.equal(missing.code, 1);
    t.match(
      missing.err,
      /^vblade ctl add: reload refused, nothing changed: e7\.4: cannot open .*missing\.img: no such file.*; .*e7\.4\.conf was removed again: e7\.4 was not added\n$/,
    );
    t.same(fs.readdirSync(fragments), ['e7.3.conf']);
    const dup = await ctl(pair.target, socket, 'add', 'e7.1', pair.targetIf, file3);
    t.match(
      dup.err,
      /^vblade ctl add: e7\.1 is already exported \(.*lab\.conf:7\); remove it first, or choose another address\n$/,
    );

    // Restart: the fragment is read with the config file.
    await daemon.stop();
    daemon = start();
    await daemon.waitFor(/worker [0-9]+ is serving e7\.1 e7\.3/, { timeoutMs: 60000 });
    await until('e7.3 after the restart', () => reads(pair.init, pair.initIf, e73));
    t.pass('e7.3 is served after a restart');

    // A changed group changes the mask of every export naming it: e7.1 in the file, e7.3 in its fragment.
    const other = '02:00:00:00:0b:01';
    fs.writeFileSync(conf, config(other, 'mac-mask = @lab\n'));
    const regroup = await ctl(pair.target, socket, 'reload');
    t.equal(regroup.out, 'reloaded; added: -; removed: -; changed: e7.1 e7.3; resized: -\n', regroup.err);
    t.equal((await ctl(pair.target, socket, 'show-mask')).out, `e7.1\t${other}\ne7.3\t${other}\n`);
    t.notOk(await reads(pair.init, pair.initIf, e73), 'the initiator left the group: e7.3 refuses it');
    t.notOk(await reads(pair.init, pair.initIf, { shelf: 7, slot: 1, mac }), 'and so does e7.1');
    fs.writeFileSync(conf, config(`${initMac} ${other}`, 'mac-mask = @lab\n'));
    t.equal((await ctl(pair.target, socket, 'reload')).code, 0);
    t.ok(await reads(pair.init, pair.initIf, e73), 'back in the group: e7.3 reads');

    const main = await ctl(pair.target, socket, 'remove', 'e7.1');
    t.equal(main.code, 1);
    t.match(
      main.err,
      /e7\.1 is declared in the config file .*lab\.conf:7, not in a fragment; edit that file and run vblade ctl reload/,
    );

    const removed = await ctl(pair.target, socket, 'remove', 'e7.3');
    t.equal(removed.code, 0, removed.err);
    t.equal(removed.out, `e7.3: removed, ${fragment} deleted\nreloaded; added: -; removed: e7.3; changed: -; resized: -\n`);
    t.notOk(fs.existsSync(fragment), 'the fragment is gone');
    t.notOk(await reads(pair.init, pair.initIf, e73), 'e7.3 is no longer served');
    t.ok(await reads(pair.init, pair.initIf, { shelf: 7, slot: 1, mac }), 'e7.1 still is');
    await daemon.stop();
  });

  t.test(
    "a daemon run as a user (as vblade.service runs it): the config-dir add makes is that group's, setgid, and read",
    async (t) => {
      const pair = await createNetnsPair(t);
      const dir = tempDir(t, 'ctl-add-user');
      fs.chmodSync(dir, 0o755);
      const repo = checkoutForUser(t);
      const file1 = await patternFile(t, 64, { dir });
      const file3 = await patternFile(t, 64, { dir });
      for (const f of [file1, file3]) fs.chmodSync(f, 0o644);
      const run = path.join(dir, 'run');
      fs.mkdirSync(run, { mode: 0o755 });
      fs.chownSync(run, 65534, 65534);
      const conf = path.join(dir, 'lab.conf');
      const socket = path.join(run, 'lab.sock');
      fs.writeFileSync(
        conf,
        `[daemon]\nrun-dir = ${run}\nstate-dir = none\n\n[export e7.1]\nfile = ${file1}\nread-only = yes\ninterfaces = ${pair.targetIf}\n`,
        { mode: 0o644 },
      );
      const caps = ['--inh-caps=+net_raw,+lease', '--ambient-caps=+net_raw,+lease', '--bounding-set=-all,+net_raw,+lease'];
      const argv = ['-u', 'NODE_OPTIONS', 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', ...caps];
      const vbladed = path.join(repo, 'bin', 'vbladed.js');
      const daemon = pair.target.spawn(
        t,
        'env',
        [...argv, process.execPath, vbladed, '--foreground', '--config', conf, '--log', 'stderr'],
        {
          label: 'vbladed as nobody',
          cwd: '/',
        },
      );
      await daemon.waitFor(/worker [0-9]+ is serving e7\.1/, { timeoutMs: 60000 });
      await waitLinkUp(pair.init, pair.initIf);
      const added = await ctl(pair.target, socket, 'add', 'e7.3', pair.targetIf, file3, '--read-only');
      t.equal(added.code, 0, added.err);
      const fragments = path.join(dir, 'lab.d');
      const st = fs.statSync(fragments);
      t.same(
        [st.uid, st.gid, (st.mode & 0o7777).toString(8)],
        [0, 65534, '2750'],
        "lab.d made root's, the daemon's group, setgid",
      );
      t.equal(fs.statSync(path.join(fragments, 'e7.3.conf')).gid, 65534, "the fragment is the group's too");
      const mac = linkInfo(pair.targetIf, pair.target.path).mac;
      t.ok(await reads(pair.init, pair.initIf, { shelf: 7, slot: 3, mac }), 'the daemon read it: e7.3 is served');
      t.equal((await ctl(pair.target, socket, 'reload')).code, 0, 'and later reloads read it too');

      // An add the reload refuses removes a config-dir it made, so that later reloads are not refused for it.
      fs.rmSync(fragments, { recursive: true });
      const refused = await ctl(pair.target, socket, 'add', 'e7.4', pair.targetIf, path.join(dir, 'missing.img'));
      t.equal(refused.code, 1);
      t.notOk(fs.existsSync(fragments), 'the config-dir it made is gone again');
      t.equal((await ctl(pair.target, socket, 'reload')).code, 0, 'reload works');
      await daemon.stop();
    },
  );
}
