// A lab booting at once keeps, per machine, as many requests outstanding as
// the target's Query Config reply allows (Buffer Count: 16 by default, as
// vblade's). 200 machines doing so (build/bench/aoe-storm: 200 source MACs,
// 16 two-sector reads each at once, five times over) must not lose a
// request: a lost one costs its machine the initiator's retransmission
// timeout (about 200 ms for the Linux driver, which also drops its window to
// one request). Found by the storm bench (docs/benchmarks.md, "A lab booting
// at once"): every retransmission there was a frame the target dropped, first
// from its receive ring (sized by bytes for jumbo frames: about 900 slots at
// any MTU), then, with a larger ring, for want of transmit or request slots.
// Now the ring's slots are sized for the MTU in use (4,096 at 1500) and frames
// that find no free slot wait in the ring until replies free some.
//
// Network safety: the target and the clients run only inside namespaces this
// test creates, on a veth pair it creates; everything is removed in teardown.

import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORM, replay } from '../../bench/storm/run';
import { skipOrFail } from '../../lab/common';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { spawnProcess } from '../../lab/process';
import { patternFile, tempDir } from '../helpers/files';
import { REPO, waitLinkUp } from '../helpers/targets';

const MACHINES = 200;
/** What our target advertises by default (vblade's Bufcount). */
const BUFFER_COUNT = 16;
const BURSTS = 5;
/** Machines of the unmeasured warm-up (MACs of their own). */
const WARM_UP_MACHINES = 50;

t.test(
  `${MACHINES} initiators with ${BUFFER_COUNT} requests each outstanding (the advertised Buffer Count): none is lost`,
  async (t) => {
    if (!requireRoot(t)) return;
    if (!existsSync(STORM)) return skipOrFail(t, `${STORM} is missing: build it with \`npx node-gyp rebuild\``);
    const pair = await createNetnsPair(t, { mtu: 1500 });
    const file = await patternFile(t, 65536);
    spawnProcess(t, process.execPath, [join(REPO, 'bin', 'vblade.js'), '-r', '1', '1', pair.targetIf, file], {
      netns: pair.target.name,
    });
    await waitLinkUp(pair.init, pair.initIf);
    const dir = tempDir(t, 'storm-buffer-count');
    const schedule = join(dir, 'schedule.txt');
    const steps: string[] = [];
    // Each burst: BUFFER_COUNT reads sent at once, the next burst once all are answered.
    for (let b = 0; b < BURSTS; b++)
      for (let i = 0; i < BUFFER_COUNT; i++)
        steps.push(`r ${i === 0 ? 'i' : 's'} ${BUFFER_COUNT} 0 ${(b * BUFFER_COUNT + i) * 2} 2`);
    writeFileSync(schedule, `aoe-storm-schedule 1 ${steps.length}\n${steps.join('\n')}\n`);
    const running = new Set<import('node:child_process').ChildProcess>();
    t.teardown(() => {
      for (const c of running) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
    });
    // A lab's server has been up long before the lab boots: a replay from other MACs first, as the storm bench does.
    await replay(
      pair.init.name,
      pair.initIf,
      schedule,
      WARM_UP_MACHINES,
      { timeoutMs: 200, maxSeconds: 60, macPrefix: '02:00:57' },
      running,
    );
    const out = await replay(pair.init.name, pair.initIf, schedule, MACHINES, { timeoutMs: 200, maxSeconds: 60 }, running);
    t.equal(out.errors, 0, 'no errors');
    t.equal(out.per_client.filter((c) => c[1] === steps.length).length, MACHINES, 'every machine had every read answered');
    t.equal(out.retransmits, 0, `no request lost (${out.retransmits} were retransmitted)`);
  },
);
