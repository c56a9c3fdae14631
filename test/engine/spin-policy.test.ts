// The adaptive spin policy: it keeps polling while polls find work, pauses
// (doubling) when too few do, resumes after the pause, and never polls with
// a zero window. Table-driven over sequences of poll outcomes.

import t from 'tap';
import { SPIN_BACKOFF_MAX_MS, SPIN_BACKOFF_MS, SPIN_SAMPLE, SpinPolicy } from '../../src/engine/spin-policy';

/** Feeds `n` polls with a hit ratio of `ratio` (hits first in each sample) at time `now`. */
function feed(p: SpinPolicy, n: number, ratio: number, now: number): void {
  for (let i = 0; i < n; i++) p.record(i % SPIN_SAMPLE < ratio * SPIN_SAMPLE, now);
}

t.test('polls that find work keep it polling', async (t) => {
  for (const ratio of [1, 0.75, 0.5]) {
    const p = new SpinPolicy(0.02);
    feed(p, 10 * SPIN_SAMPLE, ratio, 0);
    t.equal(p.backoffs, 0, `hit ratio ${ratio}: no pause`);
    t.ok(p.shouldSpin(0), `hit ratio ${ratio}: still polling`);
  }
});

t.test('polls that find nothing pause it, doubling up to the cap, and it resumes after the pause', async (t) => {
  const p = new SpinPolicy(0.02);
  feed(p, SPIN_SAMPLE, 0.25, 1000);
  t.equal(p.backoffs, 1, 'one pause after a poor sample');
  t.notOk(p.shouldSpin(1000), 'paused at once');
  t.ok(p.paused(1000 + SPIN_BACKOFF_MS - 1), 'still paused just before the pause ends');
  t.ok(p.shouldSpin(1000 + SPIN_BACKOFF_MS), 'polls again when it ends');
  // Each further poor sample doubles the pause.
  let now = 1000 + SPIN_BACKOFF_MS;
  const pauses: number[] = [];
  for (let k = 0; k < 8; k++) {
    feed(p, SPIN_SAMPLE, 0, now);
    let end = now;
    while (!p.shouldSpin(end)) end += 1;
    pauses.push(end - now);
    now = end;
  }
  t.same(
    pauses,
    [2, 4, 8, 16, 32, 64, 64, 64].map((f) => Math.min((f * SPIN_BACKOFF_MS) / 1, SPIN_BACKOFF_MAX_MS)),
    'pauses double to the cap',
  );
  // One good sample resets the pause to the first length.
  feed(p, SPIN_SAMPLE, 1, now);
  feed(p, SPIN_SAMPLE, 0, now);
  t.ok(p.shouldSpin(now + SPIN_BACKOFF_MS), 'after a good sample the next pause is the first length again');
});

t.test('spin-policy = always never pauses; spin-us 0 never polls', async (t) => {
  const always = new SpinPolicy(0.02, false);
  feed(always, 10 * SPIN_SAMPLE, 0, 0);
  t.equal(always.backoffs, 0);
  t.ok(always.shouldSpin(0));
  const off = new SpinPolicy(0);
  t.notOk(off.shouldSpin(0));
  t.notOk(off.paused(0), 'not "paused" either: off');
});

t.test('the counters add up', async (t) => {
  const p = new SpinPolicy(0.02);
  feed(p, 3 * SPIN_SAMPLE, 0.75, 0);
  t.equal(p.spins, 3 * SPIN_SAMPLE);
  t.equal(p.hits, 3 * 0.75 * SPIN_SAMPLE);
});
