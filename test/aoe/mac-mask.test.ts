// Command 2, Mac Mask List: read, edit (add, delete, no-op), bad directive,
// full list, all-or-nothing edits, frame length checks, vblade's crash (B1).
// Enforcement for every command is in dispatch.test.ts.

import t from 'tap';
import { handleMacMask, Outcome } from '../../src/aoe';
import { A, B, C, D, Dir, hdr, hex, mask, maskList, macN, pad60, rep, rhdr, Row, runRows, Target } from './golden';

const TAG = 0x8000aaaa;

function req(f: Parameters<typeof mask>[0], src = A, extra = ''): string {
  return hdr({ cmd: 2, tag: TAG, src }) + mask(f) + extra;
}

function edit(dirs: Dir[], src = A): string {
  return req({ mcmd: 1, dirs }, src);
}

/** Success: the whole list as no-op directives. */
function list(mcmd: number, macs: string[], dst = A): Uint8Array {
  return pad60(rhdr({ cmd: 2, tag: TAG, dst }), maskList(mcmd, macs));
}

/** MError reply: header only, Dir Count = failing index, no E flag. */
function merror(code: number, index: number, dst = A): Uint8Array {
  return pad60(rhdr({ cmd: 2, tag: TAG, dst }), mask({ mcmd: 1, merror: code, dircount: index }));
}

function badArg(mcmd: number, dst = A): Uint8Array {
  return pad60(rhdr({ cmd: 2, tag: TAG, dst, error: 2 }), mask({ mcmd, dircount: 0 }));
}

const FULL = Array.from({ length: 128 }, (_, i) => macN(i));
const ALMOST = [A, ...FULL.slice(0, 126)]; // 127 entries, A among them

const rows: Row[] = [
  // ---- read
  {
    desc: 'read, empty list',
    request: `
      02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2  10 00  00 07 03
      02                 # Mac Mask List
      80 00 aa aa        # tag
      00 00 00 00        # reserved, MCmd read, MError, Dir Count`,
    want: { reply: pad60(rhdr({ cmd: 2, tag: TAG }), '00 00 00 00') },
  },
  {
    desc: 'read, two entries: each as a no-op directive',
    target: { mask: [A, B] },
    request: req({ mcmd: 0 }),
    want: {
      reply: pad60(
        rhdr({ cmd: 2, tag: TAG }),
        `
        00 00 00 02                # MCmd read, MError 0, 2 entries
        00 00 02 00 00 00 00 0a    # reserved, DCmd 0, A
        00 00 02 00 00 00 00 0b    # reserved, DCmd 0, B`,
      ),
    },
  },
  {
    desc: 'read ignores Dir Count and directives in the request',
    target: { mask: [A] },
    request: req({ mcmd: 0, dircount: 200, dirs: [[1, C]] }),
    want: { reply: list(0, [A]) },
    state: { mask: [A], versionDelta: 0 },
  },
  {
    desc: 'read, full list of 128: 1052 bytes',
    target: { mask: FULL },
    request: req({ mcmd: 0 }, macN(5)),
    want: { reply: hex(rhdr({ cmd: 2, tag: TAG, dst: macN(5) }), maskList(0, FULL)) },
  },

  // ---- edit
  {
    desc: 'add to an empty list',
    request: edit([[1, A]]),
    want: { reply: list(1, [A]) },
    state: { mask: [A], versionDelta: 1 },
  },
  {
    desc: 'add a second entry',
    target: { mask: [A] },
    request: edit([[1, B]]),
    want: { reply: list(1, [A, B]) },
    state: { mask: [A, B], versionDelta: 1 },
  },
  {
    desc: 'add three in one frame',
    request: edit([
      [1, A],
      [1, B],
      [1, C],
    ]),
    want: { reply: list(1, [A, B, C]) },
    state: { mask: [A, B, C] },
  },
  {
    desc: 'add an entry already present: success, unchanged',
    target: { mask: [A, B] },
    request: edit([[1, B]]),
    want: { reply: list(1, [A, B]) },
    state: { mask: [A, B], versionDelta: 0 },
  },
  {
    desc: 'add the same address twice in one frame: one entry',
    request: edit(
      [
        [1, C],
        [1, C],
      ],
      C,
    ),
    want: { reply: list(1, [C], C) },
    state: { mask: [C] },
  },
  {
    desc: 'delete the first of three (vblade aborted here, B1)',
    target: { mask: [A, B, C] },
    request: edit([[2, A]], B),
    want: { reply: list(1, [B, C], B) },
    state: { mask: [B, C], versionDelta: 1 },
  },
  {
    desc: 'delete the first of two set by -m (vblade aborted here, B1)',
    target: { mask: [A, B] },
    request: edit([[2, A]], B),
    want: { reply: list(1, [B], B) },
    state: { mask: [B] },
  },
  {
    desc: 'delete the middle entry',
    target: { mask: [A, B, C] },
    request: edit([[2, B]]),
    want: { reply: list(1, [A, C]) },
    state: { mask: [A, C] },
  },
  {
    desc: 'delete the last entry',
    target: { mask: [A, B, C] },
    request: edit([[2, C]]),
    want: { reply: list(1, [A, B]) },
    state: { mask: [A, B] },
  },
  {
    desc: 'delete an absent address: success, unchanged',
    target: { mask: [A, B] },
    request: edit([[2, D]]),
    want: { reply: list(1, [A, B]) },
    state: { mask: [A, B], versionDelta: 0 },
  },
  {
    desc: 'delete the only entry (the sender): list empty, open to all',
    target: { mask: [A] },
    request: edit([[2, A]]),
    want: { reply: list(1, []) },
    state: { mask: [], versionDelta: 1 },
  },
  {
    desc: 'delete the sender but keep others: answered, list without the sender',
    target: { mask: [A, B] },
    request: edit([[2, A]]),
    want: { reply: list(1, [B]) },
    state: { mask: [B] },
  },
  {
    desc: 'no-op directive: unchanged, list returned',
    target: { mask: [A] },
    request: edit([[0, D]]),
    want: { reply: list(1, [A]) },
    state: { mask: [A], versionDelta: 0 },
  },
  {
    desc: 'edit with Dir Count 0: list returned',
    target: { mask: [A, B] },
    request: edit([]),
    want: { reply: list(1, [A, B]) },
    state: { mask: [A, B], versionDelta: 0 },
  },
  {
    desc: 'add then delete the same address in one frame: net no change',
    target: { mask: [A] },
    request: edit([
      [1, D],
      [2, D],
    ]),
    want: { reply: list(1, [A]) },
    state: { mask: [A], versionDelta: 0 },
  },
  {
    desc: 'delete then re-add: moves the entry to the end',
    target: { mask: [A, B] },
    request: edit([
      [2, A],
      [1, A],
    ]),
    want: { reply: list(1, [B, A]) },
    state: { mask: [B, A], versionDelta: 1 },
  },
  {
    desc: 'non-zero reserved byte in a directive: tolerated',
    request: edit([[1, A, 0xff]]),
    want: { reply: list(1, [A]) },
    state: { mask: [A] },
  },
  {
    desc: 'bytes after the last directive: ignored',
    request: req({ mcmd: 1, dirs: [[1, A]] }, A, '00 01 02 00 00 00 00 0b'),
    want: { reply: list(1, [A]) },
    state: { mask: [A] },
  },
  {
    desc: 'fill to exactly 128',
    target: { mask: ALMOST },
    request: edit([[1, macN(126)]]),
    want: { reply: hex(rhdr({ cmd: 2, tag: TAG }), maskList(1, [...ALMOST, macN(126)])) },
    state: { mask: [...ALMOST, macN(126)] },
  },

  // ---- MError: bad directive, full (all or nothing)
  {
    desc: 'bad directive (3) at index 1: MError 2, Dir Count 1, earlier add rolled back',
    target: { mask: [A] },
    request: edit([
      [1, B],
      [3, C],
      [1, D],
    ]),
    want: { reply: merror(2, 1) },
    state: { mask: [A], versionDelta: 0 },
  },
  {
    desc: 'bad directive at index 0: MError 2, Dir Count 0',
    request: edit([[0xff, B]]),
    want: { reply: merror(2, 0) },
    state: { mask: [], versionDelta: 0 },
  },
  {
    desc: 'bad directive after a delete: the delete is rolled back too',
    target: { mask: [A, B, C] },
    request: edit([
      [2, B],
      [2, C],
      [7, D],
    ]),
    want: { reply: merror(2, 2) },
    state: { mask: [A, B, C], versionDelta: 0 },
  },
  {
    desc: 'add to a full list: MError 3 at that index, nothing applied',
    target: { mask: ALMOST },
    request: edit([
      [1, B],
      [1, C],
    ]),
    want: { reply: merror(3, 1) },
    state: { mask: ALMOST, versionDelta: 0 },
  },
  {
    desc: 'add to a full list after a delete in the same frame: fits',
    target: { mask: [A, ...FULL.slice(0, 127)] },
    request: edit([
      [2, macN(0)],
      [1, B],
    ]),
    want: { reply: hex(rhdr({ cmd: 2, tag: TAG }), maskList(1, [A, ...FULL.slice(1, 127), B])) },
    state: { mask: [A, ...FULL.slice(1, 127), B] },
  },
  {
    desc: 'add of an address already in a full list: success',
    target: { mask: [A, ...FULL.slice(0, 127)] },
    request: edit([[1, macN(3)]]),
    want: { reply: hex(rhdr({ cmd: 2, tag: TAG }), maskList(1, [A, ...FULL.slice(0, 127)])) },
    state: { versionDelta: 0 },
  },

  // ---- BadArg: bad MCmd, directives beyond the frame (B4)
  {
    desc: 'Dir Count 2 with one directive present: BadArg, unchanged',
    target: { mask: [A] },
    request: req({ mcmd: 1, dircount: 2, dirs: [[1, B]] }),
    want: { reply: badArg(1) },
    state: { mask: [A], versionDelta: 0 },
  },
  {
    desc: 'Dir Count 1 with 7 of its 8 bytes present: BadArg',
    request: hdr({ cmd: 2, tag: TAG }) + '00 01 00 01  00 01 02 00 00 00 00',
    want: { reply: badArg(1) },
    state: { mask: [] },
  },
  {
    desc: 'Dir Count 255 in a 28-byte frame: BadArg',
    request: req({ mcmd: 1, dircount: 255 }),
    want: { reply: badArg(1) },
  },
  {
    desc: 'MCmd 2: BadArg',
    request: req({ mcmd: 2, dirs: [[1, B]] }),
    want: { reply: badArg(2) },
    state: { mask: [] },
  },
  {
    desc: 'MCmd 0xFF: BadArg',
    target: { mask: [A] },
    request: req({ mcmd: 0xff }),
    want: { reply: badArg(0xff) },
    state: { mask: [A] },
  },

  // ---- too short
  {
    desc: '27-byte Mac Mask request: no reply',
    request: hdr({ cmd: 2, tag: TAG }) + '00 00 00',
    want: 'no reply',
  },

  // ---- sequences
  {
    desc: 'a 2-entry list edited repeatedly stays exact (vblade corrupted it, B1)',
    steps: [
      { request: edit([[1, A]]), want: { reply: list(1, [A]) }, state: { mask: [A] } },
      { request: edit([[1, B]]), want: { reply: list(1, [A, B]) }, state: { mask: [A, B] } },
      { request: edit([[2, A]], B), want: { reply: list(1, [B], B) }, state: { mask: [B] } },
      { request: edit([[1, A]], B), want: { reply: list(1, [B, A], B) }, state: { mask: [B, A] } },
      { request: edit([[2, B]]), want: { reply: list(1, [A]) }, state: { mask: [A] } },
      { request: edit([[1, B]]), want: { reply: list(1, [A, B]) }, state: { mask: [A, B] } },
      { request: edit([[1, C]]), want: { reply: list(1, [A, B, C]) }, state: { mask: [A, B, C] } },
      { request: edit([[2, A]], B), want: { reply: list(1, [B, C], B) }, state: { mask: [B, C] } },
      { request: edit([[2, C]], B), want: { reply: list(1, [B], B) }, state: { mask: [B] } },
      { request: edit([[1, A]], A), want: 'no reply', state: { mask: [B] } },
      {
        request: edit(
          [
            [1, A],
            [1, C],
          ],
          B,
        ),
        want: { reply: list(1, [B, A, C], B) },
        state: { mask: [B, A, C] },
      },
      {
        request: edit(
          [
            [2, B],
            [2, A],
          ],
          C,
        ),
        want: { reply: list(1, [C], C) },
        state: { mask: [C] },
      },
      { request: edit([[2, C]], C), want: { reply: list(1, [], C) }, state: { mask: [] } },
      { request: req({ mcmd: 0 }, D), want: { reply: list(0, [], D) } },
    ],
  },
  {
    desc: 'a retransmitted add (new tag) gives the same answer',
    steps: [
      {
        request: edit([
          [1, A],
          [1, B],
        ]),
        want: { reply: list(1, [A, B]) },
        state: { versionDelta: 1 },
      },
      {
        request:
          hdr({ cmd: 2, tag: TAG + 1 }) +
          mask({
            mcmd: 1,
            dirs: [
              [1, A],
              [1, B],
            ],
          }),
        want: { reply: pad60(rhdr({ cmd: 2, tag: TAG + 1 }), maskList(1, [A, B])) },
        state: { mask: [A, B], versionDelta: 0 },
      },
    ],
  },
];

t.test('respond: Mac Mask List', (t) => {
  runRows(t, rows);
  t.end();
});

t.test('handleMacMask: outcome, unpadded length in the context, silence when too short', (t) => {
  const tg = new Target();
  const ctx = tg.ctx;
  const tx = new Uint8Array(1200).fill(0xaa);
  let rx = hex(
    edit([
      [1, A],
      [1, B],
    ]),
  );
  t.equal(handleMacMask(rx, 0, rx.length, tg.st, ctx, tx, 0), Outcome.Reply, 'edit: a reply');
  t.equal(ctx.replyLen, 28 + 16, 'two entries: 44');
  rx = hex(edit([[3, C]]));
  t.equal(handleMacMask(rx, 0, rx.length, tg.st, ctx, tx, 0), Outcome.Reply, 'MError: a reply, not an AoE error');
  t.equal(ctx.replyLen, 28, 'MError: 28');
  t.same(tg.st.mask.toStrings(), [A, B], 'unchanged after the bad directive');
  t.equal(handleMacMask(rx, 0, 27, tg.st, ctx, tx, 0), Outcome.ShortArgument, 'too short: silence');
  rx = hex(req({ mcmd: 7 }, A, rep(0, 4)));
  t.equal(handleMacMask(rx, 0, rx.length, tg.st, ctx, tx, 0), Outcome.AoeError, 'unknown MCmd: AoE error');
  t.equal(ctx.replyLen, 28, 'unknown MCmd: header only');
  rx = hex(req({ mcmd: 0 }, A, rep(0, 4)));
  t.equal(handleMacMask(rx, 0, rx.length, tg.st, ctx, tx, 0), Outcome.Reply, 'read: a reply');
  t.equal(ctx.replyLen, 44, 'read: 44');
  t.end();
});
