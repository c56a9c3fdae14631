// Periodic announcements ([daemon] announce-interval): an initiator whose
// driver came up before the target, or lost the start-up announcement, hears
// an unsolicited Query Config reply for every export within the interval,
// broadcast or to each MAC mask member; none while the link is down, none
// when the interval is 0.
import t from 'tap';
import { patternFile } from '../helpers/files';
import { exportOf, IFACE, Initiator, settle, startInProcess, until } from '../helpers/in-process';

const SECTORS = 64;

t.test('every export is announced again each interval, broadcast', async (t) => {
  const a = await patternFile(t, SECTORS);
  const b = await patternFile(t, SECTORS);
  const { initiator } = await startInProcess(t, [exportOf(a), exportOf(b, { slot: 3 })], { announceSeconds: 0.05 });
  const started = Date.now();
  await until(() => initiator.unclaimed(0) >= 6, 'three rounds of announcements of two exports', 2000);
  t.comment(`6 announcements within ${Date.now() - started} ms`);
  const seen: string[] = [];
  for (let i = 0; i < 6; i++) {
    const { header } = await initiator.configReply(0);
    t.equal(header.dst, 'ff:ff:ff:ff:ff:ff', 'broadcast');
    seen.push(`${header.shelf}.${header.slot}`);
  }
  t.same([...new Set(seen)].sort(), ['1.2', '1.3'], 'both exports announced');
});

t.test('with a MAC mask the announcements go to each mask member, never broadcast', async (t) => {
  const file = await patternFile(t, SECTORS);
  const mask = ['02:00:00:00:0b:01', '02:00:00:00:0b:02'];
  const { net, initiator } = await startInProcess(t, [exportOf(file, { macMask: mask })], { announceSeconds: 0.05 });
  const members = mask.map((mac) => new Initiator(net, IFACE, mac));
  await until(() => members.every((m) => m.unclaimed(0) >= 2), 'two rounds of announcements to each mask member', 2000);
  for (const [i, m] of members.entries()) {
    t.equal((await m.configReply(0)).header.dst, mask[i], `announced to ${mask[i]}`);
  }
  t.equal(initiator.unclaimed(0), 0, 'nothing broadcast, nothing to a host outside the mask');
});

t.test('no periodic announcement while the link is down; announce-interval 0 sends none', async (t) => {
  const file = await patternFile(t, SECTORS);
  const down = await startInProcess(t, [exportOf(file)], { announceSeconds: 0.02, linkCheckMs: 5 });
  down.iface.up = false;
  await until(() => !down.server.stats().interfaces[0].up, 'the link seen down');
  down.initiator.unclaimed(0);
  await settle(20);
  const before = down.initiator.unclaimed(0);
  await settle(150);
  t.equal(down.initiator.unclaimed(0), before, 'nothing announced on a link that is down');

  const off = await startInProcess(t, [exportOf(file, { slot: 4 })], { announceSeconds: 0 });
  await settle(150);
  t.equal(off.initiator.unclaimed(0), 0, 'announce-interval 0: only the start-up announcement (taken off the wire)');
});
