// sd_notify against a fake NOTIFY_SOCKET (a datagram socket bound by python3).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { SdNotify, withoutNotifyEnv } from '../../src/service/sd-notify';
import { DgramSink, dgramSinkUnavailable } from '../helpers/dgram-sink';

const skip = dgramSinkUnavailable();

t.test('no NOTIFY_SOCKET: every call is a no-op', async (t) => {
  const sent: string[] = [];
  const n = new SdNotify({}, (_p, m) => sent.push(m));
  t.equal(n.enabled, false);
  t.equal(n.ready(), false);
  t.equal(n.stopping(), false);
  n.startWatchdog();
  n.stopWatchdog();
  t.same(sent, []);
});

t.test('a relative NOTIFY_SOCKET is ignored', async (t) => {
  t.equal(new SdNotify({ NOTIFY_SOCKET: 'notify.sock' }).enabled, false);
});

t.test('WATCHDOG_PID for another process disables the watchdog', async (t) => {
  t.equal(
    new SdNotify({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, undefined, 2).watchdogUsec,
    undefined,
  );
  t.equal(new SdNotify({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '2' }, undefined, 2).watchdogUsec, 1000000);
});

t.test('the worker does not inherit the notify variables', async (t) => {
  t.same(withoutNotifyEnv({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1', WATCHDOG_PID: '2', PATH: '/bin' }), { PATH: '/bin' });
});

t.test('a send failure is reported, not thrown', async (t) => {
  const n = new SdNotify({ NOTIFY_SOCKET: '/nonexistent/notify.sock' });
  t.equal(n.ready(), false);
  t.match(n.error, /./);
});

t.test('protocol over a real socket', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdnotify-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sink = await DgramSink.start(path.join(dir, 'notify.sock'));
  t.teardown(() => sink.close());

  const n = new SdNotify({ NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '200000' });
  t.ok(n.enabled);
  t.equal(n.watchdogUsec, 200000);
  t.ok(n.ready('serving e1.1'));
  t.ok(n.status('two\nlines'));
  t.ok(n.reloading());
  const got = await sink.waitFor(3);
  t.equal(got[0], 'READY=1\nSTATUS=serving e1.1');
  t.equal(got[1], 'STATUS=two lines');
  t.match(got[2], /^RELOADING=1\nMONOTONIC_USEC=[0-9]+$/);

  // WATCHDOG=1 every WATCHDOG_USEC/2 = 100 ms while healthy.
  let healthy = true;
  const start = Date.now();
  n.startWatchdog(() => healthy);
  await sink.waitFor(6, 2000);
  const elapsed = Date.now() - start;
  t.same(sink.messages.slice(3, 6), ['WATCHDOG=1', 'WATCHDOG=1', 'WATCHDOG=1']);
  t.ok(elapsed >= 280 && elapsed < 1500, `three pings took ${elapsed} ms (want about 300)`);
  healthy = false;
  await new Promise((r) => setTimeout(r, 150));
  const count = sink.messages.length;
  await new Promise((r) => setTimeout(r, 350));
  t.equal(sink.messages.length, count, 'no ping while unhealthy');
  n.stopWatchdog();
  t.ok(n.stopping());
  await sink.waitFor(sink.messages.length + 1);
  t.equal(sink.messages[sink.messages.length - 1], 'STOPPING=1');
});

t.test('nothing is sent after STOPPING=1', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdnotify-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sink = await DgramSink.start(path.join(dir, 'notify.sock'));
  t.teardown(() => sink.close());
  const n = new SdNotify({ NOTIFY_SOCKET: sink.path, WATCHDOG_USEC: '100000' });
  t.ok(n.stopping('stopping: finishing in-flight requests'));
  t.equal(n.status('worker down'), false, 'status');
  t.equal(n.ready('serving e1.1'), false, 'ready (a reload that ends during the stop)');
  t.equal(n.reloading(), false, 'reloading');
  t.equal(n.watchdog(), false, 'watchdog');
  n.startWatchdog();
  await new Promise((r) => setTimeout(r, 200));
  n.stopWatchdog();
  t.same(sink.messages, ['STOPPING=1\nSTATUS=stopping: finishing in-flight requests']);
});

t.test('abstract socket address', { skip }, async (t) => {
  const name = `@aoe-target-test-${process.pid}`;
  const sink = await DgramSink.start(name);
  t.teardown(() => sink.close());
  const n = new SdNotify({ NOTIFY_SOCKET: name });
  t.ok(n.ready());
  t.same(await sink.waitFor(1), ['READY=1']);
});
