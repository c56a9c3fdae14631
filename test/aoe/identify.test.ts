// The IDENTIFY DEVICE page: a complete golden page, capacity words for
// sizes around the LBA28 and LBA48 limits, byte-swapped strings, feature
// words, the write-cache bits and the integrity word.

import t from 'tap';
import { buildIdentify, IdentifyFields } from '../../src/aoe';
import { ascii, dump, hex, rep } from './golden';

function word(page: Uint8Array, w: number): number {
  return page[w * 2] | (page[w * 2 + 1] << 8);
}

/** An ATA string read back: un-swap each word. */
function ataString(page: Uint8Array, w: number, words: number): string {
  let s = '';
  for (let i = 0; i < words; i++) s += String.fromCharCode(page[(w + i) * 2 + 1], page[(w + i) * 2]);
  return s;
}

const base: IdentifyFields = { sectors: 8192, serial: '7.3:testhost', firmware: 'V1', model: 'aoe-target', writeCache: true };

t.test('golden page: 8192 sectors, serial 7.3:testhost, firmware V1, model aoe-target, write cache', (t) => {
  const want = hex(`
    00 00 08 00 00 00 10 00 00 00 00 00 3f 00 00 00  # w1 cylinders 8, w3 heads 16, w6 sectors/track 63
    00 00 00 00                                      # w8-9
    2e 37 3a 33 65 74 74 73 6f 68 74 73              # w10-15 serial "7.3:testhost" (byte-swapped)
    20 20 20 20 20 20 20 20                          # w16-19 serial padding
    00 00 00 00 00 00                                # w20-22
    31 56 20 20 20 20 20 20                          # w23-26 firmware "V1"
    6f 61 2d 65 61 74 67 72 74 65                    # w27-31 model "aoe-target"
    ${rep(0x20, 30)}                                 # w32-46 model padding
    00 80                                            # w47 0x8000: no READ/WRITE MULTIPLE
    00 00                                            # w48
    00 02                                            # w49 0x0200: LBA
    00 40                                            # w50 0x4000
    00 00 00 00                                      # w51-52
    01 00                                            # w53: words 54-58 valid
    08 00 10 00 3f 00                                # w54-56 current CHS 8/16/63
    80 1f 00 00                                      # w57-58 CHS capacity 8064
    00 00                                            # w59
    00 20 00 00                                      # w60-61 LBA28 capacity 8192
    ${rep(0, 36)}                                    # w62-79
    f0 00                                            # w80 ATA-4..ATA-7
    00 00                                            # w81
    20 00                                            # w82 0x0020: write cache (bit 5)
    00 74                                            # w83 0x7400: valid, FLUSH EXT, FLUSH, 48-bit
    00 40                                            # w84 0x4000
    20 00                                            # w85 0x0020: write cache enabled
    00 34                                            # w86 0x3400: FLUSH EXT, FLUSH, 48-bit enabled
    00 40                                            # w87 0x4000
    ${rep(0, 10)}                                    # w88-92
    0b 40                                            # w93 0x400b hardware reset result
    ${rep(0, 12)}                                    # w94-99
    00 20 00 00 00 00 00 00                          # w100-103 LBA48 capacity 8192
    ${rep(0, 302)}                                   # w104-254
    a5 28                                            # w255 signature 0xA5, checksum 0x28
  `);
  t.equal(want.length, 512, 'golden is 512 bytes');
  t.equal(dump(buildIdentify(base)), dump(want));
  t.end();
});

interface SizeRow {
  sectors: number;
  lba28: number;
  lba48: number[];
  cylinders: number;
  chs: number;
}

const sizes: SizeRow[] = [
  { sectors: 1, lba28: 1, lba48: [1, 0, 0, 0], cylinders: 0, chs: 0 },
  { sectors: 8192, lba28: 8192, lba48: [0x2000, 0, 0, 0], cylinders: 8, chs: 8064 },
  { sectors: 16514064, lba28: 16514064, lba48: [0xfc10, 0x00fb, 0, 0], cylinders: 16383, chs: 16514064 },
  { sectors: 0x0ffffffe, lba28: 0x0ffffffe, lba48: [0xfffe, 0x0fff, 0, 0], cylinders: 16383, chs: 16514064 },
  { sectors: 0x0fffffff, lba28: 0x0fffffff, lba48: [0xffff, 0x0fff, 0, 0], cylinders: 16383, chs: 16514064 },
  { sectors: 0x10000000, lba28: 0x0fffffff, lba48: [0x0000, 0x1000, 0, 0], cylinders: 16383, chs: 16514064 },
  { sectors: 0xffffffff, lba28: 0x0fffffff, lba48: [0xffff, 0xffff, 0, 0], cylinders: 16383, chs: 16514064 },
  { sectors: 0x100000000, lba28: 0x0fffffff, lba48: [0, 0, 1, 0], cylinders: 16383, chs: 16514064 },
  { sectors: 0x123456789abc, lba28: 0x0fffffff, lba48: [0x9abc, 0x5678, 0x1234, 0], cylinders: 16383, chs: 16514064 },
  { sectors: 2 ** 48 - 1, lba28: 0x0fffffff, lba48: [0xffff, 0xffff, 0xffff, 0], cylinders: 16383, chs: 16514064 },
];

t.test('capacity words', (t) => {
  for (const r of sizes) {
    t.test(`${r.sectors} sectors (0x${r.sectors.toString(16)})`, (t) => {
      const p = buildIdentify({ ...base, sectors: r.sectors });
      t.equal(word(p, 60) + word(p, 61) * 0x10000, r.lba28, 'words 60-61: LBA28 capacity, capped at 0x0FFFFFFF');
      t.same(
        [100, 101, 102, 103].map((w) => word(p, w)),
        r.lba48,
        'words 100-103: LBA48 capacity',
      );
      t.equal(word(p, 1), r.cylinders, 'word 1 cylinders');
      t.equal(word(p, 54), r.cylinders, 'word 54 current cylinders');
      t.same([word(p, 3), word(p, 6), word(p, 55), word(p, 56)], [16, 63, 16, 63], 'heads and sectors per track');
      t.equal(word(p, 57) + word(p, 58) * 0x10000, r.chs, 'words 57-58 CHS capacity');
      t.ok(word(p, 83) & 0x0400, 'word 83 bit 10: 48-bit supported (Linux then reads words 100-103)');
      t.ok(word(p, 86) & 0x0400, 'word 86 bit 10: 48-bit enabled');
      t.end();
    });
  }
  t.end();
});

t.test('strings: byte-swapped, space padded, truncated', (t) => {
  const rows: { desc: string; f: Partial<IdentifyFields>; w: number; words: number; want: string; raw?: string }[] = [
    {
      desc: 'serial, even length',
      f: { serial: 'ABCD' },
      w: 10,
      words: 10,
      want: 'ABCD'.padEnd(20),
      raw: `42 41 44 43 ${rep(0x20, 16)}`,
    },
    {
      desc: 'serial, odd length',
      f: { serial: 'ABC' },
      w: 10,
      words: 10,
      want: 'ABC'.padEnd(20),
      raw: `42 41 20 43 ${rep(0x20, 16)}`,
    },
    { desc: 'serial, empty', f: { serial: '' }, w: 10, words: 10, want: ' '.repeat(20), raw: rep(0x20, 20) },
    {
      desc: 'serial truncated at 20',
      f: { serial: '0123456789abcdefghijKLMNO' },
      w: 10,
      words: 10,
      want: '0123456789abcdefghij',
    },
    { desc: 'firmware, 8 characters', f: { firmware: 'V1.2.3-x' }, w: 23, words: 4, want: 'V1.2.3-x', raw: ascii('1V2.3.x-') },
    { desc: 'firmware truncated at 8', f: { firmware: 'release-10' }, w: 23, words: 4, want: 'release-' },
    { desc: 'model, 40 characters', f: { model: 'M'.repeat(39) + 'Z' }, w: 27, words: 20, want: 'M'.repeat(39) + 'Z' },
    { desc: 'model truncated at 40', f: { model: 'x'.repeat(50) }, w: 27, words: 20, want: 'x'.repeat(40) },
    { desc: 'model with spaces', f: { model: 'aoe target disk' }, w: 27, words: 20, want: 'aoe target disk'.padEnd(40) },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const p = buildIdentify({ ...base, ...r.f });
      t.equal(ataString(p, r.w, r.words), r.want);
      if (r.raw) {
        const raw = hex(r.raw);
        t.equal(dump(p.subarray(r.w * 2, r.w * 2 + raw.length)), dump(raw), 'raw bytes');
      }
      t.end();
    });
  }
  t.end();
});

t.test('other strings are not disturbed by one being long', (t) => {
  const p = buildIdentify({ ...base, serial: 'S'.repeat(30), firmware: 'F'.repeat(30), model: 'M'.repeat(60) });
  t.equal(ataString(p, 10, 10), 'S'.repeat(20));
  t.same([word(p, 20), word(p, 21), word(p, 22)], [0, 0, 0], 'words 20-22 zero');
  t.equal(ataString(p, 23, 4), 'F'.repeat(8));
  t.equal(ataString(p, 27, 20), 'M'.repeat(40));
  t.equal(word(p, 47), 0x8000, 'word 47 intact');
  t.end();
});

t.test('feature words', (t) => {
  const rows: { desc: string; writeCache: boolean; words: Record<number, number> }[] = [
    {
      desc: 'write cache (export not in sync mode)',
      writeCache: true,
      words: {
        47: 0x8000,
        49: 0x0200,
        50: 0x4000,
        53: 0x0001,
        80: 0x00f0,
        82: 0x0020,
        83: 0x7400,
        84: 0x4000,
        85: 0x0020,
        86: 0x3400,
        87: 0x4000,
        93: 0x400b,
      },
    },
    {
      desc: 'no write cache (sync mode)',
      writeCache: false,
      words: {
        47: 0x8000,
        49: 0x0200,
        50: 0x4000,
        53: 0x0001,
        80: 0x00f0,
        82: 0x0000,
        83: 0x7400,
        84: 0x4000,
        85: 0x0000,
        86: 0x3400,
        87: 0x4000,
        93: 0x400b,
      },
    },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const p = buildIdentify({ ...base, writeCache: r.writeCache });
      for (const [w, v] of Object.entries(r.words)) t.equal(word(p, Number(w)), v, `word ${w} = 0x${v.toString(16)}`);
      t.equal(word(p, 83) & 0xc000, 0x4000, 'word 83: bit 14 one, bit 15 zero (valid)');
      t.equal(word(p, 84) & 0xc000, 0x4000, 'word 84 valid');
      t.equal(word(p, 87) & 0xc000, 0x4000, 'word 87 valid');
      t.notOk(word(p, 82) & 0x0001, 'word 82 bit 0: no SMART (aoeping -S refuses cleanly)');
      t.ok(word(p, 83) & 0x1000 && word(p, 86) & 0x1000, 'FLUSH CACHE supported and enabled');
      t.ok(word(p, 83) & 0x2000 && word(p, 86) & 0x2000, 'FLUSH CACHE EXT supported and enabled');
      t.equal(word(p, 0), 0, 'word 0: fixed ATA device');
      const known = new Set([
        1, 3, 6, 47, 49, 50, 53, 54, 55, 56, 57, 58, 60, 61, 80, 82, 83, 84, 85, 86, 87, 93, 100, 101, 102, 103, 255,
      ]);
      for (let w = 10; w < 47; w++) known.add(w);
      const stray: number[] = [];
      for (let w = 0; w < 256; w++) if (!known.has(w) && word(p, w) !== 0) stray.push(w);
      t.same(stray, [], 'every other word is zero');
      t.end();
    });
  }
  t.end();
});

t.test('integrity word: signature 0xA5 and all 512 bytes sum to 0 mod 256', (t) => {
  const cases: IdentifyFields[] = [
    base,
    { ...base, writeCache: false },
    { ...base, sectors: 1, serial: '', firmware: '', model: '' },
    { ...base, sectors: 2 ** 48 - 1, serial: '65534.254:a-very-long-host-name', model: '~'.repeat(40) },
  ];
  for (const f of cases) {
    const p = buildIdentify(f);
    let sum = 0;
    for (const b of p) sum += b;
    t.equal(p[510], 0xa5, `signature (${f.sectors} sectors)`);
    t.equal(sum % 256, 0, `checksum (${f.sectors} sectors)`);
  }
  t.end();
});

t.test('each call returns a fresh page', (t) => {
  const a = buildIdentify(base);
  const b = buildIdentify(base);
  t.not(a, b);
  a[0] = 1;
  t.equal(b[0], 0);
  t.end();
});
