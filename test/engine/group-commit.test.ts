// GroupCommit's policy on its own: when an fdatasync is due, who its batch
// holds, and that newcomers wait for the next one.

import t from 'tap';
import { GROUP_COMMIT_MAX_WAIT_MS, GroupCommit } from '../../src/engine/group-commit';

function batchOf(gc: GroupCommit): number[] {
  const out: number[] = [];
  for (let i = 0; i < gc.batchSize; i++) out.push(gc.batchRequest(i));
  return out;
}

t.test('nothing waits: never due', (t) => {
  const gc = new GroupCommit(8);
  t.notOk(gc.pending);
  t.notOk(gc.due(1e9));
  t.end();
});

t.test('no write out: due at once, and the batch is every waiter', (t) => {
  const gc = new GroupCommit(8);
  gc.join(3, 100);
  gc.join(5, 100.2);
  t.ok(gc.pending);
  t.notOk(gc.waitsForWrites);
  t.ok(gc.due(100.2));
  gc.start();
  t.same(batchOf(gc), [3, 5]);
  t.notOk(gc.pending, 'nothing left waiting');
  t.end();
});

t.test('a write out: waits for it, or until the first waiter waited long enough', (t) => {
  const gc = new GroupCommit(8);
  gc.writeSubmitted();
  gc.join(1, 100);
  gc.join(2, 100.5);
  t.ok(gc.waitsForWrites);
  t.notOk(gc.due(100 + GROUP_COMMIT_MAX_WAIT_MS / 2), 'still within the wait');
  t.ok(gc.due(100 + GROUP_COMMIT_MAX_WAIT_MS), 'waited long enough (counted from the first waiter)');
  t.equal(gc.writeCompleted(), true, 'the completed write reports waiters');
  t.notOk(gc.waitsForWrites);
  t.ok(gc.due(100), 'due as soon as no write is out');
  t.end();
});

t.test('while one runs, newcomers gather for the next', (t) => {
  const gc = new GroupCommit(8);
  gc.join(1, 0);
  gc.start();
  gc.join(2, 5);
  gc.join(4, 6);
  t.notOk(gc.pending, 'one is running');
  t.notOk(gc.due(1000));
  t.same(batchOf(gc), [1], 'the running batch is unchanged');
  t.equal(gc.finish(), true, 'finish reports the newcomers');
  t.equal(gc.batchSize, 0);
  t.ok(gc.due(6));
  gc.start();
  t.same(batchOf(gc), [2, 4]);
  t.equal(gc.finish(), false, 'nobody left');
  t.end();
});

t.test('the wait restarts with the first waiter of each round', (t) => {
  const gc = new GroupCommit(8);
  gc.writeSubmitted();
  gc.join(1, 0);
  t.ok(gc.due(GROUP_COMMIT_MAX_WAIT_MS));
  gc.start();
  gc.finish();
  gc.join(2, 50);
  t.notOk(gc.due(50 + GROUP_COMMIT_MAX_WAIT_MS / 2), 'counted from 50, not from 0');
  t.end();
});
