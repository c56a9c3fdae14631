// The project's client drives our target (bin/vblade.js) through every
// behaviour docs/protocol.md describes (protocol-suite.ts), over a real veth
// pair between two namespaces this test creates, with a sparse backing file
// a little larger than 2^28 sectors, checked on disk. It runs twice: on the
// file, and on the file served by nbdkit (file = nbd+unix://…), so that
// every check of the file on disk is a check of what the NBD server wrote.

import t from 'tap';
import { requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { sparseFile } from '../helpers/files';
import { startNbdkit } from '../helpers/nbd-server';
import { readSectors, writeSectors } from './lib';
import { SUITE_SECTORS, protocolSuite } from './protocol-suite';
import { stat } from 'node:fs/promises';

const BACKENDS = requireCommands(t, ['nbdkit']) ? (['file', 'nbd'] as const) : (['file'] as const);

for (const backend of requireRoot(t) ? BACKENDS : []) {
  t.test(
    `the AoE protocol of our target over a veth pair${backend === 'nbd' ? ', the disk on an NBD server' : ''}`,
    async (t) => {
      await protocolSuite(t, async (t) => {
        const file = await sparseFile(t, SUITE_SECTORS * 512);
        const served = backend === 'nbd' ? (await startNbdkit(t, ['file', `file=${file}`, 'cache=none'])).uri : file;
        return {
          file: served,
          options: [],
          read: (lba, count) => readSectors(file, lba, count),
          write: (lba, data) => writeSectors(file, lba, data),
          size: async () => (await stat(file)).size,
        };
      });
    },
  );
}
