// Reply parsers against frames written out by hand.
import t from 'tap';
import { parseIdentify } from '../../src/client/identify';
import {
  ReplyFormatError,
  hasError,
  isAoeFrame,
  isResponse,
  parseAtaReply,
  parseConfigReply,
  parseHeader,
  parseMaskReply,
  parseReserveReply,
  readLba48,
  replyShelf,
  replySlot,
  replyTag,
} from '../../src/client/replies';

function hex(text: string): Uint8Array {
  const clean = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

// Replies from e7.3 (02:00:00:00:00:0b) to us (02:00:00:00:00:0a).
const ETH = `
  02 00 00 00 00 0a   # to us
  02 00 00 00 00 0b   # from the target
  88 a2
`;

t.test('common header', async (t) => {
  const f = hex(`${ETH}
    1c                  # version 1, R and E
    06                  # error 6: target is reserved
    00 07 03            # e7.3
    00                  # ATA
    80 00 00 2a         # tag with bit 31 set
    00 00 00 24 00 00 00 00 00 00 00 00`);
  t.same(parseHeader(f), {
    dst: '02:00:00:00:00:0a',
    src: '02:00:00:00:00:0b',
    etherType: 0x88a2,
    version: 1,
    flags: 0x0c,
    response: true,
    error: true,
    errorCode: 6,
    shelf: 7,
    slot: 3,
    command: 0,
    tag: 0x8000002a,
    length: 36,
  });
  t.ok(isAoeFrame(f, 0, f.length));
  t.ok(isResponse(f, 0));
  t.ok(hasError(f, 0));
  t.equal(replyTag(f, 0), 0x8000002a);
  t.equal(replyShelf(f, 0), 7);
  t.equal(replySlot(f, 0), 3);
});

t.test("vblade's start-up announcement: version nibble 0, tag 0", async (t) => {
  // Observed on the wire (research §7): ff..ff | src | 88a2 | 08 00 0007 03 01 00000000 | 0010 4019 02 10 0000
  const f = hex(`ff ff ff ff ff ff  3a 69 c5 f5 36 58  88 a2
    08 00 00 07 03 01 00 00 00 00
    00 10 40 19 02 10 00 00`);
  const h = parseHeader(f);
  t.equal(h.version, 0);
  t.equal(h.response, true);
  t.equal(h.tag, 0);
  t.same(parseConfigReply(f), {
    bufferCount: 16,
    firmware: 0x4019,
    sectorCount: 2,
    aoeVersion: 1,
    ccmd: 0,
    configLength: 0,
    config: new Uint8Array(0),
    truncated: false,
  });
});

t.test('config reply with a string, and one that claims more than it carries', async (t) => {
  const full = hex(`${ETH} 18 00 00 07 03 01 00 00 00 01
    00 40               # buffer count 64
    00 01               # firmware 1
    11                  # 17 sectors
    13                  # AoE 1, CCmd 3 (set)
    00 05               # 5 bytes
    68 65 6c 6c 6f      # "hello"`);
  const c = parseConfigReply(full);
  t.equal(c.bufferCount, 64);
  t.equal(c.sectorCount, 17);
  t.equal(c.ccmd, 3);
  t.equal(new TextDecoder().decode(c.config), 'hello');
  t.equal(c.truncated, false);

  const cut = full.subarray(0, full.length - 2);
  const d = parseConfigReply(cut);
  t.equal(d.configLength, 5);
  t.equal(d.config.length, 3);
  t.equal(d.truncated, true);
});

t.test('ATA replies', async (t) => {
  const cases = [
    {
      name: 'READ EXT success with one sector of data',
      frame: hex(`${ETH} 18 00 00 07 03 00 00 00 00 05
        40 00 00 40          # aflags E, error 0, sector count 0, status DRDY
        01 00 00 00 00 00    # LBA echoed
        00 00
        ${'ab '.repeat(512)}`),
      want: { aflags: 0x40, err: 0, sectorCount: 0, status: 0x40, lba: 1, dataLength: 512, failed: false },
    },
    {
      name: 'out of range: IDNF, status DRDY|ERR, nothing transferred',
      frame: hex(`${ETH} 18 00 00 07 03 00 00 00 00 06
        40 10 02 41 ff 1f 00 00 00 00 00 00`),
      want: { aflags: 0x40, err: 0x10, sectorCount: 2, status: 0x41, lba: 0x1fff, dataLength: 0, failed: true },
    },
    {
      name: 'unsupported opcode: ABRT',
      frame: hex(`${ETH} 18 00 00 07 03 00 00 00 00 07
        00 04 00 41 00 00 00 00 00 00 00 00 ${'00 '.repeat(24)}`),
      want: { aflags: 0, err: 0x04, sectorCount: 0, status: 0x41, lba: 0, dataLength: 24, failed: true },
    },
    {
      name: 'DRQ alone counts as failure (Linux mask 0xA9)',
      frame: hex(`${ETH} 18 00 00 07 03 00 00 00 00 08
        00 00 00 48 00 00 00 00 00 00 00 00`),
      want: { aflags: 0, err: 0, sectorCount: 0, status: 0x48, lba: 0, dataLength: 0, failed: true },
    },
  ];
  for (const c of cases) {
    const r = parseAtaReply(c.frame);
    t.same(
      {
        aflags: r.aflags,
        err: r.err,
        sectorCount: r.sectorCount,
        status: r.status,
        lba: r.lba,
        dataLength: r.data.length,
        failed: r.failed,
      },
      c.want,
      c.name,
    );
  }
});

t.test('48-bit LBA field', async (t) => {
  t.equal(readLba48(hex('bc 9a 78 56 34 12'), 0), 0x123456789abc);
  t.equal(readLba48(hex('ff ff ff ff ff ff'), 0), 2 ** 48 - 1);
});

t.test('mask replies', async (t) => {
  const list = hex(`${ETH} 18 00 00 07 03 02 00 00 00 09
    00 00 00 02          # read, MError 0, 2 entries
    00 00 02 00 00 00 00 01
    00 00 02 00 00 00 00 02`);
  t.same(parseMaskReply(list), {
    mcmd: 0,
    merror: 0,
    dirCount: 2,
    directives: [
      { command: 0, mac: '02:00:00:00:00:01' },
      { command: 0, mac: '02:00:00:00:00:02' },
    ],
  });
  const bad = hex(`${ETH} 18 00 00 07 03 02 00 00 00 0a
    00 01 02 01          # edit, MError 2 (bad directive) at index 1, no list`);
  t.same(parseMaskReply(bad), { mcmd: 1, merror: 2, dirCount: 1, directives: [] });
});

t.test('reserve replies', async (t) => {
  const r = hex(`${ETH} 18 00 00 07 03 03 00 00 00 0b
    01 02                # set, 2 MACs
    02 00 00 00 00 0a
    0a 0b 0c 0d 0e 0f`);
  t.same(parseReserveReply(r), { rcmd: 1, nmacs: 2, macs: ['02:00:00:00:00:0a', '0a:0b:0c:0d:0e:0f'] });
  const cut = r.subarray(0, 32);
  t.same(parseReserveReply(cut).macs, ['02:00:00:00:00:0a'], 'only the MACs present are returned');
});

t.test('frames too short for what they claim to be', async (t) => {
  const short = hex(`${ETH} 18 00 00 07 03 01 00 00 00 01 00 10`);
  t.throws(() => parseConfigReply(short), ReplyFormatError);
  t.throws(() => parseAtaReply(short), ReplyFormatError);
  t.throws(() => parseHeader(short.subarray(0, 20)), ReplyFormatError);
  t.notOk(isAoeFrame(short, 0, 20));
  t.notOk(isAoeFrame(hex('02 00 00 00 00 0a 02 00 00 00 00 0b 08 00 ' + '00 '.repeat(20)), 0, 34), 'IPv4 is not AoE');
});

t.test('IDENTIFY data', async (t) => {
  const id = new Uint8Array(512);
  const setWord = (w: number, v: number): void => {
    id[w * 2] = v & 0xff;
    id[w * 2 + 1] = v >>> 8;
  };
  const setString = (w: number, words: number, s: string): void => {
    const p = s.padEnd(words * 2, ' ');
    for (let i = 0; i < words; i++) setWord(w + i, (p.charCodeAt(2 * i) << 8) | p.charCodeAt(2 * i + 1));
  };
  setString(10, 10, '7.3:host');
  setString(23, 4, 'V25');
  setString(27, 20, 'Coraid EtherDrive vblade');
  setWord(60, 0xffff);
  setWord(61, 0x0fff); // LBA28 capacity capped at 0x0fffffff
  setWord(83, 0x5400);
  setWord(86, 0x1400);
  setWord(100, 0x0000);
  setWord(101, 0x0000);
  setWord(102, 0x0001); // 2^32 sectors
  t.same(parseIdentify(id), {
    lba48: true,
    sectors: 2 ** 32,
    lba28Sectors: 0x0fffffff,
    lba48Sectors: 2 ** 32,
    serial: '7.3:host',
    firmwareRevision: 'V25',
    model: 'Coraid EtherDrive vblade',
    commandSets83: 0x5400,
    commandSets86: 0x1400,
  });
  setWord(83, 0);
  setWord(86, 0);
  t.equal(parseIdentify(id).sectors, 0x0fffffff, 'without the 48-bit bit the LBA28 words count');
  t.throws(() => parseIdentify(id.subarray(0, 100)), ReplyFormatError);
});
