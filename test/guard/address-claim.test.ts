// Address claims on a host (src/guard/address-claim.ts), in a directory of
// the test's own: one holder at a time, the holder's pid in the message,
// given back on release; directories and files a claim refuses to trust
// (writable by others, links, FIFOs), each with what to do; and a process
// that cannot create claims any more (switched to its user) refuses the
// export rather than serve it unchecked.
import t from 'tap';
import pino from 'pino';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { AddressClaims, claimBaseDir } from '../../src/guard/address-claim';
import { findDuplicates } from '../../src/guard/refuse';
import { native } from '../../src/native/addon';
import { exportConfig } from '../helpers/export-config';
import { FakeNetwork } from '../helpers/fake-addon';
import { tempDir } from '../helpers/files';
import { asNobodyArgs, checkoutForUser } from '../helpers/targets';

const scope = `net-${fs.statSync('/proc/self/ns/net').ino}`;

t.test('one holder at a time; the other is told its pid; release gives it back', async (t) => {
  const base = join(tempDir(t, 'claims'), 'claims');
  const mine = new AddressClaims(native, base);
  const other = new AddressClaims(native, base);
  t.same(mine.claim('e1.1', 'fake0'), { taken: true });
  t.same(mine.claim('e1.1', 'fake0'), { taken: true }, 'claiming what it holds again');
  t.same(other.claim('e1.1', 'fake0'), { taken: false, holderPid: process.pid }, 'another holder is refused, with the pid');
  t.same(other.claim('e1.1', 'eth1'), { taken: true }, 'another interface is another claim');
  t.same(other.claim('e1.10', 'fake0'), { taken: true }, 'another address too');
  const file = join(base, scope, 'e1.1@fake0.lock');
  t.equal((fs.statSync(file).mode & 0o777).toString(8), '600', 'the claim file is mode 0600');
  mine.releaseExport('e1.1');
  t.same(other.claim('e1.1', 'fake0'), { taken: true }, 'free once released');
  other.release();
  mine.release();
});

t.test('claims in untrusted places are refused, saying what to do', async (t) => {
  const root = tempDir(t, 'claims-bad');
  const base = join(root, 'claims');
  fs.mkdirSync(base, { mode: 0o777 });
  fs.chmodSync(base, 0o777);
  t.throws(() => new AddressClaims(native, base).claim('e1.1', 'fake0'), {
    message: `the address claim directory ${base} is writable by others (mode 777); chmod 755 ${base}`,
  });
  fs.chmodSync(base, 0o755);
  fs.symlinkSync('/tmp', join(base, scope));
  t.throws(() => new AddressClaims(native, base).claim('e1.1', 'fake0'), {
    message: /is not a directory \(a link\?\); remove it/,
  });
  fs.unlinkSync(join(base, scope));
  fs.mkdirSync(join(base, scope));
  fs.symlinkSync('/etc/passwd', join(base, scope, 'e1.1@fake0.lock'));
  t.throws(() => new AddressClaims(native, base).claim('e1.1', 'fake0'), {
    message: /e1\.1@fake0\.lock is a symbolic link; remove it/,
  });
  execFileSync('mkfifo', [join(base, scope, 'e1.2@fake0.lock')]);
  t.throws(() => new AddressClaims(native, base).claim('e1.2', 'fake0'), {
    message: /e1\.2@fake0\.lock is not a regular file; remove it/,
  });
  t.equal(fs.readFileSync('/etc/passwd', 'utf8').split('\n')[0].startsWith('root:'), true, 'the link target is untouched');
});

if (process.geteuid?.() === 0) {
  t.test('a process that may not create claims any more (switched user) gets "unavailable"', async (t) => {
    const root = tempDir(t, 'claims-user');
    fs.chmodSync(root, 0o755);
    const base = join(root, 'claims');
    new AddressClaims(native, base).claim('e1.9', 'fake0'); // root made the directories, as the serving process does at start
    // A module nobody may read, also from a checkout in a private directory.
    const modules = join(checkoutForUser(t), 'dist', 'src');
    const script = `const { AddressClaims } = require(${JSON.stringify(join(modules, 'guard', 'address-claim.js'))});
      console.log(JSON.stringify(new AddressClaims({ lockFile: () => true }, process.argv[1]).claim('e1.1', 'fake0')));`;
    const out = execFileSync('env', asNobodyArgs(process.execPath, '-e', script, base), { encoding: 'utf8', cwd: '/' });
    t.match(JSON.parse(out), { taken: 'unavailable', why: /EACCES/ });
  });
}

t.test('an export whose claim is unavailable is refused, with what to do', async (t) => {
  const claims = { claim: () => ({ taken: 'unavailable', why: 'EACCES: permission denied' }), releaseExport: () => undefined };
  const refused = await findDuplicates([exportConfig({ shelf: 1, slot: 1, interfaces: ['fake0'] })], {
    addon: new FakeNetwork().addon,
    claims: claims as unknown as AddressClaims,
    probeMs: 10,
    log: pino({ level: 'silent' }),
  });
  t.equal(
    refused.get('e1.1'),
    "cannot claim e1.1 on fake0 on this host (EACCES: permission denied): the claims are root's and this process has switched to its user since it started; restart the service to serve it",
  );
});

t.test('where claims are made: one place per user on the host, that every unit of it finds', async (t) => {
  const none = (): boolean => false;
  t.equal(claimBaseDir(0, {}, 'root', none), '/run/aoe-target/claims', 'root: the host-wide directory');
  const units = (dir: string): boolean => dir === '/run/aoe-target-vblade';
  t.equal(
    claimBaseDir(998, { XDG_RUNTIME_DIR: '/run/user/998' }, 'vblade', units),
    '/run/aoe-target-vblade/claims',
    "the units' user: their shared runtime directory (each unit's /tmp is private)",
  );
  t.equal(claimBaseDir(1000, { XDG_RUNTIME_DIR: '/run/user/1000' }, 'ann', none), '/run/user/1000/aoe-target/claims');
  t.equal(claimBaseDir(1000, {}, 'ann', none), `${os.tmpdir()}/aoe-target-1000/claims`);
});
