// The share of libuv's pool that remote stores may hold (src/remote/pool-share.ts):
// each open, close and rbd call holds a pool thread while its server keeps it
// waiting, so many dead remote exports must leave threads for node:fs.

import t from 'tap';
import { readFile } from 'node:fs/promises';
import { PoolShare, WorkAbandoned, remotePoolShare, threadPoolSize } from '../../src/remote/pool-share';

t.test('the pool size comes from UV_THREADPOOL_SIZE, else 4; the limit is half of it', async (t) => {
  t.equal(threadPoolSize({}), 4);
  t.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '16' }), 16);
  for (const bad of ['0', '-3', 'many', '2.5', ''])
    t.equal(threadPoolSize({ UV_THREADPOOL_SIZE: bad }), 4, `"${bad}" is ignored`);
  t.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '5000' }), 1024, 'libuv takes at most 1024');
  t.equal(remotePoolShare.max, Math.max(1, Math.floor(threadPoolSize() / 2)));
});

t.test('at most `max` run; the others wait their turn in order; a given-up one never runs', async (t) => {
  const limit = new PoolShare(2);
  const started: number[] = [];
  const finish = new Map<number, () => void>();
  const open = (i: number, signal?: AbortSignal) =>
    limit.run(
      () =>
        new Promise<number>((resolve) => {
          started.push(i);
          finish.set(i, () => resolve(i));
        }),
      signal,
    );
  const gone = new AbortController();
  const results = [open(1), open(2), open(3), open(4, gone.signal), open(5)];
  const outcome = results.map((p) =>
    p.then(
      (v) => `opened ${v}`,
      (e: Error) => (e instanceof WorkAbandoned ? 'abandoned' : e.message),
    ),
  );
  await new Promise((r) => setImmediate(r));
  t.same(started, [1, 2], 'two run');
  t.same(limit.counts, { running: 2, waiting: 3 });
  gone.abort();
  t.equal(await outcome[3], 'abandoned', 'the one given up while it waited is not started');
  // While two opens wait on their servers, the pool still reads files.
  t.ok((await readFile(__filename)).length > 0, 'node:fs is answered meanwhile');
  finish.get(1)!();
  await outcome[0];
  await new Promise((r) => setImmediate(r));
  t.same(started, [1, 2, 3], 'the next in line starts when one ends');
  finish.get(2)!();
  finish.get(3)!();
  await Promise.all(outcome.slice(1, 3));
  await new Promise((r) => setImmediate(r));
  t.same(started, [1, 2, 3, 5]);
  finish.get(5)!();
  t.same(await Promise.all(outcome), ['opened 1', 'opened 2', 'opened 3', 'abandoned', 'opened 5']);
  t.same(limit.counts, { running: 0, waiting: 0 }, 'every slot is free again');
  const aborted = new AbortController();
  aborted.abort();
  await t.rejects(
    limit.run(() => Promise.resolve(1), aborted.signal),
    /given up before it started/,
    'an open given up before it is asked never runs',
  );
  await t.rejects(
    limit.run(() => Promise.reject(new Error('refused by the server'))),
    /refused by the server/,
  );
  t.same(limit.counts, { running: 0, waiting: 0 }, 'a failed open frees its slot');
});
