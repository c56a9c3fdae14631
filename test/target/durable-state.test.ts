// State changes are acknowledged only once they are on disk: a Query Config
// set, Mac Mask edit or Reserve set gets its reply after the server's
// saveState hook resolved; when the save fails the state goes back to the
// saved one and the request gets AoE error 3. And an export whose saved state
// is unreadable is held: no reply to anything until it is released. In process, on the fake addon; the hook is a test double that
// resolves or fails when the test says so.

import t from 'tap';
import type { ExportState, SavedState } from '../../src/config/export-config';
import { parseConfigReply, parseReserveReply } from '../../src/client/replies';
import { ReserveCommand } from '../../src/client/wire';
import type { ServerHooks } from '../../src/target/server';
import { patternFile, patternSectors } from '../helpers/files';
import { exportOf, Initiator, settle, startInProcess } from '../helpers/in-process';

const A = '02:00:00:00:0a:01';
const B = '02:00:00:00:0b:02';

/** A saveState hook whose saves wait until the test resolves or fails them. */
class ManualDisk {
  readonly saves: Array<{ key: string; state: ExportState; done(): void; fail(e: Error): void }> = [];
  readonly onDisk = new Map<string, ExportState>();
  initial: SavedState = { status: 'absent' };

  hooks(): ServerHooks {
    return {
      initialState: () => this.initial,
      saveState: (key, state) =>
        new Promise<void>((resolve, reject) => {
          this.saves.push({
            key,
            state,
            done: () => {
              this.onDisk.set(key, state);
              resolve();
            },
            fail: reject,
          });
        }),
    };
  }

  /** Completes the oldest save. */
  next(ok = true): void {
    const s = this.saves.shift();
    if (!s) throw new Error('no save is waiting');
    if (ok) s.done();
    else s.fail(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  }
}

t.test('a Reserve set is answered only once the reservation is on disk', async (t) => {
  const disk = new ManualDisk();
  const file = await patternFile(t, 64);
  const { initiator, server } = await startInProcess(t, [exportOf(file)], {}, {}, false, disk.hooks());
  const tag = initiator.reserve([A]);
  await settle();
  t.equal(initiator.unclaimed(tag), 0, 'no reply while the save runs');
  t.equal(disk.saves.length, 1, 'one save asked for');
  t.same(disk.saves[0].state.reserve, [A]);
  t.equal(server.stats().exports[0].stateDurable, false, 'stats say the state in force is not saved yet');
  t.equal(server.stats().exports[0].inflight, 1, 'the reply awaiting the save counts as in flight');
  disk.next();
  const r = await initiator.reply(tag);
  t.notOk(r.header.error);
  t.same(parseReserveReply(r.frame).macs, [A]);
  t.same(disk.onDisk.get('e1.2')?.reserve, [A], 'on disk before the reply left');
  t.equal(server.stats().exports[0].stateDurable, true);
});

t.test('a save that fails: AoE error 3, the reservation goes back, a write from B still succeeds', async (t) => {
  const disk = new ManualDisk();
  const file = await patternFile(t, 64);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)], {}, {}, false, disk.hooks());
  const b = new Initiator(net, initiator.ifname, B);
  const tag = initiator.reserve([A]);
  await settle();
  disk.next(false);
  const r = await initiator.reply(tag);
  t.ok(r.header.error, 'E set');
  t.equal(r.header.errorCode, 3, 'device unavailable');
  t.same(parseReserveReply(r.frame).macs, [], 'the reply shows the reservation in force: none');
  const st = server.stats().exports[0];
  t.same(st.reserve, []);
  t.equal(st.failedSaves, 1);
  t.equal(st.lastSaveError, 'ENOSPC: no space left on device, write');
  t.equal(st.stateDurable, true, 'what is in force is what is on disk');
  const w = await b.ataReply(b.write(3, patternSectors(3, 2)));
  t.notOk(w.header.error, 'B is not locked out by a reservation that was never saved');
  // A later save that works takes.
  const again = initiator.reserve([A]);
  await settle();
  disk.next();
  const ok = await initiator.reply(again);
  t.notOk(ok.header.error);
  t.same(parseReserveReply(ok.frame).macs, [A]);
  const refused = await b.ataReply(b.write(3, patternSectors(3, 2)));
  t.equal(refused.header.errorCode, 6, 'now B is refused: reserved');
});

t.test('changes coalesce: one save per export per batch; replies wait for the save that covers them', async (t) => {
  const disk = new ManualDisk();
  const file = await patternFile(t, 64);
  const { initiator } = await startInProcess(t, [exportOf(file)], {}, {}, false, disk.hooks());
  const tags = [initiator.reserve([A], ReserveCommand.ForceSet), initiator.forceSetConfigString('one')];
  tags.push(initiator.forceSetConfigString('two'));
  await settle();
  t.equal(disk.saves.length, 1, 'one save for the batch');
  t.equal(disk.saves[0].state.config, 'two');
  // A change while that save runs waits for the next one.
  const late = initiator.forceSetConfigString('three');
  await settle();
  t.equal(disk.saves.length, 1, 'saves of one export never overlap');
  disk.next();
  for (const tag of tags) t.notOk((await initiator.reply(tag)).header.error);
  await settle();
  t.equal(initiator.unclaimed(late), 0, 'the later change still waits');
  t.equal(disk.saves.length, 1, 'and its save has started');
  disk.next();
  const r = await initiator.reply(late);
  t.equal(Buffer.from(parseConfigReply(r.frame).config).toString('latin1'), 'three');
});

t.test('a failed save answers every reply awaiting a save with error 3, also those of a later change', async (t) => {
  const disk = new ManualDisk();
  const file = await patternFile(t, 64);
  const { initiator, server } = await startInProcess(t, [exportOf(file)], {}, {}, false, disk.hooks());
  const first = initiator.forceSetConfigString('one');
  await settle();
  const second = initiator.forceSetConfigString('two');
  await settle();
  disk.next(false);
  for (const tag of [first, second]) {
    const r = await initiator.reply(tag);
    t.equal(r.header.errorCode, 3);
    t.equal(parseConfigReply(r.frame).config.length, 0, 'the string in force: the saved one (none)');
  }
  t.equal(disk.saves.length, 0, 'nothing left to save: the state went back');
  t.equal(server.stats().exports[0].config, '');
});

t.test('a slow save does not hold up the data path of the export or of another', async (t) => {
  const disk = new ManualDisk();
  const file = await patternFile(t, 64);
  const other = await patternFile(t, 64);
  const { initiator } = await startInProcess(
    t,
    [exportOf(file), exportOf(other, { slot: 3, readOnly: true })],
    {},
    {},
    false,
    disk.hooks(),
  );
  initiator.reserve([A]);
  await settle();
  const own = await initiator.ataReply(initiator.read(1, 1));
  t.same(Buffer.from(own.ata.data), patternSectors(1, 1), 'reads of the same export are served');
  const another = await initiator.ataReply(initiator.read(2, 1, 1, 3));
  t.same(Buffer.from(another.ata.data), patternSectors(2, 1), 'and of another export');
  disk.next();
});

t.test('stop() waits for a running save and sends its reply', async (t) => {
  const disk = new ManualDisk();
  const file = await patternFile(t, 64);
  const { initiator, server } = await startInProcess(t, [exportOf(file)], {}, {}, false, disk.hooks());
  const tag = initiator.reserve([A]);
  await settle();
  let stopped = false;
  const stopping = server.stop().then(() => (stopped = true));
  await settle();
  t.notOk(stopped, 'stop waits');
  disk.next();
  await stopping;
  t.notOk((await initiator.reply(tag)).header.error, 'the reply left before the stop finished');
});

t.test('without persistence the reply leaves at once, as before', async (t) => {
  const file = await patternFile(t, 64);
  const { initiator } = await startInProcess(t, [exportOf(file)]);
  const r = await initiator.reply(initiator.reserve([A]));
  t.same(parseReserveReply(r.frame).macs, [A]);
});

t.test('control-socket changes: answered once saved; a failed save rejects and leaves the old state', async (t) => {
  const disk = new ManualDisk();
  const file = await patternFile(t, 64);
  const { server } = await startInProcess(t, [exportOf(file)], {}, {}, false, disk.hooks());
  const p = server.changeState('e1.2', (s) => ({ ...s, reserve: [B] }));
  await settle();
  disk.next();
  t.same((await p).reserve, [B]);
  const q = server.changeState('e1.2', (s) => ({ ...s, macMask: [A] }));
  await settle();
  disk.next(false);
  await t.rejects(q, { message: 'ENOSPC: no space left on device, write' });
  t.same(server.stats().exports[0].macMask, [], 'the mask did not change');
  t.same(server.stats().exports[0].reserve, [B]);
});

t.test('an export whose saved state is unreadable is held: no reply at all until released', async (t) => {
  const disk = new ManualDisk();
  disk.initial = { status: 'unreadable', file: '/state/e1.2.json', reason: 'it is not valid JSON' };
  const file = await patternFile(t, 64);
  const other = await patternFile(t, 64);
  const { initiator, server } = await startInProcess(
    t,
    [exportOf(file), exportOf(other, { slot: 3 })],
    {},
    {},
    false,
    disk.hooks(),
  );
  const tags = [initiator.queryConfig(), initiator.read(0, 1), initiator.reserve([A])];
  await settle();
  for (const tag of tags) t.equal(initiator.unclaimed(tag), 0, 'silence');
  t.equal(disk.saves.length, 0);
  const st = server.stats().exports[0];
  t.match(st.held, /^saved state unreadable \(it is not valid JSON\); kept as \/state\/e1\.2\.json; not served until/);
  await t.rejects(
    server.changeState('e1.2', (s) => s),
    { message: /^e1\.2 is held: saved state unreadable/ },
  );
  // Release: saved first, then served and announced.
  const releasing = server.release('e1.2', { config: 'fixed', macMask: [], reserve: [B] });
  await settle();
  t.equal(initiator.unclaimed(tags[0]), 0, 'still held while the release is being saved');
  disk.next();
  await releasing;
  t.equal(server.stats().exports[0].held, undefined);
  const r = await initiator.configReply(initiator.queryConfig());
  t.equal(Buffer.from(r.config.config).toString('latin1'), 'fixed');
});

t.test('while a release is being saved, the old reservation still governs I/O', async (t) => {
  const disk = new ManualDisk();
  disk.initial = { status: 'ok', state: { config: '', macMask: [], reserve: [A] } };
  const file = await patternFile(t, 64);
  const { initiator, server, net } = await startInProcess(t, [exportOf(file)], {}, {}, false, disk.hooks());
  const b = new Initiator(net, initiator.ifname, B);
  const release = initiator.reserve([]);
  await settle();
  const early = b.write(3, patternSectors(3, 2));
  await settle();
  t.equal(b.unclaimed(early), 0, "B's write is not served before the release is saved (B retransmits)");
  t.equal(server.stats().exports[0].counters.writes, 0, 'and not executed');
  const own = await initiator.ataReply(initiator.read(1, 1));
  t.notOk(own.header.error, 'the holder is served meanwhile');
  disk.next(false);
  t.equal((await initiator.reply(release)).header.errorCode, 3, 'the release failed');
  const retry = await b.ataReply(b.write(3, patternSectors(3, 2)));
  t.equal(retry.header.errorCode, 6, 'still reserved for A: B is refused');
});

t.test("the config's mask the state was reconciled with is carried into the next save", async (t) => {
  const disk = new ManualDisk();
  // The config still says B; an initiator had emptied the mask since: the saved (empty) mask stays in force.
  disk.initial = { status: 'ok', state: { config: '', macMask: [], reserve: [], configMask: [B] } };
  const file = await patternFile(t, 64);
  const { initiator } = await startInProcess(t, [exportOf(file, { macMask: [B] })], {}, {}, false, disk.hooks());
  const tag = initiator.reserve([A]);
  await settle();
  t.same(disk.saves[0].state, { config: '', macMask: [], reserve: [A], configMask: [B] });
  disk.next();
  await initiator.reply(tag);
});
