// The worker with the real Server on the fake addon and a real state
// directory: what `vblade ctl` shows and does for held exports (unreadable
// state) and for list changes that must be saved before they are reported.

import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { encodeState } from '../../src/service/state-store';
import { WorkerCore, type ExportListing, type StartServer } from '../../src/service/worker';
import { Server } from '../../src/target/server';
import { FakeNetwork } from '../helpers/fake-addon';
import type { TestLike } from '../../lab/common';
import { tempDir } from '../helpers/files';
import { exportOf, IFACE, Initiator, settle } from '../helpers/in-process';

const M1 = '52:54:00:00:00:01';
const M2 = '52:54:00:00:00:02';

async function setup(
  t: TestLike,
  files: Record<string, string>,
  dirs: string[] = [],
): Promise<{ core: WorkerCore; stateDir: string; initiator: Initiator }> {
  const dir = tempDir(t, 'durable-ctl');
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir, { mode: 0o750 });
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(stateDir, name), text);
  for (const name of dirs) fs.mkdirSync(path.join(stateDir, name));
  const backing = path.join(dir, 'disk.img');
  fs.writeFileSync(backing, Buffer.alloc(64 * 512));
  const other = path.join(dir, 'other.img'); // two exports of one file would be refused as two writers
  fs.writeFileSync(other, Buffer.alloc(64 * 512));
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const start: StartServer = (config, log, hooks) =>
    Server.start(config, log, hooks, { addon: net.addon, linkCheckMs: 60_000, duplicateProbeMs: 0 });
  const core = new WorkerCore(start, pino({ level: 'silent' }));
  await core.start({ exports: [exportOf(backing), exportOf(other, { slot: 3, macMask: [M2] })], stateDir });
  t.teardown(() => core.stop());
  return { core, stateDir, initiator: new Initiator(net, IFACE) };
}

t.test('a held export: list says so, nothing is answered, restore-state after a fix serves it', async (t) => {
  const { core, stateDir, initiator } = await setup(t, { 'e1.2.json': 'garbage' });
  const list = (await core.request('list')) as ExportListing[];
  t.match(
    list[0].held,
    `saved state unreadable (it is not valid JSON (truncated or overwritten?)); kept as ${stateDir}/e1.2.json; not served until an operator decides: "vblade ctl show-state e1.2" shows it, "vblade ctl restore-state e1.2" serves the file once fixed, "vblade ctl reset-state e1.2" sets it aside and starts empty`,
  );
  t.equal(list[1].held, undefined, 'the other export serves');
  const q = initiator.queryConfig();
  const other = initiator.queryConfig(1, 3);
  await settle();
  t.equal(initiator.unclaimed(q), 0, 'the held export answers nothing');
  t.equal(initiator.unclaimed(other), 0, 'e1.3 has a mask without us: silence too');
  t.same(await core.request('show-state', 'e1.2'), {
    key: 'e1.2',
    held: list[0].held,
    inForce: { config: '', macMask: [], reserve: [] },
    file: `${stateDir}/e1.2.json`,
    unreadable: 'it is not valid JSON (truncated or overwritten?)',
  });
  await t.rejects(core.request('restore-state', 'e1.2'), {
    message: `${stateDir}/e1.2.json is still unreadable (it is not valid JSON (truncated or overwritten?)); fix it and run restore-state again, or run "vblade ctl reset-state e1.2" to start empty`,
  });
  await t.rejects(core.request('set-reserve', 'e1.2', [M1]), { message: /^e1\.2 is held: saved state unreadable/ });
  fs.writeFileSync(path.join(stateDir, 'e1.2.json'), encodeState('e1.2', { config: 'ok', macMask: [], reserve: [M1] }));
  t.same(await core.request('restore-state', 'e1.2'), { key: 'e1.2', state: { config: 'ok', macMask: [], reserve: [M1] } });
  const after = (await core.request('list')) as ExportListing[];
  t.equal(after[0].held, undefined);
  t.same(after[0].state.reserve, [M1]);
  const r = await initiator.configReply(initiator.queryConfig());
  t.equal(Buffer.from(r.config.config).toString('latin1'), 'ok', 'served with the restored state');
});

t.test('reset-state sets a directory in place of the file aside and starts with the configured mask', async (t) => {
  const { core, stateDir } = await setup(t, {}, ['e1.3.json']);
  const r = (await core.request('reset-state', 'e1.3')) as { keptAs: string; state: unknown };
  t.match(r.keptAs, new RegExp(`^${stateDir}/e1\\.3\\.json\\.corrupt-[0-9T-]+Z$`));
  t.ok(fs.statSync(r.keptAs).isDirectory(), 'kept');
  // The configured mask, recorded as the config's mask the state was reconciled with.
  t.same(r.state, { config: '', macMask: [M2], reserve: [], configMask: [M2] });
  t.same(JSON.parse(fs.readFileSync(path.join(stateDir, 'e1.3.json'), 'utf8')), {
    version: 1,
    key: 'e1.3',
    config: '',
    macMask: [M2],
    reserve: [],
    configMask: [M2],
  });
  await t.rejects(core.request('reset-state', 'e1.3'), { message: 'e1.3 is not held; it serves its saved state already' });
});

t.test('mask and reserve commands answer once saved; a failed save is an error and changes nothing', async (t) => {
  const { core, stateDir } = await setup(t, {});
  const file = path.join(stateDir, 'e1.2.json');
  const onDisk = (): { macMask: string[]; reserve: string[] } => JSON.parse(fs.readFileSync(file, 'utf8')) as never;
  t.same(await core.request('set-mask', 'e1.2', ['52-54-00-00-00-01', M2]), { key: 'e1.2', macMask: [M1, M2] });
  t.same(onDisk().macMask, [M1, M2], 'on disk when answered');
  t.same(await core.request('del-mask', 'e1.2', [M1]), { key: 'e1.2', macMask: [M2] });
  t.same(await core.request('add-mask', 'e1.2', [M1, M2]), { key: 'e1.2', macMask: [M2, M1] });
  t.same(await core.request('set-reserve', 'e1.2', [M1]), { key: 'e1.2', reserve: [M1] });
  t.same(onDisk().reserve, [M1]);
  await t.rejects(core.request('add-mask', 'e1.2', ['zz']), {
    message: '"zz" is not a MAC address; write it as aa:bb:cc:dd:ee:ff',
  });
  // The file system refuses the next save: a directory where the file goes.
  fs.rmSync(file);
  fs.mkdirSync(file);
  fs.writeFileSync(path.join(file, 'x'), '');
  await t.rejects(core.request('clear-reserve', 'e1.2'), {
    message: /^the state of e1\.2 could not be saved \(EISDIR.*\); the previous state stays in force$/,
  });
  const list = (await core.request('list')) as ExportListing[];
  t.same(list[0].state.reserve, [M1], 'still reserved');
  t.equal(list[0].failedSaves, 1);
  t.match(list[0].lastSaveError, /^EISDIR/);
  t.same(await core.request('show-reserve', 'e1.2'), { 'e1.2': [M1] });
});
