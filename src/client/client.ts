// AoeClient: an AoE initiator for control work (discovery, IDENTIFY, single
// reads and writes, config, mask and reserve commands) and for protocol tests
// (rawExchange sends any frame and collects what comes back). Sending,
// matching replies and retransmitting are FrameExchange's (exchange.ts);
// throughput work belongs to the load engine (load.ts), which shares the socket.

import { AoeError, AtaError, TimeoutError } from './errors';
import { ClientOptions, ExchangeOptions, FrameExchange, ReceivedFrame } from './exchange';
import { IdentifyData, parseIdentify } from './identify';
import { BROADCAST_MAC, parseMac } from './mac';
import {
  AtaReply,
  ConfigReply,
  MaskReply,
  ReplyFormatError,
  ReplyHeader,
  ReserveReply,
  parseAtaReply,
  parseConfigReply,
  parseMaskReply,
  parseReserveReply,
} from './replies';
import {
  FrameAddress,
  MaskDirectiveEntry,
  lba28Field,
  writeAtaRequest,
  writeConfigQuery,
  writeFlush,
  writeIdentify,
  writeMaskRequest,
  writeReadExt,
  writeReserve,
  writeWriteExt,
} from './requests';
import { OpenEndpointOptions, openEndpoint } from './transport';
import {
  AFLAG_WRITE,
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

// The exchange's types are part of the client's interface: callers import them from here.
export type { ClientOptions, ExchangeOptions, RawExchangeOptions, ReceivedFrame } from './exchange';

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

/** The AoE commands an initiator sends: discovery, Query Config, ATA, Mac Mask, Reserve/Release. */
export class AoeClient extends FrameExchange {
  /** Opens a packet socket on `ifname` (in `netns` when given) and a client over it. */
  static open(ifname: string, options: OpenEndpointOptions & Omit<ClientOptions, 'mac' | 'mtu'> = {}): AoeClient {
    const endpoint = openEndpoint(ifname, options);
    const client = new AoeClient(endpoint.socket, { ...options, mac: endpoint.mac, mtu: endpoint.mtu });
    client.endpoint = endpoint;
    return client;
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
