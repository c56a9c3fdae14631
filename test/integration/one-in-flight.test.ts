// One request in flight (a network boot: iPXE and a booting kernel read a
// sector or two at a time), against a tmpfs export.
//
// - The system calls each request costs the target, counted with strace:
//   one wait and one plain send (a single reply needs no sendmmsg).
// - The target and its initiator on one CPU (a host whose cores are
//   shared): the initiator runs inside the target's send of each reply, so
//   its next request is already waiting when the target looks again. That
//   is no reason to busy-poll: a poll that finds nothing at once can only
//   find work when the scheduler takes the CPU from it, and each such poll
//   burns its whole window of the initiator's CPU. The adaptive policy must
//   see that and stop polling.

import t from 'tap';
import pino from 'pino';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Server } from '../../src/target/server';
import { exportConfig } from '../helpers/export-config';
import { patternFile } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { waitLinkUp } from '../helpers/targets';
import { LOADGEN, type LoadgenReport } from '../../bench/generators';
import { skipOrFail, type TestLike } from '../../lab/common';
import { describeRun, requireCommands, run } from '../../lab/process';
import { startTarget } from '../helpers/targets';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const SECTORS = 16 * 2048; // 16 MiB

/** Pins every thread of this process to `cpus` (taskset's list syntax); returns the list it had. */
function pinSelf(cpus: string): string {
  const before = execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' });
  execFileSync('taskset', ['-a', '-c', '-p', cpus, String(process.pid)], { stdio: 'ignore' });
  return before.slice(before.lastIndexOf(':') + 1).trim();
}

/** One-in-flight 2-sector reads for `seconds` from the initiator's end; the generator's JSON line. */
async function bootReads(init: { name: string }, ifname: string, seconds: number, prefix: string[] = []): Promise<LoadgenReport> {
  const args = ['--if', ifname, '--shelf', '1', '--slot', '1', '--op', 'read', '--pattern', 'seq', '--sectors', '2'];
  args.push('--window', '1', '--seconds', String(seconds), '--warmup', '0', '--verify', 'pattern');
  const cmd = [...prefix, LOADGEN, ...args];
  const r = await run(cmd[0], cmd.slice(1), { netns: init.name, timeoutMs: 30000 });
  if (r.code !== 0) throw new Error(describeRun(r));
  return JSON.parse(r.stdout.trim()) as LoadgenReport;
}

/** A directory on tmpfs (the exports a network boot is served from: the target maps them), removed in teardown. */
function shmDir(t: TestLike): string {
  const dir = mkdtempSync('/dev/shm/aoet-one-in-flight-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Calls per system call name from `strace -c -o FILE`. */
function straceCounts(file: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    // % time, seconds, usecs/call, calls, [errors], syscall
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m && m[2] !== 'total') counts.set(m[2], Number(m[1]));
  }
  return counts;
}

if (requireRoot(t) && requireCommands(t, ['strace', 'taskset'])) {
  t.test('one request in flight costs the target at most one wait and one plain send', async (t) => {
    if (!existsSync(LOADGEN)) {
      skipOrFail(t, `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``);
      return;
    }
    const pair = await createNetnsPair(t, { mtu: 9000 });
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const dir = shmDir(t);
    const file = await patternFile(t, SECTORS, { dir });
    const trace = join(dir, 'strace.txt');
    const st = await startTarget(t, pair.target, ['1', '1', pair.targetIf, file], {
      prefix: ['strace', '-f', '-qq', '-c', '-o', trace],
      label: 'strace vblade',
    });
    const load = await bootReads(pair.init, pair.initIf, 2);
    t.equal(load.errors, 0, 'every read answered with the pattern');
    t.ok(load.ops > 500, `${load.ops} requests`);
    process.kill(st.pid, 'SIGTERM'); // the target itself (strace's child); strace follows it out and writes its counts
    const exit = await st.proc.waitExit(15000);
    t.same(exit, { code: 0, signal: null }, 'the target under strace ends on SIGTERM');
    const calls = straceCounts(trace);
    const get = (name: string): number => calls.get(name) ?? 0;
    const perRequest = (n: number): string => (n / load.ops).toFixed(2);
    const sends = get('sendto');
    const batches = get('sendmmsg');
    const waits = get('epoll_wait') + get('epoll_pwait') + get('epoll_pwait2');
    t.comment(`per request: sendto ${perRequest(sends)}, sendmmsg ${perRequest(batches)}, epoll_wait ${perRequest(waits)}`);
    // Every reply but a handful (Query Config, IDENTIFY) went out alone, through send().
    t.ok(sends >= load.ops && sends <= load.ops + 20, `one send per request: ${sends} for ${load.ops}`);
    t.ok(batches < 10, `no sendmmsg for single replies: ${batches}`);
    // The wait per request, plus the event loop's own at start and at its turns.
    t.ok(waits <= 1.1 * load.ops + 200, `at most about one wait per request: ${waits} for ${load.ops}`);
  });

  t.test('one in flight on a CPU shared with the initiator: the target stops polling', async (t) => {
    if (!existsSync(LOADGEN)) {
      skipOrFail(t, `${LOADGEN} is missing: build it with \`npx node-gyp rebuild\``);
      return;
    }
    const pair = await createNetnsPair(t, { mtu: 9000 });
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const file = await patternFile(t, SECTORS);
    // The target (this process, all its threads) and the generator on CPU 0.
    const cpus = pinSelf('0');
    t.teardown(() => void pinSelf(cpus));
    const server = await Server.start(
      { exports: [exportConfig({ file, interfaces: [pair.targetIf] })] },
      pino({ level: 'silent' }),
      {},
      { netns: pair.target.path, duplicateProbeMs: 0, announceSeconds: 0 },
    );
    t.teardown(() => server.stop());

    const before = server.stats().frameLoop;
    t.equal(before.spinPolicy, 'adaptive', 'the default policy');
    t.ok(before.spinMicros > 0, 'polling is on by default');
    const r = await run(
      'taskset',
      ['-c', '0', LOADGEN, '--if', pair.initIf, '--shelf', '1', '--slot', '1', '--op', 'read', '--pattern', 'seq'].concat([
        '--sectors',
        '2',
        '--window',
        '1',
        '--seconds',
        '2',
        '--warmup',
        '0.2',
        '--verify',
        'pattern',
      ]),
      { netns: pair.init.name, timeoutMs: 20000 },
    );
    t.equal(r.code, 0, r.code === 0 ? 'aoe-loadgen ran' : describeRun(r));
    const load = JSON.parse(r.stdout.trim()) as LoadgenReport;
    t.equal(load.errors, 0, 'every read answered with the pattern');
    t.ok(load.ops > 2000, `the load ran: ${load.ops} requests, p50 ${load.p50_us} µs`);

    const after = server.stats().frameLoop;
    const polls = after.spins - before.spins;
    const requests = load.ops;
    // Counting requests already waiting as polls that paid kept it polling here: about 3 polls in 4 requests,
    // one in six of them missing, 20 µs of CPU each. Now a few samples of 64 polls find it out.
    t.ok(after.backoffs - before.backoffs >= 1, `polling paused ${after.backoffs - before.backoffs} times`);
    t.ok(polls < requests / 20, `${polls} polls for ${requests} requests`);
  });
}
