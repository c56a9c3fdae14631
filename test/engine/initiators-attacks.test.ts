// Per-initiator counters against a flood of forged source MACs at the
// largest table (initiator-rows = 4096): 12,000 MACs leave at most 4,097
// MACs on the metrics page (the rows and "other"), a page whose size and
// rendering time stay bounded, the `ctl stats --by-initiator` table as
// long, and every label a MAC in lower-case hex or "other" (nothing a
// frame carries reaches a label or the terminal but its six address bytes).
import t from 'tap';
import { writeReadExt, padFrame } from '../../src/client/requests';
import { formatInitiatorTables } from '../../src/cli/stats-table';
import { MAX_INITIATOR_ROWS } from '../../src/config/export-config';
import { renderMetrics } from '../../src/service/metrics';
import { patternFile } from '../helpers/files';
import { exportOf, settle, startInProcess, until } from '../helpers/in-process';
import { checkExposition, parseSample } from '../helpers/prometheus-text';

const FORGED = 12_000;

t.test(`${FORGED} forged source MACs in a table of ${MAX_INITIATOR_ROWS} rows: page, labels and table bounded`, async (t) => {
  const file = await patternFile(t, 256);
  const { server, iface, initiator } = await startInProcess(t, [exportOf(file, { initiatorRows: MAX_INITIATOR_ROWS })]);
  t.notOk((await initiator.ataReply(initiator.read(0, 1))).ata.failed, 'a real initiator reads');
  const frame = new Uint8Array(128);
  const src = new Uint8Array(6);
  for (let i = 0; i < FORGED; i++) {
    src.set([i & 1 ? 0x06 : 0x02, 0x1b, (i >> 24) & 0xff, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]);
    const len = writeReadExt(frame, 0, { dst: iface.mac, src, shelf: 1, slot: 2 }, i, i % 256, 1);
    iface.receive(frame.subarray(0, padFrame(frame, 0, len)));
    if (i % 200 === 0) await settle(1);
  }
  const total = (): number => server.stats().exports[0].initiators!.list.reduce((s, r) => s + r.requests, 0);
  await until(() => total() >= FORGED, 'the forged reads to be counted', 30_000);
  await settle(50);
  // A source that is a group address (multicast bit set) is no initiator: dropped, not counted.
  for (const first of [0x01, 0x03, 0xff]) {
    src.set([first, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const len = writeReadExt(frame, 0, { dst: iface.mac, src, shelf: 1, slot: 2 }, 1, 0, 1);
    iface.receive(frame.subarray(0, padFrame(frame, 0, len)));
  }
  await settle(50);
  t.equal(total(), FORGED + 1, 'frames from group source addresses are not counted');
  const stats = server.stats();
  const list = stats.exports[0].initiators!.list;
  t.ok(list.length <= MAX_INITIATOR_ROWS + 1, `${list.length} rows listed (at most ${MAX_INITIATOR_ROWS} and "other")`);
  const t0 = process.hrtime.bigint();
  const page = renderMetrics(stats);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.same(checkExposition(page), [], 'the page parses');
  const samples = page
    .split('\n')
    .map(parseSample)
    .filter((x) => x !== null && x.name.startsWith('vblade_initiator_'));
  const macs = new Set(samples.map((x) => x!.labels.mac));
  t.ok(macs.size <= MAX_INITIATOR_ROWS + 1, `${macs.size} MACs on the page`);
  t.same(
    [...macs].filter((m) => m !== 'other' && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m)),
    [],
    'every label is a MAC in lower-case hex or "other"',
  );
  t.ok(page.length < 2 * 1024 * 1024, `the page is ${(page.length / 1024).toFixed(0)} KiB (bound 2 MiB)`);
  t.ok(ms < 1000, `rendered in ${ms.toFixed(0)} ms (bound 1 s)`);
  const table = formatInitiatorTables(stats);
  t.ok(table.length <= MAX_INITIATOR_ROWS + 4, `ctl stats --by-initiator prints ${table.length} lines`);
  t.same(
    table.filter((l) => /\p{Cc}/u.test(l)),
    [],
    'no control character in the table',
  );
});
