// The check every directory the daemon writes into must pass (state dir, run
// dir): it belongs to the daemon's user (or root, or the user a root daemon
// switches to with user =) and nobody else may create, rename or delete
// entries in it. Otherwise another local user could plant a symbolic
// link or FIFO where a state file, pid file or control socket goes.

import * as fs from 'node:fs';

/** Throws a message naming the directory, what is wrong and the command that fixes it. */
export function checkPrivateDir(dir: string, what: string, switchTo?: number): void {
  const st = fs.statSync(dir);
  if (!st.isDirectory()) throw new Error(`${what} ${dir} is not a directory; remove it or choose another path`);
  const euid = process.geteuid?.() ?? st.uid;
  // Root may write anywhere anyway; the user= target must own what it writes after the switch.
  if (st.uid !== euid && st.uid !== 0 && st.uid !== switchTo) {
    throw new Error(
      `${what} ${dir} belongs to uid ${st.uid}, not to the daemon's user (uid ${euid}); another user could replace its files: chown ${euid} ${dir}`,
    );
  }
  const mode = st.mode & 0o7777;
  if ((mode & 0o022) !== 0) {
    throw new Error(
      `${what} ${dir} is writable by ${mode & 0o020 ? (mode & 0o002 ? 'group and others' : 'its group') : 'others'} (mode ${mode.toString(8).padStart(4, '0')}); another user could replace its files: chmod 750 ${dir}`,
    );
  }
}
