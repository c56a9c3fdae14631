// view-reset and view-drop check the activity of the machines they change,
// each its own (as revert does), on a real XFS with reflinks: a machine that
// used its view within the quiet time is refused by name and nothing is
// changed, another busy machine of the lab does not matter, --force
// overrides; after a reset LAST SEEN never shows a time before CREATED.

import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { TestLike } from '../../lab/common';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, IFACE, Initiator, keptLog, startInProcess, startOneExport } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';
import type { ExportConfig } from '../../src/config/export-config';

const MAC_A = '02:00:00:00:0a:0a';
const MAC_B = '02:00:00:00:0b:0b';

async function lab(t: TestLike): Promise<ExportConfig> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, 2048, { dir: mnt, name: 'golden.img' });
  return exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views') });
}

async function write(i: Initiator, lba: number, fill: number): Promise<void> {
  const r = await withRetransmits(i, () => i.write(lba, Buffer.alloc(512, fill)));
  if (r.ata.failed) throw new Error(`write of ${lba} failed`);
}

async function read(i: Initiator, lba: number): Promise<Buffer> {
  const r = await withRetransmits(i, () => i.read(lba, 1));
  return Buffer.from(r.ata.data.subarray(0, 512));
}

/** Moves a machine's saved last use `minutes` into the past (the daemon is stopped). */
function lastSeenAgo(config: ExportConfig, name: string, minutes: number): void {
  const meta = join(config.viewsDir!, 'e1.2', 'views.json');
  const saved = JSON.parse(fs.readFileSync(meta, 'utf8')) as { views: Record<string, { lastSeen: number }> };
  saved.views[name].lastSeen = Date.now() - minutes * 60_000;
  fs.writeFileSync(meta, JSON.stringify(saved));
}

t.test("view-reset and view-drop check each machine's own last use; --force overrides", async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const config = await lab(t);
  let target = await startInProcess(t, [config]);
  let a = new Initiator(target.net, IFACE, MAC_A);
  let b = new Initiator(target.net, IFACE, MAC_B);
  await write(a, 7, 0xaa);
  await write(b, 7, 0xbb);
  await t.rejects(
    target.server.resetViews('e1.2', MAC_A),
    /^the view of 02:00:00:00:0a:0a served an initiator \d+ s ago; nothing was reset\. .*Shut that machine down \(or unmount\) and try again in (4 min \d+ s|5 min), or give --force$/,
    'A just wrote: its reset is refused',
  );
  await t.rejects(
    target.server.dropViews('e1.2', [MAC_B]),
    /^the view of 02:00:00:00:0b:0b served an initiator \d+ s ago; nothing was dropped\./,
    'B just wrote: its drop is refused',
  );
  await t.rejects(
    target.server.resetViews('e1.2', 'all'),
    /^the views of 02:00:00:00:0a:0a, 02:00:00:00:0b:0b served an initiator/,
    '--all names every busy machine',
  );
  t.same(await read(a, 7), Buffer.alloc(512, 0xaa), 'A still reads its write');
  t.same(await read(b, 7), Buffer.alloc(512, 0xbb), 'B still reads its write');

  // A new run: A was powered off ten minutes ago (views.json), B is busy.
  await target.server.stop();
  lastSeenAgo(config, '020000000a0a', 10);
  target = await startInProcess(t, [config]);
  b = new Initiator(target.net, IFACE, MAC_B);
  await write(b, 8, 0xb8);
  await t.rejects(target.server.resetViews('e1.2', [MAC_A, MAC_B]), /^the view of 02:00:00:00:0b:0b served/, 'B is named');
  t.same(await target.server.resetViews('e1.2', MAC_A), [MAC_A], "A's reset needs no --force while B is busy");
  const after = target.server.listViews('e1.2').find((v) => v.mac === MAC_A)!;
  t.equal(after.lastSeen, null, 'LAST SEEN after a reset: none yet, not a time before CREATED');
  a = new Initiator(target.net, IFACE, MAC_A);
  t.same(await read(a, 7), patternSectors(7), "A's view is the image again");
  const used = target.server.listViews('e1.2').find((v) => v.mac === MAC_A)!;
  t.ok(
    used.lastSeen !== null && used.lastSeen >= used.created,
    `once A reads, LAST SEEN ${used.lastSeen} >= CREATED ${used.created}`,
  );
  await t.rejects(target.server.dropViews('e1.2', [MAC_A]), /the view of 02:00:00:00:0a:0a served/, 'A is busy again');
  t.same(await target.server.dropViews('e1.2', [MAC_B], true), [MAC_B], 'B dropped with --force');
  t.same(await read(b, 7), patternSectors(7), 'B gets a fresh view');
  await target.server.stop();
  const relisted = JSON.parse(fs.readFileSync(join(config.viewsDir!, 'e1.2', 'views.json'), 'utf8')) as {
    views: Record<string, { created: number; lastSeen: number }>;
  };
  t.ok(relisted.views['020000000a0a'].lastSeen >= relisted.views['020000000a0a'].created, 'views.json agrees');
});

t.test('views log lines name a machine one way (mac: aa:bb:cc:dd:ee:ff) and files in a field of their own', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const config = await lab(t);
  const { log, lines } = keptLog();
  const { server, net } = await startOneExport(t, config, log);
  await write(new Initiator(net, IFACE, MAC_A), 7, 0xaa);
  await write(new Initiator(net, IFACE, MAC_B), 7, 0xbb);
  await server.snapshot('e1.2', 'monday', MAC_A);
  await server.revert('e1.2', 'monday', true);
  await server.resetViews('e1.2', MAC_A, true);
  await server.dropViews('e1.2', [MAC_B], true);
  const named = lines.filter((l) => 'mac' in l || 'macs' in l);
  t.ok(named.length >= 5, `${named.length} lines name machines: ${named.map((l) => l.msg).join(' | ')}`);
  for (const l of named) {
    const macs = (l.macs as string[] | undefined) ?? [l.mac as string];
    for (const m of macs) t.match(m, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, `${l.msg}: ${m}`);
  }
  t.notOk(
    lines.some((l) => 'view' in l || 'image' in l),
    'no line uses "view" or "image" for a MAC or a file name',
  );
  t.match(
    lines.find((l) => l.msg === 'view created'),
    { mac: MAC_A },
  );
  t.match(
    lines.find((l) => l.msg === 'snapshot taken'),
    { mac: MAC_A, file: /monday\.img$/ },
  );
});
