// Self-test of scripts/run-tests.js: its closing line counts what really
// happened (leaf test points, failures without a failing point, skips and
// TODOs), a skip fails in CI, and the exit code follows.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir } from '../helpers/files';
import { run, RunResult } from '../../lab/process';

const root = resolve(__dirname, '..', '..', '..');
const runner = join(root, 'scripts', 'run-tests.js');
const tapPath = require.resolve('tap');

const FIXTURES: Record<string, string> = {
  'mixed.test.js': `
    t.test('group', async (t) => {
      t.pass('p1');
      t.test('inner', async (t) => { t.ok(true, 'deep'); t.pass('skipme', { skip: 'no root' }); });
    });
    t.test('bad', async (t) => { t.equal(1, 2, 'mismatch'); });
    t.test('throws', async (t) => { t.pass('before'); throw new Error('boom'); });
    t.todo('later');
    t.test('hang', { timeout: 500 }, (t) => {
      t.pass('x');
      const never = setTimeout(() => {}, 100000);
      t.teardown(() => clearTimeout(never));
    });
  `,
  'exits.test.js': `t.pass('one'); setTimeout(() => process.exit(3), 50);`,
  'planzero.test.js': `t.plan(0, 'not root');`,
  'clean.test.js': `t.pass('a # SKIP lookalike is no skip'); t.test('sub', async (t) => t.pass('two'));`,
};

function cleanEnv(ci: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // The outer tap's settings must not leak into the inner run.
    if (k === 'TAP' || k.startsWith('TAP_') || k.startsWith('_TAPJS_') || k === 'NODE_OPTIONS' || k === 'CI') continue;
    env[k] = v;
  }
  if (ci) env.CI = 'true';
  env.AOET_TEST_TIMEOUT = '120';
  env.AOET_TEST_JOBS = '4'; // the fixture files are independent
  return env;
}

function lastLine(r: RunResult): string {
  const lines = r.stdout.trimEnd().split('\n');
  return lines[lines.length - 1];
}

t.test('run-tests.js counts and exits correctly', async (t) => {
  const dir = tempDir(t, 'runner');
  for (const [name, body] of Object.entries(FIXTURES)) {
    writeFileSync(join(dir, name), `const t = require(${JSON.stringify(tapPath)});\n${body}\n`);
  }
  const f = (n: string) => join(dir, n);
  // run() adds `env` to this process's environment; `env -i` starts the
  // runner with the cleaned environment alone.
  const go = (ci: boolean, files: string[]) =>
    run(
      'env',
      ['-i', ...Object.entries(cleanEnv(ci)).map(([k, v]) => `${k}=${v}`), process.execPath, runner, '--no-build', ...files],
      {
        cwd: root,
        timeoutMs: 300000,
      },
    );

  await t.test('a mixed run outside CI', async (t) => {
    const r = await go(
      false,
      ['mixed', 'exits', 'planzero', 'clean'].map((n) => f(`${n}.test.js`)),
    );
    // mixed: p1, deep, before, x pass; mismatch, boom, the timeout of
    // 'hang' fail; skipme, later skipped. exits: one passes, the exit code 3
    // fails. planzero: skipped. clean: both pass.
    t.equal(lastLine(r), '7 passed, 4 failed, 3 skipped', 'closing line');
    t.equal(r.code, 1, 'exit code 1');
    t.match(r.stdout, /FAILED:[\s\S]*mixed\.test\.js > bad > mismatch/, 'names a failed assertion');
    t.match(r.stdout, /exits\.test\.js \(failed after its own test points passed/, 'names the file that exited non-zero');
    t.match(r.stdout, /skipped:[\s\S]*skipme # SKIP no root/, 'lists skips with the reason');
  });

  await t.test('in CI a skip is a failure', async (t) => {
    const r = await go(true, [f('planzero.test.js'), f('clean.test.js')]);
    t.equal(lastLine(r), '2 passed, 1 failed, 0 skipped', 'closing line');
    t.equal(r.code, 1, 'exit code 1');
    t.match(r.stdout, /SKIPPED \(counted as failures in CI[\s\S]*planzero\.test\.js # SKIP not root/, 'says which and why');
  });

  await t.test('all passing', async (t) => {
    const r = await go(true, [f('clean.test.js')]);
    t.equal(lastLine(r), '2 passed, 0 failed, 0 skipped', 'closing line');
    t.equal(r.code, 0, 'exit code 0');
  });

  await t.test('a selection that matches nothing', async (t) => {
    const r = await go(false, ['aoet-no-such-test-file']);
    t.equal(lastLine(r), '0 passed, 1 failed, 0 skipped', 'closing line');
    t.equal(r.code, 1, 'exit code 1');
    t.match(r.stderr, /no test file matches "aoet-no-such-test-file"/, 'says why');
  });
});
