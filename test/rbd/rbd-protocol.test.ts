// The AoE protocol suite (test/integration/protocol-suite.ts) against an rbd
// export: the same 287 checks as on a backing file, with the disk an rbd
// image of a real one-node cluster, read and written past the target through
// its RADOS objects and image diffs (test/helpers/ceph.ts). The target runs
// in the cluster's namespace.

import t from 'tap';
import { imageSize, readImage, requireCeph, startCeph, writeImage } from '../helpers/ceph';
import { SUITE_SECTORS, protocolSuite } from '../integration/protocol-suite';

t.test('the AoE protocol of our target serving an rbd image', async (t) => {
  if (!requireCeph(t)) return;
  await protocolSuite(t, async (t) => {
    const cluster = await startCeph(t);
    const spec = await cluster.createImage('protocol', SUITE_SECTORS * 512);
    return {
      file: `rbd:${spec}`,
      options: ['--ceph-conf', cluster.conf],
      targetNs: cluster.ns,
      read: (lba, count) => readImage(cluster, spec, lba * 512, count * 512),
      write: (lba, data) => writeImage(cluster, spec, lba * 512, data),
      size: () => imageSize(cluster, spec),
    };
  });
});
