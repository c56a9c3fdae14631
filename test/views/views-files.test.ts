// The files of views and snapshots under damage and attack, on a real XFS
// with reflinks: a views-dir others may write is refused at start; a view
// file that is not what it claims (a link, a hard link, missing, shorter
// than the image, a FIFO) is refused loudly and never served, while the
// other views and new initiators go on; views are opened when first used,
// not all at start; a FIFO or link planted in snapshots/ neither hangs the
// listing nor gets written through; `user =` gets directories it can use.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import type { TestLike } from '../../lab/common';
import type { ExportConfig } from '../../src/config/export-config';
import { Server } from '../../src/target/server';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile, patternSectors, tempDir } from '../helpers/files';
import { exportOf, IFACE, Initiator } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 2048; // 1 MiB
const KEY = 'e1.2';
const NOBODY = 65534;

function sha(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function mac(n: number): string {
  return `02:00:00:00:0a:${n.toString(16).padStart(2, '0')}`; // not 02:00:00:00:00:xx, the fake interfaces' own
}

function viewFile(dir: string, n: number): string {
  return join(dir, `020000000a${n.toString(16).padStart(2, '0')}.img`);
}

interface Running {
  server: Server;
  net: FakeNetwork;
  logs: { msg: string; level: number }[];
  stop(): Promise<void>;
}

/** The serving core on a fake network, its log kept. */
async function start(t: TestLike, config: ExportConfig, user?: string): Promise<Running> {
  const net = new FakeNetwork();
  const iface = net.addInterface(IFACE, {});
  const logs: { msg: string; level: number }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => logs.push(JSON.parse(s) as { msg: string; level: number }) });
  const server = await Server.start(
    { exports: [config], user },
    log,
    {},
    { linkCheckMs: 60_000, duplicateProbeMs: 0, addon: net.addon },
  );
  iface.takeSent(); // the announcement
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    net.holdIo(false);
    await server.stop();
  };
  t.teardown(stop);
  return { server, net, logs, stop };
}

async function lab(t: TestLike): Promise<{ mnt: string; image: string; config: ExportConfig; dir: string }> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  const config = exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views') });
  return { mnt, image, config, dir: join(mnt, 'views', KEY) };
}

async function read(i: Initiator, lba: number): Promise<Buffer | undefined> {
  const r = await withRetransmits(i, () => i.read(lba, 1, 1, 2));
  return r.ata.failed ? undefined : Buffer.from(r.ata.data.subarray(0, 512));
}

async function write(i: Initiator, lba: number, fill: number): Promise<boolean> {
  return !(await withRetransmits(i, () => i.write(lba, Buffer.alloc(512, fill)))).ata.failed;
}

async function startError(t: TestLike, config: ExportConfig): Promise<string> {
  try {
    await start(t, config);
  } catch (e) {
    return (e as Error).message;
  }
  return 'started';
}

t.test('a views-dir others may write, or of another user, is refused at start with the fix', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config } = await lab(t);
  const views = join(mnt, 'views');
  fs.mkdirSync(views, { mode: 0o700 });
  fs.chmodSync(views, 0o777);
  t.match(
    await startError(t, config),
    new RegExp(`views-dir ${views} is writable by its group and others \\(mode 0777\\).*chmod go-w ${views}`),
  );
  fs.chmodSync(views, 0o755);
  fs.chownSync(views, NOBODY, NOBODY);
  t.match(await startError(t, config), new RegExp(`views-dir ${views} belongs to uid 65534.*chown 0 ${views}`));
  fs.chownSync(views, 0, 0);
  fs.mkdirSync(join(views, KEY), { mode: 0o700 });
  fs.chownSync(join(views, KEY), NOBODY, NOBODY); // nobody made eS.L before the daemon did
  t.match(await startError(t, config), new RegExp(`views directory of ${KEY} ${join(views, KEY)} belongs to uid 65534`));
  fs.chownSync(join(views, KEY), 0, 0);
  t.equal(await startError(t, config), 'started', 'served once both are root-owned and private');
});

t.test('view files that are not what they claim are refused loudly, never served; the rest serves', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, image, config, dir } = await lab(t);
  const before = sha(image);
  let r = await start(t, config);
  for (let n = 1; n <= 6; n++) t.ok(await write(new Initiator(r.net, IFACE, mac(n)), 7, n), `initiator ${n} writes its view`);
  await r.stop();

  const secret = join(mnt, 'secret');
  fs.writeFileSync(secret, Buffer.alloc(SECTORS * 512, 0x55), { mode: 0o600 });
  fs.rmSync(viewFile(dir, 1));
  fs.symlinkSync(secret, viewFile(dir, 1)); // 1: a link to another file
  fs.linkSync(viewFile(dir, 2), join(mnt, 'elsewhere.img')); // 2: a hard link
  fs.rmSync(viewFile(dir, 3)); // 3: gone
  fs.truncateSync(viewFile(dir, 4), 4096); // 4: shorter than the image
  fs.rmSync(viewFile(dir, 5));
  execFileSync('mkfifo', [viewFile(dir, 5)]); // 5: a FIFO
  const secretBefore = sha(secret);

  r = await start(t, config);
  t.pass('the export starts (no restart loop)');
  const why: Record<number, RegExp> = {
    1: /is a symbolic link/,
    2: /has 2 names \(a hard link/,
    3: /is missing \(views\.json lists it\)/,
    4: /has 4096 bytes, fewer than the image's 1048576/,
    5: /is a FIFO, not a regular file/,
  };
  for (let n = 1; n <= 5; n++) {
    const i = new Initiator(r.net, IFACE, mac(n));
    t.equal(await read(i, 7), undefined, `initiator ${n}: a read gets an error reply`);
    t.equal(await write(i, 7, 0xee), false, `initiator ${n}: a write gets an error reply`);
  }
  t.same(await read(new Initiator(r.net, IFACE, mac(6)), 7), Buffer.alloc(512, 6), 'the intact view serves its own write');
  const fresh = new Initiator(r.net, IFACE, mac(9));
  t.ok(await write(fresh, 7, 9), 'a new initiator gets a view and writes');
  const listed = r.server.listViews(KEY);
  for (let n = 1; n <= 5; n++) {
    const v = listed.find((x) => x.mac === mac(n));
    t.match(v?.refused, why[n], `ctl views shows view ${n} refused: ${v?.refused}`);
    const lines = r.logs.filter((l) => l.msg.includes(`the view of ${mac(n)} is refused`));
    t.equal(lines.length, 1, `the log says so once for view ${n}`);
    t.match(lines[0]?.msg, new RegExp(`view-reset ${KEY} ${mac(n)}.*view-drop ${KEY} ${mac(n)}`), 'and what to do');
  }
  t.notOk(listed.find((x) => x.mac === mac(6))?.refused, 'the intact view is not refused');
  t.equal(sha(secret), secretBefore, 'the linked file was never written');
  t.ok(fs.lstatSync(viewFile(dir, 1)).isSymbolicLink(), 'nor the link replaced by a fresh clone');
  t.notOk(fs.existsSync(viewFile(dir, 3)), 'nor the missing view remade');
  t.equal(fs.statSync(viewFile(dir, 4)).size, 4096, 'nor the short view grown');
  t.equal(sha(image), before, 'the image is unchanged');

  t.same(await r.server.resetViews(KEY, mac(1), true), [mac(1)], 'view-reset of the link');
  t.same(await read(new Initiator(r.net, IFACE, mac(1)), 7), patternSectors(7), 'serves a fresh copy of the image');
  t.equal(sha(secret), secretBefore, 'the file the link named is untouched');
  t.same(await r.server.dropViews(KEY, [mac(5)], true), [mac(5)], 'view-drop of the FIFO');
  t.ok(await write(new Initiator(r.net, IFACE, mac(5)), 7, 5), 'then its initiator gets a new view');
  await r.stop();

  // Refused views stay listed across a restart: a missing file is noticed again, not remade empty.
  r = await start(t, config);
  t.match(r.server.listViews(KEY).find((x) => x.mac === mac(3))?.refused, /is missing/, 'still refused after a restart');
});

t.test('views are opened when first used, not all at start', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config } = await lab(t);
  let r = await start(t, config);
  for (let n = 1; n <= 40; n++) t.ok(await write(new Initiator(r.net, IFACE, mac(n)), 7, n), `view ${n}`);
  await r.stop();
  const fds = (): number => fs.readdirSync('/proc/self/fd').length;
  const before = fds();
  r = await start(t, config);
  t.ok(fds() - before < 40, `a restart with 40 views opened ${fds() - before} descriptors, not one per view`);
  t.equal(r.server.listViews(KEY).length, 40, 'every view is listed');
  t.same(
    await read(new Initiator(r.net, IFACE, mac(17)), 7),
    Buffer.alloc(512, 17),
    'a view opened at its first request reads its own write',
  );
  t.same(await read(new Initiator(r.net, IFACE, mac(17)), 8), patternSectors(8), 'and the image where it wrote nothing');
});

t.test('snapshots/: a planted FIFO does not hang listing or stats, a planted link is not written through', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config, dir } = await lab(t);
  const r = await start(t, config);
  t.ok(await write(new Initiator(r.net, IFACE, mac(1)), 7, 1), 'a view');
  await r.server.snapshot(KEY, 'first', mac(1));
  const snaps = join(dir, 'snapshots');
  execFileSync('mkfifo', [join(snaps, 'trap.img')]);
  const victim = join(mnt, 'victim');
  fs.writeFileSync(victim, 'root only\n', { mode: 0o600 });
  fs.symlinkSync(victim, join(snaps, 'snap1.json'));
  const t0 = Date.now();
  const list = r.server.listSnapshots(KEY);
  r.server.stats();
  t.ok(Date.now() - t0 < 2000, 'listing and stats return at once');
  t.same(
    list.map((s) => s.name),
    ['first'],
    'the FIFO is not listed as a snapshot',
  );
  await t.rejects(r.server.snapshot(KEY, 'snap1'), /snap1\.json exists/, 'a name whose metadata is planted is refused');
  t.equal(fs.readFileSync(victim, 'utf8'), 'root only\n', 'the linked file is untouched');
  t.same(
    fs.readdirSync(snaps).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left',
  );
});

t.test('user =: the views directories are made for that user, and one of root refused with the fix', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { config, dir } = await lab(t);
  const r = await start(t, config, 'nobody');
  t.equal(fs.statSync(dir).uid, NOBODY, 'VIEWSDIR/eS.L is made for nobody');
  await r.server.snapshot(KEY, 'one');
  t.equal(fs.statSync(join(dir, 'snapshots')).uid, NOBODY, 'and snapshots/');
  await r.stop();
  const views = dirname(dir);
  fs.chownSync(dir, 0, 0); // left by a run without user =
  await t.rejects(
    start(t, config, 'nobody'),
    new RegExp(`${dir} belongs to uid 0, but the daemon switches to user nobody \\(uid 65534\\).*chown -R nobody: ${views}$`),
  );
  fs.chownSync(dir, NOBODY, NOBODY);
  // views-dir itself root's and 0700 (made by an admin, or by a run as root): nobody could not make a view in it.
  fs.chownSync(views, 0, 0);
  fs.chmodSync(views, 0o700);
  await t.rejects(
    start(t, config, 'nobody'),
    new RegExp(
      `views-dir ${views} belongs to uid 0 \\(mode 0700\\), and user nobody \\(uid 65534\\), which the daemon switches to, cannot make files in it; ` +
        `give it to that user: chown -R nobody: ${views}$`,
    ),
  );
  fs.chownSync(views, NOBODY, NOBODY);
  await start(t, config, 'nobody');
  t.pass("served once it is the user's");
});

t.test(
  'a reload that turns views off is refused unless the image is then served read-only; the image is never written',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const { image, config } = await lab(t);
    const before = sha(image);
    const r = await start(t, config);
    const a = new Initiator(r.net, IFACE, mac(1));
    t.ok(await write(a, 9, 0x99), 'A writes sector 9 of its view');
    const plain = exportOf(image);
    await t.rejects(
      r.server.apply({ exports: [plain] }),
      new RegExp(
        `${KEY} serves per-initiator views of ${image}; this reload would let every initiator write the image itself.*read-only = yes`,
      ),
      'serving the image writable without views is refused',
    );
    t.same(await read(a, 9), Buffer.alloc(512, 0x99), 'A still reads its view');
    t.same(
      await r.server.apply({ exports: [{ ...plain, readOnly: true }] }),
      { added: [], removed: [], changed: [KEY], resized: [] },
      'without views and read-only: applied',
    );
    t.same(await read(a, 9), patternSectors(9), 'A now reads the image');
    t.equal(await write(a, 9, 0x77), false, 'and cannot write it');
    t.equal(sha(image), before, "the image's bytes are unchanged");
  },
);

t.test('user = nobody: after the switch, new machines get views and snapshots are taken', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { mnt, config, dir } = await lab(t);
  // As under /srv: the daemon's user may pass through the directories above the image (ctl snapshot looks it up by path).
  fs.chmodSync(dirname(mnt), 0o755);
  const dist = join(__dirname, '../..');
  // The serving core in a process of its own, which switches to nobody as the worker does once it has started.
  const script = `
    const { Server } = require(${JSON.stringify(join(dist, 'src/target/server.js'))});
    const { native } = require(${JSON.stringify(join(dist, 'src/native/addon.js'))});
    const { FakeNetwork } = require(${JSON.stringify(join(dist, 'test/helpers/fake-addon.js'))});
    const { Initiator, IFACE } = require(${JSON.stringify(join(dist, 'test/helpers/in-process.js'))});
    const { withRetransmits } = require(${JSON.stringify(join(dist, 'test/helpers/retransmit.js'))});
    const pino = require(${JSON.stringify(require.resolve('pino'))});
    (async () => {
      const net = new FakeNetwork();
      const iface = net.addInterface(IFACE, {});
      const server = await Server.start({ exports: [${JSON.stringify(config)}], user: 'nobody' }, pino({ level: 'silent' }), {},
        { linkCheckMs: 60000, duplicateProbeMs: 0, addon: net.addon });
      iface.takeSent();
      native.dropPrivileges('nobody');
      const i = new Initiator(net, IFACE, '02:00:00:00:0a:01');
      const w = await withRetransmits(i, () => i.write(7, Buffer.alloc(512, 7)));
      const snap = await server.snapshot('e1.2', 'after', '02:00:00:00:0a:01').then(() => 'taken', (e) => e.message);
      console.log(JSON.stringify({ euid: process.geteuid(), written: !w.ata.failed, snap }));
      await server.stop();
      process.exit(0);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const cwd = tempDir(t, 'as-nobody');
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd,
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH },
  });
  // Its exit status is tap's (which cannot write its records as nobody); what it did is the line it printed.
  const out = JSON.parse(r.stdout || '{}') as { euid?: number; written?: boolean; snap?: string };
  t.ok(r.stdout, `ran: ${r.stderr.trim().slice(0, 300)}`);
  t.equal(out.euid, NOBODY, 'the process runs as nobody');
  t.equal(out.written, true, 'a new machine got its view and wrote');
  t.equal(out.snap, 'taken', `a snapshot of its view was taken (${out.snap})`);
  t.equal(fs.statSync(join(dir, '020000000a01.img')).uid, NOBODY, "the view is nobody's");
  t.ok(fs.existsSync(join(dir, 'snapshots', 'after.img')), 'the snapshot is there');
});
