// Request builders against frames written out by hand.
import t from 'tap';
import { parseMac } from '../../src/client/mac';
import {
  FrameAddress,
  lba28Field,
  padFrame,
  writeAtaRequest,
  writeConfigQuery,
  writeFlush,
  writeIdentify,
  writeMaskEdit,
  writeMaskRead,
  writeMaskRequest,
  writeRead28,
  writeReadExt,
  writeReserve,
  writeWrite28,
  writeWriteExt,
} from '../../src/client/requests';

const TARGET = parseMac('02:00:00:00:00:0b');
const US = parseMac('02:00:00:00:00:0a');
const addr: FrameAddress = { dst: TARGET, src: US, shelf: 7, slot: 3 };

/** Hex text (spaces, newlines and `#` comments ignored) to bytes. */
function hex(text: string): Uint8Array {
  const clean = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

// The 24 bytes every request to e7.3 from us starts with, minus command and tag.
const ETH = `
  02 00 00 00 00 0b   # destination: the target
  02 00 00 00 00 0a   # source: us
  88 a2               # EtherType AoE
  10                  # version 1, no flags
  00                  # error
  00 07               # shelf 7
  03                  # slot 3
`;

interface Case {
  name: string;
  build: (buf: Uint8Array) => number;
  golden: string;
}

const sector0 = new Uint8Array(512).fill(0x5a);

const cases: Case[] = [
  {
    name: 'IDENTIFY as Linux sends it',
    build: (b) => writeIdentify(b, 0, addr, 0x01020304),
    golden: `${ETH}
      00 01 02 03 04      # command 0 (ATA), tag
      00                  # aflags: none
      00                  # feature
      01                  # sector count 1
      ec                  # IDENTIFY DEVICE
      00 00 00 a0 00 00   # lba0..5: lba3 = device register 0xA0
      00 00               # reserved`,
  },
  {
    name: 'READ SECTORS EXT, 48-bit LBA 0x123456789abc, 17 sectors',
    build: (b) => writeReadExt(b, 0, addr, 0x7fffffff, 0x123456789abc, 17),
    golden: `${ETH}
      00 7f ff ff ff      # ATA, tag with bit 31 clear
      40                  # aflags: E (extended)
      00
      11                  # 17 sectors
      24                  # READ SECTORS EXT
      bc 9a 78 56 34 12   # LBA little-endian
      00 00`,
  },
  {
    name: 'READ SECTORS (28-bit): device register 0xE0 | LBA bits 24..27',
    build: (b) => writeRead28(b, 0, addr, 5, 0x0abcdef1, 2),
    golden: `${ETH}
      00 00 00 00 05
      00                  # aflags: none
      00
      02
      20                  # READ SECTORS
      f1 de bc ea 00 00   # lba3 = 0xE0 | 0x0A
      00 00`,
  },
  {
    name: 'FLUSH CACHE',
    build: (b) => writeFlush(b, 0, addr, 6),
    golden: `${ETH}
      00 00 00 00 06
      00 00 00
      e7                  # FLUSH CACHE
      00 00 00 e0 00 00   # device register 0xE0
      00 00`,
  },
  {
    name: 'FLUSH CACHE EXT',
    build: (b) => writeFlush(b, 0, addr, 6, true),
    golden: `${ETH}
      00 00 00 00 06
      40 00 00
      ea                  # FLUSH CACHE EXT
      00 00 00 00 00 00
      00 00`,
  },
  {
    name: 'any opcode with any aflags (CHECK POWER MODE with A and D set)',
    build: (b) => writeAtaRequest(b, 0, addr, 9, 0x12, 0x34, 0x56, 0xe5, 0x0000fedcba98),
    golden: `${ETH}
      00 00 00 00 09
      12                  # aflags D|A as given
      34                  # feature
      56                  # sector count
      e5                  # CHECK POWER MODE
      98 ba dc fe 00 00
      00 00`,
  },
  {
    name: 'Query Config read, empty string, broadcast',
    build: (b) => writeConfigQuery(b, 0, { dst: parseMac('ff:ff:ff:ff:ff:ff'), src: US, shelf: 0xffff, slot: 0xff }, 0x11223344),
    golden: `
      ff ff ff ff ff ff   # broadcast
      02 00 00 00 00 0a
      88 a2 10 00
      ff ff               # every shelf
      ff                  # every slot
      01                  # Query Config
      11 22 33 44
      00 00               # buffer count 0 in a request
      00 00               # firmware 0
      00                  # sector count 0
      00                  # AoE nibble 0, CCmd 0 (read)
      00 00               # string length 0`,
  },
  {
    name: 'Query Config force set "abc"',
    build: (b) => writeConfigQuery(b, 0, addr, 1, 4, new TextEncoder().encode('abc')),
    golden: `${ETH}
      01 00 00 00 01
      00 00 00 00 00
      04                  # CCmd 4: force set
      00 03               # length 3
      61 62 63            # "abc"`,
  },
  {
    name: 'Query Config claiming more string than it carries',
    build: (b) => writeConfigQuery(b, 0, addr, 1, 3, new TextEncoder().encode('AB'), 20),
    golden: `${ETH}
      01 00 00 00 01
      00 00 00 00 00
      03                  # set
      00 14               # claims 20 bytes
      41 42               # carries 2`,
  },
  {
    name: 'Mac Mask read',
    build: (b) => writeMaskRead(b, 0, addr, 2),
    golden: `${ETH}
      02 00 00 00 02      # Mac Mask List
      00                  # reserved
      00                  # MCmd 0: read
      00                  # MError
      00                  # Dir Count`,
  },
  {
    name: 'Mac Mask edit: add one, delete one',
    build: (b) =>
      writeMaskEdit(b, 0, addr, 3, [
        { command: 1, mac: parseMac('02:00:00:00:00:01') },
        { command: 2, mac: parseMac('02:00:00:00:00:02') },
      ]),
    golden: `${ETH}
      02 00 00 00 03
      00 01 00 02         # edit, 2 directives
      00 01 02 00 00 00 00 01   # reserved, DCmd add, MAC
      00 02 02 00 00 00 00 02   # reserved, DCmd delete, MAC`,
  },
  {
    name: 'Mac Mask edit with an unknown directive and a Dir Count that lies',
    build: (b) => writeMaskRequest(b, 0, addr, 3, 1, [{ command: 7, mac: parseMac('02:00:00:00:00:01') }], 5),
    golden: `${ETH}
      02 00 00 00 03
      00 01 00 05         # claims 5 directives
      00 07 02 00 00 00 00 01`,
  },
  {
    name: 'Reserve read',
    build: (b) => writeReserve(b, 0, addr, 4, 0),
    golden: `${ETH}
      03 00 00 00 04      # Reserve/Release
      00                  # RCmd 0: read
      00                  # NMacs 0`,
  },
  {
    name: 'Reserve force set of two MACs',
    build: (b) => writeReserve(b, 0, addr, 4, 2, [parseMac('02:00:00:00:00:01'), parseMac('0a:0b:0c:0d:0e:0f')]),
    golden: `${ETH}
      03 00 00 00 04
      02 02               # force set, 2 MACs
      02 00 00 00 00 01
      0a 0b 0c 0d 0e 0f`,
  },
];

t.test('request builders match hand-written frames', async (t) => {
  for (const c of cases) {
    const buf = new Uint8Array(2048).fill(0xee);
    const length = c.build(buf);
    const want = hex(c.golden);
    t.equal(length, want.length, `${c.name}: length`);
    t.same(Array.from(buf.subarray(0, length)), Array.from(want), c.name);
    t.equal(buf[length], 0xee, `${c.name}: nothing written past the frame`);
  }
});

t.test('WRITE SECTORS EXT carries its payload after the ATA header', async (t) => {
  const buf = new Uint8Array(2048);
  const length = writeWriteExt(buf, 0, addr, 8, 100, 1, sector0);
  t.equal(length, 36 + 512);
  t.same(
    Array.from(buf.subarray(24, 36)),
    Array.from(hex('41 00 01 34  64 00 00 00 00 00  00 00')),
    'aflags E|W, WRITE EXT, LBA 100',
  );
  t.same(buf.subarray(36, 548), sector0);
});

t.test('WRITE SECTORS (28-bit) sets W and the device register', async (t) => {
  const buf = new Uint8Array(2048);
  const data = new Uint8Array(1024).fill(1);
  const length = writeWrite28(buf, 0, addr, 8, 0x01000000, 2, data);
  t.equal(length, 36 + 1024);
  t.same(Array.from(buf.subarray(24, 36)), Array.from(hex('01 00 02 30  00 00 00 e1 00 00  00 00')));
});

t.test('frames are written at an offset, leaving the rest alone', async (t) => {
  const buf = new Uint8Array(200).fill(0xee);
  const length = writeReadExt(buf, 100, addr, 1, 1, 1);
  t.equal(buf[99], 0xee);
  t.equal(buf[100], 0x02);
  t.equal(buf[100 + 27], 0x24);
  t.equal(buf[100 + length], 0xee);
});

t.test('padFrame zero-fills short frames to 60 bytes', async (t) => {
  const buf = new Uint8Array(100).fill(0xee);
  t.equal(padFrame(buf, 0, writeMaskRead(buf, 0, addr, 1)), 60);
  t.same(Array.from(buf.subarray(28, 60)), new Array(32).fill(0));
  t.equal(buf[60], 0xee);
  t.equal(padFrame(buf, 0, 80), 80, 'long frames are left as they are');
});

t.test('lba28Field', async (t) => {
  t.equal(lba28Field(0), 0xe0000000);
  t.equal(lba28Field(0x0fffffff), 0xefffffff);
  t.equal(lba28Field(0x1fffffff), 0xefffffff, 'bits above 27 are dropped');
  t.equal(lba28Field(5, 0xa0), 0xa0000005);
});
