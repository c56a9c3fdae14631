// State edits sent to the broadcast shelf or slot. One such frame would reach
// every export on the segment: a Mac Mask edit could lock every initiator out
// of every export, a Reserve force set could take them all, and a Query Config
// force set could rewrite every export's string (which sites use as a claim of
// ownership), and all are saved. So unless the export allows it (config key
// broadcast-edits), an edit must name the export exactly; reads (and config
// tests, which find exports) to broadcast stay allowed.
// docs/protocol.md and docs/reliability.md (trust model) say why.

import {
  AoeError,
  BROADCAST_SHELF,
  BROADCAST_SLOT,
  CFG_HEADER_LEN,
  Command,
  ConfigCommand,
  MASK_HEADER_LEN,
  MaskCommand,
  OFF_CFG_VERCCMD,
  OFF_CMD,
  OFF_MASK_MCMD,
  OFF_RES_RCMD,
  RES_HEADER_LEN,
  ReserveCommand,
} from './constants';
import { writeConfigReply } from './config-query';
import { type FrameContext, Outcome } from './frame-context';
import { majorOf, minorOf, setAoeError } from './header';
import { writeMaskReply } from './mac-mask';
import { writeReserveReply } from './reserve';
import type { TargetState } from './target-state';

/**
 * Whether the request at rx[r..r+len) is a Mac Mask edit, a Reserve set /
 * force set (anything but a read) or a Query Config set / force set
 * addressed to the broadcast shelf or slot,
 * for an export that does not take broadcast edits. Frames shorter than the
 * command's fixed part are left to the handler, which ignores them.
 */
export function isRefusedBroadcastEdit(rx: Uint8Array, r: number, len: number, st: TargetState): boolean {
  if (st.broadcastEdits) return false;
  if (majorOf(rx, r) !== BROADCAST_SHELF && minorOf(rx, r) !== BROADCAST_SLOT) return false;
  switch (rx[r + OFF_CMD]) {
    case Command.MacMask:
      return len >= MASK_HEADER_LEN && rx[r + OFF_MASK_MCMD] !== MaskCommand.Read;
    case Command.Reserve:
      return len >= RES_HEADER_LEN && rx[r + OFF_RES_RCMD] !== ReserveCommand.Read;
    case Command.Config: {
      const ccmd = rx[r + OFF_CFG_VERCCMD] & 0x0f;
      return len >= CFG_HEADER_LEN && (ccmd === ConfigCommand.Set || ccmd === ConfigCommand.ForceSet);
    }
    default:
      return false;
  }
}

/**
 * Writes the refusal of such an edit at tx[t]: E with error 2 (Bad argument),
 * and the reply argument the command's own Bad argument replies carry (a Mac
 * Mask header without a list; the current reserve list; the current config
 * string). Sets the unpadded `ctx.replyLen` and returns AoeError.
 */
export function refuseBroadcastEdit(
  rx: Uint8Array,
  r: number,
  st: TargetState,
  ctx: FrameContext,
  tx: Uint8Array,
  t: number,
): Outcome {
  setAoeError(tx, t, AoeError.BadArgument);
  switch (rx[r + OFF_CMD]) {
    case Command.MacMask:
      ctx.replyLen = writeMaskReply(tx, t, rx[r + OFF_MASK_MCMD], 0, null, 0);
      break;
    case Command.Config:
      ctx.replyLen = writeConfigReply(tx, t, st, ctx.maxSectors, rx[r + OFF_CFG_VERCCMD] & 0x0f);
      break;
    default:
      ctx.replyLen = writeReserveReply(tx, t, rx[r + OFF_RES_RCMD], st);
  }
  return Outcome.AoeError;
}
