#!/usr/bin/env node
// What `npm run lint` runs, and the checks `npm test` runs for the whole
// suite (scripts/run-tests.js requires this file). Plain JavaScript so that
// it starts without a build; the tools need none either.
//
//   npm run lint              every check; each runs even when one before it fails
//   node scripts/lint.js deps only the named checks (eslint, format, deps, structure, tracker)
//
// The exit code is non-zero when any check failed. docs/development.md says
// what each tool is for.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

// Every directory with code of ours; the tools' own ignore files keep out
// dist/, build/ and node_modules/. A check is a tool of node_modules/.bin
// (bin) or a script of ours run with this Node (script).
const CHECKS = [
  { name: 'eslint', what: 'ESLint (typescript-eslint, type-aware)', bin: 'eslint', args: ['--max-warnings=0', '.'] },
  { name: 'format', what: 'Prettier --check', bin: 'prettier', args: ['--check', '.'] },
  {
    name: 'deps',
    what: 'dependency-cruiser (the layers of src/, and test/, bench/ and lab/ around it)',
    bin: 'depcruise',
    args: ['--config', '.dependency-cruiser.cjs', 'src', 'test', 'bench', 'lab', 'bin', 'scripts'],
  },
  {
    name: 'structure',
    what: 'scripts/check-structure.js (class and folder sizes of src/, its rooms)',
    script: 'scripts/check-structure.js',
    args: [],
  },
  {
    name: 'tracker',
    what: 'scripts/check-tracker-refs.js (no text naming a tracker entry)',
    script: 'scripts/check-tracker-refs.js',
    args: [],
  },
];

/**
 * Runs one check with its output on this process's stdout/stderr. Returns
 * { ok, seconds, detail }; detail says why it failed.
 */
function runCheck(check) {
  let cmd = process.execPath;
  let args = [path.join(root, check.script ?? ''), ...check.args];
  if (check.bin) {
    cmd = path.join(root, 'node_modules', '.bin', check.bin);
    args = check.args;
    if (!fs.existsSync(cmd)) {
      return { ok: false, seconds: 0, detail: `node_modules/.bin/${check.bin} not found; run \`npm ci\` first` };
    }
  }
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', timeout: 600_000 });
  const seconds = (Date.now() - t0) / 1000;
  if (r.error) return { ok: false, seconds, detail: r.error.message };
  if (r.status !== 0) return { ok: false, seconds, detail: r.signal ? `killed by ${r.signal}` : `exit code ${r.status}` };
  return { ok: true, seconds, detail: '' };
}

function main(argv) {
  const wanted = argv.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !CHECKS.some((c) => c.name === w));
  if (unknown.length > 0) {
    console.error(`lint: unknown check ${unknown.join(', ')}; the checks are ${CHECKS.map((c) => c.name).join(', ')}`);
    return 2;
  }
  const checks = wanted.length > 0 ? CHECKS.filter((c) => wanted.includes(c.name)) : CHECKS;
  const failed = [];
  for (const check of checks) {
    console.log(`lint: ${check.name}: ${check.what}`);
    const r = runCheck(check);
    console.log(`lint: ${check.name}: ${r.ok ? 'passed' : `FAILED (${r.detail})`} in ${r.seconds.toFixed(1)} s`);
    if (!r.ok) failed.push(check.name);
  }
  if (failed.length > 0) {
    console.log(`lint: FAILED: ${failed.join(', ')} (${failed.length} of ${checks.length})`);
    return 1;
  }
  console.log(`lint: all ${checks.length} passed`);
  return 0;
}

module.exports = { CHECKS, runCheck };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
