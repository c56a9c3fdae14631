// remote-closes.ts: a stopping daemon waits for every remote store's close,
// also one that starts while it waits and one whose promise nobody kept.

import t from 'tap';
import { remoteClosesDone, trackClose } from '../../src/remote/remote-closes';

function later(ms: number, then?: () => void): Promise<void> {
  return new Promise((resolve) =>
    setTimeout(() => {
      then?.();
      resolve();
    }, ms),
  );
}

t.test('nothing closing: done at once', async (t) => {
  const t0 = Date.now();
  await remoteClosesDone();
  t.ok(Date.now() - t0 < 50);
});

t.test('waits for every close, those started meanwhile too', async (t) => {
  const closed: string[] = [];
  const first = trackClose(later(60, () => closed.push('first')));
  t.equal(first instanceof Promise, true, 'the close is handed back');
  // Not kept by anyone: a store given up on an error path.
  void trackClose(later(20, () => void trackClose(later(120, () => closed.push('started meanwhile')))));
  await remoteClosesDone();
  t.same(closed.sort(), ['first', 'started meanwhile'], 'both closes finished first');
  await remoteClosesDone(); // and nothing is left
});

t.test('a close that rejects does not stop the wait for the others', async (t) => {
  const closed: string[] = [];
  const failing = trackClose(later(10).then(() => Promise.reject(new Error('lost'))));
  failing.catch(() => undefined);
  void trackClose(later(50, () => closed.push('other')));
  await remoteClosesDone();
  t.same(closed, ['other']);
});
