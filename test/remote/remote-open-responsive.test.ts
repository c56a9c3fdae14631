// A remote store that hangs while it is opened, or closed, must not stall the daemon:
// vbladed serves a file export, and a reload adds an export whose remote
// store never answers (an nbd server that accepts and says nothing; a Ceph
// monitor address where a listener accepts and says nothing), with a
// remote-timeout of several seconds. While that reload is pending, a
// Query Config and a read of the file export are answered at once, and
// `vblade ctl list` too; then the reload is refused with the remote store's
// own message, and the file export serves on. The same holds for a reload
// that removes an export whose server stopped answering: its close (the
// final flush, bounded by remote-timeout) runs off the event loop.
//
// Network safety: vbladed runs inside namespaces this test makes, on a veth
// pair made there; the AoE client sends only on the pair's other end.

import t, { type Test } from 'tap';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import * as path from 'node:path';
import { AoeClient, linkInfo, type Target } from '../../src/client';
import { sleep } from '../../lab/common';
import { createNetns, createNetnsPair, createVeth, requireRoot, type Netns } from '../../lab/netns';
import type { Proc } from '../../lab/process';
import { requireCeph, startCeph } from '../helpers/ceph';
import { patternFile, patternSectors, tempDir } from '../helpers/files';
import { nbdUri, startNbdkit } from '../helpers/nbd-server';
import { waitLinkUp } from '../helpers/targets';
import { ctlIn, spawnVbladed } from '../helpers/vbladed';

/** The reload must take this long (remote-timeout) for the answers during it to mean anything. */
const REMOTE_TIMEOUT_S = 4;
/**
 * How soon an answer must come while the reload waits for the remote store:
 * before the change nothing came for the whole remote-timeout; a loaded CI
 * machine answers in tens of ms, a few hundred at worst.
 */
const PROMPT_MS = 1000;

interface Served {
  daemon: Proc;
  socket: string;
  conf: string;
  /** The config as started: the file export alone. */
  base: string;
  file: Target;
  client: AoeClient;
}

/** vbladed in `ns` serving a pattern file as e1.1 on `targetIf`, and a client on `initIf` in `init`. */
async function serveFile(t: Test, ns: Netns, targetIf: string, init: Netns, initIf: string): Promise<Served> {
  await waitLinkUp(ns, targetIf);
  await waitLinkUp(init, initIf);
  const dir = tempDir(t, 'vbladed');
  const socket = path.join(dir, 'ctl.sock');
  const conf = path.join(dir, 'vblade.conf');
  const image = await patternFile(t, 2048);
  const base = `[daemon]\ncontrol-socket = ${socket}\n\n[export e1.1]\nfile = ${image}\ninterfaces = ${targetIf}\n`;
  fs.writeFileSync(conf, base);
  const daemon = spawnVbladed(t, ns, conf, dir);
  await daemon.waitFor(/worker [0-9]+ is serving/, { timeoutMs: 60000 });
  const client = AoeClient.open(initIf, { netns: init.path, timeoutMs: 2000, retries: 0 });
  t.teardown(() => client.close());
  const file: Target = { shelf: 1, slot: 1, mac: linkInfo(targetIf, ns.path).mac, sectorCount: 16, bufferCount: 16 };
  return { daemon, socket, conf, base, file, client };
}

/**
 * Starts a reload to the file export plus `extra` (an export to add, or
 * nothing, removing the others), and while it is pending times a Query
 * Config, a read of the file export and `vblade ctl list`; then waits for
 * the reload, which must take `leastWaitMs` at least (the remote store's
 * wait; 0: not known). Returns the reload's outcome.
 */
async function reloadWhileAsking(
  t: Test,
  ns: Netns,
  s: Served,
  extra: string,
  leastWaitMs = (REMOTE_TIMEOUT_S - 1) * 1000,
): Promise<{ code: number | null; err: string; ms: number }> {
  let t0 = performance.now();
  await ctlIn(ns, s.socket, 'list');
  const idleListMs = performance.now() - t0;
  fs.writeFileSync(s.conf, s.base + extra);
  const from = s.daemon.mark();
  const started = Date.now();
  let settled = false;
  const reload = ctlIn(ns, s.socket, 'reload').then((r) => {
    settled = true;
    return { ...r, ms: Date.now() - started };
  });
  await s.daemon.waitFor(/reloading the configuration/, { from, timeoutMs: 10000 });
  // The worker has the new config and is opening (or closing) the remote store by now.
  await sleep(500);

  t0 = performance.now();
  const found = await s.client.discover(1, 1, 2000, true);
  const queryMs = performance.now() - t0;
  t.equal(found.length, 1, 'the file export answers a Query Config');
  t.ok(queryMs < PROMPT_MS, `Query Config answered in ${queryMs.toFixed(1)} ms during the reload (limit ${PROMPT_MS} ms)`);

  t0 = performance.now();
  const data = await s.client.read(s.file, 7, 1).then(
    (d) => Buffer.from(d),
    (e: Error) => e.message,
  );
  const readMs = performance.now() - t0;
  t.same(data, patternSectors(7, 1), 'a read of the file export is answered with its data');
  t.ok(readMs < PROMPT_MS, `the read answered in ${readMs.toFixed(1)} ms during the reload (limit ${PROMPT_MS} ms)`);
  t.notOk(settled, 'both came before the reload was answered');

  t0 = performance.now();
  const list = await ctlIn(ns, s.socket, 'list');
  const listMs = performance.now() - t0;
  t.equal(list.code, 0, list.err);
  t.match(list.out, /^e1\.1\t/m, 'ctl list answers, naming the file export');
  t0 = performance.now();
  const after = await s.client.discover(1, 1, 2000, true);
  const afterMs = performance.now() - t0;
  t.comment(
    `during the reload: Query Config ${queryMs.toFixed(1)} ms, read ${readMs.toFixed(1)} ms, ctl list ${listMs.toFixed(0)} ms (a new node process; ${idleListMs.toFixed(0)} ms before the reload), Query Config after it ${afterMs.toFixed(1)} ms (${after.length})`,
  );

  const r = await reload;
  t.comment(`the reload was answered after ${r.ms} ms (remote-timeout ${REMOTE_TIMEOUT_S} s)`);
  if (leastWaitMs > 0) t.ok(r.ms >= leastWaitMs, 'the reload waited for the remote store, as long as remote-timeout');
  return r;
}

if (requireRoot(t)) {
  t.test('an nbd server that accepts and never answers: the daemon answers meanwhile', async (t) => {
    const pair = await createNetnsPair(t);
    const s = await serveFile(t, pair.target, pair.targetIf, pair.init, pair.initIf);
    // A server in this process: it accepts (the kernel does, on its backlog too) and says nothing.
    const dir = tempDir(t, 'hang');
    const hangs = path.join(dir, 'hangs.sock');
    const held: Socket[] = [];
    const server: Server = createServer((c) => void held.push(c));
    server.listen(hangs);
    await once(server, 'listening');
    t.teardown(() => {
      for (const c of held) c.destroy();
      server.close();
    });
    const r = await reloadWhileAsking(
      t,
      pair.target,
      s,
      `\n[export e1.2]\nfile = ${nbdUri(hangs)}\nremote-timeout = ${REMOTE_TIMEOUT_S}\ninterfaces = ${pair.targetIf}\n`,
    );
    t.not(r.code, 0, 'the reload is refused');
    t.match(r.err, /e1\.2: .*no answer to the handshake within 4000 ms/, r.err.trim());
    t.same(Buffer.from(await s.client.read(s.file, 3, 1)), patternSectors(3, 1), 'the file export serves on');
    t.notMatch((await ctlIn(pair.target, s.socket, 'list')).out, /e1\.2/, 'and nothing of e1.2 is served');

    // Two reloads at once run one after the other: each waits for its own open.
    const started = Date.now();
    const timed = () => ctlIn(pair.target, s.socket, 'reload').then((r) => ({ ...r, at: Date.now() - started }));
    const first = timed();
    await sleep(300);
    const [r1, r2] = await Promise.all([first, timed()]);
    t.comment(`two reloads at once: answered ${r1.at} ms and ${r2.at} ms after the first was sent`);
    for (const r of [r1, r2]) t.match(r.err, /e1\.2: .*no answer to the handshake within 4000 ms/, 'each is refused');
    // Whichever request reached the daemon first (starting a ctl process takes 0.3-5 s on a loaded machine),
    // the other waits for its open to give up and then opens on its own: the answers come a remote-timeout
    // apart, where two reloads side by side would answer together.
    const gap = Math.abs(r2.at - r1.at);
    t.ok(gap >= (REMOTE_TIMEOUT_S - 1) * 1000, `the reloads opened the store one after the other: answers ${gap} ms apart`);
  });

  t.test('a stop while a reload waits for a remote store: the store is never served, the daemon exits cleanly', async (t) => {
    const pair = await createNetnsPair(t);
    const s = await serveFile(t, pair.target, pair.targetIf, pair.init, pair.initIf);
    const hangs = path.join(tempDir(t, 'hang'), 'hangs.sock');
    const held: Socket[] = [];
    const server: Server = createServer((c) => void held.push(c));
    server.listen(hangs);
    await once(server, 'listening');
    t.teardown(() => {
      for (const c of held) c.destroy();
      server.close();
    });
    fs.writeFileSync(
      s.conf,
      s.base + `\n[export e1.2]\nfile = ${nbdUri(hangs)}\nremote-timeout = ${REMOTE_TIMEOUT_S}\ninterfaces = ${pair.targetIf}\n`,
    );
    const from = s.daemon.mark();
    const reload = ctlIn(pair.target, s.socket, 'reload');
    await s.daemon.waitFor(/reloading the configuration/, { from, timeoutMs: 10000 });
    await sleep(500);
    const stopped = Date.now();
    s.daemon.signal('SIGTERM');
    const exit = await s.daemon.exited;
    const ms = Date.now() - stopped;
    t.same(exit, { code: 0, signal: null }, 'vbladed exits 0');
    t.ok(ms < (REMOTE_TIMEOUT_S + 5) * 1000, `within the open's remote-timeout: ${ms} ms`);
    t.comment(`stopped ${ms} ms after SIGTERM, with an nbd open of remote-timeout ${REMOTE_TIMEOUT_S} s in flight`);
    const r = await reload;
    t.not(r.code, 0, `the reload is not applied: ${r.err.trim()}`);
    const log = s.daemon.tail(400);
    t.notMatch(log, /"export":"e1\.2"[^\n]*export added/, 'e1.2 was never added');
    t.notMatch(log, /uncaught|FATAL|Segmentation/i, 'nothing crashed');
  });

  t.test('a reload that removes an nbd export whose server stopped answering: the daemon answers meanwhile', async (t) => {
    const pair = await createNetnsPair(t);
    const s = await serveFile(t, pair.target, pair.targetIf, pair.init, pair.initIf);
    const server = await startNbdkit(t, ['memory', 'size=16M']);
    const nbdExport = `\n[export e1.2]\nfile = ${server.uri}\nremote-timeout = ${REMOTE_TIMEOUT_S}\ninterfaces = ${pair.targetIf}\n`;
    fs.writeFileSync(s.conf, s.base + nbdExport);
    const added = await ctlIn(pair.target, s.socket, 'reload');
    t.equal(added.code, 0, added.err);
    const T: Target = { ...s.file, slot: 2 };
    await s.client.write(T, 0, patternSectors(50, 1));
    t.same(Buffer.from(await s.client.read(T, 0, 1)), patternSectors(50, 1), 'the nbd export serves');
    await server.proc.freeze(); // it answers nothing now: the close's final flush waits remote-timeout
    const r = await reloadWhileAsking(t, pair.target, s, '');
    t.equal(r.code, 0, `the reload is applied: ${r.err.trim()}`);
    t.notMatch((await ctlIn(pair.target, s.socket, 'list')).out, /e1\.2/, 'e1.2 is no longer served');
    t.match(s.daemon.tail(100), /final flush at close did not complete/, 'the log says the final flush did not complete');
    server.proc.signal('SIGCONT');
  });

  t.test('a Ceph monitor that accepts and never answers: the daemon answers meanwhile', async (t) => {
    if (!requireCeph(t)) return;
    const cluster = await startCeph(t);
    const spec = await cluster.createImage('disk', 16 << 20);
    const init = await createNetns(t, 'init');
    const v = await createVeth(t, cluster.ns, init);
    const s = await serveFile(t, cluster.ns, v.a.ifname, init, v.b.ifname);
    // The monitor address: a listener in the cluster's namespace that accepts and says nothing.
    const mon = cluster.ns.spawn(
      t,
      process.execPath,
      ['-e', "require('net').createServer(() => {}).listen(3399, '127.0.0.1', () => console.log('listening'))"],
      { label: 'silent-mon' },
    );
    await mon.waitFor(/listening/, { timeoutMs: 10000 });
    const hung = path.join(cluster.dir, 'hung-mon.conf');
    fs.writeFileSync(hung, fs.readFileSync(cluster.conf, 'utf8').replace(/^mon host = .*$/m, 'mon host = v2:127.0.0.1:3399'), {
      mode: 0o644,
    });
    const rbdExport = (conf: string) =>
      `\n[export e1.2]\nfile = rbd:${spec}\nceph-conf = ${conf}\nremote-timeout = ${REMOTE_TIMEOUT_S}\ninterfaces = ${v.a.ifname}\n`;
    const r = await reloadWhileAsking(t, cluster.ns, s, rbdExport(hung));
    t.not(r.code, 0, 'the reload is refused');
    t.match(r.err, /e1\.2: .*no Ceph monitor answered in time: check that `mon host`/, r.err.trim());
    t.same(Buffer.from(await s.client.read(s.file, 3, 1)), patternSectors(3, 1), 'the file export serves on');

    // The cluster's own monitors: the same reload is applied, and the image served.
    fs.writeFileSync(s.conf, s.base + rbdExport(cluster.conf));
    const ok = await ctlIn(cluster.ns, s.socket, 'reload');
    t.equal(ok.code, 0, ok.err);
    t.match(
      (await ctlIn(cluster.ns, s.socket, 'list')).out,
      new RegExp(`^e1\\.2\\t\\S+\\trw\\trbd:${spec}\\n(?!\\tNOT SERVED)`, 'm'),
    );
    const T: Target = { ...s.file, slot: 2 };
    await s.client.write(T, 0, patternSectors(100, 1));
    t.same(Buffer.from(await s.client.read(T, 0, 1)), patternSectors(100, 1), 'the rbd export added then serves');

    // The OSD stops answering, and a reload removes the rbd export: librbd's close (the lock given back) waits on the OSD.
    await cluster.osd.freeze();
    t.teardown(() => cluster.osd.signal('SIGCONT'));
    const removed = await reloadWhileAsking(t, cluster.ns, s, '', 0);
    t.equal(removed.code, 0, `the reload is applied: ${removed.err.trim()}`);
    t.notMatch((await ctlIn(cluster.ns, s.socket, 'list')).out, /e1\.2/, 'e1.2 is no longer served');
    cluster.osd.signal('SIGCONT');
  });
}
