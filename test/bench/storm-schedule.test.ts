// The storm bench's pure parts: the replay schedule made from a trace
// (bench/storm/schedule.ts), the figures of a replay and the goals' ratios
// (bench/storm/results.ts), and the command line's client counts and targets.

import t from 'tap';
import { machineOf, minimumMtu, replaySchedule, scheduleExtent, scheduleText } from '../../bench/storm/schedule';
import type { TraceRequest } from '../../bench/storm/trace';
import {
  ClientRow,
  goalMet,
  goalsTable,
  parseReplayOutput,
  stormGoals,
  stormRun,
  stormTable,
  summarizeRuns,
} from '../../bench/storm/results';
import { parseClientCounts, parseTargetNames } from '../../bench/storm/run';

const M = 'ae:0e:00:00:02:01';
const req = (o: Partial<TraceRequest>): TraceRequest => ({
  phase: 'linux',
  mac: M,
  cmd: 0,
  kind: 'read',
  lba: 0,
  sectors: 2,
  gapUs: 0,
  inFlight: 1,
  replyUs: 100,
  ...o,
});

t.test('the schedule: windows per phase, waits after a send or after the last reply, writes left out', async (t) => {
  const trace: TraceRequest[] = [
    req({ phase: 'ipxe', cmd: 1, kind: 'config', sectors: 0, gapUs: 0, replyUs: 80 }),
    req({ phase: 'ipxe', kind: 'identify', sectors: 1, lba: 999, gapUs: 300, replyUs: 50 }),
    req({ phase: 'ipxe', lba: 64, gapUs: 1000, replyUs: 120 }),
    // gap shorter than the previous reply: due at once after it
    req({ phase: 'ipxe', lba: 66, gapUs: 100 }),
    req({ phase: 'ipxe', kind: 'write', lba: 200, sectors: 1, gapUs: 700 }),
    req({ phase: 'linux', lba: 0, gapUs: 0, replyUs: 900 }),
    req({ phase: 'linux', lba: 2, gapUs: 20, inFlight: 2 }),
    req({ phase: 'linux', lba: 4, gapUs: 5, inFlight: 3 }),
    req({ phase: 'linux', lba: 100, gapUs: 4000, inFlight: 1 }),
    // another MAC (the trace's other traffic): not the machine's
    req({ mac: 'ae:0e:00:00:02:02', lba: 7 }),
  ];
  t.equal(machineOf(trace), M, 'the machine is the MAC with the most requests');
  const steps = replaySchedule(trace, { gapScale: 1 });
  t.same(
    steps.map((s) => [s.phase, s.op, s.after, s.window, s.waitUs, s.lba, s.sectors]),
    [
      ['ipxe', 'query', 'idle', 1, 0, 0, 0],
      ['ipxe', 'identify', 'idle', 1, 220, 0, 1],
      ['ipxe', 'read', 'idle', 1, 950, 64, 2],
      ['ipxe', 'read', 'idle', 1, 0, 66, 2],
      // the write is left out; its 700 µs go to the next request (the first of a phase, gap 0)
      ['linux', 'read', 'idle', 3, 600, 0, 2],
      ['linux', 'read', 'send', 3, 20, 2, 2],
      ['linux', 'read', 'send', 3, 5, 4, 2],
      ['linux', 'read', 'idle', 3, 3900, 100, 2],
    ],
  );
  const scaled = replaySchedule(trace, { gapScale: 0.5 });
  t.same(
    scaled.map((s) => s.waitUs),
    [0, 110, 475, 0, 300, 10, 3, 1950],
    'the gap scale multiplies every wait',
  );
  t.same(
    replaySchedule(trace, { gapScale: 0 }).map((s) => s.waitUs),
    [0, 0, 0, 0, 0, 0, 0, 0],
    'gap scale 0: back to back',
  );
  t.throws(() => replaySchedule(trace, { gapScale: -1 }), /gap scale must be 0 or more/);
  t.throws(() => replaySchedule(trace, { gapScale: NaN }), /gap scale must be 0 or more/);
  t.throws(() => replaySchedule([req({ kind: 'write' })], { gapScale: 1 }), /no reads to replay/);
  t.same(scheduleExtent(steps), { bytes: 6 * 2 * 512, endSector: 102 }, 'bytes read and the highest sector');
  t.equal(minimumMtu(steps), 36 + 2 * 512, 'two-sector reads need MTU 1060');
  t.equal(minimumMtu(replaySchedule([req({ sectors: 17 })], { gapScale: 1 })), 36 + 17 * 512, 'seventeen need 8740');
  t.equal(
    scheduleText(steps.slice(0, 2).concat(steps.slice(6, 7))),
    'aoe-storm-schedule 1 3\nq i 1 0 0 0\ni i 1 220 0 1\nr s 3 5 4 2\n',
    "aoe-storm's file",
  );
});

const row = (doneUs: number, p50 = 100, p99 = 900, ops = 1000, bytes = 1_000_000): ClientRow => [
  doneUs,
  ops,
  bytes,
  p50,
  p99,
  0,
  0,
];

function output(rows: ClientRow[], extra: object = {}): string {
  return `${JSON.stringify({ clients: rows.length, steps: 1000, wall_us: 9e6, errors: 0, retransmits: 0, given_up: 0, per_client: rows, ...extra })}\n`;
}

t.test("a replay's figures: completion of all, slowest over median, latency medians, aggregate throughput", async (t) => {
  const out = parseReplayOutput(output([row(1e6, 50, 500), row(2e6, 100, 700), row(4e6, 300, 3000)]));
  const r = stormRun('ours', 1, out);
  t.equal(r.allDoneS, 4, 'all done when the last client is');
  t.equal(r.medianDoneS, 2);
  t.equal(r.slowestOverMedian, 2);
  t.equal(r.p50Us, 100, "median of the clients' p50");
  t.equal(r.p99Us, 700, "median of the clients' p99");
  t.equal(r.worstP99Us, 3000);
  t.equal(r.mbps, 3 / 4, '3 MB over 4 s');
  t.equal(r.iops, 3000 / 4);
  const unfinished = stormRun('ours', 1, parseReplayOutput(output([row(1e6), row(-1)], { errors: 4, first_error: 'x' })));
  t.equal(unfinished.unfinished, 1, 'a client that never finished is counted');
  t.equal(unfinished.allDoneS, 9, 'and the run lasted until aoe-storm gave up');
  t.equal(unfinished.firstError, 'x');
  t.throws(() => parseReplayOutput('aoe-storm: no target\n'), /printed no result line/);
  t.throws(() => parseReplayOutput('{"clients":2,"per_client":[[1,1,1,1,1,0,0]]}'), /1 clients' figures for 2 clients/);
});

t.test('medians over rounds and the goals at the largest N', async (t) => {
  const run = (target: string, clients: number, round: number, done: number, mbps: number) =>
    stormRun(
      target,
      round,
      parseReplayOutput(
        output(Array.from({ length: clients }, () => row(done * 1e6, 100, 900, 1, (mbps * done * 1e6) / clients))),
      ),
    );
  const runs = [
    run('ours', 1, 1, 0.5, 4),
    run('ours', 200, 1, 3, 130),
    run('ours', 200, 2, 4, 100),
    run('ours', 200, 3, 3.2, 125),
    run('ours-views', 200, 1, 3.4, 120),
    run('ours-views', 1, 1, 0.5, 4),
    run('vblade', 1, 1, 0.45, 4.5),
    run('vblade', 200, 1, 10, 40),
  ];
  const rows = summarizeRuns(runs);
  const ours200 = rows.find((r) => r.target === 'ours' && r.clients === 200)!;
  t.equal(ours200.rounds, 3);
  t.equal(ours200.allDoneS, 3.2, 'median of 3, 4 and 3.2');
  t.same([ours200.allDoneMinS, ours200.allDoneMaxS], [3, 4]);
  t.equal(Math.round(ours200.mbps), 125);
  const goals = stormGoals(rows);
  const g = (what: RegExp) => goals.find((x) => what.test(x.what))!;
  t.equal(g(/vblade's completion time \/ ours/).value, 10 / 3.2);
  t.equal(goalMet(g(/vblade's completion time \/ ours/)), true, '3.1 ≥ 1.5');
  t.equal(g(/views' completion time/).value, 3.4 / 3.2);
  t.equal(goalMet(g(/views' completion time/)), true, '1.06 ≤ 1.1');
  t.equal(goalMet(g(/N=200, vblade: aggregate/)), true, 'vblade at N=200 is its best N');
  t.equal(g(/N=200, ours: slowest/).value, 1, 'every client equal');
  t.match(stormTable(rows, { ours: 'aoe-target' }), /\| aoe-target \| 200 \| 3\.200 \(3\.000–4\.000\) \| 1\.00 \|/);
  t.match(goalsTable(goals), /\| N=200: views' completion time \/ plain's \| 1\.06 \| ≤ 1\.1 \| yes \|/);

  const onlyOurs = stormGoals(summarizeRuns(runs.filter((r) => r.target === 'ours')));
  t.equal(goalMet(onlyOurs[0]), undefined, 'vblade not run: the ratio is not run, not a failure');
  t.match(goalsTable(onlyOurs), /\| — \| ≥ 1\.5 \| not run \|/);
  t.same(stormGoals([]), []);
});

t.test('the command line: client counts and targets', async (t) => {
  t.same(parseClientCounts('1,10, 50,200'), [1, 10, 50, 200]);
  for (const bad of ['', '0', '5000', '1,x', '2.5', '-1'])
    t.throws(() => parseClientCounts(bad), /--clients wants counts from 1 to 4096/, JSON.stringify(bad));
  t.same(parseTargetNames('vblade,ours'), ['vblade', 'ours']);
  t.throws(() => parseTargetNames('ours,ggaoed'), /unknown target "ggaoed": use ours, ours-views, vblade/);
});
