// The metrics page a Prometheus server scrapes, rendered from a serving
// core's real stats after real requests: well formed, and the latency
// histogram complete (_bucket, _sum, _count) and consistent.
import t from 'tap';
import { renderMetrics } from '../../src/service/metrics';
import { patternFile } from '../helpers/files';
import { exportOf, startInProcess } from '../helpers/in-process';
import { checkExposition, parseSample } from '../helpers/prometheus-text';

t.test('the latency histogram of a serving export has _bucket, _sum and _count that agree', async (t) => {
  const file = await patternFile(t, 64);
  const { server, initiator } = await startInProcess(t, [exportOf(file)]);
  for (let i = 0; i < 20; i++) await initiator.ataReply(initiator.read(i, 1));
  const text = renderMetrics(server.stats(), { ready: true });
  t.same(checkExposition(text), [], 'the page is valid Prometheus text with complete histograms');

  const lines = text.split('\n').filter((l) => l.startsWith('vblade_export_latency_seconds'));
  const samples = lines.map((l) => parseSample(l)!);
  const count = samples.find((s) => s.name === 'vblade_export_latency_seconds_count');
  const sum = samples.find((s) => s.name === 'vblade_export_latency_seconds_sum');
  t.equal(count?.value, 20, '20 reads counted');
  t.ok(sum !== undefined, `vblade_export_latency_seconds_sum is there (${sum?.value})`);
  // The sum lies between what the bucket bounds allow: each request took less than its bucket's le.
  let prev = 0;
  let prevLe = 0;
  let upper = 0;
  let lower = 0;
  for (const b of samples.filter((s) => s.name === 'vblade_export_latency_seconds_bucket')) {
    const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
    const n = b.value - prev;
    if (n > 0) upper += n * le;
    lower += n * prevLe;
    prev = b.value;
    prevLe = le;
  }
  t.ok(
    sum !== undefined && sum.value > 0 && sum.value >= lower && sum.value <= upper,
    `sum ${sum?.value} s within [${lower}, ${upper}] s`,
  );
});

t.test('the checker finds a histogram without _sum (as this page had)', async (t) => {
  const page = [
    '# HELP h_seconds x',
    '# TYPE h_seconds histogram',
    'h_seconds_bucket{le="1"} 1',
    'h_seconds_bucket{le="+Inf"} 2',
    'h_seconds_count 2',
    '',
  ].join('\n');
  t.same(checkExposition(page), ['h_seconds[] has no _sum']);
});
