// Seeded random frames into respond(): random lengths 0..9100, random and
// near-valid header fields, against an export whose MTU, size, read-only
// flag and lists keep changing. For every frame:
//  - respond() never throws;
//  - the outcome is silence, storage work, or a reply of 60..MTU+14 bytes that
//    obeys every reply rule (replyProblems) with zero padding over a stale slot;
//  - no reply only where the protocol allows silence, and for the reason that
//    applies; AoE errors 1/5/6 where due; the outcome agrees with the reply bytes;
//  - Pending work is within the export, the frame and the MTU;
//  - the lists stay within capacity, duplicate-free and clean past their end;
//  - the answer and the new state do not depend on bytes past `len` or on
//    stale bytes in the transmit slot (run twice with different junk).
// AOE_SEED and AOE_ITER override the seed and the number of frames.

import t from 'tap';
import { isPending, isReply, MacList, Outcome, respond } from '../../src/aoe';
import { A, B, C, D, dump, headerProblems, hex, macN, replyOutcome, replyProblems, RX_OFF, Target, TX_OFF } from './golden';

/** Marsaglia's xorshift32: small, seedable, good enough to pick test cases. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** 0 <= n < k */
  int(k: number): number {
    return k <= 1 ? 0 : Math.floor((this.u32() / 0x100000000) * k);
  }
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

const SEED = Number(process.env.AOE_SEED ?? 0x5eed2026);
const ITER = Number(process.env.AOE_ITER ?? 20000);
const MAX_LEN = 9100;
const POOL = [A, B, C, D].map((m) => hex(m));
const BCAST = hex('ff ff ff ff ff ff');
const TARGET_MAC = hex('02 aa bb 00 07 03');
const STRINGS = ['', 'a', 'ab', 'abc', 'abd', 'host1'];

function randomMac(r: Rng, pool = 0.7): Uint8Array {
  if (r.chance(pool)) return r.pick(POOL);
  const m = new Uint8Array(6);
  for (let i = 0; i < 6; i++) m[i] = r.int(256);
  return m;
}

/** One request frame: mostly near-valid shapes, sometimes pure noise. */
function genFrame(r: Rng, tg: Target): Uint8Array {
  const cmd = r.chance(0.92) ? r.int(4) : r.int(256);
  let len: number;
  const body: [number, number][] = []; // (offset, byte) writes after the random fill
  const put = (off: number, ...bytes: number[]): void => {
    bytes.forEach((b, i) => body.push([off + i, b & 0xff]));
  };
  const putMac = (off: number, m: Uint8Array): void => put(off, ...m);
  switch (cmd) {
    case 0: {
      const op = r.chance(0.85) ? r.pick([0x20, 0x24, 0x24, 0x30, 0x34, 0x34, 0xec, 0xe5, 0xe7, 0xea]) : r.int(256);
      const write = op === 0x30 || op === 0x34;
      const count = r.pick([1, 1, 2, 2, 0, 3, 17, 18, 255, r.int(256)]);
      const ext = op === 0x24 || op === 0x34;
      const lba = r.pick([
        0,
        r.int(tg.st.sectors),
        Math.max(0, tg.st.sectors - 1 - r.int(4)),
        tg.st.sectors,
        r.int(2 ** 28),
        r.int(2 ** 48),
      ]);
      const lb: number[] = [];
      let v = lba;
      for (let i = 0; i < 6; i++) {
        lb.push(v % 256);
        v = Math.floor(v / 256);
      }
      if (!ext && r.chance(0.7)) lb[3] = 0xe0 | (lb[3] & 0x0f);
      put(24, r.pick([0, 0x40, 0x41, 0x01, r.int(256)]), r.int(256), count, op, ...lb);
      if (r.chance(0.9)) put(34, 0, 0);
      const payload = write
        ? count * 512 + r.pick([0, 0, -1, -512, r.int(600)])
        : r.pick([0, 0, 0, r.int(1100), 1024, r.int(9000)]);
      len = r.chance(0.05) ? r.int(36) : 36 + Math.max(0, payload);
      break;
    }
    case 1: {
      const s = r.chance(0.95) ? r.pick(STRINGS) : 'z'.repeat(r.int(1100));
      const ccmd = r.chance(0.8) ? r.int(5) : r.int(16);
      const cslen = r.chance(0.8) ? s.length : r.pick([s.length + 1, 1024, 1025, 0xffff, r.int(2000)]);
      put(24, 0, 0, 0, 0, 0, (r.chance(0.5) ? 0x10 : r.int(16) << 4) | ccmd, cslen >> 8, cslen);
      for (let i = 0; i < s.length; i++) put(32 + i, s.charCodeAt(i));
      len = r.chance(0.05) ? r.int(32) : 32 + s.length + r.pick([0, 0, r.int(40), 1024]);
      break;
    }
    case 2: {
      const n = r.chance(0.9) ? r.int(6) : r.int(200);
      const mcmd = r.chance(0.85) ? r.int(2) : r.int(256);
      put(24, 0, mcmd, 0, r.chance(0.85) ? n : r.int(256));
      for (let i = 0; i < n; i++) {
        const p = 28 + i * 8;
        put(p, r.chance(0.9) ? 0 : r.int(256), r.chance(0.9) ? r.pick([0, 1, 1, 2, 2]) : r.int(256));
        putMac(p + 2, randomMac(r));
      }
      len = r.chance(0.05) ? r.int(28) : Math.max(0, 28 + 8 * n + r.pick([0, 0, 0, -1, -8, r.int(20)]));
      break;
    }
    case 3: {
      const n = r.chance(0.9) ? r.int(4) : r.int(140);
      put(24, r.chance(0.85) ? r.int(3) : r.int(256), r.chance(0.85) ? n : r.int(256));
      for (let i = 0; i < n; i++) putMac(26 + i * 6, randomMac(r));
      len = r.chance(0.05) ? r.int(26) : Math.max(0, 26 + 6 * n + r.pick([0, 0, 0, -1, -6, r.int(20)]));
      break;
    }
    default:
      len = 24 + r.int(100);
  }
  if (r.chance(0.1)) len = r.int(MAX_LEN + 1);
  len = Math.min(len, MAX_LEN);
  const f = new Uint8Array(Math.max(len, 2048));
  for (let i = 0; i < len; i += 4) {
    const w = r.u32();
    f[i] = w;
    f[i + 1] = w >>> 8;
    f[i + 2] = w >>> 16;
    f[i + 3] = w >>> 24;
  }
  putMac(0, r.chance(0.5) ? BCAST : TARGET_MAC);
  // mostly a sender the mask admits (when there is a mask), else anyone
  const m = tg.st.mask;
  const k = r.int(m.count);
  putMac(6, m.count > 0 && r.chance(0.8) ? m.bytes.subarray(k * 6, k * 6 + 6) : randomMac(r, 0.95));
  if (r.chance(0.97)) put(12, 0x88, 0xa2);
  put(14, ((r.chance(0.9) ? 1 : r.int(16)) << 4) | (r.chance(0.8) ? 0 : r.int(16)), r.chance(0.9) ? 0 : r.int(256));
  put(19, cmd);
  for (const [o, b] of body) f[o] = b;
  return f.slice(0, len);
}

function macIn(list: MacList, f: Uint8Array, off: number): boolean {
  return list.has(f, off);
}

/** Makes `c` a copy of `tg`'s protocol state and environment. */
function copyTarget(tg: Target, c: Target): void {
  c.mtu = tg.mtu;
  c.st.sectors = tg.st.sectors;
  c.st.readOnly = tg.st.readOnly;
  c.st.config.set(tg.st.config);
  c.st.configLen = tg.st.configLen;
  c.st.mask.copyFrom(tg.st.mask);
  c.st.reserve.copyFrom(tg.st.reserve);
  c.st.version = tg.st.version;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Config, mask and reserve contents (not the version). */
function sameState(a: Target, b: Target): boolean {
  return (
    a.st.configLen === b.st.configLen &&
    sameBytes(a.st.config, b.st.config) &&
    a.st.mask.count === b.st.mask.count &&
    sameBytes(a.st.mask.bytes, b.st.mask.bytes) &&
    a.st.reserve.count === b.st.reserve.count &&
    sameBytes(a.st.reserve.bytes, b.st.reserve.bytes)
  );
}

function listProblems(name: string, l: MacList): string[] {
  const p: string[] = [];
  if (l.count < 0 || l.count > l.capacity) p.push(`${name} count ${l.count}`);
  const s = l.toStrings();
  if (new Set(s).size !== s.length) p.push(`${name} has duplicates`);
  for (let i = l.count * 6; i < l.bytes.length; i++) {
    if (l.bytes[i] !== 0) {
      p.push(`${name} has stale bytes past its end`);
      break;
    }
  }
  return p;
}

t.test(`random frames into respond() (seed 0x${SEED.toString(16)}, ${ITER} frames)`, (t) => {
  const r = new Rng(SEED);
  const rxA = new Uint8Array(RX_OFF + MAX_LEN + 64);
  const rxB = new Uint8Array(RX_OFF + MAX_LEN + 64);
  const txA = new Uint8Array(TX_OFF + 9014 + 64);
  const txB = new Uint8Array(TX_OFF + 9014 + 64);
  const seen = new Map<string, number>();
  const failures: string[] = [];
  let tg = new Target();
  const other = new Target();
  const snapshot = new Target();
  const ctxB = other.ctx;
  const FULLISH = [A, B, C, D, ...Array.from({ length: 123 }, (_, k) => macN(k))]; // 127 entries

  for (let i = 0; i < ITER && failures.length < 10; i++) {
    // the environment moves under the export
    if (i % 500 === 0) {
      tg = new Target({ config: r.pick(STRINGS) });
      if (r.chance(0.25)) tg.st.mask.setStrings([A, B].slice(0, 1 + r.int(2)));
      else if (r.chance(0.4)) tg.st.mask.setStrings(FULLISH);
      if (r.chance(0.3)) tg.st.reserve.setStrings([r.pick([A, B, C])]);
    }
    if (i % 150 === 0) {
      tg.mtu = r.pick([1500, 1500, 9000, 1500 + r.int(7501)]);
      tg.st.readOnly = r.chance(0.3);
      tg.st.sectors = r.pick([1, 8192, 8192, 0x10000000, 2 ** 40, 1 + r.int(100000)]);
    }
    if (r.chance(0.005)) tg.st.mask.setStrings([]);
    // an administrator letting A back in once edits have locked everyone out
    if (tg.st.mask.count > 0 && r.chance(0.05)) tg.st.mask.add(POOL[0], 0);

    const f = genFrame(r, tg);
    const len = f.length;
    copyTarget(tg, other);
    copyTarget(tg, snapshot);
    const v0 = tg.st.version;
    const maskBlocks = tg.st.mask.count > 0 && len >= 12 && !macIn(tg.st.mask, f, 6);
    const reservedOut = tg.st.reserve.count > 0 && len >= 12 && !macIn(tg.st.reserve, f, 6);

    rxA.fill(0xcc);
    rxA.set(f, RX_OFF);
    rxB.fill(0x33);
    rxB.set(f, RX_OFF);
    txA.fill(0xaa);
    txB.fill(0x55);

    const fail = (why: string): void => {
      failures.push(`frame ${i} (len ${len}, MTU ${tg.mtu}): ${why}\n${dump(f.subarray(0, Math.min(len, 64)))}`);
    };
    let outcome: Outcome;
    let outcomeB: Outcome;
    // a stale length must not pass for this frame's
    tg.ctx.replyLen = -1;
    ctxB.replyLen = -2;
    try {
      outcome = respond(rxA, RX_OFF, len, tg.st, tg.ctx, txA, TX_OFF);
      outcomeB = respond(rxB, RX_OFF, len, other.st, ctxB, txB, TX_OFF);
    } catch (e) {
      fail(`threw ${(e as Error).stack}`);
      continue;
    }

    // the result itself
    const slot = tg.mtu + 14;
    const pending = isPending(outcome);
    const silent = outcome >= Outcome.ShortFrame && outcome <= Outcome.ConfigMismatch;
    const ret = isReply(outcome) ? tg.ctx.replyLen : 0;
    if (!(silent || pending || (isReply(outcome) && ret >= 60 && ret <= slot)))
      fail(`outcome ${outcome}, length ${tg.ctx.replyLen}`);
    for (let k = 0; k < TX_OFF; k++)
      if (txA[k] !== 0xaa) {
        fail('wrote before the slot');
        break;
      }
    for (let k = TX_OFF + slot; k < Math.min(txA.length, TX_OFF + slot + 64); k++)
      if (txA[k] !== 0xaa) {
        fail('wrote past the slot');
        break;
      }
    for (let k = 0; k < len; k++)
      if (rxA[RX_OFF + k] !== f[k]) {
        fail('modified the request');
        break;
      }

    // when silence is allowed, and which errors are due
    const ver = len >= 24 ? f[14] >> 4 : -1;
    const cmd = len >= 24 ? f[19] : -1;
    const tooShort =
      len < 24 ||
      (ver === 1 && ((cmd === 0 && len < 36) || (cmd === 1 && len < 32) || (cmd === 2 && len < 28) || (cmd === 3 && len < 26)));
    const configTest = ver === 1 && cmd === 1 && len >= 32 && ((f[29] & 15) === 1 || (f[29] & 15) === 2);
    const shortFrame = len < 24;
    const wantSilence = shortFrame ? Outcome.ShortFrame : maskBlocks ? Outcome.Masked : tooShort ? Outcome.ShortArgument : -1;
    if (wantSilence >= 0) {
      if (outcome !== wantSilence) fail(`outcome ${outcome} for a frame to ignore with ${wantSilence}`);
    } else if (silent && !(configTest && outcome === Outcome.ConfigMismatch)) {
      fail(`no reply (outcome ${outcome}) where one is due`);
    }
    const rep = ret > 0 ? txA.subarray(TX_OFF, TX_OFF + ret) : null;
    if (rep) {
      const p = replyProblems(f, rep, tg);
      if (p.length) fail(p.join('; '));
      if (outcome !== replyOutcome(rep)) fail(`outcome ${outcome}, but the reply bytes say ${replyOutcome(rep)}`);
      const err = rep[14] & 0x04 ? rep[15] : 0;
      if (ver !== 1 && err !== 5) fail(`version ${ver} answered without error 5`);
      if (ver === 1 && cmd > 3 && err !== 1) fail(`command ${cmd} answered without error 1`);
      if (ver === 1 && cmd === 0 && reservedOut && f[27] !== 0xec && err !== 6) fail('reserved, but no error 6');
      if (err === 6 && cmd === 0 && (!reservedOut || f[27] === 0xec)) fail('error 6 for an allowed initiator');
      const key =
        cmd === 0 && !err
          ? `ATA reply status 0x${rep[27].toString(16)} error 0x${rep[25].toString(16)}${ret === 548 ? ' (IDENTIFY)' : ''}`
          : cmd === 2 && !err && rep[26]
            ? `mask MError ${rep[26]}`
            : `reply cmd ${cmd > 3 ? 'other' : cmd} error ${err}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    } else {
      const key =
        outcome === Outcome.ShortFrame
          ? 'no reply: short frame'
          : outcome === Outcome.Masked
            ? 'no reply: masked'
            : outcome === Outcome.ShortArgument
              ? 'no reply: short argument'
              : outcome === Outcome.ConfigMismatch
                ? 'no reply: config mismatch'
                : outcome === Outcome.Read
                  ? 'Read'
                  : outcome === Outcome.Write
                    ? 'Write'
                    : 'Flush';
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }

    // storage work stays inside the export, the frame and the MTU
    if (pending) {
      const p = headerProblems(f, txA.subarray(TX_OFF, TX_OFF + 36), tg);
      if (p.length) fail(`prepared header: ${p.join('; ')}`);
      if (cmd !== 0 || ver !== 1 || len < 36) fail('pending for a non-ATA frame');
      if (reservedOut) fail('pending work for a non-holder of the reservation');
      if (outcome !== Outcome.Flush) {
        const { lba, count } = tg.ctx.ata;
        if (!(count >= 1 && count <= tg.ctx.maxSectors)) fail(`count ${count} (max ${tg.ctx.maxSectors})`);
        if (!(Number.isInteger(lba) && lba >= 0 && lba + count <= tg.st.sectors))
          fail(`lba ${lba}+${count} outside ${tg.st.sectors}`);
        if (36 + count * 512 > slot) fail('read reply would exceed the MTU');
        if (outcome === Outcome.Write && (tg.st.readOnly || len - 36 < count * 512)) fail('write that must be refused');
      }
    }

    // the state (checked in full whenever it changed)
    const lp: string[] = [];
    if (!sameState(tg, snapshot)) {
      lp.push(...listProblems('mask', tg.st.mask), ...listProblems('reserve', tg.st.reserve));
      if (tg.st.configLen < 0 || tg.st.configLen > 1024) lp.push(`config length ${tg.st.configLen}`);
      if (!tg.st.config.subarray(tg.st.configLen).every((b) => b === 0)) lp.push('stale config bytes');
      if (tg.st.version === v0) lp.push('state changed without a version bump');
      if (ver !== 1 || cmd < 1 || cmd > 3 || maskBlocks || !isReply(outcome))
        lp.push(`state changed by cmd ${cmd} ver ${ver} outcome ${outcome}`);
    }
    if (lp.length) fail(lp.join('; '));

    // nothing depends on bytes past len or on the slot's old contents
    if (outcomeB !== outcome) fail(`different outcome with other junk: ${outcome} vs ${outcomeB}`);
    else if (isReply(outcome) && ctxB.replyLen !== ret) fail(`different length with other junk: ${ret} vs ${ctxB.replyLen}`);
    else if (ret > 0) {
      if (!sameBytes(txB.subarray(TX_OFF, TX_OFF + ret), rep!)) fail('reply depends on junk outside the frame');
    } else if (pending) {
      if (!sameBytes(txA.subarray(TX_OFF, TX_OFF + 36), txB.subarray(TX_OFF, TX_OFF + 36)))
        fail('prepared header depends on junk');
      if (outcome !== Outcome.Flush && (tg.ctx.ata.lba !== ctxB.ata.lba || tg.ctx.ata.count !== ctxB.ata.count))
        fail('lba/count depend on junk');
    }
    if (!sameState(other, tg) || other.st.version !== tg.st.version) fail('state depends on junk outside the frame');
  }

  t.same(failures, [], 'no frame broke a rule');
  const keys = [...seen.keys()].sort();
  t.comment(keys.map((k) => `${k}: ${seen.get(k)}`).join('\n'));
  // the generator must actually reach every outcome
  const needed = [
    'no reply: short frame',
    'no reply: masked',
    'no reply: short argument',
    'no reply: config mismatch',
    'Read',
    'Write',
    'Flush',
    'ATA reply status 0x40 error 0x0 (IDENTIFY)',
    'ATA reply status 0x40 error 0x0',
    'ATA reply status 0x41 error 0x4',
    'ATA reply status 0x41 error 0x10',
    'reply cmd 0 error 6',
    'reply cmd 0 error 5',
    'reply cmd other error 1',
    'reply cmd 1 error 0',
    'reply cmd 1 error 2',
    'reply cmd 1 error 4',
    'reply cmd 2 error 0',
    'reply cmd 2 error 2',
    'mask MError 2',
    'mask MError 3',
    'reply cmd 3 error 0',
    'reply cmd 3 error 2',
    'reply cmd 3 error 6',
  ];
  if (ITER >= 20000) for (const k of needed) t.ok(seen.has(k), `reached: ${k}`);
  t.end();
});

t.test('the generator is deterministic for a seed', (t) => {
  const a = new Rng(42);
  const b = new Rng(42);
  const tg = new Target();
  t.equal(dump(genFrame(a, tg)), dump(genFrame(b, tg)));
  t.end();
});
