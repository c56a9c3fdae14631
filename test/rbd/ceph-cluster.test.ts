// The test cluster itself (test/helpers/ceph.ts): it starts in a namespace
// of its own, serves an image to the rbd tools there, and when the test is
// over its daemons, its namespace and its directory are gone.

import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { listNetns } from '../../lab/netns';
import { pidAlive } from '../../lab/common';

import { join } from 'node:path';
import { patternSectors } from '../helpers/files';
import { imageSize, rbdBench, readImage, requireCeph, startCeph, writeImage } from '../helpers/ceph';

t.test('a one-node cluster starts, serves an image, and leaves nothing behind', async (t) => {
  if (!requireCeph(t)) return;
  let left: { ns: string; pids: number[]; dir: string } | undefined;
  await t.test('start, create, bench', async (t) => {
    const started = Date.now();
    const cluster = await startCeph(t);
    const startMs = Date.now() - started;
    t.comment(`cluster up in ${startMs} ms (namespace ${cluster.ns.name})`);
    left = { ns: cluster.ns.name, pids: [cluster.mon.pid, cluster.osd.pid], dir: cluster.dir };
    t.ok(listNetns().includes(cluster.ns.name), 'its namespace exists while it runs');
    t.ok(cluster.mon.running && cluster.osd.running, 'ceph-mon and ceph-osd run');

    const spec = await cluster.createImage('bench', 64 << 20);
    const info = JSON.parse((await cluster.rbd(['info', '--format', 'json', spec])).stdout) as { size: number };
    t.equal(info.size, 64 << 20, 'rbd info reports the size the image was made with');

    // Sectors written past librbd's client land where rbd export finds them, across an object boundary.
    const at = (4 << 20) - 3 * 512;
    await writeImage(cluster, spec, at, patternSectors(at / 512, 6));
    t.same(
      await readImage(cluster, spec, at - 512, 8 * 512),
      Buffer.concat([Buffer.alloc(512), patternSectors(at / 512, 6), Buffer.alloc(512)]),
      'readImage reads back what writeImage wrote, zeros around it',
    );
    const exported = join(cluster.dir, 'export.img');
    await cluster.rbd(['export', '--no-progress', spec, exported]);
    t.same(readFileSync(exported).subarray(at, at + 6 * 512), patternSectors(at / 512, 6), 'rbd export agrees');
    t.equal(await imageSize(cluster, spec), 64 << 20, 'imageSize');

    const writes = await rbdBench(cluster, spec, { type: 'write' });
    const reads = await rbdBench(cluster, spec, { type: 'read' });
    t.comment(`rbd bench 4 KiB random, 16 threads: ${Math.round(writes)} writes/s, ${Math.round(reads)} reads/s`);
    t.ok(writes > 0 && reads > 0, 'rbd bench moved data both ways');
  });
  if (left === undefined) return;
  t.notOk(listNetns().includes(left.ns), `namespace ${left.ns} is deleted`);
  t.same(
    left.pids.filter((p) => pidAlive(p)),
    [],
    'ceph-mon and ceph-osd have exited',
  );
  t.notOk(existsSync(left.dir), 'its directory is removed');
});
