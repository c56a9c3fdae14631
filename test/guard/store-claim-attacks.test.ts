// Store claims (src/guard/store-claim.ts) of ranges far out in a big sparse
// file (tmpfs and XFS take files of petabytes): an offset beyond the lock
// file's regions must neither crash the claim nor let two writers of the
// same sectors both pass.

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { ConfigError } from '../../src/api/errors';
import { StoreClaims } from '../../src/guard/store-claim';
import { native } from '../../src/native/addon';
import { exportOf } from '../helpers/in-process';
import { sparseFile, tempDir } from '../helpers/files';
import type { ExportConfig } from '../../src/config/export-config';

/** 3 PiB in sectors: past 2^51 bytes. */
const FAR = 3 * 2 ** 41;

t.test('claims far out in a file of petabytes: served alone, refused on overlap, allowed apart', async (t) => {
  const base = path.join(tempDir(t, 'claims'), 'claims');
  const file = await sparseFile(t, 1 << 20);
  const fd = fs.openSync(file, 'r');
  t.teardown(() => fs.closeSync(fd));
  const e = (over: Partial<ExportConfig>): ExportConfig => exportOf(file, over);
  const cases: [string, Partial<ExportConfig>, Partial<ExportConfig>, boolean][] = [
    ['the same far range', { offsetSectors: FAR, lengthSectors: 8 }, { offsetSectors: FAR, lengthSectors: 8 }, false],
    ['the whole file, and a far range', {}, { offsetSectors: FAR, lengthSectors: 8 }, false],
    ['a far range, and from it to the end', { offsetSectors: FAR, lengthSectors: 8 }, { offsetSectors: FAR + 4 }, false],
    ['far ranges side by side', { offsetSectors: FAR, lengthSectors: 8 }, { offsetSectors: FAR + 8, lengthSectors: 8 }, true],
    ['near 2^53 bytes', { offsetSectors: 2 ** 44 - 16 }, { offsetSectors: 2 ** 44 - 8, lengthSectors: 8 }, false],
    [
      'a far read-only range and a shared writer',
      { offsetSectors: FAR, readOnly: true },
      { offsetSectors: FAR, shared: true },
      false,
    ],
  ];
  for (const [what, a, b, allowed] of cases) {
    const first = new StoreClaims(native, base);
    const second = new StoreClaims(native, base);
    let release: () => void = () => undefined;
    t.doesNotThrow(() => (release = first.claim(e(a), fd)), `${what}: the first is claimed`);
    if (allowed) t.doesNotThrow(() => second.claim(e(b), fd)(), `${what}: the second too`);
    else {
      let err: unknown;
      try {
        second.claim(e(b), fd);
      } catch (x) {
        err = x;
      }
      t.ok(err instanceof ConfigError, `${what}: the second is refused (${String(err)})`);
      t.match(String(err), /another aoe-target process on this host serves it/, `${what}: with the fix`);
    }
    release();
  }
});
