// An NBD export as a block store: the socket checked, the connections opened
// through the addon (native/nbd.c), the size and read-only state taken from
// the server, and the native side's log lines passed on.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BlockStore } from '../backend/block-store';
import { StoreError } from '../backend/file-store';
import type { NativeAddon, NbdStoreInfo } from '../native/addon';
import { allowedOwners, checkParent, kindOf } from '../safe-files/checks';
import { closeRemote } from './remote-closes';
import type { NbdTarget } from './remote-uri';

/** AoE addresses sectors with 48 bits. */
const MAX_SECTORS = 2 ** 48 - 1;
/** How often the store's native log lines are fetched. */
const MESSAGE_POLL_MS = 1000;

export interface NbdStoreOptions {
  target: NbdTarget;
  readOnly: boolean;
  /** Writes with FUA when the server can (a sync export). */
  sync: boolean;
  connections: number;
  waitMs: number;
  offsetSectors: number;
  lengthSectors?: number;
  /** Where the connections' news goes (a lost server, a reconnection); unset: dropped. */
  onMessage?: (line: string) => void;
}

/**
 * A unix socket named by an nbd+unix URI: a socket (not a symbolic link, a
 * FIFO or a file), of root or this process's user, in directories only they
 * can change, so another local user cannot plant a server of their own.
 */
export function checkNbdSocket(socket: string, owners: ReadonlySet<number> = allowedOwners()): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socket);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new StoreError(
        `the nbd socket ${socket} does not exist; start the server (e.g. nbdkit -U ${socket} memory 1G) first`,
        code,
      );
    throw new StoreError(`cannot look at the nbd socket ${socket}: ${(e as Error).message}`, code);
  }
  if (!st.isSocket())
    throw new StoreError(`the nbd socket ${socket} is ${kindOf(st)}, not a socket; give the path of the server's unix socket`);
  if (!owners.has(st.uid))
    throw new StoreError(
      `the nbd socket ${socket} belongs to uid ${st.uid}, not to root or the daemon's user: another user could serve any data there; start the server as root or as the daemon's user`,
    );
  for (let dir = path.dirname(socket), below = socket; ; below = dir, dir = path.dirname(dir)) {
    try {
      checkParent(fs.statSync(dir), dir, below, owners);
    } catch (e) {
      throw new StoreError(`the nbd socket ${socket} is not safe to use: ${(e as Error).message}`);
    }
    if (dir === '/') break;
  }
}

/** Sectors served from a server's `size` with -o/-l; throws StoreError when they do not fit. */
export function nbdSectors(
  size: number,
  uri: string,
  offsetSectors: number,
  lengthSectors?: number,
): { sectors: number; tail: number } {
  if (size <= 0) throw new StoreError(`the nbd server of ${uri} reports a size of ${size} bytes; it has nothing to serve`);
  if (!Number.isSafeInteger(size) || size / 512 > MAX_SECTORS + 1)
    throw new StoreError(
      `the nbd server of ${uri} reports ${size} bytes, more than AoE can address (2^48 sectors of 512 bytes); check the server's size`,
    );
  const after = size - offsetSectors * 512;
  if (after < 512)
    throw new StoreError(
      `${uri} is ${size} bytes: nothing is left after the offset of ${offsetSectors} sectors; lower offset (-o)`,
    );
  const whole = Math.floor(after / 512);
  if (lengthSectors !== undefined) {
    if (lengthSectors > whole)
      throw new StoreError(
        `${uri} has ${whole} sectors after the offset, fewer than length = ${lengthSectors}; lower length (-l)`,
      );
    return { sectors: lengthSectors, tail: 0 };
  }
  if (whole > MAX_SECTORS)
    throw new StoreError(
      `the nbd server of ${uri} reports ${size} bytes, more than AoE can address (2^48 sectors); set length (-l)`,
    );
  return { sectors: whole, tail: after % 512 };
}

function openError(o: NbdStoreOptions, e: Error): StoreError {
  const code = (e as NodeJS.ErrnoException).code;
  const msg = e.message;
  // Not reachable now, maybe later: a restart or reload tries again.
  if (code === 'ECONNREFUSED' || code === 'ETIMEDOUT') return new StoreError(msg, 'EAGAIN');
  if (/need libnbd/.test(msg)) return new StoreError(msg);
  return new StoreError(`cannot open ${o.target.uri}: ${msg}`, code);
}

/** Opens the export; the handshakes run on libuv's thread pool, so the event loop goes on meanwhile. */
export async function openNbdStore(
  o: NbdStoreOptions,
  addon: Pick<NativeAddon, 'openNbd' | 'closeNbd' | 'nbdMessages'>,
): Promise<BlockStore> {
  if (o.target.socket !== undefined) checkNbdSocket(o.target.socket);
  let info: NbdStoreInfo;
  try {
    info = await addon.openNbd(o.target.uri, o.connections, o.waitMs, o.sync);
  } catch (e) {
    throw openError(o, e as Error);
  }
  const fetchMessages = (): void => {
    for (const line of addon.nbdMessages(info.handle).split('\n')) if (line !== '') o.onMessage?.(`${o.target.uri}: ${line}`);
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    if (closing !== undefined) return closing;
    // What the connections said last, including the final flush's trouble; then the handle is gone.
    if (o.onMessage !== undefined) fetchMessages();
    const say = (line: string): void => o.onMessage?.(`${o.target.uri}: ${line}`);
    closing = closeRemote(
      () => addon.closeNbd(info.handle),
      (err) => say(`cannot close: ${err.message}`),
    ).then((last = '') => {
      for (const line of last.split('\n')) if (line !== '') say(line);
    });
    return closing;
  };
  let size: { sectors: number; tail: number };
  try {
    if (info.readOnly && !o.readOnly)
      throw new StoreError(
        `the nbd server serves ${o.target.uri} read-only; set read-only = yes (vblade -r), or serve it writable`,
      );
    size = nbdSectors(info.size, o.target.uri, o.offsetSectors, o.lengthSectors);
  } catch (e) {
    void close();
    throw e;
  }
  let timer: NodeJS.Timeout | undefined;
  if (o.onMessage !== undefined) {
    timer = setInterval(fetchMessages, MESSAGE_POLL_MS);
    timer.unref();
  }
  const notes: string[] = [];
  if (info.connections < o.connections)
    notes.push(`${info.connections} connection (the server does not allow several: no multi-conn)`);
  if (o.sync && !info.canFua) notes.push('no FUA: each sync write waits for a flush');
  if (!info.canFlush) notes.push('the server cannot flush: it writes through');
  if (notes.length > 0) o.onMessage?.(`${o.target.uri}: ${notes.join('; ')}`);
  return {
    kind: 'remote',
    fd: info.handle,
    byteOffset: o.offsetSectors * 512,
    sectors: size.sectors,
    direct: false,
    inlineIo: false,
    description: o.target.uri,
    unservedTailBytes: size.tail,
    // Sync writes go with FUA (the server answers once they are on stable storage): no flush after them.
    durableWrites: o.sync && info.canFua,
    close() {
      if (timer !== undefined) clearInterval(timer);
      return close();
    },
  };
}
