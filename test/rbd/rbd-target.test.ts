// Our target serving Ceph RBD images (file = rbd:POOL/IMAGE) from a real
// one-node cluster (test/helpers/ceph.ts) to the project's AoE client: data
// written through AoE is in the image's RADOS objects, FLUSH and -s are
// librbd flushes (its own counters, read from the target's admin socket),
// librbd's cache is off, 16 requests at a time never stall on a lost
// completion wake-up, `rbd resize` reaches the initiator through a new
// IDENTIFY, and an image in a rados namespace is served too.
//
// Network safety: the target runs in the cluster's namespace, its AoE
// interface one end of a veth pair whose other end is in an initiator
// namespace; both namespaces are the test's own.

import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { linkInfo, type Target } from '../../src/client';
import { AtaError } from '../../src/client/errors';
import { sleep } from '../../lab/common';
import { createNetns, createVeth } from '../../lab/netns';
import { runOk } from '../../lab/process';
import { type CephCluster, readImage, requireCeph, startCeph } from '../helpers/ceph';
import { patternSectors } from '../helpers/files';
import { startTarget, waitLinkUp, type RunningTarget } from '../helpers/targets';
import { openClient, type Recorder, sectorDiff, stamp } from '../integration/lib';

const SHELF = 9;
const SLOT = 4;
const MiB = 1 << 20;

/** What the target's librbd says through its admin socket: `ceph daemon ASOK …`. */
async function adminSocket(cluster: CephCluster, target: RunningTarget, args: string[]): Promise<unknown> {
  const asok = join(cluster.dir, 'run', `client.admin.${target.pid}.asok`);
  if (!existsSync(asok)) throw new Error(`no admin socket ${asok}`);
  return JSON.parse((await runOk('ceph', ['--admin-daemon', asok, ...args])).stdout) as unknown;
}

/** librbd's count of flushes on the image the target has open. */
async function rbdFlushes(cluster: CephCluster, target: RunningTarget): Promise<number> {
  const perf = (await adminSocket(cluster, target, ['perf', 'dump'])) as Record<string, { flush?: number }>;
  const image = Object.keys(perf).filter((k) => k.startsWith('librbd-'));
  if (image.length !== 1) throw new Error(`expected one librbd image in perf dump, got ${image.join(' ')}`);
  return perf[image[0]].flush ?? NaN;
}

/** A target serving `spec` from `cluster`, and a client in a namespace of its own. */
async function serve(
  t: Parameters<typeof startCeph>[0],
  cluster: CephCluster,
  spec: string,
  options: string[] = [],
): Promise<{ target: RunningTarget; c: Recorder; T: Target }> {
  const init = await createNetns(t, 'init');
  const veth = await createVeth(t, cluster.ns, init, { mtu: 9000 });
  await waitLinkUp(cluster.ns, veth.a.ifname);
  const c = await openClient(t, init, veth.b.ifname, { timeoutMs: 2000 });
  const args = ['--ceph-conf', cluster.conf, ...options, String(SHELF), String(SLOT), veth.a.ifname, `rbd:${spec}`];
  const target = await startTarget(t, cluster.ns, args);
  const T: Target = {
    shelf: SHELF,
    slot: SLOT,
    mac: linkInfo(veth.a.ifname, cluster.ns.path).mac,
    sectorCount: 16,
    bufferCount: 16,
  };
  return { target, c, T };
}

t.test('an rbd image served over AoE', async (t) => {
  if (!requireCeph(t)) return;
  const cluster = await startCeph(t);
  const spec = await cluster.createImage('disk', 64 * MiB);
  const { target, c, T } = await serve(t, cluster, spec);
  t.equal(target.sectors, (64 * MiB) / 512, `the size is the image's: ${target.line}`);
  t.equal(target.mode, 'O_RDWR');

  await t.test('writes land in the image, reads come back', async (t) => {
    t.equal((await c.client.identify(T)).lba48Sectors, (64 * MiB) / 512, 'IDENTIFY says the image size');
    const data = patternSectors(8190, 64); // across the first 4 MiB object boundary (sector 8192)
    await c.client.write(T, 8190, data);
    const d28 = stamp('rbd28', 2);
    await c.client.write28(T, 3, d28);
    t.equal(sectorDiff(Buffer.from(await c.client.read(T, 8190, 64)), data), 'same', 'read back through AoE');
    t.equal(sectorDiff(await readImage(cluster, spec, 8190 * 512, 64 * 512), data), 'same', 'in the RADOS objects');
    t.equal(
      sectorDiff(await readImage(cluster, spec, 0, 6 * 512), Buffer.concat([Buffer.alloc(1536), d28, Buffer.alloc(512)])),
      'same',
      'the 28-bit write too, nothing around it',
    );
    await t.rejects(c.client.read(T, (64 * MiB) / 512, 1), AtaError, 'a read past the end is an ATA error');
  });

  await t.test('16 requests in flight, again and again: no completion waits for a retransmission', async (t) => {
    // librbd's completions wake the event loop through an eventfd written only
    // when the list of finished requests was empty; a wake-up lost in that
    // hand-over leaves every request in flight waiting until the initiator
    // retransmits (2 s here), which this catches as a slow request.
    let slowest = 0;
    let done = 0;
    const worker = async (w: number) => {
      for (let i = 0; i < 200; i++) {
        const lba = (((w * 200 + i) * 7919) % 16000) * 8;
        const started = performance.now();
        if (i % 3 === 2) await c.client.write(T, lba, stamp(`w${w}.${i}`, 8));
        else await c.client.read(T, lba, 8);
        slowest = Math.max(slowest, performance.now() - started);
        done++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, w) => worker(w)));
    t.equal(done, 3200, 'every request answered');
    t.ok(slowest < 1800, `the slowest took ${slowest.toFixed(0)} ms (a lost wake-up takes the 2 s retransmission)`);
  });

  await t.test("librbd's cache is off and FLUSH is an rbd flush", async (t) => {
    const config = (await adminSocket(cluster, target, ['config', 'get', 'rbd_cache'])) as { rbd_cache: string };
    t.equal(config.rbd_cache, 'false', 'rbd_cache = false on the connection (the test conf does not set it)');
    const timeout = (await adminSocket(cluster, target, ['config', 'get', 'rados_osd_op_timeout'])) as Record<string, string>;
    t.equal(timeout.rados_osd_op_timeout, '30', 'rados_osd_op_timeout is remote-timeout’s default');
    const before = await rbdFlushes(cluster, target);
    await c.client.flush(T, true);
    await c.client.flush(T, false);
    t.equal(await rbdFlushes(cluster, target), before + 2, 'FLUSH CACHE EXT and FLUSH CACHE: two librbd flushes');
  });

  await t.test('rbd resize: the next IDENTIFY sees the new size', async (t) => {
    await cluster.rbd(['resize', '--size', '96M', spec]);
    const deadline = Date.now() + 20000;
    let sectors = 0;
    while (Date.now() < deadline) {
      sectors = (await c.client.identify(T)).lba48Sectors;
      if (sectors === (96 * MiB) / 512) break;
      await sleep(250);
    }
    t.equal(sectors, (96 * MiB) / 512, 'IDENTIFY reports 96 MiB without a restart');
    const grown = target.proc.lines.find((l) => /"msg":"export grown"/.test(l.text));
    t.ok(grown, 'the target logged the growth');
    const tail = patternSectors((96 * MiB) / 512 - 8, 8);
    await c.client.write(T, (96 * MiB) / 512 - 8, tail);
    t.equal(
      sectorDiff(await readImage(cluster, spec, 96 * MiB - 4096, 4096), tail),
      'same',
      'the new end is written in the image',
    );
  });

  await t.test('stop', async (t) => {
    const started = Date.now();
    const st = await target.proc.stop(15000);
    t.equal(st.code, 0, `exits 0 on SIGTERM, in ${Date.now() - started} ms`);
    t.ok(Date.now() - started < 10000, 'within 10 s (the image closed, the connection shut down)');
  });
});

t.test('-s: every write is followed by an rbd flush; an image in a rados namespace', async (t) => {
  if (!requireCeph(t)) return;
  const cluster = await startCeph(t);
  await cluster.rbd(['namespace', 'create', `${cluster.pool}/tenant`]);
  const spec = await cluster.createImage(`${cluster.pool}/tenant/vm1`, 16 * MiB);
  const { target, c, T } = await serve(t, cluster, spec, ['-s']);
  t.equal(target.sectors, (16 * MiB) / 512, `rbd:${spec}: ${target.line}`);
  const before = await rbdFlushes(cluster, target);
  for (let i = 0; i < 5; i++) await c.client.write(T, i * 100, stamp(`sync${i}`, 4));
  const flushes = (await rbdFlushes(cluster, target)) - before;
  t.ok(flushes >= 5, `5 acknowledged writes of a sync export, ${flushes} librbd flushes`);
  t.equal(
    sectorDiff(await readImage(cluster, spec, 400 * 512, 4 * 512), stamp('sync4', 4)),
    'same',
    'in the namespace’s objects',
  );
});
