// Durability as an initiator sees it: with -s (sync) a write is answered only
// once an fdatasync covering it has completed, and one fdatasync covers many
// writes (group commit); a FLUSH is answered after an fdatasync.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { replyCommand, replyTag } from '../../src/client/replies';
import { Command } from '../../src/client/wire';
import type { TimelineEvent } from '../helpers/fake-addon';
import { patternFile } from '../helpers/files';
import { exportOf, settle, startInProcess } from '../helpers/in-process';

const SECTORS = 256;
const N = 32;

/** Index in the timeline of the frame sent as the reply to `tag`. */
function sentAt(timeline: TimelineEvent[], tag: number): number {
  return timeline.findIndex((e) => e.type === 'sent' && replyCommand(e.frame, 0) === Command.Ata && replyTag(e.frame, 0) === tag);
}

t.test(`sync export: ${N} writes in one batch are answered after one fdatasync covering them`, async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file, { sync: true })]);
  const data = Array.from({ length: N }, () => randomBytes(512));
  const tags = data.map((d, i) => initiator.write(i * 3, d)); // one turn of the event loop: one batch
  for (const tag of tags) {
    const r = await initiator.ataReply(tag);
    t.notOk(r.ata.failed, `write 0x${tag.toString(16)} succeeded`);
  }
  const firstDone = net.timeline.findIndex((e) => e.type === 'datasync-done');
  t.ok(firstDone >= 0, 'an fdatasync completed');
  const replyIdx = tags.map((tag) => sentAt(net.timeline, tag));
  t.ok(
    replyIdx.every((i) => i > firstDone),
    'no write was answered before an fdatasync completed',
  );
  const c = server.stats().exports[0].counters;
  t.equal(c.writes, N);
  t.ok(c.syncs >= 1 && c.syncs < N, `${c.syncs} fdatasync calls for ${N} writes`);
  t.equal(net.timeline.filter((e) => e.type === 'datasync-start').length, c.syncs, 'the counter counts the fdatasync calls made');
  t.equal(net.sockets[0].heldSlots, 0, 'every receive slot a write read from was given back');
  const disk = readFileSync(file);
  t.ok(
    data.every((d, i) => disk.subarray(i * 3 * 512, (i * 3 + 1) * 512).equals(d)),
    'every write is in the file',
  );
});

t.test('sync export: a write waits while its fdatasync has not completed', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file, { sync: true })]);
  net.holdIo(true);
  const tags = [initiator.write(1, randomBytes(512)), initiator.write(2, randomBytes(512))];
  await settle();
  t.equal(server.stats().exports[0].inflight, 2, 'both writes in flight');
  t.equal(tags.filter((tag) => initiator.unclaimed(tag) > 0).length, 0, 'no reply yet');
  net.holdIo(false);
  for (const tag of tags) t.notOk((await initiator.ataReply(tag)).ata.failed);
  t.equal(server.stats().exports[0].inflight, 0);
});

t.test('without sync, writes are answered with no fdatasync at all', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)]);
  const tags = Array.from({ length: 8 }, (_, i) => initiator.write(i, randomBytes(512)));
  for (const tag of tags) t.notOk((await initiator.ataReply(tag)).ata.failed);
  t.equal(server.stats().exports[0].counters.syncs, 0);
  t.equal(net.timeline.filter((e) => e.type === 'datasync-start').length, 0);
});

t.test('a FLUSH is answered after an fdatasync', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)]);
  t.notOk((await initiator.ataReply(initiator.write(4, randomBytes(1024)))).ata.failed);
  const flush = initiator.flush();
  const r = await initiator.ataReply(flush);
  t.notOk(r.ata.failed, 'FLUSH CACHE EXT succeeded');
  t.equal(r.length, 60);
  const done = net.timeline.findIndex((e) => e.type === 'datasync-done');
  t.ok(done >= 0 && done < sentAt(net.timeline, flush), 'the fdatasync completed before the reply left');
  const c = server.stats().exports[0].counters;
  t.equal(c.syncs, 1);
  t.equal(c.flushes, 1);
});

t.test('FLUSH on a null store is answered without storage', async (t) => {
  const { initiator, server, net } = await startInProcess(t, [exportOf('', { nullStore: true, nullSectors: 100 })]);
  t.notOk((await initiator.ataReply(initiator.flush())).ata.failed);
  t.equal(server.stats().exports[0].counters.flushes, 1);
  t.equal(net.timeline.filter((e) => e.type === 'datasync-start').length, 0);
});
