// One network interface: its packet socket and receive ring, the transmit
// arena replies are built in, the batch of replies waiting to be sent, and
// the interface's MTU, MAC and carrier as last seen.

import { MIN_FRAME_LEN, sectorsForMtu } from '../aoe/constants';
import { FrameContext } from '../aoe/frame-context';
import { LinkCounter } from './counters';
import type { Export } from './export';
import { DrainLayout, SendLayout, type LinkInfo, type NativeAddon, type PacketSocket } from '../native/addon';
import { EAGAIN, EMSGSIZE, ENOBUFS } from '../native/errno';

/** Reply data starts 36 bytes into a frame; placing frames at 476 mod 512 puts the data on a 512-byte boundary (O_DIRECT). */
const SLOT_LEAD = 512 - 36;
const RX_BATCH = 256;
/** Query Config reply with a 1024-byte string (1056 bytes), rounded up. */
const LARGEST_CONTROL_REPLY = 1088;
/**
 * Frames larger than this are not used even on interfaces that allow them
 * (lo has 65536): 63 sectors per request, and ring slots stay small.
 */
const MAX_USABLE_MTU = 32768;
/** The ring and arena are always sized for at least this MTU. */
const JUMBO_MTU = 9000;
/**
 * Slots of the receive ring: the frames that may wait for the engine. A lab
 * of 200 machines each keeping the advertised Buffer Count (16) outstanding
 * sends 3,200 requests at once; with fewer slots the kernel drops the rest,
 * and each drop costs its machine a retransmission timeout.
 */
const RING_FRAMES = 4096;
/** Receive ring memory cap per interface: fewer slots only for MTUs above 9000. */
const RING_MAX_BYTES = 40 << 20;

/** What flush() did with the queued replies. */
export const enum FlushStatus {
  /** All sent, or all dropped because the link went away. */
  Done = 0,
  /** The socket was full: some remain queued, to be sent again soon. */
  Blocked = 1,
  /**
   * The first queued frame is larger than the MTU allows now (it shrank
   * under a reply already built). Nothing of it was sent: the caller
   * shortens it (setFirstLength) or drops it (dropFirst), and flushes again.
   */
  FirstTooBig = 2,
}

export interface LinkOptions {
  /** Transmit slots: replies being built or waiting to be sent. */
  txSlots: number;
  netns?: string;
}

/**
 * serving: open with carrier; no carrier: open, the cable or peer is down;
 * reopening: being closed to be opened again (MTU grew, interface
 * recreated); waiting for the interface: not open, because the interface
 * does not exist (yet) or cannot be opened; the link checks retry.
 */
export type LinkState = 'serving' | 'no carrier' | 'reopening' | 'waiting for the interface';

export class Link {
  readonly counters = new Float64Array(LinkCounter.Count);
  readonly exports: Export[] = [];
  socket: PacketSocket | null = null;
  info: LinkInfo | null = null;
  /** Where this link's memory is registered with the io ring (-1: not registered). */
  arenaBufferId = -1;
  ringBufferId = -1;
  /** Requests that refer to this link's arena or receive ring. */
  inflight = 0;
  /** New frames are taken (false while the link is retired or the server stops; busy polling honours it too). */
  accepting = false;
  /** The socket must be reopened (MTU outgrew the ring, interface recreated) once inflight reaches 0. */
  reopenWanted = false;
  /**
   * The last drain stopped for want of transmit or request slots: the frames
   * behind it wait in the receive ring (the kernel's queue, not a drop) until
   * the end of a batch frees slots and takes them (Intake.resumeStalled).
   */
  rxStalled = false;
  /** The socket descriptor the engine's frame waiter watches for this link (-1: none). */
  watchedFd = -1;
  readonly ctx: FrameContext;

  arena: Uint8Array = new Uint8Array(0);
  slotStride = 0;
  /** Largest frame the arena and ring were sized for. */
  maxFrame = 0;
  private readonly txFree: Int32Array;
  private txFreeN = 0;
  readonly sendDesc: Uint32Array;
  private readonly sendSlot: Int32Array;
  sendN = 0;
  readonly rxDesc = new Uint32Array(RX_BATCH * DrainLayout.Stride);
  /** Receive slots a batch is done with, given back in one releaseMany(). */
  readonly rxDone = new Uint32Array(RX_BATCH);
  /** Receive slots of writes that completed, given back together after the reap that brought them (flushWritten). */
  private readonly rxWritten = new Uint32Array(RX_BATCH);
  private rxWrittenN = 0;

  constructor(
    readonly name: string,
    readonly id: number,
    private readonly addon: NativeAddon,
    readonly options: LinkOptions,
  ) {
    this.ctx = new FrameContext(new Uint8Array(6), 0);
    this.txFree = new Int32Array(options.txSlots);
    this.sendDesc = new Uint32Array(options.txSlots * SendLayout.Stride);
    this.sendSlot = new Int32Array(options.txSlots);
  }

  get rxBatch(): number {
    return RX_BATCH;
  }

  /** What the link does for its exports now (stats, `vblade ctl list`). */
  get state(): LinkState {
    if (this.socket === null) return 'waiting for the interface';
    if (this.reopenWanted) return 'reopening';
    return this.info?.up ? 'serving' : 'no carrier';
  }

  /** Reads the interface state; null when it does not exist (now). */
  readInfo(): LinkInfo | null {
    return this.addon.linkInfo(this.name, this.options.netns);
  }

  /** Takes new MTU and MAC values into the frame context. */
  applyInfo(info: LinkInfo): void {
    this.info = info;
    this.ctx.mac.set(info.mac);
    // Until a reopen resizes the ring, frames cannot outgrow what it was sized for.
    this.ctx.maxSectors = Math.min(sectorsForMtu(info.mtu), sectorsForMtu(this.maxFrame - 14));
  }

  /** Whether the interface's MTU has outgrown the ring and arena (a reopen resizes them). */
  outgrown(info: LinkInfo): boolean {
    return Math.min(info.mtu, MAX_USABLE_MTU) + 14 > this.maxFrame;
  }

  /**
   * Re-reads MTU, MAC and carrier (one ioctl); ignored when the interface is
   * gone or was recreated, or when the query fails (no descriptor left: the
   * link monitor logs that and tries again).
   */
  refresh(): void {
    let info: LinkInfo | null;
    try {
      info = this.readInfo();
    } catch {
      return;
    }
    if (info !== null && info.ifindex === this.socket?.ifindex) this.applyInfo(info);
  }

  /** Opens the socket and sizes the ring and arena for the current MTU. Throws with a user-facing message. */
  open(info: LinkInfo): void {
    // Sized for jumbo frames even at a smaller MTU, so that raising the MTU
    // up to 9000 takes effect at once, without reopening the socket.
    const maxFrame = Math.max(Math.min(Math.max(info.mtu, JUMBO_MTU), MAX_USABLE_MTU) + 14, MIN_FRAME_LEN);
    // tpacket2 header + sockaddr_ll + alignment fit in 128 bytes.
    const frameSize = Math.ceil((maxFrame + 128) / 256) * 256;
    const frameCount = Math.max(256, Math.min(RING_FRAMES, Math.floor(RING_MAX_BYTES / frameSize)));
    this.socket = this.addon.openPacket(this.name, {
      frameSize,
      frameCount,
      netns: this.options.netns,
      sndbuf: 4 << 20,
    });
    if (maxFrame !== this.maxFrame || this.arena.length === 0) {
      this.maxFrame = maxFrame;
      // Room for the largest reply the protocol builds (a 1024-byte config
      // string, a full mask list) even when the MTU is smaller: such a reply
      // then fails to send, but never spills into the next slot.
      this.slotStride = Math.ceil((SLOT_LEAD + Math.max(maxFrame, LARGEST_CONTROL_REPLY)) / 512) * 512;
      // Page-aligned: O_DIRECT reads land in the slots' data areas, and a write with O_DIRECT is copied there first.
      this.arena = new Uint8Array(this.addon.alignedBuffer(this.slotStride * this.options.txSlots));
    }
    this.txFreeN = 0;
    for (let i = this.options.txSlots - 1; i >= 0; i--) this.txFree[this.txFreeN++] = i;
    this.sendN = 0;
    this.reopenWanted = false;
    this.rxStalled = false;
    this.applyInfo(info);
  }

  /** Stops taking new frames; requests in flight still complete. */
  pause(): void {
    this.accepting = false;
    this.socket?.stopPolling();
  }

  close(): void {
    this.accepting = false;
    if (this.socket) {
      this.flushWritten(); // slots of writes that completed in this batch, still held in this ring
      this.socket.stopPolling();
      this.socket.close();
      this.socket = null;
    }
  }

  /** The write that held receive slot `slot` completed: the slot goes back with the next flushWritten(). */
  releaseWritten(slot: number): void {
    if (this.rxWrittenN === this.rxWritten.length) this.flushWritten();
    this.rxWritten[this.rxWrittenN++] = slot;
  }

  /** Gives back the receive slots of completed writes in one call. */
  flushWritten(): void {
    const n = this.rxWrittenN;
    if (n === 0) return;
    this.rxWrittenN = 0;
    this.socket?.releaseMany(this.rxWritten, n);
  }

  /** Byte offset in `arena` of transmit slot i. */
  slotOffset(i: number): number {
    return i * this.slotStride + SLOT_LEAD;
  }

  /** Transmit slots free now. */
  get txAvailable(): number {
    return this.txFreeN;
  }

  /** A free transmit slot, or -1. */
  allocTx(): number {
    return this.txFreeN > 0 ? this.txFree[--this.txFreeN] : -1;
  }

  freeTx(slot: number): void {
    this.txFree[this.txFreeN++] = slot;
  }

  /** Adds a finished reply to the batch sent by flush(). */
  queue(slot: number, len: number): void {
    const n = this.sendN++;
    const p = n * SendLayout.Stride;
    this.sendDesc[p + SendLayout.Offset] = this.slotOffset(slot);
    this.sendDesc[p + SendLayout.Length] = len;
    this.sendSlot[n] = slot;
  }

  /** Byte offset in `arena` of the first queued frame (sendN > 0). */
  get firstOffset(): number {
    return this.sendDesc[SendLayout.Offset];
  }

  /** Length of the first queued frame (sendN > 0). */
  get firstLength(): number {
    return this.sendDesc[SendLayout.Length];
  }

  /** Changes the length the first queued frame is sent with (after the caller rewrote it). */
  setFirstLength(len: number): void {
    this.sendDesc[SendLayout.Length] = len;
  }

  /** Sends the queued replies in one call; see FlushStatus. */
  flush(): FlushStatus {
    if (this.sendN === 0) return FlushStatus.Done;
    const sock = this.socket;
    if (sock === null) {
      this.dropQueued();
      return FlushStatus.Done;
    }
    const sent = sock.send(this.arena, this.sendDesc, this.sendN);
    if (sent < 0) {
      // The kernel queue is full: try again shortly.
      if (sent === -EAGAIN || sent === -ENOBUFS) return FlushStatus.Blocked;
      // A rewrite is the protocol's call, not the link's.
      if (sent === -EMSGSIZE) return FlushStatus.FirstTooBig;
      // The link went away (ENETDOWN, ENXIO): the initiator retransmits.
      this.dropQueued();
      return FlushStatus.Done;
    }
    let bytes = 0;
    for (let i = 0; i < sent; i++) {
      bytes += this.sendDesc[i * SendLayout.Stride + SendLayout.Length];
      this.freeTx(this.sendSlot[i]);
    }
    this.counters[LinkCounter.TxFrames] += sent;
    this.counters[LinkCounter.TxBytes] += bytes;
    if (sent === this.sendN) {
      this.sendN = 0;
      return FlushStatus.Done;
    }
    this.sendDesc.copyWithin(0, sent * SendLayout.Stride, this.sendN * SendLayout.Stride);
    this.sendSlot.copyWithin(0, sent, this.sendN);
    this.sendN -= sent;
    return FlushStatus.Blocked;
  }

  /** Drops the first queued frame (one too big to send, with nothing smaller to send instead). */
  dropFirst(): void {
    this.freeTx(this.sendSlot[0]);
    this.counters[LinkCounter.TxDrops]++;
    this.sendN--;
    this.sendDesc.copyWithin(0, SendLayout.Stride, (this.sendN + 1) * SendLayout.Stride);
    this.sendSlot.copyWithin(0, 1, this.sendN + 1);
  }

  /** Frees every queued reply unsent, counting them as TxDrops. */
  dropQueued(): void {
    for (let i = 0; i < this.sendN; i++) this.freeTx(this.sendSlot[i]);
    this.counters[LinkCounter.TxDrops] += this.sendN;
    this.sendN = 0;
  }
}
