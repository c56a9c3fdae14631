// Stats never show a false 0: when the serving process (switched to
// `user =`) cannot read an export's snapshots directory, `vblade ctl stats`
// shows the snapshot figures as unknown ("?") with the reason, and the
// metrics leave their samples out and raise vblade_export_snapshots_unknown.
// On a real XFS with reflinks; the serving core runs in a process of its own
// that drops to nobody, as the worker does.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { patternFile, tempDir } from '../helpers/files';
import { exportOf } from '../helpers/in-process';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';

const KEY = 'e1.2';

t.test('snapshots the serving user cannot read: ctl stats says "?" and why; metrics leave the figures out', async (t) => {
  if (!requireLoopFs(t, 'xfs-reflink')) return;
  const mnt = await loopFs(t, 'xfs-reflink');
  fs.chmodSync(dirname(mnt), 0o755);
  const image = await patternFile(t, 2048, { dir: mnt, name: 'golden.img' });
  const config = exportOf(image, { viewsDir: join(mnt, 'views') });
  const dist = join(__dirname, '../..');
  const req = (p: string): string => `require(${JSON.stringify(join(dist, p))})`;
  // Root takes two snapshots (snapshots/ is root's, mode 0700); a second server becomes nobody and reads its stats.
  const script = `
    const { Server } = ${req('src/target/server.js')};
    const { native } = ${req('src/native/addon.js')};
    const { FakeNetwork } = ${req('test/helpers/fake-addon.js')};
    const { IFACE } = ${req('test/helpers/in-process.js')};
    const { formatStatsTables } = ${req('src/cli/stats-table.js')};
    const { renderMetrics } = ${req('src/service/metrics.js')};
    const pino = require(${JSON.stringify(require.resolve('pino'))});
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    (async () => {
      const net = new FakeNetwork();
      net.addInterface(IFACE, {});
      const warnings = [];
      const log = pino({ level: 'warn' }, { write: (s) => warnings.push(JSON.parse(s).msg) });
      const start = () => Server.start({ exports: [${JSON.stringify(config)}] }, log, {},
        { linkCheckMs: 60000, duplicateProbeMs: 0, addon: net.addon });
      const first = await start();
      await first.snapshot('${KEY}', 'one');
      await first.snapshot('${KEY}', 'two');
      let asRoot;
      for (let i = 0; i < 50; i++) {
        asRoot = first.stats().exports[0].snapshots;
        if (asRoot.count === 2) break;
        await sleep(100);
      }
      await first.stop();
      // As the worker: started as root, then switched to the user before anything reads its stats.
      const server = await start();
      native.dropPrivileges('nobody');
      server.stats();
      let st;
      for (let i = 0; i < 50; i++) {
        st = server.stats();
        if (st.exports[0].snapshots.unknown !== undefined || st.exports[0].snapshots.count === 2) break;
        await sleep(100);
      }
      await sleep(200);
      st = server.stats();
      console.log(JSON.stringify({ euid: process.geteuid(), asRoot, snapshots: st.exports[0].snapshots,
        table: formatStatsTables(st), metrics: renderMetrics(st), warnings }));
      await server.stop();
      process.exit(0);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: tempDir(t, 'as-nobody'),
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH },
  });
  t.ok(r.stdout, `ran: ${r.stderr.trim().slice(0, 500)}`);
  const out = JSON.parse(r.stdout || '{}') as {
    euid?: number;
    asRoot?: { count: number };
    snapshots?: { count: number; unknown?: string };
    table?: string[];
    metrics?: string;
    warnings?: string[];
  };
  t.equal(out.euid, 65534, 'the process runs as nobody');
  t.equal(out.asRoot?.count, 2, 'as root both snapshots are counted');
  const dir = join(mnt, 'views', KEY, 'snapshots');
  const why = new RegExp(
    `^cannot read the snapshots in ${dir} \\(.*EACCES: permission denied.*\\); the serving process \\(user = when set\\) must be able to read them$`,
  );
  t.match(out.snapshots?.unknown, why, 'the stats say the figure is unknown, and why');
  const table = out.table ?? [];
  const header = table.findIndex((l) => l.startsWith('export') && l.includes('snapshots own'));
  t.ok(header >= 0, `the views and snapshots table: ${table.join('\n')}`);
  t.match(
    table[header + 1],
    new RegExp(`^${KEY.replace('.', '\\.')}\\s.*\\s\\?\\s+\\?$`),
    'snapshots "?" and own "?", not 0 and 0 B',
  );
  t.ok(
    table.some((l) => l.startsWith(`${KEY} snapshots ?: `) && why.test(l.slice(`${KEY} snapshots ?: `.length))),
    'and a line with the reason',
  );
  t.notMatch(out.metrics, /^vblade_export_snapshots\{/m, 'no snapshot count sample');
  t.notMatch(out.metrics, /^vblade_export_snapshots_own_bytes\{/m, 'no own-bytes sample');
  t.match(out.metrics, /^vblade_export_snapshots_unknown\{[^}]*export="e1\.2"[^}]*\} 1$/m, 'the unknown gauge is 1');
  t.equal(out.warnings?.filter((w) => w.startsWith('cannot read the snapshots')).length, 1, 'logged once');
});
