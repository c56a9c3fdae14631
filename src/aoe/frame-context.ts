// What became of one request frame, and the per-interface context the
// handlers share. Kept apart from dispatch.ts because every command handler
// takes the context and dispatch.ts imports the handlers.

import { AtaDecision } from './ata';
import { MacList } from './mac-list';

/**
 * What `respond()` (and each command handler) did with a request. A const
 * enum: tsc inlines the numbers, so the frame path compares small integers.
 * The order matters: finished replies, then storage work, then silence, so
 * that a class is one comparison (see isReply / isPending / isStateReply).
 *
 * A reply's outcome says which kind of request it answers, so the caller
 * need not read the command byte: a reply to a Query Config, Mac Mask or
 * Reserve request (or to a command we do not know) may show the export's
 * state, and waits while a change of that state is being saved; an ATA
 * reply without storage work (IDENTIFY, SET FEATURES, ...) comes before an
 * initiator's first read or write, the moment to get its store ready.
 */
export const enum Outcome {
  /** A finished reply of `ctx.replyLen` bytes to a request other than ATA, without an error. */
  Reply = 0,
  /** A finished reply of `ctx.replyLen` bytes to a request other than ATA, with the E flag and an AoE error code. */
  AoeError = 1,
  /** A finished ATA reply of `ctx.replyLen` bytes without storage work and without an error (IDENTIFY, SET FEATURES, ...). */
  AtaReply = 2,
  /** A finished reply of `ctx.replyLen` bytes to an ATA request, with the E flag and an AoE error code (reserved by others, unsupported version). */
  AtaAoeError = 3,
  /** A finished ATA reply of `ctx.replyLen` bytes whose status has ERR (ABRT, IDNF). */
  AtaError = 4,
  /** Read `ctx.ata.count` sectors at `ctx.ata.lba` into the prepared reply's data area. */
  Read = 5,
  /** Write `ctx.ata.count` sectors at `ctx.ata.lba` from the request's data area. */
  Write = 6,
  /** Make the store durable, then send the prepared reply. */
  Flush = 7,
  /** No reply: the frame is shorter than the AoE common header. */
  ShortFrame = 8,
  /** No reply: the export has a MAC mask and the source is not in it. */
  Masked = 9,
  /** No reply: the argument is shorter than its command's fixed part (ATA 36, Config 32, Mac Mask 28, Reserve 26 bytes). */
  ShortArgument = 10,
  /** No reply: a Query Config test or prefix test whose string does not match (the spec asks for silence). */
  ConfigMismatch = 11,
}

/** The outcome is a finished reply of `ctx.replyLen` bytes (Reply, AoeError, AtaReply, AtaAoeError, AtaError). */
export function isReply(o: Outcome): boolean {
  return o <= Outcome.AtaError;
}

/** The outcome is a finished reply to a request other than ATA (Reply, AoeError): it may show the export's state. */
export function isStateReply(o: Outcome): boolean {
  return o <= Outcome.AoeError;
}

/** The outcome is storage work with the reply prepared around it (Read, Write, Flush). */
export function isPending(o: Outcome): boolean {
  return o >= Outcome.Read && o <= Outcome.Flush;
}

/** Per-interface context and reusable scratch space for `respond` and the command handlers. */
export class FrameContext {
  readonly ata = new AtaDecision();
  readonly scratch = new MacList();
  /** Length of the finished reply when the outcome is a reply: padded by respond(), unpadded from a handler. */
  replyLen = 0;
  constructor(
    /** Our MAC on the interface the frame arrived on. */
    public mac: Uint8Array,
    /** Sectors per frame the interface's MTU carries now. */
    public maxSectors: number,
  ) {}
}
