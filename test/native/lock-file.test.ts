// lockFile: flock(LOCK_EX|LOCK_NB) as the address claims use it. Two open
// files of one path: the second is refused while the first holds the lock,
// and takes it once the first is closed (as when its process dies).
import t from 'tap';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../src/native/addon';
import { tempDir } from '../helpers/files';

t.test('lockFile: one holder at a time, released on close', async (t) => {
  const file = join(tempDir(t, 'lock'), 'e1.1@fake0.lock');
  const first = openSync(file, 'a+', 0o600);
  const second = openSync(file, 'a+', 0o600);
  t.equal(native.lockFile(first), true, 'the first open file takes it');
  t.equal(native.lockFile(first), true, 'and may take it again');
  t.equal(native.lockFile(second), false, 'the second is refused while the first holds it');
  closeSync(first);
  t.equal(native.lockFile(second), true, 'the second takes it once the first is closed');
  closeSync(second);
});

t.test('lockFile errors', async (t) => {
  t.throws(() => native.lockFile(999999), { code: 'EBADF', message: /cannot lock the file/ });
  t.throws(() => native.lockFile(-1), RangeError);
});
