// Command 1, Query Config Information: read, test, prefix test, set, force
// set, bad sub-commands and lengths, the sector count from the MTU now, and
// the unsolicited announcement.

import t from 'tap';
import { handleConfig, Outcome, padReply, writeAnnouncement } from '../../src/aoe';
import { A, B, BCAST, cfg, cfgReply, dump, exchange, hdr, hex, pad60, rep, rhdr, Row, runRows, Target } from './golden';

const TAG = 0x80001234; // a userland tool's tag (bit 31 set)

/** A Query Config request from A to e7.3. */
function req(f: Parameters<typeof cfg>[0], extra = '', src = A): string {
  return hdr({ cmd: 1, tag: TAG, src }) + cfg(f) + extra;
}

/** Our reply: current string `str`, CCmd echoed, E + error when given. */
function reply(f: { ccmd?: number; str?: string; scnt?: number; error?: number; dst?: string }): Uint8Array {
  return pad60(rhdr({ cmd: 1, tag: TAG, error: f.error, dst: f.dst }), cfgReply(f));
}

const S1024 = 'x'.repeat(1000) + '0123456789abcdefghijklmn'; // 1024 characters

const rows: Row[] = [
  // ---- read
  {
    desc: 'read, Linux broadcast shape (32 bytes, ffff.ff, all fields zero): own address, 60 bytes',
    request: `
      ff ff ff ff ff ff   # dst: broadcast
      02 00 00 00 00 0a   # src: A
      88 a2  10 00        # ver 1; error 0
      ff ff ff            # shelf 0xffff, slot 0xff: everyone
      01                  # Query Config
      00 01 23 45         # tag (kernel: bit 31 clear)
      00 00 00 00 00 00 00 00  # bufcnt, firmware, sectors, ver|ccmd (read), length 0`,
    want: {
      reply: `
        02 00 00 00 00 0a  02 aa bb 00 07 03  88 a2
        18 00             # ver 1, R; no error
        00 07 03          # e7.3, not the broadcast address
        01  00 01 23 45
        00 10             # buffer count 16
        50 01             # firmware 0x5001
        02                # sectors per frame at MTU 1500
        10                # AoE 1, CCmd read
        00 00             # no config string
        ${rep(0, 28)}     # padding to 60`,
    },
    state: { config: '', versionDelta: 0 },
  },
  {
    desc: 'read returns the current string',
    target: { config: 'hello' },
    request: req({ ccmd: 0 }),
    want: { reply: reply({ str: 'hello' }) },
  },
  {
    desc: 'read, aoeping shape (1056 bytes: cslen 1024 of 0xED): length and bytes ignored',
    target: { config: 'abc' },
    request: `
      ${hdr({ dst: BCAST, cmd: 1, tag: TAG })}   # broadcast to e7.3, tag with bit 31
      00 00 00 00 00      # bufcnt, firmware, sectors
      00                  # CCmd 0: read
      04 00               # cslen 1024
      ${rep(0xed, 1024)}  # 1024 bytes of 0xED`,
    want: { reply: reply({ str: 'abc' }) },
    state: { config: 'abc', versionDelta: 0 },
  },
  {
    desc: 'read with cslen 2000 (beyond the frame and 1024): still a plain read',
    request: req({ ccmd: 0, len: 2000 }),
    want: { reply: reply({}) },
  },
  {
    desc: 'read, aoecfg shape (CCmd without version nibble, 1056 bytes)',
    target: { config: 'claimed by host1' },
    request: req({ vercmd: 0x00 }, rep(0, 1024)),
    want: { reply: reply({ str: 'claimed by host1' }) },
  },
  {
    desc: "read with junk in the request's bufcnt/firmware/sectors fields: ignored",
    request: req({ bufcnt: 0xffff, fw: 0x1234, scnt: 99, ver: 7, ccmd: 0 }),
    want: { reply: reply({}) },
  },
  {
    desc: 'read: the sector count follows the MTU (9000 → 17)',
    target: { mtu: 9000 },
    request: req({ ccmd: 0 }),
    want: { reply: reply({ scnt: 17 }) },
  },
  {
    desc: 'read: buffer count as configured (-b 64)',
    target: { bufferCount: 64 },
    request: req({ ccmd: 0 }),
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({ bufcnt: 64 })) },
  },
  {
    desc: 'read: a 1024-byte string is returned whole (1056 bytes)',
    target: { config: S1024 },
    request: req({ ccmd: 0 }),
    want: { reply: hex(rhdr({ cmd: 1, tag: TAG }), cfgReply({ str: S1024 })) },
  },
  {
    desc: 'read is answered while the target is reserved for someone else',
    target: { reserve: [B], config: 'r' },
    request: req({ ccmd: 0 }),
    want: { reply: reply({ str: 'r' }) },
  },

  // ---- test (exact match) and prefix test
  {
    desc: 'test, exact match: answered',
    target: { config: 'hello' },
    request: req({ ccmd: 1, str: 'hello' }),
    want: { reply: reply({ ccmd: 1, str: 'hello' }) },
  },
  {
    desc: 'test, aoecfg shape (CCmd 1 without nibble, string then zero fill to 1056 bytes): answered',
    target: { config: 'hello' },
    request: req({ vercmd: 0x01, str: 'hello' }, rep(0, 1019)),
    want: { reply: reply({ ccmd: 1, str: 'hello' }) },
  },
  {
    desc: 'test, same length different bytes: no reply',
    target: { config: 'hello' },
    request: req({ ccmd: 1, str: 'hellO' }),
    want: 'no reply',
  },
  {
    desc: 'test, a prefix of the string: no reply',
    target: { config: 'hello' },
    request: req({ ccmd: 1, str: 'hell' }),
    want: 'no reply',
  },
  {
    desc: 'test, longer than the string: no reply',
    target: { config: 'hello' },
    request: req({ ccmd: 1, str: 'hello!' }),
    want: 'no reply',
  },
  {
    desc: 'test, empty against empty: answered',
    request: req({ ccmd: 1, str: '' }),
    want: { reply: reply({ ccmd: 1 }) },
  },
  {
    desc: 'test, empty against a string: no reply',
    target: { config: 'hello' },
    request: req({ ccmd: 1, str: '' }),
    want: 'no reply',
  },
  {
    desc: 'prefix test, proper prefix: answered',
    target: { config: 'hello' },
    request: req({ ccmd: 2, str: 'hel' }),
    want: { reply: reply({ ccmd: 2, str: 'hello' }) },
  },
  {
    desc: 'prefix test, the whole string: answered',
    target: { config: 'hello' },
    request: req({ ccmd: 2, str: 'hello' }),
    want: { reply: reply({ ccmd: 2, str: 'hello' }) },
  },
  {
    desc: 'prefix test, mismatch: no reply',
    target: { config: 'hello' },
    request: req({ ccmd: 2, str: 'help' }),
    want: 'no reply',
  },
  {
    desc: 'prefix test, longer than the string: no reply',
    target: { config: 'hello' },
    request: req({ ccmd: 2, str: 'hello world' }),
    want: 'no reply',
  },
  {
    desc: 'prefix test, the string plus NUL bytes: no reply (longer than the string)',
    target: { config: 'hello' },
    request: req({ ccmd: 2, str: 'hello\x00\x00' }),
    want: 'no reply',
  },
  {
    desc: 'test, the string plus a NUL byte: no reply',
    target: { config: 'hello' },
    request: req({ ccmd: 1, str: 'hello\x00' }),
    want: 'no reply',
  },
  {
    desc: 'prefix test, empty prefix matches a string',
    target: { config: 'hello' },
    request: req({ ccmd: 2, str: '' }),
    want: { reply: reply({ ccmd: 2, str: 'hello' }) },
  },
  {
    desc: 'prefix test, empty prefix matches the empty string',
    request: req({ ccmd: 2, str: '' }),
    want: { reply: reply({ ccmd: 2 }) },
  },
  {
    desc: 'prefix test, non-empty prefix against the empty string: no reply',
    request: req({ ccmd: 2, str: 'h' }),
    want: 'no reply',
  },

  // ---- set and force set
  {
    desc: 'set when empty: stored and returned',
    request: req({ ccmd: 3, str: 'host1' }),
    want: { reply: reply({ ccmd: 3, str: 'host1' }) },
    state: { config: 'host1', versionDelta: 1 },
  },
  {
    desc: 'set, aoecfg shape (CCmd 3 without nibble, 1056 bytes): stored',
    request: req({ vercmd: 0x03, str: 'host1' }, rep(0, 1019)),
    want: { reply: reply({ ccmd: 3, str: 'host1' }) },
    state: { config: 'host1', versionDelta: 1 },
  },
  {
    desc: 'set of the same string when present: success, nothing changes',
    target: { config: 'host1' },
    request: req({ ccmd: 3, str: 'host1' }),
    want: { reply: reply({ ccmd: 3, str: 'host1' }) },
    state: { config: 'host1', versionDelta: 0 },
  },
  {
    desc: 'set of a different string when present: error 4 with the current string',
    target: { config: 'host1' },
    request: req({ ccmd: 3, str: 'host2' }),
    want: { reply: reply({ ccmd: 3, str: 'host1', error: 4 }) },
    state: { config: 'host1', versionDelta: 0 },
  },
  {
    desc: 'set of a prefix of the present string: error 4 (a different string)',
    target: { config: 'host1' },
    request: req({ ccmd: 3, str: 'host' }),
    want: { reply: reply({ ccmd: 3, str: 'host1', error: 4 }) },
    state: { config: 'host1' },
  },
  {
    desc: 'set of the empty string when present: error 4',
    target: { config: 'host1' },
    request: req({ ccmd: 3, str: '' }),
    want: { reply: reply({ ccmd: 3, str: 'host1', error: 4 }) },
    state: { config: 'host1' },
  },
  {
    desc: 'set of the empty string when empty: success',
    request: req({ ccmd: 3, str: '' }),
    want: { reply: reply({ ccmd: 3 }) },
    state: { config: '', versionDelta: 0 },
  },
  {
    desc: 'set of a 1024-byte string: stored, 1056-byte reply',
    request: req({ ccmd: 3, str: S1024 }),
    want: { reply: hex(rhdr({ cmd: 1, tag: TAG }), cfgReply({ ccmd: 3, str: S1024 })) },
    state: { config: S1024, versionDelta: 1 },
  },
  {
    desc: 'set with bytes beyond the declared length: only the declared bytes are stored',
    request: req({ ccmd: 3, str: 'ab' }, '63 64 65'),
    want: { reply: reply({ ccmd: 3, str: 'ab' }) },
    state: { config: 'ab' },
  },
  {
    desc: 'set keeps binary bytes (the string is opaque)',
    request: hdr({ cmd: 1, tag: TAG }) + '00 00 00 00 00 03 00 04 00 ff 0a 80',
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), '00 10 50 01 02 13 00 04 00 ff 0a 80') },
    state: { config: '\x00\xff\x0a\x80' },
  },
  {
    desc: 'force set over a present string: replaced',
    target: { config: 'host1' },
    request: req({ ccmd: 4, str: 'host2' }),
    want: { reply: reply({ ccmd: 4, str: 'host2' }) },
    state: { config: 'host2', versionDelta: 1 },
  },
  {
    desc: 'force set of a shorter string: no trace of the old one',
    target: { config: 'a long old string' },
    request: req({ ccmd: 4, str: 'new' }),
    want: { reply: reply({ ccmd: 4, str: 'new' }) },
    state: { config: 'new' },
    check: (t, _x, tg) =>
      t.equal(
        tg.st.config.subarray(3).every((b) => b === 0),
        true,
        'old bytes cleared',
      ),
  },
  {
    desc: 'force set of the empty string: cleared',
    target: { config: 'host1' },
    request: req({ ccmd: 4, str: '' }),
    want: { reply: reply({ ccmd: 4 }) },
    state: { config: '', versionDelta: 1 },
  },
  {
    desc: 'force set of the same string: no change recorded',
    target: { config: 'host1' },
    request: req({ ccmd: 4, str: 'host1' }),
    want: { reply: reply({ ccmd: 4, str: 'host1' }) },
    state: { config: 'host1', versionDelta: 0 },
  },
  {
    desc: 'force set, aoecfg shape (CCmd 4 without nibble)',
    target: { config: 'old' },
    request: req({ vercmd: 0x04, str: 'new' }, rep(0, 1021)),
    want: { reply: reply({ ccmd: 4, str: 'new' }) },
    state: { config: 'new' },
  },
  {
    desc: 'set is answered and applied while reserved for someone else',
    target: { reserve: [B] },
    request: req({ ccmd: 3, str: 'x' }),
    want: { reply: reply({ ccmd: 3, str: 'x' }) },
    state: { config: 'x' },
  },

  // ---- bad arguments: refused with BadArg and the current string, never garbage (B3)
  {
    desc: 'force set declaring 20 bytes but carrying 2 (vblade stored 18 stale bytes): BadArg, unchanged',
    target: { config: 'keep' },
    request: req({ ccmd: 4, len: 20, str: 'AB' }),
    want: { reply: reply({ ccmd: 4, str: 'keep', error: 2 }) },
    state: { config: 'keep', versionDelta: 0 },
  },
  {
    desc: 'set declaring one byte more than present: BadArg',
    request: req({ ccmd: 3, len: 6, str: 'hello' }),
    want: { reply: reply({ ccmd: 3, error: 2 }) },
    state: { config: '' },
  },
  {
    desc: 'force set of 1025 bytes (all present): BadArg',
    target: { config: 'keep' },
    request: req({ ccmd: 4, str: 'y'.repeat(1025) }),
    want: { reply: reply({ ccmd: 4, str: 'keep', error: 2 }) },
    state: { config: 'keep' },
  },
  {
    desc: 'set with length 0xFFFF: BadArg',
    request: req({ ccmd: 3, len: 0xffff, str: 'z' }),
    want: { reply: reply({ ccmd: 3, error: 2 }) },
    state: { config: '' },
  },
  {
    desc: 'test declaring more than present: BadArg rather than a guess',
    target: { config: 'hello' },
    request: req({ ccmd: 1, len: 5, str: 'hel' }),
    want: { reply: reply({ ccmd: 1, str: 'hello', error: 2 }) },
  },
  {
    desc: 'prefix test with length 1025: BadArg',
    target: { config: 'hello' },
    request: req({ ccmd: 2, str: 'h'.repeat(1025) }),
    want: { reply: reply({ ccmd: 2, str: 'hello', error: 2 }) },
  },
  ...[5, 6, 9, 15].map((ccmd): Row => ({
    desc: `CCmd ${ccmd}: BadArg with the current string, CCmd echoed`,
    target: { config: 'cur' },
    request: req({ ccmd, str: 'abc' }),
    want: { reply: reply({ ccmd, str: 'cur', error: 2 }) },
    state: { config: 'cur', versionDelta: 0 },
  })),

  // ---- too short
  {
    desc: '31-byte Query Config: no reply',
    request: hdr({ cmd: 1, tag: TAG }) + '00 00 00 00 00 00 00',
    want: 'no reply',
  },
  {
    desc: '24-byte Query Config (header only): no reply',
    request: hdr({ cmd: 1, tag: TAG }),
    want: 'no reply',
  },

  // ---- sequences
  {
    desc: 'claim, collide, check, force, release',
    steps: [
      { request: req({ ccmd: 3, str: 'host1' }), want: { reply: reply({ ccmd: 3, str: 'host1' }) }, state: { config: 'host1' } },
      { request: req({ ccmd: 3, str: 'host2' }, '', B), want: { reply: reply({ ccmd: 3, str: 'host1', error: 4, dst: B }) } },
      { request: req({ ccmd: 1, str: 'host1' }, '', B), want: { reply: reply({ ccmd: 1, str: 'host1', dst: B }) } },
      { request: req({ ccmd: 2, str: 'host' }, '', B), want: { reply: reply({ ccmd: 2, str: 'host1', dst: B }) } },
      {
        request: req({ ccmd: 4, str: 'host2' }, '', B),
        want: { reply: reply({ ccmd: 4, str: 'host2', dst: B }) },
        state: { config: 'host2' },
      },
      { request: req({ ccmd: 1, str: 'host1' }), want: 'no reply' },
      { request: req({ ccmd: 4, str: '' }), want: { reply: reply({ ccmd: 4 }) }, state: { config: '' } },
      { request: req({ ccmd: 3, str: 'host1' }), want: { reply: reply({ ccmd: 3, str: 'host1' }) }, state: { config: 'host1' } },
    ],
  },
  {
    desc: 'a retransmitted set (same string, new tag) succeeds again',
    steps: [
      { request: req({ ccmd: 3, str: 'h' }), want: { reply: reply({ ccmd: 3, str: 'h' }) }, state: { versionDelta: 1 } },
      {
        request: hdr({ cmd: 1, tag: TAG + 1 }) + cfg({ ccmd: 3, str: 'h' }),
        want: { reply: pad60(rhdr({ cmd: 1, tag: TAG + 1 }), cfgReply({ ccmd: 3, str: 'h' })) },
        state: { versionDelta: 0 },
      },
    ],
  },
];

t.test('respond: Query Config', (t) => {
  runRows(t, rows);
  t.end();
});

t.test('the sector count is the MTU of now, without a restart (B13)', (t) => {
  const tg = new Target();
  for (const [mtu, scnt] of [
    [1500, 2],
    [9000, 17],
    [4132, 8],
    [1500, 2],
    [65535, 127],
  ]) {
    tg.mtu = mtu;
    const x = exchange(tg, hex(req({ ccmd: 0 })));
    t.equal(x.reply![28], scnt, `MTU ${mtu} → ${scnt} sectors`);
  }
  t.end();
});

t.test('handleConfig: outcome, unpadded length in the context, a reason for silence', (t) => {
  const tg = new Target({ config: 'abc' });
  const tx = new Uint8Array(2000).fill(0xaa);
  const f = (s: string): Uint8Array => hex(s);
  let rx = f(req({ ccmd: 0 }));
  t.equal(handleConfig(rx, 0, rx.length, tg.st, tg.ctx, tx, 0), Outcome.Reply, 'read: a reply');
  t.equal(tg.ctx.replyLen, 35, 'read: 32 + 3');
  rx = f(req({ ccmd: 3, str: 'xyz' }));
  t.equal(handleConfig(rx, 0, rx.length, tg.st, tg.ctx, tx, 0), Outcome.AoeError, 'set over another string: AoE error');
  t.equal(tg.ctx.replyLen, 35, 'the reply carries the current string');
  rx = f(req({ ccmd: 1, str: 'abd' }));
  tg.ctx.replyLen = -1;
  t.equal(handleConfig(rx, 0, rx.length, tg.st, tg.ctx, tx, 0), Outcome.ConfigMismatch, 'test mismatch: silence');
  t.equal(tg.ctx.replyLen, -1, 'no length for silence');
  rx = f(req({ ccmd: 0 }));
  t.equal(handleConfig(rx, 0, 31, tg.st, tg.ctx, tx, 0), Outcome.ShortArgument, 'shorter than 32: silence');
  t.end();
});

t.test('writeAnnouncement: unsolicited config response, tag 0, Ver 1 (B8)', (t) => {
  const rows: { desc: string; dst: string; opts: ConstructorParameters<typeof Target>[0]; want: string }[] = [
    {
      desc: 'broadcast, empty config, MTU 1500',
      dst: BCAST,
      opts: {},
      want: `
        ff ff ff ff ff ff  02 aa bb 00 07 03  88 a2
        18 00  00 07 03  01  00 00 00 00   # ver 1, R; e7.3; Query Config; tag 0
        00 10 50 01 02 10 00 00            # bufcnt 16, fw 0x5001, 2 sectors, AoE 1 read, no string
        ${rep(0, 28)}`,
    },
    {
      desc: 'unicast to a mask entry, with a config string, MTU 9000, e65534.254',
      dst: B,
      opts: { shelf: 65534, slot: 254, mtu: 9000, config: 'cfg' },
      want: `
        02 00 00 00 00 0b  02 aa bb 00 07 03  88 a2
        18 00  ff fe fe  01  00 00 00 00
        00 10 50 01 11 10 00 03 63 66 67
        ${rep(0, 25)}`,
    },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const tg = new Target(r.opts);
      const tx = new Uint8Array(100).fill(0xaa);
      const n = writeAnnouncement(tx, 8, hex(r.dst), 0, tg.ctx.mac, tg.st, tg.ctx.maxSectors);
      t.equal(n, 32 + tg.st.configLen, 'unpadded length');
      const len = padReply(tx, 8, n);
      t.equal(len, 60);
      t.equal(dump(tx.subarray(8, 8 + len)), dump(hex(r.want)));
      t.equal(tx[7], 0xaa, 'nothing written before the slot');
      t.end();
    });
  }
  t.end();
});
