// Errors the client reports: each says what went wrong in terms of the protocol.

import type { AtaReply, ReplyHeader } from './replies';
import { aoeErrorName } from './replies';

/** A reply with the E flag set. */
export class AoeError extends Error {
  override name = 'AoeError';
  constructor(
    readonly code: number,
    readonly header: ReplyHeader,
    readonly frame: Uint8Array,
    what = 'request',
  ) {
    super(`${what} to e${header.shelf}.${header.slot} refused: AoE error ${code} (${aoeErrorName(code)})`);
  }
}

/** An ATA reply whose Status has BSY, DF, DRQ or ERR set. */
export class AtaError extends Error {
  override name = 'AtaError';
  constructor(
    readonly status: number,
    readonly err: number,
    readonly reply: AtaReply,
    what: string,
  ) {
    super(`${what} failed: ATA status 0x${hex2(status)}, error 0x${hex2(err)}${ataErrorBits(err)}`);
  }
}

/** No reply within the timeout after every retransmission. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

function hex2(v: number): string {
  return v.toString(16).padStart(2, '0');
}

function ataErrorBits(err: number): string {
  const names: string[] = [];
  if (err & 0x04) names.push('ABRT');
  if (err & 0x10) names.push('IDNF');
  if (err & 0x40) names.push('UNC');
  return names.length > 0 ? ` (${names.join(', ')})` : '';
}
