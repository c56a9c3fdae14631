// docs/operations.md's "Serving from Ceph" and "Two gateways", followed as
// written on a real one-node Ceph (lab/ceph.ts): the pool, image and cephx
// user its commands make (run from the doc's text, so a cap it leaves out
// fails here), the export section it shows, `vblade ctl add` of an rbd
// image to a running daemon, a wrong key named by `vbladed --check`, and
// both gateways' steps with that user alone: a standby, a clean stop
// handing over, and `ctl takeover`, which blocklists the old owner (the
// `profile rbd` mon cap is what allows it).
//
// Network safety: the cluster, both gateways and the initiator run in
// namespaces of the test's own, joined by its own veths and bridge.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AoeClient, linkInfo, type Target } from '../../src/client';
import { addBridgeTap, createNetns, createVeth, type Netns } from '../../lab/netns';
import type { Proc } from '../../lab/process';
import { requireCeph, startCeph, type CephCluster } from '../helpers/ceph';
import { tempDir } from '../helpers/files';
import { waitLinkUp } from '../helpers/targets';
import { VBLADED, ctlIn, spawnVbladed, until } from '../helpers/vbladed';

const DOC = path.join(__dirname, '..', '..', '..', 'docs', 'operations.md');

/** The text of the doc from `start` up to `end`. */
function docSection(start: string, end: string): string {
  const doc = fs.readFileSync(DOC, 'utf8');
  const from = doc.indexOf(`\n${start}\n`);
  const to = doc.indexOf(`\n${end}\n`, from + 1);
  if (from < 0 || to < 0) throw new Error(`docs/operations.md has no section "${start}" before "${end}"`);
  return doc.slice(from, to);
}

/** The fenced blocks of `lang` in `text`, without their indent. */
function blocks(text: string, lang: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(new RegExp(`^( *)\`\`\`${lang}\\n([\\s\\S]*?)^ *\`\`\`$`, 'gm')))
    out.push(m[2].replace(new RegExp(`^${m[1]}`, 'gm'), ''));
  return out;
}

/** A command line split as sh would split it (single quotes only: what the doc uses). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

interface Gateway {
  daemon: Proc;
  socket: string;
  conf: string;
  targetIf: string;
  T: Target;
}

/** A veth from the cluster's namespace onto the initiators' bridge, and a vbladed with `exports` on it. */
async function gateway(
  t: Parameters<typeof startCeph>[0],
  cluster: CephCluster,
  init: Netns,
  bridge: string,
  name: string,
  exports: (ifname: string) => string,
): Promise<Gateway> {
  const v = await createVeth(t, cluster.ns, init, { mtu: 1500 });
  await init.ip(['link', 'set', 'dev', v.b.ifname, 'master', bridge, 'up']);
  await waitLinkUp(cluster.ns, v.a.ifname);
  const dir = tempDir(t, `walk-${name}`);
  fs.chmodSync(dir, 0o755);
  const socket = path.join(dir, 'ctl.sock');
  const conf = path.join(dir, 'vblade.conf');
  fs.writeFileSync(conf, `[daemon]\ncontrol-socket = ${socket}\ncontrol-group = nogroup\n\n${exports(v.a.ifname)}`);
  const daemon = spawnVbladed(t, cluster.ns, conf, dir);
  await daemon.waitFor(/worker [0-9]+ is serving/, { timeoutMs: 60000 });
  const T: Target = { shelf: 1, slot: 3, mac: linkInfo(v.a.ifname, cluster.ns.path).mac, sectorCount: 16, bufferCount: 16 };
  return { daemon, socket, conf, targetIf: v.a.ifname, T };
}

function stamp(text: string): Buffer {
  const b = Buffer.alloc(8 * 512);
  for (let i = 0; i < 8; i++) b.write(`${text} sector ${i}`.padEnd(512, '.'), i * 512);
  return b;
}

t.test('Serving from Ceph and Two gateways, as docs/operations.md writes them', async (t) => {
  if (!requireCeph(t)) return;
  const section = docSection('## Serving from Ceph', '## Failover between two hosts');
  const cluster = await startCeph(t, { label: 'walk' });

  // Step 2: the doc's commands, run as written; the key comes from `ceph auth get-or-create`.
  const commands = blocks(section, 'sh')[0]
    .split('\n')
    .filter((l) => /^(ceph|rbd) /.test(l));
  t.ok(commands.length >= 4, `the walkthrough's commands: ${commands.join('; ')}`);
  let keyring = '';
  for (const line of commands) {
    const [cmd, ...args] = shellWords(line);
    const r = await (cmd === 'ceph' ? cluster.ceph(args) : cluster.rbd(args));
    if (args[0] === 'auth') keyring = r.stdout;
  }
  t.match(keyring, /^\[client\.aoe\]\n\s*key = \S+/m, 'ceph auth get-or-create printed the key of client.aoe');
  const [pool, image] = /file = rbd:(\S+)\/(\S+)/.exec(blocks(section, 'ini')[0])!.slice(1);
  t.match((await cluster.rbd(['info', `${pool}/${image}`])).stdout, /exclusive-lock/, 'the new image has exclusive-lock');

  // The gateway's own ceph.conf and keyring: the cluster's conf with the keyring the doc says where to put.
  const etc = tempDir(t, 'walk-etc');
  fs.chmodSync(etc, 0o755);
  const keyFile = path.join(etc, 'ceph.client.aoe.keyring');
  fs.writeFileSync(keyFile, keyring, { mode: 0o640 });
  const cephConf = path.join(etc, 'ceph.conf');
  fs.writeFileSync(
    cephConf,
    fs.readFileSync(cluster.conf, 'utf8').replace(/^keyring = .*client\.admin\.keyring$/m, `keyring = ${keyFile}`),
    { mode: 0o644 },
  );
  const exportSection = (ifname: string): string =>
    blocks(section, 'ini')[0]
      .replace(/^interfaces = \S+/m, `interfaces = ${ifname}`)
      .replace(/^ceph-conf = \S+/m, `ceph-conf = ${cephConf}`);
  t.match(exportSection('x'), /^ceph-id = aoe$/m, 'the export names the gateway user');

  await t.test('a wrong key is named by --check', async (t) => {
    const badEtc = tempDir(t, 'walk-bad');
    fs.chmodSync(badEtc, 0o755);
    const badKey = path.join(badEtc, 'ceph.client.aoe.keyring');
    fs.writeFileSync(badKey, keyring.replace(/key = \S+/, 'key = AQBj2lVnAAAAABAAxQ7L1/5YBx7rB0V0RzDmfA=='), { mode: 0o640 });
    const badConf = path.join(badEtc, 'ceph.conf');
    fs.writeFileSync(badConf, fs.readFileSync(cephConf, 'utf8').replace(keyFile, badKey), { mode: 0o644 });
    const conf = path.join(badEtc, 'vblade.conf');
    fs.writeFileSync(
      conf,
      exportSection('lo')
        .replace(cephConf, badConf)
        .replace(/^remote-timeout = \d+/m, 'remote-timeout = 5'),
    );
    const r = await cluster.ns.run(process.execPath, [VBLADED, '--check', '--config', conf], { timeoutMs: 60000 });
    t.not(r.code, 0, 'the check fails');
    t.match(
      r.stderr + r.stdout,
      /the Ceph monitors refused client\.aoe: check ceph-id and the key its keyring holds/,
      r.stderr.trim(),
    );
  });

  const init = await createNetns(t, 'walk-init');
  const bridge = (await addBridgeTap(t, init)).bridge;
  const whole = t;
  let A = await gateway(whole, cluster, init, bridge, 'a', exportSection);
  // B starts serving something else, and gets e1.3 from `vblade ctl add`, as the doc's other way has it.
  const B = await gateway(
    whole,
    cluster,
    init,
    bridge,
    'b',
    (ifname) => `[export e9.9]\nnull-store = yes\nnull-sectors = 8\ninterfaces = ${ifname}\n`,
  );
  const add = /`(vblade ctl add [^`]+)`/.exec(section)![1];
  // The bridge is up once a port is: the client opens now.
  await waitLinkUp(init, bridge);
  const client = AoeClient.open(bridge, { netns: init.path, timeoutMs: 1000, retries: 2 });
  t.teardown(() => client.close());

  await t.test('A serves; B, given the export by ctl add, stands by and names the owner', async (t) => {
    await client.write(A.T, 10, stamp('through A'));
    t.same(Buffer.from(await client.read(A.T, 10, 8)), stamp('through A'), 'A reads back what it wrote');
    const words = shellWords(add)
      .slice(2)
      .map((w) => (w === 'eth1' ? B.targetIf : w));
    const r = await ctlIn(cluster.ns, B.socket, ...words, `ceph-conf=${cephConf}`);
    t.equal(r.code, 0, `${add}: ${r.err}`);
    t.match(r.out, /e1\.3: added, kept in /, r.out.trim());
    const list = (await ctlIn(cluster.ns, B.socket, 'list')).out;
    t.match(
      list,
      new RegExp(`NOT SERVED, standby: the exclusive lock of the rbd image ${pool}/${image} is held by client\\.\\d+ at `),
      list,
    );
    const found = (await client.discover(1, 3, 1500)).map((d) => d.macText);
    t.equal(found.length, 1, `one gateway answers e1.3: ${found.join(' ')}`);
  });

  await t.test('maintenance on A: a clean stop hands over to B, and A started again stands by', async (t) => {
    A.daemon.signal('SIGTERM');
    await A.daemon.exited;
    await B.daemon.waitFor(/took the exclusive lock of \S+ \(nobody held the lock\); serving/, { timeoutMs: 15000 });
    t.same(Buffer.from(await client.read(B.T, 10, 8)), stamp('through A'), 'B serves what A wrote');
    await client.write(B.T, 10, stamp('through B'));
    A = await gateway(whole, cluster, init, bridge, 'a2', exportSection);
    t.match((await ctlIn(cluster.ns, A.socket, 'list')).out, /NOT SERVED, standby: /, 'A stands by');
  });

  await t.test('a gateway user without the mon cap to blocklist: the takeover is refused with the cap it needs', async (t) => {
    const weak = (
      await cluster.ceph(['auth', 'get-or-create', 'client.weak', 'mon', 'allow r', 'osd', `profile rbd pool=${pool}`])
    ).stdout;
    const weakKey = path.join(etc, 'ceph.client.weak.keyring');
    fs.writeFileSync(weakKey, weak, { mode: 0o640 });
    const weakConf = path.join(etc, 'weak.conf');
    fs.writeFileSync(weakConf, fs.readFileSync(cephConf, 'utf8').replace(keyFile, weakKey), { mode: 0o644 });
    const C = await gateway(t, cluster, init, bridge, 'c', (ifname) =>
      exportSection(ifname)
        .replace(cephConf, weakConf)
        .replace(/^ceph-id = aoe$/m, 'ceph-id = weak'),
    );
    const tk = await ctlIn(cluster.ns, C.socket, 'takeover', 'e1.3');
    t.not(tk.code, 0, 'refused');
    t.match(
      tk.err,
      /cannot break the lock of \S+ held by \S+: Permission denied \(breaking it blocklists the owner, which this gateway's cephx user may do only with the mon cap 'profile rbd'/,
      tk.err.trim(),
    );
    t.match((await ctlIn(cluster.ns, C.socket, 'list')).out, /NOT SERVED, standby: /, 'that gateway still stands by');
    t.same(Buffer.from(await client.read(B.T, 10, 8)), stamp('through B'), 'B still serves');
    C.daemon.signal('SIGTERM');
    await C.daemon.exited;
  });

  await t.test('ctl takeover on A, with the gateway user alone: B is blocklisted and says it is fenced', async (t) => {
    const tk = await ctlIn(cluster.ns, A.socket, 'takeover', 'e1.3');
    t.equal(tk.code, 0, tk.err);
    t.match(tk.out, /e1\.3: taken over in \d+ ms: broke the lock of /, tk.out.trim());
    t.match((await cluster.ceph(['osd', 'blocklist', 'ls'])).stdout, /127\.0\.0\.1:0\/\d+/, 'the cluster blocklists B');
    t.same(Buffer.from(await client.read(A.T, 10, 8)), stamp('through B'), 'A serves what B wrote');
    // B notices at its next write or look.
    await client.write(A.T, 20, stamp('through A again'));
    await until(
      'B says it is fenced',
      async () => /NOT SERVED, fenced: /.test((await ctlIn(cluster.ns, B.socket, 'list')).out),
      20000,
    );
    t.pass('B lists e1.3 NOT SERVED, fenced');
  });
});
