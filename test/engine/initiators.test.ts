// Per-initiator counters as an operator sees them: real frames from several
// MACs show each MAC's own requests, bytes and errors in the stats, in
// `vblade ctl stats --by-initiator` and in the metrics; thousands of forged
// source MACs leave a table of fixed size (the rest under "other", with the
// evictions counted) and a bounded label set.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { writeReadExt, padFrame } from '../../src/client/requests';
import { parseMac } from '../../src/client/mac';
import { parseCtlArgs } from '../../src/cli/ctl';
import { formatInitiatorTables } from '../../src/cli/stats-table';
import { ctlHelp } from '../../src/cli/ctl-args';
import { COMMANDS } from '../../src/service/control';
import { parseConfigFile } from '../../src/config/config-file';
import { InitiatorTable, InitiatorField } from '../../src/engine/initiators';
import { renderMetrics } from '../../src/service/metrics';
import { join } from 'node:path';
import { patternFile } from '../helpers/files';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { withRetransmits } from '../helpers/retransmit';
import { exportOf, IFACE, Initiator, settle, startInProcess, until } from '../helpers/in-process';
import { checkExposition, parseSample } from '../helpers/prometheus-text';

const SECTORS = 2048;

// A full collection before each heap reading, so that the reading is what is kept, not garbage not yet collected.
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

function macOf(i: number): string {
  const b = [0x02, 0x5e, (i >> 24) & 0xff, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

t.test('the table: one row per MAC, the least active row taken when full, its figures kept under "other"', async (t) => {
  const table = new InitiatorTable(4);
  const mac = (i: number): Uint8Array => parseMac(macOf(i));
  const rows = [1, 2, 3, 4].map((i) => table.rowFor(mac(i), 0));
  t.same(rows, [0, 1, 2, 3], 'four MACs, four rows');
  t.same(
    [1, 2, 3, 4].map((i) => table.rowFor(mac(i), 0)),
    rows,
    'each found again in its row',
  );
  // Activity: MAC 1 busiest, MAC 3 least.
  const bump = (row: number, n: number): void => {
    table.figures[row * InitiatorField.Count + InitiatorField.Requests] += n;
  };
  bump(0, 10);
  bump(1, 5);
  bump(2, 1);
  bump(3, 7);
  const gen = table.generation[2];
  const fifth = table.rowFor(mac(5), 0);
  t.equal(fifth, 2, 'a fifth MAC takes the row of the least active one');
  t.equal(table.evictions, 1);
  table.add(2, gen, InitiatorField.ReadBytes, 512); // a read of MAC 3 completing after its row changed hands
  const snap = table.snapshot();
  t.same(
    snap.map((r) => [r.mac, r.requests, r.readBytes]),
    [
      [macOf(1), 10, 0],
      [macOf(4), 7, 0],
      [macOf(2), 5, 0],
      [macOf(5), 0, 0],
      ['other', 1, 512],
    ],
    'MAC 3 is gone, its request and its late read are counted under "other"',
  );
  t.same(
    [1, 2, 4, 5].map((i) => table.rowFor(mac(i), 0)),
    [0, 1, 3, 2],
    'every MAC still there is found after the removal',
  );
  t.equal(table.evictions, 1, 'finding them took nothing');
  // Many evictions through the same index: no MAC is ever found twice or lost.
  for (let i = 6; i < 2000; i++) table.rowFor(mac(i), 0);
  const inTable = table.snapshot().filter((r) => r.mac !== 'other');
  t.equal(inTable.length, 4, 'four rows');
  t.equal(new Set(inTable.map((r) => r.mac)).size, 4, 'four different MACs');
  t.same(
    [1, 2, 4].map((i) => table.rowFor(mac(i), 0)),
    [0, 1, 3],
    'the three busy MACs kept their rows through 1994 new ones',
  );
  t.equal(new InitiatorTable(0).rowFor(mac(1), 0), 0, 'with no rows every MAC counts under "other" (row 0)');
  // A large table: a new MAC looks at 16 rows, not all of them, and still never takes a busy initiator's row.
  const big = new InitiatorTable(4096);
  const busy = Array.from({ length: 100 }, (_, i) => big.rowFor(mac(1_000_000 + i), 0));
  for (const r of busy) big.figures[r * InitiatorField.Count + InitiatorField.Requests] += 5;
  for (let i = 0; i < 20_000; i++) {
    const r = big.rowFor(mac(i), 0);
    big.figures[r * InitiatorField.Count + InitiatorField.Requests]++;
  }
  t.same(
    busy.map((_, i) => big.rowFor(mac(1_000_000 + i), 0)),
    busy,
    '100 busy initiators kept their rows through 20,000 one-request MACs in a table of 4,096',
  );
  t.equal(big.evictions, 20_000 - (4096 - 100), 'every new MAC beyond the free rows took one');
});

t.test('real frames from three MACs: the figures of each are what it sent', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server, net, initiator: a } = await startInProcess(t, [exportOf(file)]);
  const b = new Initiator(net, IFACE, '02:00:00:00:0b:01');
  const c = new Initiator(net, IFACE, '02:00:00:00:0c:01');
  for (let i = 0; i < 5; i++) t.notOk((await a.ataReply(a.read(i, 2))).ata.failed);
  for (let i = 0; i < 3; i++) t.notOk((await b.ataReply(b.write(100 + i, randomBytes(1024)))).ata.failed);
  t.notOk((await b.ataReply(b.read(0, 1))).ata.failed);
  t.ok((await c.ataReply(c.read(SECTORS + 10, 1))).ata.failed, 'a read past the end fails');
  await c.configReply(c.queryConfig());
  const list = server.stats().exports[0].initiators!.list;
  const by = Object.fromEntries(list.map((r) => [r.mac, r]));
  t.same(by['02:00:00:00:0a:01'], { mac: '02:00:00:00:0a:01', requests: 5, readBytes: 5 * 1024, writeBytes: 0, errors: 0 });
  t.same(by['02:00:00:00:0b:01'], { mac: '02:00:00:00:0b:01', requests: 4, readBytes: 512, writeBytes: 3 * 1024, errors: 0 });
  t.same(by['02:00:00:00:0c:01'], { mac: '02:00:00:00:0c:01', requests: 2, readBytes: 0, writeBytes: 0, errors: 1 });
  t.equal(list.length, 3, 'three rows, no "other"');
  const out = formatInitiatorTables(server.stats());
  t.match(out[0], /^e1\.2: 3 of 256 rows in use, 0 taken over by new MACs$/);
  t.match(out[2], /^ {2}02:00:00:00:0a:01 +5 +5\.0 KiB +0 B +0$/, 'busiest first, in the table of ctl stats --by-initiator');
  const page = renderMetrics(server.stats());
  t.same(checkExposition(page), [], 'the metrics page parses');
  const samples = page
    .split('\n')
    .map(parseSample)
    .filter((s) => s !== null && s.name.startsWith('vblade_initiator_'));
  const of = (name: string, mac: string): number | undefined =>
    samples.find((s) => s!.name === name && s!.labels.mac === mac && s!.labels.export === 'e1.2')?.value;
  t.equal(of('vblade_initiator_written_bytes_total', '02:00:00:00:0b:01'), 3072);
  t.equal(of('vblade_initiator_errors_total', '02:00:00:00:0c:01'), 1);
  t.equal(of('vblade_initiator_requests_total', '02:00:00:00:0a:01'), 5);
});

t.test('5,000 forged source MACs: bounded rows and labels, "other" carries the rest, memory stays flat', async (t) => {
  const file = await patternFile(t, SECTORS);
  const { server, iface, initiator: real } = await startInProcess(t, [exportOf(file, { initiatorRows: 64 })]);
  for (let i = 0; i < 20; i++) t.notOk((await real.ataReply(real.read(i, 1))).ata.failed);
  const frame = new Uint8Array(128);
  const forge = async (from: number, n: number): Promise<void> => {
    for (let i = from; i < from + n; i++) {
      const len = writeReadExt(frame, 0, { dst: iface.mac, src: parseMac(macOf(i)), shelf: 1, slot: 2 }, i, i % SECTORS, 1);
      iface.receive(frame.subarray(0, padFrame(frame, 0, len)));
      if (i % 200 === 0) await settle(1);
    }
  };
  const total = (): number => server.stats().exports[0].initiators!.list.reduce((s, r) => s + r.requests, 0);
  await forge(0, 1000);
  await until(() => total() === 1020, 'the first 1,000 forged reads to be answered', 10_000);
  collect();
  const heapBefore = process.memoryUsage().heapUsed;
  await forge(1000, 4000);
  await until(() => total() === 5020, 'all 5,000 forged reads to be answered', 20_000);
  collect();
  const grown = process.memoryUsage().heapUsed - heapBefore;
  const s = server.stats().exports[0].initiators!;
  t.equal(s.rows, 64);
  t.equal(s.list.length, 65, '64 rows and "other"');
  const other = s.list.find((r) => r.mac === 'other')!;
  t.equal(other.requests, 5000 - 63, '"other" holds every forged MAC that lost its row');
  t.equal(s.evictions, 5000 - 63, 'each of them counted as an eviction');
  t.same(
    s.list[0],
    { mac: '02:00:00:00:0a:01', requests: 20, readBytes: 20 * 512, writeBytes: 0, errors: 0 },
    'the real initiator kept its row',
  );
  const page = renderMetrics(server.stats());
  t.same(checkExposition(page), [], 'the metrics page parses');
  const macs = new Set(
    page
      .split('\n')
      .map(parseSample)
      .filter((x) => x !== null && x.name.startsWith('vblade_initiator_'))
      .map((x) => x!.labels.mac),
  );
  t.equal(macs.size, 65, 'the metrics name 65 MACs ("other" one of them), not 5,001');
  t.ok(
    grown < 8 * 1024 * 1024,
    `the heap grew ${(grown / 1024).toFixed(0)} KiB over 4,000 new MACs (bound 8 MiB; the fake network's record of every frame included)`,
  );
});

t.test(
  'initiator-rows and --by-initiator as input: out-of-range values and misplaced flags are refused with what to do',
  async (t) => {
    const conf = (v: string): string => `[export e1.2]\nfile = /srv/d.img\ninterfaces = eth1\ninitiator-rows = ${v}\n`;
    t.equal(parseConfigFile(conf('0'), '/t.conf').exports[0].initiatorRows, 0, '0: only "other"');
    t.equal(parseConfigFile(conf('4096'), '/t.conf').exports[0].initiatorRows, 4096);
    for (const bad of ['4097', '-1', 'many', '1e9', '256 512'])
      t.throws(() => parseConfigFile(conf(bad), '/t.conf'), /initiator-rows/, `"${bad}" is refused`);
    t.equal(parseCtlArgs(['--by-initiator', 'stats']).byInitiator, true);
    t.throws(() => parseCtlArgs(['--by-initiator', 'list']), /--by-initiator goes with stats only, not list/);
    t.same(formatInitiatorTables({ exports: [] }), [], 'a worker that sends no exports prints nothing');
  },
);

t.test('ctl stats EXPORT (with or without --by-initiator) shows that export and its interfaces; --help says so', async (t) => {
  t.same(parseCtlArgs(['stats', '--by-initiator', 'e1.2']), {
    command: 'stats',
    runDir: '/run/vblade',
    json: false,
    byInitiator: true,
    export: 'e1.2',
  });
  t.match(ctlHelp(['stats', '--help']), /stats \[EXPORT\][\s\S]*with an export, that one; --by-initiator: per initiator MAC/);
  const stats = {
    exports: [
      { key: 'e1.1', interfaces: ['eth1'] },
      { key: 'e1.2', interfaces: ['eth2'] },
    ],
    interfaces: [{ name: 'eth1' }, { name: 'eth2' }],
  };
  const stat = COMMANDS.find((c) => c.name === 'stats')!;
  type Target = Parameters<NonNullable<typeof stat.run>>[0];
  const run = (t: Target, key: string | undefined) => stat.run!(t, key);
  const target = { request: async () => stats, status: () => undefined } as unknown as Target;
  const one = (await run(target, 'e1.2')) as { stats: typeof stats };
  t.same(
    one.stats.exports.map((e) => e.key),
    ['e1.2'],
  );
  t.same(
    one.stats.interfaces.map((i) => i.name),
    ['eth2'],
    'with its interfaces only',
  );
  t.same(((await run(target, undefined)) as { stats: typeof stats }).stats, stats, 'without one: all');
  await t.rejects(run(target, 'e9.9'), { message: 'no export e9.9; exports: e1.1 e1.2 (vblade ctl list)' });
});

t.test(
  'a request dropped while its view is made (the initiator retransmits) is not counted: only answered ones are',
  async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const mnt = await loopFs(t, 'xfs-reflink');
    const image = await patternFile(t, SECTORS, { dir: mnt, name: 'golden.img' });
    const { server, initiator } = await startInProcess(t, [
      exportOf(image, { views: 'per-initiator', viewsDir: join(mnt, 'views') }),
    ]);
    const r = await withRetransmits(initiator, () => initiator.write(7, randomBytes(512)));
    t.notOk(r.ata.failed, 'the write succeeded once the view was made');
    await settle(50);
    const e = server.stats().exports[0];
    const dropped = e.counters.paused_drops;
    t.ok(dropped >= 1, `${dropped} sends dropped while the view was made`);
    const row = e.initiators!.list.find((x) => x.mac === '02:00:00:00:0a:01')!;
    t.equal(row.requests, r.sends - dropped, `${r.sends} sends, ${dropped} dropped: ${r.sends - dropped} answered and counted`);
    t.equal(row.writeBytes, 512 * (r.sends - dropped), 'bytes of the answered writes');
  },
);
