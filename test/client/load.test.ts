// The load engine against an in-process fake target (no network).
import t from 'tap';
import { formatProgress } from '../../src/client-cli/aoe-bench';
import { LoadOptions, LoadProgress, failedRequests, runLoad } from '../../src/client/load';
import { checkSectors } from '../../src/client/pattern';
import { FakeTarget, FakeTargetOptions } from './fake-target';

const US = Uint8Array.from([0x02, 0, 0, 0, 0, 0x0a]);

function setup(fake: FakeTargetOptions, load: Partial<LoadOptions>): { target: FakeTarget; options: LoadOptions } {
  const target = new FakeTarget(fake);
  const options: LoadOptions = {
    socket: target,
    srcMac: US,
    target: { shelf: target.shelf, slot: target.slot, mac: target.mac },
    op: 'read',
    pattern: 'random',
    sectors: 1,
    window: 16,
    lbaCount: target.sectors,
    requests: 2000,
    verify: 'pattern',
    ...load,
  };
  return { target, options };
}

t.test('random 1-sector reads, verified, W=16', async (t) => {
  const { target, options } = setup({}, {});
  target.record = true;
  const r = await runLoad(options);
  t.equal(r.ops, 2000);
  t.equal(r.reads, 2000);
  t.equal(failedRequests(r), 0, r.firstError ?? 'no errors');
  t.equal(r.bytes, 2000 * 512);
  t.equal(r.retransmits, 0);
  t.ok(r.latency.count === 2000 && r.latency.p50 > 0 && r.latency.p99 >= r.latency.p50);
  t.ok(r.iops > 0 && r.mbps > 0);
  t.ok(target.maxBatch > 1, `sends are batched (largest batch ${target.maxBatch})`);
  t.ok(r.framesPerSend > 1, `frames per send ${r.framesPerSend.toFixed(1)}`);
  t.ok(r.repliesPerTurn > 1, `replies per turn ${r.repliesPerTurn.toFixed(1)}`);
  // Tags: bit 31 clear, and never two outstanding requests with the same tag.
  const tags = target.sent.map((f) => ((f[20] << 24) | (f[21] << 16) | (f[22] << 8) | f[23]) >>> 0);
  t.ok(
    tags.every((x) => x < 0x80000000),
    'bit 31 clear',
  );
  t.equal(new Set(tags.slice(0, 16)).size, 16, 'the first window has distinct tags');
  // Every request is a READ EXT of one sector inside the range.
  t.ok(target.sent.every((f) => f.length === 36 && f[24] === 0x40 && f[26] === 1 && f[27] === 0x24));
});

t.test('busy polling (spinUs) serves replies as they come, without a wake-up each', async (t) => {
  const asleep = setup({}, { requests: 4000 });
  const a = await runLoad(asleep.options);
  const spinning = setup({}, { requests: 4000, spinUs: 2000 });
  const b = await runLoad(spinning.options);
  for (const r of [a, b]) {
    t.equal(r.ops, 4000);
    t.equal(failedRequests(r), 0, r.firstError ?? 'no errors');
  }
  t.ok(asleep.target.wakeUps > 100, `without it, ${asleep.target.wakeUps} wake-ups`);
  t.ok(spinning.target.wakeUps * 10 < asleep.target.wakeUps, `with it, ${spinning.target.wakeUps} wake-ups`);
});

t.test('the window is respected', async (t) => {
  for (const window of [1, 4, 64]) {
    const { target, options } = setup({ delayMs: 1 }, { window, requests: 300 });
    let outstandingMax = 0;
    const send = target.send.bind(target);
    let answered = 0;
    const drain = target.drain.bind(target);
    target.send = (a, d, c) => {
      const n = send(a, d, c);
      outstandingMax = Math.max(outstandingMax, target.framesSeen - answered);
      return n;
    };
    target.drain = (d, m) => {
      const n = drain(d, m);
      answered += n;
      return n;
    };
    const r = await runLoad(options);
    t.equal(r.ops, 300);
    t.equal(outstandingMax, window, `never more than ${window} in flight`);
  }
});

t.test('sequential reads walk the range in order and wrap', async (t) => {
  const { target, options } = setup(
    { maxSectors: 17 },
    { pattern: 'seq', sectors: 17, window: 4, lbaStart: 100, lbaCount: 170, requests: 25 },
  );
  target.record = true;
  const r = await runLoad(options);
  t.equal(failedRequests(r), 0, r.firstError ?? '');
  const lbas = target.sent.map((f) => f[28] | (f[29] << 8));
  t.same(lbas.slice(0, 12), [100, 117, 134, 151, 168, 185, 202, 219, 236, 253, 100, 117]);
  t.ok(lbas.every((l) => l >= 100 && l + 17 <= 270));
});

t.test('writes carry the pattern and land on the disk', async (t) => {
  const { target, options } = setup(
    { patterned: false, maxSectors: 2, sectors: 512 },
    { op: 'write', pattern: 'seq', sectors: 2, lbaCount: 512, requests: 256, window: 8 },
  );
  const r = await runLoad(options);
  t.equal(r.writes, 256);
  t.equal(failedRequests(r), 0, r.firstError ?? '');
  t.equal(checkSectors(target.disk, 0, 0, 512), -1, 'the whole range now holds the pattern');
  // …so a verified read of it passes.
  const again = await runLoad({ ...options, op: 'read', pattern: 'random', requests: 500 });
  t.equal(failedRequests(again), 0);
});

t.test('a mix of reads and writes', async (t) => {
  const { options } = setup({}, { op: 'mix', readPercent: 70, requests: 3000 });
  const r = await runLoad(options);
  t.equal(r.reads + r.writes, 3000);
  t.ok(r.reads > 1800 && r.reads < 2400, `about 70 % reads (${r.reads})`);
  t.equal(failedRequests(r), 0);
});

t.test('lost requests are retransmitted with a new tag; late replies are stale', async (t) => {
  const { target, options } = setup({ drop: (k) => k % 10 === 3 }, { requests: 500, timeoutMs: 20 });
  target.record = true;
  const r = await runLoad(options);
  t.equal(r.ops, 500);
  t.equal(failedRequests(r), 0, r.firstError ?? '');
  t.ok(r.retransmits >= 40, `retransmits counted (${r.retransmits})`);
  const tags = target.sent.map((f) => ((f[20] << 24) | (f[21] << 16) | (f[22] << 8) | f[23]) >>> 0);
  const dropped = tags[3];
  t.equal(tags.filter((x) => x === dropped).length, 1, 'the retransmission did not reuse the tag');
});

t.test('duplicate replies are counted as stale, not as completions', async (t) => {
  const { options } = setup({ duplicate: true }, { requests: 400, window: 4 });
  const r = await runLoad(options);
  t.equal(r.ops, 400);
  t.ok(r.errors.stale >= 390, `stale replies counted (${r.errors.stale})`);
});

t.test('requests that never get an answer are given up after maxRetries', async (t) => {
  const { options } = setup(
    { drop: (_k, f) => f[28] === 5 && f[29] === 0 },
    { pattern: 'seq', lbaCount: 16, requests: 40, window: 2, timeoutMs: 5, maxRetries: 2 },
  );
  const r = await runLoad(options);
  t.ok(r.errors.timeouts >= 2, `timeouts ${r.errors.timeouts}`);
  t.match(r.firstError, /no reply for read at LBA 5 after 3 sends/);
});

t.test('AoE errors, ATA errors, short and corrupt data are counted', async (t) => {
  {
    const { options } = setup({ aoeErrorAt: new Map([[3, 6]]) }, { pattern: 'seq', lbaCount: 8, requests: 80, window: 2 });
    const r = await runLoad(options);
    t.equal(r.errors.aoe, 10);
    t.equal(r.errors.aoeByCode[6], 10);
    t.equal(r.ops, 70);
    t.match(r.firstError, /AoE error 6 for read at LBA 3/);
  }
  {
    const { options } = setup({ sectors: 10 }, { pattern: 'seq', sectors: 2, lbaStart: 8, lbaCount: 4, requests: 20, window: 2 });
    const r = await runLoad(options);
    t.equal(r.errors.ata, 10, 'reads past the end get IDNF');
    t.match(r.firstError, /ATA status 0x41 error 0x10 at LBA 10/);
  }
  {
    const { options } = setup({ corruptAt: new Set([1]) }, { pattern: 'seq', lbaCount: 4, requests: 40, window: 1 });
    const r = await runLoad(options);
    t.equal(r.errors.verify, 10);
    t.match(r.firstError, /read data of LBA 1 differs from the pattern at byte 100/);
  }
  {
    const { options } = setup({}, { verify: 'zero', requests: 10, window: 1 });
    const r = await runLoad(options);
    t.equal(r.errors.verify, 10, 'patterned data is not zero');
  }
});

t.test('a socket that takes only part of a batch', async (t) => {
  const { target, options } = setup({ sendLimit: 3 }, { requests: 1000, window: 32 });
  const r = await runLoad(options);
  t.equal(r.ops, 1000);
  t.equal(failedRequests(r), 0);
  t.equal(target.maxBatch, 3);
});

t.test('timed runs with a warm-up and progress reports', async (t) => {
  const { options } = setup({ delayMs: 0 }, { requests: undefined, durationMs: 300, warmupMs: 100, progressMs: 50 });
  const progress: number[] = [];
  const started = performance.now();
  const r = await runLoad({ ...options, onProgress: (p) => progress.push(p.ops) });
  const took = performance.now() - started;
  t.ok(took >= 390 && took < 5000, `ran about 400 ms (${took.toFixed(0)})`);
  t.ok(r.elapsedMs >= 300 && r.elapsedMs < 1000, `measured interval ${r.elapsedMs.toFixed(1)} ms`);
  t.ok(r.ops > 0);
  t.ok(progress.length >= 4, `progress reported ${progress.length} times`);
  t.ok(r.cpu.userMs + r.cpu.systemMs > 0, 'CPU time measured');
});

t.test('bad options are refused', async (t) => {
  const { options } = setup({}, {});
  t.throws(() => runLoad({ ...options, sectors: 0 }), /sectors must be 1..255/);
  t.throws(() => runLoad({ ...options, window: 0 }), /window must be/);
  t.throws(() => runLoad({ ...options, sectors: 17, lbaCount: 16 }), /smaller than one request/);
});

t.test('progress reports add up to the summary: none during the warm-up, the tail reported at the end', async (t) => {
  const { options } = setup({ delayMs: 0 }, { requests: undefined, durationMs: 620, warmupMs: 200, progressMs: 250 });
  const reports: LoadProgress[] = [];
  const r = await runLoad({ ...options, onProgress: (p) => reports.push({ ...p }) });
  t.ok(r.ops > 0, `${r.ops} requests measured`);
  t.ok(reports.length >= 2, `${reports.length} progress reports`);
  const last = reports[reports.length - 1];
  t.equal(last.ops, r.ops, 'the last report carries the summary count');
  t.ok(
    Math.abs(last.elapsedMs - r.elapsedMs) < 1,
    `the last report ends with the run (${last.elapsedMs.toFixed(0)} ms vs ${r.elapsedMs.toFixed(0)} ms)`,
  );
  const sum = reports.reduce((s, p) => s + (p.intervalOps ?? NaN), 0);
  t.equal(sum, r.ops, "the reports' interval counts sum to the summary count");
  const printed = reports.map((p) => Number(/([\d,]+) requests/.exec(formatProgress(p))?.[1].replace(/,/g, '')));
  t.equal(
    printed.reduce((s, n) => s + n, 0),
    r.ops,
    `the printed --progress lines add up to the summary (${printed.join(' + ')} = ${r.ops})`,
  );
  const spanMs = reports.reduce((s, p) => s + (p.intervalMs ?? NaN), 0);
  t.ok(
    Math.abs(spanMs - r.elapsedMs) < 1,
    `the intervals cover the measured run, not the warm-up (${spanMs.toFixed(0)} ms vs ${r.elapsedMs.toFixed(0)} ms)`,
  );
});
