// The link monitor when the interface query itself fails (no descriptor
// left for it: EMFILE, as when a local user held every descriptor the
// process may open): the failure is logged once and the check is tried
// again; the process goes on serving and the checks resume.
import t from 'tap';
import pino from 'pino';
import { Writable } from 'node:stream';
import { Server } from '../../src/target/server';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile } from '../helpers/files';
import { exportOf, IFACE, Initiator, settle, until } from '../helpers/in-process';

t.test('EMFILE from the interface query: logged once, retried, and the server keeps serving', async (t) => {
  const file = await patternFile(t, 64);
  const net = new FakeNetwork();
  const iface = net.addInterface(IFACE);
  const lines: { msg: string; level: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as { msg: string; level: number });
      done();
    },
  });
  const server = await Server.start(
    { exports: [exportOf(file)] },
    pino({ level: 'info' }, sink),
    {},
    {
      linkCheckMs: 5,
      duplicateProbeMs: 0,
      addon: net.addon,
    },
  );
  t.teardown(() => server.stop());
  iface.takeSent();
  const initiator = new Initiator(net, IFACE);
  const addon = net.addon;
  const query = addon.linkInfo.bind(addon);
  const emfile = Object.assign(new Error('cannot create a socket for interface queries: Too many open files'), {
    code: 'EMFILE',
  });
  addon.linkInfo = () => {
    throw emfile;
  };
  await settle(60); // a dozen checks
  const failed = lines.filter((l) => l.msg.startsWith(`cannot check interface ${IFACE}`));
  t.equal(failed.length, 1, 'logged once');
  t.match(failed[0]?.msg, /Too many open files; tried again every 5 ms/, 'the message says what failed and that it is retried');
  const { config } = await initiator.configReply(initiator.queryConfig());
  t.ok(config, 'Query Config answered while the checks fail');

  addon.linkInfo = query;
  await until(() => lines.some((l) => l.msg === 'interface checks work again'), 'the checks to resume');
  iface.mtu = 1500;
  await until(() => server.stats().interfaces[0].mtu === 1500, 'the new MTU to be seen');
  t.pass('a change of the interface is followed again');
});
