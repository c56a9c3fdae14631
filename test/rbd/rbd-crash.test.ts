// Crash consistency of an rbd export: kill -9 the target during concurrent
// -s writes, then every acknowledged write must be in the image, read back
// with `rbd export` (past the target and its client) and through a new
// target. The records are those of the file crash test
// (test/reliability/lib/crash.ts): each sector names its LBA and the version
// of the write that put it there, so a lost, old or damaged sector shows.
//
// The dead target's librbd still holds the image's exclusive lock and its
// watch on the header until the OSD times the watch out (30 s): the test
// blocklists the dead client, as a failover does, so the next target takes
// the lock at once.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../lab/common';
import { createNetns, createVeth } from '../../lab/netns';
import type { AoeClient, DiscoveredTarget } from '../../src/client/client';
import { type CephCluster, requireCeph, startCeph } from '../helpers/ceph';
import { startTarget, waitLinkUp, type RunningTarget } from '../helpers/targets';
import { BLOCK, fillRecord, recordVersion } from '../reliability/lib/crash';
import { openClient, Rng } from '../reliability/lib/harness';

const ROUNDS = Number(process.env.AOET_RBD_CRASH_ROUNDS ?? 3);
const BLOCKS = 256;
const SECTORS = BLOCKS * BLOCK;
const WINDOW = 16;
const SHELF = 12;
const SLOT = 1;

/** Blocklists the clients that still watch the image's header (a dead target's). */
async function fenceWatchers(cluster: CephCluster, spec: string): Promise<string[]> {
  const status = JSON.parse((await cluster.rbd(['status', '--format', 'json', spec])).stdout) as {
    watchers: Array<{ address: string }>;
  };
  for (const w of status.watchers) await cluster.ceph(['osd', 'blocklist', 'add', w.address]);
  return status.watchers.map((w) => w.address);
}

t.test(`-s: ${ROUNDS} kills during concurrent writes to an rbd image lose no acknowledged write`, async (t) => {
  if (!requireCeph(t)) return;
  const cluster = await startCeph(t);
  const spec = await cluster.createImage('crash', SECTORS * 512);
  const init = await createNetns(t, 'init');
  const veth = await createVeth(t, cluster.ns, init, { mtu: 1500 });
  await waitLinkUp(cluster.ns, veth.a.ifname);
  const args = ['--ceph-conf', cluster.conf, '-s', String(SHELF), String(SLOT), veth.a.ifname, `rbd:${spec}`];
  const rng = new Rng(0x7bd5eed);
  const sent = new Uint32Array(BLOCKS);
  let ackedTotal = 0;

  const start = async (label: string): Promise<{ d: RunningTarget; client: AoeClient; target: DiscoveredTarget }> => {
    const d = await startTarget(t, cluster.ns, args, { label });
    const client = await openClient(t, init, veth.b.ifname, { timeoutMs: 1000, retries: 8 });
    return { d, client, target: await client.find(SHELF, SLOT, 10000) };
  };

  for (let round = 1; round <= ROUNDS; round++) {
    const { d, client, target } = await start(`vblade#${round}`);
    const acked = new Uint32Array(BLOCKS);
    const busy = new Uint8Array(BLOCKS);
    let stop = false;
    let acks = 0;
    let firstAck: () => void = () => undefined;
    const gotFirstAck = new Promise<void>((res) => (firstAck = res));
    const writer = async (): Promise<void> => {
      const buf = new Uint8Array(BLOCK * 512);
      while (!stop) {
        let b = rng.int(BLOCKS);
        for (let k = 0; busy[b] && k < BLOCKS; k++) b = (b + 1) % BLOCKS;
        if (busy[b]) {
          await sleep(1);
          continue;
        }
        busy[b] = 1;
        const v = ++sent[b];
        for (let s = 0; s < BLOCK; s++) fillRecord(buf, s * 512, b * BLOCK + s, v);
        try {
          await client.write(target, b * BLOCK, buf);
        } catch {
          return; // the target is gone: this write stays unacknowledged
        } finally {
          busy[b] = 0;
        }
        acked[b] = Math.max(acked[b], v);
        acks++;
        firstAck();
      }
    };
    const loops = Array.from({ length: WINDOW }, writer);
    await Promise.race([gotFirstAck, sleep(20000)]);
    await sleep(rng.range(200, 800));
    d.proc.signal('SIGKILL');
    await d.proc.exited;
    stop = true;
    client.close();
    await Promise.allSettled(loops);
    ackedTotal += acks;

    // Past the target: what the cluster holds, through rbd export.
    const exported = join(cluster.dir, `export-${round}.img`);
    await cluster.rbd(['export', '--no-progress', spec, exported]);
    const image = readFileSync(exported);
    let lost = 0;
    let damaged = 0;
    for (let b = 0; b < BLOCKS; b++)
      for (let s = 0; s < BLOCK; s++) {
        const lba = b * BLOCK + s;
        const v = recordVersion(image, lba * 512, lba);
        if (v < 0 || v > sent[b]) damaged++;
        else if (v < acked[b]) lost++;
      }
    t.equal(lost, 0, `round ${round}: ${acks} acknowledged writes, none missing from rbd export`);
    t.equal(damaged, 0, `round ${round}: no damaged sector, none newer than sent`);

    const fenced = await fenceWatchers(cluster, spec);
    t.ok(fenced.length <= 1, `round ${round}: the dead target's client blocklisted (${fenced.join(' ') || 'none left'})`);

    // Through a new target: the same data over AoE, and it takes writes (the lock passed).
    const next = await start(`vblade#${round}b`);
    const all = await next.client.read(next.target, 0, SECTORS);
    t.equal(Buffer.compare(Buffer.from(all), image), 0, `round ${round}: a new target reads what rbd export read`);
    const probe = new Uint8Array(BLOCK * 512);
    const v = ++sent[0];
    for (let s = 0; s < BLOCK; s++) fillRecord(probe, s * 512, s, v);
    const before = Date.now();
    await next.client.write(next.target, 0, probe);
    t.ok(Date.now() - before < 5000, `round ${round}: the new target writes at once (${Date.now() - before} ms)`);
    next.client.close();
    await next.d.proc.stop();
  }
  t.ok(ackedTotal > 0, `${ackedTotal} writes acknowledged in all`);
});
