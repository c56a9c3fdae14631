// Reading the 512-byte ATA IDENTIFY DEVICE block the way the Linux aoe driver
// does: little-endian words, strings with the two bytes of each word swapped.

import { ReplyFormatError } from './replies';

export interface IdentifyData {
  /** 48-bit addressing supported (word 83 or 86, bit 10). */
  lba48: boolean;
  /** Capacity in sectors: words 100..103 when lba48, else words 60..61. */
  sectors: number;
  lba28Sectors: number;
  lba48Sectors: number;
  serial: string;
  firmwareRevision: string;
  model: string;
  /** Word 83: command sets supported (bit 12 FLUSH CACHE, bit 13 FLUSH CACHE EXT). */
  commandSets83: number;
  /** Word 86: command sets enabled. */
  commandSets86: number;
}

export function identifyWord(data: Uint8Array, word: number): number {
  return data[word * 2] | (data[word * 2 + 1] << 8);
}

/** An ATA string of `words` words starting at `word`, bytes swapped back, trailing spaces and NULs removed. */
export function identifyString(data: Uint8Array, word: number, words: number): string {
  let s = '';
  for (let i = 0; i < words; i++) {
    const w = identifyWord(data, word + i);
    s += String.fromCharCode(w >>> 8, w & 0xff);
  }
  return s.replace(/[\s\0]+$/, '');
}

export function parseIdentify(data: Uint8Array): IdentifyData {
  if (data.length < 512) throw new ReplyFormatError(`IDENTIFY data too short: ${data.length} bytes, need 512`);
  const w83 = identifyWord(data, 83);
  const w86 = identifyWord(data, 86);
  const lba48 = ((w83 | w86) & 0x0400) !== 0;
  const lba28Sectors = identifyWord(data, 60) + identifyWord(data, 61) * 0x10000;
  const lba48Sectors =
    identifyWord(data, 100) +
    identifyWord(data, 101) * 0x10000 +
    identifyWord(data, 102) * 0x100000000 +
    identifyWord(data, 103) * 0x1000000000000;
  return {
    lba48,
    sectors: lba48 ? lba48Sectors : lba28Sectors,
    lba28Sectors,
    lba48Sectors,
    serial: identifyString(data, 10, 10).trim(),
    firmwareRevision: identifyString(data, 23, 4).trim(),
    model: identifyString(data, 27, 20).trim(),
    commandSets83: w83,
    commandSets86: w86,
  };
}
