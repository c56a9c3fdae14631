// The Ceph side of an rbd export: which ceph.conf and cephx name it uses
// (ceph-conf, ceph-id), the checks on that file before librados reads it,
// and the options the target sets on its connection unless the file sets
// them itself.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { allowedOwners, checkParent, kindOf } from '../safe-files/checks';

export const DEFAULT_CEPH_CONF = '/etc/ceph/ceph.conf';
export const DEFAULT_CEPH_ID = 'admin';
/** A ceph.conf larger than this is not one. */
const CONF_MAX_BYTES = 1 << 20;

/** A ceph-id value the target cannot use: the reason, else undefined. */
export function cephIdProblem(id: string): string | undefined {
  if (id.startsWith('client.'))
    return `ceph-id = ${id}: write the id without "client." (ceph-id = ${id.slice('client.'.length) || 'admin'})`;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(id))
    return `ceph-id = ${JSON.stringify(id)} is not a cephx client id; use up to 64 letters, digits and _ . - (the name after "client.", e.g. admin)`;
  return undefined;
}

/** Why a ceph.conf cannot be used, with what to do. */
export class CephConfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CephConfError';
  }
}

/**
 * Reads a ceph.conf after checking it: a regular file of root or the
 * daemon's user that nobody else can change, in directories only they can
 * change, since it says which monitors the export's data goes to and
 * which keyring is read.
 */
export function readCephConf(file: string, owners: ReadonlySet<number> = allowedOwners()): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new CephConfError(
        `the Ceph configuration ${file} does not exist; set ceph-conf to the cluster's ceph.conf (apt-get install ceph-common puts the client's in /etc/ceph)`,
      );
    throw new CephConfError(`cannot look at the Ceph configuration ${file}: ${(e as Error).message}`);
  }
  if (!st.isFile())
    throw new CephConfError(`the Ceph configuration ${file} is ${kindOf(st)}, not a regular file; set ceph-conf to a ceph.conf`);
  if (!owners.has(st.uid))
    throw new CephConfError(
      `the Ceph configuration ${file} belongs to uid ${st.uid}, not to root or the daemon's user: that user could send the export's data to a cluster of theirs; chown root ${file}`,
    );
  if ((st.mode & 0o022) !== 0)
    throw new CephConfError(
      `the Ceph configuration ${file} is writable by others than its owner (mode ${(st.mode & 0o777).toString(8)}): they could send the export's data to a cluster of theirs; chmod go-w ${file}`,
    );
  if (st.size > CONF_MAX_BYTES) throw new CephConfError(`the Ceph configuration ${file} is over 1 MiB; it is not a ceph.conf`);
  for (let dir = path.dirname(file), below = file; ; below = dir, dir = path.dirname(dir)) {
    try {
      checkParent(fs.statSync(dir), dir, below, owners);
    } catch (e) {
      throw new CephConfError(`the Ceph configuration ${file} is not safe to use: ${(e as Error).message}`);
    }
    if (dir === path.dirname(dir)) break;
  }
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CephConfError(`cannot read the Ceph configuration ${file}: ${(e as Error).message}`);
  }
}

/** An option name as Ceph compares them: spaces, dashes and underscores alike. */
function optionName(key: string): string {
  return key
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
}

/**
 * Whether a ceph.conf sets `option` for client `id`: in [global], [client]
 * or [client.ID].
 */
export function confSetsOption(text: string, id: string, option: string): boolean {
  const want = optionName(option);
  const sections = new Set(['global', 'client', `client.${id}`]);
  let applies = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)[#;].*$/, '').trim();
    if (line === '') continue;
    const section = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (section !== null) {
      applies = sections.has(section[1].toLowerCase());
      continue;
    }
    const eq = line.indexOf('=');
    if (applies && eq > 0 && optionName(line.slice(0, eq)) === want) return true;
  }
  return false;
}

/** The connection timeouts remote-timeout sets: a dead cluster gives an error, not a hang. */
export const CEPH_TIMEOUT_OPTIONS = ['client_mount_timeout', 'rados_mon_op_timeout', 'rados_osd_op_timeout'] as const;

/**
 * The options set on an export's connection (key, value in turn):
 * - rbd_cache off unless the conf sets it: a write cache in a gateway
 *   holds acknowledged writes that a takeover by another gateway would not
 *   see, and AoE FLUSH already maps to an rbd flush;
 * - the three timeouts at remote-timeout seconds when the export sets it,
 *   else at `defaultTimeout` unless the conf sets them.
 */
export function cephConnectionSettings(
  confText: string,
  id: string,
  remoteTimeout: number | undefined,
  defaultTimeout: number,
): string[] {
  const out: string[] = [];
  if (!confSetsOption(confText, id, 'rbd_cache')) out.push('rbd_cache', 'false');
  for (const option of CEPH_TIMEOUT_OPTIONS) {
    if (remoteTimeout !== undefined) out.push(option, String(remoteTimeout));
    else if (!confSetsOption(confText, id, option)) out.push(option, String(defaultTimeout));
  }
  return out;
}
