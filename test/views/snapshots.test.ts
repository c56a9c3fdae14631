// Snapshots as an operator and initiators see them, on a real XFS with
// reflinks: under a running -s write load every write acknowledged before
// the snapshot was asked for is in it and no write sent after it returned
// is; revert (refused while initiators are active, unless forced) brings
// exactly that content back; a snapshot can be served read-only as another
// address; names are checked; file systems without reflinks are refused.

import t from 'tap';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ExportConfig } from '../../src/config/export-config';
import type { TestLike } from '../../lab/common';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, IFACE, Initiator, startInProcess } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 8192; // 4 MiB

function sha(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Sector `lba` as write number `n` left it: its number in every byte pair, so any sector read names its write. */
function written(lba: number): Buffer {
  const b = Buffer.alloc(512);
  for (let i = 0; i < 512; i += 4) b.writeUInt32LE(lba + 1, i);
  return b;
}

function sectorOf(file: string, lba: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(512);
    fs.readSync(fd, b, 0, 512, lba * 512);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

async function lab(
  t: TestLike,
  over: Partial<ExportConfig> = {},
): Promise<{ image: string; config: ExportConfig; snapDir: string }> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'disk.img' });
  const viewsDir = join(mnt, 'views');
  return { image, config: exportOf(image, { viewsDir, ...over }), snapDir: join(viewsDir, 'e1.2', 'snapshots') };
}

/** One write per sector, in order, `window` at a time, retransmitted after `retryMs` without a reply (as an initiator does). */
class WriteLoad {
  readonly firstSent: number[] = [];
  readonly acked: number[] = [];
  private next = 0;
  private stopped = false;
  retransmits = 0;
  readonly done: Promise<void>;

  constructor(
    private readonly ini: Initiator,
    window: number,
    private readonly retryMs = 20,
  ) {
    this.done = Promise.all(Array.from({ length: window }, () => this.worker())).then(() => undefined);
  }

  private async worker(): Promise<void> {
    while (!this.stopped && this.next < SECTORS) {
      const lba = this.next++;
      this.firstSent[lba] = performance.now();
      for (;;) {
        const tag = this.ini.write(lba, written(lba));
        try {
          const r = await this.ini.ataReply(tag, this.retryMs);
          if (r.ata.failed) throw new Error(`write of sector ${lba} failed`);
          break;
        } catch (e) {
          if (!/timed out/.test((e as Error).message)) throw e;
          this.retransmits++;
        }
      }
      this.acked[lba] = performance.now();
    }
  }

  get count(): number {
    return this.acked.filter((x) => x !== undefined).length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

t.test(
  '-s export under a write load: a snapshot holds every write acknowledged before it was asked for; revert brings it back',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { image, config, snapDir } = await lab(t, { sync: true });
    const { server, net } = await startInProcess(t, [config]);
    const ini = new Initiator(net, IFACE, '02:00:00:00:0a:01');
    const load = new WriteLoad(ini, 8);
    const pauses: number[] = [];
    const checks: { name: string; asked: number; returned: number }[] = [];
    for (let i = 0; i < 5; i++) {
      await until(() => load.count >= 200 * (i + 1));
      const asked = performance.now();
      const r = await server.snapshot('e1.2', `s${i}`);
      checks.push({ name: `s${i}`, asked, returned: performance.now() });
      pauses.push(r.pausedMs);
      t.equal(r.file, join(snapDir, `s${i}.img`));
    }
    await until(() => load.count >= 1200);
    await load.stop();
    for (const c of checks) {
      const file = join(snapDir, `${c.name}.img`);
      let before = 0;
      let after = 0;
      let wrong = 0;
      for (let lba = 0; lba < load.firstSent.length; lba++) {
        const got = sectorOf(file, lba);
        if (load.acked[lba] < c.asked) {
          before++;
          if (!got.equals(written(lba))) wrong++;
        } else if (load.firstSent[lba] > c.returned) {
          after++;
          if (!got.equals(patternSectors(lba))) wrong++;
        } else if (!got.equals(written(lba)) && !got.equals(patternSectors(lba))) wrong++;
      }
      t.equal(wrong, 0, `${c.name}: all ${before} writes acknowledged before it are in it, none of the ${after} sent after it`);
    }
    const sorted = [...pauses].sort((a, b) => a - b);
    t.comment(
      `snapshot pauses under load (ms): ${pauses.map((p) => p.toFixed(2)).join(' ')}; median ${sorted[2].toFixed(2)}; ${load.retransmits} retransmissions`,
    );
    t.ok(sorted[2] < 1000, 'the pause is well under a second');
    t.same(
      server.listSnapshots('e1.2').map((s) => [s.name, s.of]),
      checks.map((c) => [c.name, 'export']),
    );

    await t.rejects(
      server.revert('e1.2', 's2'),
      /served an initiator .* ago; .* or give --force/,
      'refused while the initiator is active',
    );
    const target = sha(join(snapDir, 's2.img'));
    await server.revert('e1.2', 's2', true);
    t.equal(sha(image), target, 'after revert the export file is exactly the snapshot');
    const lastWritten = load.firstSent.length - 1;
    const r = await ini.ataReply(ini.read(lastWritten, 1));
    t.same(
      Buffer.from(r.ata.data.subarray(0, 512)),
      patternSectors(lastWritten),
      'and the initiator reads it: a sector written after the snapshot is back to before',
    );

    t.equal(server.deleteSnapshot('e1.2', 's0'), join(snapDir, 's0.img'));
    t.notOk(fs.existsSync(join(snapDir, 's0.img')));
    await t.rejects(server.snapshot('e1.2', 's1'), /exists; choose another name/);
    await t.rejects(server.snapshot('e1.2', '../x'), /not a snapshot name/);
    t.throws(() => server.deleteSnapshot('e1.2', 'nope'), /no snapshot "nope"/);
  },
);

t.test('a snapshot served read-only as another address', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, snapDir } = await lab(t);
  let target = await startInProcess(t, [config]);
  let ini = new Initiator(target.net, IFACE, '02:00:00:00:0a:01');
  t.notOk((await ini.ataReply(ini.write(5, written(5)))).ata.failed);
  await target.server.snapshot('e1.2', 'golden');
  t.notOk((await ini.ataReply(ini.write(5, written(6)))).ata.failed, 'the export moves on');
  await target.server.stop();
  const snapshotExport = exportOf(join(snapDir, 'golden.img'), { slot: 3, readOnly: true });
  target = await startInProcess(t, [config, snapshotExport]);
  ini = new Initiator(target.net, IFACE, '02:00:00:00:0a:01');
  const r = await ini.ataReply(ini.read(5, 1, 1, 3));
  t.same(Buffer.from(r.ata.data.subarray(0, 512)), written(5), 'e1.3 serves the snapshot');
  t.ok((await ini.ataReply(ini.write(5, written(7), 1, 3))).ata.failed, 'and refuses writes');
  const now = await ini.ataReply(ini.read(5, 1));
  t.same(Buffer.from(now.ata.data.subarray(0, 512)), written(6), 'e1.2 serves the export as it is now');
});

t.test('a snapshot of one view, and revert of it', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config } = await lab(t, { views: 'per-initiator' });
  const { server, net } = await startInProcess(t, [config]);
  const a = new Initiator(net, IFACE, '02:00:00:00:0a:01');
  const b = new Initiator(net, IFACE, '02:00:00:00:0b:01');
  t.notOk((await withRetransmits(a, () => a.write(9, written(1)))).ata.failed);
  t.notOk((await withRetransmits(b, () => b.write(9, written(2)))).ata.failed);
  const s = await server.snapshot('e1.2', 'a-before', '02:00:00:00:0A:01');
  t.equal(s.of, '02:00:00:00:0a:01', 'the MAC as the view list writes it');
  t.same(
    server.listSnapshots('e1.2').map((x) => x.of),
    ['02:00:00:00:0a:01'],
  );
  t.notOk((await a.ataReply(a.write(9, written(3)))).ata.failed);
  await server.revert('e1.2', 'a-before', true);
  const ra = await a.ataReply(a.read(9, 1));
  t.same(Buffer.from(ra.ata.data.subarray(0, 512)), written(1), "A's view is back to the snapshot");
  const rb = await b.ataReply(b.read(9, 1));
  t.same(Buffer.from(rb.ata.data.subarray(0, 512)), written(2), "B's view is untouched");
  await t.rejects(server.snapshot('e1.2', 'x', '02:00:00:00:99:99'), /no view for 02:00:00:00:99:99/);
});

t.test('an export without views-dir has no place for snapshots', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, 64, { dir: mnt });
  const { server } = await startInProcess(t, [exportOf(image)]);
  await t.rejects(server.snapshot('e1.2', 'x'), /no place for snapshots; set views-dir/);
});

t.test("revert of a view checks that machine's own activity, not the other machines'", async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config } = await lab(t, { views: 'per-initiator' });
  let target = await startInProcess(t, [config]);
  let a = new Initiator(target.net, IFACE, '02:00:00:00:0a:01');
  t.notOk((await withRetransmits(a, () => a.write(9, written(1)))).ata.failed);
  await target.server.snapshot('e1.2', 'a-monday', '02:00:00:00:0a:01');
  t.notOk((await a.ataReply(a.write(9, written(3)))).ata.failed);
  await t.rejects(
    target.server.revert('e1.2', 'a-monday'),
    /the view of 02:00:00:00:0a:01 served an initiator \d+ s ago; .* Shut that machine down .* or give --force/,
    'A itself was just active: refused',
  );
  // A new run, ten minutes on (as views.json says): A is powered off, B (another machine of the lab) is busy.
  await target.server.stop();
  const meta = join(config.viewsDir!, 'e1.2', 'views.json');
  const saved = JSON.parse(fs.readFileSync(meta, 'utf8')) as { views: Record<string, { lastSeen: number }> };
  t.ok(saved.views['020000000a01'].lastSeen > Date.now() - 60_000, "A's last use is saved");
  saved.views['020000000a01'].lastSeen = Date.now() - 10 * 60_000;
  fs.writeFileSync(meta, JSON.stringify(saved));
  target = await startInProcess(t, [config]);
  const b = new Initiator(target.net, IFACE, '02:00:00:00:0b:01');
  t.notOk((await withRetransmits(b, () => b.write(9, written(2)))).ata.failed);
  await target.server.revert('e1.2', 'a-monday');
  t.pass('reverted without --force while another machine is busy');
  a = new Initiator(target.net, IFACE, '02:00:00:00:0a:01');
  const ra = await withRetransmits(a, () => a.read(9, 1));
  t.same(Buffer.from(ra.ata.data.subarray(0, 512)), written(1), "A's view is back to the snapshot");
});
