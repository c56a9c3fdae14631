// The state store: round trip, atomic replacement, coalescing, leftovers of
// interrupted writes, and corrupt files kept aside.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import t from 'tap';
import { StateStore, decodeState, encodeState } from '../../src/service/state-store';

function setup(t: { teardown(fn: () => void): void }): { dir: string; store: StateStore; logs: Array<Record<string, unknown>> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vblade-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s) as Record<string, unknown>) });
  const store = new StateStore(path.join(dir, 'state'), log);
  store.open();
  return { dir, store, logs };
}

const S1 = { config: 'host-a', macMask: ['52:54:00:00:00:01'], reserve: [] };
const S2 = { config: 'host-b', macMask: [], reserve: ['52:54:00:00:00:02', '52:54:00:00:00:03'] };

t.test('save then load, in a new store as after a restart', async (t) => {
  const { store, dir } = setup(t);
  t.same(store.load('e1.1'), { status: 'absent' });
  await store.save('e1.1', S1);
  await store.save('e2.3', S2);
  const again = new StateStore(path.join(dir, 'state'), pino({ level: 'silent' }));
  t.same(again.load('e1.1'), { status: 'ok', state: S1 });
  t.same(again.load('e2.3'), { status: 'ok', state: S2 });
  t.same(fs.readdirSync(path.join(dir, 'state')).sort(), ['e1.1.json', 'e2.3.json'], 'no temporary files left');
  t.equal(fs.statSync(path.join(dir, 'state')).mode & 0o777, 0o750);
});

t.test('a save replaces the file by rename (a reader never sees a partial file)', async (t) => {
  const { store, dir } = setup(t);
  const file = path.join(dir, 'state', 'e1.1.json');
  await store.save('e1.1', S1);
  const ino1 = fs.statSync(file).ino;
  // Keep the old file open: it must still read whole and old after the save.
  const oldFd = fs.openSync(file, 'r');
  t.teardown(() => fs.closeSync(oldFd));
  await store.save('e1.1', S2);
  t.not(fs.statSync(file).ino, ino1, 'new inode: renamed into place');
  t.equal(fs.readFileSync(oldFd, 'utf8'), encodeState('e1.1', S1), 'the old file is untouched');
  t.equal(fs.readFileSync(file, 'utf8'), encodeState('e1.1', S2));
});

t.test('rapid saves coalesce and the last one wins', async (t) => {
  const { store } = setup(t);
  const waits: Array<Promise<void>> = [];
  for (let i = 0; i < 50; i++) waits.push(store.save('e1.1', { config: `v${i}`, macMask: [], reserve: [] }));
  await Promise.all(waits);
  await store.flush();
  t.same(store.load('e1.1'), { status: 'ok', state: { config: 'v49', macMask: [], reserve: [] } });
});

t.test('the caller can change its arrays after save without affecting what is written', async (t) => {
  const { store } = setup(t);
  const s = { config: '', macMask: ['52:54:00:00:00:01'], reserve: [] as string[] };
  const p = store.save('e1.1', s);
  s.macMask.push('52:54:00:00:00:09');
  await p;
  t.same(store.load('e1.1'), { status: 'ok', state: { config: '', macMask: ['52:54:00:00:00:01'], reserve: [] } });
});

t.test('leftovers of an interrupted write are removed at open', async (t) => {
  const { store, dir } = setup(t);
  const stateDir = path.join(dir, 'state');
  fs.writeFileSync(path.join(stateDir, '.e1.1.json.tmp-999'), '{"version":1,"ke');
  fs.writeFileSync(path.join(stateDir, '.e1.1.json.tmp-5f3a9c0e12b4d6a8'), '{"version":1,"ke');
  await store.save('e1.2', S1);
  store.open();
  t.same(fs.readdirSync(stateDir), ['e1.2.json']);
});

const SECRET = 'root-only-secret-7f3e';
const tooMany = Array.from({ length: 129 }, (_, i) => `52:54:00:00:01:${(i % 256).toString(16).padStart(2, '0')}`);

t.test('an unreadable file is reported, not served from: kept aside, named, never quoted', async (t) => {
  const rows: Array<[string, string, RegExp]> = [
    ['garbage', `${SECRET} garbage`, /not valid JSON/],
    ['truncated JSON', '{"version":1,"key":"e1.1","con', /not valid JSON/],
    ['empty file', '', /empty/],
    ['wrong key', encodeState('e9.9', S1), /written for e9\.9, not e1\.1/],
    ['bad MAC', JSON.stringify({ version: 1, key: 'e1.1', config: '', macMask: [SECRET], reserve: [] }), /macMask is not a list/],
    [
      'unknown version',
      JSON.stringify({ version: SECRET, key: 'e1.1', config: '', macMask: [], reserve: [] }),
      /no format version/,
    ],
    [
      '129 reserve entries (the lists hold 128)',
      JSON.stringify({ version: 1, key: 'e1.1', config: '', macMask: [], reserve: tooMany }),
      /reserve is not a list of at most 128 MAC addresses/,
    ],
  ];
  for (const [desc, text, why] of rows) {
    t.test(desc, async (t) => {
      const { store, dir, logs } = setup(t);
      const stateDir = path.join(dir, 'state');
      const file = path.join(stateDir, 'e1.1.json');
      fs.writeFileSync(file, text);
      const r = store.load('e1.1');
      t.equal(r.status, 'unreadable');
      if (r.status !== 'unreadable') return;
      t.match(r.reason, why);
      t.equal(r.file, file);
      t.same(fs.readdirSync(stateDir), ['e1.1.json'], 'left in place: a restart holds the export again');
      t.equal(fs.readFileSync(file, 'utf8'), text, 'kept as it was');
      t.same(store.load('e1.1'), r, 'unreadable again at the next start');
      const err = logs.find((l) => l.level === 50);
      t.equal(
        err?.msg,
        `saved state of e1.1 in ${file} is unreadable (${r.reason}); e1.1 is not served until an operator runs "vblade ctl restore-state e1.1" or "vblade ctl reset-state e1.1"`,
      );
      t.notMatch(JSON.stringify(logs), SECRET, 'no log line quotes the file');
      t.notMatch(r.reason, SECRET);
      // The operator can look at it; once fixed it reads as state.
      t.match(store.inspect('e1.1'), { file, reason: r.reason });
      fs.writeFileSync(file, encodeState('e1.1', S2));
      t.same(store.inspect('e1.1'), { file, state: S2 });
      // Or it is set aside and a save starts afresh.
      fs.writeFileSync(file, text);
      const aside = store.setAside('e1.1');
      t.match(aside, /e1\.1\.json\.corrupt-[0-9T-]+Z$/);
      t.equal(fs.readFileSync(aside!, 'utf8'), text);
      await store.save('e1.1', S1);
      t.same(store.load('e1.1'), { status: 'ok', state: S1 });
    });
  }
});

t.test('a directory in place of the state file is reported; saves fail until it is set aside', async (t) => {
  const { store, dir } = setup(t);
  const file = path.join(dir, 'state', 'e1.1.json');
  fs.mkdirSync(file);
  const r = store.load('e1.1');
  t.match(r, { status: 'unreadable', reason: 'it is a directory, not a file' });
  await t.rejects(store.save('e1.1', S1), { code: 'EISDIR' });
  store.setAside('e1.1');
  t.notOk(fs.existsSync(file), 'moved out of the way, so the next save can work');
  await store.save('e1.1', S1);
  t.same(store.load('e1.1'), { status: 'ok', state: S1 });
});

t.test('a symbolic link to a root-only file is not followed and its contents reach no log', async (t) => {
  const { store, dir, logs } = setup(t);
  const secret = path.join(dir, 'secret');
  fs.writeFileSync(secret, `${SECRET}\n`, { mode: 0o600 });
  const file = path.join(dir, 'state', 'e1.1.json');
  fs.symlinkSync(secret, file);
  const r = store.load('e1.1');
  t.match(r, { status: 'unreadable', reason: 'it is a symbolic link, which is not followed' });
  t.notMatch(JSON.stringify(logs), SECRET);
  t.equal(fs.readFileSync(secret, 'utf8'), `${SECRET}\n`, 'the target is untouched');
  await store.save('e1.1', S1);
  t.equal(fs.readFileSync(secret, 'utf8'), `${SECRET}\n`, 'a save does not write through a link');
  t.notOk(fs.lstatSync(file).isSymbolicLink());
});

t.test('a FIFO in place of the state file does not stall the load', async (t) => {
  const { store, dir } = setup(t);
  const file = path.join(dir, 'state', 'e1.1.json');
  execFileSync('mkfifo', [file]);
  const started = Date.now();
  const r = store.load('e1.1');
  t.ok(Date.now() - started < 1000, `returned in ${Date.now() - started} ms`);
  t.match(r, { status: 'unreadable', reason: /not a regular file/ });
});

t.test('configMask round-trips; a file without it stays valid', async (t) => {
  const { store } = setup(t);
  const withMask = { ...S1, configMask: ['52:54:00:00:00:07'] };
  await store.save('e1.1', withMask);
  t.same(store.load('e1.1'), { status: 'ok', state: withMask });
  t.same(decodeState(JSON.stringify({ version: 1, key: 'e1.1', config: '', macMask: [], reserve: [] }), 'e1.1'), {
    config: '',
    macMask: [],
    reserve: [],
  });
});

t.test('a state directory others may write to, or owned by another user, is refused', async (t) => {
  const { dir } = setup(t);
  const open = path.join(dir, 'open');
  fs.mkdirSync(open);
  fs.chmodSync(open, 0o777);
  t.throws(() => new StateStore(open, pino({ level: 'silent' })).open(), {
    message: `state directory ${open} is writable by its group and others (mode 0777); another user could replace its files: chmod go-w ${open}`,
  });
  const foreign = path.join(dir, 'foreign');
  fs.mkdirSync(foreign, { mode: 0o750 });
  fs.chownSync(foreign, 65534, 65534);
  t.throws(() => new StateStore(foreign, pino({ level: 'silent' })).open(), {
    message: `state directory ${foreign} belongs to uid 65534, not to the daemon's user (uid 0); that user could replace its files: chown 0 ${foreign}`,
  });
});

t.test('a state directory moved after open and replaced by a link: saves and loads stay in the directory checked', async (t) => {
  const { dir, store } = setup(t);
  const state = path.join(dir, 'state');
  const elsewhere = path.join(dir, 'elsewhere');
  fs.mkdirSync(elsewhere);
  fs.renameSync(state, `${state}.moved`);
  fs.symlinkSync(elsewhere, state);
  await store.save('e1.1', S1);
  t.same(fs.readdirSync(elsewhere), [], 'nothing written where the path points now');
  t.ok(fs.existsSync(path.join(`${state}.moved`, 'e1.1.json')), 'the file is in the directory checked at open');
  t.same(store.load('e1.1'), { status: 'ok', state: S1 }, 'and read from there');
});

t.test('temporary files have unpredictable names and are created exclusively', async (t) => {
  const { store, dir } = setup(t);
  const stateDir = path.join(dir, 'state');
  // A link planted under the old predictable name is not written through.
  const victim = path.join(dir, 'victim');
  fs.writeFileSync(victim, 'precious\n');
  fs.symlinkSync(victim, path.join(stateDir, `.e1.1.json.tmp-${process.pid}`));
  await store.save('e1.1', S1);
  t.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
  t.same(store.load('e1.1'), { status: 'ok', state: S1 });
});

t.test('decodeState messages', async (t) => {
  t.equal(decodeState('[]', 'e1.1'), 'not a JSON object');
  t.equal(decodeState(encodeState('e1.2', S1), 'e1.1'), 'written for e1.2, not e1.1');
  t.equal(
    decodeState(JSON.stringify({ version: 1, key: 'e1.1', config: 'x'.repeat(1025), macMask: [], reserve: [] }), 'e1.1'),
    'config is not a string of at most 1024 characters',
  );
});

t.test('a failed write rejects, is logged, and leaves no temporary file', async (t) => {
  const { store, dir, logs } = setup(t);
  const stateDir = path.join(dir, 'state');
  // A directory where the file should go makes rename fail.
  fs.mkdirSync(path.join(stateDir, 'e1.1.json'));
  fs.writeFileSync(path.join(stateDir, 'e1.1.json', 'x'), '');
  await t.rejects(store.save('e1.1', S1));
  t.match(logs.find((l) => l.level === 50)?.msg, /^cannot save the state of e1\.1/);
  t.same(fs.readdirSync(stateDir), ['e1.1.json']);
});
