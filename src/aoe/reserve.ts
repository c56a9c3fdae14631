// Command 3, Reserve/Release: which initiators may issue ATA commands.
// Release is a set (or force set) with no addresses.

import { AoeError, OFF_RES_MACS, OFF_RES_NMACS, OFF_RES_RCMD, OFF_SRC, RES_HEADER_LEN, ReserveCommand } from './constants';
import { Outcome, type FrameContext } from './frame-context';
import { setAoeError } from './header';
import type { TargetState } from './target-state';

export function writeReserveReply(tx: Uint8Array, t: number, rcmd: number, st: TargetState): number {
  const list = st.reserve;
  tx[t + OFF_RES_RCMD] = rcmd;
  tx[t + OFF_RES_NMACS] = list.count;
  tx.set(list.bytes.subarray(0, list.count * 6), t + OFF_RES_MACS);
  return RES_HEADER_LEN + list.count * 6;
}

/**
 * Handles a Reserve/Release request at rx[r..r+len) whose reply header is at
 * tx[t]. Every reply carries the current list. Returns:
 *  - Reply: a read, or a set / force set that took (release included);
 *  - AoeError: BadArgument (unknown RCmd, more addresses than the frame or
 *    the list holds) or TargetReserved (a set by a non-holder while reserved);
 *  - ShortArgument: shorter than the 26-byte Reserve/Release header.
 * For a reply, `ctx.replyLen` is its unpadded length.
 */
export function handleReserve(
  rx: Uint8Array,
  r: number,
  len: number,
  st: TargetState,
  ctx: FrameContext,
  tx: Uint8Array,
  t: number,
): Outcome {
  if (len < RES_HEADER_LEN) return Outcome.ShortArgument;
  const rcmd = rx[r + OFF_RES_RCMD];
  const outcome = rcmd === ReserveCommand.Read ? Outcome.Reply : applySet(rx, r, len, rcmd, st, tx, t);
  ctx.replyLen = writeReserveReply(tx, t, rcmd, st);
  return outcome;
}

/** A set or force set (or an unknown RCmd): Reply when it took, AoeError with the code set when refused. */
function applySet(rx: Uint8Array, r: number, len: number, rcmd: number, st: TargetState, tx: Uint8Array, t: number): Outcome {
  const n = rx[r + OFF_RES_NMACS];
  if (
    (rcmd !== ReserveCommand.Set && rcmd !== ReserveCommand.ForceSet) ||
    RES_HEADER_LEN + n * 6 > len ||
    n > st.reserve.capacity
  ) {
    setAoeError(tx, t, AoeError.BadArgument);
    return Outcome.AoeError;
  }
  if (rcmd === ReserveCommand.Set && st.reserve.count > 0 && !st.reserve.has(rx, r + OFF_SRC)) {
    setAoeError(tx, t, AoeError.TargetReserved);
    return Outcome.AoeError;
  }
  if (!sameAddresses(st, rx, r + OFF_RES_MACS, n)) {
    st.reserve.replace(rx, r + OFF_RES_MACS, n);
    st.version++;
  }
  return Outcome.Reply;
}

/** Whether the list already holds exactly these n addresses, in this order. */
function sameAddresses(st: TargetState, rx: Uint8Array, off: number, n: number): boolean {
  const list = st.reserve;
  if (list.count !== n) return false;
  for (let i = 0; i < n * 6; i++) if (list.bytes[i] !== rx[off + i]) return false;
  return true;
}
