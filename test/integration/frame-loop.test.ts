// The frame loop under load, on a real veth pair: the engine waits for
// frames in the kernel (FrameWaiter) instead of going back to libuv for
// every batch, and still gives the event loop its turn: a timer of the same
// process fires on time and stats are answered while a load generator that
// sleeps between replies (like a real initiator) keeps it busy.

import t from 'tap';
import pino from 'pino';
import { join } from 'node:path';
import { Server } from '../../src/target/server';
import { exportConfig } from '../helpers/export-config';
import { patternFile } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { waitLinkUp } from '../helpers/targets';
import type { LoadResult } from '../../src/client/load';
import { renderMetrics } from '../../src/service/metrics';
import { formatStatsTables } from '../../src/cli/stats-table';
import { checkExposition, parseSample } from '../helpers/prometheus-text';

const ROOT = join(__dirname, '..', '..', '..');
const SECTORS = 64 * 2048; // 64 MiB

if (requireRoot(t)) {
  t.test('under load the loop sleeps in the kernel, and timers and stats still run', async (t) => {
    const pair = await createNetnsPair(t, { mtu: 9000 });
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const file = await patternFile(t, SECTORS);
    const server = await Server.start(
      { exports: [exportConfig({ file, interfaces: [pair.targetIf] })] },
      pino({ level: 'silent' }),
      {},
      { netns: pair.target.path, duplicateProbeMs: 0, announceSeconds: 0 },
    );
    t.teardown(() => server.stop());

    // A 10 ms timer in the target's own process: how late does it fire while the load runs?
    let lastTick = performance.now();
    let worstLateMs = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstLateMs = Math.max(worstLateMs, now - lastTick - 10);
      lastTick = now;
      ticks++;
    }, 10);
    const before = server.stats().frameLoop;
    const load = pair.init.run(process.execPath, [
      join(ROOT, 'bin', 'aoe-bench.js'),
      ...['--if', pair.initIf, '--shelf', '1', '--slot', '1', '--op', 'read', '--pattern', 'random'],
      ...['--sectors', '1', '--window', '16', '--seconds', '2', '--warmup', '0.5', '--verify', 'pattern'],
      ...['--spin-us', '0', '--json', '--no-progress'],
    ]);
    const statsLatencies: number[] = [];
    const probe = setInterval(() => {
      const t0 = performance.now();
      server.stats();
      statsLatencies.push(performance.now() - t0);
    }, 100);
    const res = await load;
    clearInterval(timer);
    clearInterval(probe);
    t.equal(res.code, 0, `aoe-bench exit 0 (${res.stderr.trim().slice(-300)})`);
    const result = (JSON.parse(res.stdout) as { result: LoadResult }).result;
    t.same(
      { aoe: result.errors.aoe, ata: result.errors.ata, verify: result.errors.verify },
      { aoe: 0, ata: 0, verify: 0 },
      'every read answered and verified',
    );
    t.ok(result.ops > 2000, `the load ran (${result.ops} requests, ${Math.round(result.iops)} IOPS)`);

    const after = server.stats().frameLoop;
    const requests = result.ops;
    t.equal(after.blocking, true, 'the loop blocks in the kernel (FrameWaiter)');
    t.ok(after.wakeups - before.wakeups > 0, `it was woken by frames in the kernel ${after.wakeups - before.wakeups} times`);
    // Without the frame loop every batch is a return to libuv; with it, returns are rare under load.
    t.ok(
      after.exits - before.exits < requests / 20,
      `returns to the event loop: ${after.exits - before.exits} for ${requests} requests`,
    );
    t.ok(ticks >= 150, `a 10 ms timer fired ${ticks} times in about 2.5 s`);
    // A loop that kept libuv out while frames came would make it late by the whole run (2.5 s); a busy shared machine, up to ~150 ms.
    t.ok(worstLateMs < 1000, `it was at most ${worstLateMs.toFixed(1)} ms late`);
    const page = renderMetrics(server.stats());
    t.same(checkExposition(page), [], 'the metrics page is valid');
    const wakeups = page
      .split('\n')
      .map((l) => parseSample(l))
      .find((x) => x?.name === 'vblade_wakeups_total');
    t.equal(wakeups?.value, after.wakeups, 'vblade_wakeups_total is the loop counter');
    const line = formatStatsTables(server.stats()).find((l) => l.startsWith('polling:')) ?? '';
    t.match(line, /^polling: .*polls \d+, found work \d+.*sleeps \d+, woken with work \d+/, `ctl stats says it: ${line}`);
    t.ok(statsLatencies.length >= 15, `stats were taken ${statsLatencies.length} times during the load`);
  });
}
