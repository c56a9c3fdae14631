// Attacks on the address claims of a daemon that is not root: another local
// user must not be able to keep it from claiming (and so from serving) by
// making its claim directory first in a shared temp dir.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { tempDir } from '../helpers/files';

const asUser = (user: string, env: Record<string, string>, args: string[]): string =>
  execFileSync(
    'env',
    [
      '-u',
      'NODE_OPTIONS',
      '-u',
      'XDG_RUNTIME_DIR',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      'setpriv',
      `--reuid=${user}`,
      `--regid=${user === 'nobody' ? 'nogroup' : user}`,
      '--clear-groups',
      ...args,
    ],
    { encoding: 'utf8' },
  );

if (process.geteuid?.() === 0) {
  t.test('another local user who makes /tmp/aoe-target-UID first does not keep a non-root daemon from claiming', async (t) => {
    // A shared temp dir of the test's own, like /tmp: sticky, writable by all.
    const tmp = tempDir(t, 'claims-squat');
    fs.chmodSync(tmp, 0o1777);
    const uid = Number(execFileSync('id', ['-u', 'daemon'], { encoding: 'utf8' }).trim());
    // nobody plants the directory that the daemon's user (no XDG_RUNTIME_DIR) would use.
    asUser('nobody', {}, ['mkdir', '-m', '755', join(tmp, `aoe-target-${uid}`)]);
    const script = `const { AddressClaims } = require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'guard', 'address-claim.js'))});
      const { native } = require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'native', 'addon.js'))});
      try { console.log(JSON.stringify(new AddressClaims(native).claim('e1.1', 'eth0'))); }
      catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
    const out = JSON.parse(asUser('daemon', { TMPDIR: tmp }, [process.execPath, '-e', script])) as unknown;
    t.same(out, { taken: true }, "the daemon's user claims e1.1 although nobody made its directory first");
  });
}
