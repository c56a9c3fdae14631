// One missing interface does not take the other exports down: they serve,
// the missing one waits and is opened when it appears, and stats() says which
// interface serves and which waits. On the fake addon.

import t from 'tap';
import pino from 'pino';
import { Server, type ServerOptions } from '../../src/target/server';
import type { ExportConfig } from '../../src/config/export-config';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile, patternSectors } from '../helpers/files';
import { Initiator, exportOf, settle, until } from '../helpers/in-process';
import type { TestLike } from '../../lab/common';

async function start(t: TestLike, net: FakeNetwork, exports: ExportConfig[], options: ServerOptions = {}): Promise<Server> {
  const server = await Server.start(
    { exports },
    pino({ level: 'silent' }),
    {},
    { linkCheckMs: 10, duplicateProbeMs: 0, ...options, addon: net.addon },
  );
  t.teardown(() => server.stop());
  return server;
}

async function readsSector0(i: Initiator, slot: number): Promise<boolean> {
  const tag = i.read(0, 1, 1, slot);
  await settle(50);
  if (i.unclaimed(tag) === 0) return false;
  const r = await i.ataReply(tag);
  return Buffer.from(r.ata.data).equals(patternSectors(0, 1));
}

function states(server: Server): Record<string, Record<string, string>> {
  return Object.fromEntries(
    server.stats().exports.map((e) => [e.key, Object.fromEntries(e.paths.map((p) => [p.interface, p.state]))]),
  );
}

t.test('e1.1 on an existing interface, e1.2 on a missing one: e1.1 serves, e1.2 when its interface appears', async (t) => {
  const file = await patternFile(t, 64);
  const other = await patternFile(t, 64);
  const net = new FakeNetwork();
  net.addInterface('fake0');
  const server = await start(t, net, [
    exportOf(file, { slot: 1, interfaces: ['fake0'] }),
    exportOf(other, { slot: 2, interfaces: ['fake9'] }),
  ]);
  t.ok(await readsSector0(new Initiator(net, 'fake0'), 1), 'e1.1 answers on fake0');
  t.same(states(server), { 'e1.1': { fake0: 'serving' }, 'e1.2': { fake9: 'waiting for the interface' } });
  net.addInterface('fake9');
  await until(() => states(server)['e1.2'].fake9 === 'serving', 'e1.2 serving on fake9');
  t.ok(await readsSector0(new Initiator(net, 'fake9'), 2), 'e1.2 answers on fake9');
});

t.test('one export on two interfaces, one missing: served on the other', async (t) => {
  const file = await patternFile(t, 64);
  const net = new FakeNetwork();
  net.addInterface('fake0');
  const server = await start(t, net, [exportOf(file, { slot: 1, interfaces: ['fake0', 'fake9'] })]);
  t.ok(await readsSector0(new Initiator(net, 'fake0'), 1));
  t.same(states(server), { 'e1.1': { fake0: 'serving', fake9: 'waiting for the interface' } });
});

t.test('no configured interface exists: a first start fails as vblade does, a restart waits', async (t) => {
  const file = await patternFile(t, 64);
  const net = new FakeNetwork();
  await t.rejects(start(t, net, [exportOf(file, { interfaces: ['fake9'] })]), {
    message: 'interface fake9 not found; list interfaces with `ip link`',
  });
  const server = await start(t, net, [exportOf(file, { interfaces: ['fake9'] })], { requireAnInterface: false });
  t.same(states(server), { 'e1.2': { fake9: 'waiting for the interface' } });
  net.addInterface('fake9');
  await until(() => states(server)['e1.2'].fake9 === 'serving', 'e1.2 serving on fake9');
  t.ok(await readsSector0(new Initiator(net, 'fake9'), 2));
});
