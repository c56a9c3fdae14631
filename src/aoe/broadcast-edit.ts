// State edits sent to the broadcast shelf or slot. One such frame would reach
// every export on the segment: a Mac Mask edit could lock every initiator out
// of every export, and a Reserve force set could take them all, and both are
// saved. So unless the export allows it (config key broadcast-edits), an edit
// must name the export exactly; reads to broadcast stay allowed.
// docs/protocol.md and docs/reliability.md (trust model) say why.

import {
  AoeError,
  BROADCAST_SHELF,
  BROADCAST_SLOT,
  Command,
  MASK_HEADER_LEN,
  MaskCommand,
  OFF_CMD,
  OFF_MASK_MCMD,
  OFF_RES_RCMD,
  RES_HEADER_LEN,
  ReserveCommand,
} from './constants';
import { type FrameContext, Outcome } from './frame-context';
import { majorOf, minorOf, setAoeError } from './header';
import { writeMaskReply } from './mac-mask';
import { writeReserveReply } from './reserve';
import type { TargetState } from './target-state';

/**
 * Whether the request at rx[r..r+len) is a Mac Mask edit or a Reserve set /
 * force set (anything but a read) addressed to the broadcast shelf or slot,
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
    default:
      return false;
  }
}

/**
 * Writes the refusal of such an edit at tx[t]: E with error 2 (Bad argument),
 * and the reply argument the command's own Bad argument replies carry (a Mac
 * Mask header without a list; the current reserve list). Sets the unpadded
 * `ctx.replyLen` and returns AoeError.
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
  ctx.replyLen =
    rx[r + OFF_CMD] === Command.MacMask
      ? writeMaskReply(tx, t, rx[r + OFF_MASK_MCMD], 0, null, 0)
      : writeReserveReply(tx, t, rx[r + OFF_RES_RCMD], st);
  return Outcome.AoeError;
}
