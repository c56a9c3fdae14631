// vbladed with its real worker in a test namespace: one missing interface
// does not stop the exports on the others (it is waited for and served when
// it appears, and `vblade ctl list` says so); a reload that names a missing
// file or interface is refused with nothing changed; a mac-mask changed in
// the config is enforced by the reload.
//
// Network safety: vbladed, `vblade ctl` and the client run only inside
// namespaces this test creates, on veth pairs it creates; everything is
// removed in teardown.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatMac, linkInfo, type Target } from '../../src/client';
import { uniqueId } from '../../lab/common';
import { patternFile, tempDir } from '../helpers/files';
import { Veth, createNetnsPair, requireRoot } from '../../lab/netns';
import { waitLinkUp } from '../helpers/targets';
import { ctlIn as ctl, readsPattern as reads, spawnVbladed, until } from '../helpers/vbladed';

if (requireRoot(t)) {
  t.test('vbladed: a missing interface waits, refused reloads change nothing, a changed mask is enforced', async (t) => {
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'vbladed-reload');
    const file1 = await patternFile(t, 64);
    const file2 = await patternFile(t, 64);
    // The second path does not exist yet: its names are decided now, the pair is created later.
    const id = uniqueId();
    const late = new Veth({ ns: pair.target, ifname: `${id}a` }, { ns: pair.init, ifname: `${id}b` }, {});
    t.teardown(() => late.remove());
    const conf = path.join(dir, 'vblade.conf');
    const socket = path.join(dir, 'ctl.sock');
    const initMac = formatMac(linkInfo(pair.initIf, pair.init.path).mac);
    const config = (e61: string, e61Extra = ''): string =>
      `[daemon]\ncontrol-socket = ${socket}\n\n[export e6.1]\n${e61}\n${e61Extra}\n[export e6.2]\nfile = ${file2}\ninterfaces = ${late.a.ifname}\n`;
    fs.writeFileSync(conf, config(`file = ${file1}\ninterfaces = ${pair.targetIf}`));

    const daemon = spawnVbladed(t, pair.target, conf, dir);
    const warned = await daemon.waitFor(/"msg":"interface [^ ]+ not found; [^"]*"/, { timeoutMs: 60000 });
    t.equal(
      warned[0],
      `"msg":"interface ${late.a.ifname} not found; e6.2 waits for it (list interfaces with \`ip link\`)"`,
      'a warning names the missing interface',
    );
    await daemon.waitFor(/worker [0-9]+ is serving e6\.1 e6\.2/, { timeoutMs: 60000 });
    // Both ends: the kernel reports each end's carrier on its own, and the client refuses an end that is down.
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const tmac = linkInfo(pair.targetIf, pair.target.path).mac;
    const e61: Target = { shelf: 6, slot: 1, mac: tmac };
    t.ok(await reads(pair.init, pair.initIf, e61), 'e6.1 answers while e6.2 waits for its interface');
    const waiting = await ctl(pair.target, socket, 'list');
    t.equal(waiting.code, 0, waiting.err);
    t.match(waiting.out, `\n\tinterfaces: ${pair.targetIf} serving\n`);
    t.match(waiting.out, `\n\tinterfaces: ${late.a.ifname} waiting for the interface\n`);

    await late.create();
    await waitLinkUp(pair.target, late.a.ifname);
    await waitLinkUp(pair.init, late.b.ifname);
    await until('e6.2 serving', async () =>
      (await ctl(pair.target, socket, 'list')).out.includes(`\tinterfaces: ${late.a.ifname} serving\n`),
    );
    const e62: Target = { shelf: 6, slot: 2, mac: linkInfo(late.a.ifname, pair.target.path).mac };
    t.ok(await reads(pair.init, late.b.ifname, e62), 'e6.2 answers once its interface exists');

    // file = changed to a missing path: refused, nothing changed.
    fs.writeFileSync(conf, config(`file = ${dir}/missing.img\ninterfaces = ${pair.targetIf}`));
    const missing = await ctl(pair.target, socket, 'reload');
    t.equal(missing.code, 1);
    t.match(missing.err, /^vblade ctl reload: reload refused, nothing changed: e6\.1: cannot open .*missing\.img: no such file/);
    t.ok(await reads(pair.init, pair.initIf, e61), 'e6.1 still answers');
    t.match((await ctl(pair.target, socket, 'list')).out, `e6.1\t${pair.targetIf}\trw\t${file1}\n`, 'and is listed as before');

    // Two problems in one reload: both are named, nothing changes.
    fs.writeFileSync(
      conf,
      config(`file = ${dir}/missing.img\ninterfaces = ${pair.targetIf}`) +
        `\n[export e6.3]\nfile = ${dir}/missing3.img\ninterfaces = ${pair.targetIf}\n`,
    );
    const two = await ctl(pair.target, socket, 'reload');
    t.equal(two.code, 1);
    t.match(
      two.err,
      /^vblade ctl reload: reload refused, nothing changed: 2 problems:\n {2}e6\.1: cannot open .*missing\.img: no such file.*\n {2}e6\.3: cannot open .*missing3\.img: no such file/,
    );
    t.ok(await reads(pair.init, pair.initIf, e61), 'e6.1 still answers');

    // A mistyped interfaces = (another interface of the config exists): as at start, e6.1 waits for it, and the
    // reload says so; putting the right name back serves it again.
    fs.writeFileSync(conf, config(`file = ${file1}\ninterfaces = ${pair.targetIf}x`));
    const typo = await ctl(pair.target, socket, 'reload');
    t.equal(typo.code, 0, typo.err);
    t.equal(
      typo.out,
      'reloaded; added: -; removed: -; changed: e6.1; resized: -\n' +
        `warning: interface ${pair.targetIf}x not found; e6.1 waits for it (list interfaces with \`ip link\`)\n`,
    );
    t.notOk(await reads(pair.init, pair.initIf, e61), 'e6.1 no longer answers on its old interface');
    fs.writeFileSync(conf, config(`file = ${file1}\ninterfaces = ${pair.targetIf}`));
    t.equal((await ctl(pair.target, socket, 'reload')).out, 'reloaded; added: -; removed: -; changed: e6.1; resized: -\n');
    t.ok(await reads(pair.init, pair.initIf, e61), 'e6.1 answers again');
    const refusals = daemon.lines.filter((l) => l.text.includes('"msg":"reload refused, nothing changed: '));
    t.equal(refusals.length, 2, 'each refusal is logged');
    t.ok(
      refusals.every((l) => l.text.includes('"level":50') && !l.text.includes('"stack"')),
      'at ERROR, without a stack trace',
    );

    // mac-mask = A (this initiator), then B: A gets nothing, and B (the initiator given B's MAC) reads.
    fs.writeFileSync(conf, config(`file = ${file1}\ninterfaces = ${pair.targetIf}`, `mac-mask = ${initMac}\n`));
    const maskA = await ctl(pair.target, socket, 'reload');
    t.equal(maskA.out, 'reloaded; added: -; removed: -; changed: e6.1; resized: -\n', maskA.err);
    t.ok(await reads(pair.init, pair.initIf, e61), 'A reads');
    const macB = '02:00:00:00:0b:01';
    fs.writeFileSync(conf, config(`file = ${file1}\ninterfaces = ${pair.targetIf}`, `mac-mask = ${macB}\n`));
    t.equal((await ctl(pair.target, socket, 'reload')).out, 'reloaded; added: -; removed: -; changed: e6.1; resized: -\n');
    t.notOk(await reads(pair.init, pair.initIf, e61), 'A gets nothing after the reload');
    t.equal((await ctl(pair.target, socket, 'show-mask', 'e6.1')).out, `e6.1\t${macB}\n`);
    await pair.init.ip(['link', 'set', 'dev', pair.initIf, 'address', macB]);
    t.ok(await reads(pair.init, pair.initIf, e61), 'B reads');
  });
}
