// An in-process stand-in for a packet socket with an AoE target behind it, for
// testing the client and the load engine without a network. It has the shape
// of FrameSocket: send() hands request frames to a small target model that
// writes its replies into a receive "ring" (one Uint8Array, fixed slots), and
// the poll callback fires on the next turn of the event loop, like libuv would.
// Not a test file itself (no assertions).

import { FrameSocket } from '../../src/client/transport';
import { fillSectors } from '../../src/client/pattern';

export interface FakeTargetOptions {
  shelf?: number;
  slot?: number;
  mac?: Uint8Array;
  sectors?: number;
  bufferCount?: number;
  /** Max sectors per ATA request (config reply Sector Count). */
  maxSectors?: number;
  /** Fill the disk with the test pattern (default true). */
  patterned?: boolean;
  /** Drop request number k (0-based, counting every frame sent) when this returns true. */
  drop?: (k: number, frame: Uint8Array) => boolean;
  /** Answer ATA requests at these LBAs with this AoE error code. */
  aoeErrorAt?: Map<number, number>;
  /** Corrupt one data byte of read replies at these LBAs. */
  corruptAt?: Set<number>;
  /** Deliver replies after this many ms instead of on the next turn. */
  delayMs?: number;
  /** Also answer each ATA request a second time (a duplicate reply). */
  duplicate?: boolean;
  /** Receive slots (default 256). */
  frameCount?: number;
  /** Accept at most this many frames per send() call (default: all). */
  sendLimit?: number;
}

export class FakeTarget implements FrameSocket {
  readonly frameSize = 10240;
  readonly frameCount: number;
  readonly ring: Uint8Array;
  readonly disk: Uint8Array;
  readonly mac: Uint8Array;
  readonly shelf: number;
  readonly slot: number;
  config = new Uint8Array(0);
  mask: string[] = [];
  reserve: string[] = [];
  /** Every frame sent, copied. */
  readonly sent: Uint8Array[] = [];
  /** Largest number of ATA requests outstanding (received, not yet answered by the client side). */
  sendCalls = 0;
  framesSeen = 0;
  maxBatch = 0;
  closed = false;
  private readonly opts: FakeTargetOptions;
  private readonly busy: Uint8Array;
  private readonly readySlots: number[] = [];
  /** Poll callbacks made: wake-ups of the load engine. */
  wakeUps = 0;
  private readonly lengths: Uint32Array;
  private poll: ((status: number) => void) | undefined;
  private notifyScheduled = false;
  private nextSlot = 0;
  record = false;

  constructor(opts: FakeTargetOptions = {}) {
    this.opts = opts;
    this.frameCount = opts.frameCount ?? 256;
    this.ring = new Uint8Array(this.frameSize * this.frameCount);
    this.busy = new Uint8Array(this.frameCount);
    this.lengths = new Uint32Array(this.frameCount);
    this.mac = opts.mac ?? Uint8Array.from([0x02, 0, 0, 0, 0, 0x0b]);
    this.shelf = opts.shelf ?? 7;
    this.slot = opts.slot ?? 3;
    const sectors = opts.sectors ?? 4096;
    this.disk = new Uint8Array(sectors * 512);
    if (opts.patterned ?? true) fillSectors(this.disk, 0, 0, sectors);
  }

  get sectors(): number {
    return this.disk.length / 512;
  }

  // --- FrameSocket -------------------------------------------------------------

  drain(desc: Uint32Array, maxFrames: number): number {
    let n = 0;
    while (n < maxFrames && n * 3 + 2 < desc.length && this.readySlots.length > 0) {
      const slot = this.readySlots.shift()!;
      desc[n * 3] = slot * this.frameSize + 2; // like a real ring: the frame does not start at the slot's first byte
      desc[n * 3 + 1] = this.lengths[slot];
      desc[n * 3 + 2] = slot;
      n++;
    }
    return n;
  }

  release(slot: number): void {
    if (this.busy[slot] !== 2) throw new Error(`release of slot ${slot} that was not handed out`);
    this.busy[slot] = 0;
  }

  send(arena: Uint8Array, desc: Uint32Array, count: number): number {
    if (this.closed) return -9;
    this.sendCalls++;
    const n = Math.min(count, this.opts.sendLimit ?? count);
    if (n === 0) return -11;
    this.maxBatch = Math.max(this.maxBatch, n);
    for (let i = 0; i < n; i++) {
      const frame = arena.subarray(desc[i * 2], desc[i * 2] + desc[i * 2 + 1]);
      const k = this.framesSeen++;
      if (this.record) this.sent.push(frame.slice());
      if (this.opts.drop?.(k, frame)) continue;
      this.answer(frame);
    }
    return n;
  }

  /** Whether drain() would return a reply now (what a busy-polling load engine asks). */
  ready(): boolean {
    return !this.closed && this.readySlots.length > 0;
  }

  startPolling(onEvent: (status: number) => void): void {
    this.poll = onEvent;
    if (this.readySlots.length > 0) this.schedule();
  }

  stopPolling(): void {
    this.poll = undefined;
  }

  close(): void {
    this.closed = true;
    this.poll = undefined;
  }

  /** Puts a frame into the ring as if it had arrived (for unsolicited frames). */
  inject(frame: Uint8Array): void {
    this.deliver(frame);
  }

  // --- the target model --------------------------------------------------------

  private deliver(frame: Uint8Array): void {
    const put = (): void => {
      for (let tries = 0; tries < this.frameCount; tries++) {
        const slot = this.nextSlot;
        this.nextSlot = (this.nextSlot + 1) % this.frameCount;
        if (this.busy[slot] !== 0) continue;
        this.busy[slot] = 2;
        this.ring.fill(0, slot * this.frameSize, (slot + 1) * this.frameSize);
        this.ring.set(frame, slot * this.frameSize + 2);
        this.lengths[slot] = frame.length;
        this.readySlots.push(slot);
        this.schedule();
        return;
      }
      // Ring full: the frame is lost, as the kernel would drop it.
    };
    if (this.opts.delayMs !== undefined) setTimeout(put, this.opts.delayMs);
    else put();
  }

  private schedule(): void {
    if (this.notifyScheduled || this.poll === undefined) return;
    this.notifyScheduled = true;
    setImmediate(() => {
      this.notifyScheduled = false;
      if (this.poll !== undefined && this.readySlots.length > 0) {
        this.wakeUps++;
        this.poll(0);
      }
    });
  }

  private macText(b: Uint8Array, off: number): string {
    return Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
  }

  private answer(req: Uint8Array): void {
    if (req.length < 24 || req[12] !== 0x88 || req[13] !== 0xa2 || (req[14] & 0x08) !== 0) return;
    const shelf = (req[16] << 8) | req[17];
    const slot = req[18];
    if ((shelf !== this.shelf && shelf !== 0xffff) || (slot !== this.slot && slot !== 0xff)) return;
    const src = this.macText(req, 6);
    if (this.mask.length > 0 && !this.mask.includes(src)) return;
    const cmd = req[19];
    let reply: Uint8Array;
    if (cmd === 0) {
      reply = this.ata(req, src);
      this.deliver(reply);
      if (this.opts.duplicate) this.deliver(reply);
      return;
    } else if (cmd === 1) {
      const ccmd = req[29] & 0x0f;
      const len = (req[30] << 8) | req[31];
      const arg = req.subarray(32, 32 + len);
      let error = 0;
      if (ccmd === 1 && Buffer.compare(arg, this.config) !== 0) return;
      if (ccmd === 2 && (arg.length > this.config.length || Buffer.compare(arg, this.config.subarray(0, arg.length)) !== 0))
        return;
      if (ccmd === 3) {
        if (this.config.length > 0 && Buffer.compare(arg, this.config) !== 0) error = 4;
        else this.config = arg.slice();
      }
      if (ccmd === 4) this.config = arg.slice();
      if (ccmd > 4) error = 2;
      reply = new Uint8Array(32 + this.config.length);
      reply[24] = 0;
      reply[25] = this.opts.bufferCount ?? 16;
      reply[26] = 0x40;
      reply[27] = 0x19;
      reply[28] = this.opts.maxSectors ?? 2;
      reply[29] = 0x10 | ccmd;
      reply[30] = this.config.length >>> 8;
      reply[31] = this.config.length & 0xff;
      reply.set(this.config, 32);
      this.header(reply, req, error);
    } else if (cmd === 2) {
      const mcmd = req[25];
      let merror = 0;
      let failedAt = 0;
      if (mcmd === 1) {
        for (let i = 0; i < req[27]; i++) {
          const p = 28 + i * 8;
          const mac = this.macText(req, p + 2);
          if (req[p + 1] === 1) {
            if (!this.mask.includes(mac)) this.mask.push(mac);
          } else if (req[p + 1] === 2) {
            this.mask = this.mask.filter((m) => m !== mac);
          } else if (req[p + 1] !== 0) {
            merror = 2;
            failedAt = i;
            break;
          }
        }
      }
      const list = merror === 0 ? this.mask : [];
      reply = new Uint8Array(28 + 8 * list.length);
      reply[25] = mcmd;
      reply[26] = merror;
      reply[27] = merror === 0 ? list.length : failedAt;
      list.forEach((m, i) =>
        reply.set(
          m.split(':').map((x) => parseInt(x, 16)),
          28 + i * 8 + 2,
        ),
      );
      this.header(reply, req, 0);
    } else if (cmd === 3) {
      const rcmd = req[24];
      const macs: string[] = [];
      for (let i = 0; i < req[25]; i++) macs.push(this.macText(req, 26 + i * 6));
      let error = 0;
      if (rcmd === 1 && this.reserve.length > 0 && !this.reserve.includes(src)) error = 6;
      else if (rcmd === 1 || rcmd === 2) this.reserve = macs;
      reply = new Uint8Array(26 + 6 * this.reserve.length);
      reply[24] = rcmd;
      reply[25] = this.reserve.length;
      this.reserve.forEach((m, i) =>
        reply.set(
          m.split(':').map((x) => parseInt(x, 16)),
          26 + i * 6,
        ),
      );
      this.header(reply, req, error);
    } else {
      reply = new Uint8Array(24);
      this.header(reply, req, 1);
    }
    this.deliver(reply);
  }

  private header(reply: Uint8Array, req: Uint8Array, error: number): void {
    reply.set(req.subarray(6, 12), 0);
    reply.set(this.mac, 6);
    reply[12] = 0x88;
    reply[13] = 0xa2;
    reply[14] = 0x18 | (error ? 0x04 : 0);
    reply[15] = error;
    reply[16] = this.shelf >>> 8;
    reply[17] = this.shelf & 0xff;
    reply[18] = this.slot;
    reply[19] = req[19];
    reply.set(req.subarray(20, 24), 20);
  }

  private ata(req: Uint8Array, src: string): Uint8Array {
    const opcode = req[27];
    const count = req[26];
    const ext = (req[24] & 0x40) !== 0;
    const lba = ext
      ? req[28] + req[29] * 0x100 + req[30] * 0x10000 + req[31] * 0x1000000 + req[32] * 0x100000000 + req[33] * 0x10000000000
      : req[28] + req[29] * 0x100 + req[30] * 0x10000 + (req[31] & 0x0f) * 0x1000000;
    const fail = (status: number, err: number): Uint8Array => {
      const r = new Uint8Array(36);
      r.set(req.subarray(24, 36), 24);
      r[25] = err;
      r[27] = status;
      this.header(r, req, 0);
      return r;
    };
    const aoeError = this.opts.aoeErrorAt?.get(lba);
    if (aoeError !== undefined || (this.reserve.length > 0 && !this.reserve.includes(src) && opcode !== 0xec)) {
      const r = new Uint8Array(36);
      r.set(req.subarray(24, 36), 24);
      this.header(r, req, aoeError ?? 6);
      return r;
    }
    if (opcode === 0xec) {
      const r = new Uint8Array(36 + 512);
      r.set(req.subarray(24, 36), 24);
      r[27] = 0x40;
      r[26] = 0;
      const w = (i: number, v: number): void => {
        r[36 + 2 * i] = v & 0xff;
        r[37 + 2 * i] = v >>> 8;
      };
      const n = this.sectors;
      w(60, n & 0xffff);
      w(61, n >>> 16);
      w(83, 0x5400);
      w(86, 0x1400);
      w(100, n & 0xffff);
      w(101, n >>> 16);
      const model = 'Fake AoE target'.padEnd(40, ' ');
      for (let i = 0; i < 20; i++) w(27 + i, (model.charCodeAt(2 * i) << 8) | model.charCodeAt(2 * i + 1));
      this.header(r, req, 0);
      return r;
    }
    if (opcode === 0xe7 || opcode === 0xea) return fail(0x40, 0);
    const read = opcode === 0x20 || opcode === 0x24;
    const write = opcode === 0x30 || opcode === 0x34;
    if (!read && !write) return fail(0x41, 0x04);
    if (count > (this.opts.maxSectors ?? 2)) {
      const r = new Uint8Array(36);
      r.set(req.subarray(24, 36), 24);
      this.header(r, req, 2);
      return r;
    }
    if (lba + count > this.sectors) return fail(0x41, 0x10);
    if (write) {
      if (req.length < 36 + count * 512) {
        const r = new Uint8Array(36);
        this.header(r, req, 2);
        return r;
      }
      this.disk.set(req.subarray(36, 36 + count * 512), lba * 512);
      const r = fail(0x40, 0);
      r[26] = 0;
      return r;
    }
    const r = new Uint8Array(36 + count * 512);
    r.set(req.subarray(24, 36), 24);
    r[25] = 0;
    r[26] = 0;
    r[27] = 0x40;
    r.set(this.disk.subarray(lba * 512, (lba + count) * 512), 36);
    if (this.opts.corruptAt?.has(lba)) r[36 + 100] ^= 0xff;
    this.header(r, req, 0);
    return r;
  }
}
