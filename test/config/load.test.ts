// describeExport: the line `vbladed --check` prints and the start-up log
// records for each export.

import t from 'tap';
import { exportConfig } from '../helpers/export-config';
import { describeExport } from '../../src/config/load';

t.test('one readable line per export', async (t) => {
  const rows: Array<[string, Parameters<typeof exportConfig>[0], string]> = [
    [
      'file, sync, two interfaces',
      { file: '/srv/a.img', interfaces: ['eth1', 'eth2'], sync: true },
      'e1.1 on eth1 eth2: /srv/a.img, read-write, sync, buffer count 16',
    ],
    [
      'read-only, direct, a range, a mask',
      { file: '/dev/sdb', readOnly: true, direct: true, offsetSectors: 8, lengthSectors: 1, macMask: ['52:54:00:00:00:01'] },
      'e1.1 on vt-none: /dev/sdb from sector 8 for 1 sector, read-only, direct, buffer count 16, mask 52:54:00:00:00:01',
    ],
    [
      'broadcast edits allowed',
      { file: '/srv/a.img', broadcastEdits: true },
      'e1.1 on vt-none: /srv/a.img, read-write, broadcast-edits, buffer count 16',
    ],
    [
      'an offset without a length',
      { file: '/dev/sdb', offsetSectors: 2048 },
      'e1.1 on vt-none: /dev/sdb from sector 2048 to the end, read-write, buffer count 16',
    ],
    [
      'a null store of one sector',
      { nullStore: true, nullSectors: 1 },
      'e1.1 on vt-none: null store of 1 sector, read-write, buffer count 16',
    ],
    [
      'a null store of two sectors',
      { nullStore: true, nullSectors: 2 },
      'e1.1 on vt-none: null store of 2 sectors, read-write, buffer count 16',
    ],
    [
      'views: the image is never written, and where the views are',
      { file: '/srv/aoe/golden.img', views: 'per-initiator', viewsDir: '/srv/aoe/views' },
      'e1.1 on vt-none: /srv/aoe/golden.img, image read-only, views = per-initiator (a copy-on-write view per machine) in /srv/aoe/views/e1.1, buffer count 16',
    ],
    [
      'views of a read-only export',
      { file: '/srv/aoe/golden.img', views: 'per-initiator', viewsDir: '/srv/aoe/views', readOnly: true },
      'e1.1 on vt-none: /srv/aoe/golden.img, read-only, views = per-initiator in /srv/aoe/views/e1.1 (no new view is made), buffer count 16',
    ],
  ];
  for (const [desc, over, want] of rows) t.equal(describeExport(exportConfig(over)), want, desc);
});
