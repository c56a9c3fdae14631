// Stores served through a client library are named by a URI in `file`
// (nbd://HOST/NAME, nbd+unix:///NAME?socket=PATH, and rbd:POOL/IMAGE, read
// by rbd-spec.ts). This tells such a value from a path and reads it
// strictly: only what this target serves, nothing that makes the client
// library run a command or read a local file. Pure, so that src/config
// checks `file` values without loading the addon.

/** nbd-connections when unset. */
export const DEFAULT_NBD_CONNECTIONS = 4;
export const MAX_NBD_CONNECTIONS = 16;
/** remote-timeout when unset, in seconds: the Linux initiator retransmits meanwhile. */
export const DEFAULT_REMOTE_TIMEOUT = 30;
export const MAX_REMOTE_TIMEOUT = 3600;

import { RBD_FORMS, RbdSpecError, isRbdSpec, parseRbdSpec, type RbdTarget } from './rbd-spec';

/** A `file` value that is a URI (SCHEME://…, or rbd:…), not a path. */
export function isRemoteUri(file: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(file) || isRbdSpec(file);
}

/** A URI this target cannot serve, `message` saying why and what to write instead. */
export class RemoteUriError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RemoteUriError';
  }
}

export interface NbdTarget {
  kind: 'nbd';
  /** The URI as written (what libnbd connects to). */
  uri: string;
  transport: 'tcp' | 'unix';
  /** tcp: host name or address (an IPv6 address without brackets), and port (10809 when unset). */
  host?: string;
  port?: number;
  /** The export name ('' = the server's default export). */
  name: string;
  /** unix: the socket's absolute path. */
  socket?: string;
}

export type RemoteTarget = NbdTarget | RbdTarget;

const NBD_FORMS = 'nbd://HOST[:PORT]/NAME or nbd+unix:///NAME?socket=/PATH';

/** Schemes of the NBD URI standard we do not serve, and why. */
const REFUSED_SCHEMES: Record<string, string> = {
  nbds: 'NBD over TLS is not supported; serve the export without TLS on a trusted network or a unix socket',
  'nbds+unix': 'NBD over TLS is not supported; use nbd+unix:// (a unix socket needs no TLS)',
  'nbd+vsock': 'NBD over vsock is not supported; use nbd:// or nbd+unix://',
  'nbds+vsock': 'NBD over vsock is not supported; use nbd:// or nbd+unix://',
  'nbd+ssh': 'nbd+ssh:// would run ssh; start the tunnel yourself and use nbd:// or nbd+unix://',
  'nbds+ssh': 'nbds+ssh:// would run ssh; start the tunnel yourself and use nbd:// or nbd+unix://',
};

/**
 * What remote store a `file` value names, the same for every spelling of it:
 * "nbd:HOST:PORT/NAME" (the host in lower case, the default port filled
 * in), "nbd+unix:SOCKET/NAME", "rbd:CONF/POOL/NAMESPACE/IMAGE" (the
 * cluster by its ceph.conf). Undefined for a path or a URI not served.
 */
export function remoteStoreIdentity(file: string, cephConf = '/etc/ceph/ceph.conf'): string | undefined {
  if (!isRemoteUri(file)) return undefined;
  let t: RemoteTarget;
  try {
    t = parseRemoteUri(file);
  } catch {
    return undefined; // the config refuses it
  }
  if (t.kind === 'rbd') return `rbd:${cephConf}/${t.pool}/${t.namespace}/${t.image}`;
  if (t.transport === 'unix') return `nbd+unix:${t.socket}/${t.name}`;
  return `nbd:${(t.host ?? '').toLowerCase()}:${t.port ?? 10809}/${t.name}`;
}

/** Reads a `file` URI; throws RemoteUriError for anything this target does not serve. */
export function parseRemoteUri(uri: string): RemoteTarget {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f]/.test(uri))
    throw new RemoteUriError(`${JSON.stringify(uri)}: a URI holds no spaces or control characters`);
  const scheme = uri.slice(0, uri.indexOf(':')).toLowerCase();
  if (scheme === 'nbd' || scheme === 'nbd+unix') return parseNbd(uri, scheme);
  if (scheme === 'rbd') {
    try {
      return parseRbdSpec(uri);
    } catch (e) {
      if (e instanceof RbdSpecError) throw new RemoteUriError(e.message);
      throw e;
    }
  }
  const refused = REFUSED_SCHEMES[scheme];
  if (refused !== undefined) throw new RemoteUriError(`${uri}: ${refused}`);
  throw new RemoteUriError(`${uri}: ${scheme}:// is not a store this target serves; write a path, ${NBD_FORMS}, or ${RBD_FORMS}`);
}

function decode(part: string, uri: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new RemoteUriError(`${uri}: the ${what} has a malformed %-escape`);
  }
}

function parseNbd(uri: string, scheme: 'nbd' | 'nbd+unix'): NbdTarget {
  const rest = uri.slice(scheme.length + 3);
  if (rest.includes('#')) throw new RemoteUriError(`${uri}: an nbd URI has no #fragment; remove it`);
  const q = rest.indexOf('?');
  const beforeQuery = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? undefined : rest.slice(q + 1);
  const slash = beforeQuery.indexOf('/');
  const authority = slash < 0 ? beforeQuery : beforeQuery.slice(0, slash);
  const name = decode(slash < 0 ? '' : beforeQuery.slice(slash + 1), uri, 'export name');
  if (name.includes('\0')) throw new RemoteUriError(`${uri}: the export name holds a NUL`);
  if (authority.includes('@'))
    throw new RemoteUriError(`${uri}: user names in an nbd URI are for TLS, which is not supported; remove USER@`);
  if (scheme === 'nbd') {
    if (query !== undefined)
      throw new RemoteUriError(
        `${uri}: an nbd:// URI takes no ?parameters here (TLS and file parameters are refused); remove them`,
      );
    return { kind: 'nbd', uri, transport: 'tcp', ...hostAndPort(authority, uri), name };
  }
  if (authority !== '')
    throw new RemoteUriError(`${uri}: an nbd+unix URI has no host (three slashes: nbd+unix:///NAME?socket=/PATH)`);
  if (query?.includes(';'))
    throw new RemoteUriError(
      `${uri}: libnbd reads ";" in the query as the start of another parameter; write a ";" of the socket path as %3B`,
    );
  const params = query === undefined ? [] : query.split('&');
  if (params.length !== 1 || !params[0].startsWith('socket='))
    throw new RemoteUriError(`${uri}: an nbd+unix URI takes exactly one parameter, socket=/PATH; ${NBD_FORMS}`);
  const socket = decode(params[0].slice('socket='.length), uri, 'socket path');
  if (!socket.startsWith('/')) throw new RemoteUriError(`${uri}: the socket path must be absolute (socket=/run/nbd.sock)`);
  if (socket.split('/').includes('..')) throw new RemoteUriError(`${uri}: the socket path must not contain ..`);
  if (Buffer.byteLength(socket) > 107)
    throw new RemoteUriError(`${uri}: the socket path is longer than a unix socket address holds (107 bytes)`);
  return { kind: 'nbd', uri, transport: 'unix', name, socket };
}

function hostAndPort(authority: string, uri: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::([0-9]{1,5}))?$/.exec(authority);
  if (m === null)
    throw new RemoteUriError(`${uri}: "${authority}" is not HOST[:PORT] (a name, an IPv4 address or [IPv6]); ${NBD_FORMS}`);
  const port = m[3] === undefined ? 10809 : Number(m[3]);
  if (port < 1 || port > 65535) throw new RemoteUriError(`${uri}: port ${m[3]} is out of range; use 1..65535`);
  return { host: m[1] ?? m[2], port };
}
