// The 512-byte IDENTIFY DEVICE page (ATA/ATAPI-7 §6.17), built once per export.
// Words are little-endian; strings use ATA's byte-swapped order.

export interface IdentifyFields {
  sectors: number;
  serial: string;
  firmware: string;
  model: string;
  /** Writes are cached (acknowledged before durable) unless the export is in sync mode. */
  writeCache: boolean;
}

export function buildIdentify(f: IdentifyFields): Uint8Array {
  const page = new Uint8Array(512);
  const word = (w: number, v: number): void => {
    page[w * 2] = v & 0xff;
    page[w * 2 + 1] = (v >> 8) & 0xff;
  };
  const text = (w: number, words: number, s: string): void => {
    const padded = s.slice(0, words * 2).padEnd(words * 2, ' ');
    for (let i = 0; i < words * 2; i += 2) {
      page[w * 2 + i] = padded.charCodeAt(i + 1) & 0x7f;
      page[w * 2 + i + 1] = padded.charCodeAt(i) & 0x7f;
    }
  };
  // A CHS geometry for initiators that still ask (16 heads, 63 sectors per track).
  const cylinders = Math.min(16383, Math.floor(f.sectors / (16 * 63)));
  word(1, cylinders);
  word(3, 16);
  word(6, 63);
  text(10, 10, f.serial);
  text(23, 4, f.firmware);
  text(27, 20, f.model);
  word(47, 0x8000); // READ/WRITE MULTIPLE not supported
  word(49, 0x0200); // LBA supported
  word(50, 0x4000);
  word(53, 0x0001); // words 54-58 valid
  word(54, cylinders);
  word(55, 16);
  word(56, 63);
  const chs = cylinders * 16 * 63;
  word(57, chs & 0xffff);
  word(58, Math.floor(chs / 0x10000) & 0xffff);
  const lba28 = Math.min(f.sectors, 0x0fffffff);
  word(60, lba28 & 0xffff);
  word(61, Math.floor(lba28 / 0x10000));
  word(80, 0x00f0); // ATA-4 .. ATA-7
  const cache = f.writeCache ? 0x0020 : 0;
  word(82, cache); // bit 5: write cache (words 82/85 have no must-be-one bit)
  word(83, 0x4000 | 0x2000 | 0x1000 | 0x0400); // FLUSH CACHE EXT, FLUSH CACHE, 48-bit
  word(84, 0x4000);
  word(85, cache);
  word(86, 0x2000 | 0x1000 | 0x0400);
  word(87, 0x4000);
  word(93, 0x400b);
  let s = f.sectors;
  for (let w = 100; w < 104; w++) {
    word(w, s % 0x10000);
    s = Math.floor(s / 0x10000);
  }
  // Integrity word: signature 0xA5 and a checksum making all 512 bytes sum to 0.
  page[510] = 0xa5;
  let sum = 0;
  for (let i = 0; i < 511; i++) sum += page[i];
  page[511] = (256 - (sum & 0xff)) & 0xff;
  return page;
}
