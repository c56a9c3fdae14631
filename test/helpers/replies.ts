// What an AoE reply on the wire must look like from the outside, whichever
// target sent it: its length before padding, read from its own fields, and
// the padding rule (docs/protocol.md §1.1). Shared by the integration tests
// and the fuzzer, which judge replies without the request at hand.

import {
  AoeError,
  ATA_HEADER_LEN,
  CFG_HEADER_LEN,
  Command,
  DIRECTIVE_LEN,
  FLAG_ERROR,
  HEADER_LEN,
  MASK_HEADER_LEN,
  MIN_FRAME_LEN,
  OFF_CFG_LEN,
  OFF_CMD,
  OFF_ERROR,
  OFF_MASK_DIRCOUNT,
  OFF_MASK_MERROR,
  OFF_RES_NMACS,
  OFF_VERFLAGS,
  RES_HEADER_LEN,
} from '../../src/aoe/constants';

const MAC_LEN = 6;

/**
 * The length a reply has before padding, from its own fields: the bare
 * header for an unknown command or an unsupported version; for ATA the
 * header plus whatever data came (a reply cannot say how much data it
 * carries, so a frame longer than the minimum is taken whole); for Query
 * Config 32 + the string; for Mac Mask 28 + 8 per listed entry (28 alone on
 * MError or E); for Reserve/Release 26 + 6 per address.
 */
export function replyContentLength(b: Uint8Array): number {
  const error = (b[OFF_VERFLAGS] & FLAG_ERROR) !== 0;
  const code = b[OFF_ERROR];
  if (error && (code === AoeError.BadCommand || code === AoeError.UnsupportedVersion)) return HEADER_LEN;
  switch (b[OFF_CMD]) {
    case Command.Ata:
      return b.length > MIN_FRAME_LEN ? b.length : ATA_HEADER_LEN;
    case Command.Config:
      return CFG_HEADER_LEN + ((b[OFF_CFG_LEN] << 8) | b[OFF_CFG_LEN + 1]);
    case Command.MacMask:
      return error || b[OFF_MASK_MERROR] !== 0 ? MASK_HEADER_LEN : MASK_HEADER_LEN + DIRECTIVE_LEN * b[OFF_MASK_DIRCOUNT];
    case Command.Reserve:
      return RES_HEADER_LEN + MAC_LEN * b[OFF_RES_NMACS];
    default:
      return HEADER_LEN;
  }
}

/**
 * Checks the padding rule: exactly max(60, content length) bytes, and every
 * byte after the content zero. Returns a description of the first violation,
 * or undefined.
 */
export function paddingProblem(b: Uint8Array): string | undefined {
  const n = replyContentLength(b);
  const want = Math.max(MIN_FRAME_LEN, n);
  if (b.length < MIN_FRAME_LEN) return `${b.length} bytes, shorter than ${MIN_FRAME_LEN}`;
  if (b.length !== want) return `${b.length} bytes where ${want} were expected (content length ${n})`;
  for (let i = n; i < b.length; i++) {
    if (b[i] !== 0) return `byte ${i} of the padding is 0x${b[i].toString(16)} (padding starts at ${n})`;
  }
  return undefined;
}
