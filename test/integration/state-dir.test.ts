// vblade --state-dir on hostile or damaged state:
// a state directory others may write to is refused with the fix; a damaged
// state file, a symbolic link to a root-only file or a FIFO in place of
// eS.L.json makes vblade exit 1 naming the file and the reason -- it neither
// serves the export without its mask and reservation, nor follows the link,
// nor quotes the file, nor blocks on the FIFO. Runs inside a namespace the
// test made; nothing is sent on any network.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sparseFile, tempDir } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { OUR_VBLADE } from '../helpers/targets';

const SECRET = 'root-only-secret-1c9d';

if (requireRoot(t)) {
  t.test('vblade --state-dir refuses what it must not trust', async (t) => {
    const pair = await createNetnsPair(t, { labels: ['sdtarget', 'sdinit'] });
    const dir = tempDir(t, 'state-dir');
    const file = await sparseFile(t, 1 << 20);
    const secret = join(dir, 'secret');
    writeFileSync(secret, `${SECRET}\n`, { mode: 0o600 });
    const vblade = async (stateDir: string): Promise<{ code: number | null; stderr: string; ms: number }> => {
      const started = Date.now();
      const p = pair.target.spawn(t, process.execPath, [OUR_VBLADE, '--state-dir', stateDir, '8', '2', pair.targetIf, file], {
        label: 'vblade',
      });
      const ex = await p.waitExit(20000);
      return { code: ex.code, stderr: p.stderr(), ms: Date.now() - started };
    };
    const fresh = (name: string, mode = 0o750): string => {
      const d = join(dir, name);
      mkdirSync(d, { mode });
      chmodSync(d, mode);
      return d;
    };

    const open = fresh('open', 0o777);
    const r1 = await vblade(open);
    t.same(
      [r1.code, r1.stderr.trim()],
      [
        1,
        `vblade: state directory ${open} is writable by its group and others (mode 0777); another user could replace its files: chmod go-w ${open}`,
      ],
    );

    const damaged = fresh('damaged');
    writeFileSync(join(damaged, 'e8.2.json'), `${SECRET} {"version":1`);
    const r2 = await vblade(damaged);
    t.equal(r2.code, 1);
    t.match(
      r2.stderr,
      `vblade: e8.2 is not served: saved state unreadable (it is not valid JSON (truncated or overwritten?)); kept as ${damaged}/e8.2.json. Fix the file, or move it away to start with empty state (its MAC mask and reservation are then lost)`,
    );
    t.notMatch(r2.stderr, SECRET, 'the file is not quoted');

    const linked = fresh('linked');
    symlinkSync(secret, join(linked, 'e8.2.json'));
    const r3 = await vblade(linked);
    t.equal(r3.code, 1);
    t.match(r3.stderr, 'saved state unreadable (it is a symbolic link, which is not followed)');
    t.notMatch(r3.stderr, SECRET, 'nothing of the link target is read into the log');

    const fifo = fresh('fifo');
    execFileSync('mkfifo', [join(fifo, 'e8.2.json')]);
    const r4 = await vblade(fifo);
    t.equal(r4.code, 1);
    t.match(r4.stderr, 'saved state unreadable (it is not a regular file (a FIFO, socket or device))');
    t.ok(r4.ms < 15000, `no stall on the FIFO (exited after ${r4.ms} ms)`);
  });
}
