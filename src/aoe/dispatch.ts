// One request frame for one export: the whole protocol decision in one pure
// function. Storage work (read, write, flush) is returned to the caller with
// the reply already prepared around it.

import { AtaAction, decideAta, writeAtaRegisters } from './ata';
import { isRefusedBroadcastEdit, refuseBroadcastEdit } from './broadcast-edit';
import { handleConfig } from './config-query';
import {
  AOE_VERSION,
  AoeError,
  ATA_HEADER_LEN,
  ATA_STATUS_DRDY,
  ATA_STATUS_ERR,
  Command,
  HEADER_LEN,
  OFF_ATA_CMDSTAT,
  OFF_ATA_DATA,
  OFF_ATA_FEATURE,
  OFF_ATA_SECTORS,
  OFF_CMD,
  OFF_SRC,
} from './constants';
import { type FrameContext, isReply, Outcome } from './frame-context';
import { padReply, setAoeError, versionOf, writeReplyHeader } from './header';
import { handleMacMask } from './mac-mask';
import { handleReserve } from './reserve';
import type { TargetState } from './target-state';

/**
 * Answers the request at rx[r..r+len) for export `st`, writing the reply at
 * tx[t]. The caller has checked that the frame is an AoE request for this
 * export's address and for our MAC (or broadcast), and not from ourselves.
 *
 * Returns what became of the frame:
 *  - Reply, AoeError, AtaReply, AtaAoeError, AtaError: a finished, padded
 *    reply of `ctx.replyLen` bytes; Reply and AoeError answer a request
 *    other than ATA, the others an ATA request. AoeError for an unsupported
 *    version (5), an unknown command (1), a Mac Mask edit or Reserve set
 *    sent to the broadcast shelf or slot of an export that does not take
 *    broadcast edits (2, broadcast-edit.ts), and the Config, Mac Mask and
 *    Reserve refusals their handlers list; AtaAoeError for an ATA request
 *    with an unsupported version (5) or while reserved by others (6);
 *    AtaError for an ATA request refused in its registers (ABRT: unknown
 *    opcode, too many sectors, read-only, short data; IDNF: beyond the end);
 *  - Read, Write, Flush: storage work, with `ctx.ata.lba/count` set and the
 *    reply prepared. For Read, fill ATA_HEADER_LEN + count × 512 bytes of
 *    data; for Write, write the request's data; for Flush, make the store
 *    durable; then send (Read) or pad and send (Write, Flush) — or rewrite
 *    the registers on failure;
 *  - ShortFrame: shorter than the common header; Masked: the source is not
 *    in the export's MAC mask (checked before anything else is looked at);
 *    ShortArgument: shorter than the command's fixed part; ConfigMismatch:
 *    a Query Config test that does not match. None of these is answered.
 */
export function respond(
  rx: Uint8Array,
  r: number,
  len: number,
  st: TargetState,
  ctx: FrameContext,
  tx: Uint8Array,
  t: number,
): Outcome {
  if (len < HEADER_LEN) return Outcome.ShortFrame;
  if (st.mask.count > 0 && !st.mask.has(rx, r + OFF_SRC)) return Outcome.Masked;
  writeReplyHeader(tx, t, rx, r, ctx.mac, st.shelf, st.slot);
  const cmd = rx[r + OFF_CMD];
  if (versionOf(rx, r) !== AOE_VERSION) {
    setAoeError(tx, t, AoeError.UnsupportedVersion);
    return finish(tx, t, ctx, HEADER_LEN, cmd === Command.Ata ? Outcome.AtaAoeError : Outcome.AoeError);
  }
  let outcome: Outcome;
  if (cmd === Command.Ata) return respondAta(rx, r, len, st, ctx, tx, t);
  if (isRefusedBroadcastEdit(rx, r, len, st)) outcome = refuseBroadcastEdit(rx, r, st, ctx, tx, t);
  else if (cmd === Command.Config) outcome = handleConfig(rx, r, len, st, ctx, tx, t);
  else if (cmd === Command.MacMask) outcome = handleMacMask(rx, r, len, st, ctx, tx, t);
  else if (cmd === Command.Reserve) outcome = handleReserve(rx, r, len, st, ctx, tx, t);
  else {
    setAoeError(tx, t, AoeError.BadCommand);
    return finish(tx, t, ctx, HEADER_LEN, Outcome.AoeError);
  }
  // The handlers leave an unpadded length; padding is done once, here.
  if (isReply(outcome)) ctx.replyLen = padReply(tx, t, ctx.replyLen);
  return outcome;
}

/** Pads a reply of `len` bytes, records its length in `ctx` and passes `outcome` on. */
function finish(tx: Uint8Array, t: number, ctx: FrameContext, len: number, outcome: Outcome): Outcome {
  ctx.replyLen = padReply(tx, t, len);
  return outcome;
}

function respondAta(
  rx: Uint8Array,
  r: number,
  len: number,
  st: TargetState,
  ctx: FrameContext,
  tx: Uint8Array,
  t: number,
): Outcome {
  const d = ctx.ata;
  switch (decideAta(rx, r, len, st, ctx.maxSectors, d)) {
    case AtaAction.Ignore:
      return Outcome.ShortArgument;
    case AtaAction.AoeError:
      // The registers go back as they came: nothing was executed.
      writeAtaRegisters(tx, t, rx, r, rx[r + OFF_ATA_CMDSTAT], rx[r + OFF_ATA_FEATURE], rx[r + OFF_ATA_SECTORS]);
      setAoeError(tx, t, d.aoeError);
      return finish(tx, t, ctx, ATA_HEADER_LEN, Outcome.AtaAoeError);
    case AtaAction.Reply:
      writeAtaRegisters(tx, t, rx, r, d.status, d.error, d.sectors);
      return finish(tx, t, ctx, ATA_HEADER_LEN, d.status & ATA_STATUS_ERR ? Outcome.AtaError : Outcome.AtaReply);
    case AtaAction.Identify:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      tx.set(st.identify, t + OFF_ATA_DATA);
      ctx.replyLen = ATA_HEADER_LEN + st.identify.length;
      return Outcome.AtaReply;
    case AtaAction.Read:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      return Outcome.Read;
    case AtaAction.Write:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      return Outcome.Write;
    case AtaAction.Flush:
      writeAtaRegisters(tx, t, rx, r, ATA_STATUS_DRDY, 0, 0);
      return Outcome.Flush;
  }
}
