// Counter layouts: plain numbers in typed arrays, bumped on the frame path
// without allocation and read by stats, the control socket and metrics.

export const enum ExportCounter {
  Reads = 0,
  Writes,
  ReadBytes,
  WriteBytes,
  Flushes,
  /** Requests answered without storage (identify, config, mask, reserve, ...). */
  Other,
  /** ATA errors sent: bad arguments, out of range, read-only. */
  AtaErrors,
  /** Storage I/O that failed (EIO, ENOSPC, ...), answered with ATA ABRT. */
  IoErrors,
  /** AoE-level error replies (reserved, bad command, bad argument, version). */
  AoeErrors,
  /** Frames dropped by the MAC mask. */
  MaskDrops,
  /** fdatasync calls made for -s writes and FLUSH commands (one covers many: group commit). */
  Syncs,
  /** ATA requests dropped while the export was paused (snapshot, view reset) or the initiator's view was being made (the initiator retransmits). */
  PausedDrops,
  Count,
}

export const EXPORT_COUNTER_NAMES = [
  'reads',
  'writes',
  'read_bytes',
  'write_bytes',
  'flushes',
  'other',
  'ata_errors',
  'io_errors',
  'aoe_errors',
  'mask_drops',
  'syncs',
  'paused_drops',
] as const;

export const enum LinkCounter {
  RxFrames = 0,
  TxFrames,
  TxBytes,
  /** Frames the kernel dropped because the receive ring was full. */
  RxRingDrops,
  /** Replies dropped: no transmit slot, no request slot, or the link went away. */
  TxDrops,
  /** Frames ignored: not AoE requests for us, from ourselves, unknown address. */
  Ignored,
  /** Times the link went down or vanished. */
  LinkDowns,
  /** Times frames were left waiting in the receive ring because every transmit or request slot was held. */
  RxStalls,
  Count,
}

export const LINK_COUNTER_NAMES = [
  'rx_frames',
  'tx_frames',
  'tx_bytes',
  'rx_ring_drops',
  'tx_drops',
  'ignored',
  'link_downs',
  'rx_stalls',
] as const;

/** Latency histogram buckets: bucket i counts requests that took < 2^i microseconds. */
export const LATENCY_BUCKETS = 24;

export function recordLatency(hist: Float64Array, micros: number): void {
  let b = 0;
  let limit = 1;
  while (micros >= limit && b < LATENCY_BUCKETS - 1) {
    limit *= 2;
    b++;
  }
  hist[b]++;
}
