// The supervisor driven directly: restarts with exponential back-off and the
// reason logged, back-off reset after a long run, a hung worker killed,
// reload and requests relayed, clean stop on request.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { exportConfig } from '../helpers/export-config';
import { Supervisor, diffConfigs, exitReason, type SupervisorOptions } from '../../src/service/supervisor';
import type { ExportConfig, ServerConfig } from '../../src/config/export-config';
import type { LogSink } from '../../src/service/log';

const STUB = path.join(__dirname, '..', 'helpers', 'stub-worker.js');

function exp(slot: number, over: Partial<ExportConfig> = {}): ExportConfig {
  return exportConfig({ slot, interfaces: ['lo'], nullStore: true, nullSectors: 8, ...over });
}

interface Harness {
  sup: Supervisor;
  /** Supervisor's own records. */
  logs: Array<Record<string, unknown>>;
  /** Lines the worker wrote (through the sink). */
  workerLines: string[];
  pids: Set<number>;
  dir: string;
}

function harness(
  t: { teardown(fn: () => void | Promise<void>): void },
  over: Partial<SupervisorOptions> = {},
  env: Record<string, string> = {},
): Harness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vblade-sup-'));
  const logs: Array<Record<string, unknown>> = [];
  const workerLines: string[] = [];
  const pids = new Set<number>();
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s) as Record<string, unknown>) });
  const sink: LogSink = { writeLine: (l) => workerLines.push(l), reopen: () => undefined, flushSync: () => undefined };
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  const sup = new Supervisor({
    workerModule: STUB,
    config: { exports: [exp(1)], stateDir: path.join(dir, 'state') },
    log,
    sink,
    backoff: { minMs: 100, maxMs: 400, resetAfterMs: 4000 },
    stopTimeoutMs: 5000,
    heartbeatTimeoutMs: 0,
    // Not tap's loaders: a plain, fast-starting node like in production.
    execArgv: [],
    ...over,
  });
  const track = (): void => {
    if (sup.workerPid) pids.add(sup.workerPid);
  };
  const origStart = sup.start.bind(sup);
  sup.start = () => {
    origStart();
    track();
  };
  sup.on('worker-exit', () => setTimeout(track, 0));
  sup.on('ready', track);
  t.teardown(async () => {
    await sup.stop();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { sup, logs, workerLines, pids, dir };
}

function nextEvent<T>(sup: Supervisor, name: string, timeoutMs = 10000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} within ${timeoutMs} ms`)), timeoutMs);
    sup.once(name, (v: T) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

t.test('exitReason and diffConfigs', async (t) => {
  t.equal(exitReason(3, null), 'exited with code 3');
  t.equal(exitReason(null, 'SIGKILL'), 'was killed by SIGKILL');
  const a: ServerConfig = { exports: [exp(1), exp(2), exp(3)] };
  const b: ServerConfig = { exports: [exp(1), exp(3, { readOnly: true }), exp(4)] };
  t.same(diffConfigs(a, b), { added: ['e1.4'], removed: ['e1.2'], changed: ['e1.3'], resized: [] });
});

t.test('a crashing worker is restarted with exponential back-off, reset after a long run', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vblade-crash-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const crashFile = path.join(dir, 'crash-ms');
  fs.writeFileSync(crashFile, '50');
  const h = harness(t, {}, { STUB_CRASH_FILE: crashFile });
  const exits: Array<{ restartInMs: number; reason: string; at: number }> = [];
  h.sup.on('worker-exit', (e: { restartInMs: number; reason: string }) => exits.push({ ...e, at: Date.now() }));
  const spawnTimes: number[] = [];
  h.sup.on('ready', () => spawnTimes.push(Date.now()));
  h.sup.start();
  while (exits.length < 4) await nextEvent(h.sup, 'worker-exit');
  t.same(
    exits.map((e) => e.restartInMs),
    [100, 200, 400, 400],
    'doubling up to the maximum',
  );
  t.ok(
    exits.every((e) => e.reason === 'exited with code 3'),
    'reason logged',
  );
  // The gap between an exit and the next worker being ready is at least the back-off.
  for (let i = 0; i < 3; i++)
    t.ok(spawnTimes[i + 1] - exits[i].at >= exits[i].restartInMs - 5, `restart ${i + 1} waited its back-off`);
  const warns = h.logs.filter((l) => l.level === 40).map((l) => l.msg as string);
  t.match(warns[0], /^worker [0-9]+ exited with code 3 after [0-9.]+ s; restarting in 0\.1 s \(restart 1\)$/);
  t.match(warns[2], /restarting in 0\.4 s \(restart 3\)$/);
  t.ok(h.pids.size >= 4, 'a new process each time');

  // A worker that stayed up longer than resetAfterMs starts over at minMs.
  fs.writeFileSync(crashFile, '4200');
  while (exits.length < 6) await nextEvent(h.sup, 'worker-exit');
  t.equal(exits[5].restartInMs, 100, 'back-off reset after a run of more than resetAfterMs');
  t.equal(h.sup.status().restarts, 6);
});

t.test('a worker that cannot start is restarted and the reason is given', async (t) => {
  const h = harness(t, {}, { STUB_FAIL_START: 'eth9: no such interface' });
  h.sup.start();
  const failed = await nextEvent<string>(h.sup, 'worker-failed');
  t.equal(failed, 'eth9: no such interface');
  const exit = await nextEvent<{ reason: string; restartInMs: number }>(h.sup, 'worker-exit');
  t.equal(exit.reason, 'exited with code 1 (eth9: no such interface)');
  t.equal(exit.restartInMs, 100);
  await t.rejects(h.sup.request('list'), {
    message:
      /^the worker is not serving right now \(last: worker exited with code 1 \(eth9: no such interface\)\); next start in /,
  });
});

t.test('a worker that can serve nothing for a reason a restart would meet again: not restarted', async (t) => {
  const h = harness(t, {}, { STUB_NOTHING_TO_SERVE: 'e1.1: cannot open /x.img: no such file|e1.2: views need clones' });
  let failed = 0;
  h.sup.on('worker-failed', () => failed++);
  h.sup.start();
  const gaveUp = await nextEvent<string>(h.sup, 'gave-up');
  t.equal(gaveUp, 'e1.1: cannot open /x.img: no such file\ne1.2: views need clones', 'every reason');
  // The back-off would have restarted it after 0.1, 0.2 and 0.4 s.
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(h.pids.size, 1, 'one worker process, not one per back-off step');
  t.equal(failed, 0, "no 'worker-failed' (which tells the launcher it retries)");
  const st = h.sup.status();
  t.equal(st.restarts, 0);
  t.equal(st.restartInMs, undefined, 'no start due');
  t.equal(st.gaveUp, 'e1.1: cannot open /x.img: no such file\ne1.2: views need clones');
  await t.rejects(h.sup.request('list'), {
    message:
      'the worker is not serving right now (last: worker exited with code 1 (e1.1: cannot open /x.img: no such file\ne1.2: views need clones))',
  });
  t.ok(
    h.logs.some((l) =>
      /cannot serve: e1\.1: .*; not started again: fix the configuration and start vbladed again$/s.test(l.msg as string),
    ),
  );
});

t.test('killed worker: logged with the signal and restarted', async (t) => {
  const h = harness(t);
  h.sup.start();
  const pid = await nextEvent<number>(h.sup, 'ready');
  process.kill(pid, 'SIGKILL');
  const exit = await nextEvent<{ reason: string }>(h.sup, 'worker-exit');
  t.equal(exit.reason, 'was killed by SIGKILL');
  const pid2 = await nextEvent<number>(h.sup, 'ready');
  t.not(pid2, pid);
});

t.test('a hung worker (no heartbeat) is killed and restarted', async (t) => {
  const h = harness(t, { heartbeatTimeoutMs: 1000 }, { STUB_HANG_AFTER: '100' });
  h.sup.start();
  await nextEvent(h.sup, 'ready');
  const exit = await nextEvent<{ reason: string }>(h.sup, 'worker-exit', 8000);
  t.match(exit.reason, /^was killed by SIGKILL \(no heartbeat for [0-9.]+ s\)$/);
  t.ok(h.logs.some((l) => /sent no heartbeat for .*; killing it$/.test(l.msg as string)));
});

t.test('a restarted worker is told it is a restart: it waits for missing interfaces instead of failing', async (t) => {
  const h = harness(t, {}, { STUB_NO_INTERFACE: 'interface lo not found' });
  const failed = nextEvent<string>(h.sup, 'worker-failed');
  h.sup.start();
  t.equal(await failed, 'interface lo not found', 'the first start fails');
  await nextEvent(h.sup, 'ready');
  t.equal(h.sup.status().restarts, 1, 'the restart serves');
});

t.test('requests, reload and a clean stop', async (t) => {
  const h = harness(t, {}, { STUB_STOP_DELAY: '300' });
  h.sup.start();
  await nextEvent(h.sup, 'ready');
  const list = (await h.sup.request('list')) as Array<{ key: string; state: { config: string } }>;
  t.same(
    list.map((e) => e.key),
    ['e1.1'],
  );
  t.match(list[0].state.config, /^set-by-[0-9]+$/);
  const diff = await h.sup.apply({ exports: [exp(1), exp(2)], stateDir: path.join(h.dir, 'state') });
  t.same(diff, { added: ['e1.2'], removed: [], changed: [], resized: [], deferred: false });
  t.same(
    ((await h.sup.request('list')) as Array<{ key: string }>).map((e) => e.key),
    ['e1.1', 'e1.2'],
  );
  t.same(await h.sup.request('show-reserve', 'e1.2'), { 'e1.2': ['52:54:00:00:00:0a'] });
  t.same(await h.sup.request('clear-reserve', 'e1.2'), { key: 'e1.2', cleared: 'reserve' });
  t.same(await h.sup.request('show-reserve'), { 'e1.1': ['52:54:00:00:00:0a'], 'e1.2': [] });
  await t.rejects(h.sup.request('show-mask', 'e9.9'), { message: 'no export e9.9; "vblade ctl list" shows the exports' });
  const pid = h.sup.workerPid!;
  const t0 = Date.now();
  const code = await h.sup.stop();
  t.equal(code, 0, 'the worker stopped cleanly');
  t.ok(Date.now() - t0 >= 290, 'stop waited for the in-flight work');
  t.throws(() => process.kill(pid, 0), 'the worker is gone');
  const lines = h.workerLines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(lines.some((l) => l.msg === 'worker stopping (SIGTERM)'));
  t.ok(lines.some((l) => l.msg === 'worker stopped: in-flight requests finished and state saved'));
  // State written by the worker is in the state dir.
  const saved = JSON.parse(fs.readFileSync(path.join(h.dir, 'state', 'e1.2.json'), 'utf8')) as { reserve: string[] };
  t.same(saved.reserve, []);
});

t.test('a worker is not trusted: messages that do not fit are logged and ignored, its log lines stay its own', async (t) => {
  const h = harness(t, { workerModule: path.join(__dirname, '..', 'helpers', 'forging-worker.js') });
  const failed = nextEvent<string>(h.sup, 'worker-failed');
  const ready = nextEvent<number>(h.sup, 'ready');
  h.sup.start();
  t.equal(await failed, 'no\\u001b]0;owned\\u0007 \\u009b2J interface\nsecond line', 'what the launcher prints: escaped');
  const pid = await ready;
  t.equal(h.sup.status().ready, true, 'the good ready counts');
  const bad = h.logs.filter((l) => l.level === 40).map((l) => l.msg as string);
  t.same(bad, [
    `worker ${pid} sent a message that does not fit (ready: field exports is not a list); ignored`,
    `worker ${pid} sent a message that does not fit (ready: field exports entry 1 is not a string); ignored`,
    `worker ${pid} sent a message that does not fit (fatal: field message is missing); ignored`,
    `worker ${pid} sent a message that does not fit (unknown type "no-such-type"); ignored`,
    `worker ${pid} sent a message that does not fit (response: field id is not a request id); ignored; further ones of this worker are not logged`,
  ]);
  const serving = h.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('is serving'));
  t.equal(serving?.msg, `worker ${pid} is serving e1.1`);
  // The first answer to a request does not fit and is ignored; the second is the answer.
  t.same(await h.sup.request('list'), { config: 'A\x1b[31mB\x9b31mC' });

  while (h.workerLines.length < 2) await new Promise((r) => setTimeout(r, 20));
  // eslint-disable-next-line no-control-regex
  for (const l of h.workerLines) t.notMatch(l, /[\u0000-\u001f\u007f-\u009f]/, 'no raw control character in the JSON line');
  const [forged, control] = h.workerLines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(forged, { level: 60, pid, role: 'worker', msg: 'stopping (forged)' }, 'the forged record is the worker’s');
  t.equal(forged.hostname, os.hostname());
  t.match(control, {
    level: 30,
    pid,
    role: 'worker',
    msg: 'worker output',
    text: 'evil\x1b[31m red \x9b31m csi \x9d0;pwned\x07 osc \x7f del',
  });
});
