// A real one-node Ceph cluster for the rbd export tests and the rbd bench
// (bench/rbd.ts): one ceph-mon and
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
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestLike, skipOrFail, tempDir } from './common';
import { Netns, createNetns } from './netns';
import { Proc, RunResult, describeRun, runOk, which } from './process';

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
  return `# A test cluster: one mon and one memstore OSD on 127.0.0.1 of a namespace (lab/ceph.ts).
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

/** What `rbd bench` reports in its summary line. */
export interface RbdBenchResult {
  ops: number;
  seconds: number;
  iops: number;
  /** Bytes per second: ops/sec times the I/O size. */
  bytesPerSecond: number;
  /** CPU time (user + system) of the rbd process. */
  cpuSeconds: number;
}

/**
 * `rbd bench` on an image: `ops` operations (default 8192, about a second
 * here) of `ioSize` bytes, `threads` at once, random unless `pattern` says
 * seq, librbd's cache on or off as `cache` says (unset: the conf's, on by
 * default); returns its summary line. (A fixed total, not a timer: rbd bench
 * stopped by a signal may report nothing.)
 */
export async function rbdBenchRun(
  cluster: CephCluster,
  spec: string,
  opts: { type: 'read' | 'write'; ioSize?: number; threads?: number; ops?: number; pattern?: 'rand' | 'seq'; cache?: boolean },
): Promise<RbdBenchResult> {
  const ioSize = opts.ioSize ?? 4096;
  const args = ['bench', '--io-type', opts.type, '--io-size', String(ioSize), '--io-threads', String(opts.threads ?? 16)];
  const total = ioSize * (opts.ops ?? 8192);
  const pattern = ['--io-pattern', opts.pattern ?? 'rand'];
  // librbd's cache is on unless said otherwise (Ceph's default); our target turns it off.
  const cache = opts.cache === undefined ? [] : ['--rbd-cache', String(opts.cache)];
  const argv = ['-c', cluster.conf, ...args, '--io-total', String(total), ...pattern, ...cache, spec];
  // Through bash for its `times`: the CPU the rbd process used, to compare with a gateway's.
  const r = await cluster.ns.exec('bash', ['-c', 'rbd "$@" && times', 'rbd', ...argv], { timeoutMs: 300000 });
  // "elapsed: 1   ops: 8192   ops/sec: 7440.51   bytes/sec: 29 MiB/s"
  const m = /elapsed: *([\d.]+) +ops: *(\d+) +ops\/sec: *([\d.]+)/.exec(r.stdout);
  if (m === null) throw new Error(`rbd bench printed no summary:\n${describeRun(r)}`);
  // times: the shell's user and system time, then its children's ("0m1.230s 0m0.450s").
  const t = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stdout);
  const cpuSeconds = t ? Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4]) : NaN;
  const iops = Number(m[3]);
  return { seconds: Number(m[1]), ops: Number(m[2]), iops, bytesPerSecond: iops * ioSize, cpuSeconds };
}

/** `rbd bench` with random I/O; returns its ops per second. */
export async function rbdBench(
  cluster: CephCluster,
  spec: string,
  opts: { type: 'read' | 'write'; ioSize?: number; threads?: number; ops?: number },
): Promise<number> {
  return (await rbdBenchRun(cluster, spec, opts)).iops;
}
