// Debian's aoetools against our target at MTU 1500 and 9000: `aoeping -I`,
// every `aoecfg` sub-command and `aoe-sancheck`, each run from the
// initiator's namespace with `ip netns exec`. These tools drop frames
// shorter than 60 bytes (veth does not pad), so they only work against a
// target that pads its replies.
//
// The MTU is changed on the running target between the two rounds (no
// restart); before the 9000 round the test waits until the target's config
// reply advertises 17 sectors (the window right after an MTU change is
// covered by protocol.test.ts).

import t from 'tap';
import { hostname } from 'node:os';
import { parseConfigReply, writeConfigQuery } from '../../src/client';
import { PRODUCT_FIRMWARE, PRODUCT_MODEL } from '../../src/engine/export';
import { sleep } from '../../lab/common';
import { sparseFile } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { startTarget } from '../helpers/targets';
import { addr, exitedZero, openClient, since } from './lib';

const SHELF = 5;
const SLOT = 9;

if (requireRoot(t) && requireCommands(t, ['aoeping', 'aoecfg', 'aoe-sancheck'])) {
  t.test('aoetools against our target', async (t) => {
    const t0 = Date.now();
    const pair = await createNetnsPair(t, { mtu: 1500 });
    const file = await sparseFile(t, 16 << 20);
    const target = await startTarget(t, pair.target, [String(SHELF), String(SLOT), pair.targetIf, file]);
    t.equal(target.sectors, 32768, target.line);
    const c = await openClient(t, pair.init, pair.initIf);
    const tool = (cmd: string, args: string[]) => pair.init.run(cmd, args, { timeoutMs: 30000 });
    const S = [String(SHELF), String(SLOT)];

    for (const mtu of [1500, 9000]) {
      await t.test(`MTU ${mtu}`, async (t) => {
        if (mtu !== 1500) {
          await pair.veth.setMtu(mtu);
          const want = Math.floor((mtu - 36) / 512);
          const deadline = Date.now() + 5000;
          let got = -1;
          while (Date.now() < deadline) {
            const r = await c.send((b) => writeConfigQuery(b, 0, addr(c.mac, SHELF, SLOT), 0, 0), 1000);
            got = r.reply ? parseConfigReply(r.reply.bytes).sectorCount : -1;
            if (got === want) break;
            await sleep(100);
          }
          t.equal(got, want, `the target advertises ${want} sectors at MTU ${mtu}`);
        }

        const ping = await tool('aoeping', ['-s', '5', '-I', ...S, pair.initIf]);
        exitedZero(t, ping, 'aoeping -s 5 -I');
        t.match(ping.stdout, `serial_number: ${`${SHELF}.${SLOT}:${hostname()}`.slice(0, 20)}`, 'serial');
        t.match(ping.stdout, `firmware_rev: ${PRODUCT_FIRMWARE}`, 'firmware revision');
        t.match(ping.stdout, `model: ${PRODUCT_MODEL}`, 'model');

        const cfg = async (args: string[]) => {
          const r = await tool('aoecfg', [...args, '-t', '1', ...S, pair.initIf]);
          exitedZero(t, r, `aoecfg ${args.join(' ')}`);
          return r.stdout.trim();
        };
        const first = `first string at ${mtu}`;
        const second = `aoe-target at MTU ${mtu}`;
        if (mtu === 1500) t.equal(await cfg(['-c', 'read']), '', 'read: empty at start');
        t.equal(await cfg(['-c', 'fset', '-s', first]), first, 'fset stores a string');
        t.equal(await cfg(['-c', 'read']), first, 'read returns it');
        t.equal(
          await cfg(['-c', 'set', '-s', second]),
          '*badcfg*',
          'set while a different string is present: *badcfg* (error 4)',
        );
        t.equal(await cfg(['-c', 'fset', '-s', '']), '', 'fset of the empty string clears it');
        t.equal(await cfg(['-c', 'set', '-s', second]), second, 'set on an empty string stores it');
        t.equal(await cfg(['-c', 'set', '-s', second]), second, 'set of the identical string succeeds');
        t.equal(await cfg(['-c', 'test', '-s', second]), second, 'test of the exact string: answered');
        t.equal(await cfg(['-c', 'test', '-s', 'aoe-target']), '', 'test of another string: no answer');
        t.equal(await cfg(['-c', 'prefix', '-s', 'aoe-target']), second, 'prefix: answered');
        t.equal(await cfg(['-c', 'prefix', '-s', 'nope']), '', 'prefix that does not match: no answer');
        const all = await tool('aoecfg', ['-t', '1', pair.initIf]);
        exitedZero(t, all, 'broadcast aoecfg');
        t.equal(all.stdout.trim(), `${SHELF}.${SLOT}\t${second}`, 'broadcast read lists e5.9 with its string');

        const san = await tool('aoe-sancheck', []);
        exitedZero(t, san, 'aoe-sancheck');
        const payload = Math.floor((mtu - 36) / 512) * 512;
        t.match(san.stdout, new RegExp(`^${pair.initIf}\\s+UP\\s+${mtu}\\b`, 'm'), `interface summary shows MTU ${mtu}`);
        t.match(
          san.stdout,
          new RegExp(`^e${SHELF}\\.${SLOT}\\s+1\\s+${payload}\\s+${pair.initIf}$`, 'm'),
          `device summary: e${SHELF}.${SLOT}, 1 MAC, payload ${payload}`,
        );
        t.ok(target.proc.running, 'the target is still running');
      });
    }
    t.comment(`aoetools test took ${since(t0)}`);
  });
}
