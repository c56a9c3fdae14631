// Command 0, Issue ATA Command: LBA decoding, the decision table of
// decideAta(), the register writers, and every ATA path through respond()
// from golden frames.

import t from 'tap';
import {
  abortAtaReply,
  AtaAction,
  AtaDecision,
  decideAta,
  Outcome,
  requestLba,
  setAtaIoError,
  setAtaResult,
  shrinkOversizedReply,
  writeAtaRegisters,
} from '../../src/aoe';
import {
  A,
  ata,
  B,
  C,
  cfg,
  dump,
  exchange,
  hdr,
  hex,
  pad60,
  rep,
  rhdr,
  Row,
  runRows,
  Target,
  TargetOpts,
  TX_OFF,
} from './golden';

const TAG = 0x12345678;

/** A request from A to e7.3 carrying these ATA fields and `payload` bytes of data. */
function req(f: Parameters<typeof ata>[0], payload = 0, fill = 0x5a, src = A): string {
  return hdr({ cmd: 0, tag: TAG, src }) + ata(f) + rep(fill, payload);
}

/** A finished 60-byte ATA reply with these registers. */
function regs(f: Parameters<typeof ata>[0], dst = A): Uint8Array {
  return pad60(rhdr({ cmd: 0, tag: TAG, dst }), ata(f));
}

/** The IDENTIFY reply of an export made with `target`: DRDY, count 0, LBA echoed, the page. */
function identReply(target: TargetOpts | undefined, lba: string): Uint8Array {
  return hex(rhdr({ cmd: 0, tag: TAG }), '00 00 00 40', lba, '00 00', new Target(target).st.identify);
}

/** An AoE-level error reply (registers of the request echoed). */
function aoeErr(code: number, f: Parameters<typeof ata>[0], dst = A): Uint8Array {
  return pad60(rhdr({ cmd: 0, tag: TAG, dst, error: code }), ata(f));
}

// ------------------------------------------------------------------ LBA decoding

t.test('requestLba', (t) => {
  const rows: { desc: string; lba: string; ext: boolean; want: number }[] = [
    { desc: '28-bit: Linux device register 0xE0 in lba3 ignored', lba: '78 56 34 e0 00 00', ext: false, want: 0x345678 },
    { desc: '28-bit: low nibble of lba3 is LBA bits 24-27', lba: '01 02 03 e2 00 00', ext: false, want: 0x2030201 },
    { desc: '28-bit: IDENTIFY-style 0xA0 device register', lba: '00 00 00 a0 00 00', ext: false, want: 0 },
    { desc: '28-bit: maximum 0x0FFFFFFF', lba: 'ff ff ff ff 00 00', ext: false, want: 0x0fffffff },
    { desc: '28-bit: bytes 4-5 are not part of the address', lba: '05 00 00 e0 ff ff', ext: false, want: 5 },
    { desc: '48-bit: six little-endian bytes', lba: '01 02 03 04 05 06', ext: true, want: 0x060504030201 },
    { desc: '48-bit: lba3 is a real address byte', lba: '00 00 00 e0 00 00', ext: true, want: 0xe0000000 },
    { desc: '48-bit: maximum 2^48 - 1', lba: 'ff ff ff ff ff ff', ext: true, want: 2 ** 48 - 1 },
    { desc: '48-bit: zero', lba: '00 00 00 00 00 00', ext: true, want: 0 },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      // at a non-zero offset, with junk around the field
      const f = hex(rep(0xee, 28 + 7), r.lba, rep(0xee, 10));
      t.equal(requestLba(f, 7, r.ext), r.want);
      t.end();
    });
  }
  t.end();
});

// ------------------------------------------------------------------ decideAta table

interface DecideRow {
  desc: string;
  target?: TargetOpts;
  maxSectors?: number;
  frame: string;
  /** Length passed to decideAta (defaults to the frame length). */
  len?: number;
  want: { action: AtaAction; lba?: number; count?: number; status?: number; error?: number; sectors?: number; aoeError?: number };
}

const decideRows: DecideRow[] = [
  { desc: 'IDENTIFY', frame: req({ count: 1, op: 0xec, lba: '00 00 00 a0 00 00' }), want: { action: AtaAction.Identify } },
  {
    desc: 'READ EXT 2 at 100',
    frame: req({ aflags: 0x40, count: 2, op: 0x24, lba: 100 }),
    want: { action: AtaAction.Read, lba: 100, count: 2 },
  },
  {
    desc: 'WRITE EXT 2 at 100',
    frame: req({ aflags: 0x41, count: 2, op: 0x34, lba: 100 }, 1024),
    want: { action: AtaAction.Write, lba: 100, count: 2 },
  },
  {
    desc: 'READ (28-bit) 1 at 0x345 with lba3 0xE0',
    frame: req({ count: 1, op: 0x20, lba: '45 03 00 e0 00 00' }),
    want: { action: AtaAction.Read, lba: 0x345, count: 1 },
  },
  {
    desc: 'CHECK POWER MODE',
    frame: req({ count: 7, op: 0xe5 }),
    want: { action: AtaAction.Reply, status: 0x40, error: 0, sectors: 0xff },
  },
  { desc: 'FLUSH CACHE', frame: req({ op: 0xe7 }), want: { action: AtaAction.Flush } },
  { desc: 'FLUSH CACHE EXT', frame: req({ aflags: 0x40, op: 0xea }), want: { action: AtaAction.Flush } },
  {
    desc: 'unknown opcode 0xEF (SET FEATURES)',
    frame: req({ feature: 0x02, count: 9, op: 0xef }),
    want: { action: AtaAction.Reply, status: 0x41, error: 0x04, sectors: 9 },
  },
  {
    desc: 'count 0 (READ: 256 sectors)',
    frame: req({ count: 0, op: 0x20 }),
    want: { action: AtaAction.Reply, status: 0x41, error: 0x04, sectors: 0 },
  },
  {
    desc: 'count 0 (READ EXT: 65536 sectors) even at the largest frame',
    maxSectors: 255,
    frame: req({ aflags: 0x40, count: 0, op: 0x24 }),
    want: { action: AtaAction.Reply, status: 0x41, error: 0x04, sectors: 0 },
  },
  {
    desc: 'count 255 fits when the interface carries 255 sectors',
    maxSectors: 255,
    target: { sectors: 1000 },
    frame: req({ aflags: 0x40, count: 255, op: 0x24, lba: 745 }),
    want: { action: AtaAction.Read, lba: 745, count: 255 },
  },
  {
    desc: 'count above the maximum',
    frame: req({ aflags: 0x40, count: 3, op: 0x24 }),
    want: { action: AtaAction.Reply, status: 0x41, error: 0x04, sectors: 3 },
  },
  {
    desc: 'out of range',
    frame: req({ aflags: 0x40, count: 2, op: 0x24, lba: 8191 }),
    want: { action: AtaAction.Reply, status: 0x41, error: 0x10, sectors: 2 },
  },
  {
    desc: 'short write payload',
    frame: req({ aflags: 0x41, count: 2, op: 0x34 }, 1023),
    want: { action: AtaAction.Reply, status: 0x41, error: 0x04, sectors: 2 },
  },
  {
    desc: 'write to a read-only export',
    target: { readOnly: true },
    frame: req({ aflags: 0x41, count: 1, op: 0x34 }, 512),
    want: { action: AtaAction.Reply, status: 0x41, error: 0x04, sectors: 1 },
  },
  {
    desc: 'reserved for someone else',
    target: { reserve: [B] },
    frame: req({ aflags: 0x40, count: 1, op: 0x24 }),
    want: { action: AtaAction.AoeError, aoeError: 6 },
  },
  {
    desc: 'reserved for the requester',
    target: { reserve: [C, A] },
    frame: req({ aflags: 0x40, count: 1, op: 0x24, lba: 9 }),
    want: { action: AtaAction.Read, lba: 9, count: 1 },
  },
  { desc: 'shorter than 36 bytes', frame: req({ count: 1, op: 0xec }), len: 35, want: { action: AtaAction.Ignore } },
];

t.test('decideAta', (t) => {
  for (const r of decideRows) {
    t.test(r.desc, (t) => {
      const tg = new Target(r.target);
      const f = hex(r.frame);
      const d = new AtaDecision();
      d.lba = d.count = -1; // must be set when the action needs them
      const action = decideAta(f, 0, r.len ?? f.length, tg.st, r.maxSectors ?? tg.ctx.maxSectors, d);
      t.equal(action, r.want.action, 'action');
      if (r.want.lba !== undefined) t.equal(d.lba, r.want.lba, 'lba');
      if (r.want.count !== undefined) t.equal(d.count, r.want.count, 'count');
      if (r.want.status !== undefined) t.equal(d.status, r.want.status, 'status');
      if (r.want.error !== undefined) t.equal(d.error, r.want.error, 'error');
      if (r.want.sectors !== undefined) t.equal(d.sectors, r.want.sectors, 'sector count register');
      if (r.want.aoeError !== undefined) t.equal(d.aoeError, r.want.aoeError, 'AoE error');
      t.end();
    });
  }
  t.end();
});

// ------------------------------------------------------------------ register writers

t.test('writeAtaRegisters echoes flags and LBA, writes results, zeroes reserved bytes', (t) => {
  const rx = hex(req({ aflags: 0x53, feature: 0x77, count: 2, op: 0x24, lba: '01 02 03 04 05 06', res: 0xbeef }));
  const tx = new Uint8Array(80).fill(0xaa);
  writeAtaRegisters(tx, 10, rx, 0, 0x41, 0x10, 0x02);
  t.equal(dump(tx.subarray(10 + 24, 10 + 36)), dump(hex('53 10 02 41 01 02 03 04 05 06 00 00')));
  t.equal(tx[10 + 23], 0xaa, 'header untouched');
  t.equal(tx[10 + 36], 0xaa, 'data area untouched');
  t.end();
});

t.test('setAtaResult and setAtaIoError rewrite only status, error and count', (t) => {
  const tx = new Uint8Array(48).fill(0xaa);
  setAtaResult(tx, 4, 0x40, 0x00, 0x00);
  t.equal(dump(tx.subarray(4 + 24, 4 + 36)), dump(hex('aa 00 00 40 aa aa aa aa aa aa aa aa')));
  setAtaIoError(tx, 4, 2);
  t.equal(dump(tx.subarray(4 + 24, 4 + 36)), dump(hex('aa 04 02 41 aa aa aa aa aa aa aa aa')));
  t.end();
});

// ------------------------------------------------------------------ respond() rows

const BIG = 2 ** 48 - 1; // a 48-bit export (sizes are numbers only: no storage here)

const rows: Row[] = [
  // ---- IDENTIFY
  {
    desc: 'IDENTIFY, Linux shape (aflags 0, count 1, lba3 0xA0): 548 bytes, DRDY, page appended',
    request: `
      02 aa bb 00 07 03   # dst: the target
      02 00 00 00 00 0a   # src: initiator A
      88 a2               # AoE
      10 00               # ver 1, no flags; error 0
      00 07 03            # e7.3
      00                  # ATA
      12 34 56 78         # tag
      00 00 01 ec         # aflags, feature, count 1, IDENTIFY DEVICE
      00 00 00 a0 00 00   # lba0-5 (device register 0xA0)
      00 00               # reserved`,
    want: { reply: identReply(undefined, '00 00 00 a0 00 00') },
  },
  {
    desc: 'IDENTIFY with count 0 is answered (vblade: BadArg)',
    request: req({ count: 0, op: 0xec, lba: '00 00 00 a0 00 00' }),
    want: { reply: identReply(undefined, '00 00 00 a0 00 00') },
  },
  {
    desc: 'IDENTIFY with count 2 is answered',
    request: req({ count: 2, op: 0xec }),
    want: { reply: identReply(undefined, '00 00 00 00 00 00') },
  },
  {
    desc: 'IDENTIFY with E flag and junk LBA: LBA echoed',
    request: req({ aflags: 0x40, count: 1, op: 0xec, lba: '01 02 03 04 05 06' }),
    want: { reply: hex(rhdr({ cmd: 0, tag: TAG }), '40 00 00 40 01 02 03 04 05 06 00 00', new Target().st.identify) },
  },
  {
    desc: 'IDENTIFY on a read-only export',
    target: { readOnly: true },
    request: req({ count: 1, op: 0xec, lba: '00 00 00 a0 00 00' }),
    want: { reply: identReply({ readOnly: true }, '00 00 00 a0 00 00') },
  },
  {
    desc: 'IDENTIFY allowed for a non-holder of a reservation',
    target: { reserve: [B] },
    request: req({ count: 1, op: 0xec, lba: '00 00 00 a0 00 00' }),
    want: { reply: identReply({ reserve: [B] }, '00 00 00 a0 00 00') },
  },

  // ---- READ / WRITE, 28- and 48-bit
  {
    desc: 'READ EXT, Linux shape (aflags E, 2 sectors): Outcome.Read with registers prepared',
    request: `
      02 aa bb 00 07 03  02 00 00 00 00 0a  88 a2  10 00  00 07 03  00  12 34 56 78
      40                  # aflags: E
      00 02 24            # feature 0, count 2, READ SECTORS EXT
      34 12 00 00 00 00   # lba 0x1234
      00 00`,
    want: {
      pending: Outcome.Read,
      lba: 0x1234,
      count: 2,
      head: rhdr({ cmd: 0, tag: TAG }) + '40 00 00 40  34 12 00 00 00 00  00 00',
    },
  },
  {
    desc: 'WRITE EXT, Linux shape (aflags E|W, 2 sectors, 1024 bytes): Outcome.Write',
    request: req({ aflags: 0x41, count: 2, op: 0x34, lba: 8190 }, 1024),
    want: {
      pending: Outcome.Write,
      lba: 8190,
      count: 2,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, op: 0x40, lba: 8190 }),
    },
  },
  {
    desc: 'READ (28-bit), iPXE shape: 36 bytes, lba3 0xE0 ignored',
    request: req({ count: 2, op: 0x20, lba: '10 00 00 e0 00 00' }),
    want: {
      pending: Outcome.Read,
      lba: 16,
      count: 2,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ op: 0x40, lba: '10 00 00 e0 00 00' }),
    },
  },
  {
    desc: 'READ (28-bit): lba3 low nibble is address bits 24-27, echoed as received',
    target: { sectors: 0x10000000 },
    request: req({ count: 1, op: 0x20, lba: '01 02 03 e2 00 00' }),
    want: {
      pending: Outcome.Read,
      lba: 0x2030201,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ op: 0x40, lba: '01 02 03 e2 00 00' }),
    },
  },
  {
    desc: 'READ (28-bit): junk in lba4-5 is ignored but echoed',
    request: req({ count: 1, op: 0x20, lba: '07 00 00 e0 aa bb' }),
    want: {
      pending: Outcome.Read,
      lba: 7,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ op: 0x40, lba: '07 00 00 e0 aa bb' }),
    },
  },
  {
    desc: 'WRITE (28-bit), iPXE shape (aflags W, lba3 0xE0)',
    request: req({ aflags: 0x01, count: 1, op: 0x30, lba: '00 01 00 e0 00 00' }, 512),
    want: {
      pending: Outcome.Write,
      lba: 256,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x01, op: 0x40, lba: '00 01 00 e0 00 00' }),
    },
  },
  {
    desc: 'READ EXT with a full 48-bit LBA',
    target: { sectors: BIG },
    request: req({ aflags: 0x40, count: 1, op: 0x24, lba: '01 02 03 04 05 06' }),
    want: {
      pending: Outcome.Read,
      lba: 0x060504030201,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40, lba: '01 02 03 04 05 06' }),
    },
  },
  {
    desc: 'WRITE EXT at the last sector of a 48-bit export',
    target: { sectors: BIG },
    request: req({ aflags: 0x41, count: 1, op: 0x34, lba: BIG - 1 }, 512),
    want: {
      pending: Outcome.Write,
      lba: BIG - 1,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, op: 0x40, lba: BIG - 1 }),
    },
  },
  {
    desc: 'READ EXT probe frame carrying trailing zero payload (Linux probe): answered normally',
    request: req({ aflags: 0x40, count: 2, op: 0x24, lba: 0 }, 1024, 0x00),
    want: { pending: Outcome.Read, lba: 0, count: 2, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40 }) },
  },
  {
    desc: 'WRITE with more payload than needed: extra bytes ignored',
    request: req({ aflags: 0x41, count: 1, op: 0x34, lba: 5 }, 1024),
    want: {
      pending: Outcome.Write,
      lba: 5,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, op: 0x40, lba: 5 }),
    },
  },
  {
    desc: 'READ EXT of the last two sectors',
    request: req({ aflags: 0x40, count: 2, op: 0x24, lba: 8190 }),
    want: {
      pending: Outcome.Read,
      lba: 8190,
      count: 2,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40, lba: 8190 }),
    },
  },
  {
    desc: 'READ EXT of 17 sectors at MTU 9000',
    target: { mtu: 9000 },
    request: req({ aflags: 0x40, count: 17, op: 0x24, lba: 0 }),
    want: { pending: Outcome.Read, lba: 0, count: 17, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40 }) },
  },
  {
    desc: 'WRITE EXT of 17 sectors at MTU 9000',
    target: { mtu: 9000 },
    request: req({ aflags: 0x41, count: 17, op: 0x34, lba: 1 }, 17 * 512),
    want: {
      pending: Outcome.Write,
      lba: 1,
      count: 17,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, op: 0x40, lba: 1 }),
    },
  },
  {
    desc: 'READ on a read-only export',
    target: { readOnly: true },
    request: req({ aflags: 0x40, count: 1, op: 0x24, lba: 3 }),
    want: { pending: Outcome.Read, lba: 3, count: 1, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40, lba: 3 }) },
  },
  {
    desc: 'READ EXT by the reservation holder',
    target: { reserve: [B, A] },
    request: req({ aflags: 0x40, count: 1, op: 0x24, lba: 3 }),
    want: { pending: Outcome.Read, lba: 3, count: 1, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40, lba: 3 }) },
  },

  // ---- W flag vs opcode, A flag, MBZ (B23)
  {
    desc: 'READ EXT opcode with W set: the opcode decides (read)',
    request: req({ aflags: 0x41, count: 1, op: 0x24, lba: 4 }),
    want: { pending: Outcome.Read, lba: 4, count: 1, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x41, op: 0x40, lba: 4 }) },
  },
  {
    desc: 'WRITE EXT opcode with W clear: still a write; the reply will carry no data',
    request: req({ aflags: 0x40, count: 1, op: 0x34, lba: 4 }, 512),
    want: {
      pending: Outcome.Write,
      lba: 4,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40, lba: 4 }),
    },
  },
  {
    desc: 'WRITE EXT with the A (async) flag: handled as an ordinary write',
    request: req({ aflags: 0x43, count: 1, op: 0x34, lba: 4 }, 512),
    want: {
      pending: Outcome.Write,
      lba: 4,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x43, op: 0x40, lba: 4 }),
    },
  },
  {
    desc: 'READ EXT with MBZ aflags bits and reserved bytes set: tolerated, reserved bytes zero in the reply',
    request: req({ aflags: 0xfc, count: 1, op: 0x24, lba: 4, res: 0xffff }),
    want: { pending: Outcome.Read, lba: 4, count: 1, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0xfc, op: 0x40, lba: 4 }) },
  },
  {
    desc: 'READ (28-bit) opcode with the E flag: the opcode decides (28-bit LBA)',
    request: req({ aflags: 0x40, count: 1, op: 0x20, lba: '05 00 00 e0 00 00' }),
    want: {
      pending: Outcome.Read,
      lba: 5,
      count: 1,
      head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40, lba: '05 00 00 e0 00 00' }),
    },
  },

  // ---- argument errors: ABRT / IDNF, never an AoE error (B16)
  {
    desc: 'READ with count 0 (= 256): ABRT',
    request: req({ count: 0, op: 0x20, lba: '00 00 00 e0 00 00' }),
    want: { reply: regs({ feature: 0x04, count: 0, op: 0x41, lba: '00 00 00 e0 00 00' }) },
  },
  {
    desc: 'READ EXT with count 0 (= 65536): ABRT',
    request: req({ aflags: 0x40, count: 0, op: 0x24 }),
    want: { reply: regs({ aflags: 0x40, feature: 0x04, count: 0, op: 0x41 }) },
  },
  {
    desc: 'WRITE EXT with count 0: ABRT, nothing written',
    request: req({ aflags: 0x41, count: 0, op: 0x34 }),
    want: { reply: regs({ aflags: 0x41, feature: 0x04, count: 0, op: 0x41 }) },
  },
  {
    desc: 'READ EXT of 3 sectors at MTU 1500 (max 2): ABRT, count echoed (vblade: BadArg)',
    request: req({ aflags: 0x40, count: 3, op: 0x24, lba: 10 }),
    want: { reply: regs({ aflags: 0x40, feature: 0x04, count: 3, op: 0x41, lba: 10 }) },
  },
  {
    desc: 'READ EXT of 18 sectors at MTU 9000 (max 17): ABRT',
    target: { mtu: 9000 },
    request: req({ aflags: 0x40, count: 18, op: 0x24 }),
    want: { reply: regs({ aflags: 0x40, feature: 0x04, count: 18, op: 0x41 }) },
  },
  {
    desc: 'WRITE EXT of 3 sectors with full payload at MTU 1500: ABRT',
    request: req({ aflags: 0x41, count: 3, op: 0x34 }, 1536),
    want: { reply: regs({ aflags: 0x41, feature: 0x04, count: 3, op: 0x41 }) },
  },
  {
    desc: 'READ EXT crossing the end (8191 + 2 > 8192): IDNF',
    request: req({ aflags: 0x40, count: 2, op: 0x24, lba: 8191 }),
    want: { reply: regs({ aflags: 0x40, feature: 0x10, count: 2, op: 0x41, lba: 8191 }) },
  },
  {
    desc: 'READ EXT starting at the end: IDNF',
    request: req({ aflags: 0x40, count: 1, op: 0x24, lba: 8192 }),
    want: { reply: regs({ aflags: 0x40, feature: 0x10, count: 1, op: 0x41, lba: 8192 }) },
  },
  {
    desc: 'READ EXT at LBA 2^48 - 1: IDNF',
    request: req({ aflags: 0x40, count: 1, op: 0x24, lba: 'ff ff ff ff ff ff' }),
    want: { reply: regs({ aflags: 0x40, feature: 0x10, count: 1, op: 0x41, lba: 'ff ff ff ff ff ff' }) },
  },
  {
    desc: 'READ (28-bit) beyond a small export: IDNF',
    request: req({ count: 1, op: 0x20, lba: '00 00 01 e0 00 00' }),
    want: { reply: regs({ feature: 0x10, count: 1, op: 0x41, lba: '00 00 01 e0 00 00' }) },
  },
  {
    desc: 'WRITE EXT crossing the end with full payload: IDNF, nothing written',
    request: req({ aflags: 0x41, count: 2, op: 0x34, lba: 8191 }, 1024),
    want: { reply: regs({ aflags: 0x41, feature: 0x10, count: 2, op: 0x41, lba: 8191 }) },
  },
  {
    desc: 'WRITE (28-bit) beyond the end: IDNF',
    request: req({ aflags: 0x01, count: 1, op: 0x30, lba: '00 20 00 e0 00 00' }, 512),
    want: { reply: regs({ aflags: 0x01, feature: 0x10, count: 1, op: 0x41, lba: '00 20 00 e0 00 00' }) },
  },
  {
    desc: 'WRITE EXT of 2 sectors with 1023 bytes: ABRT (short payload)',
    request: req({ aflags: 0x41, count: 2, op: 0x34, lba: 0 }, 1023),
    want: { reply: regs({ aflags: 0x41, feature: 0x04, count: 2, op: 0x41 }) },
  },
  {
    desc: 'WRITE EXT of 1 sector with no payload at all (36 bytes): ABRT',
    request: req({ aflags: 0x41, count: 1, op: 0x34, lba: 0 }),
    want: { reply: regs({ aflags: 0x41, feature: 0x04, count: 1, op: 0x41 }) },
  },
  {
    desc: 'WRITE (28-bit) with 24 bytes of payload (a 60-byte frame): ABRT',
    request: req({ aflags: 0x01, count: 1, op: 0x30, lba: '00 00 00 e0 00 00' }, 24),
    want: { reply: regs({ aflags: 0x01, feature: 0x04, count: 1, op: 0x41, lba: '00 00 00 e0 00 00' }) },
  },
  {
    desc: 'WRITE EXT to a read-only export: ABRT',
    target: { readOnly: true },
    request: req({ aflags: 0x41, count: 1, op: 0x34, lba: 0 }, 512),
    want: { reply: regs({ aflags: 0x41, feature: 0x04, count: 1, op: 0x41 }) },
  },
  {
    desc: 'WRITE (28-bit) to a read-only export: ABRT',
    target: { readOnly: true },
    request: req({ aflags: 0x01, count: 2, op: 0x30, lba: '00 00 00 e0 00 00' }, 1024),
    want: { reply: regs({ aflags: 0x01, feature: 0x04, count: 2, op: 0x41, lba: '00 00 00 e0 00 00' }) },
  },

  // ---- other opcodes
  {
    desc: 'CHECK POWER MODE, count 0: active/idle (0xFF)',
    request: req({ op: 0xe5, lba: '00 00 00 a0 00 00' }),
    want: { reply: regs({ count: 0xff, op: 0x40, lba: '00 00 00 a0 00 00' }) },
  },
  {
    desc: 'CHECK POWER MODE, count 1: answered (vblade: silence, B6)',
    request: req({ count: 1, op: 0xe5 }),
    want: { reply: regs({ count: 0xff, op: 0x40 }) },
  },
  {
    desc: 'CHECK POWER MODE, count 255: answered',
    request: req({ count: 255, op: 0xe5 }),
    want: { reply: regs({ count: 0xff, op: 0x40 }) },
  },
  {
    desc: 'CHECK POWER MODE on a read-only export',
    target: { readOnly: true },
    request: req({ op: 0xe5 }),
    want: { reply: regs({ count: 0xff, op: 0x40 }) },
  },
  {
    desc: 'FLUSH CACHE: Outcome.Flush with DRDY prepared',
    request: req({ op: 0xe7, lba: '00 00 00 a0 00 00' }),
    want: { pending: Outcome.Flush, head: rhdr({ cmd: 0, tag: TAG }) + ata({ op: 0x40, lba: '00 00 00 a0 00 00' }) },
  },
  {
    desc: 'FLUSH CACHE EXT: Outcome.Flush (vblade: ABRT, B5)',
    request: req({ aflags: 0x40, op: 0xea }),
    want: { pending: Outcome.Flush, head: rhdr({ cmd: 0, tag: TAG }) + ata({ aflags: 0x40, op: 0x40 }) },
  },
  {
    desc: 'FLUSH CACHE with a non-zero count: still a flush, count register 0',
    request: req({ count: 5, op: 0xe7 }),
    want: { pending: Outcome.Flush, head: rhdr({ cmd: 0, tag: TAG }) + ata({ op: 0x40 }) },
  },
  {
    desc: 'FLUSH CACHE on a read-only export: still a flush',
    target: { readOnly: true },
    request: req({ op: 0xe7 }),
    want: { pending: Outcome.Flush, head: rhdr({ cmd: 0, tag: TAG }) + ata({ op: 0x40 }) },
  },
  ...[
    [0x00, 'NOP'],
    [0x25, 'READ DMA EXT'],
    [0x35, 'WRITE DMA EXT'],
    [0x40, 'READ VERIFY'],
    [0x42, 'READ VERIFY EXT'],
    [0x29, 'READ MULTIPLE EXT'],
    [0xc8, 'READ DMA'],
    [0xca, 'WRITE DMA'],
    [0xe0, 'STANDBY IMMEDIATE'],
    [0xef, 'SET FEATURES'],
    [0xf8, 'READ NATIVE MAX ADDRESS'],
    [0x27, 'READ NATIVE MAX ADDRESS EXT'],
    [0xa1, 'IDENTIFY PACKET DEVICE'],
    [0xff, 'vendor 0xFF'],
  ].map(([op, name]): Row => ({
    desc: `unknown opcode 0x${op.toString(16).padStart(2, '0')} (${name}): ABRT, never silence`,
    request: req({ aflags: 0x40, feature: 0x03, count: 2, op: op as number, lba: 77 }),
    want: { reply: regs({ aflags: 0x40, feature: 0x04, count: 2, op: 0x41, lba: 77 }) },
  })),
  {
    desc: 'SMART READ DATA, aoeping -S shape (feature 0xD0, lba1 0x4F, lba2 0xC2): ABRT',
    request: req({ feature: 0xd0, count: 1, op: 0xb0, lba: '00 4f c2 00 00 00' }),
    want: { reply: regs({ feature: 0x04, count: 1, op: 0x41, lba: '00 4f c2 00 00 00' }) },
  },

  // ---- reservations (error 6 for non-holders, IDENTIFY allowed above)
  ...[
    ['READ EXT', { aflags: 0x40, count: 1, op: 0x24, lba: 3 }, 0],
    ['WRITE EXT', { aflags: 0x41, count: 1, op: 0x34, lba: 3 }, 512],
    ['READ (28-bit)', { count: 1, op: 0x20, lba: '03 00 00 e0 00 00' }, 0],
    ['WRITE (28-bit)', { aflags: 0x01, count: 1, op: 0x30, lba: '03 00 00 e0 00 00' }, 512],
    ['FLUSH CACHE', { op: 0xe7 }, 0],
    ['FLUSH CACHE EXT', { aflags: 0x40, op: 0xea }, 0],
    ['CHECK POWER MODE', { count: 1, op: 0xe5 }, 0],
    ['an unknown opcode', { feature: 0x11, count: 1, op: 0xef }, 0],
    ['an out-of-range READ EXT', { aflags: 0x40, count: 1, op: 0x24, lba: 99999 }, 0],
  ].map(([name, f, payload]): Row => ({
    desc: `${name as string} from a non-holder of the reservation: AoE error 6, registers of the request echoed`,
    target: { reserve: [B, C] },
    request: req(f as Parameters<typeof ata>[0], payload as number),
    want: { reply: aoeErr(6, f as Parameters<typeof ata>[0]) },
  })),

  // ---- too short
  {
    desc: 'ATA request of 35 bytes: no reply',
    request: hdr({ cmd: 0, tag: TAG }) + '00 00 01 ec 00 00 00 a0 00 00 00',
    want: 'no reply',
  },
  {
    desc: 'ATA request of 24 bytes (header only): no reply',
    request: hdr({ cmd: 0, tag: TAG }),
    want: 'no reply',
  },
];

t.test('respond: ATA', (t) => {
  runRows(t, rows);
  t.end();
});

t.test('an IDENTIFY reply carries the export size (LBA28 capped, LBA48 exact)', (t) => {
  const tg = new Target({ sectors: 0x12345678 });
  const x = exchange(tg, hex(req({ count: 1, op: 0xec, lba: '00 00 00 a0 00 00' })));
  t.equal(x.reply?.length, 548);
  const r = x.reply!;
  const word = (w: number): number => r[36 + w * 2] | (r[36 + w * 2 + 1] << 8);
  t.equal(word(60) + word(61) * 0x10000, 0x0fffffff, 'LBA28 capacity capped');
  t.equal(word(100) + word(101) * 0x10000, 0x12345678, 'LBA48 capacity');
  t.end();
});

t.test('a reply after a large one in the same slot carries no stale bytes (B10)', (t) => {
  const tg = new Target();
  const first = exchange(tg, hex(req({ count: 1, op: 0xec })));
  t.equal(first.reply?.length, 548);
  const second = exchange(tg, hex(req({ count: 0, op: 0xe5 })), 0xcc, 0xaa, first.tx);
  t.equal(dump(second.reply!), dump(regs({ count: 0xff, op: 0x40 })));
  t.end();
});

t.test('abortAtaReply: a built read reply becomes a 60-byte ABRT, registers otherwise kept', (t) => {
  const tg = new Target({ mtu: 9000 });
  const x = exchange(tg, hex(req({ aflags: 0x40, count: 17, op: 0x24, lba: 7 })));
  t.equal(x.outcome, Outcome.Read);
  // As the engine leaves it once the data is in: registers prepared, 17 sectors after them.
  x.tx.fill(0xd7, TX_OFF + 36, TX_OFF + 36 + 17 * 512);
  const n = abortAtaReply(x.tx, TX_OFF);
  t.equal(n, 60);
  t.equal(
    dump(x.tx.subarray(TX_OFF, TX_OFF + n)),
    dump(regs({ aflags: 0x40, feature: 0x04, op: 0x41, lba: 7 })),
    'ABRT, data gone',
  );
  t.end();
});

t.test('shrinkOversizedReply: an ATA reply becomes ABRT; a reply with nothing smaller is dropped', (t) => {
  const tg = new Target({ mtu: 9000 });
  const read = exchange(tg, hex(req({ aflags: 0x40, count: 17, op: 0x24, lba: 7 })));
  read.tx.fill(0xd7, TX_OFF + 36, TX_OFF + 36 + 17 * 512);
  t.equal(shrinkOversizedReply(read.tx, TX_OFF, 36 + 17 * 512), 60, 'a read of 17 sectors: 60 bytes instead');
  t.equal(
    dump(read.tx.subarray(TX_OFF, TX_OFF + 60)),
    dump(regs({ aflags: 0x40, feature: 0x04, op: 0x41, lba: 7 })),
    'ABRT, data gone',
  );
  const small = exchange(tg, hex(req({ count: 0, op: 0xe5 })));
  t.equal(shrinkOversizedReply(small.tx, TX_OFF, small.reply!.length), 0, 'a 60-byte ATA reply: nothing smaller');
  const config = exchange(new Target({ mtu: 9000, config: 'a'.repeat(200) }), hex(hdr({ cmd: 1, tag: TAG }) + cfg({ ccmd: 0 })));
  t.equal(config.reply!.length, 232, 'a Query Config reply of 232 bytes');
  t.equal(shrinkOversizedReply(config.tx, TX_OFF, config.reply!.length), 0, 'a Query Config reply: not shortened');
  t.end();
});
