// One forged broadcast frame must not lock everyone out:
// a host on the segment sends a Mac Mask edit, a Reserve force set and a
// Query Config force set to ffff.ff; with the default every export refuses them (AoE error 2) and the
// legitimate initiator is still served by every export. With broadcast-edits
// = yes the same frames take, and lock it out, which is why that is not the
// default. The serving core in process, on the fake addon.

import t from 'tap';
import { formatMac } from '../../src/client/mac';
import type { Target } from '../helpers/in-process';
import { exportOf, IFACE, Initiator, settle, startInProcess } from '../helpers/in-process';

const FORGER = '02:66:66:66:66:66';
const BROADCAST_SHELF = 0xffff;
const BROADCAST_SLOT = 0xff;

function twoExports(broadcastEdits: boolean): ReturnType<typeof exportOf>[] {
  return [1, 2].map((slot) => exportOf('', { slot, nullStore: true, nullSectors: 64, broadcastEdits }));
}

/** Reads sector 0 of e1.1 and e1.2 as the legitimate initiator; the slots that answered without an error. */
async function servedSlots(target: Target): Promise<number[]> {
  const served: number[] = [];
  for (const slot of [1, 2]) {
    const tag = target.initiator.read(0, 1, 1, slot);
    try {
      const r = await target.initiator.ataReply(tag, 300);
      if (!r.header.error && !r.ata.failed) served.push(slot);
    } catch {
      // no reply: locked out
    }
  }
  return served;
}

/** The error codes of the replies to `tag` from both exports (0: no error). */
async function answers(x: Initiator, tag: number): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await x.reply(tag);
    codes.push(r.header.error ? r.header.errorCode : 0);
  }
  return codes;
}

t.test('default: a broadcast mask edit, reserve force set and config force set from another host are refused', async (t) => {
  const target = await startInProcess(t, twoExports(false));
  const x = new Initiator(target.net, IFACE, FORGER);
  t.same(await servedSlots(target), [1, 2], 'before: the initiator is served by e1.1 and e1.2');

  t.same(
    await answers(x, x.maskAddBroadcast([FORGER], BROADCAST_SHELF, BROADCAST_SLOT)),
    [2, 2],
    'mask edit: error 2 from each export',
  );
  t.same(
    await answers(x, x.reserveForce([FORGER], BROADCAST_SHELF, BROADCAST_SLOT)),
    [2, 2],
    'reserve force set: error 2 from each export',
  );
  t.same(
    await answers(x, x.forceSetConfigString('EVIL-BCAST', BROADCAST_SHELF, BROADCAST_SLOT)),
    [2, 2],
    'config force set: error 2 from each export',
  );
  t.same(
    await answers(x, x.setConfigString('EVIL-BCAST', BROADCAST_SHELF, BROADCAST_SLOT)),
    [2, 2],
    'config set (while no string is set): error 2 from each export',
  );

  t.same(await servedSlots(target), [1, 2], 'after: the initiator is still served by every export');
  for (const e of target.server.stats().exports) {
    t.same([e.macMask, e.reserve, e.config], [[], [], ''], `${e.key}: mask, reserve list and config string still empty`);
  }
  t.same(
    target.server.exports.map((e) => e.state.version),
    [0, 0],
    'no state change, so nothing to save',
  );
});

t.test('an edit naming one export exactly still takes, on that export only', async (t) => {
  const target = await startInProcess(t, twoExports(false));
  const x = new Initiator(target.net, IFACE, FORGER);
  const r = await x.reply(x.maskAddBroadcast([FORGER], 1, 2));
  t.notOk(r.header.error, 'the edit to e1.2 is applied');
  await settle();
  t.equal(x.unclaimed(r.header.tag), 0, 'e1.1 did not answer it');
  t.same(await servedSlots(target), [1], 'the initiator keeps e1.1; e1.2 now admits only the editor');
});

t.test('broadcast-edits = yes: the same frame takes on every export', async (t) => {
  const target = await startInProcess(t, twoExports(true));
  const x = new Initiator(target.net, IFACE, FORGER);
  t.same(await answers(x, x.maskAddBroadcast([FORGER], BROADCAST_SHELF, BROADCAST_SLOT)), [0, 0], 'applied by both');
  t.same(
    await answers(x, x.forceSetConfigString('OURS', BROADCAST_SHELF, BROADCAST_SLOT)),
    [0, 0],
    'config force set applied by both',
  );
  for (const e of target.server.stats().exports) {
    t.same([e.macMask, e.config], [[FORGER], 'OURS'], `${e.key}: mask is the forger alone, the string is set`);
  }
  t.same(await servedSlots(target), [], `the initiator ${formatMac(target.initiator.mac)} is locked out of both`);
});
