// Damaged metadata of views and snapshots, on a real XFS with reflinks:
// views.json and snapshots/NAME.json are the daemon's own files, but a disk
// error, a crash of an editor or a restore from a backup can leave anything
// in them. Whatever they hold, the export serves, its views are found, and
// `vblade ctl views` and `vblade ctl snapshots` list what there is; a
// damaged name in the views directory or a damaged snapshots/ costs that
// name or that export, never the other machines or the other exports.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import type { TestLike } from '../../lab/common';
import type { ExportConfig } from '../../src/config/export-config';
import { Server } from '../../src/target/server';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile, patternSectors, tempDir } from '../helpers/files';
import { exportOf, IFACE, Initiator, startOneExport as start } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 2048; // 1 MiB
const KEY = 'e1.2';
const MAC_A = '02:00:00:00:0a:01';

async function lab(t: TestLike): Promise<{ config: ExportConfig; dir: string }> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  const config = exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views') });
  return { config, dir: join(mnt, 'views', KEY) };
}

async function write(i: Initiator, lba: number, fill: number): Promise<boolean> {
  return !(await withRetransmits(i, () => i.write(lba, Buffer.alloc(512, fill)))).ata.failed;
}

async function read(i: Initiator, lba: number): Promise<Buffer | undefined> {
  const r = await withRetransmits(i, () => i.read(lba, 1, 1, 2));
  return r.ata.failed ? undefined : Buffer.from(r.ata.data.subarray(0, 512));
}

function listing(server: Server): string {
  try {
    return JSON.stringify(server.listViews(KEY).map((v) => v.mac));
  } catch (e) {
    return `ctl views failed: ${(e as Error).message}`;
  }
}

t.test('views.json of garbage, too large, a FIFO or a link: the views are still found and served', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, dir } = await lab(t);
  let r = await start(t, config);
  t.ok(await write(new Initiator(r.net, IFACE, MAC_A), 5, 0xa1), 'a machine writes its view');
  await r.server.stop();
  const meta = join(dir, 'views.json');
  const damage: [string, () => void][] = [
    ['garbage', () => fs.writeFileSync(meta, '\0\x01{"views":')],
    ['null', () => fs.writeFileSync(meta, 'null')],
    ['a view of null', () => fs.writeFileSync(meta, '{"views":{"020000000a01":null}}')],
    ['larger than 64 MiB', () => fs.writeFileSync(meta, Buffer.alloc((64 << 20) + 10, 0x20))],
    ['a FIFO', () => execFileSync('mkfifo', [meta])],
    ['a link to /dev/zero', () => fs.symlinkSync('/dev/zero', meta)],
  ];
  for (const [what, plant] of damage) {
    fs.rmSync(meta, { force: true });
    plant();
    const t0 = Date.now();
    r = await start(t, config);
    t.ok(Date.now() - t0 < 5000, `${what}: the export starts`);
    t.same(await read(new Initiator(r.net, IFACE, MAC_A), 5), Buffer.alloc(512, 0xa1), `${what}: the view serves its write`);
    t.equal(listing(r.server), JSON.stringify([MAC_A]), `${what}: ctl views lists it`);
    await r.server.stop();
    t.ok(fs.lstatSync(meta).isFile(), `${what}: views.json is a regular file again after the stop`);
  }
});

t.test('views.json dates out of range do not break ctl views', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, dir } = await lab(t);
  let r = await start(t, config);
  t.ok(await write(new Initiator(r.net, IFACE, MAC_A), 5, 0xa1), 'a machine writes its view');
  await r.server.stop();
  // Valid JSON, numbers where numbers belong, but no date: a flipped exponent digit.
  fs.writeFileSync(join(dir, 'views.json'), '{"version":1,"views":{"020000000a01":{"created":1e300,"lastSeen":9e99}}}\n');
  r = await start(t, config);
  t.equal(listing(r.server), JSON.stringify([MAC_A]), 'ctl views lists the view before its machine comes back');
  t.same(await read(new Initiator(r.net, IFACE, MAC_A), 5), Buffer.alloc(512, 0xa1), 'the view serves its write');
  t.equal(listing(r.server), JSON.stringify([MAC_A]), 'ctl views lists it while it is open');
  r.server.stats();
  t.pass('stats are answered');
});

t.test('a snapshot whose NAME.json date is out of range does not break ctl snapshots', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, dir } = await lab(t);
  const r = await start(t, config);
  t.ok(await write(new Initiator(r.net, IFACE, MAC_A), 5, 0xa1), 'a machine writes its view');
  await r.server.snapshot(KEY, 'good', MAC_A);
  await r.server.snapshot(KEY, 'damaged', MAC_A);
  fs.writeFileSync(join(dir, 'snapshots', 'damaged.json'), `{"created":1e300,"of":"${MAC_A}"}\n`);
  let names: string;
  try {
    names = r.server
      .listSnapshots(KEY)
      .map((s) => s.name)
      .join(' ');
  } catch (e) {
    names = `ctl snapshots failed: ${(e as Error).message}`;
  }
  t.equal(names, 'damaged good', 'ctl snapshots lists both snapshots');
});

t.test('a view name holding a directory, dropped: new machines still get views', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, dir } = await lab(t);
  let r = await start(t, config);
  t.ok(await write(new Initiator(r.net, IFACE, MAC_A), 5, 0xa1), 'a machine writes its view');
  await r.server.stop();
  const B = '02:00:00:00:0a:02';
  fs.mkdirSync(join(dir, '020000000a02.img')); // left by a restore from a backup, say
  r = await start(t, config);
  t.match(
    r.server.listViews(KEY).find((v) => v.mac === B)?.refused,
    /is a directory/,
    'ctl views shows the directory refused as a view',
  );
  let dropError = '';
  await r.server.dropViews(KEY, [B], true).catch((e: Error) => (dropError = e.message));
  t.match(dropError, /could not be removed.*remove it yourself/, `view-drop says the name could not be removed: ${dropError}`);
  t.match(
    r.server.listViews(KEY).find((v) => v.mac === B)?.refused,
    /is a directory/,
    'and ctl views still shows it refused, as it still is',
  );
  t.notOk(await write(new Initiator(r.net, IFACE, B), 1, 0xb2), 'its machine gets an error reply: no view over a directory');
  const fresh = new Initiator(r.net, IFACE, '02:00:00:00:0a:03');
  t.ok(await write(fresh, 1, 0xc3), 'a new machine gets a view and writes, whatever the refused name holds');
});

t.test('a damaged snapshots/ does not stop the other exports at a restart', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, dir } = await lab(t);
  const plain = exportOf(await patternFile(t, SECTORS, { dir: tempDir(t, 'plain') }), { slot: 3 });
  const elsewhere = join(dir, '..', '..', 'elsewhere');
  fs.mkdirSync(elsewhere);
  const damage: [string, () => void][] = [
    ['a symbolic link', () => fs.symlinkSync(elsewhere, join(dir, 'snapshots'))],
    ['a regular file', () => fs.writeFileSync(join(dir, 'snapshots'), 'x')],
    ['a directory of mode 0777', () => fs.chmodSync(join(dir, 'snapshots'), 0o777)],
  ];
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const opts = { linkCheckMs: 60_000, duplicateProbeMs: 0, addon: net.addon };
  const first = await Server.start({ exports: [config, plain] }, pino({ level: 'silent' }), {}, opts);
  t.ok(await write(new Initiator(net, IFACE, MAC_A), 5, 0xa1), 'a machine writes its view');
  await first.snapshot(KEY, 'before', MAC_A);
  await first.stop();
  const snaps = join(dir, 'snapshots');
  for (const [what, plant] of damage) {
    if (what !== 'a directory of mode 0777') fs.renameSync(snaps, join(dir, '..', 'kept-snapshots'));
    plant();
    let server: Server | undefined;
    let error = '';
    try {
      server = await Server.start({ exports: [config, plain] }, pino({ level: 'silent' }), {}, opts);
    } catch (e) {
      error = (e as Error).message;
    }
    t.equal(error, '', `snapshots/ ${what}: the daemon starts`);
    if (server !== undefined) {
      const i = new Initiator(net, IFACE, MAC_A);
      const r = await withRetransmits(i, () => i.read(0, 1, 1, 3));
      t.same(Buffer.from(r.ata.data.subarray(0, 512)), patternSectors(0), `snapshots/ ${what}: the other export serves`);
      await server.stop();
    }
    if (what !== 'a directory of mode 0777') {
      fs.rmSync(snaps);
      fs.renameSync(join(dir, '..', 'kept-snapshots'), snaps);
    }
  }
});

/** Descriptors of this process open on files under `dir`. */
function descriptorsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(`${fd} -> ${target}`);
    } catch {
      // closed meanwhile (the descriptor readdir itself used)
    }
  }
  return out;
}

t.test('a reload while ctl view-reset all runs: the reset says what happened, no descriptor is left open', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, dir } = await lab(t);
  const r = await start(t, config);
  const macs = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `02:00:00:00:0a:${n.toString(16).padStart(2, '0')}`);
  for (const [n, m] of macs.entries())
    t.ok(await write(new Initiator(r.net, IFACE, m), 1, n + 1), `machine ${m} writes its view`);
  const reset = r.server.resetViews(KEY, 'all', true).then(
    (done) => `reset ${done.length}`,
    (e: Error) => e.message,
  );
  await new Promise((resolve) => setImmediate(resolve));
  await r.server.apply({ exports: [{ ...config, sync: true }] }); // the export is replaced meanwhile
  const said = await reset;
  t.notMatch(said, /Cannot read properties|undefined|\/proc\/self\/fd/, `the reset reports in words what became of it: ${said}`);
  for (const m of macs) {
    const i = new Initiator(r.net, IFACE, m);
    t.notOk((await withRetransmits(i, () => i.read(1, 1, 1, 2))).ata.failed, `machine ${m} reads its view after the reload`);
  }
  await r.server.stop();
  t.same(descriptorsUnder(dir), [], 'after the stop no descriptor of the views directory is open');
});

t.test('the last view dropped just before a stop is not refused as missing at the next start', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config } = await lab(t);
  let r = await start(t, config);
  t.ok(await write(new Initiator(r.net, IFACE, MAC_A), 5, 0xa1), 'a machine writes its view');
  await r.server.stop();
  r = await start(t, config); // views.json lists the view now
  t.same(await r.server.dropViews(KEY, [MAC_A], true), [MAC_A], 'the operator drops it');
  await r.server.stop(); // within the second views.json is saved in
  r = await start(t, config);
  t.same(r.server.listViews(KEY), [], 'ctl views lists no view');
  t.ok(await write(new Initiator(r.net, IFACE, MAC_A), 5, 0xa2), 'its machine gets a new view and writes');
});
