// lookupUser against the password database, and the argument checks of
// lookupUser and dropPrivileges. (dropPrivileges itself changes the whole
// process: test/reliability/privilege.test.ts runs it in vblade and vbladed.)
import t from 'tap';
import { native } from '../../src/native/addon';

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
});

t.test('dropPrivileges names a missing user before changing anything', async (t) => {
  t.throws(() => native.dropPrivileges('aoet-no-such-user'), {
    code: 'ENOENT',
    message: /^there is no user "aoet-no-such-user"; create it/,
  });
  t.equal(process.geteuid?.(), process.getuid?.(), 'still the same user');
});
