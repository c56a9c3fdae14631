// A real one-node Ceph cluster for the rbd export tests: one ceph-mon and
// one ceph-osd whose object store is memstore (the data lives in the OSD's
// memory), both inside a network namespace of the test's own (lab/netns.ts:
// a unique exact name, only a loopback), reached on 127.0.0.1 there. The
// conf, the keyrings, the mon's store, the logs and the admin sockets live in
// a private temporary directory.
//
// A target that serves an image of it runs in the same namespace (its AoE
// interface is one end of a veth pair made there, see createVeth) with
// `ceph-conf = <cluster.conf>`.
//
// Teardown, in the test's teardown order: the OSD and the mon are stopped by
// pid, the namespace is deleted by its exact name (stopping by pid what still
// runs inside), the directory is removed.
//
// Start-up is about a second: the monitor commits each map change at once
// (paxos propose interval 0.01 s instead of 1 s), which is what a pool
// creation and an OSD boot wait for.

import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestLike, skipOrFail } from '../../lab/common';
import { Netns, createNetns } from '../../lab/netns';
import { Proc, RunResult, describeRun, runOk, which } from '../../lab/process';
import { tempDir } from './files';

/** The Debian commands the cluster needs (scripts/setup.sh installs them). */
const CEPH_COMMANDS = ['ceph-mon', 'ceph-osd', 'ceph', 'rbd', 'ceph-authtool', 'monmaptool'];

/**
 * Skips (outside CI) or fails (in CI) unless the Ceph commands are
 * installed and the process is root (namespaces). Usage:
 * `if (!requireCeph(t)) return;`
 */
export function requireCeph(t: TestLike): boolean {
  if (process.getuid?.() !== 0) return skipOrFail(t, 'a Ceph cluster in a namespace needs root (CI runs as root)');
  const missing = CEPH_COMMANDS.filter((c) => which(c) === undefined);
  if (missing.length > 0) return skipOrFail(t, `missing command(s): ${missing.join(', ')} (run: sudo bash scripts/setup.sh)`);
  return true;
}

export interface CephOptions {
  /** The pool made for rbd; default 'rbd'. */
  pool?: string;
  /** What the OSD reports as its capacity (memstore keeps what is written in memory); default 1 GiB. */
  storeBytes?: number;
  /** Label in the namespace's name; default 'ceph'. */
  label?: string;
}

export interface CephCluster {
  /** The namespace the mon and the OSD run in; run the target here too. */
  ns: Netns;
  /** The private directory: conf, keyrings, mon store, logs, admin sockets. */
  dir: string;
  /** The cluster's ceph.conf (for `ceph-conf =` and the tools' -c). */
  conf: string;
  /** The keyring of client.admin (the conf names it for every client). */
  adminKeyring: string;
  /** The pool made for rbd. */
  pool: string;
  mon: Proc;
  osd: Proc;
  /** `rbd -c <conf> ...` inside the namespace; rejects unless it exits 0. */
  rbd(args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** `ceph -c <conf> ...` inside the namespace; rejects unless it exits 0. */
  ceph(args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** Makes an image of `bytes` in the pool (or `pool/namespace`); returns its spec `pool/name`. */
  createImage(name: string, bytes: number): Promise<string>;
}

/** The text of the cluster's ceph.conf. */
function confText(dir: string, fsid: string, storeBytes: number): string {
  return `# A test cluster: one mon and one memstore OSD on 127.0.0.1 of a namespace (test/helpers/ceph.ts).
[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:3300
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
ms bind ipv6 = false
run dir = ${dir}/run
log file = ${dir}/log/$name.log
admin socket = ${dir}/run/$name.$pid.asok
# one copy of everything, on one host
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
# the disk under /tmp may be fuller than the mon's 30 % warning
mon data avail warn = 1
# commit map changes at once, not after a second each
paxos propose interval = 0.01
paxos min wait = 0.001
# a dead client's watch (an rbd gateway killed with -9) expires after 5 s, not 30 s:
# the failover tests wait for it; clients ping their watches every second
osd client watch timeout = 5
objecter tick interval = 1

[mon]
mon data = ${dir}/mon
keyring = ${dir}/mon.keyring

[osd]
osd data = ${dir}/osd
keyring = ${dir}/osd.0.keyring
osd objectstore = memstore
memstore device bytes = ${storeBytes}

[client]
keyring = ${dir}/client.admin.keyring
`;
}

/**
 * Starts a cluster in a new namespace and makes `pool` an rbd pool. Every
 * part is registered with the test's teardown as it is made, so a failure
 * half-way leaves nothing behind either.
 */
export async function startCeph(t: TestLike, opts: CephOptions = {}): Promise<CephCluster> {
  const pool = opts.pool ?? 'rbd';
  const dir = tempDir(t, 'ceph');
  const ns = await createNetns(t, opts.label ?? 'ceph');
  const fsid = randomUUID();
  const conf = join(dir, 'ceph.conf');
  for (const d of ['run', 'log', 'mon', 'osd']) mkdirSync(join(dir, d));
  writeFileSync(conf, confText(dir, fsid, opts.storeBytes ?? 1 << 30));
  const c = ['-c', conf];
  const adminKeyring = join(dir, 'client.admin.keyring');
  const monKeyring = join(dir, 'mon.keyring');
  const osdKeyring = join(dir, 'osd.0.keyring');
  const admin = ['--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *'];
  await runOk('ceph-authtool', ['--create-keyring', monKeyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
  await runOk('ceph-authtool', ['--create-keyring', adminKeyring, '--gen-key', '-n', 'client.admin', ...admin]);
  await runOk('ceph-authtool', [monKeyring, '--import-keyring', adminKeyring]);
  await runOk('ceph-authtool', ['--create-keyring', osdKeyring, '--gen-key', '-n', 'osd.0']);
  const monmap = join(dir, 'monmap');
  await runOk('monmaptool', ['--create', '--addv', 'a', '[v2:127.0.0.1:3300]', '--fsid', fsid, monmap]);
  await runOk('ceph-mon', [...c, '--mkfs', '-i', 'a', '--monmap', monmap]);
  // -f: in the foreground (the pid is the daemon's), logging to the log file.
  const mon = ns.spawn(t, 'ceph-mon', [...c, '-f', '-i', 'a'], { label: 'ceph-mon' });

  const inNs =
    (cmd: string, timeoutMs = 60000) =>
    (args: readonly string[], ms = timeoutMs) =>
      ns.exec(cmd, [...c, ...args], { timeoutMs: ms }).catch((e: Error) => {
        throw new Error(`${e.message}\n${clusterState(mon, undefined)}`);
      });
  const ceph = inNs('ceph');
  const rbd = inNs('rbd');

  const osdUuid = randomUUID();
  const id = (await ceph(['osd', 'new', osdUuid])).stdout.trim();
  if (id !== '0') throw new Error(`ceph osd new gave the OSD id "${id}", not 0`);
  await ceph(['auth', 'add', 'osd.0', 'osd', 'allow *', 'mon', 'allow profile osd', '-i', osdKeyring]);
  await ns.exec('ceph-osd', [...c, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
  const osd = ns.spawn(t, 'ceph-osd', [...c, '-f', '-i', '0'], { label: 'ceph-osd' });

  await ceph(['osd', 'pool', 'create', pool]);
  // Waits for the pool's placement groups to be active on the new OSD.
  await rbd(['pool', 'init', pool]).catch((e: Error) => {
    throw new Error(`${e.message}\n${clusterState(mon, osd)}`);
  });
  const createImage = async (name: string, bytes: number): Promise<string> => {
    const spec = name.includes('/') ? name : `${pool}/${name}`;
    await rbd(['create', '--size', `${Math.ceil(bytes / 1024)}K`, spec]);
    return spec;
  };
  return { ns, dir, conf, adminKeyring, pool, mon, osd, rbd, ceph, createImage };
}

/** What the daemons said, for a failure message. */
function clusterState(mon: Proc, osd: Proc | undefined): string {
  const lines = [`ceph-mon ${mon.running ? 'running' : 'exited'}: ${mon.tail(10)}`];
  if (osd) lines.push(`ceph-osd ${osd.running ? 'running' : 'exited'}: ${osd.tail(10)}`);
  return lines.join('\n');
}

/**
 * `rbd bench` with random I/O on an image: `ops` operations (default 8192,
 * about a second here) of `ioSize` bytes, `threads` at once; returns the ops
 * per second of its summary line. (A fixed total, not a timer: rbd bench
 * stopped by a signal may report nothing.)
 */
export async function rbdBench(
  cluster: CephCluster,
  spec: string,
  opts: { type: 'read' | 'write'; ioSize?: number; threads?: number; ops?: number },
): Promise<number> {
  const ioSize = opts.ioSize ?? 4096;
  const args = ['bench', '--io-type', opts.type, '--io-size', String(ioSize), '--io-threads', String(opts.threads ?? 16)];
  const total = ioSize * (opts.ops ?? 8192);
  const r = await cluster.rbd([...args, '--io-total', String(total), '--io-pattern', 'rand', spec], 120000);
  // "elapsed: 1   ops: 8192   ops/sec: 7440.51   bytes/sec: 29 MiB/s"
  const m = /ops\/sec: ([\d.]+)/.exec(r.stdout);
  if (m === null) throw new Error(`rbd bench printed no summary:\n${describeRun(r)}`);
  return Number(m[1]);
}

/** Where an image's data objects are: `rbd info` of POOL/IMAGE or POOL/NAMESPACE/IMAGE. */
interface ImageLayout {
  pool: string;
  namespace: string;
  size: number;
  prefix: string;
  objectSize: number;
}

async function imageLayout(cluster: CephCluster, spec: string): Promise<ImageLayout> {
  const parts = spec.split('/');
  const info = JSON.parse((await cluster.rbd(['info', '--format', 'json', spec])).stdout) as {
    size: number;
    block_name_prefix: string;
    object_size: number;
  };
  return {
    pool: parts[0],
    namespace: parts.length === 3 ? parts[1] : '',
    size: info.size,
    prefix: info.block_name_prefix,
    objectSize: info.object_size,
  };
}

/** The image's size in bytes, as `rbd info` reports it. */
export async function imageSize(cluster: CephCluster, spec: string): Promise<number> {
  return (await imageLayout(cluster, spec)).size;
}

/**
 * Reads `length` bytes at `offset` of an image from its RADOS objects
 * (`rados get`), past librbd and past the target: what the OSD holds. An
 * object that does not exist reads as zeros, as it does through rbd.
 */
export async function readImage(cluster: CephCluster, spec: string, offset: number, length: number): Promise<Buffer> {
  const l = await imageLayout(cluster, spec);
  const out = Buffer.alloc(length);
  const file = join(cluster.dir, `read-${process.pid}.obj`);
  for (let pos = offset; pos < offset + length;) {
    const index = Math.floor(pos / l.objectSize);
    const within = pos - index * l.objectSize;
    const n = Math.min(l.objectSize - within, offset + length - pos);
    const name = `${l.prefix}.${index.toString(16).padStart(16, '0')}`;
    const r = await cluster.ns.run('rados', ['-c', cluster.conf, '-p', l.pool, '--namespace', l.namespace, 'get', name, file]);
    if (r.code === 0) readFileSync(file).copy(out, pos - offset, within, within + n);
    else if (!/No such file or directory/.test(r.stderr)) throw new Error(describeRun(r));
    pos += n;
  }
  return out;
}

/**
 * Writes `data` at `offset` of an image past the target: an image diff of
 * one extent (`rbd import-diff`, format v1: "rbd diff v1\n", then records
 * 's' size, 'w' offset length data, 'e').
 */
export async function writeImage(cluster: CephCluster, spec: string, offset: number, data: Uint8Array): Promise<void> {
  const size = await imageSize(cluster, spec);
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  const diff = Buffer.concat([
    Buffer.from('rbd diff v1\n'),
    Buffer.from('s'),
    u64(size),
    Buffer.from('w'),
    u64(offset),
    u64(data.length),
    data,
    Buffer.from('e'),
  ]);
  const file = join(cluster.dir, `write-${process.pid}.diff`);
  writeFileSync(file, diff);
  await cluster.rbd(['import-diff', '--no-progress', file, spec]);
}
