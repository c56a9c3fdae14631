// AoeClient: an AoE initiator for control work (discovery, IDENTIFY, single
// reads and writes, config, mask and reserve commands) and for protocol tests
// (rawExchange sends any frame and collects what comes back). Throughput work
// belongs to the load engine (load.ts), which shares the socket.
//
// Every request has a tag with bit 31 clear (the kernel initiator's half of the
// tag space) unless the client was opened with `userTags`. A request that gets
// no reply is sent again with a new tag, as Linux does, up to `retries` times.

import { AoeError, AtaError, TimeoutError } from './errors';
import { IdentifyData, parseIdentify } from './identify';
import { BROADCAST_MAC, formatMac, parseMac } from './mac';
import {
  AtaReply,
  ConfigReply,
  MaskReply,
  ReplyFormatError,
  ReplyHeader,
  ReserveReply,
  isAoeFrame,
  parseAtaReply,
  parseConfigReply,
  parseHeader,
  parseMaskReply,
  parseReserveReply,
  replyTag,
} from './replies';
import {
  FrameAddress,
  MaskDirectiveEntry,
  lba28Field,
  writeAtaRequest,
  writeBe32,
  writeConfigQuery,
  writeFlush,
  writeIdentify,
  writeMaskRequest,
  writeReadExt,
  writeReserve,
  writeWriteExt,
} from './requests';
import { EAGAIN, ENOBUFS } from '../native/errno';
import { Endpoint, FrameSocket, OpenEndpointOptions, openEndpoint } from './transport';
import {
  AFLAG_WRITE,
  AOE_TAG,
  AtaOpcode,
  Command,
  ConfigCommand,
  MaskCommand,
  MaskDirective,
  ReserveCommand,
  SECTOR_SIZE,
  SHELF_BROADCAST,
  SLOT_BROADCAST,
  maxSectorsForMtu,
} from './wire';

/** The address of one export. */
export interface Target {
  shelf: number;
  slot: number;
  /** The target's MAC (learned from the source of its config reply). */
  mac: Uint8Array;
  /** Maximum sectors per request, from the config reply (0 or absent: 2). */
  sectorCount?: number;
  /** Advertised Buffer Count (how many requests it queues). */
  bufferCount?: number;
}

/** One answer to a discovery broadcast. */
export interface DiscoveredTarget extends Target {
  macText: string;
  bufferCount: number;
  sectorCount: number;
  firmware: number;
  aoeVersion: number;
  /** Config string as text (latin1) and as bytes. */
  config: string;
  configBytes: Uint8Array;
}

/** A frame received during an exchange. `bytes` is a copy, safe to keep. */
export interface ReceivedFrame {
  bytes: Uint8Array;
  header: ReplyHeader;
  /** Milliseconds from the (last) transmission to its arrival. */
  elapsedMs: number;
}

export interface ClientOptions {
  /** Our MAC, the source of every request. */
  mac: Uint8Array;
  /** MTU of the interface (limits request sizes). */
  mtu: number;
  /** Wait for a reply before retransmitting, ms (default 500). */
  timeoutMs?: number;
  /** Retransmissions after the first send (default 3). */
  retries?: number;
  /** Set bit 31 of every tag (the userland tools' convention) instead of clearing it. */
  userTags?: boolean;
  /** Pad every request to 60 bytes (real NICs do this themselves; veth does not). Default false. */
  pad?: boolean;
}

export interface ExchangeOptions {
  timeoutMs?: number;
  retries?: number;
}

export interface RawExchangeOptions {
  /** How long to collect replies (default: the client's timeoutMs). */
  timeoutMs?: number;
  /** Collect only replies carrying the request's tag (bytes 20..23). Default true. */
  matchTag?: boolean;
  /** Stop as soon as this many replies have arrived (default: collect for the whole timeout). */
  max?: number;
  /** Extra filter on each received frame. */
  filter?: (frame: ReceivedFrame) => boolean;
}

export interface AtaCommand {
  aflags?: number;
  feature?: number;
  sectorCount?: number;
  /** ATA opcode. */
  command: number;
  /** The raw six LBA bytes as a number (lba28Field() for 28-bit commands). */
  lba?: number;
  /** Data sent after the ATA header. */
  payload?: Uint8Array;
}

/** Reply to an ATA command: header and ATA fields (data is a view into `frame`). */
export interface AtaResult {
  header: ReplyHeader;
  ata: AtaReply;
  frame: Uint8Array;
}

interface Waiter {
  tag: number;
  matchTag: boolean;
  accept: (frame: ReceivedFrame) => boolean;
  frames: ReceivedFrame[];
  max: number;
  sentAt: number;
  done: (frames: ReceivedFrame[]) => void;
}

const DRAIN_BATCH = 64;

export class AoeClient {
  readonly mac: Uint8Array;
  readonly macText: string;
  mtu: number;
  readonly socket: FrameSocket;
  timeoutMs: number;
  retries: number;
  private readonly userTags: boolean;
  private readonly pad: boolean;
  private nextTag: number;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Set<(frame: ReceivedFrame) => void>();
  private polling = false;
  private paused = false;
  private closed = false;
  private readonly desc = new Uint32Array(DRAIN_BATCH * 3);
  private readonly sendDesc = new Uint32Array(2);
  private endpoint: Endpoint | undefined;

  constructor(socket: FrameSocket, options: ClientOptions) {
    this.socket = socket;
    this.mac = options.mac.slice(0, 6);
    this.macText = formatMac(this.mac);
    this.mtu = options.mtu;
    this.timeoutMs = options.timeoutMs ?? 500;
    this.retries = options.retries ?? 3;
    this.userTags = options.userTags ?? false;
    this.pad = options.pad ?? false;
    this.nextTag = (Math.random() * 0x40000000) >>> 0;
  }

  /** Opens a packet socket on `ifname` (in `netns` when given) and a client over it. */
  static open(ifname: string, options: OpenEndpointOptions & Omit<ClientOptions, 'mac' | 'mtu'> = {}): AoeClient {
    const endpoint = openEndpoint(ifname, options);
    const client = new AoeClient(endpoint.socket, { ...options, mac: endpoint.mac, mtu: endpoint.mtu });
    client.endpoint = endpoint;
    return client;
  }

  get ifname(): string | undefined {
    return this.endpoint?.ifname;
  }

  /** Stops listening and closes the socket (when the client opened it). Pending requests fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopPolling();
    for (const w of [...this.waiters]) w.done(w.frames);
    this.waiters.clear();
    this.socket.close();
  }

  /**
   * Hands the socket to someone else (the load engine) until resume(): the
   * client stops draining the receive ring. Fails while requests are pending.
   */
  pause(): void {
    if (this.waiters.size > 0) throw new Error('cannot pause the client while requests are pending');
    this.paused = true;
    this.stopPolling();
  }

  resume(): void {
    this.paused = false;
    this.updatePolling();
  }

  /** A fresh tag: bit 31 clear (or set with userTags). */
  newTag(): number {
    const t = this.nextTag;
    this.nextTag = (this.nextTag + 1) & 0x7fffffff;
    return this.userTags ? (t | 0x80000000) >>> 0 : t;
  }

  /** Calls `fn` for every AoE frame received while it is registered; returns the unsubscribe function. */
  listen(fn: (frame: ReceivedFrame) => void): () => void {
    this.listeners.add(fn);
    this.updatePolling();
    return () => {
      this.listeners.delete(fn);
      this.updatePolling();
    };
  }

  // --- sending and receiving ------------------------------------------------------

  /** Sends one frame as it is (no tag rewrite, no padding). */
  sendRaw(frame: Uint8Array): void {
    this.checkOpen();
    this.sendDesc[0] = 0;
    this.sendDesc[1] = frame.length;
    // The socket may refuse for a moment when its buffer is full; a control frame can wait for it.
    for (let attempt = 0; ; attempt++) {
      const r = this.socket.send(frame, this.sendDesc, 1);
      if (r === 1) return;
      if ((r === 0 || r === -EAGAIN || r === -ENOBUFS) && attempt < 100) continue; // nothing taken, or the queue is full
      throw new Error(`sending a ${frame.length}-byte frame failed: errno ${-r}`);
    }
  }

  /**
   * Sends `frame` once and collects replies for `timeoutMs` (or until `max`
   * have come). For protocol tests: the frame may be anything, the replies
   * are returned as copies in arrival order. No retransmission.
   */
  rawExchange(frame: Uint8Array, options: RawExchangeOptions = {}): Promise<ReceivedFrame[]> {
    this.checkOpen();
    const tag = frame.length >= AOE_TAG + 4 ? replyTag(frame, 0) : -1;
    const matchTag = (options.matchTag ?? true) && tag >= 0;
    const filter = options.filter ?? (() => true);
    return this.wait(frame, tag, matchTag, filter, options.max ?? Infinity, options.timeoutMs ?? this.timeoutMs);
  }

  /**
   * Sends a request built by `build(buf, tag)` and waits for the first reply
   * with that tag accepted by `accept`; without one within the timeout, sends it
   * again with a new tag, up to `retries` times. Rejects with TimeoutError.
   */
  async exchange(
    build: (buf: Uint8Array, tag: number) => number,
    accept: (frame: ReceivedFrame) => boolean,
    what: string,
    options: ExchangeOptions = {},
  ): Promise<ReceivedFrame> {
    this.checkOpen();
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const retries = options.retries ?? this.retries;
    const buf = new Uint8Array(Math.max(60, this.mtu + 14));
    let length = build(buf, 0);
    if (this.pad && length < 60) {
      buf.fill(0, length, 60);
      length = 60;
    }
    const frame = buf.subarray(0, length);
    for (let attempt = 0; attempt <= retries; attempt++) {
      const tag = this.newTag();
      writeBe32(frame, AOE_TAG, tag);
      const got = await this.wait(frame, tag, true, accept, 1, timeoutMs);
      if (got.length > 0) return got[0];
    }
    throw new TimeoutError(`${what}: no reply after ${retries + 1} tries of ${timeoutMs} ms`);
  }

  private wait(
    frame: Uint8Array,
    tag: number,
    matchTag: boolean,
    accept: (frame: ReceivedFrame) => boolean,
    max: number,
    timeoutMs: number,
  ): Promise<ReceivedFrame[]> {
    return new Promise((resolve, reject) => {
      const timing: { timer?: NodeJS.Timeout } = {};
      const waiter: Waiter = {
        tag,
        matchTag,
        accept,
        frames: [],
        max,
        sentAt: performance.now(),
        done: (frames) => {
          if (timing.timer !== undefined) clearTimeout(timing.timer);
          this.waiters.delete(waiter);
          this.updatePolling();
          resolve(frames);
        },
      };
      this.waiters.add(waiter);
      this.updatePolling();
      // Anything already in the ring is older than this request.
      waiter.sentAt = performance.now();
      try {
        this.sendRaw(frame);
      } catch (e) {
        this.waiters.delete(waiter);
        this.updatePolling();
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      timing.timer = setTimeout(() => waiter.done(waiter.frames), timeoutMs);
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the AoE client is closed');
  }

  private updatePolling(): void {
    const want = !this.closed && !this.paused && (this.waiters.size > 0 || this.listeners.size > 0);
    if (want && !this.polling) {
      this.polling = true;
      this.socket.startPolling(this.onReadable);
      this.drainRing(false);
    } else if (!want && this.polling) {
      this.stopPolling();
    }
  }

  private stopPolling(): void {
    if (this.polling) {
      this.polling = false;
      this.socket.stopPolling();
    }
  }

  private readonly onReadable = (status: number): void => {
    if (status < 0) {
      // A socket error (link gone): let pending requests time out and retry.
      return;
    }
    this.drainRing(true);
  };

  private drainRing(deliver: boolean): void {
    const ring = this.socket.ring;
    for (;;) {
      const n = this.socket.drain(this.desc, DRAIN_BATCH);
      if (n <= 0) return;
      for (let i = 0; i < n; i++) {
        const off = this.desc[i * 3];
        const len = this.desc[i * 3 + 1];
        const slot = this.desc[i * 3 + 2];
        if (deliver && isAoeFrame(ring, off, len)) this.deliver(ring.slice(off, off + len));
        this.socket.release(slot);
      }
      if (this.closed) return;
    }
  }

  private deliver(bytes: Uint8Array): void {
    const header = parseHeader(bytes);
    const now = performance.now();
    for (const fn of this.listeners) fn({ bytes, header, elapsedMs: 0 });
    for (const w of this.waiters) {
      if (w.matchTag && header.tag !== w.tag) continue;
      const frame: ReceivedFrame = { bytes, header, elapsedMs: now - w.sentAt };
      if (!w.accept(frame)) continue;
      w.frames.push(frame);
      if (w.frames.length >= w.max) w.done(w.frames);
    }
  }

  private address(target: { shelf: number; slot: number; mac?: Uint8Array }): FrameAddress {
    return { dst: target.mac ?? BROADCAST_MAC, src: this.mac, shelf: target.shelf, slot: target.slot };
  }

  // --- discovery and Query Config ----------------------------------------------------

  /**
   * Broadcasts a Query Config read for shelf/slot (0xffff/0xff: all) and
   * collects the answers for `timeoutMs`. One entry per (shelf, slot, MAC).
   * With `first`, returns as soon as one answer has come.
   */
  async discover(
    shelf = SHELF_BROADCAST,
    slot = SLOT_BROADCAST,
    timeoutMs = this.timeoutMs,
    first = false,
  ): Promise<DiscoveredTarget[]> {
    const buf = new Uint8Array(60);
    const length = writeConfigQuery(buf, 0, this.address({ shelf, slot }), this.newTag(), ConfigCommand.Read);
    const frames = await this.rawExchange(buf.subarray(0, this.pad ? 60 : length), {
      timeoutMs,
      max: first ? 1 : Infinity,
      filter: (f) =>
        f.header.response &&
        !f.header.error &&
        f.header.command === Command.QueryConfig &&
        (shelf === SHELF_BROADCAST || f.header.shelf === shelf) &&
        (slot === SLOT_BROADCAST || f.header.slot === slot) &&
        f.bytes.length >= 32,
    });
    const seen = new Map<string, DiscoveredTarget>();
    for (const f of frames) {
      const key = `${f.header.shelf}.${f.header.slot}@${f.header.src}`;
      if (seen.has(key)) continue;
      const cfg = parseConfigReply(f.bytes);
      seen.set(key, {
        shelf: f.header.shelf,
        slot: f.header.slot,
        mac: parseMac(f.header.src),
        macText: f.header.src,
        bufferCount: cfg.bufferCount,
        sectorCount: cfg.sectorCount,
        firmware: cfg.firmware,
        aoeVersion: cfg.aoeVersion,
        config: latin1(cfg.config),
        configBytes: cfg.config.slice(),
      });
    }
    return [...seen.values()].sort((a, b) => a.shelf - b.shelf || a.slot - b.slot || a.macText.localeCompare(b.macText));
  }

  /** Discovers one export; throws a TimeoutError naming it when nothing answers. */
  async find(shelf: number, slot: number, timeoutMs = 2000): Promise<DiscoveredTarget> {
    const deadline = Date.now() + timeoutMs;
    do {
      const found = await this.discover(shelf, slot, Math.min(this.timeoutMs, Math.max(1, deadline - Date.now())), true);
      if (found.length > 0) return found[0];
    } while (Date.now() < deadline);
    throw new TimeoutError(`no AoE target e${shelf}.${slot} answered a config query within ${timeoutMs} ms`);
  }

  /**
   * Any Query Config sub-command. Resolves with the reply, or null when none
   * came (test and prefix test are answered only on a match). A reply with E
   * set rejects with AoeError (e.g. error 4 for set when a string is present).
   */
  async config(
    target: Target,
    ccmd: number,
    value: Uint8Array | string = new Uint8Array(0),
    options: ExchangeOptions = {},
  ): Promise<(ConfigReply & { header: ReplyHeader }) | null> {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    const silentOnMismatch = ccmd === ConfigCommand.Test || ccmd === ConfigCommand.PrefixTest;
    let f: ReceivedFrame;
    try {
      f = await this.exchange(
        (buf, tag) => writeConfigQuery(buf, 0, this.address(target), tag, ccmd, bytes),
        (r) => this.fromTarget(r, target, Command.QueryConfig),
        `config command ${ccmd}`,
        silentOnMismatch ? { retries: 0, ...options } : options,
      );
    } catch (e) {
      if (silentOnMismatch && e instanceof TimeoutError) return null;
      throw e;
    }
    if (f.header.error) throw new AoeError(f.header.errorCode, f.header, f.bytes, `config command ${ccmd}`);
    return { ...parseConfigReply(f.bytes), header: f.header };
  }

  async configRead(target: Target): Promise<string> {
    return latin1((await this.config(target, ConfigCommand.Read))!.config);
  }

  /** True when the target's config string is exactly `value`. */
  async configTest(target: Target, value: string, options: ExchangeOptions = {}): Promise<boolean> {
    return (await this.config(target, ConfigCommand.Test, value, options)) !== null;
  }

  /** True when `value` is a prefix of the target's config string. */
  async configPrefixTest(target: Target, value: string, options: ExchangeOptions = {}): Promise<boolean> {
    return (await this.config(target, ConfigCommand.PrefixTest, value, options)) !== null;
  }

  /** Sets the config string unless a different one is present (AoeError code 4). */
  async configSet(target: Target, value: string): Promise<string> {
    return latin1((await this.config(target, ConfigCommand.Set, value))!.config);
  }

  async configForceSet(target: Target, value: string): Promise<string> {
    return latin1((await this.config(target, ConfigCommand.ForceSet, value))!.config);
  }

  private fromTarget(r: ReceivedFrame, target: { shelf: number; slot: number }, command: number): boolean {
    return (
      r.header.response &&
      r.header.command === command &&
      (target.shelf === SHELF_BROADCAST || r.header.shelf === target.shelf) &&
      (target.slot === SLOT_BROADCAST || r.header.slot === target.slot)
    );
  }

  // --- ATA ---------------------------------------------------------------------------

  /** Any ATA command. Resolves with the reply whatever its ATA status; rejects with AoeError when E is set. */
  async ata(target: Target, cmd: AtaCommand, options: ExchangeOptions = {}): Promise<AtaResult> {
    const payload = cmd.payload;
    const what = `ATA command 0x${cmd.command.toString(16)}`;
    const f = await this.exchange(
      (buf, tag) =>
        writeAtaRequest(
          buf,
          0,
          this.address(target),
          tag,
          cmd.aflags ?? 0,
          cmd.feature ?? 0,
          cmd.sectorCount ?? 0,
          cmd.command,
          cmd.lba ?? 0,
          payload?.length ?? 0,
          payload,
        ),
      (r) => this.fromTarget(r, target, Command.Ata),
      what,
      options,
    );
    if (f.header.error) throw new AoeError(f.header.errorCode, f.header, f.bytes, what);
    return { header: f.header, ata: parseAtaReply(f.bytes), frame: f.bytes };
  }

  private async ataChecked(target: Target, build: (buf: Uint8Array, tag: number) => number, what: string): Promise<AtaResult> {
    const f = await this.exchange(build, (r) => this.fromTarget(r, target, Command.Ata), what);
    if (f.header.error) throw new AoeError(f.header.errorCode, f.header, f.bytes, what);
    const ata = parseAtaReply(f.bytes);
    if (ata.failed) throw new AtaError(ata.status, ata.err, ata, what);
    return { header: f.header, ata, frame: f.bytes };
  }

  /** IDENTIFY DEVICE, parsed; `raw` is the 512-byte block. */
  async identify(target: Target): Promise<IdentifyData & { raw: Uint8Array }> {
    const r = await this.ataChecked(target, (buf, tag) => writeIdentify(buf, 0, this.address(target), tag), 'IDENTIFY');
    if (r.ata.data.length < 512) {
      throw new ReplyFormatError(`IDENTIFY reply carries ${r.ata.data.length} data bytes, need 512`);
    }
    const raw = r.ata.data.slice(0, 512);
    return { ...parseIdentify(raw), raw };
  }

  /** Largest sectors per request for this target and our MTU. */
  maxSectors(target: Target): number {
    const advertised = target.sectorCount === undefined || target.sectorCount === 0 ? 2 : target.sectorCount;
    return Math.max(1, Math.min(advertised, maxSectorsForMtu(this.mtu), 255));
  }

  /**
   * Reads `count` sectors at `lba` with READ SECTORS EXT, split into requests
   * the target accepts, several in flight (up to its Buffer Count, at most 16).
   */
  async read(target: Target, lba: number, count: number): Promise<Uint8Array> {
    const out = new Uint8Array(count * SECTOR_SIZE);
    await this.chunked(target, count, async (first, n) => {
      const r = await this.ataChecked(
        target,
        (buf, tag) => writeReadExt(buf, 0, this.address(target), tag, lba + first, n),
        `read of ${sectors(n)} at LBA ${lba + first}`,
      );
      if (r.ata.data.length < n * SECTOR_SIZE) {
        throw new ReplyFormatError(`read reply carries ${r.ata.data.length} data bytes, need ${n * SECTOR_SIZE}`);
      }
      out.set(r.ata.data.subarray(0, n * SECTOR_SIZE), first * SECTOR_SIZE);
    });
    return out;
  }

  /** Writes whole sectors (data.length must be a multiple of 512) at `lba` with WRITE SECTORS EXT. */
  async write(target: Target, lba: number, data: Uint8Array): Promise<void> {
    if (data.length % SECTOR_SIZE !== 0)
      throw new RangeError(`write of ${data.length} bytes: not a whole number of 512-byte sectors`);
    await this.chunked(target, data.length / SECTOR_SIZE, async (first, n) => {
      await this.ataChecked(
        target,
        (buf, tag) =>
          writeWriteExt(
            buf,
            0,
            this.address(target),
            tag,
            lba + first,
            n,
            data.subarray(first * SECTOR_SIZE, (first + n) * SECTOR_SIZE),
          ),
        `write of ${sectors(n)} at LBA ${lba + first}`,
      );
    });
  }

  /** READ SECTORS (28-bit) in one request. */
  async read28(target: Target, lba: number, count: number): Promise<Uint8Array> {
    const r = await this.ataChecked(
      target,
      (buf, tag) => writeAtaRequest(buf, 0, this.address(target), tag, 0, 0, count, AtaOpcode.ReadSectors, lba28Field(lba)),
      `28-bit read of ${sectors(count)} at LBA ${lba}`,
    );
    return r.ata.data.slice(0, count * SECTOR_SIZE);
  }

  /** WRITE SECTORS (28-bit) in one request. */
  async write28(target: Target, lba: number, data: Uint8Array): Promise<void> {
    const count = data.length / SECTOR_SIZE;
    await this.ataChecked(
      target,
      (buf, tag) =>
        writeAtaRequest(
          buf,
          0,
          this.address(target),
          tag,
          AFLAG_WRITE,
          0,
          count,
          AtaOpcode.WriteSectors,
          lba28Field(lba),
          data.length,
          data,
        ),
      `28-bit write of ${sectors(count)} at LBA ${lba}`,
    );
  }

  /** FLUSH CACHE (or FLUSH CACHE EXT); resolves once the target has answered without error. */
  async flush(target: Target, extended = false, options: ExchangeOptions = {}): Promise<AtaResult> {
    const what = extended ? 'FLUSH CACHE EXT' : 'FLUSH CACHE';
    const f = await this.exchange(
      (buf, tag) => writeFlush(buf, 0, this.address(target), tag, extended),
      (r) => this.fromTarget(r, target, Command.Ata),
      what,
      { timeoutMs: Math.max(this.timeoutMs, 5000), ...options },
    );
    if (f.header.error) throw new AoeError(f.header.errorCode, f.header, f.bytes, what);
    const ata = parseAtaReply(f.bytes);
    if (ata.failed) throw new AtaError(ata.status, ata.err, ata, what);
    return { header: f.header, ata, frame: f.bytes };
  }

  private async chunked(target: Target, count: number, one: (first: number, n: number) => Promise<void>): Promise<void> {
    const per = this.maxSectors(target);
    const window = Math.max(1, Math.min(target.bufferCount ?? 16, 16));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const first = next;
        const n = Math.min(per, count - first);
        next += n;
        await one(first, n);
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, Math.ceil(count / per)) }, worker));
  }

  // --- Mac Mask List -------------------------------------------------------------------

  /** Any Mac Mask command; resolves with the reply (check merror), rejects with AoeError when E is set. */
  async mask(
    target: Target,
    mcmd: number,
    directives: readonly MaskDirectiveEntry[] = [],
  ): Promise<MaskReply & { header: ReplyHeader }> {
    const f = await this.exchange(
      (buf, tag) => writeMaskRequest(buf, 0, this.address(target), tag, mcmd, directives),
      (r) => this.fromTarget(r, target, Command.MacMask),
      'mac mask command',
    );
    if (f.header.error) throw new AoeError(f.header.errorCode, f.header, f.bytes, 'mac mask command');
    return { ...parseMaskReply(f.bytes), header: f.header };
  }

  async maskRead(target: Target): Promise<string[]> {
    return (await this.mask(target, MaskCommand.Read)).directives.map((d) => d.mac);
  }

  /** Applies add/delete directives in order; resolves with the reply (merror 0 on success, with the whole list). */
  async maskEdit(target: Target, add: readonly string[] = [], remove: readonly string[] = []): Promise<MaskReply> {
    const directives: MaskDirectiveEntry[] = [
      ...add.map((m) => ({ command: MaskDirective.Add, mac: parseMac(m) })),
      ...remove.map((m) => ({ command: MaskDirective.Delete, mac: parseMac(m) })),
    ];
    return this.mask(target, MaskCommand.Edit, directives);
  }

  // --- Reserve / Release ---------------------------------------------------------------

  /** Any Reserve/Release command; rejects with AoeError when E is set (e.g. 6 when reserved by others). */
  async reserve(
    target: Target,
    rcmd: number,
    macs: readonly (string | Uint8Array)[] = [],
  ): Promise<ReserveReply & { header: ReplyHeader }> {
    const bytes = macs.map((m) => (typeof m === 'string' ? parseMac(m) : m));
    const f = await this.exchange(
      (buf, tag) => writeReserve(buf, 0, this.address(target), tag, rcmd, bytes),
      (r) => this.fromTarget(r, target, Command.ReserveRelease),
      'reserve command',
    );
    if (f.header.error) throw new AoeError(f.header.errorCode, f.header, f.bytes, 'reserve command');
    return { ...parseReserveReply(f.bytes), header: f.header };
  }

  async reserveRead(target: Target): Promise<string[]> {
    return (await this.reserve(target, ReserveCommand.Read)).macs;
  }

  async reserveSet(target: Target, macs: readonly (string | Uint8Array)[]): Promise<string[]> {
    return (await this.reserve(target, ReserveCommand.Set, macs)).macs;
  }

  async reserveForceSet(target: Target, macs: readonly (string | Uint8Array)[]): Promise<string[]> {
    return (await this.reserve(target, ReserveCommand.ForceSet, macs)).macs;
  }

  /** Set with an empty list: releases a reservation we hold (or that is empty). */
  async release(target: Target): Promise<string[]> {
    return (await this.reserve(target, ReserveCommand.Set, [])).macs;
  }
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/** "1 sector", "2 sectors": how error messages count. */
function sectors(n: number): string {
  return `${n} sector${n === 1 ? '' : 's'}`;
}
