// A Ceph RBD image as a block store: the conf and the client id checked,
// the connection opened through the addon (native/rbd.c) with the options
// the target sets (ceph-conf.ts), the size taken from the image and
// followed when the image is resized (the size watch asks sizeNow()).

import type { BlockStore } from '../backend/block-store';
import { StoreError } from '../backend/file-store';
import type { ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { CephConfError, cephConnectionSettings, cephIdProblem, readCephConf } from './ceph-conf';
import { rbdImageSpec, type RbdTarget } from './rbd-spec';
import { remotePoolShare } from './pool-share';
import { closeRemote } from './remote-closes';

/** AoE addresses sectors with 48 bits. */
const MAX_SECTORS = 2 ** 48 - 1;

export type RbdAddon = Pick<NativeAddon, 'openRbd' | 'rbdCall' | 'closeRbd'>;

export interface RbdStoreOptions {
  target: RbdTarget;
  /** The ceph.conf (ceph-conf). */
  conf: string;
  /** The cephx id without "client." (ceph-id). */
  id: string;
  readOnly: boolean;
  /** remote-timeout as set on the export; undefined: the conf's or `defaultTimeout`. */
  remoteTimeout: number | undefined;
  defaultTimeout: number;
  offsetSectors: number;
  lengthSectors?: number;
}

/** A remote store whose size can change under it: the sectors after the offset now. */
export interface ResizableStore extends BlockStore {
  sizeNow(): Promise<number>;
}

/**
 * Why an export of an rbd image cannot be served as configured, each with
 * the reason; empty when it can.
 */
export function rbdExportProblems(c: ExportConfig): string[] {
  const what = `file = ${c.file}`;
  const out: string[] = [];
  if (c.shared)
    out.push(
      `${what}: shared = yes is refused for rbd images: two gateways writing one image without fencing can lose acknowledged writes (one's late writes land over the other's); serve it from one target and fail over to another (the image's exclusive lock decides who writes)`,
    );
  if (c.views !== undefined)
    out.push(
      `${what}: views = ${c.views} clones a local file; rbd has its own snapshots and clones: make a clone per machine (rbd snap create, rbd snap protect, rbd clone) and export each clone`,
    );
  else if (c.viewsDir !== undefined)
    out.push(`${what}: views-dir holds snapshots of a local file; rbd has its own (rbd snap create); remove views-dir`);
  if (c.detectZeroes !== undefined)
    out.push(
      `${what}: detect-zeroes = unmap punches holes in a local file; an rbd image is thin already (rbd sparsify frees zeroed objects); set detect-zeroes = off`,
    );
  if (c.direct) out.push(`${what}: direct (O_DIRECT, -d) is for local files; librbd has no page cache to skip; remove it`);
  return out;
}

/** Sectors served from an image of `size` bytes with -o/-l; throws StoreError when they do not fit. */
export function rbdSectors(
  size: number,
  spec: string,
  offsetSectors: number,
  lengthSectors?: number,
): { sectors: number; tail: number } {
  const after = size - offsetSectors * 512;
  if (after < 512)
    throw new StoreError(
      `the rbd image ${spec} is ${size} bytes: nothing is left after an offset of ${offsetSectors} sectors; grow it (rbd resize --size SIZE ${spec}) or lower offset (-o)`,
    );
  const whole = Math.floor(after / 512);
  if (lengthSectors !== undefined) {
    if (lengthSectors > whole)
      throw new StoreError(
        `the rbd image ${spec} has ${whole} sectors after the offset, fewer than length = ${lengthSectors}; lower length (-l) or grow the image`,
      );
    return { sectors: lengthSectors, tail: 0 };
  }
  if (whole > MAX_SECTORS)
    throw new StoreError(`the rbd image ${spec} is larger than AoE can address (2^48 sectors); set length (-l)`);
  return { sectors: whole, tail: after % 512 };
}

/** Codes of a failure that may pass by itself (the cluster is down or busy): a restart or reload tries again. */
const PASSING = new Set(['ETIMEDOUT', 'ECONNREFUSED', 'EAGAIN', 'EBUSY', 'EIO']);

/** closeRbd fails only for a handle closed already, which `closing` below rules out. */
function ignoreCloseError(): void {}

/** Opens the image; the connection is made on libuv's thread pool, so the event loop goes on meanwhile. */
export async function openRbdStore(o: RbdStoreOptions, addon: RbdAddon): Promise<ResizableStore> {
  const spec = rbdImageSpec(o.target);
  const idProblem = cephIdProblem(o.id);
  if (idProblem !== undefined) throw new StoreError(idProblem);
  let confText: string;
  try {
    confText = readCephConf(o.conf);
  } catch (e) {
    if (e instanceof CephConfError) throw new StoreError(`${o.target.uri}: ${e.message}`);
    throw e;
  }
  let info: { handle: number; size: number };
  try {
    info = await addon.openRbd({
      conf: o.conf,
      client: o.id,
      pool: o.target.pool,
      namespace: o.target.namespace,
      image: o.target.image,
      readOnly: o.readOnly,
      settings: cephConnectionSettings(confText, o.id, o.remoteTimeout, o.defaultTimeout),
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const message = (e as Error).message;
    if (/need librbd|no rbd support/.test(message)) throw new StoreError(message);
    throw new StoreError(`${o.target.uri}: ${message}`, code !== undefined && PASSING.has(code) ? 'EAGAIN' : code);
  }
  let size: { sectors: number; tail: number };
  try {
    size = rbdSectors(info.size, spec, o.offsetSectors, o.lengthSectors);
  } catch (e) {
    void closeRemote(() => addon.closeRbd(info.handle), ignoreCloseError);
    throw e;
  }
  let closing: Promise<void> | undefined;
  const handle = info.handle;
  return {
    kind: 'remote',
    fd: handle,
    byteOffset: o.offsetSectors * 512,
    sectors: size.sectors,
    direct: false,
    inlineIo: false,
    description: o.target.uri,
    unservedTailBytes: size.tail,
    ...(o.readOnly ? {} : { rbdSpec: spec }),
    sizeNow: async () => {
      const bytes = (await remotePoolShare.run(() => addon.rbdCall(handle, 'size'))) as number;
      return Math.floor(bytes / 512) - o.offsetSectors;
    },
    close() {
      closing ??= closeRemote(() => addon.closeRbd(handle), ignoreCloseError).then(() => undefined);
      return closing;
    },
  };
}
