// Where views and snapshots may be made (checkReflinkPlace): a place the
// daemon's user may not write (a reload runs as that user; start, as root,
// made the directory) is refused with the command that fixes it.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkReflinkPlace, type ReflinkFunctions } from '../../src/backend/reflink';
import { tempDir } from '../helpers/files';

t.test('a views directory the user may not make clones in: refused, naming the install -d that fixes it', async (t) => {
  const dir = tempDir(t, 'reflink-place');
  const image = path.join(dir, 'golden.img');
  fs.writeFileSync(image, Buffer.alloc(4096));
  const denied = Object.assign(new Error("EACCES: permission denied, open '/srv/aoe/.clone-test'"), { code: 'EACCES' });
  const fns: ReflinkFunctions = {
    reflinkSupported: () => {
      throw denied;
    },
  };
  const views = path.join(dir, 'views');
  const uid = process.geteuid?.();
  t.throws(() => checkReflinkPlace(image, views, 'views', fns), {
    message: `cannot try a clone in ${dir} for the views of ${image}: ${denied.message}; make ${views} and give it to uid ${uid} (install -d -o ${uid} -g ${process.getegid?.()} -m 750 ${views}), then reload`,
  });
  const full = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
  const fullFns: ReflinkFunctions = {
    reflinkSupported: () => {
      throw full;
    },
  };
  t.doesNotThrow(() => checkReflinkPlace(image, views, 'views', fullFns), 'a full file system is not refused here');
});
