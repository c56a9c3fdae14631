// A reload that gives an export a new interface claims its address there as
// start-up does: refused, with nothing changed, while another process on
// this host holds that claim (the other process is played by a second set
// of claims of this one: another open file of the claim is another holder);
// applied once it is free; and a reload that takes the interface away gives
// the claim back.
import t from 'tap';
import pino from 'pino';
import { AddressClaims } from '../../src/guard/address-claim';
import { native } from '../../src/native/addon';
import { ReloadRefused, Server } from '../../src/target/server';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile } from '../helpers/files';
import { exportOf } from '../helpers/in-process';

// Claims are host-wide: names no parallel test uses.
const IF_A = `rc${process.pid % 100000}a`;
const IF_B = `rc${process.pid % 100000}b`;

t.test('reload onto an interface where another process holds the address: refused, then applied once free', async (t) => {
  const file = await patternFile(t, 64);
  const net = new FakeNetwork();
  net.addInterface(IF_A);
  net.addInterface(IF_B);
  const other = new AddressClaims(native);
  t.teardown(() => other.release());
  t.same(other.claim('e1.2', IF_B), { taken: true }, 'another holder serves e1.2 on the second interface');
  const one = exportOf(file, { interfaces: [IF_A] });
  const both = exportOf(file, { interfaces: [IF_A, IF_B] });
  const server = await Server.start(
    { exports: [one] },
    pino({ level: 'silent' }),
    {},
    {
      addon: net.addon,
      duplicateProbeMs: 5,
      linkCheckMs: 60_000,
    },
  );
  t.teardown(() => server.stop());

  const refused = await server.apply({ exports: [both] }).catch((e: Error) => e);
  t.ok(refused instanceof ReloadRefused, 'the reload is refused');
  t.match(
    (refused as Error).message,
    new RegExp(`^another aoe-target process on this host already serves e1\\.2 on ${IF_B} \\(pid ${process.pid}\\)`),
    'naming the address, the interface and the holder',
  );
  t.same(server.exports[0].config.interfaces, [IF_A], 'nothing changed');

  other.release();
  const summary = await server.apply({ exports: [both] });
  t.same(summary.changed, ['e1.2'], 'applied once the address is free');
  t.same(other.claim('e1.2', IF_B), { taken: false, holderPid: process.pid }, 'the server holds the claim on the new interface');

  await server.apply({ exports: [one] });
  t.same(other.claim('e1.2', IF_B), { taken: true }, 'given back when the interface is taken away');
  t.same(other.claim('e1.2', IF_A), { taken: false, holderPid: process.pid }, 'and kept on the one it still serves');
});
