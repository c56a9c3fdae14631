// Views know the image they were cloned from (views.json): on a real XFS
// with reflinks, an image grown in place by 1 MiB of new data grows every
// view, at a restart and online (vblade ctl resize): a machine reads the
// image's new data past its old end and its own writes below it; an image
// replaced by another file, or shrunk, makes the views stale (said at start,
// marked in ctl views) and a view is never served at a size it was not made
// for.

import t from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { TestLike } from '../../lab/common';
import type { ExportConfig } from '../../src/config/export-config';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, IFACE, Initiator, keptLog, startOneExport, until } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const MIB_SECTORS = 2048;
const MAC_A = '02:00:00:00:0a:0a';
const MAC_B = '02:00:00:00:0b:0b';

async function lab(t: TestLike, sectors = MIB_SECTORS): Promise<{ image: string; config: ExportConfig; dir: string }> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, sectors, { dir: mnt, name: 'golden.img' });
  const config = exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views') });
  return { image, config, dir: join(mnt, 'views', 'e1.2') };
}

async function start(t: TestLike, config: ExportConfig) {
  const { log, lines } = keptLog();
  const r = await startOneExport(t, config, log);
  return { ...r, lines };
}

async function write(i: Initiator, lba: number, fill: number): Promise<void> {
  const r = await withRetransmits(i, () => i.write(lba, Buffer.alloc(512, fill)));
  if (r.ata.failed) throw new Error(`write of ${lba} failed`);
}

async function read(i: Initiator, lba: number): Promise<Buffer | undefined> {
  const r = await withRetransmits(i, () => i.read(lba, 1));
  return r.ata.failed ? undefined : Buffer.from(r.ata.data.subarray(0, 512));
}

/** Appends `sectors` of the pattern (numbered on from the image's end) to the image: a new version grown in place. */
async function growImage(image: string, sectors: number): Promise<void> {
  const at = fs.statSync(image).size / 512;
  const data = Buffer.concat(Array.from({ length: sectors }, (_, n) => patternSectors(at + n)));
  // Async: the open for writing waits for the export's lease on the image, which this thread must give up.
  const fh = await fs.promises.open(image, 'r+');
  await fh.write(data, 0, data.length, at * 512);
  await fh.close();
}

/** A run in which machines A and B write sector 7 of their views (0xaa, 0xbb), then a stop. */
async function twoViewsWritten(t: TestLike, config: ExportConfig): Promise<void> {
  const r = await start(t, config);
  await write(new Initiator(r.net, IFACE, MAC_A), 7, 0xaa);
  await write(new Initiator(r.net, IFACE, MAC_B), 7, 0xbb);
  await r.server.stop();
}

function savedImage(dir: string, name: string): { ino: number; bytes: number } | undefined {
  const saved = JSON.parse(fs.readFileSync(join(dir, 'views.json'), 'utf8')) as {
    views: Record<string, { image?: { ino: number; bytes: number } }>;
  };
  return saved.views[name].image;
}

t.test(
  'an image grown in place by 1 MiB: at restart each view grows, the new tail the image’s, its own writes kept',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    // One sector past a 4 KiB block: the view's own bytes in the block the image grows into must survive the clone.
    const { image, config, dir } = await lab(t, MIB_SECTORS + 1);
    let r = await start(t, config);
    let a = new Initiator(r.net, IFACE, MAC_A);
    await write(a, 7, 0xaa);
    await write(a, MIB_SECTORS, 0xab); // its last sector
    await r.server.stop();
    t.match(
      savedImage(dir, '020000000a0a'),
      { ino: fs.statSync(image).ino, bytes: (MIB_SECTORS + 1) * 512 },
      'views.json names the image',
    );
    await growImage(image, MIB_SECTORS);

    r = await start(t, config);
    t.equal(r.server.stats().exports[0].sectors, 2 * MIB_SECTORS + 1, 'the export serves the grown image');
    const grown = r.lines.filter((l) => l.msg.includes('the view of 02:00:00:00:0a:0a grew with the image'));
    t.equal(grown.length, 1, `the start-up log says the view grew: ${grown[0]?.msg}`);
    t.match(grown[0], { mac: MAC_A, from: (MIB_SECTORS + 1) * 512, to: (2 * MIB_SECTORS + 1) * 512 });
    a = new Initiator(r.net, IFACE, MAC_A);
    t.same(await read(a, 7), Buffer.alloc(512, 0xaa), "A's old write is intact");
    t.same(await read(a, MIB_SECTORS), Buffer.alloc(512, 0xab), "A's write in the partial block is intact");
    for (const lba of [MIB_SECTORS + 1, MIB_SECTORS + 2, 2 * MIB_SECTORS])
      t.same(await read(a, lba), patternSectors(lba), `A reads the image's new data at ${lba}`);
    const b = new Initiator(r.net, IFACE, MAC_B);
    t.same(await read(b, 2 * MIB_SECTORS), patternSectors(2 * MIB_SECTORS), 'a new machine reads it too');
    await r.server.stop();
    t.equal(savedImage(dir, '020000000a0a')?.bytes, (2 * MIB_SECTORS + 1) * 512, 'views.json has the new size');
    r = await start(t, config);
    t.equal(r.lines.filter((l) => l.msg.includes('grew with the image')).length, 0, 'the next start grows nothing');
  },
);

t.test('online: the image grows while served; resize grows every view before the export serves the new size', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { image, config } = await lab(t);
  const r = await start(t, config);
  const a = new Initiator(r.net, IFACE, MAC_A);
  await write(a, 7, 0xaa);
  await growImage(image, MIB_SECTORS);
  const res = await r.server.resizeExport('e1.2');
  t.match(res, { oldSectors: MIB_SECTORS, newSectors: 2 * MIB_SECTORS });
  t.same(await read(a, 7), Buffer.alloc(512, 0xaa), "A's old write is intact");
  t.same(await read(a, MIB_SECTORS + 3), patternSectors(MIB_SECTORS + 3), "A reads the image's new data");
  await write(a, MIB_SECTORS + 3, 0xac);
  t.same(await read(a, MIB_SECTORS + 3), Buffer.alloc(512, 0xac), 'and writes it as its own');
  t.same(
    Buffer.from(fs.readFileSync(image).subarray((MIB_SECTORS + 3) * 512, (MIB_SECTORS + 4) * 512)),
    patternSectors(MIB_SECTORS + 3),
    'the image is not written',
  );
  t.ok(
    r.lines.some((l) => l.mac === MAC_A && /grew with the image/.test(l.msg)),
    'the log says the view grew',
  );
});

t.test('a replaced image makes the views stale: said at start, marked in ctl views, never served at another size', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { image, config, dir } = await lab(t);
  await twoViewsWritten(t, config);
  let r: Awaited<ReturnType<typeof start>>;
  // A new version of the same size as a new file (mv over it): the views hold the old one's disk.
  fs.copyFileSync(image, `${image}.new`);
  fs.renameSync(`${image}.new`, image);
  r = await start(t, config);
  const stale = r.lines.filter((l) => /the view of .* is stale: the image was replaced/.test(l.msg));
  t.equal(stale.length, 2, `the start-up log names both views: ${stale[0]?.msg}`);
  t.match(stale[0].msg, /vblade ctl view-reset/, 'and says what to do');
  t.match(r.server.listViews('e1.2'), [
    { mac: MAC_A, stale: /image was replaced/ },
    { mac: MAC_B, stale: /image was replaced/ },
  ]);
  t.same(await read(new Initiator(r.net, IFACE, MAC_A), 7), Buffer.alloc(512, 0xaa), 'a stale view of the same size serves on');
  await r.server.resetViews('e1.2', MAC_A, true);
  t.notOk(r.server.listViews('e1.2')[0].stale, 'a reset view is not stale');
  await r.server.stop();

  // Replaced by a larger file: B's view is not grown with another image's data, and not served.
  const bigger = await patternFile(t, 2 * MIB_SECTORS, { dir: join(dir, '..', '..'), name: 'other.img' });
  fs.renameSync(bigger, image);
  r = await start(t, config);
  t.match(
    r.server.listViews('e1.2').find((v) => v.mac === MAC_B)?.refused,
    /image was replaced by another file .*\(1 MiB\) are not the new image's .*\(2 MiB\); reset it/,
  );
  t.equal(await read(new Initiator(r.net, IFACE, MAC_B), 7), undefined, 'B gets an error reply');
  await t.rejects(r.server.resetViews('e1.2', MAC_B), /02:00:00:00:0b:0b served an initiator/, 'B was used a moment ago');
  t.same(await r.server.resetViews('e1.2', MAC_B, true), [MAC_B], 'B is reset with --force');
  const b = new Initiator(r.net, IFACE, MAC_B);
  t.same(await read(b, 2 * MIB_SECTORS - 1), patternSectors(2 * MIB_SECTORS - 1), 'and reads the new image to its end');
});

t.test('an image shrunk in place refuses its views; a damaged image record in views.json is taken as unknown', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { image, config, dir } = await lab(t);
  await twoViewsWritten(t, config);
  let r: Awaited<ReturnType<typeof start>>;
  const meta = join(dir, 'views.json');
  const saved = JSON.parse(fs.readFileSync(meta, 'utf8')) as { views: Record<string, { image?: unknown }> };
  saved.views['020000000b0b'].image = { ino: 'x', born: -1, bytes: 1e300 };
  fs.writeFileSync(meta, JSON.stringify(saved));
  r = await start(t, config);
  t.same(await read(new Initiator(r.net, IFACE, MAC_B), 7), Buffer.alloc(512, 0xbb), 'the view of the damaged record serves');
  await r.server.stop();
  t.equal(savedImage(dir, '020000000b0b')?.bytes, MIB_SECTORS * 512, 'and is recorded as the image’s again');

  fs.truncateSync(image, (MIB_SECTORS / 2) * 512);
  r = await start(t, config);
  t.match(r.server.listViews('e1.2'), [
    { mac: MAC_A, refused: /the image shrank to 524288 bytes .* view-reset/ },
    { mac: MAC_B, refused: /shrank/ },
  ]);
  t.equal(await read(new Initiator(r.net, IFACE, MAC_A), 7), undefined, 'A gets an error reply, not a view cut short');
});

t.test(
  'truncate of a served image fails once with EAGAIN (a non-blocking open meets the lease); the log says why and to run it again',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { image, config } = await lab(t);
    const r = await start(t, config);
    await write(new Initiator(r.net, IFACE, MAC_A), 7, 0xaa);
    t.equal(r.server.stats().exports[0].views?.sharesImage, true, 'the views share the image (the lease is held)');
    const truncate = (): Promise<unknown> => promisify(execFile)('truncate', ['-s', '+1M', image]);
    await t.rejects(truncate(), /Resource temporarily unavailable/, 'the first truncate fails as the trial found');
    const opening = (): { msg: string } | undefined =>
      r.lines.find((l) => /a program is opening the image for writing/.test(l.msg));
    await until(() => opening() !== undefined, 'the log line on the writer', 5000);
    const said = opening();
    t.match(said?.msg, /non-blocking .*coreutils truncate.*"Resource temporarily unavailable" \(EAGAIN\): run it again now/);
    await truncate();
    t.equal(fs.statSync(image).size, 2 * MIB_SECTORS * 512, 'run again, it works');
    t.match(await r.server.resizeExport('e1.2'), { newSectors: 2 * MIB_SECTORS }, 'and the views grow with it');
    t.same(
      await read(new Initiator(r.net, IFACE, MAC_A), 2 * MIB_SECTORS - 1),
      Buffer.alloc(512),
      'the new tail: zeros, as truncate made it',
    );
  },
);

t.test('growing a view never rewrites its own bytes: a write that lands during the grow is kept', async (t) => {
  const { growView } = await import('../../src/views/image-growth');
  const { loadAddon } = await import('../../src/native/addon');
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  // An image of 3 KiB + 512 (not a whole 4 KiB block) that grows to 64 KiB; its view ends mid-block.
  const from = 3584;
  const to = 64 * 1024;
  const image = join(mnt, 'image');
  fs.writeFileSync(image, Buffer.alloc(to, 0x11));
  const view = join(mnt, 'view');
  fs.writeFileSync(view, Buffer.alloc(from, 0x22));
  const addon = loadAddon();
  const imageFd = fs.openSync(image, 'r');
  const viewFd = fs.openSync(view, 'r+');
  t.teardown(() => [imageFd, viewFd].forEach((fd) => fs.closeSync(fd)));
  // The clone stands where the kernel completes an initiator's write already in flight to the view's last sector.
  const landed = Buffer.alloc(512, 0x33);
  growView(
    (src, srcOff, len, dst, dstOff) => {
      fs.writeSync(viewFd, landed, 0, 512, from - 512);
      addon.reflinkCloneRange(src, srcOff, len, dst, dstOff);
    },
    imageFd,
    viewFd,
    from,
    to,
  );
  const grown = fs.readFileSync(view);
  t.equal(grown.length, to, 'the view has the image size');
  t.same(grown.subarray(from - 512, from), landed, 'the write that landed during the grow is there');
  t.ok(
    grown.subarray(0, from - 512).every((b) => b === 0x22),
    "the view's other bytes are its own",
  );
  t.ok(
    grown.subarray(from).every((b) => b === 0x11),
    'the new tail is the image',
  );
});
