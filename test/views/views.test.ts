// Per-initiator views (views = per-initiator) as initiators and an operator
// see them, on a real XFS with reflinks on a loop device: each initiator
// reads and writes its own copy-on-write disk, the image is never written,
// views survive a restart, reset and drop do what they say, the MAC mask
// applies to the export as a whole, a full file system or the bound on open
// views costs only the new initiator an error reply, and file systems that
// cannot clone are refused at start with a message that names the ones that can.

import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { ExportConfig } from '../../src/config/export-config';
import { preflightExports } from '../../src/target/preflight';
import { Server } from '../../src/target/server';
import { STORE_PENDING } from '../../src/backend/block-store';
import { SIZES_REFRESH_MS } from '../../src/views/sizes';
import { ExportViews } from '../../src/views/views';
import { ViewBudget } from '../../src/views/admission';
import { ExportDirs } from '../../src/views/views-dir';
import type { BlockStore } from '../../src/backend/block-store';
import { native } from '../../src/native/addon';
import pino from 'pino';
import { skipOrFail, type TestLike } from '../../lab/common';
import { which } from '../../lab/process';
import { patternFile, patternSectors, tmpfsMount } from '../helpers/files';
import { exportOf, IFACE, Initiator, settle, startInProcess, until, type Target } from '../helpers/in-process';
import { FakeNetwork } from '../helpers/fake-addon';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 2048; // 1 MiB
const MAC_A = '02:00:00:00:0a:0a';
const MAC_B = '02:00:00:00:0b:0b';
const MAC_C = '02:00:00:00:0c:0c';

function sha(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function sector(fill: number): Buffer {
  return Buffer.alloc(512, fill);
}

/** An XFS with reflinks holding a pattern image and a views directory; the export config of both. */
async function lab(
  t: TestLike,
  over: Partial<ExportConfig> = {},
  bytes?: number,
): Promise<{ mnt: string; image: string; config: ExportConfig }> {
  const mnt = await loopFs(t, 'xfs-reflink', bytes);
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  return { mnt, image, config: exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views'), ...over }) };
}

// A new initiator's first requests are dropped while its view is made: these retransmit, as initiators do.
async function write(i: Initiator, lba: number, data: Uint8Array): Promise<boolean> {
  return !(await withRetransmits(i, () => i.write(lba, data))).ata.failed;
}

/** Resolves once the export has `n` views (a new initiator's first reads are answered from the image while its view is made). */
async function viewsMade(server: Server, n: number): Promise<void> {
  await until(() => server.listViews('e1.2').length === n, `${n} views`, 3000);
}

async function read(i: Initiator, lba: number, slot = 2): Promise<Buffer | undefined> {
  const r = await withRetransmits(i, () => i.read(lba, 1, 1, slot));
  return r.ata.failed ? undefined : Buffer.from(r.ata.data.subarray(0, 512));
}

t.test('two initiators write the same sector: each reads its own, the image is untouched, views survive a restart', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, image, config } = await lab(t);
  const before = sha(image);
  let target: Target = await startInProcess(t, [config]);
  let a = new Initiator(target.net, IFACE, MAC_A);
  let b = new Initiator(target.net, IFACE, MAC_B);
  t.ok(await write(a, 7, sector(0xaa)), 'A writes sector 7');
  t.ok(await write(b, 7, sector(0xbb)), 'B writes sector 7');
  t.same(await read(a, 7), sector(0xaa), 'A reads its own write');
  t.same(await read(b, 7), sector(0xbb), 'B reads its own write');
  t.same(await read(a, 8), patternSectors(8), 'a sector nobody wrote reads as the image');
  t.equal(sha(image), before, 'the image is unchanged');
  t.same(
    fs
      .readdirSync(join(mnt, 'views', 'e1.2'))
      .filter((f) => f.endsWith('.img'))
      .sort(),
    ['020000000a0a.img', '020000000b0b.img'],
  );
  const listed = target.server.listViews('e1.2');
  t.same(
    listed.map((v) => v.mac),
    [MAC_A, MAC_B],
  );
  t.ok(
    listed.every((v) => v.ownBytes > 0 && v.ownBytes <= 64 * 1024 && v.lastSeen !== null),
    'each view has a few KiB of its own and was seen',
  );
  const stats = target.server.stats().exports[0];
  t.equal(stats.views?.count, 2);
  // Stats show the bytes as measured off the serving thread, at most SIZES_REFRESH_MS ago.
  const own = listed[0].ownBytes + listed[1].ownBytes;
  const statsOwn = (): number | undefined => target.server.stats().exports[0].views?.ownBytes;
  await until(
    () => statsOwn() === own,
    `stats to show ${own} bytes of the views' own (${statsOwn()})`,
    2 * SIZES_REFRESH_MS + 2000,
  );
  t.pass('stats show the bytes the listing shows');

  await target.server.stop();
  target = await startInProcess(t, [config]);
  a = new Initiator(target.net, IFACE, MAC_A);
  b = new Initiator(target.net, IFACE, MAC_B);
  t.same(await read(a, 7), sector(0xaa), 'after a restart A still reads its write');
  t.same(await read(b, 7), sector(0xbb), 'after a restart B still reads its write');
  const relisted = target.server.listViews('e1.2');
  t.same(
    relisted.map((v) => v.created),
    listed.map((v) => v.created),
    'the creation dates were kept',
  );

  t.same(await target.server.resetViews('e1.2', MAC_A, true), [MAC_A]);
  t.same(await read(a, 7), patternSectors(7), 'a reset view reads the image again');
  t.same(await read(b, 7), sector(0xbb), 'the other view keeps its write');
  t.same(await target.server.dropViews('e1.2', [MAC_B], true), [MAC_B]);
  t.notOk(fs.existsSync(join(mnt, 'views', 'e1.2', '020000000b0b.img')), 'the dropped view file is gone');
  t.same(await read(b, 7), patternSectors(7), 'after a drop the initiator gets a fresh view of the image');
  await viewsMade(target.server, 2); // its next request made a new view
  t.equal(sha(image), before, 'the image is still unchanged');
  await t.rejects(target.server.dropViews('e1.2', ['02:00:00:00:99:99'], true), /no view for 02:00:00:00:99:99/);
  await t.rejects(target.server.resetViews('e1.2', 'nonsense', true), /not a MAC address/);
});

/** Bytes of `file` in the page cache (fincore). */
function cachedBytes(file: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  return Number(out.trim());
}

t.test('blocks a view did not write are read from the image: one page cache for every view', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  if (which('fincore') === undefined) return skipOrFail(t, 'fincore not found (bash scripts/setup.sh installs util-linux-extra)');
  const { mnt, config } = await lab(t);
  const target = await startInProcess(t, [config]);
  const a = new Initiator(target.net, IFACE, MAC_A);
  const b = new Initiator(target.net, IFACE, MAC_B);
  t.ok(await write(a, 7, sector(0xaa)), 'A writes sector 7');
  t.equal(target.server.stats().exports[0].views?.sharesImage, true, 'stats: the views share the image');
  let wrong = 0;
  for (let lba = 0; lba < SECTORS; lba += 8) {
    for (const i of [a, b]) {
      const want = i === a && lba === 0 ? undefined : patternSectors(lba);
      const got = await read(i, lba);
      if (want !== undefined && !got?.equals(want)) wrong++;
    }
  }
  t.equal(wrong, 0, 'both initiators read the image in every 4 KiB block (one sector each)');
  t.same(await read(a, 7), sector(0xaa), 'A still reads its own write');
  t.same(await read(a, 6), patternSectors(6), 'and the image beside it, in the same block, from its view');
  const views = join(mnt, 'views', 'e1.2');
  t.ok(cachedBytes(join(views, '020000000a0a.img')) <= 4096, "A's view has at most its one written block in the page cache");
  t.equal(cachedBytes(join(views, '020000000b0b.img')), 0, "B's view has nothing in the page cache: B read only the image");
});

t.test(
  'someone opening the image for writing: the views stop reading it first, keep their data, and share again later',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { image, config } = await lab(t);
    // Open for writing at start: no lease, so no sharing until it is closed.
    const early = fs.openSync(image, 'r+');
    const target = await startInProcess(t, [config], { viewLeaseRetryMs: 200 });
    const shares = (): boolean | undefined => target.server.stats().exports[0].views?.sharesImage;
    t.equal(shares(), false, 'the image is open for writing at start: the views read their own files');
    const a = new Initiator(target.net, IFACE, MAC_A);
    t.ok(await write(a, 7, sector(0xaa)), 'A writes sector 7');
    fs.closeSync(early);
    await until(() => shares() === true, 'sharing once the writer closed the image', 5000);
    t.same(await read(a, 7), sector(0xaa), 'A reads its write (the extents said the block is its own)');
    t.same(await read(a, 9), patternSectors(9), 'and the image elsewhere');

    // A writer that opens the image now waits for the lease, which the export gives up after pausing.
    const started = Date.now();
    const writer = spawn(process.execPath, [
      '-e',
      `const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(image)}, 'r+');
     fs.writeSync(fd, Buffer.alloc(16 * 512, 0xee), 0, 16 * 512, 0); fs.fsyncSync(fd); fs.closeSync(fd);`,
    ]);
    const code = await new Promise<number | null>((resolve) => writer.on('exit', (c) => resolve(c)));
    const waited = Date.now() - started;
    t.equal(code, 0, 'the writer opened and wrote the image');
    t.ok(waited < 10_000, `the writer waited ${waited} ms, not the kernel's lease-break time (45 s)`);
    t.same(await read(a, 9), patternSectors(9), 'A reads its view as it was: the write to the image is not in it');
    t.same(await read(a, 7), sector(0xaa), 'and its own write');
    const b = new Initiator(target.net, IFACE, MAC_B);
    t.same(await read(b, 9), sector(0xee), 'a new initiator gets a view of the image as it is now');
    await until(() => shares() === true, 'sharing again after the writer closed', 5000);
    t.same(await read(a, 9), patternSectors(9), 'sharing again: A still reads its view where the image changed');
    t.same(await read(a, 20), patternSectors(20), 'and the image where it did not');
    t.same(await read(b, 9), sector(0xee), 'B reads the image it was cloned from');
  },
);

t.test('a view reverted to a snapshot reads the snapshot, also where it had been reset to the image', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config } = await lab(t);
  const { server, net } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  t.ok(await write(a, 40, sector(0x40)), 'A writes sector 40');
  await server.snapshot('e1.2', 'monday', MAC_A);
  t.same(await server.resetViews('e1.2', MAC_A, true), [MAC_A], 'the view is reset to the image');
  t.same(await read(a, 40), patternSectors(40), 'after the reset A reads the image at sector 40');
  t.ok(await write(a, 80, sector(0x80)), 'A writes sector 80 after the snapshot');
  await server.revert('e1.2', 'monday', true);
  t.same(await read(a, 40), sector(0x40), 'reverted: sector 40 is the snapshot’s (read from the view, not the image)');
  t.same(await read(a, 80), patternSectors(80), 'reverted: sector 80 is as the snapshot had it');
  t.same(await read(a, 120), patternSectors(120), 'and a sector nobody wrote is the image');
  t.equal(server.stats().exports[0].views?.sharesImage, true, 'the views still share the image');
});

t.test('last-seen dates reach views.json while the daemon runs, not only at stop', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const { net } = await startInProcess(t, [config], { viewDatesSaveMs: 100 });
  const a = new Initiator(net, IFACE, MAC_A);
  t.same(await read(a, 3), patternSectors(3));
  const saved = (): number => {
    try {
      const m = JSON.parse(fs.readFileSync(join(mnt, 'views', 'e1.2', 'views.json'), 'utf8')) as {
        views: Record<string, { lastSeen: number }>;
      };
      return m.views['020000000a0a']?.lastSeen ?? 0;
    } catch {
      return 0;
    }
  };
  await until(() => saved() > 0, 'the dates saved after the view was made', 3000);
  await new Promise((r) => setTimeout(r, 300));
  const later = Date.now();
  t.same(await read(a, 4), patternSectors(4), 'A reads again, later');
  await until(() => saved() >= later - 50, 'the later last-seen date in views.json', 3000);
  t.ok(saved() <= Date.now(), `saved ${Date.now() - saved()} ms ago: the date of the later read`);
});

t.test('views with O_DIRECT (direct = yes): each initiator reads its own writes and the image elsewhere', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { image, config } = await lab(t, { direct: true });
  const before = sha(image);
  const { net, server } = await startInProcess(t, [config]);
  t.equal(server.stats().exports[0].views?.sharesImage, true);
  const a = new Initiator(net, IFACE, MAC_A);
  const b = new Initiator(net, IFACE, MAC_B);
  t.ok(await write(a, 16, sector(0xa1)), 'A writes sector 16');
  t.ok(await write(b, 16, sector(0xb1)), 'B writes sector 16');
  t.same(await read(a, 16), sector(0xa1));
  t.same(await read(b, 16), sector(0xb1));
  t.same(await read(a, 17), patternSectors(17), 'the sector beside it, in the same block');
  t.same(await read(b, 1000), patternSectors(1000), 'a sector nobody wrote');
  t.equal(sha(image), before, 'the image is unchanged');
});

t.test("a new initiator's IDENTIFY makes its view: its first read is answered without a retransmission", async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const { net, server } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  const id = await a.ataReply(a.identify());
  t.equal(id.ata.failed, false, 'IDENTIFY is answered at once, from the image');
  // The Linux driver sends its first reads some 40 ms after IDENTIFY.
  await until(() => fs.existsSync(join(mnt, 'views', 'e1.2', '020000000a0a.img')), 'the view file', 2000);
  await settle(20);
  const first = await a.ataReply(a.read(5, 1), 2000);
  t.same(Buffer.from(first.ata.data.subarray(0, 512)), patternSectors(5), 'the first read is answered, from the view');
  t.equal(server.stats().exports[0].counters.paused_drops, 0, 'no request was dropped');
});

t.test(
  'a view cloned while the image was being written, and sharing started before it was done: compared, not trusted',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { image, config } = await lab(t);
    const imageFd = fs.openSync(image, 'r');
    t.teardown(() => fs.closeSync(imageFd));
    const store: BlockStore = {
      kind: 'file',
      fd: imageFd,
      byteOffset: 0,
      sectors: SECTORS,
      direct: false,
      inlineIo: false,
      description: image,
      close() {},
    };
    let leaseFree = false; // as if someone had the image open for writing until we say
    let cloned!: () => void;
    const clonedNow = new Promise<void>((r) => (cloned = r));
    let finishClone!: () => void;
    const gate = new Promise<void>((r) => (finishClone = r));
    const views = ExportViews.open({
      dirs: ExportDirs.open(config),
      owners: [0],
      image: store,
      direct: false,
      readOnly: false,
      maxViews: 10,
      minFreePercent: 0,
      budget: new ViewBudget(10),
      leaseRetryMs: 20,
      datesSaveMs: 60_000,
      perBootGapMs: null,
      fns: {
        ...native,
        reflinkCloneAsync: async (src, dst) => {
          native.reflinkClone(src, dst); // the image as it is now...
          cloned();
          await gate; // ...and the view is not there before the test says
        },
        imageLease: (fd, take) => {
          if (take && !leaseFree) throw Object.assign(new Error('busy'), { code: 'EAGAIN' });
          native.imageLease(fd, take);
        },
      },
      events: {
        created() {},
        failed() {},
        refused() {},
        grown() {},
        stale() {},
        sharing() {},
        imageWriter() {},
        newBoot() {},
        newViewsRefused() {},
      },
    });
    t.teardown(() => views.close());
    const mac = Buffer.from([2, 0, 0, 0, 0x0a, 0x0a]);
    t.equal(views.storeFor(mac, 0, 0), STORE_PENDING, 'the view is being made');
    await clonedNow;
    // The writer changes block 3 of the image after the clone, then closes it.
    const w = fs.openSync(image, 'r+');
    fs.writeSync(w, Buffer.alloc(4096, 0xee), 0, 4096, 3 * 4096);
    fs.fsyncSync(w);
    fs.closeSync(w);
    leaseFree = true;
    await until(() => views.sharesImage, 'sharing after the writer closed', 2000);
    finishClone();
    await until(() => views.count === 1, 'the view', 2000);
    const v = views.storeFor(mac, 0, 0)!;
    const index = views.indexOf(v);
    t.equal(views.readFd(index, 3 * 4096, 512), v.fd, 'block 3, which the image changed after the clone, is read from the view');
    t.equal(views.readFd(index, 5 * 4096, 512), imageFd, 'block 5, the same in both, from the image');
  },
);

t.test("reads that come while a new initiator's view is being made are answered from the image", async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config } = await lab(t);
  const { net, server } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  const tags = [a.read(5, 1), a.read(6, 1)]; // no IDENTIFY first: the first read starts the view
  for (const [k, tag] of tags.entries()) {
    const r = await a.ataReply(tag, 2000);
    t.same(Buffer.from(r.ata.data.subarray(0, 512)), patternSectors(5 + k), `read ${k + 1} is answered at once`);
  }
  t.equal(server.stats().exports[0].counters.paused_drops, 0, 'no read was dropped');
  t.ok(await write(a, 5, sector(0x55)), 'the first write goes to the view');
  t.same(await read(a, 5), sector(0x55), 'and is read back from it');
});

t.test('the MAC mask applies to the export: a masked initiator gets no view, a new allowed one a fresh view', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t, { macMask: [MAC_A, MAC_C] });
  const { net, server } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  const b = new Initiator(net, IFACE, MAC_B);
  const c = new Initiator(net, IFACE, MAC_C);
  t.ok(await write(a, 3, sector(0x11)));
  const masked = b.read(3, 1);
  await t.rejects(b.reply(masked, 200), /timed out/, 'the masked initiator gets no reply');
  t.same(await read(c, 3), patternSectors(3), 'a new allowed initiator reads the image');
  await viewsMade(server, 2);
  t.same(
    server.listViews('e1.2').map((v) => v.mac),
    [MAC_A, MAC_C],
  );
  t.notOk(fs.existsSync(join(mnt, 'views', 'e1.2', '020000000b0b.img')), 'no view for the masked MAC');
});

t.test('broadcast, multicast and zero source MACs: no reply, no view, counted as ignored', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const { net, server } = await startInProcess(t, [config]);
  const ignoredBefore = server.stats().interfaces[0].counters.ignored;
  const sources = ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '00:00:00:00:00:00'];
  for (const mac of sources) {
    const forged = new Initiator(net, IFACE, mac);
    const tags = [forged.identify(), forged.read(1, 1), forged.write(1, sector(0x66)), forged.queryConfig()];
    await settle(100);
    t.equal(
      tags.map((tag) => forged.unclaimed(tag)).reduce((a, b) => a + b),
      0,
      `${mac}: no reply to any request`,
    );
  }
  const a = new Initiator(net, IFACE, MAC_A);
  t.ok(await write(a, 1, sector(0xaa)), 'a machine with its own address still gets its view');
  t.same(
    fs.readdirSync(join(mnt, 'views', 'e1.2')).filter((f) => f.endsWith('.img')),
    ['020000000a0a.img'],
    'no view file for the forged sources',
  );
  t.equal(server.stats().interfaces[0].counters.ignored - ignoredBefore, 12, 'the 12 forged requests are counted as ignored');
});

t.test('read-only, reservations and the config string apply to the export as a whole, views included', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const { net } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  const b = new Initiator(net, IFACE, MAC_B);
  t.ok(await write(a, 7, sector(0xaa)), 'A has a view');
  t.ok(await write(b, 7, sector(0xbb)), 'B has a view');
  t.notOk((await a.configReply(a.setConfigString('lab-7'))).header.error, 'A sets the config string');
  const seen = await b.configReply(b.queryConfig());
  t.equal(Buffer.from(seen.config.config).toString('latin1'), 'lab-7', 'B sees the config string A set: one per export');
  t.notOk((await a.reply(a.reserve([MAC_A]))).header.error, 'A reserves the export');
  const refused = await b.reply(b.read(7, 1));
  t.equal(refused.header.errorCode, 6, 'B, with a view of its own, is refused while A holds the reservation (target reserved)');
  t.same(await read(a, 7), sector(0xaa), 'A goes on with its view');

  // The same image, read-only (vblade -r): machines without a view read the image; no view is made for them.
  const ro = await startInProcess(t, [{ ...config, slot: 3, viewsDir: join(mnt, 'views-ro'), readOnly: true }]);
  const c = new Initiator(ro.net, IFACE, MAC_C);
  t.same(await read(c, 7, 3), patternSectors(7), 'C reads the image');
  const w = await c.ataReply(c.write(7, sector(0xcc), 1, 3));
  t.ok(w.header.error || w.ata.failed, 'a write to the read-only export is refused');
  t.same(await read(c, 7, 3), patternSectors(7), 'and nothing changed');
  t.same(
    fs.readdirSync(join(mnt, 'views-ro', 'e1.3')).filter((f) => f.endsWith('.img')),
    [],
    'no view was made',
  );
});

t.test('sync export with views: writes are answered after the views are synced; FLUSH works', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { image, config } = await lab(t, { sync: true });
  const before = sha(image);
  const { net, server } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  const b = new Initiator(net, IFACE, MAC_B);
  t.same(await read(a, 0), patternSectors(0), 'A has its view');
  t.same(await read(b, 0), patternSectors(0), 'B has its view');
  await viewsMade(server, 2);
  const tags = [a.write(1, sector(1)), b.write(1, sector(2)), a.write(2, sector(3))];
  for (const tag of tags) t.notOk((await (tag === tags[1] ? b : a).ataReply(tag)).ata.failed);
  t.notOk((await a.ataReply(a.flush())).ata.failed, 'FLUSH answered');
  const c = server.stats().exports[0].counters;
  t.ok(c.syncs >= 1, `${c.syncs} group commits`);
  t.ok(net.timeline.filter((e) => e.type === 'datasync-start').length >= c.syncs, 'at least one fdatasync per group commit');
  t.same(await read(a, 1), sector(1));
  t.same(await read(b, 1), sector(2));
  t.equal(sha(image), before);
});

t.test('a full file system: the new initiator gets an error reply, the others go on', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  // No free-space floor: the clone itself meets the full file system here (view-admission.test.ts tests the floor).
  const { mnt, config } = await lab(t, { viewsMinFree: 0 });
  const { net, server } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  t.ok(await write(a, 1, sector(0x21)), 'A has a view');
  // Fill the file system to the last block.
  const filler = join(mnt, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    t.equal((e as NodeJS.ErrnoException).code, 'ENOSPC', 'the file system is full');
  }
  try {
    for (;;) fs.writeSync(fd, chunk, 0, 4096);
  } catch {
    // full to the block
  }
  fs.closeSync(fd);
  const b = new Initiator(net, IFACE, MAC_B);
  const first = await b.ataReply(b.read(1, 1));
  t.same(
    Buffer.from(first.ata.data.subarray(0, 512)),
    patternSectors(1),
    'its first read is answered from the image while the view is tried',
  );
  let r = await b.ataReply(b.read(1, 1));
  for (let n = 0; n < 50 && !r.ata.failed; n++) {
    await settle(20);
    r = await b.ataReply(b.read(1, 1));
  }
  t.ok(r.ata.failed, 'once the view could not be made, the new initiator gets an ATA error reply');
  const s = server.stats().exports[0];
  t.ok((s.views?.failures ?? 0) >= 1, 'counted as a view that could not be made');
  t.ok((s.views?.refused.failed ?? 0) >= 1, 'for the reason that making it failed');
  t.match(s.views?.lastError, /ENOSPC|No space/, 'and why');
  t.same(await read(a, 1), sector(0x21), 'the initiator with a view still reads');
  fs.rmSync(filler);
  // Error replies for a few seconds, then the view is tried again.
  let again: Buffer | undefined;
  for (let n = 0; n < 100 && again === undefined; n++) {
    again = await read(b, 1);
    if (again === undefined) await new Promise((res) => setTimeout(res, 100));
  }
  t.same(again, patternSectors(1), 'with space again the new initiator gets its view');
  // A dates file being saved has a temporary name for a moment: nothing of the kind may stay.
  const leftovers = (): string[] => fs.readdirSync(join(mnt, 'views', 'e1.2')).filter((f) => f.endsWith('.tmp'));
  await until(() => leftovers().length === 0, 'no temporary files', 3000).catch(() => {});
  t.same(leftovers(), [], 'no half-made view or dates file left behind');
});

t.test('3000 initiators: views up to the bound, an error reply beyond it, descriptors bounded, listing works', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  // XFS reserves a copy-on-write extent (cowextsize, 128 KiB) per view written: room for 3000 of them.
  const { config } = await lab(t, { maxViews: 3000 }, 2 * 1024 ** 3);
  const bound = 2500;
  const fdsBefore = fs.readdirSync('/proc/self/fd').length;
  const { net, server } = await startInProcess(t, [config], { maxViews: bound });
  let ok = 0;
  let refused = 0;
  const initiators = Array.from({ length: 3000 }, (_, i) => {
    const mac = `02:01:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
    return new Initiator(net, IFACE, mac);
  });
  // Every initiator at once, as a lab switched on: their views are made side by side.
  const started = performance.now();
  for (let i = 0; i < initiators.length; i += 100) {
    for (let k = i; k < i + 100; k++) initiators[k].write(k % SECTORS, sector(k & 0xff));
    await settle(2); // no more at once than a receive ring holds
  }
  for (const [i, ini] of initiators.entries()) {
    if (await write(ini, i % SECTORS, sector(i & 0xff))) ok++;
    else refused++;
  }
  const ms = performance.now() - started;
  t.equal(ok, bound, `${bound} views made (${ms.toFixed(0)} ms for all 3000 initiators)`);
  t.equal(refused, 3000 - bound, 'the rest got an error reply');
  const fdsOpen = fs.readdirSync('/proc/self/fd').length - fdsBefore;
  t.ok(fdsOpen >= bound && fdsOpen < bound + 64, `${fdsOpen} descriptors open: one per view and a few more`);
  const listed = server.listViews('e1.2');
  t.equal(listed.length, bound);
  // Each request of a refused initiator is refused and counted: at least once each.
  const failures = server.stats().exports[0].views?.failures ?? 0;
  t.ok(failures >= 3000 - bound, `${failures} refusals counted for ${3000 - bound} initiators refused`);
  t.equal(server.stats().exports[0].views?.refused['open-files'], failures, 'all for the process bound on open views');
  t.match(server.stats().exports[0].views?.lastError, /2500 views are open in this process/);
});

/** A Server start of `config` on a fake network; resolves to its error message. */
async function startError(t: TestLike, config: ExportConfig): Promise<string> {
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  try {
    const s = await Server.start(
      { exports: [config] },
      pino({ level: 'silent' }),
      {},
      { addon: net.addon, linkCheckMs: 60_000, duplicateProbeMs: 0 },
    );
    await s.stop();
    return 'started';
  } catch (e) {
    t.pass('refused');
    return (e as Error).message;
  }
}

for (const type of ['ext4', 'xfs-noreflink'] as const) {
  t.test(`views on ${type} are refused at start and by --check, naming the file systems that can`, async (t) => {
    if (!requireLoopFs(t, type)) return;
    const mnt = await loopFs(t, type);
    const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
    const config = exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views') });
    const message = await startError(t, config);
    t.match(message, /without them; use XFS made with `mkfs\.xfs -m reflink=1`.* or btrfs/);
    t.match(message, type === 'ext4' ? /ext2\/3\/4/ : /XFS/);
    t.notOk(fs.existsSync(join(mnt, 'views')), 'nothing was created');
    const { problems } = await preflightExports([config], native);
    t.equal(problems.length, 2, 'the check finds the views problem (and the fake interface missing)');
    t.match(problems[0], /e1\.2: views of .* need a file system that makes copy-on-write clones/);
  });
}

t.test('views-dir on tmpfs, another file system, or an image that is a block device: refused with what to do', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const tmp = await tmpfsMount(t, '8M');
  const onTmpfs = await patternFile(t, 64, { dir: tmp, name: 'golden.img' });
  t.match(await startError(t, exportOf(onTmpfs, { views: 'per-initiator', viewsDir: join(tmp, 'v') })), /on tmpfs without them/);
  const { mnt } = await lab(t);
  const image = join(mnt, 'golden.img');
  t.match(
    await startError(t, exportOf(image, { views: 'per-initiator', viewsDir: join(tmp, 'v') })),
    /is not on the file system of .*golden\.img/,
  );
  // The loop device under the mount: the source after " - type " in mountinfo.
  const line = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === mnt)!;
  const dev = line.split(' - ')[1].split(' ')[1];
  t.match(
    await startError(t, exportOf(dev, { views: 'per-initiator', viewsDir: join(mnt, 'views') })),
    /is a block device; .*LVM thin snapshots/,
  );
});

t.test(
  'a reload that serves the image writable without views (the export removed first) does not wait for a lease',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { image, config } = await lab(t);
    const { server, net } = await startInProcess(t, [config]);
    const a = new Initiator(net, IFACE, MAC_A);
    t.ok(await write(a, 9, sector(0x99)), 'A writes sector 9 of its view');
    t.equal(server.stats().exports[0].views?.sharesImage, true);
    const plain = exportOf(image);
    await t.rejects(server.apply({ exports: [plain] }), /would let every initiator write the image itself/);
    const started = Date.now();
    t.same((await server.apply({ exports: [] })).removed, ['e1.2'], 'the export removed in one reload');
    const result = await server.apply({ exports: [plain] });
    const took = Date.now() - started;
    t.same(result.added, ['e1.2'], 'and added back writable in the next');
    t.ok(took < 5000, `the reloads took ${took} ms, not the kernel's lease-break time (45 s)`);
    t.same(await read(a, 9), patternSectors(9), 'A now reads the image itself');
    t.ok(await write(a, 9, sector(0x77)), 'and writes it');
    t.same(fs.readFileSync(image).subarray(9 * 512, 10 * 512), sector(0x77), 'the write is in the image');
  },
);

t.test('views persist across reloads: a changed export reopens them, a mask change keeps them open', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { image, config } = await lab(t);
  const { server, net } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, MAC_A);
  t.ok(await write(a, 4, sector(0x44)));
  t.same(await server.apply({ exports: [{ ...config, macMask: [MAC_A] }] }), {
    added: [],
    removed: [],
    changed: ['e1.2'],
    resized: [],
  });
  t.same(await read(a, 4), sector(0x44), 'after a mask change');
  t.same(await server.apply({ exports: [{ ...config, sync: true }] }), {
    added: [],
    removed: [],
    changed: ['e1.2'],
    resized: [],
  });
  t.same(await read(a, 4), sector(0x44), 'after the export was replaced (sync changed)');
  t.equal(server.listViews('e1.2').length, 1);
  // Not truncateSync: the truncate waits for the export's lease on the image, which this thread must give up.
  await fs.promises.truncate(image, SECTORS * 512 * 2);
  t.same(
    await server.apply({ exports: [{ ...config, sync: true }] }),
    { added: [], removed: [], changed: [], resized: [] },
    'a grown image is not taken by a reload either',
  );
});
