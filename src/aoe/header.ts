// The common AoE header: recognising requests and writing reply headers.

import {
  AOE_VERSION,
  ATA_HEADER_LEN,
  BROADCAST_SHELF,
  BROADCAST_SLOT,
  Command,
  ETHERTYPE_AOE,
  FLAG_ERROR,
  FLAG_RESPONSE,
  HEADER_LEN,
  MIN_FRAME_LEN,
  OFF_ATA_SECTORS,
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

/** An AoE request (not a response) long enough to hold the common header. */
export function isAoeRequest(f: Uint8Array, o: number, len: number): boolean {
  return (
    len >= HEADER_LEN &&
    ((f[o + OFF_TYPE] << 8) | f[o + OFF_TYPE + 1]) === ETHERTYPE_AOE &&
    (f[o + OFF_VERFLAGS] & FLAG_RESPONSE) === 0
  );
}

/**
 * An ATA request: only an export's exact address reaches it (a broadcast
 * write must not reach every export), and it is the request a paused export
 * or one whose access change is being saved holds back.
 */
export function isAtaRequest(f: Uint8Array, o: number): boolean {
  return f[o + OFF_CMD] === Command.Ata;
}

/**
 * Whether the interface's MTU should be read again before the request is
 * answered: a Query Config reply reports the sectors per frame it allows,
 * and an ATA request for more sectors than `maxSectors` may have been sent
 * after the MTU grew.
 */
export function wantsMtuLook(f: Uint8Array, o: number, len: number, maxSectors: number): boolean {
  const cmd = f[o + OFF_CMD];
  if (cmd === Command.Config) return true;
  return cmd === Command.Ata && len >= ATA_HEADER_LEN && f[o + OFF_ATA_SECTORS] > maxSectors;
}

export function majorOf(f: Uint8Array, o: number): number {
  return (f[o + OFF_MAJOR] << 8) | f[o + OFF_MAJOR + 1];
}

export function minorOf(f: Uint8Array, o: number): number {
  return f[o + OFF_MINOR];
}

export function versionOf(f: Uint8Array, o: number): number {
  return f[o + OFF_VERFLAGS] >> 4;
}

/** Whether a request's major/minor select the export shelf.slot (exactly or by broadcast). */
export function addresses(f: Uint8Array, o: number, shelf: number, slot: number): boolean {
  const major = majorOf(f, o);
  const minor = f[o + OFF_MINOR];
  return (major === shelf || major === BROADCAST_SHELF) && (minor === slot || minor === BROADCAST_SLOT);
}

/**
 * The source is one station's address: not a group address (broadcast,
 * multicast: the I/G bit of the first byte) and not all zero. A reply goes
 * to the source, so a request from anything else must get none.
 */
export function isFromStation(f: Uint8Array, o: number): boolean {
  const p = o + OFF_SRC;
  if ((f[p] & 1) !== 0) return false;
  return (f[p] | f[p + 1] | f[p + 2] | f[p + 3] | f[p + 4] | f[p + 5]) !== 0;
}

/** Destination is `mac` or the Ethernet broadcast address. */
export function isForMac(f: Uint8Array, o: number, mac: Uint8Array): boolean {
  let own = true;
  let bcast = true;
  for (let i = 0; i < 6; i++) {
    const b = f[o + OFF_DST + i];
    if (b !== mac[i]) own = false;
    if (b !== 0xff) bcast = false;
  }
  return own || bcast;
}

export function isFromMac(f: Uint8Array, o: number, mac: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (f[o + OFF_SRC + i] !== mac[i]) return false;
  return true;
}

/**
 * Writes the 24-byte reply header at tx[t]: back to the requester, from
 * `mac`, version 1 with R set and no error, our own address (also for
 * broadcast requests), the request's command and tag.
 */
export function writeReplyHeader(
  tx: Uint8Array,
  t: number,
  rx: Uint8Array,
  r: number,
  mac: Uint8Array,
  shelf: number,
  slot: number,
): void {
  for (let i = 0; i < 6; i++) {
    tx[t + OFF_DST + i] = rx[r + OFF_SRC + i];
    tx[t + OFF_SRC + i] = mac[i];
  }
  tx[t + OFF_TYPE] = ETHERTYPE_AOE >> 8;
  tx[t + OFF_TYPE + 1] = ETHERTYPE_AOE & 0xff;
  tx[t + OFF_VERFLAGS] = (AOE_VERSION << 4) | FLAG_RESPONSE;
  tx[t + OFF_ERROR] = 0;
  tx[t + OFF_MAJOR] = shelf >> 8;
  tx[t + OFF_MAJOR + 1] = shelf & 0xff;
  tx[t + OFF_MINOR] = slot;
  tx[t + OFF_CMD] = rx[r + OFF_CMD];
  tx[t + OFF_TAG] = rx[r + OFF_TAG];
  tx[t + OFF_TAG + 1] = rx[r + OFF_TAG + 1];
  tx[t + OFF_TAG + 2] = rx[r + OFF_TAG + 2];
  tx[t + OFF_TAG + 3] = rx[r + OFF_TAG + 3];
}

/** Marks the reply at tx[t] as an AoE-level error. */
export function setAoeError(tx: Uint8Array, t: number, code: number): void {
  tx[t + OFF_VERFLAGS] |= FLAG_ERROR;
  tx[t + OFF_ERROR] = code;
}

/** Zero-fills a reply of `len` bytes up to the Ethernet minimum; returns the length to send. */
export function padReply(tx: Uint8Array, t: number, len: number): number {
  if (len >= MIN_FRAME_LEN) return len;
  tx.fill(0, t + len, t + MIN_FRAME_LEN);
  return MIN_FRAME_LEN;
}
