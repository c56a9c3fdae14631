// Opening an export whose `file` is a URI: what such an export cannot do is
// refused with the reason (it has no local file), then the store of its
// scheme is opened, off the event loop (the addon opens on libuv's pool),
// a bounded number at once (pool-share.ts). A store that arrives after its
// opener gave it up (the daemon stops, the reload was refused) is closed,
// never handed out.

import type { BlockStore } from '../backend/block-store';
import { StoreError } from '../backend/file-store';
import type { ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { DEFAULT_CEPH_CONF, DEFAULT_CEPH_ID } from './ceph-conf';
import { openNbdStore } from './nbd-store';
import { WorkAbandoned, remotePoolShare } from './pool-share';
import { openRbdStore, rbdExportProblems } from './rbd-store';
import { DEFAULT_NBD_CONNECTIONS, DEFAULT_REMOTE_TIMEOUT, parseRemoteUri, RemoteUriError } from './remote-uri';

export type RemoteAddon = Pick<NativeAddon, 'openNbd' | 'closeNbd' | 'nbdMessages' | 'openRbd' | 'rbdCall' | 'closeRbd'>;

/** Why an export with a URI for `file` cannot be served as configured; empty when it can. */
export function remoteExportProblems(c: ExportConfig): string[] {
  const out: string[] = [];
  const what = `file = ${c.file} is a remote store, not a local file`;
  if (c.views !== undefined) out.push(`${what}: views = ${c.views} needs a file to clone; remove views`);
  else if (c.viewsDir !== undefined) out.push(`${what}: snapshots (views-dir) clone a local file; remove views-dir`);
  if (c.detectZeroes !== undefined)
    out.push(`${what}: detect-zeroes = unmap punches holes in a local file; set detect-zeroes = off`);
  if (c.direct) out.push(`${what}: direct (O_DIRECT, -d) is for local files; remove it`);
  return out;
}

export interface RemoteOpenOptions {
  /** Where the store's news goes (its server went away, came back). */
  onMessage?: (line: string) => void;
  /** Aborted: an open still waiting for its turn is not started, and a store that arrives after is closed. */
  signal?: AbortSignal;
}

/** Opens the remote store an export names; rejects with StoreError with what to do. */
export async function openRemoteStore(c: ExportConfig, addon: RemoteAddon, opts: RemoteOpenOptions = {}): Promise<BlockStore> {
  const { onMessage, signal } = opts;
  let target;
  try {
    target = parseRemoteUri(c.file);
  } catch (e) {
    if (e instanceof RemoteUriError) throw new StoreError(e.message);
    throw e;
  }
  const problems = target.kind === 'rbd' ? rbdExportProblems(c) : remoteExportProblems(c);
  if (problems.length > 0) throw new StoreError(problems.join('; '));
  // The opens of the addon take their turn; the rest of the addon is used as it is.
  const limited: RemoteAddon = {
    ...pick(addon),
    openRbd: (o) => remotePoolShare.run(() => addon.openRbd(o), signal),
    openNbd: (...args) => remotePoolShare.run(() => addon.openNbd(...args), signal),
  };
  let store: BlockStore;
  try {
    store = await openOf(c, target, limited, onMessage);
  } catch (e) {
    if (e instanceof WorkAbandoned) throw givenUp(c);
    throw e;
  }
  if (signal?.aborted) {
    void store.close(); // the stop waits for it (remote-closes.ts)
    throw givenUp(c);
  }
  return store;
}

/** The addon's remote functions, as methods bound to it. */
function pick(addon: RemoteAddon): RemoteAddon {
  return {
    openNbd: (...a) => addon.openNbd(...a),
    closeNbd: (h) => addon.closeNbd(h),
    nbdMessages: (h) => addon.nbdMessages(h),
    openRbd: (o) => addon.openRbd(o),
    rbdCall: (h, kind, ...args) => addon.rbdCall(h, kind, ...args),
    closeRbd: (h) => addon.closeRbd(h),
  };
}

function givenUp(c: ExportConfig): StoreError {
  return new StoreError(`the open of ${c.file} was given up: the daemon is stopping, or no longer wants it`, 'ECANCELED');
}

function openOf(
  c: ExportConfig,
  target: ReturnType<typeof parseRemoteUri>,
  addon: RemoteAddon,
  onMessage: ((line: string) => void) | undefined,
): Promise<BlockStore> {
  if (target.kind === 'rbd')
    return openRbdStore(
      {
        target,
        conf: c.cephConf ?? DEFAULT_CEPH_CONF,
        id: c.cephId ?? DEFAULT_CEPH_ID,
        readOnly: c.readOnly,
        remoteTimeout: c.remoteTimeout,
        defaultTimeout: DEFAULT_REMOTE_TIMEOUT,
        offsetSectors: c.offsetSectors,
        lengthSectors: c.lengthSectors,
      },
      addon,
    );
  return openNbdStore(
    {
      target,
      readOnly: c.readOnly,
      sync: c.sync,
      connections: c.nbdConnections ?? DEFAULT_NBD_CONNECTIONS,
      waitMs: (c.remoteTimeout ?? DEFAULT_REMOTE_TIMEOUT) * 1000,
      offsetSectors: c.offsetSectors,
      lengthSectors: c.lengthSectors,
      onMessage,
    },
    addon,
  );
}
