// Hostile backing files for `vbladed --check` (and so for start and reload,
// which open files the same way): a FIFO where the configuration names a
// file, planted by a user who owns its directory. Opening a FIFO for reading
// waits for a writer; it must be refused at once, not hang.
//
// Network safety: vbladed runs only inside a namespace this test creates,
// with a veth pair it creates; --check sends nothing.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../helpers/files';
import { createNetns, createVeth, requireRoot } from '../../lab/netns';
import { REPO } from '../helpers/targets';

const VBLADED = path.join(REPO, 'bin', 'vbladed.js');

if (requireRoot(t)) {
  t.test('--check refuses a FIFO as the backing file at once, as root and as the serving user', async (t) => {
    const ns = await createNetns(t, 'fifo');
    const veth = await createVeth(t, ns, ns);
    const dir = tempDir(t, 'fifo');
    fs.chmodSync(dir, 0o755);
    const fifo = path.join(dir, 'disk.img');
    execFileSync('mkfifo', ['-m', '666', fifo]);
    const conf = path.join(dir, 'vblade.conf');
    const run = path.join(dir, 'run');
    for (const [what, extra] of [
      ['read-only', 'read-only = yes\n'],
      ['read-write', ''],
      ['read-only, user = nobody', 'read-only = yes\n'],
    ] as const) {
      const daemon = what.includes('nobody') ? '[daemon]\nuser = nobody\n\n' : '';
      fs.writeFileSync(conf, `${daemon}[export e1.1]\nfile = ${fifo}\ninterfaces = ${veth.a.ifname}\n${extra}`);
      const t0 = Date.now();
      const r = await ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', run], { timeoutMs: 20_000 });
      const ms = Date.now() - t0;
      t.equal(r.code, 1, `${what}: exit 1 (${r.stderr.trim()})`);
      t.match(r.stderr, `e1.1: cannot export ${fifo}: it is neither a regular file nor a block device`, `${what}: says why`);
      t.ok(ms < 10_000, `${what}: answered in ${ms} ms, not left waiting for a writer of the FIFO`);
    }
  });
}
