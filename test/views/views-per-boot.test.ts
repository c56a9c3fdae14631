// views = per-boot on a real XFS with reflinks: a machine that wrote and then
// "reboots" (no request for per-boot-gap, then IDENTIFY) reads the image
// again; a machine that only pauses and goes on (no IDENTIFY), or sends
// IDENTIFY without the silence (a quick re-probe), keeps its data, and such a
// re-probe does not make the next real boot keep it. A view not written is
// not discarded. Each discard is logged and counted. A forged
// IDENTIFY with a busy machine's MAC discards nothing; views = per-initiator
// never discards.

import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { TestLike } from '../../lab/common';
import type { ExportConfig } from '../../src/config/export-config';
import { renderMetrics } from '../../src/service/metrics';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, IFACE, Initiator, keptLog, startOneExport, until } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const MAC_A = '02:00:00:00:0a:0a';
const GAP_S = 1;

async function lab(t: TestLike, over: Partial<ExportConfig> = {}): Promise<ExportConfig> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, 2048, { dir: mnt, name: 'golden.img' });
  return exportOf(image, { views: 'per-boot', perBootGap: GAP_S, viewsDir: join(mnt, 'views'), ...over });
}

async function start(t: TestLike, config: ExportConfig) {
  const { log, lines } = keptLog();
  const r = await startOneExport(t, config, log);
  const discards = () => lines.filter((l) => /was discarded \(views = per-boot\)/.test(l.msg));
  return { ...r, lines, discards };
}

async function write(i: Initiator, lba: number, fill: number): Promise<void> {
  if ((await withRetransmits(i, () => i.write(lba, Buffer.alloc(512, fill)))).ata.failed) throw new Error('write failed');
}

async function read(i: Initiator, lba: number): Promise<Buffer> {
  const r = await withRetransmits(i, () => i.read(lba, 1));
  return Buffer.from(r.ata.data.subarray(0, 512));
}

async function identify(i: Initiator): Promise<void> {
  if ((await withRetransmits(i, () => i.identify())).ata.failed) throw new Error('IDENTIFY failed');
}

const silence = (): Promise<void> => new Promise((r) => setTimeout(r, GAP_S * 1000 + 300));

t.test('a machine that wrote and boots again (silence, then IDENTIFY) reads the image; logged and counted', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const r = await start(t, await lab(t));
  const a = new Initiator(r.net, IFACE, MAC_A);
  await identify(a); // its first boot: the view is made
  await write(a, 7, 0xaa);
  t.same(await read(a, 7), Buffer.alloc(512, 0xaa), 'it reads its write');
  await silence(); // powered off, POST, firmware
  await identify(a);
  await until(() => r.discards().length === 1, 'the discard', 5000);
  t.same(await read(a, 7), patternSectors(7), 'after the new boot it reads the image');
  t.match(r.discards()[0], { mac: MAC_A, export: 'e1.2' }, `one log line: ${r.discards()[0].msg}`);
  t.match(r.discards()[0].msg, /sent IDENTIFY after \d+ s without a request, and its view was written: a new boot/);
  const stats = r.server.stats();
  t.equal(stats.exports[0].views?.bootDiscards, 1, 'stats count it');
  t.match(renderMetrics(stats), /vblade_export_view_boot_discards_total\{export="e1\.2"\} 1/, 'and so do the metrics');
  t.equal(r.server.listViews('e1.2').length, 1, 'still one view');
  await write(a, 8, 0xa8);
  t.same(await read(a, 8), Buffer.alloc(512, 0xa8), 'the new boot writes its fresh view');
});

t.test('a pause without IDENTIFY, or IDENTIFY without the silence, keeps the data; the next real boot does not', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const r = await start(t, await lab(t));
  const a = new Initiator(r.net, IFACE, MAC_A);
  await identify(a);
  await silence();
  await identify(a); // a view not written (a Linux driver rediscovering a closed, unused device): nothing to discard
  t.equal(r.discards().length, 0, 'an unwritten view is not discarded');
  await write(a, 7, 0xaa);
  await silence(); // an idle running machine: minutes without a request are normal
  t.same(await read(a, 7), Buffer.alloc(512, 0xaa), 'after a pause it goes on with its data');
  await identify(a); // at once: a re-probe, or a reboot quicker than per-boot-gap
  t.same(await read(a, 7), Buffer.alloc(512, 0xaa), 'IDENTIFY without the silence keeps the data');
  t.equal(r.discards().length, 0, 'nothing was discarded');
  await silence();
  await identify(a); // a real boot after that re-probe, no write in between
  await until(() => r.discards().length === 1, 'the discard', 5000);
  t.same(await read(a, 7), patternSectors(7), 'the next boot still starts from the image (the re-probe did not count)');
});

t.test('a forged IDENTIFY with the MAC of a machine busy with I/O discards nothing', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const r = await start(t, await lab(t));
  const a = new Initiator(r.net, IFACE, MAC_A);
  await identify(a);
  await write(a, 7, 0xaa);
  const forger = new Initiator(r.net, IFACE, MAC_A); // same source MAC, another station
  const end = Date.now() + GAP_S * 1000 * 2.5;
  let n = 0;
  while (Date.now() < end) {
    await write(a, 100 + (n % 50), n & 0xff); // A is busy: a request every 100 ms
    if (n % 3 === 0) await identify(forger);
    n++;
    await new Promise((res) => setTimeout(res, 100));
  }
  t.same(await read(a, 7), Buffer.alloc(512, 0xaa), "A's data is intact");
  t.equal(r.discards().length, 0, `no discard after ${Math.ceil(n / 3)} forged IDENTIFY`);
});

t.test(
  'views = per-initiator never discards; a view of an earlier run is discarded at its first boot after a restart',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const keep = await lab(t, { views: 'per-initiator', perBootGap: undefined });
    let r = await start(t, keep);
    let a = new Initiator(r.net, IFACE, MAC_A);
    await identify(a);
    await write(a, 7, 0xaa);
    await silence();
    await identify(a);
    t.same(await read(a, 7), Buffer.alloc(512, 0xaa), 'per-initiator: the write stays across a "reboot"');
    await r.server.stop();

    const perBoot = { ...keep, views: 'per-boot' as const, perBootGap: GAP_S };
    r = await start(t, perBoot);
    a = new Initiator(r.net, IFACE, MAC_A);
    await silence();
    await identify(a);
    await until(() => r.discards().length === 1, 'the discard', 5000);
    t.same(await read(a, 7), patternSectors(7), 'the machine booting after the restart reads the image');
    t.ok(fs.existsSync(join(keep.viewsDir!, 'e1.2', '020000000a0a.img')), 'its view file is a fresh clone under the same name');
  },
);

t.test('a forged IDENTIFY while the machine has a request in flight (a stalled disk) discards nothing', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const r = await start(t, await lab(t));
  const a = new Initiator(r.net, IFACE, MAC_A);
  await identify(a);
  await write(a, 7, 0xaa);
  r.net.holdIo(true); // the disk stalls: A's next write stays in flight (sent once: a slow initiator's retransmit timer)
  const pending = a.ataReply(a.write(8, Buffer.alloc(512, 0xbb)), 10_000);
  await silence(); // longer than per-boot-gap since that request came
  await identify(new Initiator(r.net, IFACE, MAC_A)); // forged, with A's MAC
  r.net.holdIo(false);
  t.notOk((await pending).ata.failed, 'the write in flight completes');
  t.same(await read(a, 8), Buffer.alloc(512, 0xbb), 'the write that was in flight is there');
  t.same(await read(a, 7), Buffer.alloc(512, 0xaa), "A's earlier data is intact");
  t.equal(r.discards().length, 0, 'no discard');
});
