// Command 3, Reserve/Release: which initiators may issue ATA commands.
// Release is a set (or force set) with no addresses.

import {
  AoeError, OFF_RES_MACS, OFF_RES_NMACS, OFF_RES_RCMD, OFF_SRC, RES_HEADER_LEN, ReserveCommand,
} from './constants';
import { setAoeError } from './header';
import type { TargetState } from './target-state';

function writeReserveReply(tx: Uint8Array, t: number, rcmd: number, st: TargetState): number {
  const list = st.reserve;
  tx[t + OFF_RES_RCMD] = rcmd;
  tx[t + OFF_RES_NMACS] = list.count;
  tx.set(list.bytes.subarray(0, list.count * 6), t + OFF_RES_MACS);
  return RES_HEADER_LEN + list.count * 6;
}

/**
 * Handles a Reserve/Release request at rx[r..r+len) whose reply header is at
 * tx[t]. Every reply carries the current list. Returns the reply length, or 0
 * for a frame too short to parse.
 */
export function handleReserve(
  rx: Uint8Array, r: number, len: number, st: TargetState, tx: Uint8Array, t: number,
): number {
  if (len < RES_HEADER_LEN) return 0;
  const rcmd = rx[r + OFF_RES_RCMD];
  if (rcmd === ReserveCommand.Read) return writeReserveReply(tx, t, rcmd, st);
  const n = rx[r + OFF_RES_NMACS];
  if (
    (rcmd !== ReserveCommand.Set && rcmd !== ReserveCommand.ForceSet) ||
    RES_HEADER_LEN + n * 6 > len || n > st.reserve.capacity
  ) {
    setAoeError(tx, t, AoeError.BadArgument);
    return writeReserveReply(tx, t, rcmd, st);
  }
  if (rcmd === ReserveCommand.Set && st.reserve.count > 0 && !st.reserve.has(rx, r + OFF_SRC)) {
    setAoeError(tx, t, AoeError.TargetReserved);
    return writeReserveReply(tx, t, rcmd, st);
  }
  if (!sameAddresses(st, rx, r + OFF_RES_MACS, n)) {
    st.reserve.replace(rx, r + OFF_RES_MACS, n);
    st.version++;
  }
  return writeReserveReply(tx, t, rcmd, st);
}

/** Whether the list already holds exactly these n addresses, in this order. */
function sameAddresses(st: TargetState, rx: Uint8Array, off: number, n: number): boolean {
  const list = st.reserve;
  if (list.count !== n) return false;
  for (let i = 0; i < n * 6; i++) if (list.bytes[i] !== rx[off + i]) return false;
  return true;
}
