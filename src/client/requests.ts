// Builders of AoE request frames. Each writes one frame in place into `buf`
// starting at `off` (the first byte of the Ethernet header) and returns the
// frame's length. Nothing is allocated, so the load engine can use them on its
// hot path; frames are not padded to 60 bytes unless padFrame() is called
// (the Linux initiator and iPXE send short frames too, and a target must
// accept them).

import {
  AFLAG_EXTENDED,
  AFLAG_WRITE,
  AOE_VERSION,
  AOE_COMMAND,
  AOE_ERROR,
  AOE_MAJOR,
  AOE_MINOR,
  AOE_TAG,
  AOE_VERFLAGS,
  ATA_AFLAGS,
  ATA_CMD,
  ATA_DATA,
  ATA_DEVICE_IDENTIFY,
  ATA_DEVICE_LBA,
  ATA_FEATURE,
  ATA_HEADER_LENGTH,
  ATA_LBA,
  ATA_RESERVED,
  ATA_SECTOR_COUNT,
  AtaOpcode,
  CFG_BUFFER_COUNT,
  CFG_HEADER_LENGTH,
  CFG_STRING,
  CFG_STRING_LENGTH,
  CFG_VER_CCMD,
  Command,
  ConfigCommand,
  ETHERTYPE_AOE,
  ETH_DST,
  ETH_SRC,
  ETH_TYPE,
  MAC_LENGTH,
  MASK_DIRECTIVES,
  MASK_DIRECTIVE_LENGTH,
  MASK_DIR_COMMAND,
  MASK_DIR_COUNT,
  MASK_DIR_MAC,
  MASK_MCMD,
  MASK_MERROR,
  MASK_RESERVED,
  MIN_FRAME_LENGTH,
  MaskCommand,
  MaskDirective,
  RES_MACS,
  RES_NMACS,
  RES_RCMD,
  ReserveCommand,
  SECTOR_SIZE,
} from './wire';

/** Who a frame goes to and comes from. */
export interface FrameAddress {
  /** Destination MAC (the target's, or broadcast). */
  dst: Uint8Array;
  /** Our own MAC. */
  src: Uint8Array;
  /** Shelf (major), 0..0xffff; 0xffff = every shelf. */
  shelf: number;
  /** Slot (minor), 0..0xff; 0xff = every slot. */
  slot: number;
}

export function writeBe16(buf: Uint8Array, off: number, value: number): void {
  buf[off] = (value >>> 8) & 0xff;
  buf[off + 1] = value & 0xff;
}

export function writeBe32(buf: Uint8Array, off: number, value: number): void {
  buf[off] = (value >>> 24) & 0xff;
  buf[off + 1] = (value >>> 16) & 0xff;
  buf[off + 2] = (value >>> 8) & 0xff;
  buf[off + 3] = value & 0xff;
}

/** Writes a 48-bit little-endian number (the LBA field). */
export function writeLba48(buf: Uint8Array, off: number, lba: number): void {
  const lo = lba >>> 0;
  const hi = Math.floor(lba / 0x100000000) & 0xffff;
  buf[off] = lo & 0xff;
  buf[off + 1] = (lo >>> 8) & 0xff;
  buf[off + 2] = (lo >>> 16) & 0xff;
  buf[off + 3] = (lo >>> 24) & 0xff;
  buf[off + 4] = hi & 0xff;
  buf[off + 5] = (hi >>> 8) & 0xff;
}

/**
 * The 48-bit LBA field value of a 28-bit command: LBA bits 0..27 in lba0..lba3
 * (low nibble) and the Device register in lba3's high nibble.
 */
export function lba28Field(lba: number, device = ATA_DEVICE_LBA): number {
  return (device & 0xf0) * 0x1000000 + (lba & 0x0fffffff);
}

/**
 * Ethernet header + AoE common header. `flags` is the low nibble of the
 * ver/flags byte (0 for requests; tests may set R or E to build hostile frames),
 * `version` its high nibble.
 */
export function writeHeader(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  command: number,
  tag: number,
  flags = 0,
  version = AOE_VERSION,
): void {
  buf.set(addr.dst.subarray(0, MAC_LENGTH), off + ETH_DST);
  buf.set(addr.src.subarray(0, MAC_LENGTH), off + ETH_SRC);
  writeBe16(buf, off + ETH_TYPE, ETHERTYPE_AOE);
  buf[off + AOE_VERFLAGS] = ((version & 0x0f) << 4) | (flags & 0x0f);
  buf[off + AOE_ERROR] = 0;
  writeBe16(buf, off + AOE_MAJOR, addr.shelf);
  buf[off + AOE_MINOR] = addr.slot & 0xff;
  buf[off + AOE_COMMAND] = command & 0xff;
  writeBe32(buf, off + AOE_TAG, tag);
}

/** Zero-fills a frame up to `min` bytes (60 by default); returns the padded length. */
export function padFrame(buf: Uint8Array, off: number, length: number, min = MIN_FRAME_LENGTH): number {
  if (length >= min) return length;
  buf.fill(0, off + length, off + min);
  return min;
}

// --- ATA ---------------------------------------------------------------------

/**
 * Any ATA command with any aflags. `lbaField` is written raw as the six LBA
 * bytes (use lba28Field() for 28-bit commands). `payloadLength` bytes after
 * the ATA header belong to the frame; the caller fills them (or they are
 * copied from `payload` when given). Reserved bytes are zero.
 */
export function writeAtaRequest(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  tag: number,
  aflags: number,
  feature: number,
  sectorCount: number,
  opcode: number,
  lbaField: number,
  payloadLength = 0,
  payload?: Uint8Array,
): number {
  writeHeader(buf, off, addr, Command.Ata, tag);
  buf[off + ATA_AFLAGS] = aflags & 0xff;
  buf[off + ATA_FEATURE] = feature & 0xff;
  buf[off + ATA_SECTOR_COUNT] = sectorCount & 0xff;
  buf[off + ATA_CMD] = opcode & 0xff;
  writeLba48(buf, off + ATA_LBA, lbaField);
  buf[off + ATA_RESERVED] = 0;
  buf[off + ATA_RESERVED + 1] = 0;
  if (payload !== undefined) buf.set(payload.subarray(0, payloadLength), off + ATA_DATA);
  return ATA_HEADER_LENGTH + payloadLength;
}

/** IDENTIFY DEVICE as Linux sends it: aflags 0, one sector, Device register 0xA0. */
export function writeIdentify(buf: Uint8Array, off: number, addr: FrameAddress, tag: number): number {
  return writeAtaRequest(buf, off, addr, tag, 0, 0, 1, AtaOpcode.IdentifyDevice, ATA_DEVICE_IDENTIFY * 0x1000000);
}

/** READ SECTORS EXT (48-bit). */
export function writeReadExt(buf: Uint8Array, off: number, addr: FrameAddress, tag: number, lba: number, count: number): number {
  return writeAtaRequest(buf, off, addr, tag, AFLAG_EXTENDED, 0, count, AtaOpcode.ReadSectorsExt, lba);
}

/**
 * WRITE SECTORS EXT (48-bit) with `count` sectors of payload: copied from
 * `data` when given, otherwise left for the caller to fill at off + 36.
 */
export function writeWriteExt(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  tag: number,
  lba: number,
  count: number,
  data?: Uint8Array,
): number {
  return writeAtaRequest(
    buf,
    off,
    addr,
    tag,
    AFLAG_EXTENDED | AFLAG_WRITE,
    0,
    count,
    AtaOpcode.WriteSectorsExt,
    lba,
    count * SECTOR_SIZE,
    data,
  );
}

/** READ SECTORS (28-bit; Device register 0xE0 | LBA bits 24..27). */
export function writeRead28(buf: Uint8Array, off: number, addr: FrameAddress, tag: number, lba: number, count: number): number {
  return writeAtaRequest(buf, off, addr, tag, 0, 0, count, AtaOpcode.ReadSectors, lba28Field(lba));
}

/** WRITE SECTORS (28-bit), payload as in writeWriteExt. */
export function writeWrite28(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  tag: number,
  lba: number,
  count: number,
  data?: Uint8Array,
): number {
  return writeAtaRequest(
    buf,
    off,
    addr,
    tag,
    AFLAG_WRITE,
    0,
    count,
    AtaOpcode.WriteSectors,
    lba28Field(lba),
    count * SECTOR_SIZE,
    data,
  );
}

/** FLUSH CACHE (0xE7), or FLUSH CACHE EXT (0xEA, with the E flag) when `extended`. */
export function writeFlush(buf: Uint8Array, off: number, addr: FrameAddress, tag: number, extended = false): number {
  return extended
    ? writeAtaRequest(buf, off, addr, tag, AFLAG_EXTENDED, 0, 0, AtaOpcode.FlushCacheExt, 0)
    : writeAtaRequest(buf, off, addr, tag, 0, 0, 0, AtaOpcode.FlushCache, lba28Field(0));
}

// --- Query Config -------------------------------------------------------------

/**
 * Query Config with sub-command `ccmd` and argument string `config`. Buffer
 * Count, Firmware Version, Sector Count and the AoE nibble are zero, as the
 * spec asks of clients. `declaredLength` overrides the Config String Length
 * field (to build frames that claim more than they carry).
 */
export function writeConfigQuery(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  tag: number,
  ccmd: ConfigCommand | number = ConfigCommand.Read,
  config: Uint8Array = new Uint8Array(0),
  declaredLength = config.length,
): number {
  writeHeader(buf, off, addr, Command.QueryConfig, tag);
  buf.fill(0, off + CFG_BUFFER_COUNT, off + CFG_VER_CCMD);
  buf[off + CFG_VER_CCMD] = ccmd & 0x0f;
  writeBe16(buf, off + CFG_STRING_LENGTH, declaredLength);
  buf.set(config, off + CFG_STRING);
  return CFG_HEADER_LENGTH + config.length;
}

// --- Mac Mask List --------------------------------------------------------------

export interface MaskDirectiveEntry {
  /** DCmd: 0 none, 1 add, 2 delete (any byte for hostile frames). */
  command: MaskDirective | number;
  mac: Uint8Array;
}

/**
 * Mac Mask List request: MCmd `mcmd` with `directives` (Dir Count = their
 * number unless `dirCount` says otherwise).
 */
export function writeMaskRequest(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  tag: number,
  mcmd: MaskCommand | number,
  directives: readonly MaskDirectiveEntry[] = [],
  dirCount = directives.length,
): number {
  writeHeader(buf, off, addr, Command.MacMask, tag);
  buf[off + MASK_RESERVED] = 0;
  buf[off + MASK_MCMD] = mcmd & 0xff;
  buf[off + MASK_MERROR] = 0;
  buf[off + MASK_DIR_COUNT] = dirCount & 0xff;
  let p = off + MASK_DIRECTIVES;
  for (const d of directives) {
    buf[p] = 0;
    buf[p + MASK_DIR_COMMAND] = d.command & 0xff;
    buf.set(d.mac.subarray(0, MAC_LENGTH), p + MASK_DIR_MAC);
    p += MASK_DIRECTIVE_LENGTH;
  }
  return p - off;
}

export function writeMaskRead(buf: Uint8Array, off: number, addr: FrameAddress, tag: number): number {
  return writeMaskRequest(buf, off, addr, tag, MaskCommand.Read);
}

export function writeMaskEdit(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  tag: number,
  directives: readonly MaskDirectiveEntry[],
): number {
  return writeMaskRequest(buf, off, addr, tag, MaskCommand.Edit, directives);
}

// --- Reserve / Release ----------------------------------------------------------

/**
 * Reserve/Release with RCmd `rcmd` and the list `macs` (NMacs = their number
 * unless `nmacs` says otherwise). Release is Set or ForceSet with no MACs.
 */
export function writeReserve(
  buf: Uint8Array,
  off: number,
  addr: FrameAddress,
  tag: number,
  rcmd: ReserveCommand | number,
  macs: readonly Uint8Array[] = [],
  nmacs = macs.length,
): number {
  writeHeader(buf, off, addr, Command.ReserveRelease, tag);
  buf[off + RES_RCMD] = rcmd & 0xff;
  buf[off + RES_NMACS] = nmacs & 0xff;
  let p = off + RES_MACS;
  for (const mac of macs) {
    buf.set(mac.subarray(0, MAC_LENGTH), p);
    p += MAC_LENGTH;
  }
  return p - off;
}
