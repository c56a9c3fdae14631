// Attacks on the address claims: another local user must not be able to keep
// a daemon from claiming (and so from serving) an address, by making a
// non-root daemon's claim directory first in a shared temp dir, or by taking
// a claim of a root instance that runs with user = nobody.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { AddressClaims } from '../../src/guard/address-claim';
import { native } from '../../src/native/addon';
import { tempDir } from '../helpers/files';
import { checkoutForUser } from '../helpers/targets';

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
    { encoding: 'utf8', cwd: '/' },
  );

if (process.geteuid?.() === 0) {
  t.test('another local user who makes /tmp/aoe-target-UID first does not keep a non-root daemon from claiming', async (t) => {
    // A shared temp dir of the test's own, like /tmp: sticky, writable by all.
    const tmp = tempDir(t, 'claims-squat');
    fs.chmodSync(tmp, 0o1777);
    const uid = Number(execFileSync('id', ['-u', 'daemon'], { encoding: 'utf8' }).trim());
    // nobody plants the directory that the daemon's user (no XDG_RUNTIME_DIR) would use.
    asUser('nobody', {}, ['mkdir', '-m', '755', join(tmp, `aoe-target-${uid}`)]);
    const modules = join(checkoutForUser(t), 'dist', 'src');
    const script = `const { AddressClaims } = require(${JSON.stringify(join(modules, 'guard', 'address-claim.js'))});
      const { native } = require(${JSON.stringify(join(modules, 'native', 'addon.js'))});
      try { console.log(JSON.stringify(new AddressClaims(native).claim('e1.1', 'fake0'))); }
      catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
    const out = JSON.parse(asUser('daemon', { TMPDIR: tmp, HOME: '/nonexistent' }, [process.execPath, '-e', script])) as {
      taken: unknown;
    };
    t.equal(out.taken, 'unchecked', "the daemon's user is not refused (or thrown out) because nobody made its directory first");
  });
}

if (process.geteuid?.() === 0) {
  t.test("a root instance with user = nobody does not make the namespace's claims nobody's", async (t) => {
    const root = tempDir(t, 'claims-shared');
    fs.chmodSync(root, 0o755);
    const base = join(root, 'claims');
    const scope = `net-${fs.statSync('/proc/self/ns/net').ino}`;
    // Instance one runs with user = nobody; instance two, as root, serves other addresses in the same namespace.
    const withUser = new AddressClaims(native, base);
    t.same(withUser.claim('e1.1', 'fake0'), { taken: true }, 'the instance with user = nobody claims e1.1');
    const plain = new AddressClaims(native, base);
    let second: unknown;
    try {
      second = plain.claim('e1.2', 'fake0');
    } catch (e) {
      second = { error: (e as Error).message };
    }
    t.same(second, { taken: true }, 'a root instance without user = still claims e1.2 in that namespace');

    // Any process of the user nobody (other daemons run as nobody too) takes e1.3 before the root instance.
    const squatter = spawn(
      'setpriv',
      ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'flock', '-n', join(base, scope, 'e1.3@fake0.lock'), 'sleep', '20'],
      { stdio: 'ignore' },
    );
    t.teardown(() => {
      squatter.kill('SIGKILL');
    });
    await new Promise((r) => setTimeout(r, 500));
    let third: unknown;
    try {
      third = withUser.claim('e1.3', 'fake0');
    } catch (e) {
      third = { error: (e as Error).message };
    }
    t.same(third, { taken: true }, "a process of the user nobody cannot take e1.3 before the daemon's own claim");
    withUser.release();
    plain.release();
  });
}
