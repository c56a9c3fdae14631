// vblade's command line, parsed the way vblade v25 parses it (getopt
// "b:dsrm:o:l:", GNU argument permutation, `--` ends options) but strictly:
// every value is range-checked and a bad one is an error that says what is
// wrong and what to write instead. Pure: no I/O, no process access.
//
//   vblade [-b bufcnt] [-d] [-s] [-r] [-m mac[,mac...]] [-o offset] [-l length] shelf slot netif file

import { isRemoteUri, parseRemoteUri } from '../remote/remote-uri';
import { MAC_LIST_CAPACITY } from '../aoe/constants';
import type { ExportConfig } from './export-config';

export const VBLADE_USAGE =
  'usage: vblade [-b bufcnt] [-d] [-s] [-r] [-m mac[,mac...]] [-o offset] [-l length] shelf slot netif file';

/** vblade's default Buffer Count (dat.h: Bufcount = 16). */
export const DEFAULT_BUFFER_COUNT = 16;
/** Largest Buffer Count the 16-bit Query Config field can carry. */
export const MAX_BUFFER_COUNT = 0xffff;
/** 65535 is the broadcast shelf. */
export const MAX_SHELF = 65534;
/** 255 is the broadcast slot. */
export const MAX_SLOT = 254;
/** The MAC mask list's capacity (src/aoe: a full list reply must fit a 1500-byte MTU). */
export const MAC_MASK_CAPACITY = MAC_LIST_CAPACITY;
/** Linux IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_IFNAME = 15;

/** A command-line mistake; `message` says what is wrong and what to do. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The options part of the command line (everything but the four operands). */
export interface VbladeOptions {
  bufferCount: number;
  direct: boolean;
  sync: boolean;
  readOnly: boolean;
  macMask: string[];
  offsetSectors: number;
  lengthSectors?: number;
}

/**
 * Parses a number the way C's strtoll(s, &end, 0) reads it, but insists that
 * the whole string is the number: `0x`/`0X` → hexadecimal, a leading `0` →
 * octal, otherwise decimal. Returns undefined for anything else (empty,
 * signs, spaces, trailing characters, digits outside the base) and for values
 * beyond Number.MAX_SAFE_INTEGER.
 */
export function parseCInteger(s: string): number | undefined {
  let digits: string;
  let base: number;
  if (/^0[xX]/.test(s)) {
    digits = s.slice(2);
    base = 16;
    if (!/^[0-9a-fA-F]+$/.test(digits)) return undefined;
  } else if (s.length > 1 && s[0] === '0') {
    digits = s.slice(1);
    base = 8;
    if (!/^[0-7]+$/.test(digits)) return undefined;
  } else {
    digits = s;
    base = 10;
    if (!/^[0-9]+$/.test(digits)) return undefined;
  }
  const big = BigInt(base === 16 ? '0x' + digits : base === 8 ? '0o' + digits : digits);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(big);
}

/**
 * One MAC address in either `aa:bb:cc:dd:ee:ff` or `aabbccddeeff` form (any
 * case), returned as lower-case `aa:bb:cc:dd:ee:ff`. `what` names the place
 * for the message (e.g. "-m"). Rejects group (multicast/broadcast) and
 * all-zero addresses: neither can be the source of a request.
 */
export function parseMac(text: string, what: string): string {
  let hex: string;
  if (/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) hex = text.replace(/:/g, '');
  else if (/^[0-9a-fA-F]{12}$/.test(text)) hex = text;
  else {
    throw new UsageError(`${what}: "${text}" is not a MAC address; write six hex pairs as aa:bb:cc:dd:ee:ff or aabbccddeeff`);
  }
  hex = hex.toLowerCase();
  const mac = hex.match(/../g)!.join(':');
  if (hex === '000000000000') {
    throw new UsageError(`${what}: ${mac} is the all-zero address and never sends requests; give the initiator's own MAC`);
  }
  if (parseInt(hex.slice(0, 2), 16) & 1) {
    throw new UsageError(
      `${what}: ${mac} is a group (multicast or broadcast) address and never sends requests; give the initiator's own MAC`,
    );
  }
  return mac;
}

/**
 * A comma-separated MAC list (the -m argument), appended to `into` with
 * duplicates dropped. Throws when an entry is bad or the list would exceed
 * MAC_MASK_CAPACITY.
 */
export function parseMacList(text: string, what: string, into: string[] = []): string[] {
  const parts = text.split(',');
  for (const part of parts) {
    if (part === '') {
      throw new UsageError(`${what}: empty entry in MAC list "${text}"; separate addresses with single commas and no spaces`);
    }
    const mac = parseMac(part, what);
    if (!into.includes(mac)) into.push(mac);
    if (into.length > MAC_MASK_CAPACITY) {
      throw new UsageError(
        `${what}: more than ${MAC_MASK_CAPACITY} MAC addresses; a mask list holds at most ${MAC_MASK_CAPACITY}`,
      );
    }
  }
  return into;
}

export function parseShelf(text: string): number {
  if (!/^[0-9]+$/.test(text)) {
    throw new UsageError(`shelf "${text}" is not a number; give a decimal shelf address 0..${MAX_SHELF}`);
  }
  const n = Number(text);
  if (n > MAX_SHELF) {
    throw new UsageError(
      `shelf ${text} is out of range; use 0..${MAX_SHELF} (65535 is the broadcast shelf and cannot be exported)`,
    );
  }
  return n;
}

export function parseSlot(text: string): number {
  if (!/^[0-9]+$/.test(text)) {
    throw new UsageError(`slot "${text}" is not a number; give a decimal slot address 0..${MAX_SLOT}`);
  }
  const n = Number(text);
  if (n > MAX_SLOT) {
    throw new UsageError(`slot ${text} is out of range; use 0..${MAX_SLOT} (255 is the broadcast slot and cannot be exported)`);
  }
  return n;
}

export function parseInterfaceName(text: string): string {
  if (text === '' || text === '.' || text === '..' || /[\s/]/.test(text)) {
    throw new UsageError(`"${text}" is not a network interface name; give one as "ip link" lists it, e.g. eth1`);
  }
  if (text.length > MAX_IFNAME) {
    throw new UsageError(
      `interface name "${text}" is longer than ${MAX_IFNAME} characters, which Linux does not allow; check the name with "ip link"`,
    );
  }
  return text;
}

export function parseBufferCount(text: string, what = '-b'): number {
  const n = parseCInteger(text);
  if (n === undefined) {
    throw new UsageError(`${what}: "${text}" is not a number; give the buffer count as a whole number, e.g. ${what} 16`);
  }
  if (n < 1 || n > MAX_BUFFER_COUNT) {
    throw new UsageError(`${what}: buffer count ${text} is out of range; use 1..${MAX_BUFFER_COUNT}`);
  }
  return n;
}

export function parseOffset(text: string, what = '-o'): number {
  const n = parseCInteger(text);
  if (n === undefined) {
    throw new UsageError(
      `${what}: "${text}" is not a sector count; give a whole number of 512-byte sectors (decimal, 0x hex or 0 octal)`,
    );
  }
  return n;
}

export function parseLength(text: string, what = '-l'): number {
  const n = parseCInteger(text);
  if (n === undefined) {
    throw new UsageError(
      `${what}: "${text}" is not a sector count; give a whole number of 512-byte sectors (decimal, 0x hex or 0 octal)`,
    );
  }
  if (n < 1)
    throw new UsageError(`${what}: length 0 exports nothing; give at least 1 sector or leave ${what} out to export to the end`);
  return n;
}

const OPTIONS_WITH_VALUE = new Set(['b', 'm', 'o', 'l']);
const FLAG_OPTIONS = new Set(['d', 's', 'r']);
const VALUE_HINT: Record<string, string> = {
  b: 'the buffer count, e.g. -b 16',
  m: 'a MAC list, e.g. -m 52:54:00:12:34:56',
  o: 'the offset in sectors, e.g. -o 2048',
  l: 'the length in sectors, e.g. -l 8192',
};

/** The options in a message: the short ones, and where the long ones are. */
const OPTION_LIST = 'the vblade options are -b -d -s -r -m -o -l; --help lists them and the long options';

/** "-1" where an operand was expected: which one, and its range. */
function negativeOperand(arg: string, position: number): string {
  if (position === 0) return `shelf ${arg} is out of range; use 0..${MAX_SHELF}`;
  if (position === 1) return `slot ${arg} is out of range; use 0..${MAX_SLOT}`;
  return `"${arg}" is not an option (the vblade options are -b -d -s -r -m -o -l); shelf and slot are 0..${MAX_SHELF} and 0..${MAX_SLOT}`;
}

export function defaultVbladeOptions(): VbladeOptions {
  return {
    bufferCount: DEFAULT_BUFFER_COUNT,
    direct: false,
    sync: false,
    readOnly: false,
    macMask: [],
    offsetSectors: 0,
  };
}

/**
 * Splits a vblade command line into options and operands with getopt
 * semantics: clustered flags (-rs), attached values (-b16) or separate ones
 * (-b 16), operands and options in any order, `--` ends options, a lone `-`
 * is an operand. Repeated -m lists are appended; other repeated options keep
 * the last value, as getopt-driven C code does.
 */
export function parseVbladeOptions(argv: readonly string[]): { options: VbladeOptions; operands: string[] } {
  const options = defaultVbladeOptions();
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (arg.length < 2 || arg[0] !== '-') {
      operands.push(arg);
      continue;
    }
    if (arg[1] === '-') {
      throw new UsageError(`unknown option ${arg.split('=')[0]}; ${OPTION_LIST}`);
    }
    // "-1" is not vblade 25's either (getopt rejects it), but the user meant a number.
    if (/^-\d+$/.test(arg)) throw new UsageError(negativeOperand(arg, operands.length));
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j];
      if (FLAG_OPTIONS.has(c)) {
        if (c === 'd') options.direct = true;
        else if (c === 's') options.sync = true;
        else options.readOnly = true;
        continue;
      }
      if (!OPTIONS_WITH_VALUE.has(c)) {
        throw new UsageError(`unknown option -${c}; ${OPTION_LIST}`);
      }
      let value: string;
      if (j + 1 < arg.length) value = arg.slice(j + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`option -${c} needs a value: ${VALUE_HINT[c]}`);
      const what = `-${c}`;
      if (c === 'b') options.bufferCount = parseBufferCount(value, what);
      else if (c === 'm') parseMacList(value, what, options.macMask);
      else if (c === 'o') options.offsetSectors = parseOffset(value, what);
      else options.lengthSectors = parseLength(value, what);
      break;
    }
  }
  return { options, operands };
}

/** Combines parsed options with the four operands into an ExportConfig. */
export function exportFromParts(options: VbladeOptions, shelf: string, slot: string, netif: string, file: string): ExportConfig {
  if (file === '') throw new UsageError('file is empty; give the path of the backing file or block device');
  if (isRemoteUri(file)) {
    try {
      parseRemoteUri(file);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const e: ExportConfig = {
    shelf: parseShelf(shelf),
    slot: parseSlot(slot),
    file,
    interfaces: [parseInterfaceName(netif)],
    readOnly: options.readOnly,
    direct: options.direct,
    sync: options.sync,
    offsetSectors: options.offsetSectors,
    macMask: options.macMask.slice(),
    broadcastEdits: false,
    bufferCount: options.bufferCount,
    nullStore: false,
  };
  if (options.lengthSectors !== undefined) e.lengthSectors = options.lengthSectors;
  return e;
}

/**
 * The whole vblade command line (without the program name) → one export.
 * Throws UsageError; callers print `vblade: <message>` and VBLADE_USAGE and
 * exit 1, as vblade does.
 */
export function parseVbladeArgs(argv: readonly string[]): ExportConfig {
  const { options, operands } = parseVbladeOptions(argv);
  if (operands.length !== 4) {
    const got = operands.length === 0 ? 'none' : operands.map((o) => `"${o}"`).join(' ');
    throw new UsageError(`expected 4 arguments (shelf slot netif file) after the options, got ${operands.length}: ${got}`);
  }
  return exportFromParts(options, operands[0], operands[1], operands[2], operands[3]);
}
