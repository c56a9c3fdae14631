// Opening an export whose `file` is a URI: what such an export cannot do is
// refused with the reason (it has no local file), then the store of its
// scheme is opened.

import type { BlockStore } from '../backend/block-store';
import { StoreError } from '../backend/file-store';
import type { ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { DEFAULT_CEPH_CONF, DEFAULT_CEPH_ID } from './ceph-conf';
import { openNbdStore } from './nbd-store';
import { openRbdStore, rbdExportProblems } from './rbd-store';
import { DEFAULT_NBD_CONNECTIONS, DEFAULT_REMOTE_TIMEOUT, parseRemoteUri, RemoteUriError } from './remote-uri';

export type RemoteAddon = Pick<NativeAddon, 'openNbd' | 'closeNbd' | 'nbdMessages' | 'openRbd' | 'rbdSize' | 'closeRbd'>;

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

/** Opens the remote store an export names; throws StoreError with what to do. */
export function openRemoteStore(c: ExportConfig, addon: RemoteAddon, onMessage?: (line: string) => void): BlockStore {
  let target;
  try {
    target = parseRemoteUri(c.file);
  } catch (e) {
    if (e instanceof RemoteUriError) throw new StoreError(e.message);
    throw e;
  }
  const problems = target.kind === 'rbd' ? rbdExportProblems(c) : remoteExportProblems(c);
  if (problems.length > 0) throw new StoreError(problems.join('; '));
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
