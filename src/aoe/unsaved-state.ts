// The reply to a Query Config, Mac Mask or Reserve/Release request whose
// state could not be made durable. The daemon prepared the reply when it
// applied the change, held it while the state was being saved, and the save
// failed: the state went back to what is on disk, so the reply says "device
// unavailable" (AoE error 3) and carries the arguments of that state, as if
// the request had been refused (docs/protocol.md).

import { AoeError, Command, OFF_CFG_VERCCMD, OFF_CMD, OFF_MASK_MCMD, OFF_RES_RCMD } from './constants';
import { writeConfigReply } from './config-query';
import { padReply, setAoeError } from './header';
import { writeMaskReply } from './mac-mask';
import { writeReserveReply } from './reserve';
import type { TargetState } from './target-state';

/**
 * Rewrites the prepared reply at tx[t] (its header and command byte as
 * respond() wrote them) as AoE error 3 whose arguments describe `st`, the
 * state now in force; returns the padded length. A reply of another command
 * keeps its arguments and only gets the error.
 */
export function rewriteAsUnsaved(tx: Uint8Array, t: number, len: number, st: TargetState, maxSectors: number): number {
  let n = len;
  switch (tx[t + OFF_CMD]) {
    case Command.Config:
      n = writeConfigReply(tx, t, st, maxSectors, tx[t + OFF_CFG_VERCCMD] & 0x0f);
      break;
    case Command.MacMask:
      n = writeMaskReply(tx, t, tx[t + OFF_MASK_MCMD], 0, st.mask, st.mask.count);
      break;
    case Command.Reserve:
      n = writeReserveReply(tx, t, tx[t + OFF_RES_RCMD], st);
      break;
  }
  setAoeError(tx, t, AoeError.DeviceUnavailable);
  return padReply(tx, t, n);
}
