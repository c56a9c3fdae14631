// `vblade ctl add` / `remove` attacked on a real vbladed: the same address
// added twice at once (one wins, one is told it is taken, one fragment),
// two adds and a reload at once (all applied, one at a time), a remove
// while a client reads the export (it stops, the daemon and the other
// export serve on), and a member of the control group who asks to export
// /etc/shadow (refused by SO_PEERCRED, nothing written).
//
// Network safety: vbladed, `vblade ctl` and the client run only inside
// namespaces this test creates (createNetnsPair: deleted by exact name in
// teardown), on the veth pair it creates; the daemon is stopped by its pid.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AoeClient, linkInfo, type Target } from '../../src/client';
import { patternFile, tempDir } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { vbladeForUser, waitLinkUp } from '../helpers/targets';
import { ctlIn as ctl, readsPattern as reads, spawnVbladed, until } from '../helpers/vbladed';

if (requireRoot(t) && requireCommands(t, ['setpriv'])) {
  t.test('concurrent adds, a reload, a remove under reads, and a control-group member', async (t) => {
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'ctl-attack');
    fs.chmodSync(dir, 0o755);
    const files = await Promise.all([1, 2, 3, 4, 5].map(() => patternFile(t, 64)));
    const conf = path.join(dir, 'lab.conf');
    const fragments = path.join(dir, 'lab.d');
    const socket = path.join(dir, 'ctl.sock');
    fs.writeFileSync(
      conf,
      `[daemon]\ncontrol-socket = ${socket}\ncontrol-group = nogroup\n\n[export e7.1]\nfile = ${files[0]}\ninterfaces = ${pair.targetIf}\n`,
    );
    const daemon = spawnVbladed(t, pair.target, conf, dir);
    await daemon.waitFor(/worker [0-9]+ is serving e7\.1/, { timeoutMs: 60000 });
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const mac = linkInfo(pair.targetIf, pair.target.path).mac;
    const at = (slot: number): Target => ({ shelf: 7, slot, mac });

    // The same address twice at once.
    const twice = await Promise.all([
      ctl(pair.target, socket, 'add', 'e7.3', pair.targetIf, files[1]),
      ctl(pair.target, socket, 'add', 'e7.3', pair.targetIf, files[2]),
    ]);
    t.same(twice.map((r) => r.code).sort(), [0, 1], 'one add of e7.3 succeeds, the other fails');
    const lost = twice.find((r) => r.code === 1)!;
    t.match(lost.err, /^vblade ctl add: e7\.3 is already exported \(.*e7\.3\.conf:2\); remove it first/, lost.err);
    t.same(fs.readdirSync(fragments), ['e7.3.conf'], 'one fragment, no temporary file');
    const winner = twice[0].code === 0 ? files[1] : files[2];
    t.match((await ctl(pair.target, socket, 'list')).out, `e7.3\t${pair.targetIf}\trw\t${winner}\n`, 'the winner is served');

    // Two adds and a reload at once: each applied, one after the other.
    const three = await Promise.all([
      ctl(pair.target, socket, 'add', 'e7.4', pair.targetIf, files[3]),
      ctl(pair.target, socket, 'reload'),
      ctl(pair.target, socket, 'add', 'e7.5', pair.targetIf, files[4]),
    ]);
    t.same(
      three.map((r) => r.code),
      [0, 0, 0],
      `add e7.4, reload and add e7.5 at once all succeed ${three.map((r) => r.err).join('')}`,
    );
    t.same(fs.readdirSync(fragments).sort(), ['e7.3.conf', 'e7.4.conf', 'e7.5.conf'], 'a fragment each');
    for (const slot of [3, 4, 5]) t.ok(await reads(pair.init, pair.initIf, at(slot)), `e7.${slot} is served`);

    // A remove while a client reads e7.4 without pause.
    const client = AoeClient.open(pair.initIf, { netns: pair.init.path, timeoutMs: 300, retries: 0 });
    t.teardown(() => client.close());
    let ok = 0;
    let failed = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        try {
          await client.read(at(4), 0, 8);
          ok++;
        } catch {
          failed++;
        }
      }
    })();
    await until('reads of e7.4', async () => ok >= 20);
    const removed = await ctl(pair.target, socket, 'remove', 'e7.4');
    const okAtRemove = ok;
    await until('reads of e7.4 to fail', async () => failed >= 3);
    stop = true;
    await reader;
    t.equal(removed.code, 0, `remove e7.4 under reads succeeds ${removed.err}`);
    t.ok(okAtRemove >= 20, `${okAtRemove} reads answered before the remove, then they failed`);
    t.notOk(fs.existsSync(path.join(fragments, 'e7.4.conf')), 'the fragment is gone');
    t.ok(await reads(pair.init, pair.initIf, at(1)), 'e7.1 is still served');
    t.ok(await reads(pair.init, pair.initIf, at(5)), 'and e7.5');

    // A member of the control group (nogroup) asks to export /etc/shadow: refused, nothing written.
    const vbladeForNobody = vbladeForUser(t); // readable by nobody, also from a private checkout
    const asMember = (...args: string[]) =>
      pair.target.run(
        'setpriv',
        // Without the test runner's NODE_OPTIONS: its loaders write where nobody may.
        [
          '--reuid=nobody',
          '--regid=nogroup',
          '--clear-groups',
          'env',
          '-u',
          'NODE_OPTIONS',
          process.execPath,
          vbladeForNobody,
          'ctl',
          '--socket',
          socket,
          ...args,
        ],
        { timeoutMs: 30000, cwd: '/' },
      );
    const member = await asMember('add', 'e7.6', pair.targetIf, '/etc/shadow');
    t.equal(member.code, 1, `a control-group member's add of /etc/shadow exits 1 ${member.stdout}`);
    t.match(member.stderr, /add is for root only/, member.stderr);
    const byMember = await asMember('list');
    t.equal(byMember.code, 0, `the member may list ${byMember.stderr}`);
    t.equal(byMember.stderr, '', 'and is told nothing else');
    t.same(fs.readdirSync(fragments).sort(), ['e7.3.conf', 'e7.5.conf'], 'no fragment for e7.6');
    t.notMatch(byMember.stdout, /e7\.6/, 'e7.6 is not served');
    await daemon.stop();
  });
}
