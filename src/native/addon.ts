// The typed surface of the native addon (native/*.c, built by node-gyp into
// build/Release/aoe_native.node) and its one loader. loadAddon() is the only
// place that loads it, lazily, on first use, so that importing this file
// costs nothing and code that never needs the addon (the pure client, log
// formatting, tests with fakes) works without a build.
//
// Memory rules (docs/native-abi.md): JavaScript owns every buffer the addon
// touches except the mmapped receive ring, which the addon owns and exposes as
// one external Uint8Array for the life of the socket. Native calls return
// counts, never new objects, on the frame path.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { EXPECTED_NATIVE_CONSTANTS, nativeConstantMismatches } from './constants';

export { DrainLayout, IoOp, IoOpFlag, IoOpLayout, NativeLimit, ReapLayout, SendLayout } from './constants';

/** State of a network interface, read by ioctl at call time. */
export interface LinkInfo {
  ifindex: number;
  mtu: number;
  /** Six bytes, a fresh copy on every call. */
  mac: Uint8Array;
  /** IFF_UP and IFF_RUNNING both set. */
  up: boolean;
}

export interface PacketSocketOptions {
  /** Bytes per receive slot (TPACKET_V2 tp_frame_size); must hold the largest frame plus the tpacket header. Rounded up to 16. */
  frameSize: number;
  /** Number of receive slots. */
  frameCount: number;
  /** Path of a network namespace (e.g. /run/netns/x) to open the socket in; the calling thread returns to its own namespace afterwards. */
  netns?: string;
  /** Socket send buffer in bytes (SO_SNDBUFFORCE when root, else SO_SNDBUF). 0 = kernel default. */
  sndbuf?: number;
  /** Which AoE frames the kernel filter passes: 'requests' (R clear; a target, the default) or 'replies' (R set; an initiator). */
  accept?: 'requests' | 'replies';
}

/** Counters from PACKET_STATISTICS; reading them resets the kernel's counters. */
export interface PacketStats {
  packets: number;
  drops: number;
}

/**
 * An AF_PACKET socket bound to one interface and EtherType 0x88A2, with a
 * kernel BPF filter that passes only AoE requests (R flag clear, length >= 24)
 * and a TPACKET_V2 receive ring. TPACKET_V2 rather than V3: V3 only wakes the
 * reader when a block retires (full or timed out, >= 1 ms), which would add a
 * millisecond to every request at queue depth 1 (iPXE boot, Linux ramp-up).
 */
export interface PacketSocket {
  readonly fd: number;
  readonly ifindex: number;
  /** The whole receive ring, mapped once (zero copy). Frame bytes live here. */
  readonly ring: Uint8Array;
  readonly frameSize: number;
  readonly frameCount: number;
  /**
   * Collects frames the kernel has filled, in ring order, starting after the
   * last one returned. For each frame writes DrainLayout.Stride uint32 into
   * `desc`: [offset in `ring` of the Ethernet header, frame length, slot
   * index] (DrainLayout). Returned slots belong to JavaScript until
   * release(slot). Returns the number of frames (<= maxFrames,
   * <= desc.length / DrainLayout.Stride).
   */
  drain(desc: Uint32Array, maxFrames: number): number;
  /** Whether drain() would return a frame now (cheaper than an empty drain(): for busy polling). False once closed. */
  ready(): boolean;
  /** Gives a slot back to the kernel. Any view into that slot is dead afterwards. */
  release(slot: number): void;
  /** release() of slots[0..count) in one call; throws at the first slot not held (those before it are released). */
  releaseMany(slots: Uint32Array, count: number): void;
  /**
   * Sends `count` frames in one sendmmsg: `desc` holds SendLayout.Stride
   * numbers per frame, [offset in `arena`, length] (SendLayout). Returns the number sent (may be fewer when
   * the socket buffer is full), or -errno when none could be sent
   * (-EAGAIN/-ENOBUFS: try again later; -ENETDOWN/-ENXIO: the link is gone).
   */
  send(arena: Uint8Array, desc: Uint32Array, count: number): number;
  /** Watches the socket with libuv; calls `onEvent(0)` once per wake-up when readable, `onEvent(-errno)` on a socket error (POLLERR), until stopPolling(). */
  startPolling(onEvent: (status: number) => void): void;
  stopPolling(): void;
  /**
   * Whether a frame wakes libuv (startPolling's callback). The frame loop
   * turns it off while it waits on the socket itself (FrameWaiter), so a
   * frame is not also a wake-up of the event loop; turning it on again
   * wakes libuv at once if frames are waiting.
   */
  setLoopWake(on: boolean): void;
  stats(): PacketStats;
  /** Unmaps the ring and closes the socket; idempotent. Slots and `ring` are dead afterwards. */
  close(): void;
}

/**
 * Asynchronous block I/O: io_uring when the kernel allows it, otherwise a
 * synchronous fallback that runs the operation inside submit() and queues the
 * completion (kind === 'sync'). Completions are reaped in batches.
 */
export interface IoRing {
  readonly kind: 'io_uring' | 'sync';
  /** Capacity: at most this many operations in flight. */
  readonly depth: number;
  /** The eventfd that signals completions (what startPolling watches), for a FrameWaiter. */
  readonly eventFd: number;
  /** Names a memory region by a small integer id (0 to NativeLimit.IoBuffers - 1) for later ops; keeps it referenced until unregistered or close. */
  registerBuffer(id: number, mem: Uint8Array): void;
  unregisterBuffer(id: number): void;
  /**
   * Queues and submits `count` operations. `ops` holds IoOpLayout.Stride numbers
   * per op: [IoOp, fd, bufferId, offset in buffer, length, file position];
   * `tags[i]` is returned with op i's completion. DataSync ignores buffer,
   * offset, length and position. Returns the number accepted, or -errno.
   */
  submit(ops: Float64Array, tags: Uint32Array, count: number): number;
  /** Writes [tag, result] (ReapLayout) into `out` per completion (result: bytes transferred or -errno); returns the number of completions (<= max, <= out.length / ReapLayout.Stride). */
  reap(out: Int32Array, max: number): number;
  /** Calls `onReady()` once per wake-up when completions may be waiting (eventfd through libuv). */
  startPolling(onReady: () => void): void;
  stopPolling(): void;
  close(): void;
}

/**
 * The frame loop's wait (native/waiter.c): one epoll set over packet sockets,
 * the io ring's eventfd and libuv's own descriptor, so the engine can block
 * in the kernel between batches and still return to the event loop as soon
 * as libuv has work.
 */
export interface FrameWaiter {
  /** Watches `fd` under `tag` (sockets edge-triggered; an eventfd is read when reported). */
  watch(fd: number, tag: number, isEventFd?: boolean): void;
  unwatch(fd: number): void;
  /** The array wait() writes into: WaitLayout.Stride numbers [tag, epoll events] per ready descriptor (kept referenced). */
  bindEvents(out: Int32Array): void;
  /**
   * Blocks until a watched descriptor is ready, libuv's descriptor is
   * readable, or `timeoutMs` passed; returns the number n of pairs written
   * to the bound array, or -(n + 1) when libuv has work now. It reads no
   * clock: libuv's timers are the caller's (loopTimeout()).
   */
  wait(timeoutMs: number): number;
  /** Milliseconds until libuv's next timer as of now (-1: none; 0: libuv has work now). */
  loopTimeout(): number;
  close(): void;
}

export const enum WaitLayout {
  Tag = 0,
  Events = 1,
  Stride = 2,
}

/** epoll's EPOLLERR and EPOLLHUP, as wait() reports them. */
export const EPOLL_ERROR_EVENTS = 0x008 | 0x010;

export interface NativeAddon {
  openPacket(ifname: string, options: PacketSocketOptions): PacketSocket;
  /** null when no interface of that name exists (in `netns`, when given). */
  linkInfo(ifname: string, netns?: string): LinkInfo | null;
  openIoRing(depth: number): IoRing;
  /** Absent in test doubles whose sockets have no descriptors: the engine then returns to libuv after every batch. */
  openFrameWaiter?(): FrameWaiter;
  /** Size in bytes of the block device open on `fd` (BLKGETSIZE64). Throws for a non-block fd. */
  blockDeviceSize(fd: number): number;
  /** fallocate(PUNCH_HOLE | KEEP_SIZE) of [position, position+length); throws with the errno code (EOPNOTSUPP: the file system cannot). */
  punchHole(fd: number, position: number, length: number): void;
  /**
   * Maps the first `length` bytes of a file in memory (tmpfs, ramfs) so that
   * inline reads and writes on `fd` become a memcpy (native/mapped.c); a
   * fault during a copy falls back to pread/pwrite. Throws on failure.
   */
  mapFile(fd: number, length: number, writable: boolean): void;
  /** Undoes mapFile(); false when `fd` had no mapping. */
  unmapFile(fd: number): boolean;
  /** Makes the file open on `dstFd` a copy-on-write clone of the one on `srcFd` (FICLONE, native/reflink.c). Throws with `code` (EOPNOTSUPP, ENOSPC, ...). */
  reflinkClone(srcFd: number, dstFd: number): void;
  /** reflinkClone() on a libuv pool thread (a clone of a file of many extents takes tens of milliseconds); rejects as reflinkClone throws. */
  reflinkCloneAsync(srcFd: number, dstFd: number): Promise<void>;
  /**
   * Clones `length` bytes at `srcOffset` of the file on `srcFd` into the one on `dstFd` at `dstOffset`
   * (FICLONERANGE, native/reflink.c): offsets block-aligned, the length too unless the range ends at the
   * source's end of file. Throws with `code` (EINVAL when not aligned, EOPNOTSUPP, ...).
   */
  reflinkCloneRange(srcFd: number, srcOffset: number, length: number, dstFd: number, dstOffset: number): void;
  /** Whether the file system of directory `dir` makes copy-on-write clones (it tries one with two unnamed files). Throws when the directory cannot be used. */
  reflinkSupported(dir: string): boolean;
  /** Bytes of the file open on `fd` in extents no other file shares (FIEMAP): what a clone has written of its own. */
  unsharedBytes(fd: number): number;
  /** unsharedBytes() on a libuv pool thread and without writing dirty data back first (data not written back yet counts as it is on disk): for stats. Rejects as unsharedBytes throws. */
  unsharedBytesAsync(fd: number): Promise<number>;
  /** The extents of the file open on `fd` (FIEMAP), as (logical, physical, length, flags) quadruples in file order. */
  fileExtents(fd: number): Float64Array;
  /** Zeroed memory of `bytes` that starts on a page boundary: buffers that O_DIRECT reads into and writes from. */
  alignedBuffer(bytes: number): ArrayBuffer;
  /** Takes (true) or gives up (false) a read lease on a file open read-only (F_SETLEASE): a writer's open then waits and this process gets SIGIO. Throws (EAGAIN: open for writing now). */
  imageLease(fd: number, take: boolean): void;
  /** True while the read lease on `fd` is held and no writer waits for it to be given up. */
  imageLeaseHeld(fd: number): boolean;
  /** One datagram to an AF_UNIX SOCK_DGRAM socket (systemd's NOTIFY_SOCKET; a leading '@' means the abstract namespace). Throws on error. */
  unixDatagramSend(path: string, message: string): void;
  /** flock(LOCK_EX|LOCK_NB) on an open file: true when taken, false when another open file of it holds the lock. Throws on other errors. */
  lockFile(fd: number): boolean;
  /**
   * An open file description lock on bytes [start, start+length) of an open
   * file (F_OFD_SETLK, never waiting; length 0 = to the end of any file):
   * op 'r' read, 'w' write (the file open for writing), 'u' unlock. True when
   * done, false when another open file holds a conflicting lock. Throws on other errors.
   */
  rangeLock(fd: number, op: 'r' | 'w' | 'u', start: number, length: number): boolean;
  /** Whether rangeLock(fd, op, ...) could take that lock now (F_OFD_GETLK): false when another open file holds a conflicting one. */
  rangeLockTest(fd: number, op: 'r' | 'w', start: number, length: number): boolean;
  /** Who is at the other end of a connected unix socket (SO_PEERCRED: as of its connect()). Throws on error. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** A user's uid and primary group by name (getpwnam: /etc/passwd, LDAP, ...); null when there is none. */
  lookupUser(user: string): { uid: number; gid: number } | null;
  /**
   * As root: switches the process to `user` (uid, primary group and its
   * groups) keeping only CAP_NET_RAW and, with `keepLease`, CAP_LEASE,
   * permitted and effective, with every other capability dropped from the
   * bounding set (native/privilege.c). Throws with a message that says what
   * to do (no such user, not root); after a throw the process may be half
   * switched and should exit.
   */
  dropPrivileges(user: string, keepLease?: boolean): { uid: number; gid: number };
  /**
   * From now on fcntl(F_SETLEASE, F_WRLCK) fails with EPERM in every thread
   * of the process and the programs it runs (a seccomp filter): CAP_LEASE is
   * for the views' read leases; a write lease would hold back every open of
   * a file, root's too. Sets no_new_privs (what the filter needs).
   */
  denyWriteLeases(): void;
  /** True when no_new_privs is set and the bounding set holds no more than a start as root uses (native/privilege.c). */
  privilegeConfined(): boolean;
  /**
   * As root: sets no_new_privs, lowers the bounding set to what a start as
   * root uses, keeps `keepFds` open and execs `file` with `argv` and `env`
   * (NAME=value strings). Returns only by throwing.
   */
  reexecConfined(file: string, argv: string[], env: string[], keepFds: number[]): never;
  /**
   * Connects to an NBD server through libnbd (loaded on first use; throws
   * "nbd exports need libnbd: …" without it) with up to `connections`
   * connections (1 unless the server allows several), `waitMs` the bounded
   * wait of a handshake and of a request, `fua` writes with FUA when the
   * server can. The handshakes run on libuv's thread pool: the promise
   * settles when they are done (rejects "nbd exports need libnbd: …"
   * without libnbd). The handle goes in ops' fd with IoOpFlag.Remote
   * (native/nbd.c).
   */
  openNbd(uri: string, connections: number, waitMs: number, fua: boolean): Promise<NbdStoreInfo>;
  /**
   * Forgets the handle at once, then, on libuv's thread pool, stops the
   * store's connections once their requests are answered (at most waitMs)
   * after a last flush (at most waitMs too): the promise of its last log
   * lines ("" for none), never rejected. Throws at once for an unknown handle.
   */
  closeNbd(handle: number): Promise<string>;
  /** The store's log lines since the last call, newline-terminated ("" for none). */
  nbdMessages(handle: number): string;
  /**
   * Connects to a Ceph cluster through librados and opens an rbd image
   * through librbd (both loaded on first use; rejects "rbd exports need
   * librbd: …" without them). Runs on libuv's thread pool, bounded by the
   * timeouts in `settings`: the event loop goes on meanwhile. The handle
   * goes in ops' fd with IoOpFlag.Remote (native/rbd.c).
   */
  openRbd(options: RbdOpenOptions): Promise<{ handle: number; size: number }>;
  /**
   * Forgets the handle at once, then, on libuv's thread pool, waits for the
   * image's operations in flight (each ends within rados_osd_op_timeout) and
   * closes it and its connection: the promise settles then, never rejected.
   * Throws at once for an unknown handle.
   */
  closeRbd(handle: number): Promise<void>;
  /**
   * The exclusive lock and the metadata of an open image, off the main
   * thread (each waits on the cluster): lockState, lockAcquire,
   * lockBreak(owner: the address lockState names; the cluster blocklists
   * it), metadataGet(key) (null when unset), metadataSet(key, value),
   * size (bytes now: librbd follows resizes through its header watch, and
   * may refresh the image from the OSDs first, so it waits on them too).
   */
  rbdCall(handle: number, kind: RbdCallKind, ...args: string[]): Promise<unknown>;
}

export type RbdCallKind = 'lockState' | 'lockAcquire' | 'lockBreak' | 'metadataGet' | 'metadataSet' | 'size';

/** Who holds an image's exclusive lock, and who watches its header. */
export interface RbdLockState {
  /** This process owns the lock. */
  owner: boolean;
  /** The lock owners' client addresses (at most one for an exclusive lock). */
  owners: string[];
  /** The clients that watch the image's header: those alive; `id` is N of client.N. */
  watchers: { addr: string; id: number }[];
}

/** What openRbd connects to and opens. */
export interface RbdOpenOptions {
  /** The ceph.conf librados reads. */
  conf: string;
  /** The cephx id without "client.". */
  client: string;
  pool: string;
  /** The rados namespace; '' for the default one. */
  namespace: string;
  image: string;
  readOnly: boolean;
  /** Ceph options set after the conf is read: key, value in turn (at most 16 pairs). */
  settings: string[];
}

/** What openNbd learnt from the server. */
export interface NbdStoreInfo {
  handle: number;
  /** Bytes, as the server reports them. */
  size: number;
  readOnly: boolean;
  canFlush: boolean;
  canFua: boolean;
  canMultiConn: boolean;
  /** Connections opened. */
  connections: number;
}

/** The package root, from dist/src/native/ where this file runs. */
const PACKAGE_ROOT = resolve(__dirname, '../../..');

/** Where node-gyp builds the addon. */
export const ADDON_PATH = resolve(PACKAGE_ROOT, 'build/Release/aoe_native.node');

const BUILD_HINT = `\`npx node-gyp rebuild\` (or \`bash scripts/setup.sh\`) in ${PACKAGE_ROOT}`;

/**
 * Loads the addon at `file` and checks its `constants` against `expected`.
 * Throws an Error that names the file and says how to build it when it is
 * missing, cannot be loaded, or was built from other sources than this
 * JavaScript. Use loadAddon(); this is for tests.
 */
export function loadAddonFrom(file: string, expected: Readonly<Record<string, number>> = EXPECTED_NATIVE_CONSTANTS): NativeAddon {
  if (!existsSync(file)) throw new Error(`the native addon ${file} is missing; build it with ${BUILD_HINT}`);
  let loaded: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(file);
  } catch (e) {
    throw new Error(`cannot load the native addon ${file}: ${(e as Error).message}; rebuild it with ${BUILD_HINT}`, { cause: e });
  }
  const mismatches = nativeConstantMismatches((loaded as { constants?: unknown } | null)?.constants, expected);
  if (mismatches.length > 0) {
    throw new Error(
      `the native addon ${file} does not match this JavaScript (${mismatches.join('; ')}); ` +
        `rebuild both with \`bash scripts/setup.sh\` (or \`npx node-gyp rebuild\` and \`npx tsc -p .\`) in ${PACKAGE_ROOT}`,
    );
  }
  return loaded as NativeAddon;
}

let loadedAddon: NativeAddon | undefined;

/** The native addon, loaded and checked on first use. Throws (see loadAddonFrom) when it is not usable; a later call tries again. */
export function loadAddon(): NativeAddon {
  return (loadedAddon ??= loadAddonFrom(ADDON_PATH));
}

/** The addon as a plain object whose functions load it on first call (tests use it, and spread it into fakes). */
export const native: NativeAddon = {
  openPacket: (ifname, options) => loadAddon().openPacket(ifname, options),
  linkInfo: (ifname, netns) => loadAddon().linkInfo(ifname, netns),
  openIoRing: (depth) => loadAddon().openIoRing(depth),
  openFrameWaiter: () => loadAddon().openFrameWaiter!(),
  blockDeviceSize: (fd) => loadAddon().blockDeviceSize(fd),
  punchHole: (fd, position, length) => loadAddon().punchHole(fd, position, length),
  mapFile: (fd, length, writable) => loadAddon().mapFile(fd, length, writable),
  unmapFile: (fd) => loadAddon().unmapFile(fd),
  reflinkClone: (srcFd, dstFd) => loadAddon().reflinkClone(srcFd, dstFd),
  reflinkCloneAsync: (srcFd, dstFd) => loadAddon().reflinkCloneAsync(srcFd, dstFd),
  reflinkCloneRange: (srcFd, srcOffset, length, dstFd, dstOffset) =>
    loadAddon().reflinkCloneRange(srcFd, srcOffset, length, dstFd, dstOffset),
  reflinkSupported: (dir) => loadAddon().reflinkSupported(dir),
  unsharedBytes: (fd) => loadAddon().unsharedBytes(fd),
  unsharedBytesAsync: (fd) => loadAddon().unsharedBytesAsync(fd),
  fileExtents: (fd) => loadAddon().fileExtents(fd),
  alignedBuffer: (bytes) => loadAddon().alignedBuffer(bytes),
  imageLease: (fd, take) => loadAddon().imageLease(fd, take),
  imageLeaseHeld: (fd) => loadAddon().imageLeaseHeld(fd),
  unixDatagramSend: (path, message) => loadAddon().unixDatagramSend(path, message),
  lockFile: (fd) => loadAddon().lockFile(fd),
  rangeLock: (fd, op, start, length) => loadAddon().rangeLock(fd, op, start, length),
  rangeLockTest: (fd, op, start, length) => loadAddon().rangeLockTest(fd, op, start, length),
  peerCredentials: (fd) => loadAddon().peerCredentials(fd),
  lookupUser: (user) => loadAddon().lookupUser(user),
  dropPrivileges: (user, keepLease) => loadAddon().dropPrivileges(user, keepLease),
  denyWriteLeases: () => loadAddon().denyWriteLeases(),
  privilegeConfined: () => loadAddon().privilegeConfined(),
  reexecConfined: (file, argv, env, keepFds) => loadAddon().reexecConfined(file, argv, env, keepFds),
  openNbd: (uri, connections, waitMs, fua) => loadAddon().openNbd(uri, connections, waitMs, fua),
  closeNbd: (handle) => loadAddon().closeNbd(handle),
  nbdMessages: (handle) => loadAddon().nbdMessages(handle),
  openRbd: (options) => loadAddon().openRbd(options),
  closeRbd: (handle) => loadAddon().closeRbd(handle),
  rbdCall: (handle, kind, ...args) => loadAddon().rbdCall(handle, kind, ...args),
};
