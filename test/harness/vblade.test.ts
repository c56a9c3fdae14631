// End-to-end check of the harness with a known-good target: Debian's vblade
// in one namespace on a sparse file, aoetools in the other. If this fails the
// harness (namespaces, veth, process helpers) is broken, not our target.
//
// aoetools drop received frames shorter than 60 bytes and veth does not pad;
// vblade's config reply is only long enough with a config string of 28 bytes
// or more, hence the 40-character string set first (see
// shared/research/initiators-on-these-machines.md).

import t from 'tap';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { pidAlive } from '../../lab/common';
import { sparseFile } from '../helpers/files';
import { addBridgeTap, createNetnsPair, ownNetns, requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { DEBIAN_VBLADE } from '../../lab/peers';

const SHELF = '7';
const SLOT = '3';
const CONFIG = 'aoe-target harness check 0123456789abcde'; // 40 characters

if (requireRoot(t) && requireCommands(t, [DEBIAN_VBLADE, 'aoecfg', 'aoeping'])) {
  let vbladePid = -1;
  let file = '';
  const names: string[] = [];

  t.test('vblade answers aoecfg and aoeping across the veth pair', async (t) => {
    t.equal(CONFIG.length, 40, 'config string of 40 characters');
    const { target, init, targetIf, initIf } = await createNetnsPair(t, { mtu: 1500 });
    names.push(target.name, init.name);
    file = await sparseFile(t, 64 << 20);
    const vblade = target.spawn(t, DEBIAN_VBLADE, [SHELF, SLOT, targetIf, file]);
    vbladePid = vblade.pid;
    await vblade.waitFor(new RegExp(`e${SHELF}\\.${SLOT}, 131072 sectors`), { timeoutMs: 15000 });
    t.pass(`vblade serves e${SHELF}.${SLOT} on ${targetIf}`);

    // With shelf and slot given, aoecfg waits for answers until its -t timeout.
    const cfg = await init.run('aoecfg', ['-c', 'fset', '-s', CONFIG, '-t', '2', SHELF, SLOT, initIf], { timeoutMs: 30000 });
    t.equal(cfg.code, 0, `aoecfg exit 0 (${cfg.stderr.trim() || 'no stderr'})`);
    t.match(cfg.stdout, CONFIG, 'the reply carries the config string');

    const ping = await init.run('aoeping', ['-s', '5', SHELF, SLOT, initIf], { timeoutMs: 30000 });
    t.same(
      { code: ping.code, signal: ping.signal },
      { code: 0, signal: null },
      `aoeping -s 5 ${SHELF} ${SLOT} ${initIf} succeeds`,
    );

    // And the check can fail: nobody answers for another slot.
    const miss = await init.run('aoeping', ['-s', '1', SHELF, '4', initIf], { timeoutMs: 30000 });
    t.not(miss.code, 0, `aoeping for e${SHELF}.4 fails (${miss.signal ?? miss.code})`);
    t.ok(vblade.running, 'vblade still running');
  });

  t.test('the same through a bridge (the QEMU topology), at MTU 9000', async (t) => {
    const { target, init, targetIf, initIf } = await createNetnsPair(t, { mtu: 9000 });
    names.push(target.name, init.name);
    const bt = await addBridgeTap(t, init, { uplink: initIf });
    const disk = await sparseFile(t, 16 << 20);
    const vblade = target.spawn(t, DEBIAN_VBLADE, [SHELF, SLOT, targetIf, disk]);
    await vblade.waitFor(/sectors/, { timeoutMs: 15000 });
    const cfg = await init.run('aoecfg', ['-c', 'fset', '-s', CONFIG, '-t', '2', SHELF, SLOT, bt.bridge], { timeoutMs: 30000 });
    t.match(cfg.stdout, CONFIG, `aoecfg over the bridge ${bt.bridge}`);
    const ping = await init.run('aoeping', ['-s', '5', SHELF, SLOT, bt.bridge], { timeoutMs: 30000 });
    t.same({ code: ping.code, signal: ping.signal }, { code: 0, signal: null }, 'aoeping over the bridge succeeds');
  });

  t.test('everything is removed afterwards', async (t) => {
    t.same(ownNetns(), [], 'no namespace with our prefix remains');
    t.notOk(
      names.some((n) => existsSync(`/run/netns/${n}`)),
      'its namespaces are gone',
    );
    t.ok(vbladePid > 0 && !pidAlive(vbladePid), `vblade (pid ${vbladePid}) stopped`);
    t.notOk(file !== '' && existsSync(dirname(file)), 'the backing file and its directory are gone');
  });
}
