// Attacks on the metrics listener that the connection cap and timeouts do not
// cover: requests pipelined on a connection whose client never reads.

// First: the whole file runs in a network namespace of its own.
import '../helpers/private-netns';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import t from 'tap';
import { METRICS_LIMITS } from '../../src/service/metrics';

const METRICS = path.join(__dirname, '..', '..', 'src', 'service', 'metrics.js');
const PINO = require.resolve('pino');

/** Peak resident memory of `pid`, in KiB. */
function peakKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

t.test('requests pipelined by clients that never read do not make the listener buffer their answers', async (t) => {
  // The listener as vbladed runs it, in a process of its own, serving the page of 64 exports.
  const script = `const { MetricsServer } = require(${JSON.stringify(METRICS)});
    const pino = require(${JSON.stringify(PINO)});
    const exports = Array.from({ length: 64 }, (_, i) => ({ key: 'e1.' + i, counters: { reads: 1, writes: 2 }, sectors: 2048 }));
    MetricsServer.listen({ stats: async () => ({ exports }), supervisor: () => ({ ready: true }) },
      { host: '127.0.0.1', port: 0 }, pino({ level: 'silent' })).then((m) => console.log(m.address.port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const sockets: net.Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (c: Buffer) => resolve(Number(c.toString()))));
  await new Promise((r) => setTimeout(r, 300));
  const before = peakKiB(child.pid!);
  // As many connections as the cap keeps, each sending 256 KiB of GETs and reading nothing back.
  const burst = Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(Math.floor((256 * 1024) / 36)));
  for (let i = 0; i < METRICS_LIMITS.maxConnections; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    sockets.push(s);
    await new Promise((r) => s.once('connect', r));
    s.pause();
    s.write(burst);
  }
  await new Promise((r) => setTimeout(r, 3000));
  const grown = Math.round((peakKiB(child.pid!) - before) / 1024);
  t.ok(
    grown < 32,
    `the listener grew by ${grown} MiB for ${METRICS_LIMITS.maxConnections} connections that sent ${burst.length} bytes each (at most 32 MiB expected)`,
  );
});
