// npm run bench:initiator's reading of the guest and its tables
// (bench/initiator-results.ts, bench/initiator-report.ts). The fixtures are
// the AOETEST lines of a real run's serial logs (2026-12-02, `--rounds 1
// --mtu 9000 1500 --mib 16 --fio-seconds 3`), and the expected table is the
// one that run printed.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseBenchFields, parseFioTerse } from '../../bench/initiator-results';
import {
  type InitiatorSample,
  initiatorMarkdownTable,
  initiatorTextTable,
  summarizeInitiator,
  writeInitiatorSection,
} from '../../bench/initiator-report';
import { repoRoot } from '../../lab/guest';
import { parseGuestLine } from '../../lab/qemu';

const TARGET_OF: Record<string, string> = { 'e1.1': 'ours', 'e2.1': 'vblade' };

function serial(mtu: number): string[] {
  return readFileSync(join(repoRoot(), 'test', 'bench', 'fixtures', `initiator-serial-${mtu}.txt`), 'utf8')
    .split('\n')
    .filter(Boolean);
}

/** What bench/initiator.ts does with a boot's console: the bench lines, as samples of the target behind each device. */
function samplesOf(mtu: number): InitiatorSample[] {
  return serial(mtu)
    .map((l) => parseGuestLine(l))
    .filter((l) => l?.tag === 'bench')
    .map((l) => {
      const m = parseBenchFields(l!.fields);
      return { ...m, mtu, target: TARGET_OF[m.dev] };
    });
}

function benchLine(mtu: number, dev: string, workload: string): Record<string, string> {
  const l = serial(mtu)
    .map((x) => parseGuestLine(x))
    .find((x) => x?.tag === 'bench' && x.fields.dev === dev && x.fields.workload === workload);
  if (!l) throw new Error(`fixture has no ${workload} line for ${dev} at MTU ${mtu}`);
  return l.fields;
}

t.test('a dd line gives MiB/s from the bytes and seconds GNU dd printed', async (t) => {
  const m = parseBenchFields(benchLine(9000, 'e1.1', 'dd-write'));
  t.equal(m.round, 1);
  t.equal(m.dev, 'e1.1');
  t.equal(m.workload, 'dd-write');
  t.equal(m.mibps.toFixed(1), '89.5', '16 MiB in 0.178697 s');
  t.equal(m.iops, undefined, 'dd reports no IOPS');
});

t.test('a fio read line gives the read block: bandwidth, IOPS and the median completion latency', async (t) => {
  const m = parseBenchFields(benchLine(9000, 'e1.1', 'seq-read'));
  t.equal(m.mibps.toFixed(1), '31.9', '32700 KiB/s');
  t.equal(m.iops, 27);
  t.equal(m.clatP50Us, 566231);
  const r = parseBenchFields(benchLine(9000, 'e2.1', 'rand-read'));
  t.same([r.iops, r.clatP50Us], [1351, 6651]);
});

t.test('a fio write line gives the write block (its read block is all zeros)', async (t) => {
  const m = parseBenchFields(benchLine(1500, 'e1.1', 'rand-write'));
  t.equal(m.iops, 1300);
  t.equal(m.mibps.toFixed(2), (5220 / 1024).toFixed(2));
  t.equal(m.clatP50Us, 8716);
  const terse = parseFioTerse(benchLine(1500, 'e1.1', 'rand-write').terse);
  t.equal(terse.job, 'randwrite');
  t.equal(terse.read.iops, 0);
  t.equal(terse.write.runtimeMs, 3025);
  t.equal(terse.write.clatPercentilesUs['99.99'] > terse.write.clatPercentilesUs['50'], true, 'percentiles keyed by their value');
});

t.test('the summary of the real run is the table it printed', async (t) => {
  const samples = [...samplesOf(9000), ...samplesOf(1500)];
  t.equal(samples.length, 24, '6 workloads × 2 targets × 2 MTUs');
  const rows = summarizeInitiator(samples, ['ours', 'vblade'], [9000, 1500]);
  const printed = [
    'MTU   workload                  unit         ours median (min–max)  vblade median (min–max)  ours / vblade',
    '9000  dd write, 1 MiB O_DIRECT  MiB/s                         89.5                      118          0.76×',
    '9000  dd read, 1 MiB O_DIRECT   MiB/s                          103                     57.9          1.78×',
    '9000  fio seq write, 1 MiB      MiB/s                         70.6                     74.3          0.95×',
    '9000  fio seq read, 1 MiB       MiB/s                         31.9                     52.4          0.61×',
    '9000  fio rand read, 4 KiB      IOPS                         1,242                    1,351          0.92×',
    '9000  fio rand read, 4 KiB      clat p50 µs                  6,258                    6,651          0.94×',
    '9000  fio rand write, 4 KiB     IOPS                         1,505                    2,103          0.72×',
    '9000  fio rand write, 4 KiB     clat p50 µs                  7,110                    6,127          1.16×',
    '1500  dd write, 1 MiB O_DIRECT  MiB/s                         10.4                     17.5          0.60×',
    '1500  dd read, 1 MiB O_DIRECT   MiB/s                         16.6                     16.1          1.03×',
    '1500  fio seq write, 1 MiB      MiB/s                          6.8                      4.9          1.36×',
    '1500  fio seq read, 1 MiB       MiB/s                          9.0                      9.6          0.93×',
    '1500  fio rand read, 4 KiB      IOPS                           762                    1,208          0.63×',
    '1500  fio rand read, 4 KiB      clat p50 µs                 16,580                   10,289          1.61×',
    '1500  fio rand write, 4 KiB     IOPS                         1,300                    1,395          0.93×',
    '1500  fio rand write, 4 KiB     clat p50 µs                  8,716                    8,847          0.99×',
  ].join('\n');
  t.equal(initiatorTextTable(rows, ['ours', 'vblade']), printed);
  const md = initiatorMarkdownTable(rows, ['ours', 'vblade']).split('\n');
  t.equal(md[0], '| MTU | workload | unit | ours median (min–max) | vblade median (min–max) | ours / vblade |');
  t.equal(md[2], '| 9000 | dd write, 1 MiB O_DIRECT | MiB/s | 89.5 | 118 | 0.76× |');
  t.equal(md.length, 2 + rows.length);
});

t.test('over several rounds: the median, the spread and the ratio of the medians', async (t) => {
  const base = parseBenchFields(benchLine(9000, 'e1.1', 'dd-read'));
  const samples: InitiatorSample[] = [];
  [100, 80, 120, 90, 110].forEach((v, i) => samples.push({ ...base, round: i + 1, mibps: v, mtu: 9000, target: 'ours' }));
  [50, 40, 60, 70].forEach((v, i) => samples.push({ ...base, round: i + 1, mibps: v, mtu: 9000, target: 'vblade' }));
  const [row] = summarizeInitiator(samples, ['ours', 'vblade'], [9000]);
  t.same(row.values.ours, { median: 100, min: 80, max: 120, rounds: 5 });
  t.same(row.values.vblade, { median: 55, min: 40, max: 70, rounds: 4 }, 'an even count takes the mean of the middle two');
  t.equal(row.ratios.ours.toFixed(3), (100 / 55).toFixed(3));
  t.match(initiatorTextTable([row], ['ours', 'vblade']), /100 \(80\.0–120\)\s+55\.0 \(40\.0–70\.0\)\s+1\.82×/);
});

t.test('without vblade in the run there is no ratio column; a target without results says so', async (t) => {
  const samples = samplesOf(9000).filter((s) => s.target === 'ours' && s.workload === 'dd-write');
  const rows = summarizeInitiator(samples, ['ours', 'other'], [9000], 'vblade');
  const text = initiatorTextTable(rows, ['ours', 'other']);
  t.notMatch(text, / \/ vblade/, 'no ratio header');
  t.match(text, /not measured/);
});

t.test('malformed guest lines are refused with what is wrong', async (t) => {
  const good = benchLine(9000, 'e1.1', 'seq-read');
  t.throws(() => parseBenchFields({ ...good, workload: 'seq-rw' }), /unknown workload "seq-rw"/);
  t.throws(() => parseBenchFields({ ...good, round: 'x' }), /round/);
  t.throws(() => parseBenchFields({ ...good, terse: good.terse.replace(/^3;/, '2;') }), /not a fio terse version 3 line/);
  t.throws(() => parseBenchFields({ ...good, terse: good.terse.split(';').slice(0, 50).join(';') }), /50 fields/);
  const failed = good.terse.split(';');
  failed[4] = '5';
  t.throws(() => parseBenchFields({ ...good, terse: failed.join(';') }), /fio reported error 5/);
  t.throws(() => parseBenchFields({ round: '1', dev: 'e1.1', workload: 'dd-read', bytes: '1' }), /bytes= and s=/);
});

t.test('the doc section: appended once, then only the text between its markers is replaced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'initiator-doc-'));
  const doc = join(dir, 'benchmarks.md');
  const before = '# Benchmarks\n\nintro\n\n<!-- bench:begin (x) -->\nother bench\n<!-- bench:end -->\n';
  writeFileSync(doc, before);
  writeInitiatorSection(doc, 'first table');
  const once = readFileSync(doc, 'utf8');
  t.ok(once.startsWith(before.trimEnd()), 'the rest of the page is kept');
  t.match(
    once,
    /## The Linux aoe driver in a guest\n\n<!-- initiator-bench:start[^\n]*-->\nfirst table\n<!-- initiator-bench:end -->\n$/,
  );
  writeFileSync(
    doc,
    once.replace('## The Linux aoe driver in a guest\n', '## The Linux aoe driver in a guest\n\nhand-written\n') +
      '\nlater section\n',
  );
  writeInitiatorSection(doc, 'second table');
  const twice = readFileSync(doc, 'utf8');
  t.notMatch(twice, /first table/);
  t.match(
    twice,
    /hand-written\n\n<!-- initiator-bench:start[^\n]*-->\nsecond table\n<!-- initiator-bench:end -->\n\nlater section\n$/,
  );
  t.equal(twice.split('## The Linux aoe driver in a guest').length, 2, 'one section title');
  t.match(twice, /other bench/);
});
