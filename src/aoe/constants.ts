// Named offsets and codes of AoE r11 frames. Offsets count from the start of
// the Ethernet frame, which is what a packet socket reads and writes.
//
//  0      6      12   14        15     16     18     19   20    24
//  +------+------+----+---------+------+------+------+----+-----+-----
//  | dst  | src  |type|ver|flags| error| major| minor| cmd| tag | arg...
//  +------+------+----+---------+------+------+------+----+-----+-----

export const ETHERTYPE_AOE = 0x88a2;
export const AOE_VERSION = 1;

export const OFF_DST = 0;
export const OFF_SRC = 6;
export const OFF_TYPE = 12;
export const OFF_VERFLAGS = 14;
export const OFF_ERROR = 15;
export const OFF_MAJOR = 16;
export const OFF_MINOR = 18;
export const OFF_CMD = 19;
export const OFF_TAG = 20;
export const OFF_ARG = 24;

/** Ethernet header plus the AoE common header. */
export const HEADER_LEN = 24;
/** Ethernet minimum frame without FCS: every reply is padded with zeros to this. */
export const MIN_FRAME_LEN = 60;

export const FLAG_RESPONSE = 0x08;
export const FLAG_ERROR = 0x04;

export const BROADCAST_SHELF = 0xffff;
export const BROADCAST_SLOT = 0xff;
export const MAX_SHELF = 0xfffe;
export const MAX_SLOT = 0xfe;

export const enum Command {
  Ata = 0,
  Config = 1,
  MacMask = 2,
  Reserve = 3,
}

/** AoE-level error codes (the Error byte with the E flag). */
export const enum AoeError {
  BadCommand = 1,
  BadArgument = 2,
  DeviceUnavailable = 3,
  ConfigStringPresent = 4,
  UnsupportedVersion = 5,
  TargetReserved = 6,
}

// Command 0, Issue ATA Command (AoEr11 §3.1):
//  24      25          26      27          28..33      34..35  36
//  +-------+-----------+-------+-----------+-----------+-------+------
//  |aflags |err/feature|sectors|cmd/status | lba0..lba5| 0     | data
export const OFF_ATA_AFLAGS = 24;
export const OFF_ATA_FEATURE = 25;
export const OFF_ATA_SECTORS = 26;
export const OFF_ATA_CMDSTAT = 27;
export const OFF_ATA_LBA = 28;
export const OFF_ATA_DATA = 36;
export const ATA_HEADER_LEN = 36;

export const AFLAG_EXTENDED = 0x40;
export const AFLAG_DEVICE = 0x10;
export const AFLAG_ASYNC = 0x02;
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
}

export const ATA_STATUS_ERR = 0x01;
export const ATA_STATUS_DRDY = 0x40;
export const ATA_ERROR_ABRT = 0x04;
export const ATA_ERROR_IDNF = 0x10;

// Command 1, Query Config Information (AoEr11 §3.2):
//  24          26          28      29          30          32
//  +-----------+-----------+-------+-----------+-----------+--------
//  |buffer cnt |firmware   |sectors|ver | ccmd |string len | string
export const OFF_CFG_BUFCNT = 24;
export const OFF_CFG_FIRMWARE = 26;
export const OFF_CFG_SECTORS = 28;
export const OFF_CFG_VERCCMD = 29;
export const OFF_CFG_LEN = 30;
export const OFF_CFG_STRING = 32;
export const CFG_HEADER_LEN = 32;
export const MAX_CONFIG_LEN = 1024;

export const enum ConfigCommand {
  Read = 0,
  Test = 1,
  PrefixTest = 2,
  Set = 3,
  ForceSet = 4,
}

/** Firmware Version we report: 0x5000 + our major release. */
export const FIRMWARE_VERSION = 0x5001;

// Command 2, Mac Mask List (AoEr11 §3.3):
//  24    25    26      27         28: directives, 8 bytes each
//  +-----+-----+-------+----------+----------------------------------
//  | 0   |mcmd |merror |dir count | 0 | dcmd | mac (6)  | ...
export const OFF_MASK_RESERVED = 24;
export const OFF_MASK_MCMD = 25;
export const OFF_MASK_MERROR = 26;
export const OFF_MASK_DIRCOUNT = 27;
export const OFF_MASK_DIRS = 28;
export const MASK_HEADER_LEN = 28;
export const DIRECTIVE_LEN = 8;

export const enum MaskCommand {
  Read = 0,
  Edit = 1,
}

export const enum Directive {
  None = 0,
  Add = 1,
  Delete = 2,
}

export const enum MaskError {
  Unspecified = 1,
  BadDirective = 2,
  ListFull = 3,
}

// Command 3, Reserve/Release (AoEr11 §3.4):
//  24     25      26
//  +------+-------+----------------------
//  | rcmd | nmacs | mac (6) × nmacs
export const OFF_RES_RCMD = 24;
export const OFF_RES_NMACS = 25;
export const OFF_RES_MACS = 26;
export const RES_HEADER_LEN = 26;

export const enum ReserveCommand {
  Read = 0,
  Set = 1,
  ForceSet = 2,
}

/**
 * Capacity of the MAC mask and reserve lists. 128 entries keep a full list
 * reply (28 + 8 × 128 = 1052 bytes) inside a 1500-byte MTU.
 */
export const MAC_LIST_CAPACITY = 128;

/** Sectors per frame for an MTU: the same formula as vblade and the Linux initiator. */
export function sectorsForMtu(mtu: number): number {
  const n = Math.floor((mtu - ATA_HEADER_LEN) / SECTOR_SIZE);
  return n < 0 ? 0 : n > 255 ? 255 : n;
}
