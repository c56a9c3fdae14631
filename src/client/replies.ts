// Parsers of AoE reply frames. Two kinds:
// - field readers (replyTag, isResponse, …) that read one value straight from
//   the frame bytes without allocating: the load engine's hot path;
// - parse*() functions that return a plain object for one frame: the client's
//   control operations, the CLI and the tests. They throw ReplyFormatError when
//   the frame is too short for what it claims to be.

import { formatMac } from './mac';
import {
  AOE_COMMAND,
  AOE_ERROR,
  AOE_ERROR_NAMES,
  AOE_MAJOR,
  AOE_MINOR,
  AOE_TAG,
  AOE_VERFLAGS,
  ATA_AFLAGS,
  ATA_DATA,
  ATA_ERR,
  ATA_HEADER_LENGTH,
  ATA_LBA,
  ATA_SECTOR_COUNT,
  ATA_STATUS,
  ATA_STATUS_FAILURE_MASK,
  CFG_BUFFER_COUNT,
  CFG_FIRMWARE,
  CFG_HEADER_LENGTH,
  CFG_SECTOR_COUNT,
  CFG_STRING,
  CFG_STRING_LENGTH,
  CFG_VER_CCMD,
  COMMON_HEADER_LENGTH,
  ETHERTYPE_AOE,
  ETH_DST,
  ETH_SRC,
  ETH_TYPE,
  FLAG_ERROR,
  FLAG_RESPONSE,
  MAC_LENGTH,
  MASK_DIRECTIVES,
  MASK_DIRECTIVE_LENGTH,
  MASK_DIR_COMMAND,
  MASK_DIR_COUNT,
  MASK_DIR_MAC,
  MASK_HEADER_LENGTH,
  MASK_MCMD,
  MASK_MERROR,
  RES_HEADER_LENGTH,
  RES_MACS,
  RES_NMACS,
  RES_RCMD,
} from './wire';

export class ReplyFormatError extends Error {
  override name = 'ReplyFormatError';
}

export function readBe16(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}

export function readBe32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

/** The 48-bit little-endian LBA field as a number. */
export function readLba48(buf: Uint8Array, off: number): number {
  const lo = (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
  const hi = buf[off + 4] | (buf[off + 5] << 8);
  return hi * 0x100000000 + lo;
}

// --- field readers (no allocation) ----------------------------------------------

/** EtherType 0x88A2 and long enough for the common header. */
export function isAoeFrame(buf: Uint8Array, off: number, length: number): boolean {
  return length >= COMMON_HEADER_LENGTH && readBe16(buf, off + ETH_TYPE) === ETHERTYPE_AOE;
}

export function isResponse(buf: Uint8Array, off: number): boolean {
  return (buf[off + AOE_VERFLAGS] & FLAG_RESPONSE) !== 0;
}

export function hasError(buf: Uint8Array, off: number): boolean {
  return (buf[off + AOE_VERFLAGS] & FLAG_ERROR) !== 0;
}

export function replyShelf(buf: Uint8Array, off: number): number {
  return readBe16(buf, off + AOE_MAJOR);
}

export function replySlot(buf: Uint8Array, off: number): number {
  return buf[off + AOE_MINOR];
}

export function replyCommand(buf: Uint8Array, off: number): number {
  return buf[off + AOE_COMMAND];
}

export function replyTag(buf: Uint8Array, off: number): number {
  return readBe32(buf, off + AOE_TAG);
}

export function aoeErrorName(code: number): string {
  return AOE_ERROR_NAMES[code] ?? `unknown error ${code}`;
}

// --- whole-frame parsers ----------------------------------------------------------

export interface ReplyHeader {
  dst: string;
  src: string;
  etherType: number;
  /** High nibble of the ver/flags byte (1 for AoE r11; vblade's start-up announcement has 0). */
  version: number;
  /** Low nibble of the ver/flags byte. */
  flags: number;
  response: boolean;
  error: boolean;
  /** The Error byte (meaningful when `error`). */
  errorCode: number;
  shelf: number;
  slot: number;
  command: number;
  tag: number;
  /** Frame length as received. */
  length: number;
}

function need(what: string, length: number, min: number): void {
  if (length < min) throw new ReplyFormatError(`${what} too short: ${length} bytes, need at least ${min}`);
}

export function parseHeader(buf: Uint8Array, off = 0, length = buf.length - off): ReplyHeader {
  need('AoE frame', length, COMMON_HEADER_LENGTH);
  const vf = buf[off + AOE_VERFLAGS];
  return {
    dst: formatMac(buf, off + ETH_DST),
    src: formatMac(buf, off + ETH_SRC),
    etherType: readBe16(buf, off + ETH_TYPE),
    version: vf >>> 4,
    flags: vf & 0x0f,
    response: (vf & FLAG_RESPONSE) !== 0,
    error: (vf & FLAG_ERROR) !== 0,
    errorCode: buf[off + AOE_ERROR],
    shelf: readBe16(buf, off + AOE_MAJOR),
    slot: buf[off + AOE_MINOR],
    command: buf[off + AOE_COMMAND],
    tag: readBe32(buf, off + AOE_TAG),
    length,
  };
}

export interface AtaReply {
  aflags: number;
  /** ATA Error register. */
  err: number;
  /** ATA Sector Count register after the command (0 on full success). */
  sectorCount: number;
  /** ATA Status register. */
  status: number;
  /** The six LBA bytes as a number (targets echo the request's). */
  lba: number;
  /** Bytes after the ATA header (read data, IDENTIFY data, padding). A view into the frame. */
  data: Uint8Array;
  /** Status has one of BSY, DF, DRQ, ERR (what Linux fails a request on). */
  failed: boolean;
}

export function parseAtaReply(buf: Uint8Array, off = 0, length = buf.length - off): AtaReply {
  need('ATA reply', length, ATA_HEADER_LENGTH);
  const status = buf[off + ATA_STATUS];
  return {
    aflags: buf[off + ATA_AFLAGS],
    err: buf[off + ATA_ERR],
    sectorCount: buf[off + ATA_SECTOR_COUNT],
    status,
    lba: readLba48(buf, off + ATA_LBA),
    data: buf.subarray(off + ATA_DATA, off + length),
    failed: (status & ATA_STATUS_FAILURE_MASK) !== 0,
  };
}

export interface ConfigReply {
  bufferCount: number;
  firmware: number;
  /** Maximum sectors per ATA request; 0 means 2 (backward compatibility). */
  sectorCount: number;
  /** AoE protocol version the target supports (high nibble of byte 29). */
  aoeVersion: number;
  /** CCmd echoed (low nibble of byte 29). */
  ccmd: number;
  /** Config String Length field. */
  configLength: number;
  /** The config string bytes present in the frame (at most configLength). A view into the frame. */
  config: Uint8Array;
  /** configLength claims more bytes than the frame carries. */
  truncated: boolean;
}

export function parseConfigReply(buf: Uint8Array, off = 0, length = buf.length - off): ConfigReply {
  need('config reply', length, CFG_HEADER_LENGTH);
  const configLength = readBe16(buf, off + CFG_STRING_LENGTH);
  const present = Math.min(configLength, length - CFG_HEADER_LENGTH);
  return {
    bufferCount: readBe16(buf, off + CFG_BUFFER_COUNT),
    firmware: readBe16(buf, off + CFG_FIRMWARE),
    sectorCount: buf[off + CFG_SECTOR_COUNT],
    aoeVersion: buf[off + CFG_VER_CCMD] >>> 4,
    ccmd: buf[off + CFG_VER_CCMD] & 0x0f,
    configLength,
    config: buf.subarray(off + CFG_STRING, off + CFG_STRING + present),
    truncated: present < configLength,
  };
}

export interface MaskReplyDirective {
  command: number;
  mac: string;
}

export interface MaskReply {
  mcmd: number;
  /** 0 ok, 1 unspecified, 2 bad directive, 3 list full. */
  merror: number;
  /** Dir Count: list length on success, index of the failing directive on error. */
  dirCount: number;
  /** The directives present in the frame (at most dirCount). */
  directives: MaskReplyDirective[];
}

export function parseMaskReply(buf: Uint8Array, off = 0, length = buf.length - off): MaskReply {
  need('mask reply', length, MASK_HEADER_LENGTH);
  const dirCount = buf[off + MASK_DIR_COUNT];
  const present = Math.min(dirCount, Math.floor((length - MASK_HEADER_LENGTH) / MASK_DIRECTIVE_LENGTH));
  const directives: MaskReplyDirective[] = [];
  for (let i = 0; i < present; i++) {
    const p = off + MASK_DIRECTIVES + i * MASK_DIRECTIVE_LENGTH;
    directives.push({ command: buf[p + MASK_DIR_COMMAND], mac: formatMac(buf, p + MASK_DIR_MAC) });
  }
  return { mcmd: buf[off + MASK_MCMD], merror: buf[off + MASK_MERROR], dirCount, directives };
}

export interface ReserveReply {
  rcmd: number;
  /** NMacs field. */
  nmacs: number;
  /** The MACs present in the frame (at most nmacs). */
  macs: string[];
}

export function parseReserveReply(buf: Uint8Array, off = 0, length = buf.length - off): ReserveReply {
  need('reserve reply', length, RES_HEADER_LENGTH);
  const nmacs = buf[off + RES_NMACS];
  const present = Math.min(nmacs, Math.floor((length - RES_HEADER_LENGTH) / MAC_LENGTH));
  const macs: string[] = [];
  for (let i = 0; i < present; i++) macs.push(formatMac(buf, off + RES_MACS + i * MAC_LENGTH));
  return { rcmd: buf[off + RES_RCMD], nmacs, macs };
}

/** True when this is an AoE frame with R set whose EtherType matches (what an initiator accepts at all). */
export function isAoeResponse(buf: Uint8Array, off: number, length: number): boolean {
  return isAoeFrame(buf, off, length) && isResponse(buf, off);
}
