// The control socket's command table and protocol, the ctl client's
// formatting and socket choice, the Prometheus rendering, and WorkerCore's
// state handling across a restart and its command table.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { exportConfig } from '../helpers/export-config';
import { asNobodyArgs } from '../helpers/targets';
import { FakeNetwork } from '../helpers/fake-addon';
import { patternFile } from '../helpers/files';
import { Server } from '../../src/target/server';
import {
  COMMANDS,
  ControlServer,
  MAX_CONNECTIONS,
  MAX_IN_FLIGHT,
  dispatch,
  groupId,
  runCommand,
  type ControlTarget,
} from '../../src/service/control';
import { formatResult, parseCtlArgs, resolveSocket, runCtl } from '../../src/cli/ctl';
import { controlRequest } from '../../src/cli/control-client';
import { humanBytes, latencyBound } from '../../src/cli/stats-table';
import { METRICS_LIMITS, MetricsServer, renderMetrics } from '../../src/service/metrics';
import { WorkerCore, type ServerLike, type StartServer } from '../../src/service/worker';
import type { ExportState } from '../../src/config/export-config';
import type { WorkerOp } from '../../src/service/worker';

const silent = pino({ level: 'silent' });

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vblade-ctl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const fakeTarget: ControlTarget = {
  request: async (op: WorkerOp, key?: string, macs?: string[]) => {
    if (key === 'e9.9') throw new Error('no export e9.9');
    return macs ? { op, key, macs } : { op, key };
  },
  reload: async () => ({ added: ['e1.3'], removed: [], changed: [] }),
  status: () => ({ workerPid: 7 }),
};

/** A daemon with no exports, for ctl's socket choice. */
const listTarget: ControlTarget = {
  request: async () => [],
  reload: async () => ({ added: [], removed: [], changed: [] }),
  status: () => ({ workerPid: 7, restarts: 0, ready: true }),
};

t.test('dispatch through the command table', async (t) => {
  const rows: Array<[Record<string, unknown>, unknown]> = [
    [
      { id: 1, command: 'list' },
      { id: 1, ok: true, result: { exports: { op: 'list' }, supervisor: { workerPid: 7 } } },
    ],
    [
      { id: 2, command: 'show-mask' },
      { id: 2, ok: true, result: { op: 'show-mask' } },
    ],
    [
      { id: 3, command: 'clear-reserve', export: 'e1.1' },
      { id: 3, ok: true, result: { op: 'clear-reserve', key: 'e1.1' } },
    ],
    [
      { id: 4, command: 'clear-mask' },
      { id: 4, ok: false, error: 'clear-mask needs an export, e.g. {"command": "clear-mask", "export": "e1.1"}' },
    ],
    [
      { id: 5, command: 'reload', export: 'e1.1' },
      { id: 5, ok: false, error: 'reload takes no export' },
    ],
    [
      { id: 6, command: 'frobnicate' },
      { id: 6, ok: false, error: `unknown command "frobnicate"; commands: ${COMMANDS.map((c) => c.name).join(', ')}` },
    ],
    [{ id: 7 }, { id: 7, ok: false, error: 'the request has no "command"; send {"command": "list"}' }],
    [
      { id: 8, command: 'show-reserve', export: 'e9.9' },
      { id: 8, ok: false, error: 'no export e9.9' },
    ],
    [
      { id: 9, command: 'add-mask', export: 'e1.1', macs: ['52:54:00:00:00:01'] },
      { id: 9, ok: true, result: { op: 'add-mask', key: 'e1.1', macs: ['52:54:00:00:00:01'] } },
    ],
    [
      { id: 10, command: 'set-reserve', export: 'e1.1' },
      {
        id: 10,
        ok: false,
        error:
          'set-reserve needs MAC addresses, e.g. {"command": "set-reserve", "export": "e1.1", "macs": ["52:54:00:12:34:56"]}',
      },
    ],
    [
      { id: 11, command: 'clear-mask', export: 'e1.1', macs: ['52:54:00:00:00:01'] },
      { id: 11, ok: false, error: 'clear-mask takes no MAC addresses' },
    ],
  ];
  for (const [req, want] of rows) t.same(await dispatch(fakeTarget, req), want, JSON.stringify(req));
  t.same(
    COMMANDS.map((c) => c.name),
    [
      'list',
      'stats',
      'show-mask',
      'clear-mask',
      'set-mask',
      'add-mask',
      'del-mask',
      'show-reserve',
      'clear-reserve',
      'set-reserve',
      'show-state',
      'restore-state',
      'reset-state',
      'reload',
      'config-files',
      'add',
      'remove',
      'takeover',
      'resize',
      'views',
      'view-reset',
      'view-drop',
      'snapshot',
      'snapshots',
      'snapshot-delete',
      'revert',
    ],
  );
});

t.test('the socket: mode 0660, line-delimited JSON, several requests per connection, stale file replaced', async (t) => {
  const dir = tmp(t);
  const sock = path.join(dir, 'run', 'x.sock');
  fs.mkdirSync(path.dirname(sock));
  fs.writeFileSync(sock, ''); // a stale leftover
  const server = await ControlServer.listen(fakeTarget, { socketPath: sock, log: silent, group: String(process.getgid!()) });
  t.teardown(() => server.close());
  t.equal(fs.statSync(sock).mode & 0o777, 0o660);
  t.equal(fs.statSync(sock).gid, process.getgid!());
  t.same(await controlRequest(sock, { command: 'reload' }), {
    id: 1,
    ok: true,
    result: { added: ['e1.3'], removed: [], changed: [] },
  });
  // Two requests in one write, then garbage: three replies in order.
  const replies = await new Promise<string[]>((resolve) => {
    const c = net.connect(sock);
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.split('\n').length > 3) {
        c.end();
        resolve(buf.trim().split('\n'));
      }
    });
    c.write('{"id":"a","command":"stats"}\n{"id":"b","command":"show-mask","export":"e1.1"}\nnot json\n');
  });
  t.same(
    replies.map((r) => JSON.parse(r) as unknown),
    [
      { id: 'a', ok: true, result: { stats: { op: 'stats' }, supervisor: { workerPid: 7 } } },
      { id: 'b', ok: true, result: { op: 'show-mask', key: 'e1.1' } },
      { ok: false, error: 'the request is not JSON; send one JSON object per line' },
    ],
  );
  await t.rejects(ControlServer.listen(fakeTarget, { socketPath: sock, log: silent }), {
    message: `another process answers on the control socket ${sock}; stop it or set control-socket to another path`,
  });
  await t.rejects(
    ControlServer.listen(fakeTarget, { socketPath: path.join(dir, 'y.sock'), log: silent, group: 'no-such-group-xyz' }),
    {
      message: 'control-group "no-such-group-xyz" does not exist; create it (groupadd no-such-group-xyz) or set another group',
    },
  );
  await server.close();
  t.notOk(fs.existsSync(sock), 'socket removed on close');
  await t.rejects(controlRequest(sock, { command: 'list' }), {
    message: `cannot connect to ${sock}: no such socket; is vbladed running, and with this name?`,
  });
});

t.test('groupId reads /etc/group', async (t) => {
  const dir = tmp(t);
  const f = path.join(dir, 'group');
  fs.writeFileSync(f, 'root:x:0:\nvblade:x:998:alice\n');
  t.equal(groupId('vblade', f), 998);
  t.equal(groupId('root', f), 0);
  t.equal(groupId('42', f), 42);
  t.equal(groupId('nobody-here', f), undefined);
});

t.test('ctl: socket choice, arguments, output', async (t) => {
  const dir = tmp(t);
  t.same(await resolveSocket({ runDir: dir }), {
    stale: [],
    error: `no control socket in ${dir}; is vbladed running? (or give --socket FILE)`,
  });
  const a = await ControlServer.listen(listTarget, { socketPath: path.join(dir, 'a.sock'), log: silent });
  t.teardown(() => a.close());
  t.same(await resolveSocket({ runDir: dir }), { socket: path.join(dir, 'a.sock'), stale: [] });
  const b = await ControlServer.listen(listTarget, { socketPath: path.join(dir, 'b.sock'), log: silent });
  t.teardown(() => b.close());
  t.same(await resolveSocket({ runDir: dir }), {
    stale: [],
    error: 'several vbladed instances run (a, b); choose one with --name NAME',
  });
  t.same(await resolveSocket({ runDir: dir, name: 'b' }), { socket: path.join(dir, 'b.sock'), stale: [] });
  t.same(await resolveSocket({ runDir: dir, socket: '/x.sock' }), { socket: '/x.sock', stale: [] });

  t.same(parseCtlArgs(['--name', 'vblade', 'clear-mask', 'e1.1']), {
    command: 'clear-mask',
    runDir: '/run/vblade',
    json: false,
    name: 'vblade',
    export: 'e1.1',
  });
  t.same(parseCtlArgs(['show-reserve']), { command: 'show-reserve', runDir: '/run/vblade', json: false });
  t.throws(() => parseCtlArgs(['clear-mask']), {
    message:
      'clear-mask needs an export address such as e1.1 (usage: vblade ctl clear-mask EXPORT; e.g. vblade ctl clear-mask e1.1)',
  });
  t.throws(() => parseCtlArgs(['bogus']), { message: /^unknown command bogus; commands are list, stats, / });

  const e = exportConfig({ file: '/srv/a.img', interfaces: ['eth1', 'eth2'], readOnly: true, sync: true });
  t.equal(
    formatResult('list', {
      exports: [{ key: 'e1.1', config: e, state: { config: 'host=a', macMask: ['52:54:00:00:00:01'], reserve: [] } }],
      supervisor: { workerPid: 9, restarts: 2, ready: true },
    }),
    'worker 9 serving, 2 restarts\ne1.1\teth1,eth2\tro,sync\t/srv/a.img\n\tmask: 52:54:00:00:00:01\n\treserve: (none)\n\tconfig: "host=a"',
  );
  t.match(
    formatResult('list', {
      exports: [{ key: 'e1.2', config: { ...e, broadcastEdits: true }, state: { config: '', macMask: [], reserve: [] } }],
    }),
    /^e1\.2\teth1,eth2\tro,sync,broadcast-edits\t/,
    'an export that takes broadcast edits says so',
  );
  t.match(
    formatResult('list', {
      exports: [
        {
          key: 'e1.2',
          config: { ...e, readOnly: false, detectZeroes: 'unmap' },
          state: { config: '', macMask: [], reserve: [] },
        },
      ],
    }),
    /^e1\.2\teth1,eth2\trw,sync,detect-zeroes=unmap\t/,
    'an export that punches zero writes says so',
  );
  t.match(
    formatResult('list', {
      exports: [
        {
          key: 'e1.3',
          config: { ...e, readOnly: false, sync: false, views: 'per-initiator', viewsDir: '/srv/aoe/views' },
          state: { config: '', macMask: [], reserve: [] },
        },
      ],
    }),
    /^e1\.3\teth1,eth2\tviews\t\/srv\/a\.img\n\timage read-only, views = per-initiator \(a copy-on-write view per machine\) in \/srv\/aoe\/views\/e1\.1\n/,
    'an export with views: not "rw", and where its views are',
  );
  t.equal(
    formatResult('list', {
      exports: [
        {
          key: 'e1.1',
          config: e,
          state: { config: '', macMask: [], reserve: [] },
          paths: [
            { interface: 'eth1', state: 'serving' },
            { interface: 'eth2', state: 'waiting for the interface' },
          ],
        },
      ],
    }),
    'e1.1\teth1,eth2\tro,sync\t/srv/a.img\n\tinterfaces: eth1 serving, eth2 waiting for the interface\n' +
      '\tmask: (empty: everyone)\n\treserve: (none)\n\tconfig: ""',
  );
  t.equal(
    formatResult('show-mask', { 'e1.1': [], 'e1.2': ['52:54:00:00:00:01'] }),
    'e1.1\t(empty: every initiator is allowed)\ne1.2\t52:54:00:00:00:01',
  );
  t.equal(
    formatResult('reload', {
      added: ['e1.3'],
      removed: ['e1.2'],
      changed: [],
      resized: ['e1.1'],
      needsRestart: [],
      warnings: [],
    }),
    'reloaded; added: e1.3; removed: e1.2; changed: -; resized: e1.1',
  );
  t.equal(
    formatResult('reload', {
      added: [],
      removed: [],
      changed: [],
      resized: [],
      needsRestart: ['spin-us'],
      warnings: ['the worker is not serving right now; the new configuration takes effect when it starts again'],
    }),
    'reloaded; added: -; removed: -; changed: -; resized: -\nneeds a restart: spin-us\n' +
      'warning: the worker is not serving right now; the new configuration takes effect when it starts again',
  );
  t.equal(formatResult('clear-mask', { key: 'e1.1' }), 'e1.1: mask list cleared and saved');
});

const STATS = {
  exports: [
    {
      key: 'e1.1',
      file: '/srv/a"b.img',
      sectors: 2048,
      interfaces: ['eth1'],
      paths: [{ interface: 'eth1', state: 'no carrier' }],
      readOnly: false,
      inflight: 3,
      stateDurable: false,
      failedSaves: 2,
      lastSaveError: 'ENOSPC: no space left on device',
      config: '',
      macMask: [],
      reserve: [],
      counters: { reads: 10, writes: 4, read_bytes: 5120, io_errors: 1 },
      latencyUsLog2: [0, 2, 1, 0, 1],
      latencySumUs: 37.5,
    },
  ],
  interfaces: [
    {
      name: 'eth1',
      open: true,
      state: 'no carrier',
      up: false,
      mtu: 9000,
      sectorsPerFrame: 17,
      counters: { rx_frames: 20, tx_drops: 2, rx_stalls: 5 },
    },
  ],
};

t.test('Prometheus rendering', async (t) => {
  const text = renderMetrics(STATS, { ready: true, restarts: 2, workerUptimeMs: 1500 });
  const want = [
    '# HELP vblade_up 1 when the worker is serving',
    '# TYPE vblade_up gauge',
    'vblade_up 1',
    '# HELP vblade_worker_restarts_total times the worker was restarted',
    '# TYPE vblade_worker_restarts_total counter',
    'vblade_worker_restarts_total 2',
    '# HELP vblade_worker_uptime_seconds seconds since the worker started',
    '# TYPE vblade_worker_uptime_seconds gauge',
    'vblade_worker_uptime_seconds 1.5',
    '# HELP vblade_export_reads_total ATA read commands answered',
    '# TYPE vblade_export_reads_total counter',
    'vblade_export_reads_total{export="e1.1"} 10',
  ];
  t.same(text.split('\n').slice(0, want.length), want);
  t.match(text, /^vblade_export_io_errors_total\{export="e1\.1"\} 1$/m);
  t.match(text, /^vblade_export_inflight\{export="e1\.1"\} 3$/m);
  t.match(text, /^vblade_export_read_only\{export="e1\.1"\} 0$/m);
  t.match(text, /^vblade_export_state_save_failures_total\{export="e1\.1"\} 2$/m);
  t.match(text, /^vblade_export_state_unsaved\{export="e1\.1"\} 1$/m);
  t.match(text, /^vblade_export_held\{export="e1\.1"\} 0$/m);
  t.match(text, /^# TYPE vblade_export_latency_seconds histogram$/m);
  t.match(text, /^vblade_export_latency_seconds_bucket\{export="e1\.1",le="0\.000001"\} 0$/m);
  t.match(text, /^vblade_export_latency_seconds_bucket\{export="e1\.1",le="0\.000002"\} 2$/m);
  t.match(text, /^vblade_export_latency_seconds_bucket\{export="e1\.1",le="0\.000008"\} 3$/m);
  t.match(text, /^vblade_export_latency_seconds_bucket\{export="e1\.1",le="\+Inf"\} 4$/m);
  t.match(text, /^vblade_export_latency_seconds_count\{export="e1\.1"\} 4$/m);
  t.match(text, /^vblade_export_latency_seconds_sum\{export="e1\.1"\} 0\.0000375$/m);
  t.match(text, /^vblade_interface_rx_frames_total\{interface="eth1"\} 20$/m);
  t.match(text, /^vblade_interface_up\{interface="eth1"\} 0$/m);
  t.match(text, /^vblade_interface_sectors_per_frame\{interface="eth1"\} 17$/m);
  t.ok(text.endsWith('\n'));
  // Every sample line is well formed.
  for (const line of text.trim().split('\n')) {
    if (!line.startsWith('#')) t.match(line, /^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+|\+Inf$/, line);
  }
  t.equal(
    renderMetrics(undefined, { ready: false }),
    '# HELP vblade_up 1 when the worker is serving\n# TYPE vblade_up gauge\nvblade_up 0\n',
  );
});

function get(url: string, method = 'GET'): Promise<{ status: number; type?: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .request(url, { method }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
      })
      .on('error', reject)
      .end();
  });
}

t.test('metrics listener', async (t) => {
  let up = true;
  const m = await MetricsServer.listen(
    {
      stats: async () => (up ? STATS : Promise.reject(new Error('the worker is not serving right now'))),
      supervisor: () => ({ ready: up, restarts: 0 }),
    },
    { host: '127.0.0.1', port: 0 },
    silent,
  );
  t.teardown(() => m.close());
  const base = `http://127.0.0.1:${m.address.port}`;
  const ok = await get(`${base}/metrics`);
  t.equal(ok.status, 200);
  t.equal(ok.type, 'text/plain; version=0.0.4; charset=utf-8');
  t.match(ok.body, /^vblade_export_reads_total\{export="e1\.1"\} 10$/m);
  t.equal((await get(`${base}/other`)).status, 404);
  t.equal((await get(`${base}/metrics`, 'POST')).status, 405);
  up = false;
  await new Promise((r) => setTimeout(r, METRICS_LIMITS.pageCacheMs + 20)); // the page is served again for this long
  const down = await get(`${base}/metrics`);
  t.equal(down.status, 200);
  t.match(down.body, /^vblade_up 0$/m);
});

t.test('WorkerCore: state saved through the hooks comes back after a restart; clear-mask uses clearList', async (t) => {
  const dir = tmp(t);
  const e = exportConfig({
    shelf: 2,
    slot: 3,
    interfaces: ['lo'],
    macMask: ['52:54:00:00:00:01'],
    nullStore: true,
    nullSectors: 8,
  });
  const seen: Array<ExportState | undefined> = [];
  const cleared: string[] = [];
  const fake: StartServer = async (config, _log, hooks) => {
    for (const x of config.exports) {
      const saved = hooks.initialState!(`e${x.shelf}.${x.slot}`);
      seen.push(saved.status === 'ok' ? saved.state : undefined);
    }
    let current: ExportState = { config: 'owner=host-a', macMask: ['52:54:00:00:00:01'], reserve: ['52:54:00:00:00:02'] };
    const server: ServerLike = {
      apply: async () => undefined,
      stop: async () => undefined,
      stats: () => ({ exports: [] }),
      changeState: async (key, change) => {
        const next = { ...change(current), config: 'c' };
        cleared.push(`${key}:${next.macMask.length}`);
        await hooks.saveState!(key, next);
        current = next;
        return next;
      },
    };
    // An initiator sets the config string.
    await hooks.saveState!('e2.3', current);
    return server;
  };
  const config = { exports: [e], stateDir: path.join(dir, 'state') };
  const a = new WorkerCore(fake, silent);
  await a.start(config);
  t.same(await a.request('show-mask', '2.3'), { 'e2.3': ['52:54:00:00:00:01'] });
  await a.stop();
  const b = new WorkerCore(fake, silent);
  await b.start(config);
  t.same(
    seen,
    [undefined, { config: 'owner=host-a', macMask: ['52:54:00:00:00:01'], reserve: ['52:54:00:00:00:02'] }],
    'restored at the next start',
  );
  t.same(await b.request('clear-mask', 'e2.3'), { key: 'e2.3', cleared: 'mask' });
  t.same(cleared, ['e2.3:0']);
  t.same(await b.request('show-mask'), { 'e2.3': [] });
  await t.rejects(b.request('clear-mask'), { message: 'this command needs an export, e.g. e1.1' });
  await b.stop();
  t.equal((JSON.parse(fs.readFileSync(path.join(dir, 'state', 'e2.3.json'), 'utf8')) as { config?: string }).config, 'c');
});

t.test('resize through the worker and a real serving core: what `vblade ctl resize` prints', async (t) => {
  const fakeNet = new FakeNetwork();
  fakeNet.addInterface('fake0');
  const file = await patternFile(t, 2048);
  const start: StartServer = (config, log, hooks) =>
    Server.start(config, log, hooks, { addon: fakeNet.addon, sizeCheckMs: 0, duplicateProbeMs: 0 });
  const core = new WorkerCore(start, silent);
  await core.start({ exports: [exportConfig({ shelf: 1, slot: 2, file, interfaces: ['fake0'] })] });
  t.teardown(() => core.stop());
  fs.truncateSync(file, 8 * 1024 * 1024);
  t.equal(
    formatResult('resize', await core.request('resize', '1.2')),
    `e1.2: 2048 sectors (1 MiB) -> 16384 sectors (8 MiB) (${file}); announced`,
  );
  t.equal(
    formatResult('resize', await core.request('resize', 'e1.2')),
    'e1.2: unchanged at 16384 sectors (8 MiB): the backing store has not changed size',
  );
  fs.truncateSync(file, 4 * 1024 * 1024);
  await t.rejects(core.request('resize', 'e1.2'), {
    message: new RegExp(
      `^e1\\.2: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is now 8192 sectors \\(4 MiB\\) after the offset, smaller than the exported 16384 sectors \\(8 MiB\\); the export keeps its size`,
    ),
  });
  await t.rejects(core.request('resize', 'e9.9'), { message: 'no export e9.9; "vblade ctl list" shows the exports' });
});

t.test('the worker answers each command of the table under its own name, and no other name', async (t) => {
  const asked: string[] = [];
  const recorder: ControlTarget = {
    request: async (op: WorkerOp) => {
      asked.push(op);
      // stats with an export picks that export out of the worker's answer.
      return op === 'stats' ? { exports: [{ key: 'e1.1', interfaces: [] }], interfaces: [] } : [];
    },
    reload: async () => ({}),
  };
  for (const def of COMMANDS) {
    // The supervisor's own, not the worker's.
    if (def.name === 'reload' || def.name === 'config-files' || def.local) continue;
    asked.length = 0;
    await runCommand(def, recorder, 'e1.1', ['52:54:00:12:34:56'], {});
    t.same(asked, [def.name], `${def.name} asks the worker for ${def.name}`);
  }
  // Each command hands the worker what it takes, and nothing else.
  const handed: Record<string, { macs?: string[]; extra?: object }> = {};
  const argsRecorder: ControlTarget = {
    request: async (op: WorkerOp, _key?: string, macs?: string[], extra?: object) => {
      handed[op] = { macs, extra };
      return op === 'stats' ? { exports: [{ key: 'e1.1', interfaces: [] }], interfaces: [] } : [];
    },
    reload: async () => ({}),
  };
  for (const def of COMMANDS) {
    if (def.local) {
      // vblade ctl runs them itself; the daemon has nothing to run.
      await t.rejects(runCommand(def, argsRecorder, 'e1.1', undefined, { words: ['eth1', '/a.img'] }), {
        message: `${def.name} has no handler`,
      });
      continue;
    }
    if (def.name === 'config-files') {
      // A daemon without a config file (vblade arguments, a Debian fragment) has no fragments to keep exports in.
      await t.rejects(runCommand(def, argsRecorder), {
        message: `add and remove need a daemon started with --config FILE: its exports are kept in the config's fragments`,
      });
      continue;
    }
    await runCommand(def, argsRecorder, 'e1.1', ['52:54:00:12:34:56'], { words: ['w'] });
  }
  t.same(handed['set-mask'], { macs: ['52:54:00:12:34:56'], extra: undefined }, 'set-mask: its MACs');
  t.same(handed['show-mask'], { macs: undefined, extra: undefined }, 'show-mask: the export alone');
  t.same(handed['snapshot'], { macs: undefined, extra: { words: ['w'] } }, 'snapshot: its name and options');
  t.same(handed['view-drop'], { macs: undefined, extra: { words: ['w'] } }, 'view-drop: its MACs as words');
  const stub: ServerLike = { apply: async () => undefined, stop: async () => undefined, stats: () => ({}) };
  const core = new WorkerCore(async () => stub, silent);
  await core.start({ exports: [] });
  t.teardown(() => core.stop());
  await t.rejects(core.request('no-such-op' as WorkerOp, 'e1.1'), { message: 'unknown request no-such-op' });
  await t.rejects(core.request('toString' as WorkerOp), { message: 'unknown request toString' }, 'not an inherited name either');
});

/** Runs `vblade ctl ARGS` in this process (it only talks to unix sockets), collecting what it prints. */
async function ctl(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCtl(args, { out: (x) => (out += x), err: (x) => (err += x) });
  return { code, out, err };
}

/** A control socket left behind by a process that was killed, as a crashed vbladed leaves it. */
function staleSocket(p: string): void {
  const code = `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', code]);
  if (!fs.existsSync(p)) throw new Error(`no stale socket at ${p}`);
}

t.test('ctl without --name: a stale socket of a dead instance is named, not counted', async (t) => {
  const dir = tmp(t);
  const dead = path.join(dir, 'dead.sock');
  staleSocket(dead);
  const note = `vblade ctl: ignored ${dead}: nobody listens on it (left by a vbladed that died); remove it with rm ${dead}\n`;
  const server = await ControlServer.listen(listTarget, { socketPath: path.join(dir, 'live.sock'), log: silent });
  t.teardown(() => server.close());

  t.same(
    await ctl('--run-dir', dir, 'list'),
    { code: 0, out: 'worker 7 serving, 0 restarts\n', err: note },
    'the live one answers',
  );

  await server.close();
  t.same(
    await ctl('--run-dir', dir, 'list'),
    { code: 1, out: '', err: note + `vblade ctl: no vbladed answers in ${dir}; is it running? (or give --socket FILE)\n` },
    'only the stale one: nothing runs',
  );
});

t.test('ctl with no command lists the commands', async (t) => {
  const r = await ctl();
  t.equal(r.code, 0, 'the list asked for, not a mistake (the README says "vblade ctl" lists the commands)');
  t.equal(r.err, '');
  t.match(r.out, /^usage: vblade ctl /);
  // A long synopsis (add's) puts its summary on the next line, in the summary column.
  for (const c of COMMANDS) {
    // A long synopsis (add's) has its summary on the next line.
    const summary = c.summary.replace(/[()[\]]/g, '\\$&');
    t.match(r.out, new RegExp(`^  ${c.name}\\b[^\\n]*(?:\\n)? +${summary}$`, 'm'), `lists ${c.name}`);
  }
});

t.test('ctl reads its words as written, where yargs would guess', async (t) => {
  // An export, a snapshot name: text, never numbers ("1.10" is not 1.1, "1.50" not "1.5").
  t.equal(parseCtlArgs(['views', '1.10']).export, '1.10');
  t.same(parseCtlArgs(['snapshot-delete', 'e1.1', '1.50']).extra, { words: ['1.50'] });
  // An option given twice: the last one counts, as a string.
  t.equal(parseCtlArgs(['--socket', '/a.sock', '--socket', '/b.sock', 'list']).socket, '/b.sock');
  t.same(parseCtlArgs(['snapshot', 'e1.1', '--view', 'x', '--view', 'y']).extra, { view: 'y' });
  // No argument is dropped or turned into true without a word.
  const dash = /^"-{1,2}" means nothing to vblade ctl \(no export, MAC or name begins with "-"\); remove it$/;
  t.throws(() => parseCtlArgs(['views', '-']), dash);
  t.throws(() => parseCtlArgs(['snapshot-delete', 'e1.1', '--', 'monday']), dash);
  t.throws(() => parseCtlArgs(['views', 'e1.1', '--export', 'e1.2']), /^unknown option --export; vblade ctl takes /);
  t.throws(() => parseCtlArgs(['snapshot', 'e1.1', '--words=x']), /^unknown option --words; /);
  // add needs INTERFACES and FILE; one word is too few (yargs counts one).
  t.throws(
    () => parseCtlArgs(['add', 'e1.3', 'eth1']),
    /^add needs INTERFACES FILE after the export \(usage: vblade ctl add EXPORT INTERFACES FILE/,
  );
  t.throws(() => parseCtlArgs(['view-drop', 'e1.1', ...Array.from({ length: 4097 }, () => '02:00:00:00:00:01')]), {
    message: /^view-drop takes no more arguments; remove "02:00:00:00:00:01" \(usage/,
  });
});

t.test('ctl stats: a readable table; --json keeps the JSON', async (t) => {
  const dir = tmp(t);
  const sock = path.join(dir, 'x.sock');
  const supervisor = { workerPid: 9, restarts: 2, ready: true };
  const server = await ControlServer.listen(
    { ...listTarget, request: async () => STATS, status: () => supervisor },
    { socketPath: sock, log: silent },
  );
  t.teardown(() => server.close());

  const r = await ctl('--socket', sock, 'stats');
  t.equal(r.code, 0, r.err);
  const rows = r.out
    .trimEnd()
    .split('\n')
    .map((l) => l.trimEnd().split(/ {2,}/));
  t.same(rows, [
    ['worker 9 serving, 2 restarts'],
    ['export', 'reads', 'writes', 'read', 'written', 'errors', 'drops', 'in flight', 'p99 latency'],
    ['e1.1', '10', '4', '5.0 KiB', '0 B', '1 (io 1)', '0', '3', '< 16 µs'],
    ['interface', 'state', 'mtu', 'rx frames', 'tx frames', 'sent', 'drops', 'stalls'],
    ['eth1', 'down', '9000', '20', '0', '0 B', '2 (tx 2)', '5'],
  ]);

  const j = await ctl('--socket', sock, '--json', 'stats');
  t.same(JSON.parse(j.out), { stats: STATS, supervisor }, '--json prints the result as JSON');
});

t.test('stats table cells: bytes and latency bounds', async (t) => {
  t.same([0, 1023, 1024, 5 * 2 ** 30].map(humanBytes), ['0 B', '1023 B', '1.0 KiB', '5.0 GiB']);
  t.equal(latencyBound([], 0.99), '-', 'no requests yet');
  const hist = new Array<number>(24).fill(0);
  hist[10] = 99;
  hist[21] = 1;
  t.equal(latencyBound(hist, 0.99), '< 1.0 ms', '99 of 100 under 1024 µs');
  t.equal(latencyBound(hist, 1), '< 2.1 s', 'the slowest under 2^21 µs');
});

/** A control socket in a directory everyone may reach (others may not write to it), with its log records kept. */
async function openSocket(
  t: { teardown(fn: () => void | Promise<void>): void },
  target: ControlTarget,
  group?: string,
): Promise<{ sock: string; logs: Array<Record<string, unknown>> }> {
  const dir = tmp(t);
  fs.chmodSync(dir, 0o755);
  const sock = path.join(dir, 'run', 'x.sock');
  fs.mkdirSync(path.dirname(sock), { mode: 0o755 });
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => logs.push(JSON.parse(s) as Record<string, unknown>) });
  const server = await ControlServer.listen(target, { socketPath: sock, log, group });
  t.teardown(() => server.close());
  return { sock, logs };
}

const notRoot = process.getuid?.() !== 0 ? 'needs root to connect as nobody' : false;

t.test('commands that change data or state are logged with the uid and pid of who asked', { skip: notRoot }, async (t) => {
  const { sock, logs } = await openSocket(t, fakeTarget, 'nogroup');
  // Not spawnSync: the server answers on this process's event loop.
  const asNobody = (req: object): Promise<{ pid: number; out: string }> =>
    new Promise((resolve) => {
      const script = `const s=require('net').connect(process.argv[1]);s.on('data',d=>{process.stdout.write(d);s.end()});s.write(process.argv[2]+'\\n')`;
      // From /, without tap's NODE_OPTIONS: a checkout in a private directory is closed to nobody.
      const child = spawn('env', asNobodyArgs(process.execPath, '-e', script, sock, JSON.stringify(req)), {
        stdio: ['ignore', 'pipe', 'inherit'],
        cwd: '/',
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => resolve({ pid: child.pid!, out }));
    });
  const set = await asNobody({ command: 'set-reserve', export: 'e1.1', macs: ['52:54:00:00:00:01'] });
  t.match(set.out, /"ok":true/, 'a member of the control group may connect');
  await asNobody({ command: 'show-mask', export: 'e1.1' });
  const audit = logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('control socket: '));
  t.same(
    audit.map((l) => [l.level, l.msg, l.peerUid, l.peerPid]),
    [[30, `control socket: set-reserve e1.1 52:54:00:00:00:01, asked by uid 65534 (pid ${set.pid})`, 65534, set.pid]],
    'the change is logged with who asked; show-mask changes nothing and is not',
  );
  await controlRequest(sock, { command: 'view-reset', export: 'e1.1', all: true });
  t.match(logs.at(-1)?.msg, `control socket: view-reset e1.1 --all, asked by uid 0 (pid ${process.pid})`);
  t.same(
    COMMANDS.filter((c) => c.changes).map((c) => c.name),
    [
      'clear-mask',
      'set-mask',
      'add-mask',
      'del-mask',
      'clear-reserve',
      'set-reserve',
      'restore-state',
      'reset-state',
      'reload',
      'add',
      'remove',
      'takeover',
      'resize',
      'view-reset',
      'view-drop',
      'snapshot',
      'snapshot-delete',
      'revert',
    ],
    'every command that changes something is marked',
  );
});

/** Connects and resolves once connected. */
function connect(sock: string, opts: net.NetConnectOpts | object = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ path: sock, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

/** The next reply line on a connection, and whether the server then closed it. */
function nextLine(c: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        c.off('data', onData);
        resolve(buf.slice(0, nl));
      }
    };
    c.on('data', onData);
  });
}

t.test('the control socket caps connections (an idle one makes room), and ends one whose request line is too long', async (t) => {
  const { sock } = await openSocket(t, fakeTarget);
  const open: net.Socket[] = [];
  t.teardown(() => open.forEach((c) => c.destroy()));
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const c = await connect(sock);
    open.push(c);
    c.write('{"command":"show-mask"}\n');
    t.match(await nextLine(c), /"ok":true/);
  }
  // A ninth: the connection idle longest is closed for it, so that idle holders cannot lock anyone out.
  const firstClosed = new Promise<void>((r) => open[0].once('close', () => r()));
  const extra = await connect(sock);
  open.push(extra);
  extra.write('{"command":"show-mask"}\n');
  t.match(await nextLine(extra), /"ok":true/, 'a ninth connection is served');
  await firstClosed;
  t.pass('the connection idle longest was closed for it');

  // A client that never ends its line, and never closes: the server ends the connection, it does not keep reading.
  for (const c of open) c.destroy();
  await new Promise((r) => setTimeout(r, 100));
  const hog = await connect(sock, { allowHalfOpen: true });
  const closed = new Promise<boolean>((resolve) => {
    hog.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 5000);
  });
  hog.on('error', () => undefined);
  const reply = nextLine(hog);
  const chunk = 'x'.repeat(16 * 1024);
  const timer = setInterval(() => {
    if (!hog.destroyed) hog.write(chunk);
  }, 5);
  t.teardown(() => clearInterval(timer));
  t.same(JSON.parse(await reply), { ok: false, error: 'request line longer than 65536 bytes; connection closed' });
  t.ok(await closed, 'the connection is closed although the client keeps writing');
  clearInterval(timer);
});

t.test('pipelined requests beyond the in-flight cap wait unread and are all answered, in order', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let calls = 0;
  const slow: ControlTarget = {
    ...fakeTarget,
    request: async (op, key) => {
      calls++;
      await gate;
      return { op, key };
    },
  };
  const { sock } = await openSocket(t, slow);
  const c = await connect(sock);
  t.teardown(() => c.destroy());
  const n = MAX_IN_FLIGHT * 10;
  let buf = '';
  const all = new Promise<string[]>((resolve) =>
    c.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n').filter(Boolean);
      if (lines.length === n) resolve(lines);
    }),
  );
  c.write(
    Array.from({ length: n }, (_, i) => JSON.stringify({ id: i, command: 'show-mask', export: `e1.${i}` })).join('\n') + '\n',
  );
  await new Promise((r) => setTimeout(r, 200));
  t.equal(calls, 1, 'one request at a time reaches the target');
  release();
  const replies = (await all).map((l) => JSON.parse(l) as { id: number; result: { key: string } });
  t.same(
    replies.map((r) => r.id),
    Array.from({ length: n }, (_, i) => i),
  );
  t.equal(replies[n - 1].result.key, `e1.${n - 1}`);
});
