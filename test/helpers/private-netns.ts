// Runs a whole test file in a network namespace of its own. For the files
// that start our daemon with a stub worker and made-up interface names:
// nothing they run sends a frame, but none of our tools may run in the
// namespace the machine's real interfaces live in. `unshare --net` makes a
// namespace with only a loopback interface; it has no name and goes away
// with the last process in it, so nothing is left to delete.

import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';

const MARK = 'AOET_PRIVATE_NETNS';

/**
 * In the original process, runs the same test file again inside a new
 * network namespace, passes its TAP output through and exits with its
 * status; in that second process it returns.
 */
function runFileInPrivateNetns(file: string): void {
  if (process.env[MARK] === file) {
    // The parent is the first run of this file, in the namespace it was started in.
    if (readlinkSync('/proc/self/ns/net') === readlinkSync(`/proc/${process.ppid}/ns/net`))
      throw new Error(`${file} should run in a private network namespace but shares its parent's`);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stdout.write('1..0 # SKIP a private network namespace needs root (CI runs as root)\n');
    process.exit(0);
  }
  const r = spawnSync(
    'unshare',
    [
      '--net',
      '--',
      'sh',
      '-c',
      'ip link set lo up && exec "$0" "$@"',
      process.execPath,
      ...process.execArgv,
      file,
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, [MARK]: file } },
  );
  if (r.error) throw new Error(`cannot run ${file} in a private network namespace: ${r.error.message}`);
  process.exit(r.status ?? 1);
}

// Imported for this effect, before anything else of the test file runs (its first import).
runFileInPrivateNetns(process.argv[1]);
