// Command 2, Mac Mask List: read and edit the list of initiators allowed to
// use the export. Edits are all or nothing: a bad directive leaves the list
// as it was (docs/protocol.md).

import {
  AoeError,
  Directive,
  DIRECTIVE_LEN,
  MASK_HEADER_LEN,
  MaskCommand,
  MaskError,
  OFF_MASK_DIRCOUNT,
  OFF_MASK_DIRS,
  OFF_MASK_MCMD,
  OFF_MASK_MERROR,
  OFF_MASK_RESERVED,
} from './constants';
import { Outcome, type FrameContext } from './frame-context';
import { setAoeError } from './header';
import { MacList } from './mac-list';
import type { TargetState } from './target-state';

export function writeMaskReply(
  tx: Uint8Array,
  t: number,
  mcmd: number,
  merror: number,
  list: MacList | null,
  dirCount: number,
): number {
  tx[t + OFF_MASK_RESERVED] = 0;
  tx[t + OFF_MASK_MCMD] = mcmd;
  tx[t + OFF_MASK_MERROR] = merror;
  tx[t + OFF_MASK_DIRCOUNT] = dirCount;
  if (list === null) return MASK_HEADER_LEN;
  for (let i = 0; i < list.count; i++) {
    const p = t + OFF_MASK_DIRS + i * DIRECTIVE_LEN;
    tx[p] = 0;
    tx[p + 1] = Directive.None;
    tx.set(list.bytes.subarray(i * 6, i * 6 + 6), p + 2);
  }
  return MASK_HEADER_LEN + list.count * DIRECTIVE_LEN;
}

/**
 * Handles a Mac Mask request at rx[r..r+len) whose reply header is at tx[t];
 * `ctx.scratch` is a spare list used to apply an edit before committing it.
 * Returns:
 *  - Reply: a read, an edit that was applied (the reply lists the mask), or
 *    an edit refused with MError BadDirective or ListFull (a Mac Mask error,
 *    not an AoE one: the list is unchanged and the reply names the directive);
 *  - AoeError: BadArgument (unknown MCmd, or more directives than the frame holds);
 *  - ShortArgument: shorter than the 28-byte Mac Mask header.
 * For a reply, `ctx.replyLen` is its unpadded length.
 */
export function handleMacMask(
  rx: Uint8Array,
  r: number,
  len: number,
  st: TargetState,
  ctx: FrameContext,
  tx: Uint8Array,
  t: number,
): Outcome {
  if (len < MASK_HEADER_LEN) return Outcome.ShortArgument;
  const mcmd = rx[r + OFF_MASK_MCMD];
  if (mcmd === MaskCommand.Read) {
    ctx.replyLen = writeMaskReply(tx, t, mcmd, 0, st.mask, st.mask.count);
    return Outcome.Reply;
  }
  const dirs = rx[r + OFF_MASK_DIRCOUNT];
  if (mcmd !== MaskCommand.Edit || MASK_HEADER_LEN + dirs * DIRECTIVE_LEN > len) {
    setAoeError(tx, t, AoeError.BadArgument);
    ctx.replyLen = writeMaskReply(tx, t, mcmd, 0, null, 0);
    return Outcome.AoeError;
  }
  ctx.replyLen = applyEdit(rx, r, dirs, st, tx, t, ctx.scratch);
  return Outcome.Reply;
}

/** Applies the `dirs` directives of an edit all or nothing; returns the reply length. */
function applyEdit(
  rx: Uint8Array,
  r: number,
  dirs: number,
  st: TargetState,
  tx: Uint8Array,
  t: number,
  scratch: MacList,
): number {
  const mcmd = MaskCommand.Edit;
  scratch.copyFrom(st.mask);
  for (let i = 0; i < dirs; i++) {
    const p = r + OFF_MASK_DIRS + i * DIRECTIVE_LEN;
    switch (rx[p + 1]) {
      case Directive.None:
        break;
      case Directive.Add:
        if (!scratch.add(rx, p + 2)) return writeMaskReply(tx, t, mcmd, MaskError.ListFull, null, i);
        break;
      case Directive.Delete:
        scratch.delete(rx, p + 2);
        break;
      default:
        return writeMaskReply(tx, t, mcmd, MaskError.BadDirective, null, i);
    }
  }
  if (scratch.count !== st.mask.count || !sameList(scratch, st.mask)) {
    st.mask.copyFrom(scratch);
    st.version++;
  }
  return writeMaskReply(tx, t, mcmd, 0, st.mask, st.mask.count);
}

function sameList(a: MacList, b: MacList): boolean {
  for (let i = 0; i < a.count * 6; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}
