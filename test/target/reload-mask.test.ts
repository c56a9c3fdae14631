// The MAC mask when the config and saved state meet: a mask the operator
// sets or changes in the config is enforced at start and on reload, at once;
// otherwise the saved mask stays. What an initiator sees, on the fake addon.

import t from 'tap';
import pino from 'pino';
import { parseDebianConf } from '../../src/config/debian-conf';
import type { ExportState } from '../../src/config/export-config';
import { Server, type ServerHooks } from '../../src/target/server';
import type { TestLike } from '../../lab/common';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile, patternSectors } from '../helpers/files';
import { IFACE, Initiator, exportOf, settle } from '../helpers/in-process';

const MAC_A = '02:00:00:00:0a:01';
const MAC_B = '02:00:00:00:0b:01';

async function start(
  t: TestLike,
  exports: Parameters<typeof exportOf>[1][],
  file: string,
  hooks: ServerHooks,
): Promise<{ server: Server; a: Initiator; b: Initiator; net: FakeNetwork }> {
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const server = await Server.start({ exports: exports.map((over) => exportOf(file, over)) }, pino({ level: 'silent' }), hooks, {
    linkCheckMs: 60_000,
    duplicateProbeMs: 0,
    addon: net.addon,
  });
  t.teardown(() => server.stop());
  return { server, net, a: new Initiator(net, IFACE, MAC_A), b: new Initiator(net, IFACE, MAC_B) };
}

/** Whether a read of sector 0 from this initiator is answered with the file's data. */
async function reads(i: Initiator): Promise<boolean> {
  const tag = i.read(0, 1);
  await settle(50);
  if (i.unclaimed(tag) === 0) return false;
  const r = await i.ataReply(tag);
  return Buffer.from(r.ata.data).equals(patternSectors(0, 1));
}

t.test('start-up: saved state with an empty mask and mac-mask = A in the config: A is enforced', async (t) => {
  const file = await patternFile(t, 64);
  const saved: ExportState = { config: 'kept', macMask: [], reserve: [] };
  const persisted: ExportState[] = [];
  const { server, a, b } = await start(t, [{ macMask: [MAC_A] }], file, {
    initialState: () => ({ status: 'ok', state: saved }),
    onStateChange: (_k, s) => persisted.push(s),
  });
  t.ok(await reads(a), 'A reads');
  t.notOk(await reads(b), 'B gets no answer');
  t.same(server.stats().exports[0].macMask, [MAC_A]);
  t.equal(server.stats().exports[0].config, 'kept', 'the saved config string stays');
  t.same(
    persisted,
    [{ config: 'kept', macMask: [MAC_A], reserve: [], configMask: [MAC_A] }],
    'persisted once, with the config mask',
  );
});

t.test('start-up: the config mask unchanged since it was saved: the saved mask (set by an initiator) stays', async (t) => {
  const file = await patternFile(t, 64);
  const saved: ExportState = { config: '', macMask: [MAC_B], reserve: [], configMask: [MAC_A] };
  const persisted: ExportState[] = [];
  const { a, b } = await start(t, [{ macMask: [MAC_A] }], file, {
    initialState: () => ({ status: 'ok', state: saved }),
    onStateChange: (_k, s) => persisted.push(s),
  });
  t.ok(await reads(b), 'B reads');
  t.notOk(await reads(a), 'A gets no answer');
  t.same(persisted, [], 'nothing to persist');
});

t.test('reload: mask changed from A to B in the config: A gets nothing, B reads, without a restart', async (t) => {
  const file = await patternFile(t, 64);
  const persisted: ExportState[] = [];
  const { server, a, b } = await start(t, [{ macMask: [MAC_A] }], file, { onStateChange: (_k, s) => persisted.push(s) });
  t.ok(await reads(a), 'A reads before');
  t.notOk(await reads(b), 'B refused before');
  const before = server.exports[0];
  const summary = await server.apply({ exports: [exportOf(file, { macMask: [MAC_B] })] });
  t.same(summary.changed, ['e1.2'], 'reported as changed');
  t.equal(server.exports[0], before, 'the export was changed in place, not replaced');
  t.notOk(await reads(a), 'A gets nothing after the reload');
  t.ok(await reads(b), 'B reads after the reload');
  t.same(server.stats().exports[0].macMask, [MAC_B]);
  t.same(persisted.at(-1), { config: '', macMask: [MAC_B], reserve: [], configMask: [MAC_B] }, 'the new mask is persisted');
});

t.test('reload: mac-mask removed from the config: everyone reads', async (t) => {
  const file = await patternFile(t, 64);
  const { server, a, b } = await start(t, [{ macMask: [MAC_A] }], file, {});
  t.notOk(await reads(b), 'B refused before');
  await server.apply({ exports: [exportOf(file)] });
  t.ok(await reads(a), 'A reads');
  t.ok(await reads(b), 'B reads');
});

t.test('reload with another change too: the export is replaced and the new mask is enforced', async (t) => {
  const file = await patternFile(t, 64);
  const { server, a, b } = await start(t, [{ macMask: [MAC_A] }], file, {});
  await server.apply({ exports: [exportOf(file, { macMask: [MAC_B], bufferCount: 32 })] });
  t.notOk(await reads(a), 'A gets nothing');
  t.ok(await reads(b), 'B reads');
});

t.test('Debian fragment: -m A changed to -m B, reload: A gets nothing, B reads', async (t) => {
  const file = await patternFile(t, 64);
  const fragment = (mac: string) =>
    parseDebianConf(`shelf=1\nslot=2\nnetif=${IFACE}\nfilename=${file}\noptions='-m ${mac.toUpperCase()}'\n`, 'e1.2.conf').export;
  const net = new FakeNetwork();
  net.addInterface(IFACE);
  const server = await Server.start(
    { exports: [fragment(MAC_A)] },
    pino({ level: 'silent' }),
    {},
    { linkCheckMs: 60_000, duplicateProbeMs: 0, addon: net.addon },
  );
  t.teardown(() => server.stop());
  const a = new Initiator(net, IFACE, MAC_A);
  const b = new Initiator(net, IFACE, MAC_B);
  t.ok(await reads(a), 'A reads');
  t.same((await server.apply({ exports: [fragment(MAC_B)] })).changed, ['e1.2']);
  t.notOk(await reads(a), 'A gets nothing');
  t.ok(await reads(b), 'B reads');
});
