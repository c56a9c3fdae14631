// lookupUser against the password database, and the argument checks of
// lookupUser and dropPrivileges. (dropPrivileges itself changes the whole
// process: test/reliability/privilege.test.ts runs it in vblade and vbladed.)
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../src/native/addon';
import { requireRoot } from '../../lab/netns';
import { tempDir } from '../helpers/files';

t.test('lookupUser finds users by name and returns null for unknown ones', async (t) => {
  t.same(native.lookupUser('root'), { uid: 0, gid: 0 }, 'root is 0:0');
  t.equal(native.lookupUser('aoet-no-such-user'), null, 'no such user: null, not an error');
});

t.test('wrong arguments are TypeErrors', async (t) => {
  t.throws(() => (native.lookupUser as (u: unknown) => unknown)(7), { name: 'TypeError', message: 'user must be a string' });
  t.throws(() => (native.dropPrivileges as (u: unknown) => unknown)(undefined), {
    name: 'TypeError',
    message: 'user must be a string',
  });
  const euid = process.geteuid?.();
  t.throws(() => (native.dropPrivileges as (u: unknown, k: unknown) => unknown)('nobody', 'yes'), {
    name: 'TypeError',
    message: 'dropPrivileges: keepLease must be a boolean',
  });
  t.equal(process.geteuid?.(), euid, 'a bad keepLease changed nothing: still the same user');
});

t.test('dropPrivileges names a missing user before changing anything', async (t) => {
  t.throws(() => native.dropPrivileges('aoet-no-such-user'), {
    code: 'ENOENT',
    message: /^there is no user "aoet-no-such-user"; create it/,
  });
  t.equal(process.geteuid?.(), process.getuid?.(), 'still the same user');
});

/**
 * A process that switched runs a root-owned set-user-ID copy of id(1): with
 * no_new_privs it stays nobody. (A compromised serving process would try
 * exactly this to become root again.)
 */
if (requireRoot(t)) {
  t.test('after dropPrivileges a set-user-ID root program runs as the user, not as root', async (t) => {
    const dir = tempDir(t, 'suid');
    chmodSync(dir, 0o755);
    const suidId = join(dir, 'id');
    copyFileSync('/usr/bin/id', suidId);
    chmodSync(suidId, 0o4755);
    t.equal(execFileSync(suidId, ['-u'], { encoding: 'utf8' }).trim(), '0', 'the copy runs (as root, from root)');
    const script = `
      const { native } = require(${JSON.stringify(join(__dirname, '../../src/native/addon.js'))});
      native.dropPrivileges('nobody');
      const euid = require('node:child_process').execFileSync(${JSON.stringify(suidId)}, ['-u'], { encoding: 'utf8' }).trim();
      const nnp = /^NoNewPrivs:\\s+(\\d)/m.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1];
      process.stdout.write(JSON.stringify({ euid, nnp }));`;
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // tap's hooks cannot write their files as nobody
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env, cwd: dir })) as {
      euid: string;
      nnp: string;
    };
    t.equal(out.nnp, '1', 'no_new_privs is set on the switched thread');
    t.equal(out.euid, '65534', 'the set-user-ID program runs with effective uid 65534, not 0');
  });
}
