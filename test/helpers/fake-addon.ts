// A NativeAddon for in-process tests of the serving core, no root and no
// network needed. The parts that need no privilege come from the real addon
// (io ring, file mapping, block device size, ...), so whatever the interface
// gains later carries over; the network parts are replaced:
//
// - linkInfo() reads FakeInterface objects that a test creates, changes
//   (MTU, MAC, up/down), removes and recreates (a new ifindex);
// - openPacket() returns a FakePacketSocket: the receive ring is a plain
//   Uint8Array of frameCount slots of frameSize bytes, filled in ring order by
//   FakeInterface.receive() (the wire towards the target), with the release
//   rules of the real ring; send() copies each frame into FakeInterface.sent
//   (the wire away from it) and answers as sendmmsg would: -EMSGSIZE for a
//   frame longer than MTU + 14, -ENETDOWN when the interface is down, -ENXIO
//   when it is gone, -EAGAIN or a short count when told the queue is full.
// - openIoRing() wraps the real ring so that a test can hold completions
//   back (a slow disk: requests stay in flight) and see in one timeline when
//   an fdatasync started and completed relative to the frames sent.
//
// Not a test file itself (no assertions).

import { constants } from 'node:os';
import {
  native,
  IoOpFlag,
  IoOpLayout,
  IoOp,
  type IoRing,
  type LinkInfo,
  type NativeAddon,
  type PacketSocket,
  type PacketSocketOptions,
  type PacketStats,
} from '../../src/native/addon';

const ERRNO = constants.errno;

/**
 * Where in a receive slot the Ethernet header starts: a TPACKET_V2 slot
 * begins with the tpacket2 header and the sockaddr_ll, and the kernel puts
 * the frame where its network header lands on a 16-byte boundary (66 for
 * Ethernet). Not 0 on purpose, so that nothing can rely on slot alignment.
 */
export const FRAME_OFFSET_IN_SLOT = 66;

export type TimelineEvent =
  { type: 'sent'; iface: string; frame: Uint8Array } | { type: 'datasync-start' } | { type: 'datasync-done'; result: number };

export interface FakeInterfaceInit {
  mtu?: number;
  mac?: Uint8Array;
  up?: boolean;
}

/** One network interface as linkInfo() reports it. */
export class FakeInterface {
  mtu: number;
  mac: Uint8Array;
  up: boolean;
  /** Every frame a socket sent on this interface, copied, in order. */
  readonly sent: Uint8Array[] = [];

  constructor(
    readonly network: FakeNetwork,
    readonly name: string,
    readonly ifindex: number,
    init: FakeInterfaceInit,
  ) {
    this.mtu = init.mtu ?? 1500;
    this.mac = Uint8Array.from(init.mac ?? [0x02, 0, 0, 0, 0, ifindex & 0xff]);
    this.up = init.up ?? true;
  }

  /** Whether this interface is still the one its name refers to (not removed or recreated). */
  get present(): boolean {
    return this.network.interfaceNamed(this.name) === this;
  }

  /** Open sockets bound to this interface. */
  get sockets(): FakePacketSocket[] {
    return this.network.sockets.filter((s) => !s.closed && s.ifindex === this.ifindex);
  }

  /**
   * A frame arriving from the wire: copied into the ring of every open socket
   * bound to this interface whose filter passes it. Returns how many sockets
   * took it (0 when the interface is down or gone, or every ring was full).
   */
  receive(frame: Uint8Array): number {
    if (!this.up || !this.present) return 0;
    let n = 0;
    for (const s of this.sockets) if (s.inject(frame)) n++;
    return n;
  }

  /** Removes and returns the frames sent so far. */
  takeSent(): Uint8Array[] {
    return this.sent.splice(0, this.sent.length);
  }
}

function isAoe(frame: Uint8Array): boolean {
  return frame.length >= 24 && frame[12] === 0x88 && frame[13] === 0xa2;
}

function errnoError(code: keyof typeof ERRNO, message: string): Error {
  const e = new Error(message) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -ERRNO[code];
  return e;
}

const enum SlotState {
  /** The "kernel" may fill it. */
  Free = 0,
  /** Filled, not yet returned by drain(). */
  Filled = 1,
  /** Returned by drain(), not yet released. */
  Held = 2,
}

let nextFd = 1000;

/** A PacketSocket over plain memory. */
export class FakePacketSocket implements PacketSocket {
  readonly fd = nextFd++;
  readonly ifindex: number;
  readonly ring: Uint8Array;
  readonly frameSize: number;
  readonly frameCount: number;
  readonly accept: 'requests' | 'replies';
  closed = false;
  polling = false;
  /** Wake-ups delivered to the startPolling() callback. */
  wakeUps = 0;
  /** Refuse every send with -EAGAIN (the socket buffer is full). */
  sendBlocked = false;
  /** Accept at most this many frames per send() call (a short count; -EAGAIN when 0). */
  sendLimit = Infinity;
  /** Frames this socket sent, copied. */
  readonly sent: Uint8Array[] = [];

  private readonly state: Uint8Array;
  private readonly lengths: Uint32Array;
  /** Next slot the "kernel" fills. */
  private head = 0;
  /** Next slot drain() looks at. */
  private next = 0;
  private packets = 0;
  private drops = 0;
  private onEvent: ((status: number) => void) | null = null;
  private wakeTimer: NodeJS.Immediate | null = null;

  constructor(
    readonly network: FakeNetwork,
    readonly ifname: string,
    ifindex: number,
    options: PacketSocketOptions,
  ) {
    if (!(options.frameSize >= 64) || !(options.frameCount >= 1)) {
      throw errnoError('EINVAL', `frameSize ${options.frameSize} / frameCount ${options.frameCount} out of range`);
    }
    this.ifindex = ifindex;
    this.frameSize = Math.ceil(options.frameSize / 16) * 16;
    this.frameCount = options.frameCount;
    this.accept = options.accept ?? 'requests';
    this.ring = new Uint8Array(this.frameSize * this.frameCount);
    this.state = new Uint8Array(this.frameCount);
    this.lengths = new Uint32Array(this.frameCount);
  }

  /**
   * Places a frame in the ring as the kernel would: only frames the socket's
   * filter passes, in ring order, and only when the next slot in order has
   * been released (otherwise the frame is dropped and counted in stats()).
   * Wakes the poller on the next turn of the event loop, so frames injected
   * in one turn arrive as one batch. Returns whether the frame was taken.
   */
  inject(frame: Uint8Array): boolean {
    if (this.closed || !isAoe(frame)) return false;
    const response = (frame[14] & 0x08) !== 0;
    if (response !== (this.accept === 'replies')) return false;
    this.packets++;
    const slot = this.head;
    if (this.state[slot] !== SlotState.Free || FRAME_OFFSET_IN_SLOT + frame.length > this.frameSize) {
      this.drops++;
      return false;
    }
    this.ring.set(frame, slot * this.frameSize + FRAME_OFFSET_IN_SLOT);
    this.lengths[slot] = frame.length;
    this.state[slot] = SlotState.Filled;
    this.head = (slot + 1) % this.frameCount;
    this.scheduleWake();
    return true;
  }

  /** Slots currently returned by drain() and not released. */
  get heldSlots(): number {
    let n = 0;
    for (let i = 0; i < this.frameCount; i++) if (this.state[i] === SlotState.Held) n++;
    return n;
  }

  /** A socket error as the poller reports it (POLLERR): the callback gets -errno. */
  raiseError(errno: number): void {
    if (this.polling && this.onEvent) this.onEvent(-errno);
  }

  private checkOpen(): void {
    if (this.closed) throw errnoError('EBADF', `the fake packet socket on ${this.ifname} is closed`);
  }

  private scheduleWake(): void {
    if (!this.polling || this.wakeTimer !== null) return;
    this.wakeTimer = setImmediate(() => {
      this.wakeTimer = null;
      if (!this.polling || !this.ready()) return;
      this.wakeUps++;
      this.onEvent!(0);
      // Level-triggered, like the real poller: frames left in the ring wake it again.
      if (this.ready()) this.scheduleWake();
    });
  }

  drain(desc: Uint32Array, maxFrames: number): number {
    this.checkOpen();
    const max = Math.min(maxFrames, Math.floor(desc.length / 3));
    let n = 0;
    while (n < max && this.state[this.next] === SlotState.Filled) {
      const slot = this.next;
      desc[3 * n] = slot * this.frameSize + FRAME_OFFSET_IN_SLOT;
      desc[3 * n + 1] = this.lengths[slot];
      desc[3 * n + 2] = slot;
      this.state[slot] = SlotState.Held;
      this.next = (slot + 1) % this.frameCount;
      n++;
    }
    return n;
  }

  ready(): boolean {
    return !this.closed && this.state[this.next] === SlotState.Filled;
  }

  release(slot: number): void {
    this.checkOpen();
    if (!(slot >= 0 && slot < this.frameCount) || this.state[slot] !== SlotState.Held) {
      throw new RangeError(`slot ${slot} is not held (released twice, or never returned by drain())`);
    }
    this.state[slot] = SlotState.Free;
    this.ring.fill(0xdb, slot * this.frameSize, (slot + 1) * this.frameSize); // a stale view reads garbage
  }

  releaseMany(slots: Uint32Array, count: number): void {
    this.checkOpen();
    for (let i = 0; i < count; i++) this.release(slots[i]);
  }

  send(arena: Uint8Array, desc: Uint32Array, count: number): number {
    this.checkOpen();
    const iface = this.network.interfaceNamed(this.ifname);
    if (iface === undefined || iface.ifindex !== this.ifindex) return -ERRNO.ENXIO;
    if (!iface.up) return -ERRNO.ENETDOWN;
    let n = 0;
    for (; n < count; n++) {
      if (this.sendBlocked || n >= this.sendLimit) break;
      const off = desc[2 * n];
      const len = desc[2 * n + 1];
      if (len > iface.mtu + 14) return n > 0 ? n : -ERRNO.EMSGSIZE;
      const frame = arena.slice(off, off + len);
      this.sent.push(frame);
      iface.sent.push(frame);
      this.network.timeline.push({ type: 'sent', iface: iface.name, frame });
    }
    return n > 0 || count === 0 ? n : -ERRNO.EAGAIN;
  }

  startPolling(onEvent: (status: number) => void): void {
    this.checkOpen();
    this.onEvent = onEvent;
    this.polling = true;
    if (this.ready()) this.scheduleWake();
  }

  stopPolling(): void {
    this.polling = false;
    if (this.wakeTimer !== null) clearImmediate(this.wakeTimer);
    this.wakeTimer = null;
  }
  /** Only the engine's frame loop calls this, and it has no waiter with fake sockets. */
  setLoopWake(): void {}

  stats(): PacketStats {
    this.checkOpen();
    const s = { packets: this.packets, drops: this.drops };
    this.packets = this.drops = 0;
    return s;
  }

  close(): void {
    if (this.closed) return;
    this.stopPolling();
    this.closed = true;
  }
}

/**
 * The real io ring with a hand on its completions: hold() keeps them back
 * (requests stay in flight, as behind a stalled disk) until release(). Also
 * notes fdatasync starts and completions in the network's timeline.
 */
export class HeldIoRing implements IoRing {
  private held = false;
  private readonly waiting: number[] = [];
  private readonly syncTags = new Set<number>();
  private onReady: (() => void) | null = null;
  private readonly scratch = new Int32Array(512);
  closed = false;

  constructor(
    private readonly inner: IoRing,
    private readonly network: FakeNetwork,
  ) {}

  get eventFd(): number {
    return this.inner.eventFd;
  }

  get kind(): 'io_uring' | 'sync' {
    return this.inner.kind;
  }

  get depth(): number {
    return this.inner.depth;
  }

  hold(): void {
    this.held = true;
  }

  /** Lets held completions through and wakes the owner to reap them. */
  release(): void {
    this.held = false;
    if (this.onReady !== null) {
      const ready = this.onReady;
      setImmediate(() => {
        if (this.onReady === ready) ready();
      });
    }
  }

  /** Completions reaped from the real ring and not yet handed out. */
  get heldCompletions(): number {
    return this.waiting.length / 2;
  }

  registerBuffer(id: number, mem: Uint8Array): void {
    this.inner.registerBuffer(id, mem);
  }

  unregisterBuffer(id: number): void {
    this.inner.unregisterBuffer(id);
  }

  submit(ops: Float64Array, tags: Uint32Array, count: number): number {
    const accepted = this.inner.submit(ops, tags, count);
    for (let i = 0; i < accepted; i++) {
      if ((ops[i * IoOpLayout.Stride + IoOpLayout.Kind] & ~IoOpFlag.Inline) === IoOp.DataSync) {
        this.syncTags.add(tags[i]);
        this.network.timeline.push({ type: 'datasync-start' });
      }
    }
    return accepted;
  }

  private collect(): void {
    const max = this.scratch.length / 2;
    for (;;) {
      const n = this.inner.reap(this.scratch, max);
      for (let i = 0; i < 2 * n; i++) this.waiting.push(this.scratch[i]);
      if (n < max) return;
    }
  }

  reap(out: Int32Array, max: number): number {
    this.collect();
    if (this.held) return 0;
    const n = Math.min(max, Math.floor(out.length / 2), this.waiting.length / 2);
    for (let i = 0; i < n; i++) {
      const tag = this.waiting[2 * i];
      const result = this.waiting[2 * i + 1];
      out[2 * i] = tag;
      out[2 * i + 1] = result;
      if (this.syncTags.delete(tag >>> 0)) this.network.timeline.push({ type: 'datasync-done', result });
    }
    this.waiting.splice(0, 2 * n);
    return n;
  }

  startPolling(onReady: () => void): void {
    this.onReady = onReady;
    this.inner.startPolling(() => {
      if (this.held) this.collect();
      else onReady();
    });
  }

  stopPolling(): void {
    this.onReady = null;
    this.inner.stopPolling();
  }

  close(): void {
    this.closed = true;
    this.inner.close();
  }
}

/** The fake interfaces, the sockets opened on them and the io rings, behind one NativeAddon. */
export class FakeNetwork {
  readonly addon: NativeAddon;
  /** Every socket opened, in order (closed ones too). */
  readonly sockets: FakePacketSocket[] = [];
  /** Every io ring opened, in order. */
  readonly ioRings: HeldIoRing[] = [];
  /** Frames sent and fdatasync starts and completions, in the order they happened. */
  readonly timeline: TimelineEvent[] = [];
  private readonly byName = new Map<string, FakeInterface>();
  private nextIfindex = 2;

  constructor() {
    this.addon = {
      ...native,
      linkInfo: (name: string): LinkInfo | null => {
        const i = this.byName.get(name);
        return i === undefined ? null : { ifindex: i.ifindex, mtu: i.mtu, mac: Uint8Array.from(i.mac), up: i.up };
      },
      openPacket: (name: string, options: PacketSocketOptions): PacketSocket => {
        const i = this.byName.get(name);
        if (i === undefined) throw errnoError('ENODEV', `no interface named ${name}`);
        const s = new FakePacketSocket(this, name, i.ifindex, options);
        this.sockets.push(s);
        return s;
      },
      // Fake sockets have no descriptors to wait on: the engine goes back to libuv after every batch.
      openFrameWaiter: undefined,
      openIoRing: (depth: number): IoRing => {
        const r = new HeldIoRing(native.openIoRing(depth), this);
        this.ioRings.push(r);
        return r;
      },
    };
  }

  addInterface(name: string, init: FakeInterfaceInit = {}): FakeInterface {
    if (this.byName.has(name)) throw new Error(`interface ${name} exists`);
    const i = new FakeInterface(this, name, this.nextIfindex++, init);
    this.byName.set(name, i);
    return i;
  }

  removeInterface(name: string): void {
    if (!this.byName.delete(name)) throw new Error(`no interface ${name}`);
  }

  /** Deletes the interface and creates one of the same name, MTU and MAC: a new ifindex. */
  recreateInterface(name: string): FakeInterface {
    const old = this.byName.get(name);
    if (old === undefined) throw new Error(`no interface ${name}`);
    this.removeInterface(name);
    return this.addInterface(name, { mtu: old.mtu, mac: old.mac, up: old.up });
  }

  interfaceNamed(name: string): FakeInterface | undefined {
    return this.byName.get(name);
  }

  /** Holds (or releases) the completions of every io ring opened. */
  holdIo(on: boolean): void {
    for (const r of this.ioRings) {
      if (on) r.hold();
      else r.release();
    }
  }
}
