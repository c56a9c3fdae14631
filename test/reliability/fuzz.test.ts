// Live fuzzing: seeded hostile frames against our daemon on a veth
// pair, then the daemon is alive, answers, and the data written before the
// fuzzing reads back unchanged. See lib/fuzz.ts for the frame kinds and the
// checks; scripts/reliability/fuzz.js runs the long version (>= 1,000,000).
//
// AOET_FUZZ_SEED and AOET_FUZZ_FRAMES override the seed and the frame count.

import t from 'tap';
import { requireRoot } from '../../lab/netns';
import { seedFrom } from './lib/harness';
import { fuzzSession } from './lib/fuzz-session';

const SEED = seedFrom('AOET_FUZZ_SEED', 0xf022a0e5);
const FRAMES = Number(process.env.AOET_FUZZ_FRAMES ?? 100000);

if (requireRoot(t)) {
  t.test(`${FRAMES} fuzz frames (seed 0x${SEED.toString(16)})`, async (t) => {
    const r = await fuzzSession(t, { seed: SEED, frames: FRAMES });
    const s = r.stats;
    t.comment(
      `sent ${s.sent} frames (${s.refused} not sendable: shorter than an Ethernet header) in ${(s.elapsedMs / 1000).toFixed(1)} s = ${s.framesPerSecond.toFixed(0)} frames/s; ` +
        `${s.replies} replies; kinds ${JSON.stringify(s.kinds)}; ${s.movedWrites} WRITEs moved out of the protected range`,
    );
    t.equal(s.crashes, 0, 'no crash');
    t.equal(s.hangs, 0, 'no hang: every probe answered');
    t.equal(s.violations, 0, 'every reply obeys the reply rules (R, Ver 1, our address, >= 60 bytes, zero padding)');
    t.ok(s.generated >= FRAMES, `all ${FRAMES} frames generated`);
    t.ok(s.replies > 1000, 'the daemon answered many of them');
    t.ok(r.daemonAlive, `the daemon is still running${r.daemonExit ? `: ${r.daemonExit}` : ''}`);
    t.same(r.problems, [], 'data and canaries intact, IDENTIFY right, writes still work');
    if (r.crasher) t.comment(`culprit frame (add it as a golden row in test/aoe): ${r.crasher}`);
  });
}
