// The bench's generators and placements (bench/generators.ts,
// bench/placements.ts): the aoe-loadgen command line, its JSON line read into
// the report's LoadResult, and how target and generator are pinned.
import t from 'tap';
import { failedRequests } from '../../src/client/load';
import { loadgenArgs, loadgenResult, parseLoadgenOutput } from '../../bench/generators';
import { PLACEMENTS, parsePlacements, pinnedCommand, placementUnavailable } from '../../bench/placements';
import { workloadsFor } from '../../bench/workloads';

const SEQ_WRITE = workloadsFor(9000).find((w) => w.name === 'seq-write-17')!;
const RAND_READ = workloadsFor(9000).find((w) => w.name === 'rand-read-1')!;

const LINE =
  '{"ops":400000,"seconds":4.000,"iops":100000.0,"mbps":51.20,"p50_us":75.3,"p99_us":180.1,"mean_us":80.00,' +
  '"retransmits":3,"errors":7,"cpu_user_s":0.400,"cpu_sys_s":1.600,' +
  '"error_kinds":{"aoe":1,"ata":2,"short":0,"data":3,"given_up":1},"first_error":"AoE error reply"}';

t.test('the aoe-loadgen command line carries the workload and the run', async (t) => {
  const args = loadgenArgs(
    { workload: SEQ_WRITE, shelf: 1, slot: 2, verify: 'pattern', seconds: 4, warmup: 1, timeoutMs: 250, seed: 7 },
    { netns: 'ns', ifname: 'veth9', imageFile: '/dev/shm/x.pattern' },
  );
  const opt = (name: string): string => args[args.indexOf(name) + 1];
  t.equal(opt('--if'), 'veth9');
  t.equal(opt('--shelf'), '1');
  t.equal(opt('--slot'), '2');
  t.equal(opt('--op'), 'write');
  t.equal(opt('--pattern'), 'seq');
  t.equal(opt('--sectors'), '17');
  t.equal(opt('--window'), '16');
  t.equal(opt('--seconds'), '4');
  t.equal(opt('--warmup'), '1');
  t.equal(opt('--timeout-ms'), '250');
  t.equal(opt('--seed'), '7');
  t.equal(opt('--verify'), 'pattern');
  t.equal(opt('--image'), '/dev/shm/x.pattern');
});

t.test("aoe-loadgen's JSON line becomes the report's LoadResult", async (t) => {
  const r = loadgenResult(parseLoadgenOutput(`${LINE}\n`, ''), RAND_READ);
  t.equal(r.ops, 400000);
  t.equal(r.reads, 400000);
  t.equal(r.writes, 0);
  t.equal(r.bytes, 400000 * 512);
  t.equal(r.iops, 100000);
  t.equal(r.mbps, 51.2);
  t.equal(r.latency.p50, 75.3);
  t.equal(r.latency.p99, 180.1);
  t.equal(r.latency.mean, 80);
  t.equal(r.retransmits, 3);
  t.equal(failedRequests(r), 7, 'every kind of error counts');
  t.same([r.errors.aoe, r.errors.ata, r.errors.short, r.errors.verify, r.errors.timeouts], [1, 2, 0, 3, 1]);
  t.equal(r.cpu.percentOfOneCore, 50, '2 s of CPU in 4 s');
  t.equal(r.firstError, 'AoE error reply');
  t.equal(loadgenResult(parseLoadgenOutput(LINE, ''), SEQ_WRITE).writes, 400000);
});

t.test('an aoe-loadgen that printed no result says what it printed instead', async (t) => {
  t.throws(
    () => parseLoadgenOutput('', 'aoe-loadgen: no AoE target e1.1 answered a config query on veth9 within 3 s\n'),
    /aoe-loadgen gave no result: aoe-loadgen: no AoE target e1\.1 answered/,
  );
  t.throws(() => parseLoadgenOutput('{"ops":1}\n', ''), /aoe-loadgen gave no result \(output: \{"ops":1\}\)/);
  t.throws(() => parseLoadgenOutput('', ''), /\(output: none\)/);
});

t.test('placements: pinning with taskset, names in the bench order, CPUs the machine has', async (t) => {
  t.same(pinnedCommand(['vblade', '1', '1'], 0), ['taskset', '-c', '0', 'vblade', '1', '1']);
  t.same(pinnedCommand(['vblade', '1', '1'], undefined), ['vblade', '1', '1'], 'unpinned: unchanged');
  t.same(
    parsePlacements(['unpinned', 'one-cpu']).map((p) => p.name),
    ['one-cpu', 'unpinned'],
  );
  t.throws(() => parsePlacements(['three-cpus']), /unknown placement "three-cpus": use two-cpus, one-cpu, unpinned/);
  t.equal(PLACEMENTS['one-cpu'].targetCpu, PLACEMENTS['one-cpu'].generatorCpu, 'one CPU shared');
  t.not(PLACEMENTS['two-cpus'].targetCpu, PLACEMENTS['two-cpus'].generatorCpu, 'a CPU each');
  t.equal(PLACEMENTS.unpinned.targetCpu, undefined);
  t.equal(PLACEMENTS.unpinned.generatorCpu, undefined);
  t.match(placementUnavailable(PLACEMENTS['two-cpus'], 1), /needs CPU 1 and this machine has 1 CPU/);
  t.equal(placementUnavailable(PLACEMENTS['two-cpus'], 2), undefined);
  t.equal(placementUnavailable(PLACEMENTS.unpinned, 1), undefined);
});
