// The fault plan (src/backend/fault-plan.ts) and the io-ring wrapper
// (src/backend/fault-io.ts) without a daemon: which operations a plan fails,
// how completions are rewritten, what the journal records, and that nothing
// is wrapped unless a test asks for it.

import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultIoRing, withTestFaults } from '../../src/faults/fault-io';
import { FaultPlan, FaultPlanError } from '../../src/faults/fault-plan';
import type { IoRing } from '../../src/native/addon';

t.test('plan: ranges, ops, after/every/times, errno names and short transfers', (t) => {
  const p = new FaultPlan({
    rules: [
      { op: 'write', sectors: [100, 103], error: 'ENOSPC' },
      { op: 'read', after: 2, every: 3, times: 2, error: 'EIO' },
      { op: 'sync', error: 5, times: 1 },
      { op: 'write', sectors: [300, 300], error: 'short' },
    ],
  });
  t.equal(p.decide('write', 99 * 512, 512), undefined, 'write before the range passes');
  t.equal(p.decide('write', 99 * 512, 1024), -28, 'write overlapping the range start fails with ENOSPC');
  t.equal(p.decide('write', 103 * 512, 512), -28, 'last sector of the range');
  t.equal(p.decide('write', 104 * 512, 4096), undefined, 'write after the range passes');
  const reads = Array.from({ length: 12 }, () => p.decide('read', 0, 512));
  t.same(
    reads,
    [undefined, undefined, -5, undefined, undefined, -5, undefined, undefined, undefined, undefined, undefined, undefined],
    'read 3 and 6 fail, then times runs out',
  );
  t.equal(p.decide('sync', 0, 0), -5, 'first sync fails');
  t.equal(p.decide('sync', 0, 0), undefined, 'second passes');
  t.equal(p.decide('write', 300 * 512, 1024), 512, 'short: half the length');
  t.same(p.fired, [2, 2, 1, 1]);
  t.end();
});

t.test('plan: the first rule that fires decides; ranged rules never match a sync', (t) => {
  const p = new FaultPlan({ rules: [{ sectors: [0, 10], error: 'EIO' }, { error: 'ENOSPC' }] });
  t.equal(p.decide('read', 0, 512), -5);
  t.equal(p.decide('sync', 0, 0), -28, 'sync skips the ranged rule');
  t.equal(p.decide('write', 11 * 512, 512), -28);
  t.same(p.fired, [1, 2], 'the second rule does not fire where the first did');
  t.end();
});

t.test('plan: bad plans are refused with a reason', (t) => {
  const bad: [string, RegExp][] = [
    ['not json', /must be JSON/],
    ['{}', /"rules" array/],
    ['{"rules":[{"error":"EWHAT"}]}', /error must be/],
    ['{"rules":[{"op":"trim","error":"EIO"}]}', /op must be/],
    ['{"rules":[{"sectors":[5,1],"error":"EIO"}]}', /is empty/],
    ['{"rules":[{"every":0,"error":"EIO"}]}', /every must be at least 1/],
    ['{"rules":[{"after":-1,"error":"EIO"}]}', /after must be/],
    ['{"rules":[{"error":"EIO","lba":3}]}', /unknown field "lba"/],
  ];
  for (const [text, re] of bad) t.throws(() => FaultPlan.parse(text), re, text);
  let caught: unknown;
  try {
    FaultPlan.parse('{"rules":[{"error":"EIO","times":1.5}]}');
  } catch (e) {
    caught = e;
  }
  t.ok(caught instanceof FaultPlanError, 'a FaultPlanError');
  t.ok(FaultPlan.parse('{"rules":[]}').empty);
  t.end();
});

/** A fake ring: completes every op with its full length (0 for a sync) at the next reap. */
class FakeRing implements IoRing {
  readonly kind = 'sync' as const;
  readonly depth = 64;
  readonly eventFd = -1;
  done: [number, number][] = [];
  closed = false;
  accept = Infinity;
  registerBuffer(): void {}
  unregisterBuffer(): void {}
  submit(ops: Float64Array, tags: Uint32Array, count: number): number {
    const n = Math.min(count, this.accept);
    for (let i = 0; i < n; i++) this.done.push([tags[i], ops[i * 6] === 2 ? 0 : ops[i * 6 + 4]]);
    return n;
  }
  reap(out: Int32Array, max: number): number {
    const n = Math.min(max, this.done.length);
    for (let i = 0; i < n; i++) {
      out[i * 2] = this.done[i][0];
      out[i * 2 + 1] = this.done[i][1];
    }
    this.done.splice(0, n);
    return n;
  }
  startPolling(): void {}
  stopPolling(): void {}
  close(): void {
    this.closed = true;
  }
}

function ops(list: [op: number, fd: number, buf: number, off: number, len: number, pos: number][]): Float64Array {
  return Float64Array.from(list.flat());
}

t.test('wrapper: rewrites planned completions, journals writes and syncs in order', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aoet-faultio-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const journal = join(dir, 'journal');
  const fake = new FakeRing();
  const plan = FaultPlan.parse('{"rules":[{"op":"write","sectors":[8,8],"error":"EIO"}]}');
  const ring = new FaultIoRing(fake, { current: () => plan }, journal);
  const mem = new Uint8Array(4096);
  mem.set([0xde, 0xad, 0xbe, 0xef], 1024);
  ring.registerBuffer(3, mem);
  const tags = Uint32Array.from([1, 2, 0x40000005, 4]);
  const accepted = ring.submit(
    ops([
      [1, 9, 3, 1024, 512, 0],
      [1, 9, 3, 1024, 512, 8 * 512],
      [2, 9, 0, 0, 0, 0],
      [0, 9, 3, 0, 1024, 0],
    ]),
    tags,
    4,
  );
  t.equal(accepted, 4);
  const out = new Int32Array(16);
  t.equal(ring.reap(out, 8), 4);
  t.same(
    Array.from(out.subarray(0, 8)),
    [1, 512, 2, -5, 0x40000005, 0, 4, 1024],
    'the write at sector 8 reports EIO; the rest are untouched',
  );
  t.equal(ring.injected, 1);
  ring.close();
  t.ok(fake.closed);
  t.same(readFileSync(journal, 'utf8').trim().split('\n'), [
    'w 9 0 512 deadbeef000000000000000000000000',
    'w 9 4096 512 deadbeef000000000000000000000000',
    's 9 1',
    'W 9 0 512 512',
    'W 9 4096 512 -5',
    'S 9 1 0',
  ]);
  t.end();
});

t.test('wrapper: ops the ring did not accept are neither rewritten nor journalled', (t) => {
  const fake = new FakeRing();
  fake.accept = 1;
  const plan = FaultPlan.parse('{"rules":[{"error":"EIO"}]}');
  const ring = new FaultIoRing(fake, { current: () => plan }, undefined);
  t.equal(
    ring.submit(
      ops([
        [0, 1, 0, 0, 512, 0],
        [0, 1, 0, 0, 512, 512],
      ]),
      Uint32Array.from([7, 8]),
      2,
    ),
    1,
  );
  t.same(plan.matched, [1], 'only the accepted op was shown to the plan');
  const out = new Int32Array(4);
  t.equal(ring.reap(out, 2), 1);
  t.same(Array.from(out.subarray(0, 2)), [7, -5]);
  t.end();
});

t.test('withTestFaults: the real ring unless the environment asks; plan files are re-read', async (t) => {
  const fake = new FakeRing();
  t.equal(withTestFaults(fake, {}), fake, 'no variables: the same object, nothing in between');
  const dir = mkdtempSync(join(tmpdir(), 'aoet-faultio-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const planFile = join(dir, 'plan.json');
  t.throws(
    () => withTestFaults(fake, { AOET_TEST_FAULT_PLAN: '{"rules":[{"error":"EBAD"}]}' }),
    /error must be/,
    'a bad inline plan refuses to start',
  );
  const origWrite = process.stderr.write.bind(process.stderr);
  const said: string[] = [];
  process.stderr.write = (s: string) => {
    said.push(String(s));
    return true;
  };
  let ring: IoRing;
  try {
    ring = withTestFaults(fake, { AOET_TEST_FAULT_PLAN: planFile });
  } finally {
    process.stderr.write = origWrite;
  }
  t.match(said.join(''), /TEST ONLY: storage fault injection active/, 'says loudly that it is active');
  t.not(ring, fake);
  const out = new Int32Array(4);
  const one = (): number => {
    ring.submit(ops([[0, 1, 0, 0, 512, 0]]), Uint32Array.from([1]), 1);
    ring.reap(out, 2);
    return out[1];
  };
  t.equal(one(), 512, 'no plan file yet: no faults');
  writeFileSync(planFile, '{"rules":[{"op":"read","error":"ENOSPC"}]}');
  await new Promise((r) => setTimeout(r, 80));
  t.equal(one(), -28, 'the plan file is picked up');
  writeFileSync(planFile, '{"rules":[]}');
  await new Promise((r) => setTimeout(r, 80));
  t.equal(one(), 512, 'and dropped again');
});
