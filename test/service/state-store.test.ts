// The state store: round trip, atomic replacement, coalescing, leftovers of
// interrupted writes, and corrupt files kept aside.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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
  t.equal(store.load('e1.1'), undefined);
  await store.save('e1.1', S1);
  await store.save('e2.3', S2);
  const again = new StateStore(path.join(dir, 'state'), pino({ level: 'silent' }));
  t.same(again.load('e1.1'), S1);
  t.same([...again.loadAll().entries()].sort(), [
    ['e1.1', S1],
    ['e2.3', S2],
  ]);
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
  t.equal(store.load('e1.1')?.config, 'v49');
});

t.test('the caller can change its arrays after save without affecting what is written', async (t) => {
  const { store } = setup(t);
  const s = { config: '', macMask: ['52:54:00:00:00:01'], reserve: [] as string[] };
  const p = store.save('e1.1', s);
  s.macMask.push('52:54:00:00:00:09');
  await p;
  t.same(store.load('e1.1')?.macMask, ['52:54:00:00:00:01']);
});

t.test('leftovers of an interrupted write are removed at open', async (t) => {
  const { store, dir } = setup(t);
  const stateDir = path.join(dir, 'state');
  fs.writeFileSync(path.join(stateDir, '.e1.1.json.tmp-999'), '{"version":1,"ke');
  await store.save('e1.2', S1);
  store.open();
  t.same(fs.readdirSync(stateDir), ['e1.2.json']);
});

t.test('a corrupt file is logged, ignored and kept aside', async (t) => {
  const rows: Array<[string, string]> = [
    ['truncated JSON', '{"version":1,"key":"e1.1","con'],
    ['wrong key', encodeState('e9.9', S1)],
    ['bad MAC', JSON.stringify({ version: 1, key: 'e1.1', config: '', macMask: ['zz'], reserve: [] })],
    ['unknown version', JSON.stringify({ version: 7, key: 'e1.1', config: '', macMask: [], reserve: [] })],
    ['empty file', ''],
  ];
  for (const [desc, text] of rows) {
    t.test(desc, async (t) => {
      const { store, dir, logs } = setup(t);
      const stateDir = path.join(dir, 'state');
      fs.writeFileSync(path.join(stateDir, 'e1.1.json'), text);
      t.equal(store.load('e1.1'), undefined);
      const names = fs.readdirSync(stateDir);
      t.equal(names.length, 1);
      t.match(names[0], /^e1\.1\.json\.corrupt-[0-9T-]+Z$/);
      t.equal(fs.readFileSync(path.join(stateDir, names[0]), 'utf8'), text, 'kept as it was');
      const warn = logs.find((l) => l.level === 40);
      t.match(warn?.msg, /^saved state of e1\.1 is corrupt \(.+\); ignored it and kept it as .*corrupt-/);
      // A later save works normally.
      await store.save('e1.1', S1);
      t.same(store.load('e1.1'), S1);
    });
  }
});

t.test('decodeState messages', async (t) => {
  t.equal(decodeState('[]', 'e1.1'), 'not a JSON object');
  t.equal(decodeState(encodeState('e1.2', S1), 'e1.1'), 'written for "e1.2", not e1.1');
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
