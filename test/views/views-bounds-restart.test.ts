// Attacks on the bounds of views that a restart should not reset: on a real
// XFS with reflinks, a forger on the segment makes as many views as
// max-views allows, waits for the daemon to restart (an upgrade, a reboot, a
// crash), and floods again. The views of the earlier run are still files on
// disk, so the export's bound must count them whether or not they were
// opened in this run. A machine whose view exists and is refused a
// descriptor is told why, and a reservation keeps forged machines from
// using up max-views while they can neither read nor write.

import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Server } from '../../src/target/server';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile } from '../helpers/files';
import { exportOf, IFACE, Initiator, startOneExport as start } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 2048; // 1 MiB

/** A forged source MAC: locally administered unicast, one per number. */
function forged(i: number): string {
  return `02:5e:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
}

async function write(i: Initiator, lba: number, fill: number): Promise<boolean> {
  return !(await withRetransmits(i, () => i.write(lba, Buffer.alloc(512, fill)))).ata.failed;
}

function viewFiles(mnt: string): string[] {
  return fs.readdirSync(join(mnt, 'views', 'e1.2')).filter((f) => f.endsWith('.img'));
}

t.test('max-views still bounds an export after a restart: views of the earlier run count', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  const config = exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views'), maxViews: 4 });
  let r = await start(t, config);
  let made = 0;
  for (let i = 0; i < 6; i++) if (await write(new Initiator(r.net, IFACE, forged(i)), 1, i)) made++;
  t.equal(made, 4, 'the first run: four forged machines of six got a view (max-views = 4)');
  t.equal(viewFiles(mnt).length, 4, 'four view files');
  await r.server.stop();

  for (let run = 2; run <= 3; run++) {
    r = await start(t, config);
    made = 0;
    for (let i = 0; i < 6; i++) if (await write(new Initiator(r.net, IFACE, forged(run * 100 + i)), 1, i)) made++;
    t.equal(made, 0, `run ${run}: no new forged machine gets a view, the export has max-views already`);
    t.equal(viewFiles(mnt).length, 4, `run ${run}: still four view files on disk`);
    t.equal(r.server.listViews('e1.2').length, 4, `run ${run}: ctl views lists four`);
    t.ok(
      await write(new Initiator(r.net, IFACE, forged(0)), 2, 0xaa),
      `run ${run}: a machine of the first run still writes its view`,
    );
    await r.server.stop();
  }
});

t.test('a machine whose view exists, starved of a descriptor by forged views of another export, is told why', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  const lab = exportOf(await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' }), {
    views: 'per-initiator',
    viewsDir: join(mnt, 'views'),
    macMask: ['02:00:00:00:0a:0a'],
  });
  const open = exportOf(await patternFile(t, SECTORS, { dir: mnt, name: 'other.img' }), {
    slot: 3,
    views: 'per-initiator',
    viewsDir: join(mnt, 'views'),
  });
  const net0 = new FakeNetwork();
  net0.addInterface(IFACE);
  const opts = { linkCheckMs: 60_000, duplicateProbeMs: 0, maxViews: 4 };
  let server = await Server.start({ exports: [lab, open] }, pino({ level: 'silent' }), {}, { ...opts, addon: net0.addon });
  t.ok(await write(new Initiator(net0, IFACE, '02:00:00:00:0a:0a'), 1, 0xaa), 'the lab machine writes its view');
  await server.stop();

  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const log: { msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void log.push(JSON.parse(s) as { msg: string }) });
  server = await Server.start({ exports: [lab, open] }, logger, {}, { ...opts, addon: net.addon });
  t.teardown(() => server.stop());
  let made = 0;
  for (let i = 0; i < 6; i++) {
    const f = new Initiator(net, IFACE, forged(i));
    if (!(await withRetransmits(f, () => f.write(1, Buffer.alloc(512, i), 1, 3))).ata.failed) made++;
  }
  t.equal(made, 4, 'forged machines on the other export took the process bound of four views');
  const a = new Initiator(net, IFACE, '02:00:00:00:0a:0a');
  const r = await withRetransmits(a, () => a.read(1, 1, 1, 2));
  t.ok(r.ata.failed, 'the lab machine, whose view exists, gets an error reply (the bound is the process’s)');
  const s = server.stats().exports.find((e) => e.key === 'e1.2')!;
  t.ok((s.views?.refused['open-files'] ?? 0) >= 1, `its export counts the refusal: ${JSON.stringify(s.views?.refused)}`);
  t.ok(
    log.some(
      (l) => /02:00:00:00:0a:0a|e1\.2/.test(JSON.stringify(l)) && /open-file|LimitNOFILE|open in this process/.test(l.msg),
    ),
    'and the log says why its machine is refused',
  );
});

t.test('IDENTIFY from machines a reservation refuses makes no views for them', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
  const config = exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views'), maxViews: 4 });
  const r = await start(t, config);
  const holder = new Initiator(r.net, IFACE, '02:00:00:00:0a:0a');
  t.ok(await write(holder, 1, 0xaa), 'the holder has its view');
  t.notOk((await holder.reply(holder.reserve(['02:00:00:00:0a:0a']))).header.error, 'and reserves the export');
  for (let i = 0; i < 6; i++) {
    const f = new Initiator(r.net, IFACE, forged(i));
    await f.ataReply(f.identify()).catch(() => undefined);
    const w = await f.reply(f.write(1, Buffer.alloc(512, i)));
    t.equal(w.header.errorCode, 6, `forged machine ${i}: its write is refused (target reserved)`);
  }
  t.same(viewFiles(mnt), ['020000000a0a.img'], 'no view was made for a machine that may not read or write');
  t.notOk((await holder.reply(holder.reserve([]))).header.error, 'the holder releases the reservation');
  const next = new Initiator(r.net, IFACE, '02:00:00:00:0a:0b');
  t.ok(await write(next, 1, 0xbb), 'the next lab machine gets a view: the forged ones did not use up max-views');
});
