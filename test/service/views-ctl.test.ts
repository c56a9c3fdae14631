// `vblade ctl views | view-reset | view-drop | snapshot | snapshots |
// snapshot-delete | revert` from the command line to the server and back:
// the arguments as parsed, the request through the control table, the
// worker with the real Server on the fake addon and a real XFS with
// reflinks, and the text an operator reads; views and snapshots in stats
// and metrics.

import * as fs from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { formatResult, parseCtlArgs } from '../../src/cli/ctl';
import { formatStatsTables } from '../../src/cli/stats-table';
import { dispatch, type ControlTarget } from '../../src/service/control';
import { renderMetrics } from '../../src/service/metrics';
import { WorkerCore, type StartServer } from '../../src/service/worker';
import type { ServerStats } from '../../src/api/control';
import { Server } from '../../src/target/server';
import { SIZES_REFRESH_MS } from '../../src/views/sizes';
import { FakeNetwork } from '../helpers/fake-addon';
import type { TestLike } from '../../lab/common';
import { patternFile } from '../helpers/files';
import { exportOf, IFACE, Initiator } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';

const MAC_A = '02:00:00:00:0a:01';
const MAC_B = '02:00:00:00:0b:01';

/** What `vblade ctl ARGS` would print, run against `target` without a socket. */
async function ctl(target: ControlTarget, ...argv: string[]): Promise<{ ok: boolean; text: string }> {
  const o = parseCtlArgs(argv);
  const reply = await dispatch(target, { command: o.command, export: o.export, ...(o.macs ? { macs: o.macs } : {}), ...o.extra });
  return reply.ok ? { ok: true, text: formatResult(o.command, reply.result) } : { ok: false, text: reply.error ?? '' };
}

async function setup(t: TestLike): Promise<{ target: ControlTarget; core: WorkerCore; net: FakeNetwork; mnt: string }> {
  const mnt = await loopFs(t, 'xfs-reflink');
  const image = await patternFile(t, 1024, { dir: mnt, name: 'golden.img' });
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const start: StartServer = (config, log, hooks) =>
    Server.start(config, log, hooks, { addon: net.addon, linkCheckMs: 60_000, duplicateProbeMs: 0 });
  const core = new WorkerCore(start, pino({ level: 'silent' }));
  await core.start({ exports: [exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views') })] });
  t.teardown(() => core.stop());
  const target: ControlTarget = {
    request: (op, key, macs, extra) => core.request(op, key, macs, extra),
    reload: () => Promise.resolve({}),
  };
  return { target, core, net, mnt };
}

t.test('the command line of the new commands', async (t) => {
  t.match(parseCtlArgs(['view-reset', 'e1.1', '--all']), { command: 'view-reset', export: 'e1.1', extra: { all: true } });
  t.match(parseCtlArgs(['view-drop', 'e1.1', MAC_A, MAC_B]), { extra: { words: [MAC_A, MAC_B] } });
  t.match(parseCtlArgs(['snapshot', 'e1.1', 'monday', '--view', MAC_A]), { extra: { words: ['monday'], view: MAC_A } });
  t.match(parseCtlArgs(['snapshot', 'e1.1']), { extra: {} });
  t.match(parseCtlArgs(['revert', 'e1.1', 'monday', '--force']), { extra: { words: ['monday'], force: true } });
  t.match(parseCtlArgs(['view-drop', 'e1.1', 'aa:bb:cc:dd:ee:ff', '--force']), { extra: { force: true } });
  t.match(parseCtlArgs(['view-reset', 'e1.1', '--all', '--force']), { extra: { all: true, force: true } });
  t.throws(
    () => parseCtlArgs(['revert', 'e1.1']),
    /^revert needs a name after the export \(usage: vblade ctl revert EXPORT NAME \[--force\]; e\.g\. vblade ctl revert e1\.1 monday\)$/,
  );
  t.throws(() => parseCtlArgs(['views', 'e1.1', '--force']), /^views has no option --force; it takes none/);
});

t.test('views, reset, drop, snapshots and revert through ctl, as an operator reads them', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const { target, core, net, mnt } = await setup(t);
  t.same(await ctl(target, 'views', 'e1.2'), {
    ok: true,
    text: "e1.2: no views yet (one is made by an initiator's first request)",
  });
  const a = new Initiator(net, IFACE, MAC_A);
  const b = new Initiator(net, IFACE, MAC_B);
  t.notOk((await withRetransmits(a, () => a.write(1, Buffer.alloc(512, 1)))).ata.failed);
  t.notOk((await withRetransmits(b, () => b.write(1, Buffer.alloc(512, 2)))).ata.failed);
  const views = await ctl(target, 'views', 'e1.2');
  t.ok(views.ok);
  const lines = views.text.split('\n');
  t.equal(lines[0], 'MAC\tOWN\tCREATED\tLAST SEEN');
  t.match(lines[1], /^02:00:00:00:0a:01\t\d+\.\d KiB\t\d{4}-\d\d-\d\dT.*Z\t\d{4}-.*Z$/);
  t.match(lines[2], /^02:00:00:00:0b:01\t/);

  // The views' own bytes in stats are measured off the serving thread, within SIZES_REFRESH_MS.
  let stats = (await core.request('stats')) as ServerStats;
  const deadline = Date.now() + 2 * SIZES_REFRESH_MS + 2000;
  while (stats.exports[0].views?.ownBytes === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    stats = (await core.request('stats')) as ServerStats;
  }
  t.match(stats.exports[0].views, { count: 2, failures: 0 });
  t.match(
    formatStatsTables(stats).join('\n'),
    /export +views +max views +views own +views refused +shared cache +snapshots +snapshots own\ne1\.2 +2 +256 +\d/,
  );
  t.match(formatStatsTables(stats).join('\n'), /\ne1\.2 +2 +256 +[\d.]+ \S+ +0 +yes /, "the views share the image's page cache");
  const metrics = renderMetrics(stats);
  t.match(metrics, /vblade_export_views\{export="e1.2"\} 2/);
  t.match(metrics, /vblade_export_views_own_bytes\{export="e1.2"\} [1-9]/);
  t.match(metrics, /vblade_export_snapshots\{export="e1.2"\} 0/);

  const snap = await ctl(target, 'snapshot', 'e1.2', 'before', '--view', MAC_A);
  t.match(snap, {
    ok: true,
    text: /^e1\.2: snapshot before of the view of 02:00:00:00:0a:01 in .*\/views\/e1\.2\/snapshots\/before\.img; I\/O paused \d+\.\d ms$/,
  });
  t.match((await ctl(target, 'snapshots', 'e1.2')).text, /^NAME\tOF\tCREATED\tOWN\tFILE\nbefore\t02:00:00:00:0a:01\t/);
  t.match(await ctl(target, 'revert', 'e1.2', 'before'), { ok: false, text: /served an initiator \d+ s ago.*--force/ });
  t.same(await ctl(target, 'revert', 'e1.2', 'before', '--force'), {
    ok: true,
    text: 'e1.2: the view of 02:00:00:00:0a:01 is snapshot before again',
  });
  t.same(await ctl(target, 'snapshot-delete', 'e1.2', 'before'), {
    ok: true,
    text: `e1.2: snapshot before deleted (${join(mnt, 'views', 'e1.2', 'snapshots', 'before.img')})`,
  });

  t.match(await ctl(target, 'view-reset', 'e1.2'), { ok: false, text: /needs MACs or --all/ });
  t.match(await ctl(target, 'view-reset', 'e1.2', MAC_A), {
    ok: false,
    text: /the view of 02:00:00:00:0a:01 served an initiator \d+ s ago; nothing was reset\. .*or give --force/,
  });
  t.same(await ctl(target, 'view-reset', 'e1.2', MAC_A, '--force'), {
    ok: true,
    text: `e1.2: 1 view(s) reset to the image: ${MAC_A}`,
  });
  t.same(await ctl(target, 'view-reset', 'e1.2', '--all', '--force'), {
    ok: true,
    text: `e1.2: 2 view(s) reset to the image: ${MAC_A} ${MAC_B}`,
  });
  t.match(await ctl(target, 'view-drop', 'e1.2', MAC_B), { ok: false, text: /nothing was dropped.*--force/ });
  t.same(await ctl(target, 'view-drop', 'e1.2', MAC_B, '--force'), { ok: true, text: `e1.2: view(s) removed: ${MAC_B}` });
  t.notOk(fs.existsSync(join(mnt, 'views', 'e1.2', '020000000b01.img')));
  t.match(await ctl(target, 'view-drop', 'e1.2', MAC_B, '--force'), { ok: false, text: /no view for 02:00:00:00:0b:01/ });
  t.match(await ctl(target, 'views', 'e9.9'), { ok: false, text: /e9\.9/ });
});

t.test('the control protocol checks the words and options of each command', async (t) => {
  const target: ControlTarget = { request: () => Promise.resolve('ran'), reload: () => Promise.resolve({}) };
  t.match(await dispatch(target, { command: 'revert', export: 'e1.1' }), {
    ok: false,
    error: /revert takes 1 name \(snapshot name\), not 0/,
  });
  t.match(await dispatch(target, { command: 'views', export: 'e1.1', words: ['x'] }), { ok: false, error: /takes no words/ });
  t.match(await dispatch(target, { command: 'views', export: 'e1.1', force: true }), { ok: false, error: /takes no --force/ });
  t.match(await dispatch(target, { command: 'revert', export: 'e1.1', words: ['x'], force: 'yes' }), {
    ok: false,
    error: /wrong type/,
  });
  t.match(await dispatch(target, { command: 'revert', export: 'e1.1', words: ['x'], force: true }), { ok: true, result: 'ran' });
});
