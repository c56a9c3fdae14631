// Least privilege: started as root with --user, the daemon opens what needs
// root and then switches to that user keeping only CAP_NET_RAW (with which it
// reopens an interface that was deleted and created again), and CAP_LEASE
// (the read lease views hold on their image, also of views a reload adds). Started by
// setpriv instead, the daemon runs as an unprivileged user that
// holds only CAP_NET_RAW (the ambient capability, as systemd's
// AmbientCapabilities=CAP_NET_RAW gives it) and owns its backing file, and
// serves. Without the capability, or without access to the file, it refuses
// to start with a message that says what is missing.
//
//   setpriv --reuid=nobody --regid=nogroup --clear-groups \
//           --inh-caps=+net_raw --ambient-caps=+net_raw node bin/vblade.js ...

import t, { type Test } from 'tap';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkSectors, fillSectors } from '../../src/client/pattern';
import { patternFile, sparseFile, tempDir } from '../helpers/files';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { openClient, writeClientPattern } from './lib/harness';
import { REPO, startTarget, targetCommand, vbladeForUser } from '../helpers/targets';

const SHELF = 61;
const SLOT = 5;
const NOBODY = 65534;
const NOGROUP = 65534;
const DROP_ONLY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];
const WITH_NET_RAW_ONLY = [...DROP_ONLY, '--inh-caps=+net_raw', '--ambient-caps=+net_raw'];
const CAP_NET_RAW_BIT = 13;
const VBLADED = join(REPO, 'bin', 'vbladed.js');
/**
 * tap puts its own hooks into every Node child through NODE_OPTIONS (set in
 * its spawn wrapper, after our environment); they cannot write their files as
 * nobody. `env -u` takes them out just before the daemon starts.
 */
const CLEAN = ['env', '-u', 'NODE_OPTIONS'];
const DROP = [...CLEAN, ...DROP_ONLY];
const WITH_NET_RAW = [...CLEAN, ...WITH_NET_RAW_ONLY];

/** Capability sets of a process from /proc (hex masks as BigInt). */
function caps(pid: number): Record<string, bigint> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const out: Record<string, bigint> = {};
  for (const k of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
    const m = new RegExp(`^${k}:\\s+([0-9a-f]+)`, 'm').exec(status);
    out[k] = m ? BigInt(`0x${m[1]}`) : -1n;
  }
  const uid = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
  out.uid = uid ? BigInt(uid[2]) : -1n;
  const gid = /^Gid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
  out.gid = gid ? BigInt(gid[2]) : -1n;
  return out;
}

/** The worker's pid from its "switched user" log line. */
function workerPid(line: RegExpExecArray): number {
  const m = /"pid":(\d+)/.exec(line.input);
  if (!m) throw new Error(`no pid in ${line.input}`);
  return Number(m[1]);
}

/**
 * The capabilities a serving process may still use while it starts as root
 * (docs/reliability.md): the bounding set of every thread it has when it
 * switches user is at most these.
 */
const START_CAPS = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 28].reduce((m, bit) => m | (1n << BigInt(bit)), 0n);
const NET_RAW = 1n << BigInt(CAP_NET_RAW_BIT);
/** What a switched process keeps: CAP_NET_RAW and CAP_LEASE (28), for the read lease of views (now or added by a reload). */
const NET_RAW_AND_LEASE = NET_RAW | (1n << 28n);

/** Each thread of a process: its name, no_new_privs and capability sets. */
function threads(pid: number): { tid: string; name: string; nnp: string; bnd: bigint; prm: bigint; eff: bigint }[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const field = (k: string): string => new RegExp(`^${k}:\\s+(\\S+)`, 'm').exec(status)?.[1] ?? '?';
    return {
      tid,
      name: field('Name'),
      nnp: field('NoNewPrivs'),
      bnd: BigInt(`0x${field('CapBnd')}`),
      prm: BigInt(`0x${field('CapPrm')}`),
      eff: BigInt(`0x${field('CapEff')}`),
    };
  });
}

/**
 * What no thread of a switched process may hold: checked on every thread, not
 * only the main one. The main thread holds exactly `kept` (permitted,
 * effective, bounding set); no thread holds anything beyond it.
 */
function checkEveryThread(t: Test, pid: number, kept = NET_RAW_AND_LEASE): void {
  const all = threads(pid);
  const hex = (v: bigint): string => `0x${v.toString(16)}`;
  t.ok(all.length > 1, `${all.length} threads`);
  for (const th of all) {
    const which = `thread ${th.tid} (${th.name})`;
    t.equal(th.nnp, '1', `${which}: no_new_privs is set, so no program it runs gains privileges`);
    t.equal(th.bnd & ~START_CAPS, 0n, `${which}: bounding set ${hex(th.bnd)} holds only start capabilities`);
    t.equal(th.prm & ~kept, 0n, `${which}: permitted ${hex(th.prm)} is ${hex(kept)} at most`);
    t.equal(th.eff & ~kept, 0n, `${which}: effective ${hex(th.eff)} is ${hex(kept)} at most`);
  }
  const main = all.find((th) => th.tid === String(pid));
  t.equal(main?.bnd, kept, `the main thread: bounding set ${hex(kept)} exactly`);
  t.equal(main?.prm, kept, `the main thread: permitted ${hex(kept)} exactly`);
  t.equal(main?.eff, kept, `the main thread: effective ${hex(kept)} exactly`);
}

function parentOf(pid: number): number {
  return Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

if (requireRoot(t)) {
  t.test(
    'started as root with --user nobody: only CAP_NET_RAW and CAP_LEASE left, serves a root-only file, reopens a recreated interface',
    async (t) => {
      const net = await createNetnsPair(t, { mtu: 1500 });
      const dir = tempDir(t, 'user');
      const file = await sparseFile(t, 2048 * 512, { dir });
      writeClientPattern(file, 0, 2048);
      chmodSync(file, 0o600); // root's: opened before the switch
      const d = await startTarget(t, net.target, ['--user', 'nobody', String(SHELF), String(SLOT), net.targetIf, file], {
        prefix: CLEAN,
      });
      const c = caps(d.pid);
      t.equal(c.uid, BigInt(NOBODY), 'the daemon runs as nobody (effective uid 65534)');
      t.equal(c.gid, BigInt(NOGROUP), "in nobody's group");
      t.equal(c.CapEff, NET_RAW_AND_LEASE, 'its effective capabilities are CAP_NET_RAW and CAP_LEASE, nothing else');
      t.equal(c.CapPrm, NET_RAW_AND_LEASE, 'and so is its permitted set');
      t.equal(c.CapBnd, NET_RAW_AND_LEASE, 'and its bounding set: nothing can be regained');
      checkEveryThread(t, d.pid);
      const check = async (when: string): Promise<void> => {
        const client = await openClient(t, net.init, net.initIf, { timeoutMs: 1000, retries: 5 });
        const target = await client.find(SHELF, SLOT, 10000);
        t.equal(checkSectors(await client.read(target, 0, 64), 0, 0, 64), -1, `${when}: reads return the file`);
        const data = new Uint8Array(8 * 512);
        fillSectors(data, 0, 1000, 8);
        await client.write(target, 1000, data);
        await client.flush(target);
        t.same(await client.read(target, 1000, 8), data, `${when}: writes and FLUSH CACHE work`);
        client.close();
      };
      await check('as nobody');
      await net.veth.recreate();
      await check('after the interface was deleted and created again');
      t.ok(d.proc.running, 'still running');
      await d.proc.stop();
      t.equal(d.proc.exitStatus?.code, 0, 'stops cleanly on SIGTERM');
    },
  );

  t.test('vbladed with user = nobody: the worker switches, the supervisor stays root to restart it', async (t) => {
    const net = await createNetnsPair(t, { mtu: 1500 });
    const dir = tempDir(t, 'vbladed-user');
    const file = await sparseFile(t, 2048 * 512, { dir });
    writeClientPattern(file, 0, 2048);
    chmodSync(file, 0o600);
    const conf = join(dir, 'vblade.conf');
    writeFileSync(
      conf,
      `[daemon]\nuser = nobody\nstate-dir = none\nrun-dir = ${join(dir, 'run')}\n` +
        `[export e${SHELF}.${SLOT}]\nfile = ${file}\ninterfaces = ${net.targetIf}\n`,
    );
    const daemon = net.target.spawn(
      t,
      CLEAN[0],
      [...CLEAN.slice(1), process.execPath, VBLADED, '--foreground', '--log', 'stderr', '--config', conf],
      {
        label: 'vbladed',
      },
    );
    const worker = workerPid(await daemon.waitFor(/switched user/, { timeoutMs: 60000 }));
    const w = caps(worker);
    t.equal(w.uid, BigInt(NOBODY), 'the worker runs as nobody');
    t.equal(w.CapEff, NET_RAW_AND_LEASE, 'with CAP_NET_RAW and CAP_LEASE only');
    checkEveryThread(t, worker);
    t.equal(caps(parentOf(worker)).uid, 0n, 'the supervisor stays root, to start a new worker that opens the files');
    const client = await openClient(t, net.init, net.initIf, { timeoutMs: 1000, retries: 5 });
    const target = await client.find(SHELF, SLOT, 10000);
    t.equal(checkSectors(await client.read(target, 0, 64), 0, 0, 64), -1, 'the worker serves the root-only file');
    process.kill(worker, 'SIGKILL');
    const restarted = workerPid(await daemon.waitFor(/switched user/, { timeoutMs: 60000 }));
    t.not(restarted, worker, 'a new worker switched too');
    checkEveryThread(t, restarted);
    t.equal(checkSectors(await client.read(target, 0, 64), 0, 0, 64), -1, 'a restarted worker serves it again');
    await daemon.stop();
  });

  t.test('vbladed with user = nobody: views added by a reload get their read lease (the worker kept CAP_LEASE)', async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const net = await createNetnsPair(t, { mtu: 1500 });
    const mnt = await loopFs(t, 'xfs-reflink');
    const image = await patternFile(t, 2048, { dir: mnt, name: 'golden.img' }); // root's, 0644
    for (const d of [dirname(mnt), mnt]) chmodSync(d, 0o755); // a reload opens it as nobody
    chmodSync(image, 0o644);
    const views = join(mnt, 'views');
    mkdirSync(views, { mode: 0o750 });
    chownSync(views, NOBODY, NOGROUP);
    const dir = tempDir(t, 'vbladed-views-user');
    const conf = join(dir, 'vblade.conf');
    const config = (withViews: boolean): string =>
      `[daemon]\nuser = nobody\nstate-dir = none\nrun-dir = ${join(dir, 'run')}\n` +
      `[export e${SHELF}.${SLOT}]\nfile = ${image}\ninterfaces = ${net.targetIf}\nread-only = ${withViews ? 'no' : 'yes'}\n` +
      (withViews ? `views = per-initiator\nviews-dir = ${views}\nmac-mask = 02:00:00:00:0a:01\n` : '');
    writeFileSync(conf, config(false));
    const daemon = net.target.spawn(
      t,
      CLEAN[0],
      [...CLEAN.slice(1), process.execPath, VBLADED, '--foreground', '--log', 'stderr', '--config', conf],
      { label: 'vbladed' },
    );
    const line = await daemon.waitFor(/switched user/, { timeoutMs: 60000 });
    t.match(line.input, /only CAP_NET_RAW and CAP_LEASE kept/, 'the log names what is kept, with no views yet');
    const worker = workerPid(line);
    checkEveryThread(t, worker, NET_RAW_AND_LEASE);
    await daemon.waitFor(/worker [0-9]+ is serving/, { timeoutMs: 60000 });
    writeFileSync(conf, config(true));
    process.kill(daemon.pid, 'SIGHUP');
    await daemon.waitFor(/reloaded: .*changed/, { timeoutMs: 60000 });
    const leased = (): boolean =>
      readFileSync('/proc/locks', 'utf8')
        .split('\n')
        .some((l) => /\bLEASE\b/.test(l) && l.split(/\s+/).includes(String(worker)));
    for (let i = 0; i < 100 && !leased(); i++) await new Promise((r) => setTimeout(r, 100));
    t.ok(leased(), `the worker (pid ${worker}, not restarted) holds a lease on the root-owned image: /proc/locks`);
    t.notMatch(daemon.stderr(), /no read lease on the image/, 'and the log has no lease refusal');
    t.match(
      readFileSync(`/proc/${worker}/status`, 'utf8'),
      /^Seccomp:\s+2$/m,
      'write leases are refused to it (a seccomp filter)',
    );
    await daemon.stop();
  });

  t.test('--user with a user that does not exist: refuses to start and says why', async (t) => {
    const net = await createNetnsPair(t, { mtu: 1500 });
    const file = await sparseFile(t, 2048 * 512);
    const [cmd, argv] = targetCommand(['--user', 'aoet-no-such-user', String(SHELF), String(SLOT), net.targetIf, file], {
      prefix: CLEAN,
    });
    const r = await net.target.run(cmd, argv, { timeoutMs: 60000 });
    t.equal(r.code, 1, 'exit status 1');
    t.match(r.stderr, /^vblade: there is no user "aoet-no-such-user"; /m, `the message names the user: ${r.stderr.trim()}`);
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  });

  t.test('--user with a state directory the user cannot write: refuses to start and says why', async (t) => {
    const net = await createNetnsPair(t, { mtu: 1500 });
    const file = await sparseFile(t, 2048 * 512);
    const state = tempDir(t, 'state'); // root's, mode 0700
    chmodSync(state, 0o700);
    const [cmd, argv] = targetCommand(
      ['--user', 'nobody', '--state-dir', state, String(SHELF), String(SLOT), net.targetIf, file],
      { prefix: CLEAN },
    );
    const r = await net.target.run(cmd, argv, { timeoutMs: 60000 });
    t.equal(r.code, 1, 'exit status 1');
    t.match(r.stderr, `vblade: the state directory ${state} is not writable by user nobody`, `says so: ${r.stderr.trim()}`);
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  });
}

if (requireRoot(t) && requireCommands(t, ['setpriv'])) {
  t.test('as nobody with only CAP_NET_RAW: serves reads and writes', async (t) => {
    const net = await createNetnsPair(t, { mtu: 1500 });
    const dir = tempDir(t, 'priv');
    const file = await sparseFile(t, 2048 * 512, { dir });
    writeClientPattern(file, 0, 2048);
    chownSync(dir, NOBODY, NOGROUP);
    chownSync(file, NOBODY, NOGROUP);
    chmodSync(file, 0o600);
    const d = await startTarget(t, net.target, [String(SHELF), String(SLOT), net.targetIf, file], {
      prefix: WITH_NET_RAW,
      vblade: vbladeForUser(t),
    });
    const c = caps(d.pid);
    t.equal(c.uid, BigInt(NOBODY), 'the daemon runs as nobody (effective uid 65534)');
    t.match(readFileSync(`/proc/${d.pid}/status`, 'utf8'), /^Seccomp:\s+2$/m, 'not root: write leases refused (seccomp)');
    t.equal(c.CapEff, 1n << BigInt(CAP_NET_RAW_BIT), 'its effective capabilities are CAP_NET_RAW and nothing else');
    t.equal(c.CapPrm, 1n << BigInt(CAP_NET_RAW_BIT), 'and so is its permitted set');
    const client = await openClient(t, net.init, net.initIf, { timeoutMs: 1000, retries: 5 });
    const target = await client.find(SHELF, SLOT, 10000);
    t.equal((await client.identify(target)).sectors, 2048, 'IDENTIFY answered');
    t.equal(checkSectors(await client.read(target, 0, 64), 0, 0, 64), -1, 'reads return the file');
    const data = new Uint8Array(8 * 512);
    fillSectors(data, 0, 1000, 8);
    await client.write(target, 1000, data);
    await client.flush(target);
    t.same(await client.read(target, 1000, 8), data, 'writes and FLUSH CACHE work');
    t.ok(d.proc.running, 'still running');
    await d.proc.stop();
    t.equal(d.proc.exitStatus?.code, 0, 'stops cleanly on SIGTERM');
  });

  t.test('as nobody without CAP_NET_RAW: refuses to start and says why', async (t) => {
    const net = await createNetnsPair(t, { mtu: 1500 });
    const dir = tempDir(t, 'nocap');
    const file = await sparseFile(t, 2048 * 512, { dir });
    chownSync(dir, NOBODY, NOGROUP);
    chownSync(file, NOBODY, NOGROUP);
    const [cmd, argv] = targetCommand([String(SHELF), String(SLOT), net.targetIf, file], {
      prefix: DROP,
      vblade: vbladeForUser(t),
    });
    const r = await net.target.run(cmd, argv, { timeoutMs: 60000 });
    t.equal(r.code, 1, 'exit status 1');
    t.match(r.stderr, /CAP_NET_RAW/, `the message names the capability: ${r.stderr.trim()}`);
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  });

  t.test('with CAP_NET_RAW but no access to the backing file: refuses to start and says why', async (t) => {
    const net = await createNetnsPair(t, { mtu: 1500 });
    const dir = tempDir(t, 'noaccess');
    const file = await sparseFile(t, 2048 * 512, { dir });
    chownSync(dir, NOBODY, NOGROUP);
    chmodSync(file, 0o600); // still root's
    const [cmd, argv] = targetCommand([String(SHELF), String(SLOT), net.targetIf, file], {
      prefix: WITH_NET_RAW,
      vblade: vbladeForUser(t),
    });
    const r = await net.target.run(cmd, argv, { timeoutMs: 60000 });
    t.equal(r.code, 1, 'exit status 1');
    t.match(r.stderr, /permission denied/, `the message says permission denied: ${r.stderr.trim()}`);
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  });
}
