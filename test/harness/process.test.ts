// Self-tests of lab/process.ts and the skip-or-fail rule.

import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI, ownPrefix, pidAlive, processStartTime, skipOrFail, TestLike, uniqueId } from '../../lab/common';
import { Proc, requireCommands, run, runOk, spawnProcess, which } from '../../lab/process';

/** A stand-in for a tap Test that records what the helpers report. */
function recorder(): TestLike & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    teardown: () => undefined,
    pass: (m: string, extra?: { skip?: string | boolean }) => {
      calls.push(extra?.skip ? `skip:${m}` : `pass:${m}`);
      return true;
    },
    fail: (m: string) => {
      calls.push(`fail:${m}`);
      return false;
    },
    comment: () => undefined,
  };
}

function withCI<T>(value: string | undefined, fn: () => T): T {
  const old = process.env.CI;
  if (value === undefined) delete process.env.CI;
  else process.env.CI = value;
  try {
    return fn();
  } finally {
    if (old === undefined) delete process.env.CI;
    else process.env.CI = old;
  }
}

t.test('waitFor sees stdout and stderr lines, in order, expect-style', async (t) => {
  const p = spawnProcess(t, 'sh', ['-c', 'echo "a 1"; echo "a 2"; echo oops >&2; echo ready; exec sleep 30']);
  t.ok(p.pid > 0, 'has a pid');
  const m1 = await p.waitFor(/^a (\d)$/);
  const m2 = await p.waitFor(/^a (\d)$/);
  t.equal(m1[1], '1', 'first match');
  t.equal(m2[1], '2', 'the next wait starts after the previous match');
  await p.waitFor(/oops/, { stream: 'stderr' });
  await p.waitFor(/ready/, { stream: 'stdout' });
  t.ok(p.running, 'still running');
  t.match(p.stdout(), /a 1\na 2\nready/, 'stdout collected');
  t.equal(p.stderr(), 'oops', 'stderr collected');
  const st = await p.stop();
  t.equal(st.signal, 'SIGTERM', 'stop() ends it with SIGTERM');
  t.notOk(p.running, 'not running after stop');
  t.notOk(pidAlive(p.pid), 'pid gone');
  t.same(await p.stop(), st, 'stop() is idempotent');
});

t.test('onLine sees every line as it comes, and logFile keeps the raw output', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aoet-proc-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'serial.log');
  writeFileSync(log, '# header written before the start\n');
  const seen: string[] = [];
  const p = spawnProcess(t, 'sh', ['-c', 'echo one; echo two >&2; printf "no newline"'], {
    logFile: log,
    onLine: (text, stream) => seen.push(`${stream}:${text}`),
  });
  await p.exited;
  t.same(
    seen.sort(),
    ['stderr:two', 'stdout:no newline', 'stdout:one'],
    'each line once, with its stream, the unterminated last one too',
  );
  const text = readFileSync(log, 'utf8');
  t.ok(text.startsWith('# header written before the start\n'), 'the log is appended to, not replaced');
  for (const part of ['one\n', 'two\n', 'no newline']) t.ok(text.includes(part), `the log holds ${JSON.stringify(part)}`);
});

t.test('stop() escalates to SIGKILL when SIGTERM is ignored', async (t) => {
  const p = spawnProcess(t, 'sh', ['-c', 'trap "" TERM; echo up; exec sleep 30']);
  await p.waitFor(/up/);
  const t0 = Date.now();
  const st = await p.stop(300);
  t.equal(st.signal, 'SIGKILL', 'killed');
  t.ok(Date.now() - t0 >= 250, 'after the grace period');
});

t.test('processGroup: stop() reaches the children of the child', async (t) => {
  const p = spawnProcess(t, 'sh', ['-c', 'sleep 30 & echo "child $!"; wait'], { processGroup: true });
  const m = await p.waitFor(/^child (\d+)$/);
  const grandchild = Number(m[1]);
  t.ok(pidAlive(grandchild), 'grandchild runs');
  await p.stop();
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(pidAlive(grandchild), 'grandchild stopped with the group');
});

t.test('waitFor rejects with the output tail on timeout and on exit', async (t) => {
  const slow = spawnProcess(t, 'sh', ['-c', 'echo hello; exec sleep 30']);
  await t.rejects(slow.waitFor(/never/, { timeoutMs: 300 }), /timed out after 300 ms[\s\S]*hello/, 'timeout names the output');
  const quick = spawnProcess(t, 'sh', ['-c', 'echo bye; exit 3']);
  await t.rejects(
    quick.waitFor(/never/, { timeoutMs: 5000 }),
    /exited \(code 3\)[\s\S]*bye/,
    'exit before the line rejects at once',
  );
  t.same(await quick.waitExit(), { code: 3, signal: null }, 'exit status');
  await t.rejects(quick.waitFor(/never/), /had exited \(code 3\)/, 'waiting after the exit rejects too');
});

t.test('a command that does not exist fails cleanly', async (t) => {
  const p = spawnProcess(t, '/nonexistent/aoet-no-such-command', []);
  const st = await p.waitExit();
  t.equal(st.code, 127, 'exit 127');
  t.match(p.stderr(), /spawn error/, 'error recorded as output');
  const r = await run('/nonexistent/aoet-no-such-command', []);
  t.equal(r.code, 127, 'run() reports 127 too');
});

t.test('run and runOk', async (t) => {
  const r = await run('sh', ['-c', 'echo out; echo err >&2; exit 4']);
  t.equal(r.code, 4, 'exit code');
  t.equal(r.stdout, 'out\n', 'stdout');
  t.equal(r.stderr, 'err\n', 'stderr');
  await t.rejects(runOk('sh', ['-c', 'echo why >&2; exit 2']), /code 2[\s\S]*stderr: why/, 'runOk rejects with stderr');
  const ok = await runOk('cat', [], { input: 'piped' });
  t.equal(ok.stdout, 'piped', 'input goes to stdin');
  const slow = await run('sleep', ['10'], { timeoutMs: 200 });
  t.ok(slow.timedOut, 'timed out');
  t.equal(slow.signal, 'SIGKILL', 'killed on timeout');
});

t.test('which', async (t) => {
  t.match(which('sh'), /\/sh$/, 'finds sh');
  t.equal(which('aoet-no-such-command'), undefined, 'missing command');
  t.ok(which('ip'), 'ip (iproute2) is installed');
});

t.test('skip-or-fail: a skip outside CI, a failure in CI', async (t) => {
  const outside = recorder();
  withCI(undefined, () => skipOrFail(outside, 'why'));
  t.same(outside.calls, ['skip:why'], 'outside CI: a skipped point');
  const ci = recorder();
  withCI('true', () => skipOrFail(ci, 'why'));
  t.same(ci.calls, ['fail:prerequisite missing in CI: why'], 'in CI: a failure');
  t.ok(withCI('true', inCI) && withCI('1', inCI), 'CI=true and CI=1 mean CI');
  t.notOk(withCI('false', inCI) || withCI('', inCI) || withCI('0', inCI), 'CI=false, empty or 0 do not');
  const missing = recorder();
  t.equal(
    withCI(undefined, () => requireCommands(missing, ['sh', 'aoet-no-such-command'])),
    false,
    'requireCommands false',
  );
  t.match(missing.calls[0], /skip:missing command\(s\): aoet-no-such-command/, 'names the missing one');
  t.equal(requireCommands(recorder(), ['sh']), true, 'true when present');
});

t.test('unique names carry the pid', async (t) => {
  const a = uniqueId();
  const b = uniqueId();
  t.not(a, b, 'unique');
  t.ok(a.length <= 13, 'short enough for a 2-character role suffix in an interface name');
  t.ok(
    a.startsWith(ownPrefix()) && ownPrefix() === `aoet${process.pid.toString(36)}-`,
    'prefix: aoet, the pid in base 36, a dash',
  );
  t.match(processStartTime(process.pid), /^\d+$/, 'start time of this process');
  t.equal(processStartTime(process.pid), processStartTime(process.pid), 'stable');
});

t.test('the exit safety net kills what a test left running', async (t) => {
  // A separate Node process spawns `sleep` through the helpers, then exits
  // without any teardown (as a crashed test would).
  const helpers = require.resolve('../../lab/process');
  const script = `
    const { Proc } = require(${JSON.stringify(helpers)});
    const p = new Proc('sleep', ['60']);
    setTimeout(() => { console.log('pid ' + p.pid); process.exit(0); }, 200);
  `;
  const r = await runOk(process.execPath, ['-e', script]);
  const m = /pid (\d+)/.exec(r.stdout);
  t.ok(m, 'child reported the pid');
  const pid = Number(m![1]);
  await new Promise((res) => setTimeout(res, 100));
  t.notOk(pidAlive(pid), `sleep ${pid} was killed when its parent exited`);
  // And on SIGTERM.
  const proc = new Proc(process.execPath, [
    '-e',
    `const { Proc } = require(${JSON.stringify(helpers)}); const p = new Proc('sleep', ['60']); console.log('pid ' + p.pid); setInterval(() => {}, 1000);`,
  ]);
  t.teardown(() => proc.stop());
  const pm = await proc.waitFor(/pid (\d+)/);
  const pid2 = Number(pm[1]);
  t.ok(pidAlive(pid2), 'grandchild running');
  const st = await proc.stop();
  t.equal(st.signal, 'SIGTERM', 'the helper process still ends by SIGTERM');
  await new Promise((res) => setTimeout(res, 100));
  t.notOk(pidAlive(pid2), 'and killed what it had started');
});
