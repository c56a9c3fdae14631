// Who may make a view, and how many: on a real XFS with reflinks (a loop
// device), an attacker on the segment forges IDENTIFY frames from thousands
// of source MACs. With a MAC mask no view is made for them; without one, no
// more than max-views, and never more than the process's bound over all
// exports; below the free-space floor none at all. The machine that has a
// view keeps reading and writing it throughout, the refusals are counted in
// stats and metrics and logged a bounded number of times, and a restart
// afterwards (even with the views file system full) serves every export.

import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { ExportConfig } from '../../src/config/export-config';
import { Server, type ServerOptions } from '../../src/target/server';
import { renderMetrics } from '../../src/service/metrics';
import type { TestLike } from '../../lab/common';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile, patternSectors, tempDir } from '../helpers/files';
import { exportOf, IFACE, Initiator, settle, until } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 2048; // 1 MiB
const MAC_A = '02:00:00:00:0a:0a';
const FLOOD = 2000;

function sector(fill: number): Buffer {
  return Buffer.alloc(512, fill);
}

/** A forged source MAC: locally administered unicast, one per number. */
function forged(i: number): string {
  return `02:5e:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
}

interface Running {
  server: Server;
  net: FakeNetwork;
  /** Every log record the server wrote, parsed. */
  log: { level: number; msg: string; count?: number; reason?: string }[];
}

/** Starts a Server on a fake network (fake0) whose log the test reads. */
async function start(t: TestLike, exports: ExportConfig[], options: ServerOptions = {}): Promise<Running> {
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const log: Running['log'] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void log.push(JSON.parse(line) as Running['log'][number]) });
  const server = await Server.start(
    { exports },
    logger,
    {},
    { linkCheckMs: 60_000, duplicateProbeMs: 0, ...options, addon: net.addon },
  );
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await server.stop();
  });
  const stop = server.stop.bind(server);
  server.stop = async () => {
    stopped = true;
    await stop();
  };
  net.interfaceNamed(IFACE)!.takeSent();
  return { server, net, log };
}

/** An XFS with reflinks holding a pattern image, and the views export of it (e1.2). */
async function lab(t: TestLike, over: Partial<ExportConfig> = {}): Promise<{ mnt: string; config: ExportConfig }> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  return { mnt, config: exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views'), ...over }) };
}

async function write(i: Initiator, lba: number, data: Uint8Array, slot = 2): Promise<boolean> {
  return !(await withRetransmits(i, () => i.write(lba, data, 1, slot))).ata.failed;
}

async function read(i: Initiator, lba: number, slot = 2): Promise<Buffer | undefined> {
  const r = await withRetransmits(i, () => i.read(lba, 1, 1, slot));
  return r.ata.failed ? undefined : Buffer.from(r.ata.data.subarray(0, 512));
}

function viewFiles(mnt: string, key = 'e1.2'): string[] {
  return fs.readdirSync(join(mnt, 'views', key)).filter((f) => f.endsWith('.img'));
}

/**
 * IDENTIFY from FLOOD forged MACs, 100 at a time (what a receive ring holds);
 * between batches the legitimate machine writes a sector of its view and
 * reads it back. Returns how many of its round trips failed.
 */
async function flood(t: TestLike, net: FakeNetwork, a: Initiator, n = FLOOD): Promise<number> {
  let failed = 0;
  for (let i = 0; i < n; i += 100) {
    for (let k = i; k < Math.min(n, i + 100); k++) new Initiator(net, IFACE, forged(k)).identify();
    await settle(5);
    const lba = 100 + i / 100;
    if (!(await write(a, lba, sector(lba & 0xff)))) failed++;
    else if (!sector(lba & 0xff).equals((await read(a, lba)) ?? Buffer.alloc(0))) failed++;
  }
  t.pass(`${n} forged IDENTIFY frames sent`);
  return failed;
}

const refusalLines = (r: Running): Running['log'] => r.log.filter((l) => /refused/.test(l.msg));

t.test(
  `${FLOOD} forged source MACs without a mask: at most max-views views, refusals counted and logged in summaries`,
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { mnt, config } = await lab(t);
    const plain = exportOf(await patternFile(t, SECTORS, { dir: tempDir(t, 'plain') }), { slot: 3 });
    const r = await start(t, [config, plain], { viewRefusalLogMs: 400 });
    const a = new Initiator(r.net, IFACE, MAC_A);
    t.ok(await write(a, 1, sector(0xaa)), 'the lab machine has its view');
    const started = performance.now();
    t.equal(await flood(t, r.net, a), 0, 'the lab machine read back every write it made during the flood');
    await until(() => r.server.listViews('e1.2').length === 256, '256 views', 5000).catch(() => {});
    await settle(200);
    const s = r.server.stats().exports.find((e) => e.key === 'e1.2')!;
    t.equal(s.views?.maxViews, 256, 'the default max-views');
    t.equal(
      viewFiles(mnt).length,
      256,
      `256 view files, the default max-views (flood took ${(performance.now() - started).toFixed(0)} ms)`,
    );
    t.equal(s.views?.refused['max-views'], FLOOD - 255, 'every other forged MAC was refused for max-views');
    t.match(s.views?.lastError, /view limit 256 of this export reached \(max-views\)/);
    const metrics = renderMetrics(r.server.stats());
    t.match(
      metrics,
      `vblade_export_view_refusals_total{export="e1.2",reason="max-views"} ${FLOOD - 255}`,
      'in metrics, by reason',
    );
    t.match(metrics, 'vblade_export_views_max{export="e1.2"} 256');
    await settle(500); // the last summary
    const lines = refusalLines(r);
    t.ok(lines.length >= 1 && lines.length <= 12, `${lines.length} log lines for ${FLOOD - 255} refusals`);
    t.equal(
      lines.reduce((n, l) => n + (l.count ?? 0), 0),
      FLOOD - 255,
      'the lines add up to every refusal',
    );
    t.match(lines[lines.length - 1].msg, /refused \d+ requests of new machines for a view in the last 0\.4 s: view limit 256/);
    const a2 = new Initiator(r.net, IFACE, MAC_A);
    t.same(await read(a2, 1), sector(0xaa), 'the lab machine still reads its first write');

    await r.server.stop();
    const again = await start(t, [config, plain]);
    const b = new Initiator(again.net, IFACE, MAC_A);
    t.same(await read(b, 1), sector(0xaa), 'after a restart the lab machine reads its view');
    t.same(await read(b, 0, 3), patternSectors(0), 'and the other export serves');
    t.equal(again.server.listViews('e1.2').length, 256, 'the views were kept, none added');
  },
);

t.test(`${FLOOD} forged source MACs with a MAC mask: no view for any of them`, async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t, { macMask: [MAC_A] });
  const r = await start(t, [config]);
  const a = new Initiator(r.net, IFACE, MAC_A);
  t.ok(await write(a, 1, sector(0xaa)), 'the lab machine has its view');
  t.equal(await flood(t, r.net, a), 0, 'the lab machine read back every write it made during the flood');
  await settle(200);
  t.same(viewFiles(mnt), ['020000000a0a.img'], 'only the lab machine has a view');
  const s = r.server.stats().exports[0];
  t.equal(s.views?.failures, 0, 'nothing was even refused: the mask answered first');
  t.ok(s.counters.mask_drops >= FLOOD, `${s.counters.mask_drops} requests dropped by the mask`);
  t.same(refusalLines(r), [], 'and nothing logged for them');
});

t.test('the bound on open views is shared by every export of the process', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const other = { ...config, slot: 3, file: await patternFile(t, SECTORS, { dir: mnt, name: 'golden-3.img' }) };
  const r = await start(t, [config, other], { maxViews: 5 });
  let made = 0;
  for (let i = 0; i < 8; i++) {
    const ini = new Initiator(r.net, IFACE, forged(i));
    if (await write(ini, 1, sector(i), 2 + (i % 2))) made++;
  }
  t.equal(made, 5, 'five machines of eight got a view, over both exports');
  t.equal(viewFiles(mnt, 'e1.2').length + viewFiles(mnt, 'e1.3').length, 5, 'five view files');
  const refused = r.server.stats().exports.map((e) => e.views?.refused['open-files'] ?? 0);
  t.ok(refused[0] + refused[1] >= 3, `refused for open-files: ${refused.join(' + ')}`);
});

/** Fills the file system at `mnt` until less than `percent` of it is free (0: to the last block). */
function fill(mnt: string, percent: number): string {
  const filler = join(mnt, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  const free = (): number => {
    fs.fsyncSync(fd); // XFS counts delayed allocations high until they are written
    const s = fs.statfsSync(mnt);
    return (100 * s.bavail) / s.blocks;
  };
  try {
    while (percent === 0 || free() >= percent)
      for (let i = 0; i < 8; i++) fs.writeSync(fd, chunk, 0, percent > 0 ? chunk.length : 4096);
  } catch {
    // full
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  return filler;
}

t.test('below views-min-free no new view is made; the views that exist keep writing', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t, { viewsMinFree: 10 });
  const r = await start(t, [config]);
  const a = new Initiator(r.net, IFACE, MAC_A);
  t.ok(await write(a, 1, sector(0xaa)), 'the lab machine has its view');
  const filler = fill(mnt, 8);
  const sf = fs.statfsSync(mnt);
  t.comment(`${((100 * sf.bavail) / sf.blocks).toFixed(1)} % free`);
  await settle(1100); // the free space is looked at once a second
  const b = new Initiator(r.net, IFACE, forged(1));
  t.ok((await b.ataReply(b.identify())).ata.failed === false, 'IDENTIFY is answered');
  const w = await withRetransmits(b, () => b.write(1, sector(0xbb)));
  t.ok(w.ata.failed, 'a new machine gets an error reply to its write');
  t.same(viewFiles(mnt), ['020000000a0a.img'], 'and no view');
  for (let lba = 10; lba < 20; lba++) t.ok(await write(a, lba, sector(lba)), `the lab machine writes sector ${lba}`);
  t.same(await read(a, 15), sector(15), 'and reads it back');
  const s = r.server.stats().exports[0];
  t.ok((s.views?.refused['min-free'] ?? 0) >= 1, 'refused for min-free');
  t.match(s.views?.lastError, /below views-min-free 10 %/);
  fs.rmSync(filler);
  await settle(1100);
  t.ok(await write(b, 1, sector(0xbb)), 'with space again the new machine gets its view');
});

t.test('a restart with the views file system full serves every export; stale clones are removed', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const plain = exportOf(await patternFile(t, SECTORS, { dir: tempDir(t, 'plain') }), { slot: 3 });
  // A views export that has no view yet: nothing shows that its file system clones, and a trial clone needs space.
  const fresh = { ...config, slot: 4, file: await patternFile(t, SECTORS, { dir: mnt, name: 'golden-4.img' }) };
  const r = await start(t, [config, plain, fresh]);
  const a = new Initiator(r.net, IFACE, MAC_A);
  t.ok(await write(a, 1, sector(0xaa)), 'the lab machine has its view');
  await r.server.stop();
  const dir = join(mnt, 'views', 'e1.2');
  const stale = join(dir, '.025e00000001.img.4242.tmp'); // a clone a crash left before its rename
  const notOurs = join(dir, 'notes.tmp');
  fs.writeFileSync(stale, 'x');
  fs.writeFileSync(notOurs, 'x');
  fill(mnt, 0);
  const again = await start(t, [config, plain, fresh]);
  const b = new Initiator(again.net, IFACE, MAC_A);
  t.same(await read(b, 1), sector(0xaa), 'the lab machine reads its view');
  t.same(await read(b, 0, 3), patternSectors(0), 'the other export serves');
  const w = await withRetransmits(b, () => b.write(1, sector(0xbb), 1, 4));
  t.ok(w.ata.failed, 'the views export without views serves, and refuses a new view while the file system is full');
  const s4 = again.server.stats().exports.find((e) => e.key === 'e1.4');
  t.equal(s4?.held, undefined, 'it is not held');
  t.ok((s4?.views?.failures ?? 0) >= 1, `refused: ${s4?.views?.lastError}`);
  t.notOk(fs.existsSync(stale), 'the stale clone was removed');
  t.ok(fs.existsSync(notOurs), 'a file of another name was left alone');
});

t.test('an export whose views cannot be opened is held alone; the others serve', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const plain = exportOf(await patternFile(t, SECTORS, { dir: tempDir(t, 'plain') }), { slot: 3 });
  fs.mkdirSync(join(mnt, 'views'), { mode: 0o700 });
  fill(mnt, 0); // its views directory e1.2 cannot be made now
  const r = await start(t, [config, plain]);
  const a = new Initiator(r.net, IFACE, MAC_A);
  t.same(await read(a, 0, 3), patternSectors(0), 'the other export serves');
  const held = r.server.stats().exports.find((e) => e.key === 'e1.2');
  t.match(held?.held, /cannot open the views in .*e1\.2: .*(ENOSPC|No space)/, 'the views export is held, with why');
  const tag = a.read(0, 1);
  await settle(200);
  t.equal(a.unclaimed(tag), 0, 'and answers nothing');
});
