// rewriteAsUnsaved: a prepared Config, Mac Mask or Reserve reply whose state
// change could not be saved becomes AoE error 3 carrying the arguments of the
// state in force (the one on disk). Golden frames: the request goes through
// respond() on a target, the target goes back to its saved state, and the
// rewritten reply must be exactly the frame below.

import t from 'tap';
import { rewriteAsUnsaved } from '../../src/aoe';
import {
  A,
  B,
  C,
  cfg,
  cfgReply,
  exchange,
  hdr,
  hex,
  mask,
  maskList,
  pad60,
  resv,
  rhdr,
  Target,
  TX_OFF,
  type TargetOpts,
} from './golden';

const TAG = 0x00c0ffee;

interface Row {
  desc: string;
  /** The target before the request: also the saved state it goes back to. */
  target: TargetOpts;
  request: string;
  reply: Uint8Array;
}

const rows: Row[] = [
  {
    desc: 'Reserve set [A] when none was saved: error 3, no addresses',
    target: {},
    request: hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 1, macs: [A] }),
    reply: pad60(rhdr({ cmd: 3, tag: TAG, error: 3 }), `01 00  # RCmd set, NMacs 0`),
  },
  {
    desc: 'Reserve force set [C] over a saved [A, B]: error 3 with [A, B]',
    target: { reserve: [A, B] },
    request: hdr({ cmd: 3, tag: TAG, src: C }) + resv({ rcmd: 2, macs: [C] }),
    reply: pad60(rhdr({ cmd: 3, tag: TAG, dst: C, error: 3 }), resv({ rcmd: 2, macs: [A, B] })),
  },
  {
    desc: 'Reserve release by the holder: error 3, still reserved',
    target: { reserve: [A] },
    request: hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 1 }),
    reply: pad60(rhdr({ cmd: 3, tag: TAG, error: 3 }), resv({ rcmd: 1, macs: [A] })),
  },
  {
    desc: 'Reserve read held behind an unsaved change: error 3 with the saved list',
    target: { reserve: [B] },
    request: hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 0 }),
    reply: pad60(rhdr({ cmd: 3, tag: TAG, error: 3 }), resv({ rcmd: 0, macs: [B] })),
  },
  {
    desc: 'Mac Mask edit adding C to [A]: error 3, MError 0, the list [A]',
    target: { mask: [A] },
    request: hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 1, dirs: [[1, C]] }),
    reply: pad60(rhdr({ cmd: 2, tag: TAG, error: 3 }), maskList(1, [A])),
  },
  {
    desc: 'Mac Mask edit deleting the only member: error 3, the list still [A]',
    target: { mask: [A] },
    request: hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 1, dirs: [[2, A]] }),
    reply: pad60(rhdr({ cmd: 2, tag: TAG, error: 3 }), maskList(1, [A])),
  },
  {
    desc: 'Query Config force set: error 3, the saved string',
    target: { config: 'host=old' },
    request: hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 4, str: 'host=new-and-longer' }),
    reply: pad60(rhdr({ cmd: 1, tag: TAG, error: 3 }), cfgReply({ ccmd: 4, str: 'host=old' })),
  },
  {
    desc: 'Query Config set when empty: error 3, still empty',
    target: {},
    request: hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 3, str: 'mine' }),
    reply: pad60(rhdr({ cmd: 1, tag: TAG, error: 3 }), cfgReply({ ccmd: 3 })),
  },
];

for (const row of rows) {
  t.test(row.desc, async (t) => {
    const tg = new Target(row.target);
    const x = exchange(tg, hex(row.request));
    t.ok(x.reply, 'respond() prepared a reply');
    // The save failed: back to the saved state.
    const saved = new Target(row.target);
    const len = rewriteAsUnsaved(x.tx, TX_OFF, tg.ctx.replyLen, saved.st, saved.ctx.maxSectors);
    t.same(Buffer.from(x.tx.subarray(TX_OFF, TX_OFF + len)).toString('hex'), Buffer.from(row.reply).toString('hex'));
  });
}

t.test('a longer prepared reply is cut to the saved state, with no stale bytes in the minimum frame', async (t) => {
  const many = [1, 2, 3, 4, 5, 6].map((i) => `02:00:00:00:01:0${i}`);
  const tg = new Target();
  const x = exchange(tg, hex(hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 1, macs: many })));
  t.equal(tg.ctx.replyLen, 26 + 6 * 6, 'the prepared reply lists six addresses');
  const len = rewriteAsUnsaved(x.tx, TX_OFF, tg.ctx.replyLen, new Target().st, 2);
  t.equal(len, 60);
  t.same(Buffer.from(x.tx.subarray(TX_OFF, TX_OFF + len)), Buffer.from(pad60(rhdr({ cmd: 3, tag: TAG, error: 3 }), '01 00')));
});
