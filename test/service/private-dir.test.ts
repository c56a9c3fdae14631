// The run and state directories: one made for the serving user is that
// user's, by the descriptor of the directory made; a directory found at the
// path (a link planted there, or one that was there before) is never given
// away. Root only: ownership is what is tested.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openPrivateDir } from '../../src/service/private-dir';
import { tempDir } from '../helpers/files';
import { requireRoot } from '../../lab/netns';

const NOBODY = 65534;

if (requireRoot(t)) {
  t.test('a state directory made for the user is the user’s, 0750', async (t) => {
    const base = tempDir(t, 'private-dir');
    fs.chmodSync(base, 0o755);
    const dir = path.join(base, 'state');
    openPrivateDir(dir, 'state directory', {
      switchTo: NOBODY,
      createMode: 0o750,
      createOwner: { uid: NOBODY, gid: NOBODY },
    }).close();
    const st = fs.statSync(dir);
    t.same([st.uid, st.gid, st.mode & 0o777], [NOBODY, NOBODY, 0o750]);
  });

  t.test('a link at the path to a directory of root’s: followed as before, never given to the user', async (t) => {
    const base = tempDir(t, 'private-dir-link');
    fs.chmodSync(base, 0o755);
    const parent = path.join(base, 'users');
    fs.mkdirSync(parent, { mode: 0o755 });
    fs.chownSync(parent, NOBODY, NOBODY); // the user's, as the attack needs
    const victim = path.join(base, 'victim');
    fs.mkdirSync(victim, { mode: 0o755 });
    fs.symlinkSync(victim, path.join(parent, 'state'));
    try {
      openPrivateDir(path.join(parent, 'state'), 'state directory', {
        switchTo: NOBODY,
        createMode: 0o750,
        createOwner: { uid: NOBODY, gid: NOBODY },
      }).close();
    } catch {
      // refused is as good: what matters is who owns the victim after
    }
    const st = fs.statSync(victim);
    t.same([st.uid, st.mode & 0o777], [0, 0o755], 'the directory the link names is still root’s, mode unchanged');
  });
}
