// Attacks on the bounds of views that a restart should not reset: on a real
// XFS with reflinks, a forger on the segment makes as many views as
// max-views allows, waits for the daemon to restart (an upgrade, a reboot, a
// crash), and floods again. The views of the earlier run are still files on
// disk, so the export's bound must count them whether or not they were
// opened in this run.

import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { ExportConfig } from '../../src/config/export-config';
import { Server } from '../../src/target/server';
import type { TestLike } from '../../lab/common';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile } from '../helpers/files';
import { exportOf, IFACE, Initiator } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const SECTORS = 2048; // 1 MiB

/** A forged source MAC: locally administered unicast, one per number. */
function forged(i: number): string {
  return `02:5e:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
}

/** The serving core on a fake network; stopped at teardown. */
async function start(t: TestLike, config: ExportConfig): Promise<{ server: Server; net: FakeNetwork }> {
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const server = await Server.start(
    { exports: [config] },
    pino({ level: 'silent' }),
    {},
    { linkCheckMs: 60_000, duplicateProbeMs: 0, addon: net.addon },
  );
  let stopped = false;
  const stop = server.stop.bind(server);
  server.stop = async () => {
    if (stopped) return;
    stopped = true;
    await stop();
  };
  t.teardown(() => server.stop());
  net.interfaceNamed(IFACE)!.takeSent();
  return { server, net };
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
