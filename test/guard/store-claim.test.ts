// Backing-store claims (src/guard/store-claim.ts) with real locks on real
// files: two StoreClaims are two open file descriptions, as two processes
// would hold, and the rule is shared-writers.ts's. The lock files' place is
// hostile input: a planted link, a FIFO, a directory others may write.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import t from 'tap';
import { giveStoreClaims, StoreClaims } from '../../src/guard/store-claim';
import { native } from '../../src/native/addon';
import { exportOf } from '../helpers/in-process';
import { sparseFile, tempDir } from '../helpers/files';
import type { ExportConfig } from '../../src/config/export-config';
import { requireRoot } from '../../lab/netns';

function place(t: Parameters<typeof tempDir>[0]): string {
  return path.join(tempDir(t, 'claims'), 'claims');
}

async function image(t: Parameters<typeof tempDir>[0]): Promise<{ file: string; fd: number }> {
  const file = await sparseFile(t, 1 << 20);
  const fd = fs.openSync(file, 'r');
  t.teardown(() => fs.closeSync(fd));
  return { file, fd };
}

t.test('the rule between two processes: shared-writers.ts decides', async (t) => {
  const base = place(t);
  const { file, fd } = await image(t);
  const e = (over: Partial<ExportConfig>): ExportConfig => exportOf(file, over);
  const cases: [string, Partial<ExportConfig>, Partial<ExportConfig>, boolean][] = [
    ['two writers', {}, {}, false],
    ['a writer and a read-only export', {}, { readOnly: true }, false],
    ['two read-only exports', { readOnly: true }, { readOnly: true }, true],
    ['two shared writers', { shared: true }, { shared: true }, true],
    ['a shared writer and a shared read-only export', { shared: true }, { shared: true, readOnly: true }, true],
    ['a shared writer and a plain read-only export', { shared: true }, { readOnly: true }, false],
    ['a plain read-only export and a shared writer', { readOnly: true }, { shared: true }, false],
    ['a plain and a shared read-only export', { readOnly: true }, { readOnly: true, shared: true }, true],
    ['two views exports (they read the image)', { views: 'per-initiator' }, { views: 'per-initiator' }, true],
    ['views beside a writer of the image', { views: 'per-initiator' }, {}, false],
    ['a shared writer and a plain writer', { shared: true }, {}, false],
    ['disjoint ranges', { lengthSectors: 1024 }, { offsetSectors: 1024 }, true],
    ['touching by one sector', { lengthSectors: 1025 }, { offsetSectors: 1024 }, false],
  ];
  for (const [what, a, b, allowed] of cases) {
    const first = new StoreClaims(native, base);
    const second = new StoreClaims(native, base);
    const release = first.claim(e(a), fd);
    if (allowed) t.doesNotThrow(() => second.claim(e(b), fd), what);
    else t.throws(() => second.claim(e(b), fd), { message: /another aoe-target process on this host (serves|writes) it/ }, what);
    release();
    t.doesNotThrow(() => second.claim(e(b), fd)(), `${what}: free once the first is released`);
    first.releaseAll();
    second.releaseAll();
  }
});

t.test("one process's claims never conflict, and giving one up keeps the others", async (t) => {
  const base = place(t);
  const { file, fd } = await image(t);
  const ours = new StoreClaims(native, base);
  const other = new StoreClaims(native, base);
  const whole = ours.claim(exportOf(file, { readOnly: true }), fd);
  const part = ours.claim(exportOf(file, { readOnly: true, lengthSectors: 8 }), fd);
  // A reload changing the export to a writer: the new claim beside the old, then the old given up.
  const writer = ours.claim(exportOf(file), fd);
  whole();
  part();
  t.throws(() => other.claim(exportOf(file, { readOnly: true, lengthSectors: 8 }), fd), 'the writer still holds sectors 0..7');
  writer();
  t.doesNotThrow(() => other.claim(exportOf(file), fd)(), 'all given up: free');
});

t.test('a link, a FIFO or a directory others may write where the lock files go: refused with the fix', async (t) => {
  const { file, fd } = await image(t);
  const st = fs.fstatSync(fd);
  const base = place(t);
  fs.mkdirSync(path.join(base, 'stores'), { recursive: true, mode: 0o755 });
  const lock = path.join(base, 'stores', `f${st.dev}-${st.ino}.lock`);
  fs.symlinkSync('/etc/passwd', lock);
  t.throws(() => new StoreClaims(native, base).claim(exportOf(file), fd), {
    message: `the store claim file ${lock} is a symbolic link; remove it`,
  });
  fs.rmSync(lock);
  execFileSync('mkfifo', [lock]);
  t.throws(() => new StoreClaims(native, base).claim(exportOf(file), fd), {
    message: `the store claim file ${lock} is not a regular file; remove it`,
  });
  fs.rmSync(lock);
  fs.chmodSync(path.join(base, 'stores'), 0o777);
  t.throws(() => new StoreClaims(native, base).claim(exportOf(file), fd), { message: /is writable by others \(mode 777\)/ });
  fs.chmodSync(path.join(base, 'stores'), 0o755);
  t.doesNotThrow(() => new StoreClaims(native, base).claim(exportOf(file), fd)(), 'claimed once the place is safe');
});

t.test('after the switch to user =: a changed range of a claimed file reloads; a new file is refused with the fix', async (t) => {
  if (!requireRoot(t)) return;
  const dir = tempDir(t, 'claims-user');
  fs.chmodSync(dir, 0o755);
  const first = await sparseFile(t, 1 << 20, { dir, name: 'first.img' });
  const second = await sparseFile(t, 1 << 20, { dir, name: 'second.img' });
  for (const f of [first, second]) fs.chmodSync(f, 0o666);
  const dist = path.join(__dirname, '../..');
  const req = (p: string): string => `require(${JSON.stringify(path.join(dist, p))})`;
  const script = `
    const { Server } = ${req('src/target/server.js')};
    const { native } = ${req('src/native/addon.js')};
    const { FakeNetwork } = ${req('test/helpers/fake-addon.js')};
    const { exportOf, IFACE } = ${req('test/helpers/in-process.js')};
    const pino = require(${JSON.stringify(require.resolve('pino'))});
    (async () => {
      const net = new FakeNetwork();
      net.addInterface(IFACE, {});
      const server = await Server.start({ exports: [exportOf(${JSON.stringify(first)})], user: 'nobody' }, pino({ level: 'silent' }), {},
        { linkCheckMs: 60000, duplicateProbeMs: 0, addon: net.addon });
      native.dropPrivileges('nobody');
      const changed = await server.apply({ exports: [exportOf(${JSON.stringify(first)}, { lengthSectors: 1024 })] })
        .then(() => 'applied', (e) => e.message);
      const added = await server.apply({ exports: [exportOf(${JSON.stringify(first)}, { lengthSectors: 1024 }),
        exportOf(${JSON.stringify(second)}, { slot: 3 })] }).then(() => 'applied', (e) => e.message);
      console.log(JSON.stringify({ euid: process.geteuid(), changed, added }));
      await server.stop();
      process.exit(0);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: '/',
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH },
  });
  const out = JSON.parse(r.stdout || '{}') as { euid?: number; changed?: string; added?: string };
  t.equal(out.euid, 65534, `runs as nobody: ${r.stderr.slice(0, 300)}`);
  t.equal(out.changed, 'applied', 'the claimed file, another range: its lock file is open already');
  t.match(
    out.added,
    /^e1\.3: cannot claim the backing store in \/run\/aoe-target\/claims\/stores \(EACCES: permission denied, .*\): the claims are root's and this process has switched to its user since it started; put the export in the config file \(or a fragment of config-dir, written as root\) and restart the service to serve it$/,
    'a new file: refused, with the fix',
  );
});

t.test("giveStoreClaims: a switched worker's lock file made and given to it; a planted link is not followed", async (t) => {
  if (!requireRoot(t)) return;
  const nobody = { uid: 65534, gid: 65534 };
  const stores = '/run/aoe-target/claims/stores';
  const { file } = await image(t);
  const st = fs.statSync(file);
  giveStoreClaims([exportOf(file)], nobody, native);
  const lock = fs.lstatSync(path.join(stores, `f${st.dev}-${st.ino}.lock`));
  t.ok(lock.isFile(), 'the lock file is made');
  t.same([lock.uid, lock.gid, lock.mode & 0o777], [65534, 65534, 0o600], "nobody's, 0600");
  t.same(
    [fs.statSync(stores).uid, fs.statSync(stores).mode & 0o022],
    [0, 0],
    'its directory stays root’s, written by nobody else',
  );

  // A claim file another instance holds now is not given away: the user could then keep that instance from its disk.
  const other = await image(t);
  const held = new StoreClaims(native, '/run/aoe-target/claims');
  const release = held.claim(exportOf(other.file), other.fd);
  t.teardown(release);
  const os = fs.statSync(other.file);
  const heldLock = path.join(stores, `f${os.dev}-${os.ino}.lock`);
  fs.chownSync(heldLock, 0, 0);
  giveStoreClaims([exportOf(other.file)], nobody, native);
  t.equal(fs.statSync(heldLock).uid, 0, 'a claim file another holds stays root’s');
  release();
  giveStoreClaims([exportOf(other.file)], nobody, native);
  t.equal(fs.statSync(heldLock).uid, 65534, 'and is given once nobody holds it');

  // Root's claims directory is root's alone, but a link planted there earlier must not make root chown what it names.
  const victim = await sparseFile(t, 4096);
  const planted = await sparseFile(t, 4096);
  const p = fs.statSync(planted);
  const at = path.join(stores, `f${p.dev}-${p.ino}.lock`);
  fs.rmSync(at, { force: true });
  fs.symlinkSync(victim, at);
  t.teardown(() => fs.rmSync(at, { force: true }));
  giveStoreClaims([exportOf(planted)], nobody, native);
  t.equal(fs.statSync(victim).uid, 0, 'what the link names is still root’s');
  t.ok(fs.lstatSync(at).isSymbolicLink(), 'the link is left for the claim to refuse');
});
