// Byte offsets and constants of AoE r11 frames as the initiator sees them.
// Offsets count from the first byte of the Ethernet header (what a packet
// socket reads and writes; no FCS). Kept separate from src/aoe on purpose:
// the client is an independent implementation of the wire format, so a test
// that drives the target through it checks the target's codec against a
// second reading of the protocol rather than against itself.

export const ETHERTYPE_AOE = 0x88a2;

/** Ethernet header. */
export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;
export const MAC_LENGTH = 6;

/** AoE common header (10 bytes after the Ethernet header). */
export const AOE_VERFLAGS = 14;
export const AOE_ERROR = 15;
export const AOE_MAJOR = 16;
export const AOE_MINOR = 18;
export const AOE_COMMAND = 19;
export const AOE_TAG = 20;
/** Length of Ethernet header + AoE common header. */
export const COMMON_HEADER_LENGTH = 24;

/** Version 1 in the high nibble of the ver/flags byte. */
export const AOE_VERSION = 1;
export const FLAG_RESPONSE = 0x08;
export const FLAG_ERROR = 0x04;

export const SHELF_BROADCAST = 0xffff;
export const SLOT_BROADCAST = 0xff;

/** Shortest Ethernet frame without FCS; real NICs pad to this, veth does not. */
export const MIN_FRAME_LENGTH = 60;

export const enum Command {
  Ata = 0,
  QueryConfig = 1,
  MacMask = 2,
  ReserveRelease = 3,
}

/** AoE-level error codes (the Error byte, valid with FLAG_ERROR) and what they mean. */
export const AOE_ERROR_NAMES: Readonly<Record<number, string>> = {
  1: 'unrecognized command code',
  2: 'bad argument parameter',
  3: 'device unavailable',
  4: 'config string present',
  5: 'unsupported version',
  6: 'target is reserved',
};

// --- Command 0: Issue ATA Command -------------------------------------------

export const ATA_AFLAGS = 24;
/** Features register in a request, Error register in a reply. */
export const ATA_FEATURE = 25;
export const ATA_ERR = 25;
export const ATA_SECTOR_COUNT = 26;
/** Command opcode in a request, Status register in a reply. */
export const ATA_CMD = 27;
export const ATA_STATUS = 27;
/** lba0 … lba5, little-endian. lba3 doubles as the Device register for 28-bit commands. */
export const ATA_LBA = 28;
export const ATA_RESERVED = 34;
export const ATA_DATA = 36;
export const ATA_HEADER_LENGTH = 36;

export const AFLAG_EXTENDED = 0x40;
export const AFLAG_WRITE = 0x01;

export const SECTOR_SIZE = 512;

export const enum AtaOpcode {
  ReadSectors = 0x20,
  ReadSectorsExt = 0x24,
  WriteSectors = 0x30,
  WriteSectorsExt = 0x34,
  CheckPowerMode = 0xe5,
  FlushCache = 0xe7,
  FlushCacheExt = 0xea,
  IdentifyDevice = 0xec,
  SetFeatures = 0xef,
}

/** ATA Status register bits. */
export const ATA_STATUS_ERR = 0x01;
/** The bits the Linux initiator treats as failure (BSY|DF|DRQ|ERR). */
export const ATA_STATUS_FAILURE_MASK = 0xa9;

/** ATA Error register bits. */
export const ATA_ERROR_ABRT = 0x04;
export const ATA_ERROR_IDNF = 0x10;

/** Device register value Linux and vblade use for LBA addressing (LBA bit + obsolete bits). */
export const ATA_DEVICE_LBA = 0xe0;
/** Device register value of Linux's IDENTIFY request. */
export const ATA_DEVICE_IDENTIFY = 0xa0;

// --- Command 1: Query Config Information ------------------------------------

export const CFG_BUFFER_COUNT = 24;
export const CFG_FIRMWARE = 26;
export const CFG_SECTOR_COUNT = 28;
/** AoE version (high nibble) and CCmd (low nibble). */
export const CFG_VER_CCMD = 29;
export const CFG_STRING_LENGTH = 30;
export const CFG_STRING = 32;
export const CFG_HEADER_LENGTH = 32;

export const enum ConfigCommand {
  Read = 0,
  Test = 1,
  PrefixTest = 2,
  Set = 3,
  ForceSet = 4,
}

// --- Command 2: Mac Mask List -----------------------------------------------

export const MASK_RESERVED = 24;
export const MASK_MCMD = 25;
export const MASK_MERROR = 26;
export const MASK_DIR_COUNT = 27;
export const MASK_DIRECTIVES = 28;
export const MASK_HEADER_LENGTH = 28;
export const MASK_DIRECTIVE_LENGTH = 8;
/** Within one directive: reserved byte, DCmd, then the MAC. */
export const MASK_DIR_COMMAND = 1;
export const MASK_DIR_MAC = 2;

export const enum MaskCommand {
  Read = 0,
  Edit = 1,
}

export const enum MaskDirective {
  None = 0,
  Add = 1,
  Delete = 2,
}

export const MASK_ERROR_NAMES: Readonly<Record<number, string>> = {
  0: 'ok',
  1: 'unspecified error',
  2: 'bad directive',
  3: 'mask list full',
};

// --- Command 3: Reserve / Release -------------------------------------------

export const RES_RCMD = 24;
export const RES_NMACS = 25;
export const RES_MACS = 26;
export const RES_HEADER_LENGTH = 26;

export const enum ReserveCommand {
  Read = 0,
  Set = 1,
  ForceSet = 2,
}

/** Largest number of sectors that fit a frame of this MTU (the formula Linux and vblade use). */
export function maxSectorsForMtu(mtu: number): number {
  return Math.max(0, Math.floor((mtu - ATA_HEADER_LENGTH) / SECTOR_SIZE));
}
