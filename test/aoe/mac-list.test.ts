// The bounded MAC list behind the mask and reserve lists, and MAC text.

import t from 'tap';
import { formatMac, MacList, parseMac } from '../../src/aoe';
import { A, B, C, D, hex, macN } from './golden';

function listOf(macs: string[], capacity?: number): MacList {
  const l = new MacList(capacity);
  for (const m of macs) if (!l.add(hex(m), 0)) throw new Error(`cannot add ${m}`);
  return l;
}

/** Bytes past the last entry must be zero (no stale addresses). */
function tailClean(l: MacList): boolean {
  return l.bytes.subarray(l.count * 6).every((b) => b === 0);
}

t.test('add: appends, ignores duplicates, refuses when full', (t) => {
  const l = new MacList(3);
  t.equal(l.capacity, 3);
  t.ok(l.add(hex(A), 0));
  t.ok(l.add(hex(B), 0));
  t.ok(l.add(hex(A), 0), 'present counts as success');
  t.equal(l.count, 2);
  t.ok(l.add(hex(C), 0));
  t.notOk(l.add(hex(D), 0), 'full');
  t.ok(l.add(hex(B), 0), 'present in a full list: success');
  t.same(l.toStrings(), [A, B, C]);
  t.end();
});

t.test('add reads six bytes at an offset', (t) => {
  const l = new MacList();
  l.add(hex('ee ee ee', B, 'ee'), 3);
  t.same(l.toStrings(), [B]);
  t.ok(l.has(hex('ff', B), 1));
  t.notOk(l.has(hex('ff', B), 0), 'wrong offset');
  t.end();
});

t.test('delete', (t) => {
  const rows: { desc: string; start: string[]; del: string; want: string[] }[] = [
    { desc: 'first of three (vblade B1)', start: [A, B, C], del: A, want: [B, C] },
    { desc: 'first of two', start: [A, B], del: A, want: [B] },
    { desc: 'middle', start: [A, B, C], del: B, want: [A, C] },
    { desc: 'last', start: [A, B, C], del: C, want: [A, B] },
    { desc: 'only', start: [A], del: A, want: [] },
    { desc: 'absent', start: [A, B], del: D, want: [A, B] },
    { desc: 'from empty', start: [], del: A, want: [] },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const l = listOf(r.start);
      l.delete(hex(r.del), 0);
      t.same(l.toStrings(), r.want);
      t.equal(l.count, r.want.length);
      t.ok(tailClean(l), 'no stale bytes after the last entry');
      t.end();
    });
  }
  t.end();
});

t.test('a full list of 128: delete the first, add one, stays exact', (t) => {
  const macs = Array.from({ length: 128 }, (_, i) => macN(i));
  const l = listOf(macs);
  t.equal(l.count, 128);
  t.notOk(l.add(hex(A), 0));
  l.delete(hex(macN(0)), 0);
  t.ok(l.add(hex(A), 0));
  t.same(l.toStrings(), [...macs.slice(1), A]);
  for (let i = 0; i < 128; i++) l.delete(hex(i === 127 ? A : macN(i + 1)), 0);
  t.equal(l.count, 0);
  t.ok(tailClean(l));
  t.end();
});

t.test('indexOf and has', (t) => {
  const l = listOf([A, B, C]);
  t.equal(l.indexOf(hex(A), 0), 0);
  t.equal(l.indexOf(hex(C), 0), 2);
  t.equal(l.indexOf(hex(D), 0), -1);
  t.notOk(l.has(hex('02 00 00 00 00 00'), 0), 'a prefix of an entry is not a member');
  t.end();
});

t.test('replace: from a frame, with duplicates collapsed, old entries gone', (t) => {
  const l = listOf([A, B, C]);
  l.replace(hex('99', D, A, D), 1, 3);
  t.same(l.toStrings(), [D, A]);
  t.ok(tailClean(l));
  l.replace(hex(''), 0, 0);
  t.same(l.toStrings(), []);
  t.ok(tailClean(l));
  t.end();
});

t.test('copyFrom copies entries and count', (t) => {
  const a = listOf([A, B]);
  const b = listOf([C, D, A]);
  b.copyFrom(a);
  t.same(b.toStrings(), [A, B]);
  t.ok(tailClean(b));
  a.add(hex(C), 0);
  t.same(b.toStrings(), [A, B], 'independent copy');
  t.end();
});

t.test('setStrings', (t) => {
  const l = new MacList(4);
  l.setStrings(['02:00:00:00:00:0A', '02-00-00-00-00-0b', '02000000000c', A]);
  t.same(l.toStrings(), [A, B, C], 'formats accepted, duplicates collapsed');
  t.throws(() => l.setStrings([A, B, C, D, macN(1)]), /at most 4/, 'too many');
  t.throws(() => l.setStrings(['nonsense']), /not a MAC address/);
  t.end();
});

t.test('parseMac and formatMac', (t) => {
  const good: [string, string][] = [
    ['02:00:00:00:00:0a', A],
    ['02-00-00-00-00-0A', A],
    ['02000000000a', A],
    ['  02:00:00:00:00:0a ', A],
    ['FF:FF:FF:FF:FF:FF', 'ff:ff:ff:ff:ff:ff'],
  ];
  for (const [text, want] of good) t.equal(formatMac(parseMac(text), 0), want, `parse ${JSON.stringify(text)}`);
  const bad = [
    '',
    '02:00:00:00:00',
    '02:00:00:00:00:0a:0b',
    '02:00-00:00:00:0a',
    'g2:00:00:00:00:0a',
    '2:0:0:0:0:a',
    '02000000000a0',
  ];
  for (const text of bad) t.throws(() => parseMac(text), /not a MAC address/, `reject ${JSON.stringify(text)}`);
  t.equal(formatMac(hex('00 ab', A), 2), A, 'format at an offset');
  t.end();
});
