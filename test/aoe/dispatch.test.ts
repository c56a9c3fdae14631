// respond() end to end: the frames real initiators and tools send, version
// and command errors, MAC mask enforcement for every command, and the rules
// every reply follows (Ver 1, R, E only with an error, our own address,
// tag echoed, zero padding to 60).

import t from 'tap';
import { Outcome } from '../../src/aoe';
import {
  A,
  ata,
  B,
  BCAST,
  C,
  cfg,
  cfgReply,
  hdr,
  hex,
  mask,
  maskList,
  pad60,
  rep,
  resv,
  rhdr,
  Row,
  runRows,
  Target,
} from './golden';

/** The IDENTIFY reply of a default export, with these registers. */
function identify(tag: number, regs: string, dst = A): Uint8Array {
  return hex(rhdr({ cmd: 0, tag, dst }), regs, new Target().st.identify);
}

// ------------------------------------------------------------------ real initiators and tools

const linux: Row = {
  desc: 'Linux initiator: broadcast discovery, IDENTIFY, READ EXT, WRITE EXT (tags with bit 31 clear)',
  steps: [
    {
      request: `
        ff ff ff ff ff ff  02 00 00 00 00 0a  88 a2
        10 00  ff ff ff  01  00 01 9c 40     # ver 1; shelf ffff slot ff; Query Config
        00 00 00 00 00 00 00 00              # all zero: read, no string (32 bytes in all)`,
      want: { reply: pad60(rhdr({ cmd: 1, tag: 0x00019c40 }), cfgReply({})) },
    },
    {
      request: `
        02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2
        10 00  00 07 03  00  00 02 9c 41
        00 00 01 ec  00 00 00 a0 00 00  00 00  # IDENTIFY, count 1, lba3 0xA0`,
      want: { reply: identify(0x00029c41, '00 00 00 40 00 00 00 a0 00 00 00 00') },
    },
    {
      request: `
        02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2
        10 00  00 07 03  00  00 03 9c 42
        40 00 02 24  00 10 00 00 00 00  00 00  # E; READ SECTORS EXT, 2 at 0x1000`,
      want: {
        pending: Outcome.Read,
        lba: 0x1000,
        count: 2,
        head: rhdr({ cmd: 0, tag: 0x00039c42 }) + '40 00 00 40 00 10 00 00 00 00 00 00',
      },
    },
    {
      request: `
        02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2
        10 00  00 07 03  00  00 04 9c 43
        41 00 02 34  00 10 00 00 00 00  00 00  # E|W; WRITE SECTORS EXT, 2 at 0x1000
        ${rep(0x6b, 1024)}                     # data`,
      want: {
        pending: Outcome.Write,
        lba: 0x1000,
        count: 2,
        head: rhdr({ cmd: 0, tag: 0x00049c43 }) + '41 00 00 40 00 10 00 00 00 00 00 00',
      },
    },
    {
      request: hdr({ cmd: 0, tag: 0x00059c44 }) + ata({ aflags: 0x40, count: 2, op: 0x24, lba: 0 }) + rep(0, 1024),
      want: {
        pending: Outcome.Read,
        lba: 0,
        count: 2,
        head: rhdr({ cmd: 0, tag: 0x00059c44 }) + ata({ aflags: 0x40, op: 0x40 }),
      },
    },
  ],
};

const aoeping: Row = {
  desc: 'aoeping -I: 1056-byte Query Config (cslen 1024 of 0xED), then a 1060-byte IDENTIFY',
  steps: [
    {
      request: `
        ff ff ff ff ff ff  02 00 00 00 00 0a  88 a2
        10 00  00 07 03  01  80 00 00 00     # tag 0 | bit 31
        00 00 00 00  00  00  04 00           # read, cslen 1024
        ${rep(0xed, 1024)}`,
      // padded to 60 although the string is empty (vblade's 32 bytes were ignored: B9)
      want: { reply: pad60(rhdr({ cmd: 1, tag: 0x80000000 }), cfgReply({})) },
    },
    {
      request: `
        02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2
        10 00  00 07 03  00  80 00 00 01
        00 00 01 ec  00 00 00 a0 00 00  00 00
        ${rep(0, 1024)}                      # 1024 zero bytes of payload`,
      want: { reply: identify(0x80000001, '00 00 00 40 00 00 00 a0 00 00 00 00') },
    },
  ],
};

const aoecfg: Row = {
  desc:
    'aoecfg: read, test and prefix test by broadcast, set and force set with -s -l (CCmd without version nibble, ' +
    '1056 bytes); a force set by broadcast is refused with error 2',
  steps: [
    [0, '', '', true],
    [3, 'mine', 'mine', false],
    [1, 'mine', 'mine', true],
    [2, 'mi', 'mine', true],
    [4, 'ours', 'ours', false],
  ]
    .map(([ccmd, arg, cur, bcast], i) => ({
      request:
        hdr({
          dst: BCAST,
          shelf: bcast ? 0xffff : 7,
          slot: bcast ? 0xff : 3,
          cmd: 1,
          tag: 0x80000000 | (0x1234 + i),
        }) +
        cfg({ vercmd: ccmd as number, str: arg as string }) +
        rep(0, 1024 - (arg as string).length),
      want: {
        reply: pad60(rhdr({ cmd: 1, tag: 0x80000000 | (0x1234 + i) }), cfgReply({ ccmd: ccmd as number, str: cur as string })),
      },
    }))
    .concat({
      request:
        hdr({ dst: BCAST, shelf: 0xffff, slot: 0xff, cmd: 1, tag: 0x80001239 }) + cfg({ vercmd: 4, str: 'evil' }) + rep(0, 1020),
      want: { reply: pad60(rhdr({ cmd: 1, tag: 0x80001239, error: 2 }), cfgReply({ ccmd: 4, str: 'ours' })) },
    }),
};

const sancheck: Row = {
  desc: 'aoe-sancheck at MTU 9000: 60-byte Query Config, then IDENTIFY padded with 512..8704 bytes',
  target: { mtu: 9000 },
  steps: [
    {
      request: hdr({ dst: BCAST, shelf: 0xffff, slot: 0xff, cmd: 1, tag: 0x80000000 }) + rep(0, 36),
      want: { reply: pad60(rhdr({ cmd: 1, tag: 0x80000000 }), cfgReply({ scnt: 17 })) },
    },
    ...Array.from({ length: 17 }, (_, k) => {
      const n = (17 - k) * 512; // (9000 - 36) & ~511 = 8704, down to 512
      const tag = (0x8001 << 16) | (n / 512);
      return {
        request: hdr({ cmd: 0, tag }) + ata({ count: 1, op: 0xec, lba: '00 00 00 a0 00 00' }) + rep(0, n),
        want: { reply: identify(tag, '00 00 00 40 00 00 00 a0 00 00 00 00') },
      };
    }),
  ],
};

const ipxe: Row = {
  desc: 'iPXE: Query Config for e7.3, 36-byte IDENTIFY, 28-bit READ (lba3 0xE0), 28-bit WRITE',
  steps: [
    {
      request: hdr({ dst: BCAST, cmd: 1, tag: 0x18ae0000 }) + cfg({}),
      want: { reply: pad60(rhdr({ cmd: 1, tag: 0x18ae0000 }), cfgReply({})) },
    },
    {
      request: `
        02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2  10 00  00 07 03  00  18 ae 00 01
        00 00 01 ec  00 00 00 e0 00 00  00 00   # 36 bytes, device register 0xE0`,
      want: { reply: identify(0x18ae0001, '00 00 00 40 00 00 00 e0 00 00 00 00') },
    },
    {
      request: `
        02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2  10 00  00 07 03  00  18 ae 00 02
        00 00 02 20  40 00 00 e0 00 00  00 00   # READ SECTORS, 2 at 0x40, 36 bytes`,
      want: {
        pending: Outcome.Read,
        lba: 0x40,
        count: 2,
        head: rhdr({ cmd: 0, tag: 0x18ae0002 }) + '00 00 00 40 40 00 00 e0 00 00 00 00',
      },
    },
    {
      request: `
        02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2  10 00  00 07 03  00  18 ae 00 03
        01 00 01 30  41 00 00 e0 00 00  00 00   # W; WRITE SECTORS, 1 at 0x41
        ${rep(0x11, 512)}`,
      want: {
        pending: Outcome.Write,
        lba: 0x41,
        count: 1,
        head: rhdr({ cmd: 0, tag: 0x18ae0003 }) + '01 00 00 40 41 00 00 e0 00 00 00 00',
      },
    },
  ],
};

// ------------------------------------------------------------------ version, command, length

const TAG = 0x0badcafe;
const anyCommand: [string, string][] = [
  ['ATA READ EXT', ata({ aflags: 0x40, count: 1, op: 0x24 })],
  ['ATA IDENTIFY', ata({ count: 1, op: 0xec })],
  ['Query Config read', cfg({})],
  ['Query Config force set', cfg({ ccmd: 4, str: 'x' })],
  ['Mac Mask read', mask({ mcmd: 0 })],
  ['Mac Mask edit', mask({ mcmd: 1, dirs: [[1, A]] })],
  ['Reserve read', resv({ rcmd: 0 })],
  ['Reserve force set', resv({ rcmd: 2, macs: [A] })],
];
const cmdOf = (name: string): number =>
  name.startsWith('ATA') ? 0 : name.startsWith('Query') ? 1 : name.startsWith('Mac') ? 2 : 3;

const errorRows: Row[] = [
  ...[0, 2, 15].flatMap((ver) =>
    anyCommand.map(([name, arg]): Row => ({
      desc: `version ${ver}, ${name}: error 5, header only, nothing changed`,
      request: hdr({ ver, cmd: cmdOf(name), tag: TAG }) + arg,
      want: { reply: pad60(rhdr({ cmd: cmdOf(name), tag: TAG, error: 5 })) },
      state: { mask: [], reserve: [], config: '', versionDelta: 0 },
    })),
  ),
  {
    desc: 'version 2 with only a header: error 5',
    request: hdr({ ver: 2, cmd: 0, tag: TAG }),
    want: { reply: pad60(rhdr({ cmd: 0, tag: TAG, error: 5 })) },
  },
  ...[4, 5, 0x7f, 0xf0, 0xf1, 0xff].map((cmd): Row => ({
    desc: `command 0x${cmd.toString(16)}: error 1, header only (the request is not echoed)`,
    request: hdr({ cmd, tag: TAG }) + rep(0x77, 100),
    want: { reply: pad60(rhdr({ cmd, tag: TAG, error: 1 })) },
  })),
  {
    desc: 'unknown command with only a header: error 1',
    request: hdr({ cmd: 9, tag: TAG }),
    want: { reply: pad60(rhdr({ cmd: 9, tag: TAG, error: 1 })) },
  },
  ...[0, 1, 13, 14, 20, 23].map((n): Row => ({
    desc: `${n}-byte frame: no reply (shorter than the header)`,
    request: hex(hdr({ cmd: 1, tag: TAG })).subarray(0, n),
    want: { none: Outcome.ShortFrame },
  })),
];

// ------------------------------------------------------------------ MAC mask enforcement

const fromA: [string, string][] = [
  ['ATA READ EXT', hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 1, op: 0x24 })],
  ['ATA WRITE EXT', hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, count: 1, op: 0x34 }) + rep(1, 512)],
  ['ATA IDENTIFY', hdr({ cmd: 0, tag: TAG }) + ata({ count: 1, op: 0xec })],
  ['ATA FLUSH CACHE', hdr({ cmd: 0, tag: TAG }) + ata({ op: 0xe7 })],
  ['ATA CHECK POWER MODE', hdr({ cmd: 0, tag: TAG }) + ata({ op: 0xe5 })],
  ['ATA unknown opcode', hdr({ cmd: 0, tag: TAG }) + ata({ op: 0xef })],
  ['Query Config read (broadcast)', hdr({ dst: BCAST, shelf: 0xffff, slot: 0xff, cmd: 1, tag: TAG }) + cfg({})],
  ['Query Config set', hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 3, str: 'a' })],
  ['Query Config force set', hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 4, str: 'a' })],
  ['Mac Mask read', hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 0 })],
  ['Mac Mask edit adding itself', hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 1, dirs: [[1, A]] })],
  ['Mac Mask edit deleting the member', hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 1, dirs: [[2, B]] })],
  ['Reserve read', hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 0 })],
  ['Reserve force set', hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 2, macs: [A] })],
  ['unknown command', hdr({ cmd: 0x42, tag: TAG })],
  ['version 2', hdr({ ver: 2, cmd: 1, tag: TAG }) + cfg({})],
  ['short ATA frame', hdr({ cmd: 0, tag: TAG })],
];

const maskRows: Row[] = [
  ...fromA.map(([name, request]): Row => ({
    desc: `mask [B, C], ${name} from A: no reply, nothing changed`,
    target: { mask: [B, C], config: 'c' },
    request,
    want: { none: Outcome.Masked },
    state: { mask: [B, C], reserve: [], config: 'c', versionDelta: 0 },
  })),
  {
    desc: 'mask [B, C]: the members are answered',
    target: { mask: [B, C] },
    steps: [
      {
        request: hdr({ cmd: 1, src: B, tag: TAG }) + cfg({}),
        want: { reply: pad60(rhdr({ cmd: 1, tag: TAG, dst: B }), cfgReply({})) },
      },
      {
        request: hdr({ cmd: 2, src: C, tag: TAG }) + mask({ mcmd: 1, dirs: [[1, A]] }),
        want: { reply: pad60(rhdr({ cmd: 2, tag: TAG, dst: C }), maskList(1, [B, C, A])) },
        state: { mask: [B, C, A] },
      },
      {
        request: hdr({ cmd: 1, src: A, tag: TAG }) + cfg({}),
        want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({})) },
      },
    ],
  },
  {
    desc: 'an empty mask admits everyone; a one-entry mask only that one',
    steps: [
      {
        request: hdr({ cmd: 3, src: C, tag: TAG }) + resv({ rcmd: 0 }),
        want: { reply: pad60(rhdr({ cmd: 3, tag: TAG, dst: C }), '00 00') },
      },
      {
        request: hdr({ cmd: 2, src: A, tag: TAG }) + mask({ mcmd: 1, dirs: [[1, A]] }),
        want: { reply: pad60(rhdr({ cmd: 2, tag: TAG }), maskList(1, [A])) },
      },
      { request: hdr({ cmd: 3, src: C, tag: TAG }) + resv({ rcmd: 0 }), want: { none: Outcome.Masked } },
      {
        request: hdr({ cmd: 3, src: A, tag: TAG }) + resv({ rcmd: 0 }),
        want: { reply: pad60(rhdr({ cmd: 3, tag: TAG }), '00 00') },
      },
    ],
  },
];

// ------------------------------------------------------------------ reply rules

const ruleRows: Row[] = [
  ...(
    [
      [0xffff, 0xff],
      [0xffff, 3],
      [7, 0xff],
      [7, 3],
    ] as const
  ).flatMap(([shelf, slot]) =>
    [
      ['ATA IDENTIFY', 0, ata({ count: 1, op: 0xec })],
      ['ATA CHECK POWER', 0, ata({ op: 0xe5 })],
      ['Query Config', 1, cfg({})],
      ['Mac Mask read', 2, mask({ mcmd: 0 })],
      ['Reserve read', 3, resv({ rcmd: 0 })],
    ].map(([name, cmd, arg]): Row => ({
      desc: `${name} to ${shelf.toString(16)}.${slot.toString(16)} (dst broadcast): reply from e7.3 to the requester`,
      request: hdr({ dst: BCAST, shelf, slot, cmd: cmd as number, tag: TAG }) + arg,
      want: {
        reply:
          cmd === 0 && arg === ata({ count: 1, op: 0xec })
            ? identify(TAG, '00 00 00 40 00 00 00 00 00 00 00 00')
            : pad60(
                rhdr({ cmd: cmd as number, tag: TAG }),
                cmd === 0 ? ata({ count: 0xff, op: 0x40 }) : cmd === 1 ? cfgReply({}) : cmd === 2 ? '00 00 00 00' : '00 00',
              ),
      },
    })),
  ),
  ...[0x00000000, 0xffffffff, 0x80000000, 0x7fffffff, 0x01020304].map((tag): Row => ({
    desc: `tag 0x${tag.toString(16).padStart(8, '0')} echoed`,
    request: hdr({ cmd: 1, tag }) + cfg({}),
    want: { reply: pad60(rhdr({ cmd: 1, tag }), cfgReply({})) },
  })),
  {
    desc: 'request with E and an error byte (bogus in a request): clean reply without E',
    request: hdr({ cmd: 0, flags: 0x04, error: 6, tag: TAG }) + ata({ op: 0xe5 }),
    want: { reply: pad60(rhdr({ cmd: 0, tag: TAG }), ata({ count: 0xff, op: 0x40 })) },
  },
  {
    desc: 'request with MBZ header flags set: tolerated, flags not echoed',
    request: hdr({ cmd: 1, flags: 0x03, tag: TAG }) + cfg({}),
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({})) },
  },
  {
    desc: 'export e0.0',
    target: { shelf: 0, slot: 0 },
    request: hdr({ shelf: 0, slot: 0, cmd: 3, tag: TAG }) + resv({ rcmd: 0 }),
    want: { reply: pad60(rhdr({ shelf: 0, slot: 0, cmd: 3, tag: TAG }), '00 00') },
  },
  {
    desc: 'export e65534.254, broadcast request',
    target: { shelf: 65534, slot: 254 },
    request: hdr({ dst: BCAST, shelf: 0xffff, slot: 0xff, cmd: 1, tag: TAG }) + cfg({}),
    want: { reply: pad60(rhdr({ shelf: 65534, slot: 254, cmd: 1, tag: TAG }), cfgReply({})) },
  },
  {
    desc: 'config read, reserve read, mask read and IDENTIFY work for everyone while reserved; I/O does not',
    target: { reserve: [B] },
    steps: [
      { request: hdr({ cmd: 1, tag: TAG }) + cfg({}), want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({})) } },
      {
        request: hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 0 }),
        want: { reply: pad60(rhdr({ cmd: 2, tag: TAG }), '00 00 00 00') },
      },
      {
        request: hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 0 }),
        want: { reply: pad60(rhdr({ cmd: 3, tag: TAG }), resv({ rcmd: 0, macs: [B] })) },
      },
      {
        request: hdr({ cmd: 0, tag: TAG }) + ata({ count: 1, op: 0xec }),
        want: { reply: identify(TAG, '00 00 00 40 00 00 00 00 00 00 00 00') },
      },
      {
        request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 1, op: 0x24 }),
        want: { reply: pad60(rhdr({ cmd: 0, tag: TAG, error: 6 }), ata({ aflags: 0x40, count: 1, op: 0x24 })) },
      },
      {
        request: hdr({ cmd: 0, tag: TAG, src: B }) + ata({ aflags: 0x40, count: 1, op: 0x24 }),
        want: {
          pending: Outcome.Read,
          lba: 0,
          count: 1,
          head: rhdr({ cmd: 0, tag: TAG, dst: B }) + ata({ aflags: 0x40, op: 0x40 }),
        },
      },
      {
        request: hdr({ cmd: 3, tag: TAG, src: B }) + resv({ rcmd: 1 }),
        want: { reply: pad60(rhdr({ cmd: 3, tag: TAG, dst: B }), resv({ rcmd: 1 })) },
        state: { reserve: [] },
      },
      {
        request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 1, op: 0x24 }),
        want: { pending: Outcome.Read, lba: 0, count: 1, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40 }) },
      },
    ],
  },
  {
    desc: 'a retransmitted READ (same command, new tag) is answered again',
    steps: [1, 2].map((k) => ({
      request: hdr({ cmd: 0, tag: TAG + k }) + ata({ aflags: 0x40, count: 2, op: 0x24, lba: 64 }),
      want: {
        pending: Outcome.Read,
        lba: 64,
        count: 2,
        head: rhdr({ cmd: 0, tag: TAG + k }) + ata({ aflags: 0x40, op: 0x40, lba: 64 }),
      },
    })),
  },
  {
    desc: 'the MTU shrinking between two requests is honoured at once (B13)',
    steps: [
      {
        request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 17, op: 0x24 }),
        want: { pending: Outcome.Read, lba: 0, count: 17, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40 }) },
        check: (_t, _x, tg) => {
          tg.mtu = 1500;
        },
      },
      {
        request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 17, op: 0x24 }),
        want: { reply: pad60(rhdr({ cmd: 0, tag: TAG }), ata({ aflags: 0x40, feature: 0x04, count: 17, op: 0x41 })) },
      },
    ],
    target: { mtu: 9000 },
  },
];

// ------------------------------------------------------------------ one row per outcome

// Each row names its outcome explicitly, so that the reason for a reply or
// for silence is checked, not only the bytes.
const outcomeRows: Row[] = [
  {
    desc: 'AtaReply: CHECK POWER MODE, registers final',
    request: hdr({ cmd: 0, tag: TAG }) + ata({ op: 0xe5 }),
    want: { reply: pad60(rhdr({ cmd: 0, tag: TAG }), ata({ count: 0xff, op: 0x40 })), outcome: Outcome.AtaReply },
  },
  {
    desc: 'AtaReply: IDENTIFY, 548 bytes',
    request: hdr({ cmd: 0, tag: TAG }) + ata({ count: 1, op: 0xec }),
    want: { reply: identify(TAG, '00 00 00 40 00 00 00 00 00 00 00 00'), outcome: Outcome.AtaReply },
  },
  {
    desc: 'Reply: Query Config read',
    target: { config: 'abc' },
    request: hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 0 }),
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({ ccmd: 0, str: 'abc' })), outcome: Outcome.Reply },
  },
  {
    desc: 'Reply: Mac Mask edit refused with MError 2 (a Mac Mask error, not an AoE one)',
    request: hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 1, dirs: [[7, B]] }),
    want: { reply: pad60(rhdr({ cmd: 2, tag: TAG }), mask({ mcmd: 1, merror: 2, dircount: 0 })), outcome: Outcome.Reply },
  },
  {
    desc: 'AtaAoeError: version 2 of an ATA request',
    request: hdr({ ver: 2, cmd: 0, tag: TAG }) + ata({ op: 0xe5 }),
    want: { reply: pad60(rhdr({ cmd: 0, tag: TAG, error: 5 })), outcome: Outcome.AtaAoeError },
  },
  {
    desc: 'AoeError: version 2 of a Query Config',
    request: hdr({ ver: 2, cmd: 1, tag: TAG }) + cfg({ ccmd: 0 }),
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG, error: 5 })), outcome: Outcome.AoeError },
  },
  {
    desc: 'AoeError: unknown command',
    request: hdr({ cmd: 4, tag: TAG }),
    want: { reply: pad60(rhdr({ cmd: 4, tag: TAG, error: 1 })), outcome: Outcome.AoeError },
  },
  {
    desc: 'AtaAoeError: READ while reserved by another initiator (registers echoed)',
    target: { reserve: [B] },
    request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 1, op: 0x24, lba: 9 }),
    want: {
      reply: pad60(rhdr({ cmd: 0, tag: TAG, error: 6 }), ata({ aflags: 0x40, count: 1, op: 0x24, lba: 9 })),
      outcome: Outcome.AtaAoeError,
    },
  },
  {
    desc: 'AoeError: Query Config set while another string is present',
    target: { config: 'old' },
    request: hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 3, str: 'new' }),
    want: { reply: pad60(rhdr({ cmd: 1, tag: TAG, error: 4 }), cfgReply({ ccmd: 3, str: 'old' })), outcome: Outcome.AoeError },
  },
  {
    desc: 'AoeError: Mac Mask with an unknown MCmd',
    request: hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 9 }),
    want: { reply: pad60(rhdr({ cmd: 2, tag: TAG, error: 2 }), mask({ mcmd: 9 })), outcome: Outcome.AoeError },
  },
  {
    desc: 'AoeError: Reserve set by a non-holder',
    target: { reserve: [B] },
    request: hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 1, macs: [A] }),
    want: { reply: pad60(rhdr({ cmd: 3, tag: TAG, error: 6 }), resv({ rcmd: 1, macs: [B] })), outcome: Outcome.AoeError },
  },
  {
    desc: 'AtaError: unknown opcode, ABRT',
    request: hdr({ cmd: 0, tag: TAG }) + ata({ count: 3, op: 0xef }),
    want: { reply: pad60(rhdr({ cmd: 0, tag: TAG }), ata({ feature: 0x04, count: 3, op: 0x41 })), outcome: Outcome.AtaError },
  },
  {
    desc: 'AtaError: READ past the end, IDNF',
    request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 2, op: 0x24, lba: 8191 }),
    want: {
      reply: pad60(rhdr({ cmd: 0, tag: TAG }), ata({ aflags: 0x40, feature: 0x10, count: 2, op: 0x41, lba: 8191 })),
      outcome: Outcome.AtaError,
    },
  },
  {
    desc: 'AtaError: WRITE to a read-only export, ABRT',
    target: { readOnly: true },
    request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, count: 1, op: 0x34, lba: 5 }) + rep(1, 512),
    want: {
      reply: pad60(rhdr({ cmd: 0, tag: TAG }), ata({ aflags: 0x41, feature: 0x04, count: 1, op: 0x41, lba: 5 })),
      outcome: Outcome.AtaError,
    },
  },
  {
    desc: 'Read: READ EXT within the export',
    request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 1, op: 0x24, lba: 3 }),
    want: { pending: Outcome.Read, lba: 3, count: 1, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40, lba: 3 }) },
  },
  {
    desc: 'Write: WRITE EXT with its data',
    request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, count: 1, op: 0x34, lba: 3 }) + rep(2, 512),
    want: {
      pending: Outcome.Write,
      lba: 3,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, op: 0x40, lba: 3 }),
    },
  },
  {
    desc: 'Flush: FLUSH CACHE EXT',
    request: hdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0xea }),
    want: { pending: Outcome.Flush, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40 }) },
  },
  {
    desc: 'ShortFrame: 23 bytes',
    request: hex(hdr({ cmd: 0, tag: TAG })).subarray(0, 23),
    want: { none: Outcome.ShortFrame },
  },
  {
    desc: 'Masked: a READ from outside the mask (checked before the version)',
    target: { mask: [B] },
    request: hdr({ ver: 2, cmd: 0, tag: TAG }) + ata({ aflags: 0x40, count: 1, op: 0x24 }),
    want: { none: Outcome.Masked },
  },
  ...(
    [
      ['ATA, 35 bytes', hex(hdr({ cmd: 0, tag: TAG }) + ata({ count: 1, op: 0xec })).subarray(0, 35)],
      ['Query Config, 31 bytes', hex(hdr({ cmd: 1, tag: TAG }) + cfg({})).subarray(0, 31)],
      ['Mac Mask, 27 bytes', hex(hdr({ cmd: 2, tag: TAG }) + mask({ mcmd: 0 })).subarray(0, 27)],
      ['Reserve, 25 bytes', hex(hdr({ cmd: 3, tag: TAG }) + resv({ rcmd: 0 })).subarray(0, 25)],
    ] as const
  ).map(([name, request]): Row => ({
    desc: `ShortArgument: ${name}`,
    request,
    want: { none: Outcome.ShortArgument },
    state: { versionDelta: 0 },
  })),
  {
    desc: 'ConfigMismatch: test and prefix test that do not match',
    target: { config: 'abc' },
    steps: [
      { request: hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 1, str: 'ab' }), want: { none: Outcome.ConfigMismatch } },
      { request: hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 2, str: 'b' }), want: { none: Outcome.ConfigMismatch } },
      {
        request: hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 2, str: 'ab' }),
        want: { reply: pad60(rhdr({ cmd: 1, tag: TAG }), cfgReply({ ccmd: 2, str: 'abc' })), outcome: Outcome.Reply },
      },
    ],
  },
];

t.test('one outcome per frame', (t) => {
  runRows(t, outcomeRows);
  t.end();
});

t.test('real initiators and tools', (t) => {
  runRows(t, [linux, aoeping, aoecfg, sancheck, ipxe]);
  t.end();
});

t.test('version, unknown commands, short frames', (t) => {
  runRows(t, errorRows);
  t.end();
});

t.test('MAC mask enforcement for every command', (t) => {
  runRows(t, maskRows);
  t.end();
});

t.test('reply rules', (t) => {
  runRows(t, ruleRows);
  t.end();
});
