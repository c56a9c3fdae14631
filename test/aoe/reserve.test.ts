// Command 3, Reserve/Release: read, set, force set, release, error 6 for a
// set by a non-holder, bad arguments. The effect on ATA commands is in
// ata.test.ts and dispatch.test.ts.

import t from 'tap';
import { handleReserve, Outcome } from '../../src/aoe';
import { A, B, C, D, hdr, hex, macN, pad60, resv, rhdr, Row, runRows, Target } from './golden';

const TAG = 0x00c0ffee;

function req(f: Parameters<typeof resv>[0], src = A): string {
  return hdr({ cmd: 3, tag: TAG, src }) + resv(f);
}

/** Every reply carries the current list. */
function reply(rcmd: number, macs: string[], f: { error?: number; dst?: string } = {}): Uint8Array {
  return pad60(rhdr({ cmd: 3, tag: TAG, error: f.error, dst: f.dst }), resv({ rcmd, macs }));
}

const MANY = Array.from({ length: 128 }, (_, i) => macN(i));

const rows: Row[] = [
  // ---- read
  {
    desc: 'read, empty list',
    request: `
      02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2  10 00  00 07 03
      03                 # Reserve/Release
      00 c0 ff ee        # tag
      00 00              # RCmd read, NMacs 0`,
    want: { reply: pad60(rhdr({ cmd: 3, tag: TAG }), '00 00') },
  },
  {
    desc: 'read by a non-holder: allowed, the list',
    target: { reserve: [B, C] },
    request: req({ rcmd: 0 }),
    want: {
      reply: pad60(
        rhdr({ cmd: 3, tag: TAG }),
        `
        00 02                 # RCmd read, 2 addresses
        02 00 00 00 00 0b     # B
        02 00 00 00 00 0c     # C`,
      ),
    },
    state: { reserve: [B, C], versionDelta: 0 },
  },
  {
    desc: 'read ignores NMacs and addresses in the request',
    target: { reserve: [B] },
    request: req({ rcmd: 0, nmacs: 9, macs: [C] }),
    want: { reply: reply(0, [B]) },
    state: { reserve: [B] },
  },

  // ---- set
  {
    desc: 'set when empty: reserved',
    request: req({ rcmd: 1, macs: [A] }),
    want: { reply: reply(1, [A]) },
    state: { reserve: [A], versionDelta: 1 },
  },
  {
    desc: 'set of several addresses (the sender need not be one)',
    request: req({ rcmd: 1, macs: [B, C] }),
    want: { reply: reply(1, [B, C]) },
    state: { reserve: [B, C] },
  },
  {
    desc: 'set by a holder: replaced',
    target: { reserve: [C, A] },
    request: req({ rcmd: 1, macs: [A, D] }),
    want: { reply: reply(1, [A, D]) },
    state: { reserve: [A, D] },
  },
  {
    desc: 'set by a holder handing over to someone else',
    target: { reserve: [A] },
    request: req({ rcmd: 1, macs: [B] }),
    want: { reply: reply(1, [B]) },
    state: { reserve: [B] },
  },
  {
    desc: 'set by a non-holder: error 6 with the current list, unchanged',
    target: { reserve: [B] },
    request: req({ rcmd: 1, macs: [A] }),
    want: { reply: reply(1, [B], { error: 6 }) },
    state: { reserve: [B], versionDelta: 0 },
  },
  {
    desc: 'release (set, NMacs 0) by a holder',
    target: { reserve: [A, B] },
    request: req({ rcmd: 1 }),
    want: { reply: reply(1, []) },
    state: { reserve: [], versionDelta: 1 },
  },
  {
    desc: 'release (set, NMacs 0) by a non-holder: error 6',
    target: { reserve: [B] },
    request: req({ rcmd: 1 }),
    want: { reply: reply(1, [B], { error: 6 }) },
    state: { reserve: [B] },
  },
  {
    desc: 'release when not reserved: success',
    request: req({ rcmd: 1 }),
    want: { reply: reply(1, []) },
    state: { reserve: [] },
  },
  {
    desc: 'set with a duplicated address: stored once',
    request: req({ rcmd: 1, macs: [A, A, B] }),
    want: { reply: reply(1, [A, B]) },
    state: { reserve: [A, B] },
  },
  {
    desc: 'set with bytes after the addresses: ignored',
    request: req({ rcmd: 1, macs: [A] }) + '02 00 00 00 00 0b',
    want: { reply: reply(1, [A]) },
    state: { reserve: [A] },
  },
  {
    desc: 'set of 128 addresses (the capacity): 794-byte reply',
    request: req({ rcmd: 1, macs: MANY }),
    want: { reply: hex(rhdr({ cmd: 3, tag: TAG }), resv({ rcmd: 1, macs: MANY })) },
    state: { reserve: MANY },
  },

  // ---- force set
  {
    desc: 'force set by a non-holder: replaced',
    target: { reserve: [B] },
    request: req({ rcmd: 2, macs: [A] }),
    want: { reply: reply(2, [A]) },
    state: { reserve: [A], versionDelta: 1 },
  },
  {
    desc: 'force release by a non-holder',
    target: { reserve: [B, C] },
    request: req({ rcmd: 2 }),
    want: { reply: reply(2, []) },
    state: { reserve: [] },
  },
  {
    desc: 'force set when empty',
    request: req({ rcmd: 2, macs: [C] }),
    want: { reply: reply(2, [C]) },
    state: { reserve: [C] },
  },

  // ---- bad arguments
  {
    desc: 'NMacs 3 with one address present: BadArg, unchanged',
    target: { reserve: [B] },
    request: req({ rcmd: 2, nmacs: 3, macs: [A] }),
    want: { reply: reply(2, [B], { error: 2 }) },
    state: { reserve: [B], versionDelta: 0 },
  },
  {
    desc: 'NMacs 1 with 5 of its 6 bytes present: BadArg',
    request: hdr({ cmd: 3, tag: TAG }) + '01 01 02 00 00 00 00',
    want: { reply: reply(1, [], { error: 2 }) },
    state: { reserve: [] },
  },
  {
    desc: 'NMacs 129 (above the capacity, all present): BadArg',
    request: req({ rcmd: 2, macs: [...MANY, D] }),
    want: { reply: reply(2, [], { error: 2 }) },
    state: { reserve: [] },
  },
  {
    desc: 'NMacs 255 in a 26-byte frame: BadArg',
    request: req({ rcmd: 1, nmacs: 255 }),
    want: { reply: reply(1, [], { error: 2 }) },
  },
  {
    desc: 'RCmd 3: BadArg with the current list',
    target: { reserve: [B] },
    request: req({ rcmd: 3, macs: [A] }),
    want: { reply: reply(3, [B], { error: 2 }) },
    state: { reserve: [B] },
  },
  {
    desc: 'RCmd 0xFF: BadArg',
    request: req({ rcmd: 0xff }),
    want: { reply: reply(0xff, [], { error: 2 }) },
  },
  {
    desc: 'a bad set from a non-holder: BadArg before error 6',
    target: { reserve: [B] },
    request: req({ rcmd: 1, nmacs: 2, macs: [A] }),
    want: { reply: reply(1, [B], { error: 2 }) },
  },

  // ---- too short
  {
    desc: '25-byte Reserve/Release request: no reply',
    request: hdr({ cmd: 3, tag: TAG }) + '00',
    want: 'no reply',
  },

  // ---- sequences
  {
    desc: 'reserve, conflict, hand over, force, release',
    steps: [
      { request: req({ rcmd: 1, macs: [A] }), want: { reply: reply(1, [A]) }, state: { reserve: [A] } },
      { request: req({ rcmd: 1, macs: [B] }, B), want: { reply: reply(1, [A], { error: 6, dst: B }) }, state: { reserve: [A] } },
      { request: req({ rcmd: 0 }, B), want: { reply: reply(0, [A], { dst: B }) } },
      { request: req({ rcmd: 1, macs: [A, B] }), want: { reply: reply(1, [A, B]) }, state: { reserve: [A, B] } },
      { request: req({ rcmd: 1, macs: [B] }, B), want: { reply: reply(1, [B], { dst: B }) }, state: { reserve: [B] } },
      { request: req({ rcmd: 1 }), want: { reply: reply(1, [B], { error: 6 }) }, state: { reserve: [B] } },
      { request: req({ rcmd: 2, macs: [C] }), want: { reply: reply(2, [C]) }, state: { reserve: [C] } },
      { request: req({ rcmd: 2 }, D), want: { reply: reply(2, [], { dst: D }) }, state: { reserve: [] } },
    ],
  },
  {
    desc: 'a retransmitted set by the holder (new tag) succeeds again',
    steps: [
      { request: req({ rcmd: 1, macs: [A] }), want: { reply: reply(1, [A]) } },
      {
        request: hdr({ cmd: 3, tag: TAG + 1 }) + resv({ rcmd: 1, macs: [A] }),
        want: { reply: pad60(rhdr({ cmd: 3, tag: TAG + 1 }), resv({ rcmd: 1, macs: [A] })) },
        state: { reserve: [A] },
      },
    ],
  },
];

t.test('respond: Reserve/Release', (t) => {
  runRows(t, rows);
  t.end();
});

t.test('handleReserve: outcome, unpadded length in the context, silence when too short', (t) => {
  const tg = new Target({ reserve: [B] });
  const ctx = tg.ctx;
  const tx = new Uint8Array(900).fill(0xaa);
  let rx = hex(req({ rcmd: 0 }));
  t.equal(handleReserve(rx, 0, rx.length, tg.st, ctx, tx, 0), Outcome.Reply, 'read: a reply');
  t.equal(ctx.replyLen, 32, 'one address: 26 + 6');
  rx = hex(req({ rcmd: 1, macs: [A] }));
  t.equal(handleReserve(rx, 0, rx.length, tg.st, ctx, tx, 0), Outcome.AoeError, 'set by a non-holder: AoE error');
  t.equal(ctx.replyLen, 32, 'the reply carries the current list');
  rx = hex(req({ rcmd: 2, macs: [A, C] }));
  t.equal(handleReserve(rx, 0, rx.length, tg.st, ctx, tx, 0), Outcome.Reply, 'force set: a reply');
  t.equal(ctx.replyLen, 38, 'two addresses: 26 + 12');
  t.equal(handleReserve(rx, 0, 25, tg.st, ctx, tx, 0), Outcome.ShortArgument, 'too short: silence');
  t.end();
});
