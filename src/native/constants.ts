// The numbers JavaScript and the native addon must agree on: operation codes,
// the layout of every array that crosses the addon, and its limits. The C
// code exports the same names as `constants` (native/binding.c) from the
// definitions it uses itself; nativeConstantMismatches() compares the two
// once when the addon is loaded (src/native/addon.ts).
//
// The values live in const enums so that tsc inlines them: the frame path
// indexes with plain numbers and never reads an object.

/** Kinds of block I/O operation (the `ops` field IoOpLayout.Kind). */
export const enum IoOp {
  Read = 0,
  Write = 1,
  /** fdatasync of the whole file. */
  DataSync = 2,
}

/** Or'ed into an IoOp. */
export const enum IoOpFlag {
  /** Run the operation synchronously inside submit() (for stores that never block, such as tmpfs); its completion comes from the next reap() without a wake-up. */
  Inline = 0x10,
  /** On a write: when its data is all zero, punch a hole over the range instead (fallocate PUNCH_HOLE | KEEP_SIZE); it completes as the write would (detect-zeroes = unmap). */
  DetectZeroes = 0x20,
  /** The op's fd is the handle of a store behind a client library (NBD, RBD: native/remote.h); Inline and DetectZeroes do not apply. */
  Remote = 0x40,
}

/** IoRing.submit `ops`: Stride numbers per operation, each at its index. */
export const enum IoOpLayout {
  Kind = 0,
  Fd = 1,
  BufferId = 2,
  Offset = 3,
  Length = 4,
  Position = 5,
  Stride = 6,
}

/** IoRing.reap `out`: Stride int32 per completion. */
export const enum ReapLayout {
  Tag = 0,
  Result = 1,
  Stride = 2,
}

/** PacketSocket.drain `desc`: Stride uint32 per received frame. */
export const enum DrainLayout {
  /** Offset in `ring` of the Ethernet header. */
  Offset = 0,
  Length = 1,
  /** Slot number, for release(). */
  Slot = 2,
  Stride = 3,
}

/** PacketSocket.send `desc`: Stride uint32 per frame to send. */
export const enum SendLayout {
  /** Offset in the arena. */
  Offset = 0,
  Length = 1,
  Stride = 2,
}

/** What the addon accepts. Independent limits, some equal by chance (256). */
/* eslint-disable @typescript-eslint/no-duplicate-enum-values */
export const enum NativeLimit {
  /** Buffer ids 0..IoBuffers-1 for IoRing.registerBuffer. */
  IoBuffers = 64,
  /** Largest openIoRing depth. */
  IoDepth = 4096,
  /** Files mapFile can map at once. */
  MappedFiles = 256,
  /** Frames per sendmmsg system call (send() loops over more). */
  SendBatch = 256,
  /** Frame lengths send() accepts. */
  SendFrameMin = 14,
  SendFrameMax = 65535,
  /** Bytes in front of the Ethernet header in a receive slot (tpacket2 header, sockaddr_ll, alignment). */
  SlotHeadroom = 66,
  /** openPacket frameSize range. */
  FrameSizeMin = 128,
  FrameSizeMax = 65536,
  /** Largest receive ring, all slots together. */
  RingMaxBytes = 1 << 30,
  /** Remote stores (NBD, RBD) open at once: their handles are 0..RemoteStores-1. */
  RemoteStores = 4096,
}
/* eslint-enable @typescript-eslint/no-duplicate-enum-values */

/** What this JavaScript expects the addon's `constants` object to hold, by the addon's names. */
export const EXPECTED_NATIVE_CONSTANTS: Readonly<Record<string, number>> = Object.freeze({
  ioOpRead: IoOp.Read,
  ioOpWrite: IoOp.Write,
  ioOpDataSync: IoOp.DataSync,
  ioOpInline: IoOpFlag.Inline,
  ioOpDetectZeroes: IoOpFlag.DetectZeroes,
  ioOpRemote: IoOpFlag.Remote,
  remoteMaxStores: NativeLimit.RemoteStores,
  ioOpKind: IoOpLayout.Kind,
  ioOpFd: IoOpLayout.Fd,
  ioOpBufferId: IoOpLayout.BufferId,
  ioOpOffset: IoOpLayout.Offset,
  ioOpLength: IoOpLayout.Length,
  ioOpPosition: IoOpLayout.Position,
  ioOpStride: IoOpLayout.Stride,
  reapTag: ReapLayout.Tag,
  reapResult: ReapLayout.Result,
  reapStride: ReapLayout.Stride,
  drainOffset: DrainLayout.Offset,
  drainLength: DrainLayout.Length,
  drainSlot: DrainLayout.Slot,
  drainStride: DrainLayout.Stride,
  sendOffset: SendLayout.Offset,
  sendLength: SendLayout.Length,
  sendStride: SendLayout.Stride,
  ioMaxBuffers: NativeLimit.IoBuffers,
  ioMaxDepth: NativeLimit.IoDepth,
  mappedMaxFiles: NativeLimit.MappedFiles,
  sendBatch: NativeLimit.SendBatch,
  sendFrameMin: NativeLimit.SendFrameMin,
  sendFrameMax: NativeLimit.SendFrameMax,
  slotHeadroom: NativeLimit.SlotHeadroom,
  frameSizeMin: NativeLimit.FrameSizeMin,
  frameSizeMax: NativeLimit.FrameSizeMax,
  ringMaxBytes: NativeLimit.RingMaxBytes,
});

/**
 * Where the addon's `constants` (as loaded, unchecked) and `expected`
 * disagree, one entry per name, in `expected`'s order and then the addon's
 * extra names; empty when they agree. Pure, so a mismatch can be tested
 * without a second build.
 */
export function nativeConstantMismatches(
  actual: unknown,
  expected: Readonly<Record<string, number>> = EXPECTED_NATIVE_CONSTANTS,
): string[] {
  if (typeof actual !== 'object' || actual === null) {
    return ['it exports no constants object (built from older sources)'];
  }
  const found = actual as Record<string, unknown>;
  const out: string[] = [];
  for (const [name, want] of Object.entries(expected)) {
    if (!Object.prototype.hasOwnProperty.call(found, name)) out.push(`${name}: missing in the addon, ${want} here`);
    else if (found[name] !== want) out.push(`${name}: ${describe(found[name])} in the addon, ${want} here`);
  }
  for (const name of Object.keys(found)) {
    if (!Object.prototype.hasOwnProperty.call(expected, name)) out.push(`${name}: ${describe(found[name])} in the addon, unknown here`);
  }
  return out;
}

function describe(value: unknown): string {
  return typeof value === 'number' ? String(value) : JSON.stringify(value) ?? String(value);
}
