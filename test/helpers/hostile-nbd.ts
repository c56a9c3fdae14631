// An NBD server that lies, for the remote-store attack tests: it speaks
// just enough of the fixed-newstyle handshake (structured replies, GO) for
// libnbd to reach the transmission phase, then hands every request to the
// test's `answer`, which writes whatever replies it likes, right or wrong.

import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestLike } from '../../lab/common';
import { tempDir } from './files';
import { nbdUri } from './nbd-server';

const OPT_MAGIC = 0x49484156454f5054n; // IHAVEOPT
const REP_MAGIC = 0x3e889045565a9n;
const REQ_MAGIC = 0x25609513;
const SIMPLE_MAGIC = 0x67446698;
const STRUCTURED_MAGIC = 0x668e33ef;
const OPT_GO = 7;
const OPT_STRUCTURED = 8;
const REP_ACK = 1;
const REP_INFO = 3;
const REP_ERR_UNSUP = 0x80000001;

export const NBD_CMD = { read: 0, write: 1, disc: 2, flush: 3 } as const;
/** Transmission flags: has-flags, flush, FUA, multi-conn. */
export const NBD_FLAG = { hasFlags: 1, readOnly: 2, flush: 4, fua: 8, multiConn: 256 } as const;

export interface NbdRequest {
  flags: number;
  type: number;
  cookie: bigint;
  offset: bigint;
  length: number;
  /** A write's data. */
  data?: Buffer;
}

export interface HostileConn {
  socket: Socket;
  /** The connection's number on this server, from 0. */
  index: number;
  simple(cookie: bigint, error: number, data?: Buffer): void;
  /** Whether the client asked for structured replies. */
  structured: boolean;
  /** An honest, successful reply: a read's data as the client expects it. */
  ok(req: NbdRequest, data?: Buffer): void;
  /** One structured reply chunk, sent whether or not the client asked for structured replies. */
  chunk(cookie: bigint, type: number, done: boolean, payload: Buffer): void;
}

export interface HostileOptions {
  size: (conn: number) => bigint;
  /** Transmission flags, for each connection by its number. */
  flags?: number | ((conn: number) => number);
  /** Whether to take a new connection (else it is closed at once); the default takes all. */
  accept?: () => boolean;
  /** Called once the handshake is done, before any request. */
  afterHandshake?: (conn: HostileConn) => void;
  /** Called for each request; the default answers nothing. */
  answer?: (conn: HostileConn, req: NbdRequest) => void;
}

export interface HostileServer {
  server: Server;
  /** Drops every connection open now (the client reconnects). */
  dropAll(): void;
  /** Drops the first connection made (the client's connection 0), if still open. */
  dropFirst(): void;
  socket: string;
  uri: string;
  /** Every request seen, by connection. */
  requests: { conn: number; req: NbdRequest }[];
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
}

function optReply(s: Socket, opt: number, type: number, data: Buffer = Buffer.alloc(0)): void {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(REP_MAGIC, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(type, 12);
  h.writeUInt32BE(data.length, 16);
  s.write(Buffer.concat([h, data]));
}

/** A reader of exact byte counts from a socket's stream. */
function reader(s: Socket): (n: number) => Promise<Buffer | undefined> {
  let buf = Buffer.alloc(0);
  let ended = false;
  let wake: (() => void) | undefined;
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    wake?.();
  });
  s.on('close', () => {
    ended = true;
    wake?.();
  });
  return async (n) => {
    while (buf.length < n) {
      if (ended) return undefined;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
}

async function serve(s: Socket, index: number, o: HostileOptions, seen: HostileServer['requests']): Promise<void> {
  const read = reader(s);
  let structured = false;
  s.write(Buffer.concat([Buffer.from('NBDMAGIC'), u64(OPT_MAGIC), Buffer.from([0, 3])]));
  if ((await read(4)) === undefined) return;
  for (;;) {
    const h = await read(16);
    if (h === undefined) return;
    const opt = h.readUInt32BE(8);
    const len = h.readUInt32BE(12);
    if (len > 0 && (await read(len)) === undefined) return;
    if (opt === OPT_STRUCTURED) {
      structured = true;
      optReply(s, opt, REP_ACK);
    } else if (opt === OPT_GO) {
      const info = Buffer.alloc(12);
      info.writeUInt16BE(0, 0);
      info.writeBigUInt64BE(o.size(index), 2);
      const flags = typeof o.flags === 'function' ? o.flags(index) : o.flags;
      info.writeUInt16BE(flags ?? NBD_FLAG.hasFlags | NBD_FLAG.flush | NBD_FLAG.fua, 10);
      optReply(s, opt, REP_INFO, info);
      optReply(s, opt, REP_ACK);
      break;
    } else optReply(s, opt, REP_ERR_UNSUP);
  }
  const conn: HostileConn = {
    socket: s,
    index,
    structured,
    ok(req, data) {
      if (req.type !== NBD_CMD.read) this.simple(req.cookie, 0);
      else if (structured) this.chunk(req.cookie, 1, true, offsetData(req.offset, data ?? Buffer.alloc(req.length)));
      else this.simple(req.cookie, 0, data ?? Buffer.alloc(req.length));
    },
    simple(cookie, error, data) {
      const r = Buffer.alloc(16);
      r.writeUInt32BE(SIMPLE_MAGIC, 0);
      r.writeUInt32BE(error, 4);
      r.writeBigUInt64BE(cookie, 8);
      s.write(data === undefined ? r : Buffer.concat([r, data]));
    },
    chunk(cookie, type, done, payload) {
      const r = Buffer.alloc(20);
      r.writeUInt32BE(STRUCTURED_MAGIC, 0);
      r.writeUInt16BE(done ? 1 : 0, 4);
      r.writeUInt16BE(type, 6);
      r.writeBigUInt64BE(cookie, 8);
      r.writeUInt32BE(payload.length, 16);
      s.write(Buffer.concat([r, payload]));
    },
  };
  o.afterHandshake?.(conn);
  for (;;) {
    const h = await read(28);
    if (h === undefined || h.readUInt32BE(0) !== REQ_MAGIC) return;
    const req: NbdRequest = {
      flags: h.readUInt16BE(4),
      type: h.readUInt16BE(6),
      cookie: h.readBigUInt64BE(8),
      offset: h.readBigUInt64BE(16),
      length: h.readUInt32BE(24),
    };
    if (req.type === NBD_CMD.write) {
      const data = await read(req.length);
      if (data === undefined) return;
      req.data = Buffer.from(data);
    }
    if (req.type === NBD_CMD.disc) return;
    seen.push({ conn: index, req });
    o.answer?.(conn, req);
  }
}

/** Listens on a unix socket in a new private directory; closed at the test's teardown. */
export async function startHostileNbd(t: TestLike, o: HostileOptions): Promise<HostileServer> {
  const socket = join(tempDir(t, 'hostile-nbd'), 'nbd.sock');
  const requests: HostileServer['requests'] = [];
  let conns = 0;
  const open = new Set<Socket>();
  let first: Socket | undefined;
  const server = createServer((s) => {
    if (o.accept?.() === false) {
      s.destroy();
      return;
    }
    first ??= s;
    open.add(s);
    s.on('close', () => open.delete(s));
    // The client may give up on what it is told: its reset is no failure.
    s.on('error', () => undefined);
    void serve(s, conns++, o, requests);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => {
    for (const s of open) s.destroy();
    server.close();
  });
  const dropAll = (): void => {
    for (const s of open) s.destroy();
  };
  const dropFirst = (): void => {
    first?.destroy();
  };
  return { server, socket, uri: nbdUri(socket), requests, dropAll, dropFirst };
}

/** Payload of an OFFSET_DATA chunk. */
export function offsetData(offset: bigint, data: Buffer): Buffer {
  return Buffer.concat([u64(offset), data]);
}

export const CHUNK = { none: 0, offsetData: 1, offsetHole: 2, error: 32769 } as const;
