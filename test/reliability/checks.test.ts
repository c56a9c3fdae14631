// The reliability tests' own checkers, without a network: if these were
// wrong, the live tests could pass for the wrong reason.
//  - the fuzzer's guard never lets a WRITE reach the protected range, under
//    either reading of the LBA bytes, over many generated frames;
//  - replyViolations finds the reply faults vblade 25 has (short, unpadded
//    replies; stale padding; echoed flags), on frames the fuzzer caught;
//  - CheckedSocket finds duplicates, unknown tags, wrong LBAs, wrong lengths
//    and frames for other stations;
//  - the crash journal analysis marks writes durable only when a later
//    fdatasync was submitted after them and succeeded.

import t from 'tap';
import { analyseJournal, fillRecord, recordVersion } from './lib/crash';
import { CheckedSocket, checkFailures } from './lib/checked-socket';
import { FrameGen, FuzzTarget, replyViolations } from './lib/fuzz';
import type { FrameSocket } from '../../src/client/transport';

const TARGET: FuzzTarget = { mac: Uint8Array.from([2, 0xa0, 0, 0, 0, 0x0b]), shelf: 11, slot: 7, sectors: 16384, mtu: 1500 };
const CLIENT = Uint8Array.from([2, 0xb0, 0, 0, 0, 0x0b]);

t.test('fuzz guard: no WRITE frame ever addresses the protected range', (t) => {
  const gen = new FrameGen(0xabcdef, TARGET, CLIENT, [0, 1024]);
  const buf = new Uint8Array(1600);
  let writes = 0;
  let bad = 0;
  let maskNonPool = 0;
  const pool = new Set(gen.pool.map((m) => Buffer.from(m).toString('hex')));
  for (let i = 0; i < 200000; i++) {
    const len = gen.next(buf, 0);
    if (len < 36 || buf[12] !== 0x88 || buf[13] !== 0xa2) continue;
    if (buf[19] === 2) {
      for (let p = 28; p + 8 <= len; p += 8)
        if (!pool.has(Buffer.from(buf.subarray(p + 2, p + 8)).toString('hex'))) maskNonPool++;
    }
    if (buf[19] !== 0 || (buf[27] !== 0x30 && buf[27] !== 0x34)) continue;
    writes++;
    const count = buf[26] === 0 ? 65536 : buf[26];
    const l28 = buf[28] | (buf[29] << 8) | (buf[30] << 16) | ((buf[31] & 0x0f) << 24);
    const l48 = (buf[28] | (buf[29] << 8) | (buf[30] << 16)) + buf[31] * 0x1000000 + (buf[32] | (buf[33] << 8)) * 0x100000000;
    if ((l28 < 1024 && l28 + count > 0) || (l48 < 1024 && l48 + count > 0)) bad++;
  }
  t.ok(writes > 5000, `${writes} WRITE frames generated`);
  t.ok(gen.moved > 100, `${gen.moved} of them moved by the guard`);
  t.equal(bad, 0, 'none addresses the protected range');
  t.equal(maskNonPool, 0, 'Mac Mask directives name only pool addresses');
  const kinds = Array.from(gen.kinds);
  t.ok(
    kinds.every((k) => k > 1000),
    `every kind of frame is generated (${kinds.join(', ')})`,
  );
  t.end();
});

t.test('fuzz generator: same seed, same frames; lengths 0..MTU + 14', (t) => {
  const a = new FrameGen(7, TARGET, CLIENT, [0, 1024]);
  const b = new FrameGen(7, TARGET, CLIENT, [0, 1024]);
  const ba = new Uint8Array(1600);
  const bb = new Uint8Array(1600);
  let min = Infinity;
  let max = 0;
  let same = true;
  for (let i = 0; i < 20000; i++) {
    const la = a.next(ba, 0);
    const lb = b.next(bb, 0);
    if (la !== lb || Buffer.compare(ba.subarray(0, la), bb.subarray(0, lb)) !== 0) same = false;
    min = Math.min(min, la);
    max = Math.max(max, la);
  }
  t.ok(same, 'reproducible from the seed');
  t.equal(min, 0, 'empty frames too');
  t.equal(max, 1514, 'up to MTU + 14');
  t.end();
});

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s/g, ''), 'hex'));

t.test('replyViolations: vblade 25 replies the fuzzer caught are flagged; ours are not', (t) => {
  const vt = { ...TARGET, mac: hex('02a00000000b') };
  // A 35-byte Mac Mask reply with the request's MBZ flags echoed (B7, B9).
  t.match(replyViolations(hex('02f02200000202a00000000b88a21b00000b0701b3b2d3b200104019021300035c7b90'), vt), [
    /reply of 35 bytes/,
    /MBZ/,
  ]);
  // A 60-byte ATA reply whose padding is stale data (B10).
  const stale = hex(
    '02b00000000b02a00000000b88a21df5000b0700c130d7c301000040181300e0000000001416db1e6f63ec118b8ca2d016422a4e0c715b3d84e574a2',
  );
  t.match(replyViolations(stale, vt).join(' '), /padding byte 36 is 0x14/);
  // A clean 60-byte ATA reply.
  const ok = new Uint8Array(60);
  ok.set(CLIENT, 0);
  ok.set(vt.mac, 6);
  ok.set([0x88, 0xa2, 0x18, 0, 0, 11, 7, 0, 1, 2, 3, 4, 0x40, 0, 0, 0x40, 1, 0, 0, 0, 0, 0, 0, 0], 12);
  t.same(replyViolations(ok, vt), [], 'a clean ATA reply passes');
  ok[59] = 0xaa;
  t.match(replyViolations(ok, vt).join(' '), /padding byte 59/);
  // Config reply: content 32 + cslen, padded; a byte past the string is a leak.
  const cfg = new Uint8Array(60);
  cfg.set(ok.subarray(0, 19), 0);
  cfg.set([1, 1, 2, 3, 4, 0, 16, 0x50, 0x01, 2, 0x10, 0, 4, 0x61, 0x62, 0x63, 0x64], 19);
  t.same(replyViolations(cfg, vt), [], 'config reply with a 4-byte string, zero padded');
  cfg[40] = 1;
  t.match(replyViolations(cfg, vt).join(' '), /padding byte 40/);
  t.end();
});

/** A fake socket: `send` takes everything; `drain` hands out frames pushed by the test. */
class FakeSocket implements FrameSocket {
  ring = new Uint8Array(64 * 2048);
  queued: Uint8Array[] = [];
  released: number[] = [];
  drain(desc: Uint32Array, max: number): number {
    const n = Math.min(max, this.queued.length);
    for (let i = 0; i < n; i++) {
      const f = this.queued.shift()!;
      this.ring.set(f, i * 2048);
      desc[i * 3] = i * 2048;
      desc[i * 3 + 1] = f.length;
      desc[i * 3 + 2] = i;
    }
    return n;
  }
  release(slot: number): void {
    this.released.push(slot);
  }
  send(_a: Uint8Array, _d: Uint32Array, count: number): number {
    return count;
  }
  startPolling(): void {}
  stopPolling(): void {}
  close(): void {}
}

function request(tag: number, lba: number, op: number, count: number): Uint8Array {
  const f = new Uint8Array(36);
  f.set(TARGET.mac, 0);
  f.set(CLIENT, 6);
  f.set([0x88, 0xa2, 0x10, 0, 0, 11, 7, 0], 12);
  f.set([tag >>> 24, (tag >>> 16) & 0xff, (tag >>> 8) & 0xff, tag & 0xff], 20);
  f.set([0x40, 0, count, op, lba & 0xff, lba >> 8, 0, 0, 0, 0, 0, 0], 24);
  return f;
}

function reply(req: Uint8Array, len: number, to: Uint8Array = CLIENT): Uint8Array {
  const r = new Uint8Array(len);
  r.set(to, 0);
  r.set(TARGET.mac, 6);
  r.set(req.subarray(12, 36), 12);
  r[14] = 0x18;
  r[26] = 0;
  r[27] = 0x40;
  return r;
}

t.test('CheckedSocket: passes the right replies and catches every kind of wrong one', (t) => {
  const fake = new FakeSocket();
  const s = new CheckedSocket(fake, CLIENT, 4, TARGET);
  const reqs = [
    request(0x00010000, 100, 0x24, 2),
    request(0x00010001, 200, 0x34, 2),
    request(0x00010002, 300, 0x24, 1),
    request(0x00010003, 400, 0x24, 1),
  ];
  const arena = new Uint8Array(4 * 64);
  const desc = new Uint32Array(8);
  reqs.forEach((r, i) => {
    arena.set(r, i * 64);
    desc[i * 2] = i * 64;
    desc[i * 2 + 1] = 36;
  });
  s.send(arena, desc, 4);
  const good0 = reply(reqs[0], 36 + 1024);
  const good1 = reply(reqs[1], 60);
  const wrongLba = reply(reqs[2], 36 + 512);
  wrongLba[28] = 0x2d; // 301
  const wrongLen = reply(reqs[3], 60);
  const unknown = reply(request(0x00070002, 1, 0x24, 1), 36 + 512);
  const foreign = reply(reqs[0], 36 + 1024, Uint8Array.from([2, 0x10, 0, 0, 0, 9]));
  fake.queued.push(good0, good1, good0, wrongLba, wrongLen, unknown, foreign);
  const out = new Uint32Array(30);
  const n = s.drain(out, 10);
  t.equal(n, 2, 'two replies pass');
  const c = s.checks;
  t.same(
    {
      passed: c.passed,
      duplicates: c.duplicates,
      lbaMismatch: c.lbaMismatch,
      lengthMismatch: c.lengthMismatch,
      unknownTag: c.unknownTag,
      foreign: c.foreign,
    },
    { passed: 2, duplicates: 1, lbaMismatch: 1, lengthMismatch: 1, unknownTag: 1, foreign: 1 },
  );
  t.equal(fake.released.length, 5, 'the rejected frames were released');
  t.equal(checkFailures(c), 5);
  t.end();
});

t.test('crash journal: durable only when a later fdatasync was submitted after completion and succeeded', (t) => {
  const head = (lba: number, v: number): string => {
    const b = new Uint8Array(512);
    fillRecord(b, 0, lba, v);
    return Buffer.from(b.subarray(0, 16)).toString('hex');
  };
  const j = analyseJournal(
    [
      `w 9 0 1024 ${head(0, 1)}`, // sectors 0-1 v1
      `w 9 1024 1024 ${head(2, 1)}`, // sectors 2-3 v1
      'W 9 0 1024 1024',
      's 9 1', // covers sectors 0-1 only
      'W 9 1024 1024 1024',
      'S 9 1 0',
      `w 9 0 1024 ${head(0, 2)}`, // sectors 0-1 v2
      'W 9 0 1024 1024',
      's 9 2',
      'S 9 2 -5', // failed: v2 not durable
      `w 9 4096 1024 ${head(8, 1)}`, // in flight at the kill
    ].join('\n'),
  );
  t.same(
    [...j.durable.entries()].sort((a, b) => a[0] - b[0]),
    [
      [0, 1],
      [1, 1],
    ],
    'sectors 0-1 durable at version 1',
  );
  t.same(
    [...j.volatile].sort((a, b) => a - b),
    [0, 1, 2, 3, 8, 9],
    'the rest must be undone on a power loss',
  );
  t.equal(j.syncs, 1);
  const b = new Uint8Array(512);
  fillRecord(b, 0, 77, 5);
  t.equal(recordVersion(b, 0, 77), 5);
  t.equal(recordVersion(b, 0, 78), -1, 'a record of another LBA is wrong');
  b[300] ^= 1;
  t.equal(recordVersion(b, 0, 77), -1, 'a damaged record is caught');
  t.equal(recordVersion(new Uint8Array(512), 0, 77), 0, 'zeros: never written');
  t.end();
});
