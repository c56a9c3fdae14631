// Command 0, Issue ATA Command: what a request asks for and the reply
// registers. Storage work is left to the caller; this only decides.

import {
  AoeError,
  AtaOpcode,
  ATA_ERROR_ABRT,
  ATA_ERROR_IDNF,
  ATA_HEADER_LEN,
  ATA_STATUS_DRDY,
  ATA_STATUS_ERR,
  Command,
  MIN_FRAME_LEN,
  OFF_ATA_AFLAGS,
  OFF_ATA_CMDSTAT,
  OFF_ATA_FEATURE,
  OFF_ATA_LBA,
  OFF_ATA_SECTORS,
  OFF_CMD,
  OFF_SRC,
  SECTOR_SIZE,
} from './constants';
import { padReply } from './header';
import type { TargetState } from './target-state';

export const enum AtaAction {
  /** The reply registers are final: send it. */
  Reply = 0,
  /** Read `count` sectors at `lba` into the reply's data area. */
  Read = 1,
  /** Write `count` sectors at `lba` from the request's data area. */
  Write = 2,
  /** Make everything written so far durable, then reply. */
  Flush = 3,
  /** Copy the IDENTIFY page into the reply's data area. */
  Identify = 4,
  /** Reply with an AoE-level error (`aoeError`). */
  AoeError = 5,
  /** Too short to be an ATA request: no reply. */
  Ignore = 6,
}

/** One reusable decision record: no allocation per frame. */
export class AtaDecision {
  lba = 0;
  count = 0;
  status = 0;
  error = 0;
  /** Sector Count register in the reply. */
  sectors = 0;
  aoeError = 0;
}

/** LBA of a request: 48 bits for the EXT opcodes, 28 for the others (lba3's high nibble is the device register). */
export function requestLba(f: Uint8Array, o: number, ext: boolean): number {
  const p = o + OFF_ATA_LBA;
  const low = f[p] | (f[p + 1] << 8) | (f[p + 2] << 16);
  if (!ext) return low + (f[p + 3] & 0x0f) * 0x1000000;
  return low + f[p + 3] * 0x1000000 + f[p + 4] * 0x100000000 + f[p + 5] * 0x10000000000;
}

function reply(d: AtaDecision, status: number, error: number, sectors: number): AtaAction {
  d.status = status;
  d.error = error;
  d.sectors = sectors;
  return AtaAction.Reply;
}

function abort(d: AtaDecision, sectors: number): AtaAction {
  return reply(d, ATA_STATUS_DRDY | ATA_STATUS_ERR, ATA_ERROR_ABRT, sectors);
}

/**
 * Decides what an ATA request at rx[r..r+len) asks of export `st`, given the
 * sectors per frame the interface carries now. Bad arguments become ATA
 * errors (ABRT, IDNF), never AoE errors: the Linux initiator fails a request
 * with an ATA error at once but retransmits one with an AoE error until the
 * device is declared dead (docs/protocol.md).
 */
export function decideAta(
  rx: Uint8Array,
  r: number,
  len: number,
  st: TargetState,
  maxSectors: number,
  d: AtaDecision,
): AtaAction {
  if (len < ATA_HEADER_LEN) return AtaAction.Ignore;
  const op = rx[r + OFF_ATA_CMDSTAT];
  const requested = rx[r + OFF_ATA_SECTORS];
  d.status = ATA_STATUS_DRDY;
  d.error = 0;
  d.sectors = 0;
  if (st.reserve.count > 0 && op !== AtaOpcode.IdentifyDevice && !st.reserve.has(rx, r + OFF_SRC)) {
    d.aoeError = AoeError.TargetReserved;
    return AtaAction.AoeError;
  }
  let write = false;
  let ext = false;
  switch (op) {
    case AtaOpcode.IdentifyDevice:
      return AtaAction.Identify;
    case AtaOpcode.CheckPowerMode:
      return reply(d, ATA_STATUS_DRDY, 0, 0xff); // active or idle
    case AtaOpcode.FlushCache:
    case AtaOpcode.FlushCacheExt:
      return AtaAction.Flush;
    case AtaOpcode.WriteSectorsExt:
      write = true;
      ext = true;
      break;
    case AtaOpcode.WriteSectors:
      write = true;
      break;
    case AtaOpcode.ReadSectorsExt:
      ext = true;
      break;
    case AtaOpcode.ReadSectors:
      break;
    default:
      return abort(d, requested);
  }
  // ATA reads a count of 0 as 256 (65536 for EXT): more than any frame holds.
  const count = requested === 0 ? (ext ? 65536 : 256) : requested;
  if (count > maxSectors) return abort(d, requested);
  const lba = requestLba(rx, r, ext);
  if (lba + count > st.sectors) {
    return reply(d, ATA_STATUS_DRDY | ATA_STATUS_ERR, ATA_ERROR_IDNF, requested);
  }
  d.lba = lba;
  d.count = count;
  if (!write) return AtaAction.Read;
  if (st.readOnly || len - ATA_HEADER_LEN < count * SECTOR_SIZE) return abort(d, requested);
  return AtaAction.Write;
}

/**
 * Writes the ATA part of a reply at tx[t]: the request's flags and LBA
 * registers as received, then status, error and sector count. Reserved bytes
 * are zero.
 */
export function writeAtaRegisters(
  tx: Uint8Array,
  t: number,
  rx: Uint8Array,
  r: number,
  status: number,
  error: number,
  sectors: number,
): void {
  tx[t + OFF_ATA_AFLAGS] = rx[r + OFF_ATA_AFLAGS];
  tx[t + OFF_ATA_FEATURE] = error;
  tx[t + OFF_ATA_SECTORS] = sectors;
  tx[t + OFF_ATA_CMDSTAT] = status;
  for (let i = 0; i < 6; i++) tx[t + OFF_ATA_LBA + i] = rx[r + OFF_ATA_LBA + i];
  tx[t + OFF_ATA_LBA + 6] = 0;
  tx[t + OFF_ATA_LBA + 7] = 0;
}

/** Rewrites status/error/sector count of an ATA reply already at tx[t] (after storage I/O). */
export function setAtaResult(tx: Uint8Array, t: number, status: number, error: number, sectors: number): void {
  tx[t + OFF_ATA_FEATURE] = error;
  tx[t + OFF_ATA_SECTORS] = sectors;
  tx[t + OFF_ATA_CMDSTAT] = status;
}

/** Registers for a storage I/O error: the sectors were not transferred. */
export function setAtaIoError(tx: Uint8Array, t: number, sectors: number): void {
  setAtaResult(tx, t, ATA_STATUS_DRDY | ATA_STATUS_ERR, ATA_ERROR_ABRT, sectors);
}

/**
 * Rewrites a finished ATA reply at tx[t] as ABRT without data, keeping its
 * Sector Count: the answer a read gets when its data no longer fits the
 * MTU. Returns the padded length.
 */
export function abortAtaReply(tx: Uint8Array, t: number): number {
  setAtaIoError(tx, t, tx[t + OFF_ATA_SECTORS]);
  return padReply(tx, t, ATA_HEADER_LEN);
}

/**
 * What to send instead of the finished reply at tx[t..t+len) when it no
 * longer fits the MTU (it shrank under a reply already built): an ATA reply
 * becomes ABRT without data (abortAtaReply), as the request would have been
 * answered a moment later. Returns the new length, or 0 when there is
 * nothing smaller to send and the initiator must retransmit.
 */
export function shrinkOversizedReply(tx: Uint8Array, t: number, len: number): number {
  if (tx[t + OFF_CMD] !== Command.Ata || len <= MIN_FRAME_LEN) return 0;
  return abortAtaReply(tx, t);
}
