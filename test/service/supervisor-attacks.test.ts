// Attacks on vbladed's supervisor by a hostile worker (what an attacker who
// took over the unprivileged worker can do): bytes on the IPC channel that
// are not a message at all must not stop the supervisor, which is there to
// restart a worker that misbehaves.

// First: the whole file runs in a network namespace of its own.
import '../helpers/private-netns';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';

const ROOT = path.join(__dirname, '..', '..', '..');
const VBLADED = path.join(ROOT, 'bin', 'vbladed.js');

// Writes a line that is not JSON straight onto its IPC channel once asked to start, then idles.
const HOSTILE = `process.on('message', (m) => {
  if (m.type !== 'start') return;
  require('fs').writeSync(process.channel.fd, 'this is not a message\\n');
});
process.on('SIGTERM', () => process.exit(0));
setInterval(() => process.connected && process.send({ type: 'heartbeat' }), 1000);
`;

t.test('a worker that writes garbage on its IPC channel does not stop the supervisor', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vbladed-ipc-'));
  const worker = path.join(dir, 'hostile-worker.js');
  fs.writeFileSync(worker, HOSTILE);
  const conf = path.join(dir, 'h.conf');
  fs.writeFileSync(conf, `[export e5.3]\nnull-store = yes\nnull-sectors = 2048\ninterfaces = vt-a\n`);
  const child = spawn(
    process.execPath,
    [
      VBLADED,
      '--foreground',
      '--config',
      conf,
      '--run-dir',
      path.join(dir, 'run'),
      '--state-dir',
      'none',
      '--log',
      'stderr',
      '--worker',
      worker,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await new Promise((r) => setTimeout(r, 4000));
  const stops = stderr
    .split('\n')
    .filter((l) => /supervisor error|stopping/.test(l))
    .map((l) => (JSON.parse(l) as { msg: string }).msg);
  t.same(stops, [], 'the supervisor logged no error of its own and did not stop');
  t.equal(child.exitCode, null, 'vbladed is still running 4 s later');
  t.match(
    stderr,
    /"msg":"worker [0-9]+ wrote bytes that are not a message on its IPC channel; killing it"/,
    'the worker is killed, saying why',
  );
  t.match(stderr, /"msg":"worker [0-9]+ was killed by SIGKILL[^"]*restarting/, 'and restarted, as after a crash');
});
