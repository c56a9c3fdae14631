// Attacks on the control socket by a member of its control group (here
// nobody, with the group nogroup): the connection cap must not let one such
// member lock everyone else out, root included, and replies a member never
// reads must not pile up in the daemon (the root supervisor).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { ControlServer, MAX_CONNECTIONS, type ControlTarget } from '../../src/service/control';
import { controlRequest } from '../../src/cli/control-client';
import type { WorkerOp } from '../../src/service/worker';
import { asNobodyArgs } from '../helpers/targets';

const target: ControlTarget = {
  request: async (op: WorkerOp, key?: string) => ({ op, key }),
  reload: async () => ({ added: [], removed: [], changed: [] }),
  status: () => ({ workerPid: 7, restarts: 0, ready: true }),
};

const notRoot = process.getuid?.() !== 0 ? 'needs root to connect as nobody' : false;

t.test('a control-group member holding every connection open and idle does not lock root out', { skip: notRoot }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctl-hog-'));
  fs.chmodSync(dir, 0o755);
  const sock = path.join(dir, 'run', 'x.sock');
  fs.mkdirSync(path.dirname(sock), { mode: 0o755 });
  const logs: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => logs.push(s) });
  const server = await ControlServer.listen(target, { socketPath: sock, log, group: 'nogroup' });

  // nobody opens as many connections as the socket keeps, says nothing, and holds them.
  const script = `const net = require('net'); let n = 0;
      for (let i = 0; i < Number(process.argv[2]); i++)
        net.connect(process.argv[1]).on('connect', () => { if (++n === Number(process.argv[2])) console.log('held'); }).on('error', () => {});
      setTimeout(() => process.exit(0), 30000);`;
  // From /, without tap's NODE_OPTIONS: a checkout in a private directory is closed to nobody.
  const hog = spawn('env', asNobodyArgs(process.execPath, '-e', script, sock, String(MAX_CONNECTIONS)), {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: '/',
  });
  t.teardown(async () => {
    hog.kill('SIGKILL');
    // Refused connections are destroyed a second later by an unref'd timer: keep the loop alive meanwhile.
    await Promise.all([server.close(), new Promise((r) => setTimeout(r, 1500))]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await new Promise((r) => hog.stdout.once('data', r));

  // The administrator keeps trying for 15 s.
  let last = '';
  const end = Date.now() + 15000;
  for (;;) {
    const reply = await controlRequest(sock, { command: 'show-mask', export: 'e1.1' }, 5000).catch((e: Error) => ({
      ok: false,
      error: e.message,
    }));
    if (reply.ok) break;
    last = JSON.stringify(reply);
    if (Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.equal(
    last === '' ? 'answered' : last,
    'answered',
    "root's request is answered within 15 s while nobody holds idle connections",
  );
  t.match(
    logs.join(''),
    /uid 65534/,
    'the log names who held the connections (the uid the refused administrator should look for)',
  );
});

t.test(
  'a control-group member who pipelines requests and never reads the replies does not make the daemon buffer them',
  { skip: notRoot },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctl-unread-'));
    fs.chmodSync(dir, 0o755);
    const sock = path.join(dir, 'run', 'x.sock');
    fs.mkdirSync(path.dirname(sock), { mode: 0o755 });
    // Replies the size of a list of 200 exports.
    const exportsList = Array.from({ length: 200 }, (_, i) => ({ key: `e1.${i}`, config: 'x'.repeat(200) }));
    const listing: ControlTarget = { ...target, request: async () => exportsList };
    const server = await ControlServer.listen(listing, { socketPath: sock, log: pino({ level: 'silent' }), group: 'nogroup' });
    const script = `const s = require('net').connect(process.argv[1]);
      s.on('connect', () => { s.pause(); for (let i = 0; i < 20; i++) s.write('{"command":"show-mask","export":"e1.1"}\\n'.repeat(1000)); });
      s.on('error', () => {});
      setTimeout(() => process.exit(0), 30000);`;
    const hog = spawn('env', asNobodyArgs(process.execPath, '-e', script, sock), { stdio: 'ignore', cwd: '/' });
    t.teardown(async () => {
      hog.kill('SIGKILL');
      await Promise.all([server.close(), new Promise((r) => setTimeout(r, 1500))]);
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const before = process.memoryUsage().rss;
    await new Promise((r) => setTimeout(r, 5000));
    const grown = Math.round((process.memoryUsage().rss - before) / 1048576);
    t.ok(
      grown < 64,
      `the daemon grew by ${grown} MiB for 20,000 requests whose replies were never read (at most 64 MiB expected)`,
    );
  },
);
