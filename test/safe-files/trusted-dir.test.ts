// Trusted directories as an attacker meets them: links, FIFOs and hard links
// planted by nobody, directories others may write, a parent of another
// user, a directory renamed away after it was opened; and the same
// operations run by a process that is nobody, including one that switched
// to nobody from root and is no longer dumpable (the worker after `user =`).

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { requireRoot } from '../../lab/netns';
import { requireCommands } from '../../lab/process';
import { UnsafePathError } from '../../src/safe-files/checks';
import { TrustedDir } from '../../src/safe-files/trusted-dir';
import { tempDir } from '../helpers/files';

const NOBODY = 65534;
const NOGROUP = 65534;
const AS_NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];

/** A command run as nobody (the attacker, or the daemon's user). */
function nobody(cmd: string, ...args: string[]): void {
  execFileSync(AS_NOBODY[0], [...AS_NOBODY.slice(1), cmd, ...args], { stdio: 'pipe' });
}

/** A directory everyone may enter, holding `sub` of `mode` owned by `uid`. */
function place(t: Parameters<typeof tempDir>[0], sub: string, mode: number, uid = 0): { root: string; dir: string } {
  const root = tempDir(t, 'trusted');
  fs.chmodSync(root, 0o755);
  const dir = path.join(root, sub);
  fs.mkdirSync(dir);
  fs.chmodSync(dir, mode);
  fs.chownSync(dir, uid, uid === 0 ? 0 : NOGROUP);
  return { root, dir };
}

function refusal(t: Test, fn: () => unknown, pattern: RegExp, what: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  t.type(err, UnsafePathError, `${what}: refused`);
  t.match((err as Error | undefined)?.message ?? '', pattern, `${what}: says ${(err as Error | undefined)?.message}`);
}

if (requireRoot(t) && requireCommands(t, ['setpriv'])) {
  t.test('the directory and its parents: who owns them, who may write them', async (t) => {
    const table: { what: string; mode: number; uid?: number; parentMode?: number; parentUid?: number; refused?: RegExp }[] = [
      { what: 'root 0700 in a sticky /tmp', mode: 0o700 },
      { what: 'root 0750', mode: 0o750 },
      { what: 'group-writable', mode: 0o770, refused: /writable by its group \(mode 0770\).*chmod go-w/ },
      { what: 'writable by everyone', mode: 0o777, refused: /writable by its group and others \(mode 0777\)/ },
      { what: 'sticky and writable by everyone', mode: 0o1777, refused: /writable by its group and others/ },
      { what: "nobody's", mode: 0o700, uid: NOBODY, refused: /belongs to uid 65534.*chown 0 / },
      { what: "under nobody's parent", mode: 0o700, parentUid: NOBODY, refused: /above .* belongs to uid 65534.*chown root/ },
      { what: 'under a parent writable by others', mode: 0o700, parentMode: 0o777, refused: /above .*without the sticky bit/ },
      { what: 'under a sticky parent writable by others', mode: 0o700, parentMode: 0o1777 },
    ];
    for (const c of table) {
      const { root, dir } = place(t, 'p', 0o755);
      const d = path.join(dir, 'views');
      fs.mkdirSync(d);
      fs.chmodSync(d, c.mode);
      fs.chownSync(d, c.uid ?? 0, 0);
      if (c.parentMode !== undefined) fs.chmodSync(dir, c.parentMode);
      if (c.parentUid !== undefined) fs.chownSync(dir, c.parentUid, NOGROUP);
      if (c.refused) refusal(t, () => TrustedDir.open(d, { what: 'views directory' }), c.refused, c.what);
      else {
        const td = TrustedDir.open(d, { what: 'views directory' });
        t.equal(td.path, d, `${c.what}: accepted`);
        td.close();
      }
      void root;
    }
  });

  t.test('a symbolic link as the path: the real path is checked', async (t) => {
    const { root, dir } = place(t, 'theirs', 0o700, NOBODY);
    const link = path.join(root, 'views');
    fs.symlinkSync(dir, link);
    refusal(
      t,
      () => TrustedDir.open(link, { what: 'views directory' }),
      new RegExp(`${dir} belongs to uid 65534`),
      "a link to nobody's directory",
    );
  });

  t.test("a link planted by the user = account, or by anyone in /tmp, is not followed to root's directory", async (t) => {
    // The `user =` account may own the state directory's parent; its link there to /etc-like must not be taken.
    const rootsDir = place(t, 'roots', 0o755).dir;
    const { root, dir: theirs } = place(t, 'theirs', 0o755, NOBODY);
    nobody('ln', '-s', rootsDir, path.join(theirs, 'state'));
    refusal(
      t,
      () => TrustedDir.open(path.join(theirs, 'state'), { what: 'state directory', owners: [NOBODY] }),
      new RegExp(
        `${theirs}/state is a symbolic link in ${theirs}, which uid 65534 may change, so it could point anywhere; name the directory itself \\(${rootsDir}\\)`,
      ),
      "a link in the user's directory",
    );
    refusal(
      t,
      () =>
        TrustedDir.open(path.join(theirs, 'state', 'sub'), {
          what: 'state directory',
          owners: [NOBODY],
          create: { mode: 0o750 },
        }),
      /is a symbolic link in/,
      'the link as a parent of the path',
    );
    t.notOk(fs.existsSync(path.join(rootsDir, 'sub')), 'nothing made through it');
    // A sticky directory every user shares: a link of nobody's there is refused, one of root's followed.
    const shared = path.join(root, 'shared');
    fs.mkdirSync(shared);
    fs.chmodSync(shared, 0o1777);
    nobody('ln', '-s', rootsDir, path.join(shared, 'planted'));
    refusal(
      t,
      () => TrustedDir.open(path.join(shared, 'planted'), { what: 'views directory' }),
      /uid 65534 \(or anyone\)/,
      "a link of nobody's in a sticky directory",
    );
    fs.symlinkSync(rootsDir, path.join(shared, 'roots-link'));
    const td = TrustedDir.open(path.join(shared, 'roots-link'), { what: 'views directory' });
    t.equal(td.path, rootsDir, "root's own link: followed, the real path checked");
    td.close();
  });

  t.test('made when missing: with the mode asked for whatever the umask, owned by the user given', async (t) => {
    const { dir } = place(t, 'p', 0o755);
    const d = path.join(dir, 'a', 'e1.1');
    const old = process.umask(0o077);
    let td: TrustedDir;
    try {
      td = TrustedDir.open(d, { what: 'views directory', owners: [NOBODY], create: { mode: 0o750, uid: NOBODY, gid: NOGROUP } });
    } finally {
      process.umask(old);
    }
    for (const p of [path.join(dir, 'a'), d]) {
      const st = fs.statSync(p);
      t.same({ mode: st.mode & 0o7777, uid: st.uid }, { mode: 0o750, uid: NOBODY }, `${p} made`);
    }
    const snaps = td.child('snapshots', { what: 'snapshots directory', create: { mode: 0o700, uid: NOBODY } });
    t.equal(fs.statSync(path.join(d, 'snapshots')).uid, NOBODY, 'a child made for the user too');
    snaps.close();
    td.close();
  });

  t.test('files planted by nobody in a directory nobody may write', async (t) => {
    // A root daemon that trusted nobody's directory (as with `user = nobody`): its files are still checked.
    const { root, dir } = place(t, 'views', 0o700, NOBODY);
    const secret = path.join(root, 'secret');
    fs.writeFileSync(secret, 'root only\n', { mode: 0o600 });
    const td = TrustedDir.open(dir, { what: 'views directory', owners: [NOBODY] });
    t.teardown(() => td.close());

    nobody('ln', '-s', secret, path.join(dir, 'link.img'));
    nobody('mkfifo', path.join(dir, 'fifo.img'));
    nobody('mkdir', path.join(dir, 'dir.img'));
    nobody('touch', path.join(dir, 'mine.img'));
    fs.writeFileSync(path.join(dir, 'root.img'), 'x');
    fs.linkSync(path.join(dir, 'root.img'), path.join(dir, 'other-name'));
    fs.writeFileSync(path.join(dir, 'ok.img'), 'data');

    const t0 = Date.now();
    refusal(t, () => td.openFile('fifo.img', { what: 'view' }), /view .*fifo\.img is a FIFO, not a regular file/, 'a FIFO');
    t.ok(Date.now() - t0 < 1000, 'the FIFO did not block the open');
    refusal(t, () => td.openFile('link.img', { flags: fs.constants.O_RDWR }), /is a symbolic link, not a regular file/, 'a link');
    refusal(t, () => td.readFile('link.img'), /is a symbolic link/, 'a link, read');
    refusal(t, () => td.openFile('dir.img'), /is a directory, not a regular file/, 'a directory');
    refusal(t, () => td.openFile('root.img', { singleLink: true }), /has 2 names \(a hard link/, 'a hard link');
    t.doesNotThrow(() => fs.closeSync(td.openFile('root.img')), 'a hard link when links are not refused');
    refusal(t, () => td.openFile('mine.img', { owners: [0] }), /belongs to uid 65534/, "nobody's file when ours are asked for");
    t.same(td.readFile('ok.img')?.toString(), 'data', 'a plain file reads');
    const rw = td.openFile('ok.img', { flags: fs.constants.O_RDWR | fs.constants.O_NOFOLLOW | fs.constants.O_DIRECT });
    t.equal(
      fs.fstatSync(rw).ino,
      fs.statSync(path.join(dir, 'ok.img')).ino,
      'opened with the flags asked for (O_NOFOLLOW, O_DIRECT too)',
    );
    fs.closeSync(rw);
    t.equal(td.readFile('missing.img'), undefined, 'a missing file is undefined');
    t.throws(() => td.openFile('missing.img'), { code: 'ENOENT' });

    // Creating over a planted link never writes through it.
    t.throws(() => td.createFile('link.img', 0o600), { code: 'EEXIST' }, 'create refuses an existing name');
    td.writeFileAtomic('link.img', 'new\n', 0o600);
    t.equal(fs.readFileSync(secret, 'utf8'), 'root only\n', 'the link target was not written');
    t.ok(fs.lstatSync(path.join(dir, 'link.img')).isFile(), 'the link was replaced by the file');
    await td.writeFileAtomicAsync('views.json', '{}\n', 0o600);
    t.equal(fs.statSync(path.join(dir, 'views.json')).mode & 0o777, 0o600, 'atomic write: mode');
    t.notOk(
      td.list().some((n) => n.endsWith('.tmp')),
      'no temporary file left',
    );
    const a = td.createTemp('x.img', 0o600);
    const b = td.createTemp('x.img', 0o600);
    t.not(a.name, b.name, `temporary names differ (${a.name}, ${b.name})`);
    t.match(a.name, /^\.x\.img\.[0-9a-f]{16}\.tmp$/);
    fs.closeSync(a.fd);
    fs.closeSync(b.fd);
  });

  t.test('a directory renamed away after it was opened: operations still act on it', async (t) => {
    const { root, dir } = place(t, 'views', 0o700);
    const td = TrustedDir.open(dir, { what: 'views directory' });
    t.teardown(() => td.close());
    fs.renameSync(dir, path.join(root, 'moved'));
    fs.mkdirSync(dir);
    fs.chownSync(dir, NOBODY, NOGROUP); // the attacker's directory at the old path
    td.writeFileAtomic('views.json', 'ours\n', 0o600);
    fs.closeSync(td.createFile('a.img', 0o600));
    t.same(fs.readdirSync(dir), [], "nothing was written to the attacker's directory");
    t.same(fs.readdirSync(path.join(root, 'moved')).sort(), ['a.img', 'views.json'], 'both went to the held directory');
    t.same(td.list().sort(), ['a.img', 'views.json'], 'and the listing is of it');
    const snaps = td.child('snapshots', { what: 'snapshots directory', create: { mode: 0o700 } });
    t.ok(fs.statSync(path.join(root, 'moved', 'snapshots')).isDirectory(), 'a child is made in the held directory');
    snaps.close();
    fs.symlinkSync('/etc', path.join(root, 'moved', 'evil'));
    refusal(
      t,
      () => td.child('evil', { what: 'snapshots directory' }),
      /is a symbolic link, which is not followed/,
      'a child that is a link',
    );
  });

  t.test('run by nobody, and by a process that switched to nobody from root (not dumpable)', async (t) => {
    const { root, dir } = place(t, 'views', 0o700, NOBODY);
    // The room imports nothing of ours: its two compiled files run on their own.
    const lib = tempDir(t, 'lib');
    fs.chmodSync(lib, 0o755);
    for (const f of ['checks.js', 'trusted-dir.js'])
      fs.copyFileSync(path.join(__dirname, '../../src/safe-files', f), path.join(lib, f));
    const script = (switchFromRoot: boolean) => `
      ${switchFromRoot ? 'process.setgid(65534); process.setuid(65534);' : ''}
      const fs = require('node:fs');
      const { TrustedDir } = require(${JSON.stringify(path.join(lib, 'trusted-dir.js'))});
      const out = { euid: process.geteuid(), procFdOwner: fs.statSync('/proc/self/fd').uid };
      const td = TrustedDir.open(${JSON.stringify(dir)}, { what: 'views directory' });
      td.writeFileAtomic('views.json', 'x', 0o600);
      fs.closeSync(td.openFile('views.json', { flags: fs.constants.O_RDWR, singleLink: true, owners: [65534] }));
      try { td.openFile('fifo.img'); out.fifo = 'opened'; } catch (e) { out.fifo = e.message; }
      out.list = td.list().sort();
      console.log(JSON.stringify(out));`;
    fs.rmSync(path.join(dir, 'views.json'), { force: true });
    nobody('mkfifo', path.join(dir, 'fifo.img'));
    for (const [label, argv] of [
      ['as nobody (setpriv)', [...AS_NOBODY, process.execPath, '-e', script(false)]],
      ['switched from root', [process.execPath, '-e', script(true)]],
    ] as const) {
      // From /, without the NODE_OPTIONS tap gives every child: a checkout in a private directory is closed to nobody.
      const r = spawnSync('env', ['-u', 'NODE_OPTIONS', ...argv], { encoding: 'utf8', timeout: 10_000, cwd: '/' });
      t.equal(r.status, 0, `${label}: ran (${r.stderr.trim()})`);
      const out = JSON.parse(r.stdout || '{}') as Record<string, unknown>;
      t.equal(out.euid, NOBODY, `${label}: as nobody`);
      if (label === 'switched from root') t.equal(out.procFdOwner, 0, 'not dumpable: its /proc/self/fd belongs to root');
      t.match(out.fifo, /is a FIFO, not a regular file/, `${label}: a FIFO refused`);
      t.same(out.list, ['fifo.img', 'views.json'], `${label}: files written and listed`);
      fs.rmSync(path.join(dir, 'views.json'));
    }
    void root;
  });

  t.test('a directory the process may not read once it is nobody: the refusal says so, with the chown', async (t) => {
    const { dir } = place(t, 'snapshots', 0o700); // root's, made by a run as root
    const lib = tempDir(t, 'lib');
    fs.chmodSync(lib, 0o755);
    for (const f of ['checks.js', 'trusted-dir.js'])
      fs.copyFileSync(path.join(__dirname, '../../src/safe-files', f), path.join(lib, f));
    const script = `
      const { TrustedDir } = require(${JSON.stringify(path.join(lib, 'trusted-dir.js'))});
      const td = TrustedDir.open(${JSON.stringify(dir)}, { what: 'snapshots directory' });
      process.setgid(65534); process.setuid(65534);
      try { td.lstat('s3.img'); console.log('looked'); } catch (e) { console.log(e.message); }`;
    const r = spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, '-e', script], {
      encoding: 'utf8',
      timeout: 10_000,
      cwd: '/',
    });
    t.equal(
      r.stdout.trim(),
      `cannot look in the snapshots directory ${dir} as uid ${NOBODY}: permission denied; give it to that user (chown -R ${NOBODY}:${NOGROUP} ${dir}) and try again`,
      r.stderr.trim(),
    );
  });
}
