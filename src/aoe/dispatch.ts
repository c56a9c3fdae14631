// One request frame for one export: the whole protocol decision in one pure
// function. Storage work (read, write, flush) is returned to the caller with
// the reply already prepared around it.

import { AtaAction, AtaDecision, decideAta, writeAtaRegisters } from './ata';
import { handleConfig } from './config-query';
import {
  AOE_VERSION, AoeError, ATA_HEADER_LEN, ATA_STATUS_DRDY, Command, HEADER_LEN, OFF_ATA_DATA,
  OFF_CMD, OFF_SRC,
} from './constants';
import { padReply, setAoeError, versionOf, writeReplyHeader } from './header';
import { handleMacMask } from './mac-mask';
import { MacList } from './mac-list';
import { handleReserve } from './reserve';
import type { TargetState } from './target-state';

/** Storage work a request needs before its reply can go (negative, to keep reply lengths positive). */
export const enum Pending {
  Read = -1,
  Write = -2,
  Flush = -3,
}

/** Per-interface context and reusable scratch space for `respond`. */
export class FrameContext {
  readonly ata = new AtaDecision();
  readonly scratch = new MacList();
  constructor(
    /** Our MAC on the interface the frame arrived on. */
    public mac: Uint8Array,
    /** Sectors per frame the interface's MTU carries now. */
    public maxSectors: number,
  ) {}
}

/**
 * Answers the request at rx[r..r+len) for export `st`, writing the reply at
 * tx[t]. The caller has checked that the frame is an AoE request for this
 * export's address and for our MAC (or broadcast), and not from ourselves.
 *
 * Returns the length of a finished, padded reply; 0 for no reply; or a
 * Pending code with `ctx.ata.lba/count` set and the reply prepared: for
 * Read, fill ATA_HEADER_LEN + count × 512 bytes of data; for Write, write the
 * request's data; for Flush, make the store durable; then send (Read) or pad
 * and send (Write, Flush) — or rewrite the registers on failure.
 */
export function respond(
  rx: Uint8Array, r: number, len: number, st: TargetState, ctx: FrameContext, tx: Uint8Array, t: number,
): number {
  if (len < HEADER_LEN) return 0;
  if (st.mask.count > 0 && !st.mask.has(rx, r + OFF_SRC)) return 0;
  writeReplyHeader(tx, t, rx, r, ctx.mac, st.shelf, st.slot);
  if (versionOf(rx, r) !== AOE_VERSION) {
    setAoeError(tx, t, AoeError.UnsupportedVersion);
    return padReply(tx, t, HEADER_LEN);
  }
  let n: number;
  switch (rx[r + OFF_CMD]) {
    case Command.Ata:
      return respondAta(rx, r, len, st, ctx, tx, t);
    case Command.Config:
      n = handleConfig(rx, r, len, st, ctx.maxSectors, tx, t);
      break;
    case Command.MacMask:
      n = handleMacMask(rx, r, len, st, tx, t, ctx.scratch);
      break;
    case Command.Reserve:
      n = handleReserve(rx, r, len, st, tx, t);
      break;
    default:
      setAoeError(tx, t, AoeError.BadCommand);
      n = HEADER_LEN;
  }
  return n === 0 ? 0 : padReply(tx, t, n);
}

function respondAta(
  rx: Uint8Array, r: number, len: number, st: TargetState, ctx: FrameContext, tx: Uint8Array, t: number,
): number {
  const d = ctx.ata;
  switch (decideAta(rx, r, len, st, ctx.maxSectors, d)) {
    case AtaAction.Ignore:
      return 0;
    case AtaAction.AoeError:
      writeAtaRegisters(tx, t, rx, r, rx[r + 27], rx[r + 25], rx[r + 26]);
      setAoeError(tx, t, d.aoeError);
      return padReply(tx, t, ATA_HEADER_LEN);
    case AtaAction.Reply:
      writeAtaRegisters(tx, t, rx, r, d.status, d.error, d.sectors);
      return padReply(tx, t, ATA_HEADER_LEN);
    case AtaAction.Identify:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      tx.set(st.identify, t + OFF_ATA_DATA);
      return ATA_HEADER_LEN + st.identify.length;
    case AtaAction.Read:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      return Pending.Read;
    case AtaAction.Write:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      return Pending.Write;
    case AtaAction.Flush:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      return Pending.Flush;
  }
}
