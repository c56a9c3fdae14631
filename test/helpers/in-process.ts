// Shared pieces of the serving-core tests: a Server started on the fake addon
// (test/helpers/fake-addon.ts) and an initiator that talks to it through a
// fake interface, building requests with src/client/requests.ts and reading
// replies with src/client/replies.ts. Not a test file itself.

import pino, { type Logger } from 'pino';
import type { ExportConfig } from '../../src/config/export-config';
import { Server, type ServerHooks, type ServerOptions } from '../../src/target/server';
import {
  isAoeResponse,
  parseAtaReply,
  parseConfigReply,
  parseHeader,
  replyCommand,
  replyTag,
  type AtaReply,
  type ConfigReply,
  type ReplyHeader,
} from '../../src/client/replies';
import {
  padFrame,
  writeConfigQuery,
  writeFlush,
  writeMaskEdit,
  writeIdentify,
  writeReadExt,
  writeReserve,
  writeWriteExt,
  type FrameAddress,
} from '../../src/client/requests';
import { BROADCAST_MAC, parseMac } from '../../src/client/mac';
import {
  Command,
  ConfigCommand,
  MaskDirective,
  ReserveCommand,
  SECTOR_SIZE,
  SHELF_BROADCAST,
  SLOT_BROADCAST,
} from '../../src/client/wire';
import type { TestLike } from '../../lab/common';
import { exportConfig } from './export-config';
import { FakeNetwork, type FakeInterface, type FakeInterfaceInit } from './fake-addon';

export const IFACE = 'fake0';

/** An export of `file` as 1.2 on fake0, with the defaults a command line would give. */
export function exportOf(file: string, over: Partial<ExportConfig> = {}): ExportConfig {
  return exportConfig({ slot: 2, file, interfaces: [IFACE], ...over });
}

export interface Target {
  server: Server;
  net: FakeNetwork;
  iface: FakeInterface;
  initiator: Initiator;
}

/** The serving core with one export on a fake network of one interface; stopped at teardown (a second stop() does nothing). */
export async function startOneExport(
  t: TestLike,
  config: ExportConfig,
  log: Logger = pino({ level: 'silent' }),
): Promise<{ server: Server; net: FakeNetwork }> {
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const server = await Server.start(
    { exports: [config] },
    log,
    {},
    { linkCheckMs: 60_000, duplicateProbeMs: 0, addon: net.addon },
  );
  let stopped = false;
  const stop = server.stop.bind(server);
  server.stop = async () => {
    if (stopped) return;
    stopped = true;
    await stop();
  };
  t.teardown(() => server.stop());
  net.interfaceNamed(IFACE)!.takeSent();
  return { server, net };
}

/**
 * Starts a Server on a fake network with one interface, fake0. Teardown lets
 * held io complete, then stops the server. The start-up announcement is
 * taken off the wire unless `keepAnnouncement`.
 */
export async function startInProcess(
  t: TestLike,
  exportList: ExportConfig[],
  options: ServerOptions = {},
  ifaceInit: FakeInterfaceInit = {},
  keepAnnouncement = false,
  /** State persistence (saveState, initialState); none by default: state in memory only. */
  hooks: ServerHooks = {},
): Promise<Target> {
  const net = new FakeNetwork();
  const iface = net.addInterface(IFACE, ifaceInit);
  const server = await Server.start({ exports: exportList }, pino({ level: 'silent' }), hooks, {
    linkCheckMs: 60_000,
    // No probe on the fake network, and no claim of the address on this host, which parallel tests share.
    duplicateProbeMs: 0,
    ...options,
    addon: net.addon,
  });
  t.teardown(async () => {
    net.holdIo(false);
    await server.stop();
  });
  if (!keepAnnouncement) iface.takeSent();
  return { server, net, iface, initiator: new Initiator(net, IFACE) };
}

/** A logger at info that keeps every line it is given, parsed, in `lines`. */
export function keptLog(): { log: Logger; lines: { level: number; msg: string; [field: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  return {
    log: pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as { level: number; msg: string }) }),
    lines,
  };
}

/** Resolves once `cond()` holds; rejects after `ms` with `what` in the message. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Lets the event loop run a few turns (io completions, retries): for "nothing more happens" checks. */
export async function settle(ms = 20): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** A reply frame with its header parsed. */
export interface Reply {
  frame: Uint8Array;
  header: ReplyHeader;
}

/** An AoE initiator on the far end of a fake interface. */
export class Initiator {
  readonly mac: Uint8Array;
  private tag = 0x1000;
  private seen = 0;
  /** Replies taken off the wire and not yet claimed by a reply() call, by tag. */
  private readonly pending = new Map<number, Uint8Array[]>();

  constructor(
    readonly net: FakeNetwork,
    readonly ifname: string,
    /** Our source address; another initiator on the same wire needs another one. */
    mac = '02:00:00:00:0a:01',
  ) {
    this.mac = parseMac(mac);
    this.tag = 0x1000 + (this.mac[5] << 16); // tags of two initiators never meet
  }

  get iface(): FakeInterface {
    const i = this.net.interfaceNamed(this.ifname);
    if (i === undefined) throw new Error(`${this.ifname} does not exist now`);
    return i;
  }

  addr(shelf = 1, slot = 2): FrameAddress {
    return { dst: this.iface.mac, src: this.mac, shelf, slot };
  }

  /** Frames are built here; receive() copies them into the rings. */
  private readonly scratch = new Uint8Array(65536);

  private put(build: (buf: Uint8Array, tag: number) => number): number {
    const buf = this.scratch;
    const tag = this.tag++;
    const len = padFrame(buf, 0, build(buf, tag));
    this.iface.receive(buf.subarray(0, len));
    return tag;
  }

  /** Sends a Query Config read to every shelf and slot (broadcast); returns its tag. */
  queryConfigBroadcast(): number {
    return this.put((b, tag) =>
      writeConfigQuery(b, 0, { dst: BROADCAST_MAC, src: this.mac, shelf: SHELF_BROADCAST, slot: SLOT_BROADCAST }, tag),
    );
  }

  queryConfig(shelf = 1, slot = 2): number {
    return this.put((b, tag) => writeConfigQuery(b, 0, this.addr(shelf, slot), tag));
  }

  /** Query Config set (ccmd 3): stores `text` as the config string while none is set. */
  setConfigString(text: string, shelf = 1, slot = 2): number {
    return this.put((b, tag) =>
      writeConfigQuery(b, 0, this.addr(shelf, slot), tag, ConfigCommand.Set, Buffer.from(text, 'latin1')),
    );
  }

  /** Query Config force set (ccmd 4). */
  forceSetConfigString(text: string, shelf = 1, slot = 2): number {
    return this.put((b, tag) =>
      writeConfigQuery(b, 0, this.addr(shelf, slot), tag, ConfigCommand.ForceSet, Buffer.from(text, 'latin1')),
    );
  }

  /** Reserve/Release set (or `rcmd`) with these MACs. */
  reserve(macs: readonly string[], rcmd: number = ReserveCommand.Set, shelf = 1, slot = 2): number {
    return this.put((b, tag) => writeReserve(b, 0, this.addr(shelf, slot), tag, rcmd, macs.map(parseMac)));
  }

  /** Mac Mask edit adding these MACs. */
  maskAdd(macs: readonly string[], shelf = 1, slot = 2): number {
    return this.put((b, tag) =>
      writeMaskEdit(
        b,
        0,
        this.addr(shelf, slot),
        tag,
        macs.map((m) => ({ command: MaskDirective.Add, mac: parseMac(m) })),
      ),
    );
  }

  read(lba: number, count: number, shelf = 1, slot = 2): number {
    return this.put((b, tag) => writeReadExt(b, 0, this.addr(shelf, slot), tag, lba, count));
  }

  write(lba: number, data: Uint8Array, shelf = 1, slot = 2): number {
    return this.put((b, tag) => writeWriteExt(b, 0, this.addr(shelf, slot), tag, lba, data.length / SECTOR_SIZE, data));
  }

  identify(shelf = 1, slot = 2): number {
    return this.put((b, tag) => writeIdentify(b, 0, this.addr(shelf, slot), tag));
  }

  flush(shelf = 1, slot = 2): number {
    return this.put((b, tag) => writeFlush(b, 0, this.addr(shelf, slot), tag, true));
  }

  /** Mac Mask edit adding `macs`, sent to `shelf.slot` (broadcast ones included) with the Ethernet broadcast as destination. */
  maskAddBroadcast(macs: readonly string[], shelf = 1, slot = 2): number {
    const dirs = macs.map((m) => ({ command: 1, mac: parseMac(m) }));
    return this.put((b, tag) => writeMaskEdit(b, 0, { dst: BROADCAST_MAC, src: this.mac, shelf, slot }, tag, dirs));
  }

  /** Reserve force set (RCmd 2) of `macs`, sent like maskAddBroadcast. */
  reserveForce(macs: readonly string[], shelf = 1, slot = 2): number {
    const list = macs.map((m) => parseMac(m));
    return this.put((b, tag) => writeReserve(b, 0, { dst: BROADCAST_MAC, src: this.mac, shelf, slot }, tag, 2, list));
  }

  /** Moves AoE replies from the wire into `pending`. */
  private collect(): void {
    const sent = this.iface.sent;
    // The interface object changes when it is recreated; the old one keeps its own list.
    // Unicast replies to another initiator stay on the wire for it.
    const others: Uint8Array[] = [];
    for (const frame of sent.splice(0, sent.length)) {
      if (!isAoeResponse(frame, 0, frame.length)) continue;
      if (!(frame[0] & 1) && !this.mac.every((b, i) => frame[i] === b)) {
        others.push(frame);
        continue;
      }
      const tag = replyTag(frame, 0);
      const list = this.pending.get(tag) ?? [];
      list.push(frame);
      this.pending.set(tag, list);
      this.seen++;
    }
    sent.push(...others);
  }

  /** Waits for the reply with this tag. */
  async reply(tag: number, ms = 2000): Promise<Reply> {
    await until(
      () => {
        this.collect();
        return (this.pending.get(tag)?.length ?? 0) > 0;
      },
      `the reply to tag 0x${tag.toString(16)}`,
      ms,
    );
    const frame = this.pending.get(tag)!.shift()!;
    return { frame, header: parseHeader(frame) };
  }

  async ataReply(tag: number, ms?: number): Promise<{ header: ReplyHeader; ata: AtaReply; length: number }> {
    const r = await this.reply(tag, ms);
    if (r.header.command !== Command.Ata) throw new Error(`reply to 0x${tag.toString(16)} is command ${r.header.command}`);
    return { header: r.header, ata: parseAtaReply(r.frame), length: r.frame.length };
  }

  async configReply(tag: number, ms?: number): Promise<{ header: ReplyHeader; config: ConfigReply }> {
    const r = await this.reply(tag, ms);
    if (replyCommand(r.frame, 0) !== Command.QueryConfig)
      throw new Error(`reply to 0x${tag.toString(16)} is not a Query Config reply`);
    return { header: r.header, config: parseConfigReply(r.frame) };
  }

  /** Replies taken off the wire with this tag that no reply() call claimed, after collecting what is there now. */
  unclaimed(tag: number): number {
    this.collect();
    return this.pending.get(tag)?.length ?? 0;
  }

  /** All replies seen so far. */
  get repliesSeen(): number {
    this.collect();
    return this.seen;
  }
}
