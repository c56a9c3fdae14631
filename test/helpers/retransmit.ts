// An ATA request sent again when no reply comes, as an initiator does: the
// target drops requests it cannot serve yet (an initiator's view being made,
// an export paused for a snapshot) and counts on the retransmission.

import type { AtaReply, ReplyHeader } from '../../src/client/replies';
import type { Initiator } from './in-process';

/** The reply to `send()` (a new tag each time), sent again every `retryMs` up to `tries` times. */
export async function withRetransmits(
  i: Initiator,
  send: () => number,
  retryMs = 20,
  tries = 250,
): Promise<{ header: ReplyHeader; ata: AtaReply; length: number; sends: number }> {
  for (let n = 1; ; n++) {
    try {
      return { ...(await i.ataReply(send(), retryMs)), sends: n };
    } catch (e) {
      if (n >= tries || !/timed out/.test((e as Error).message)) throw e;
    }
  }
}
