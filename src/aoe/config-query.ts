// Command 1, Query Config Information: read, test, prefix test, set and force
// set of the export's config string, and the unsolicited announcement.

import {
  AOE_VERSION,
  AoeError,
  CFG_HEADER_LEN,
  Command,
  ConfigCommand,
  ETHERTYPE_AOE,
  FIRMWARE_VERSION,
  FLAG_RESPONSE,
  MAX_CONFIG_LEN,
  OFF_CFG_BUFCNT,
  OFF_CFG_FIRMWARE,
  OFF_CFG_LEN,
  OFF_CFG_SECTORS,
  OFF_CFG_STRING,
  OFF_CFG_VERCCMD,
  OFF_CMD,
  OFF_DST,
  OFF_ERROR,
  OFF_MAJOR,
  OFF_MINOR,
  OFF_SRC,
  OFF_TAG,
  OFF_TYPE,
  OFF_VERFLAGS,
} from './constants';
import { Outcome, type FrameContext } from './frame-context';
import { setAoeError } from './header';
import type { TargetState } from './target-state';

/** Writes the config reply arguments and the current string; returns the reply length (unpadded). */
export function writeConfigReply(tx: Uint8Array, t: number, st: TargetState, maxSectors: number, ccmd: number): number {
  tx[t + OFF_CFG_BUFCNT] = st.bufferCount >> 8;
  tx[t + OFF_CFG_BUFCNT + 1] = st.bufferCount & 0xff;
  tx[t + OFF_CFG_FIRMWARE] = FIRMWARE_VERSION >> 8;
  tx[t + OFF_CFG_FIRMWARE + 1] = FIRMWARE_VERSION & 0xff;
  tx[t + OFF_CFG_SECTORS] = maxSectors;
  tx[t + OFF_CFG_VERCCMD] = (AOE_VERSION << 4) | (ccmd & 0x0f);
  tx[t + OFF_CFG_LEN] = st.configLen >> 8;
  tx[t + OFF_CFG_LEN + 1] = st.configLen & 0xff;
  tx.set(st.config.subarray(0, st.configLen), t + OFF_CFG_STRING);
  return CFG_HEADER_LEN + st.configLen;
}

function sameBytes(a: Uint8Array, ao: number, b: Uint8Array, bo: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/**
 * Handles a Query Config request at rx[r..r+len) whose reply header is
 * already at tx[t]. A string length that exceeds 1024 or the bytes present is
 * refused with BadArgument rather than filled from stale memory. Returns:
 *  - Reply: read, a matching test or prefix test, a set or force set that
 *    took (or set the string it already had);
 *  - AoeError: BadArgument (unknown CCmd, bad length) or ConfigStringPresent
 *    (a set while another string is there); the reply carries the current
 *    string either way;
 *  - ConfigMismatch: a test or prefix test that does not match (silence);
 *  - ShortArgument: shorter than the 32-byte Query Config header.
 * For a reply, `ctx.replyLen` is its unpadded length.
 */
export function handleConfig(
  rx: Uint8Array,
  r: number,
  len: number,
  st: TargetState,
  ctx: FrameContext,
  tx: Uint8Array,
  t: number,
): Outcome {
  if (len < CFG_HEADER_LEN) return Outcome.ShortArgument;
  const ccmd = rx[r + OFF_CFG_VERCCMD] & 0x0f;
  if (ccmd === ConfigCommand.Read) return finish(tx, t, st, ctx, ccmd, Outcome.Reply);
  const n = (rx[r + OFF_CFG_LEN] << 8) | rx[r + OFF_CFG_LEN + 1];
  const s = r + OFF_CFG_STRING;
  if (ccmd > ConfigCommand.ForceSet || n > MAX_CONFIG_LEN || n > len - CFG_HEADER_LEN) {
    setAoeError(tx, t, AoeError.BadArgument);
    return finish(tx, t, st, ctx, ccmd, Outcome.AoeError);
  }
  switch (ccmd) {
    case ConfigCommand.Test:
      if (n !== st.configLen || !sameBytes(rx, s, st.config, 0, n)) return Outcome.ConfigMismatch;
      break;
    case ConfigCommand.PrefixTest:
      if (n > st.configLen || !sameBytes(rx, s, st.config, 0, n)) return Outcome.ConfigMismatch;
      break;
    case ConfigCommand.Set:
      if (st.configLen !== 0 && !(n === st.configLen && sameBytes(rx, s, st.config, 0, n))) {
        setAoeError(tx, t, AoeError.ConfigStringPresent);
        return finish(tx, t, st, ctx, ccmd, Outcome.AoeError);
      }
      storeConfig(rx, s, n, st);
      break;
    case ConfigCommand.ForceSet:
      storeConfig(rx, s, n, st);
      break;
  }
  return finish(tx, t, st, ctx, ccmd, Outcome.Reply);
}

/** Writes the reply arguments, records the reply length in `ctx` and passes `outcome` on. */
function finish(tx: Uint8Array, t: number, st: TargetState, ctx: FrameContext, ccmd: number, outcome: Outcome): Outcome {
  ctx.replyLen = writeConfigReply(tx, t, st, ctx.maxSectors, ccmd);
  return outcome;
}

function storeConfig(rx: Uint8Array, s: number, n: number, st: TargetState): void {
  if (n === st.configLen && sameBytes(rx, s, st.config, 0, n)) return;
  st.config.set(rx.subarray(s, s + n), 0);
  st.config.fill(0, n);
  st.configLen = n;
  st.version++;
}

/**
 * Writes an unsolicited Query Config response (tag 0, version 1) from `mac`
 * to `dst` at tx[t]; the spec asks servers to send one when they are ready.
 * Returns the frame length (unpadded).
 */
export function writeAnnouncement(
  tx: Uint8Array,
  t: number,
  dst: Uint8Array,
  dstOff: number,
  mac: Uint8Array,
  st: TargetState,
  maxSectors: number,
): number {
  for (let i = 0; i < 6; i++) {
    tx[t + OFF_DST + i] = dst[dstOff + i];
    tx[t + OFF_SRC + i] = mac[i];
  }
  tx[t + OFF_TYPE] = ETHERTYPE_AOE >> 8;
  tx[t + OFF_TYPE + 1] = ETHERTYPE_AOE & 0xff;
  tx[t + OFF_VERFLAGS] = (AOE_VERSION << 4) | FLAG_RESPONSE;
  tx[t + OFF_ERROR] = 0;
  tx[t + OFF_MAJOR] = st.shelf >> 8;
  tx[t + OFF_MAJOR + 1] = st.shelf & 0xff;
  tx[t + OFF_MINOR] = st.slot;
  tx[t + OFF_CMD] = Command.Config;
  tx.fill(0, t + OFF_TAG, t + OFF_TAG + 4);
  return writeConfigReply(tx, t, st, maxSectors, ConfigCommand.Read);
}
