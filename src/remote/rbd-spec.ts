// A Ceph RBD image named in `file`: rbd:POOL/IMAGE or rbd:POOL/NAMESPACE/IMAGE.
// Read strictly: names of the characters Ceph tools create, and nothing of
// QEMU's longer form (rbd:pool/image:conf=…:id=…), whose options here are
// keys of their own (ceph-conf, ceph-id) that the config checks.

export interface RbdTarget {
  kind: 'rbd';
  /** The value as written. */
  uri: string;
  pool: string;
  /** The rados namespace in the pool; '' for the default one. */
  namespace: string;
  image: string;
}

/** What `file = rbd:…` looks like. */
export const RBD_FORMS = 'rbd:POOL/IMAGE or rbd:POOL/NAMESPACE/IMAGE';

/** A `file` value that names an rbd image (or means to: it starts with "rbd:"). */
export function isRbdSpec(file: string): boolean {
  return /^rbd:/i.test(file);
}

/** An rbd value this target cannot serve; `message` says why and what to write instead. */
export class RbdSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RbdSpecError';
  }
}

/** Longest pool, namespace or image name (the addon's buffers hold 255 bytes). */
export const RBD_NAME_MAX = 255;

const NAME = /^[A-Za-z0-9_.+-]+$/;

function checkName(value: string, what: string, uri: string): string {
  if (value === '') throw new RbdSpecError(`${uri}: the ${what} is empty; ${RBD_FORMS}`);
  if (value === '.' || value === '..') throw new RbdSpecError(`${uri}: "${value}" is not a ${what} name`);
  if (value.length > RBD_NAME_MAX) throw new RbdSpecError(`${uri}: the ${what} name is longer than ${RBD_NAME_MAX} characters`);
  if (!NAME.test(value))
    throw new RbdSpecError(
      `${uri}: the ${what} name ${JSON.stringify(value)} holds a character other than letters, digits and _ . + -`,
    );
  return value;
}

/** Reads `rbd:POOL[/NAMESPACE]/IMAGE`; throws RbdSpecError with the reason for anything else. */
export function parseRbdSpec(uri: string): RbdTarget {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f]/.test(uri))
    throw new RbdSpecError(`${JSON.stringify(uri)}: an rbd image name holds no spaces or control characters`);
  if (!uri.startsWith('rbd:')) throw new RbdSpecError(`${uri}: write rbd: in lower case (${RBD_FORMS})`);
  const rest = uri.slice(4);
  if (rest.startsWith('//')) throw new RbdSpecError(`${uri}: rbd: takes no //; write ${RBD_FORMS}`);
  const at = rest.indexOf('@');
  if (at >= 0)
    throw new RbdSpecError(
      `${uri}: an rbd snapshot (@${rest.slice(at + 1)}) is read-only and is not served; export a clone of it (rbd clone) or the image itself`,
    );
  if (rest.includes(':'))
    throw new RbdSpecError(
      `${uri}: options after the image (QEMU's :id=…:conf=…) are not read here; set ceph-id and ceph-conf on the export instead`,
    );
  const parts = rest.split('/');
  if (parts.length < 2) throw new RbdSpecError(`${uri}: a pool and an image are needed; ${RBD_FORMS}`);
  if (parts.length > 3) throw new RbdSpecError(`${uri}: too many / (at most pool, namespace, image); ${RBD_FORMS}`);
  const pool = checkName(parts[0], 'pool', uri);
  const namespace = parts.length === 3 ? checkName(parts[1], 'namespace', uri) : '';
  const image = checkName(parts[parts.length - 1], 'image', uri);
  return { kind: 'rbd', uri, pool, namespace, image };
}

/** The image as rbd(8) names it: POOL/IMAGE or POOL/NAMESPACE/IMAGE. */
export function rbdImageSpec(t: RbdTarget): string {
  return t.namespace === '' ? `${t.pool}/${t.image}` : `${t.pool}/${t.namespace}/${t.image}`;
}
