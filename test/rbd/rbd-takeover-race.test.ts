// `vblade ctl takeover` asked twice at once of a standby gateway (two admins,
// or a script that retries) while its look at the lock waits its turn: one
// takeover breaks the old owner's lock; the other must find the lock this
// gateway's already and say so. It tried to break this gateway's own lock
// (librbd refused with EBUSY, and the admin read an error naming an address
// that was the gateway's own).
//
// Network safety: the cluster and both gateways run in the cluster's
// namespace; the veths, the bridge and the namespaces are the test's own.

import t from 'tap';
import { AoeClient } from '../../src/client';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { sleep } from '../../lab/common';
import { addBridgeTap, createNetns } from '../../lab/netns';
import { requireCeph, startCeph } from '../helpers/ceph';
import { tempDir } from '../helpers/files';
import { KEY, gateway, stamp, type Segment } from '../helpers/rbd-gateways';
import { ctlIn } from '../helpers/vbladed';

const MiB = 1 << 20;

t.test('two takeovers at once on a standby: one serves, the other says it is served already', async (t) => {
  if (!requireCeph(t)) return;
  const cluster = await startCeph(t);
  const spec = await cluster.createImage('race', 16 * MiB);
  const init = await createNetns(t, 'init');
  const seg: Segment = { init, bridge: (await addBridgeTap(t, init)).bridge };
  const A = await gateway(t, cluster, seg, 'a', spec);
  const B = await gateway(t, cluster, seg, 'b', spec, undefined, '', { UV_THREADPOOL_SIZE: '2' });
  const c = AoeClient.open(seg.bridge, { netns: init.path, timeoutMs: 1000, retries: 2 });
  t.teardown(() => c.close());
  await c.write(A.T, 0, stamp('A', 2));
  t.match((await ctlIn(cluster.ns, B.socket, 'list')).out, /NOT SERVED, standby/, 'B stands by');

  // Both arrive while B's look at the lock waits its turn on libuv's pool: B's pool holds 2 threads, so remote
  // calls get 1 at a time, and a reload's open of an nbd export whose server never answers holds it for 6 s.
  const hangs = path.join(tempDir(t, 'hang'), 'hang.sock');
  const silent = createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((resolve) => silent.listen(hangs, resolve));
  t.teardown(() => silent.close());
  fs.appendFileSync(
    B.conf,
    `\n[export e9.8]\nfile = nbd+unix:///?socket=${hangs}\nremote-timeout = 6\ninterfaces = ${B.targetIf}\n`,
  );
  const reload = ctlIn(cluster.ns, B.socket, 'reload');
  await sleep(3500); // past B's look interval (3 s): a look waits behind the open
  const both = Promise.all([ctlIn(cluster.ns, B.socket, 'takeover', KEY), ctlIn(cluster.ns, B.socket, 'takeover', KEY)]);
  t.not((await reload).code, 0, 'the reload with the silent server fails after remote-timeout');
  const [one, two] = await both;
  const codes = [one.code, two.code].sort();
  t.same(codes, [0, 1], `one takeover succeeds, the other is refused:\n${one.out}${one.err}\n${two.out}${two.err}`);
  const refused = one.code === 0 ? two : one;
  t.match(refused.err + refused.out, /served by this gateway already/, 'the refused one says B serves it already');
  const list = (await ctlIn(cluster.ns, B.socket, 'list')).out;
  t.notMatch(list, /NOT SERVED/, `B serves it: ${list}`);
  const after = stamp('B after the takeover', 2);
  await c.write(B.T, 4, after);
  t.same(Buffer.from(await c.read(B.T, 4, 2)), after, 'B acknowledges writes and reads them back');
  t.ok(B.daemon.running, 'B runs');
});
