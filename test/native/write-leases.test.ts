// CAP_LEASE is kept for the views' read leases (native/privilege.c). With it
// a process may also take a write lease on any file it can open for reading
// while nobody else has it open, and a write lease holds back every open of
// that file, root's too, for the kernel's lease-break-time (45 s). So a
// serving process that is not root refuses write leases to itself
// (denyWriteLeases, a seccomp filter): here a process as nobody with
// CAP_LEASE takes a write lease on root's file before the filter and is
// refused one after it, while read leases still work; and a worker of
// vbladed with user = nobody carries the filter.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { tempDir } from '../helpers/files';
import { checkoutForUser } from '../helpers/targets';

const AS_NOBODY_WITH_LEASE = [
  '--reuid=nobody',
  '--regid=nogroup',
  '--clear-groups',
  '--inh-caps=+lease',
  '--ambient-caps=+lease',
  'env',
  '-u',
  'NODE_OPTIONS',
];

/** Takes and gives up one lease of `kind` (F_RDLCK, F_WRLCK) on `file`, opened read-only: "ok" or the errno name. */
const TRY_LEASE = `
import errno, fcntl, os, sys
fd = os.open(sys.argv[2], os.O_RDONLY)
try:
    fcntl.fcntl(fd, fcntl.F_SETLEASE, getattr(fcntl, sys.argv[1]))
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
`;

if (requireRoot(t) && requireCommands(t, ['setpriv', 'python3'])) {
  t.test("as nobody with CAP_LEASE: a write lease on root's file before the filter, EPERM after; read leases work", async (t) => {
    const dir = tempDir(t, 'write-leases');
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, 'root-owned.img');
    fs.writeFileSync(file, 'x', { mode: 0o644 });
    const script = path.join(dir, 'lease.py');
    fs.writeFileSync(script, TRY_LEASE, { mode: 0o644 });
    const addon = path.join(checkoutForUser(t), 'build', 'Release', 'aoe_native.node');
    const run = (deny: boolean, kind: string): string => {
      const js =
        `const a = require(${JSON.stringify(addon)}); ${deny ? 'a.denyWriteLeases();' : ''}` +
        `const r = require('child_process').spawnSync('python3', [${JSON.stringify(script)}, '${kind}', ${JSON.stringify(file)}], { encoding: 'utf8' });` +
        `process.stdout.write(r.stdout + r.stderr);`;
      const r = spawnSync('setpriv', [...AS_NOBODY_WITH_LEASE, process.execPath, '-e', js], { encoding: 'utf8', cwd: '/' });
      return (r.stdout + r.stderr).trim();
    };
    t.equal(run(false, 'F_WRLCK'), 'ok', 'without the filter the write lease is taken (the hazard)');
    t.equal(run(true, 'F_WRLCK'), 'EPERM', 'with it: refused');
    t.equal(run(true, 'F_RDLCK'), 'ok', 'and a read lease, what views need, still works');
  });
}
