// The storm bench for real, briefly: two machines replay the recorded boot at
// once (build/bench/aoe-storm) against our target, started as the bench starts
// it, read-only and with views = per-initiator on XFS, in namespaces this test
// makes. Every request of both is answered, the bytes are the boot's, and
// the views export made one view per machine: the two replay from MACs of
// their own.

import t from 'tap';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { DEFAULT_TRACE, STORM, replay } from '../../bench/storm/run';
import { replaySchedule, scheduleExtent, scheduleText } from '../../bench/storm/schedule';
import { SHELF, SLOT, StormSetup, stormTargetSpec, waitReady, writeBootImage } from '../../bench/storm/storm-targets';
import { parseTrace } from '../../bench/storm/trace';
import { RunningTarget } from '../../bench/targets';
import { skipOrFail } from '../../lab/common';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';

t.test('two machines boot at once from our target, read-only and with views', async (t) => {
  if (!requireRoot(t) || !requireLoopFs(t, 'xfs-reflink')) return;
  if (!existsSync(STORM)) return skipOrFail(t, `${STORM} is missing: build it with \`npx node-gyp rebuild\``);
  const net = await createNetnsPair(t, { mtu: 1500 });
  const mnt = await loopFs(t, 'xfs-reflink');
  const steps = replaySchedule(parseTrace(readFileSync(DEFAULT_TRACE, 'utf8')), { gapScale: 1 });
  const extent = scheduleExtent(steps);
  const schedule = join(mnt, 'schedule.txt');
  writeFileSync(schedule, scheduleText(steps));
  const setup: StormSetup = {
    image: join(mnt, 'boot.img'),
    ifname: net.targetIf,
    runDir: join(mnt, 'run'),
    viewsDir: join(mnt, 'views'),
  };
  mkdirSync(setup.runDir);
  writeBootImage(setup.image, 64 * 2 ** 20);
  const replays = new Set<ChildProcess>();
  t.teardown(() => {
    for (const c of replays) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
  });

  for (const name of ['ours', 'ours-views'] as const) {
    const target = RunningTarget.start(stormTargetSpec(name, setup), net.target.name, {
      shelf: SHELF,
      slot: SLOT,
      ifname: setup.ifname,
      file: setup.image,
      sync: false,
      sectors: 0,
    });
    t.teardown(() => target.stop());
    await waitReady(target);
    const out = await replay(net.init.name, net.initIf, schedule, 2, { timeoutMs: 200, maxSeconds: 20 }, replays);
    t.equal(out.clients, 2, `${name}: two clients`);
    t.equal(out.errors, 0, `${name}: no errors${out.first_error ? ` (${out.first_error})` : ''}`);
    t.equal(out.given_up, 0, `${name}: no request given up`);
    for (const [i, [doneUs, ops, bytes, p50, p99]] of out.per_client.entries()) {
      t.ok(doneUs > 0 && doneUs < 20e6, `${name}, client ${i}: finished (${(doneUs / 1e6).toFixed(2)} s)`);
      t.equal(ops, steps.length, `${name}, client ${i}: every one of its ${steps.length} requests answered`);
      t.equal(bytes, extent.bytes, `${name}, client ${i}: read the boot's ${extent.bytes} bytes`);
      t.ok(p50 > 0 && p50 <= p99, `${name}, client ${i}: p50 ${p50} µs ≤ p99 ${p99} µs`);
    }
    t.ok(target.alive, `${name}: the target is still running`);
    await target.stop();
    if (name === 'ours-views') {
      const views = readdirSync(join(setup.viewsDir, `e${SHELF}.${SLOT}`)).filter((f) => f.endsWith('.img'));
      t.same(views.sort(), ['020053000000.img', '020053000001.img'], 'one view per replaying machine, named by its MAC');
    }
  }
});
