// State edits addressed to the broadcast shelf or slot: a Mac Mask edit or a
// Reserve set / force set, or a Query Config set / force set, sent to ffff.ff, ffff.S or H.ff is refused with
// AoE error 2 (Bad argument) and changes nothing, unless the export allows
// broadcast edits; the same edit to the exact shelf.slot is applied, and
// reads to broadcast are answered. docs/protocol.md says why.

import t from 'tap';
import { A, B, BCAST, cfg, cfgReply, hdr, mask, maskList, pad60, resv, rhdr, Row, runRows } from './golden';

const TAG = 0x0b0a0c05;

/** A request to `shelf.slot` (the Ethernet broadcast address as destination, as a tool would send it). */
function to(shelf: number, slot: number, cmd: number, arg: string, src = A): string {
  return hdr({ dst: BCAST, src, shelf, slot, cmd, tag: TAG }) + arg;
}

const ADD_B = mask({ mcmd: 1, dirs: [[1, B]] });
const FORCE_B = resv({ rcmd: 2, macs: [B] });

/** The refusal of a mask edit: E + error 2, the MCmd echoed, no list (as for any Bad argument mask reply). */
const maskRefused = pad60(rhdr({ cmd: 2, tag: TAG, error: 2 }), mask({ mcmd: 1, dircount: 0 }));

/** The refusal of a reserve set: E + error 2 and, as every reserve reply, the current list. */
function reserveRefused(rcmd: number, list: string[]): Uint8Array {
  return pad60(rhdr({ cmd: 3, tag: TAG, error: 2 }), resv({ rcmd, macs: list }));
}

const BROADCASTS = [
  [0xffff, 0xff, 'ffff.ff'],
  [0xffff, 3, 'ffff.3'],
  [7, 0xff, '7.ff'],
] as const;

const rows: Row[] = [
  ...BROADCASTS.flatMap(([shelf, slot, name]): Row[] => [
    {
      desc: `mask edit to ${name}: refused with error 2, the mask unchanged`,
      target: { mask: [A] },
      request: to(shelf, slot, 2, ADD_B),
      want: { reply: maskRefused },
      state: { mask: [A], versionDelta: 0 },
    },
    {
      desc: `mask edit that would empty the list, to ${name}: refused`,
      target: { mask: [A] },
      request: to(shelf, slot, 2, mask({ mcmd: 1, dirs: [[2, A]] })),
      want: { reply: maskRefused },
      state: { mask: [A], versionDelta: 0 },
    },
    {
      desc: `reserve force set to ${name}: refused with error 2 and the current list`,
      target: { reserve: [A] },
      request: to(shelf, slot, 3, FORCE_B),
      want: { reply: reserveRefused(2, [A]) },
      state: { reserve: [A], versionDelta: 0 },
    },
    {
      desc: `reserve set on a free export, to ${name}: refused`,
      request: to(shelf, slot, 3, resv({ rcmd: 1, macs: [B] })),
      want: { reply: reserveRefused(1, []) },
      state: { reserve: [], versionDelta: 0 },
    },
    {
      desc: `release (force set with no addresses) to ${name}: refused, the reservation stays`,
      target: { reserve: [A] },
      request: to(shelf, slot, 3, resv({ rcmd: 2 })),
      want: { reply: reserveRefused(2, [A]) },
      state: { reserve: [A], versionDelta: 0 },
    },
    {
      desc: `config force set to ${name}: refused with error 2 and the current string`,
      target: { config: 'mine' },
      request: to(shelf, slot, 1, cfg({ ver: 1, ccmd: 4, str: 'EVIL' })),
      want: { reply: pad60(rhdr({ cmd: 1, tag: TAG, error: 2 }), cfgReply({ ccmd: 4, str: 'mine' })) },
      state: { config: 'mine', versionDelta: 0 },
    },
    {
      desc: `config set on an export without a string, to ${name}: refused, the string stays empty`,
      request: to(shelf, slot, 1, cfg({ ver: 1, ccmd: 3, str: 'EVIL' })),
      want: { reply: pad60(rhdr({ cmd: 1, tag: TAG, error: 2 }), cfgReply({ ccmd: 3 })) },
      state: { config: '', versionDelta: 0 },
    },
    {
      desc: `config read to ${name}: answered`,
      target: { config: 'mine' },
      request: to(shelf, slot, 1, cfg({ ver: 1, ccmd: 0 })),
      want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({ str: 'mine' })) },
    },
    {
      desc: `config test to ${name}: answered when it matches (discovery by string)`,
      target: { config: 'mine' },
      request: to(shelf, slot, 1, cfg({ ver: 1, ccmd: 1, str: 'mine' })),
      want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({ ccmd: 1, str: 'mine' })) },
    },
    {
      desc: `mask read to ${name}: answered`,
      target: { mask: [A] },
      request: to(shelf, slot, 2, mask({ mcmd: 0 })),
      want: { reply: pad60(rhdr({ cmd: 2, tag: TAG }), maskList(0, [A])) },
    },
    {
      desc: `reserve read to ${name}: answered`,
      target: { reserve: [B] },
      request: to(shelf, slot, 3, resv({ rcmd: 0 })),
      want: { reply: pad60(rhdr({ cmd: 3, tag: TAG }), resv({ rcmd: 0, macs: [B] })) },
    },
  ]),
  {
    desc: 'mask edit to the exact e7.3 (Ethernet broadcast destination): applied',
    target: { mask: [A] },
    request: to(7, 3, 2, ADD_B),
    want: { reply: pad60(rhdr({ cmd: 2, tag: TAG }), maskList(1, [A, B])) },
    state: { mask: [A, B], versionDelta: 1 },
  },
  {
    desc: 'reserve force set to the exact e7.3: applied',
    target: { reserve: [A] },
    request: to(7, 3, 3, FORCE_B),
    want: { reply: pad60(rhdr({ cmd: 3, tag: TAG }), resv({ rcmd: 2, macs: [B] })) },
    state: { reserve: [B], versionDelta: 1 },
  },
  {
    desc: 'config force set to the exact e7.3: applied',
    target: { config: 'mine' },
    request: to(7, 3, 1, cfg({ ver: 1, ccmd: 4, str: 'new' })),
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({ ccmd: 4, str: 'new' })) },
    state: { config: 'new', versionDelta: 1 },
  },
  {
    desc: 'config force set to ffff.ff when the export allows broadcast edits: applied',
    target: { config: 'mine', broadcastEdits: true },
    request: to(0xffff, 0xff, 1, cfg({ ver: 1, ccmd: 4, str: 'new' })),
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({ ccmd: 4, str: 'new' })) },
    state: { config: 'new', versionDelta: 1 },
  },
  {
    desc: 'mask edit to ffff.ff when the export allows broadcast edits: applied',
    target: { mask: [A], broadcastEdits: true },
    request: to(0xffff, 0xff, 2, ADD_B),
    want: { reply: pad60(rhdr({ cmd: 2, tag: TAG }), maskList(1, [A, B])) },
    state: { mask: [A, B], versionDelta: 1 },
  },
  {
    desc: 'reserve force set to 7.ff when the export allows broadcast edits: applied',
    target: { reserve: [A], broadcastEdits: true },
    request: to(7, 0xff, 3, FORCE_B),
    want: { reply: pad60(rhdr({ cmd: 3, tag: TAG }), resv({ rcmd: 2, macs: [B] })) },
    state: { reserve: [B], versionDelta: 1 },
  },
  {
    desc: 'a masked-out sender to broadcast gets silence, not the refusal (the mask is checked first)',
    target: { mask: [A] },
    request: to(0xffff, 0xff, 2, ADD_B, B),
    want: 'no reply',
    state: { mask: [A], versionDelta: 0 },
  },
  {
    desc: 'an unknown MCmd to broadcast: error 2 as before',
    request: to(0xffff, 0xff, 2, mask({ mcmd: 7 })),
    want: { reply: pad60(rhdr({ cmd: 2, tag: TAG, error: 2 }), mask({ mcmd: 7, dircount: 0 })) },
  },
];

runRows(t, rows);
