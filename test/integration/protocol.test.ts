// The project's client drives our target (bin/vblade.js) through every
// behaviour docs/protocol.md describes (protocol-suite.ts), over a real veth
// pair between two namespaces this test creates, with a sparse backing file
// a little larger than 2^28 sectors, checked on disk.

import t from 'tap';
import { requireRoot } from '../../lab/netns';
import { sparseFile } from '../helpers/files';
import { readSectors, writeSectors } from './lib';
import { SUITE_SECTORS, protocolSuite } from './protocol-suite';
import { stat } from 'node:fs/promises';

if (requireRoot(t)) {
  t.test('the AoE protocol of our target over a veth pair', async (t) => {
    await protocolSuite(t, async (t) => {
      const file = await sparseFile(t, SUITE_SECTORS * 512);
      return {
        file,
        options: [],
        read: (lba, count) => readSectors(file, lba, count),
        write: (lba, data) => writeSectors(file, lba, data),
        size: async () => (await stat(file)).size,
      };
    });
  });
}
