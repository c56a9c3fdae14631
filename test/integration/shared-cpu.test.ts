// One request in flight with the target and its initiator on one CPU (a
// network boot from a host whose cores are shared): the initiator runs
// inside the target's send of each reply, so its next request is already
// waiting when the target looks again. That is no reason to busy-poll: a
// poll that finds nothing at once can only find work when the scheduler
// takes the CPU from it, and each such poll burns its whole window of the
// initiator's CPU. The adaptive policy must see that and stop polling.

import t from 'tap';
import pino from 'pino';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Server } from '../../src/target/server';
import { exportConfig } from '../helpers/export-config';
import { patternFile } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { waitLinkUp } from '../helpers/targets';
import { LOADGEN, type LoadgenReport } from '../../bench/generators';
import { skipOrFail } from '../../lab/common';
import { describeRun, run } from '../../lab/process';

const SECTORS = 16 * 2048; // 16 MiB

/** Pins every thread of this process to `cpus` (taskset's list syntax); returns the list it had. */
function pinSelf(cpus: string): string {
  const before = execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' });
  execFileSync('taskset', ['-a', '-c', '-p', cpus, String(process.pid)], { stdio: 'ignore' });
  return before.slice(before.lastIndexOf(':') + 1).trim();
}

if (requireRoot(t)) {
  t.test('one in flight on a CPU shared with the initiator: the target stops polling', async (t) => {
    if (!existsSync(LOADGEN)) {
      skipOrFail(t, `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``);
      return;
    }
    const pair = await createNetnsPair(t, { mtu: 9000 });
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const file = await patternFile(t, SECTORS);
    // The target (this process, all its threads) and the generator on CPU 0.
    const cpus = pinSelf('0');
    t.teardown(() => void pinSelf(cpus));
    const server = await Server.start(
      { exports: [exportConfig({ file, interfaces: [pair.targetIf] })] },
      pino({ level: 'silent' }),
      {},
      { netns: pair.target.path, duplicateProbeMs: 0, announceSeconds: 0 },
    );
    t.teardown(() => server.stop());

    const before = server.stats().frameLoop;
    t.equal(before.spinPolicy, 'adaptive', 'the default policy');
    t.ok(before.spinMicros > 0, 'polling is on by default');
    const r = await run(
      'taskset',
      ['-c', '0', LOADGEN, '--if', pair.initIf, '--shelf', '1', '--slot', '1', '--op', 'read', '--pattern', 'seq'].concat([
        '--sectors',
        '2',
        '--window',
        '1',
        '--seconds',
        '2',
        '--warmup',
        '0.2',
        '--verify',
        'pattern',
      ]),
      { netns: pair.init.name, timeoutMs: 20000 },
    );
    t.equal(r.code, 0, r.code === 0 ? 'aoe-loadgen ran' : describeRun(r));
    const load = JSON.parse(r.stdout.trim()) as LoadgenReport;
    t.equal(load.errors, 0, 'every read answered with the pattern');
    t.ok(load.ops > 2000, `the load ran: ${load.ops} requests, p50 ${load.p50_us} µs`);

    const after = server.stats().frameLoop;
    const polls = after.spins - before.spins;
    const requests = load.ops;
    // Counting requests already waiting as polls that paid kept it polling here: about 3 polls in 4 requests,
    // one in six of them missing, 20 µs of CPU each. Now a few samples of 64 polls find it out.
    t.ok(after.backoffs - before.backoffs >= 1, `polling paused ${after.backoffs - before.backoffs} times`);
    t.ok(polls < requests / 20, `${polls} polls for ${requests} requests`);
  });
}
