#!/usr/bin/env node
// What `npm test` runs. Plain JavaScript so that it starts without a build.
//
//   npm test                          build, then every test file
//   npm test -- dist/test/aoe         only the files under a directory (or one file)
//   npm test -- test/aoe/frame.test.ts    a source path works too
//   npm test -- frame 'aoe/*.test.js' files whose path contains the text or matches the glob
//   npm test -- --no-build ...        skip the tsc step
//   npm test -- --no-lint             skip the lint checks (they run for the whole suite only)
//   npm test -- --lint test/aoe       run them with a selection too
//   npm test -- --no-coverage ...     do not record line coverage of src/
//   other arguments starting with '-' are passed to tap (e.g. --grep=IDENTIFY)
//
// Environment: AOET_TEST_TIMEOUT (seconds per test file, default 900: the
// QEMU interop files boot guests under TCG), AOET_TEST_JOBS (test files run
// at once, default 1: the machine has two cores and the QEMU files need both),
// CI (when set, a skipped test point counts as a failure).
//
// After the build, a run of the whole suite runs the checks of
// scripts/lint.js (ESLint, Prettier --check, dependency-cruiser, the class
// and folder sizes of src/, no tracker references), each a test point of its
// own in the closing counts. A run of selected files skips them:
// it is for iterating on a few tests, and the checks take longer than most
// test files; CI and a plain `npm test` run everything.
//
// Every run records the line coverage of src/ (scripts/coverage.js) and
// prints it in one line; for the whole suite it is a test point too, failed
// when the coverage is below the floor kept in scripts/coverage.js. A run
// started by a test of this runner (NODE_V8_COVERAGE already set) leaves the
// recording to the outer run.
//
// The last line printed is always `N passed, N failed, N skipped`, and the
// exit code is non-zero when anything failed.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
process.chdir(root);

const inCI = (() => {
  const v = process.env.CI;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
})();

function summaryLine(passed, failed, skipped) {
  return `${passed} passed, ${failed} failed, ${skipped} skipped`;
}

// The lint checks' points, added to whatever the tests count.
const lint = { passed: 0, failed: 0, failures: [] };

function finish(passed, failed, skipped, code) {
  if (lint.failures.length > 0) {
    // An early stop (no test ran) has not listed the lint failures yet.
    console.log('\nFAILED:');
    for (const f of lint.failures) console.log(`  - ${f}`);
  }
  passed += lint.passed;
  failed += lint.failed;
  process.stdout.write(`\n${summaryLine(passed, failed, skipped)}\n`);
  process.exitCode = failed > 0 ? 1 : code;
}

// ---------------------------------------------------------------- arguments

const selectors = [];
const tapArgs = [];
let build = true;
let lintWanted = null; // null: only for the whole suite
let coverageWanted = !process.env.NODE_V8_COVERAGE;
for (const a of process.argv.slice(2)) {
  if (a === '--') continue;
  if (a === '--no-build') build = false;
  else if (a === '--no-coverage') coverageWanted = false;
  else if (a === '--lint') lintWanted = true;
  else if (a === '--no-lint') lintWanted = false;
  else if (a.startsWith('-')) tapArgs.push(a);
  else selectors.push(a);
}

// -------------------------------------------------------------------- build

if (build) {
  const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
  if (!fs.existsSync(tsc)) {
    console.error('run-tests: node_modules/.bin/tsc not found; run `npm ci` (or `bash scripts/setup.sh`) first');
    finish(0, 1, 0, 1);
    return;
  }
  console.log('run-tests: compiling (tsc -p .)');
  const t0 = Date.now();
  const r = spawnSync(tsc, ['-p', '.'], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`run-tests: the build FAILED (tsc exit ${r.status ?? r.signal}); the type errors are above. No test ran.`);
    finish(0, 1, 0, 1);
    return;
  }
  console.log(`run-tests: compiled in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

// --------------------------------------------------------------------- lint

if (lintWanted ?? selectors.length === 0) {
  const { CHECKS, runCheck } = require('./lint.js');
  for (const check of CHECKS) {
    console.log(`run-tests: lint ${check.name}: ${check.what}`);
    const r = runCheck(check);
    console.log(`run-tests: lint ${check.name}: ${r.ok ? 'passed' : `FAILED (${r.detail})`} in ${r.seconds.toFixed(1)} s`);
    if (r.ok) lint.passed++;
    else {
      lint.failed++;
      lint.failures.push(`lint: ${check.name} (${check.what}): ${r.detail}; its findings are printed above`);
    }
  }
} else {
  console.log('run-tests: lint checks skipped (a selection runs them only with --lint)');
}

// ---------------------------------------------------------- file selection

function walk(dir, out) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile() && e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// dist/ keeps the output of test files whose source was deleted or renamed;
// only files with a source beside them in test/ run.
function hasSource(distFile) {
  const rel = path.relative(path.join('dist', 'test'), distFile);
  return fs.existsSync(path.join('test', rel.replace(/\.js$/, '.ts')));
}

const allCompiled = walk(path.join('dist', 'test'), []).sort();
const orphans = allCompiled.filter((f) => !hasSource(f));
const all = allCompiled.filter(hasSource);
if (orphans.length > 0)
  console.log(`run-tests: ignoring ${orphans.length} compiled test file(s) without a source: ${orphans.join(' ')}`);

function globToRegExp(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`(^|/)${re}$`);
}

function select(sel) {
  let s = sel.replace(/^\.\//, '').replace(/\/+$/, '');
  // A source path names its compiled file.
  if (s === 'test' || s.startsWith('test/')) s = path.join('dist', s);
  if (s.endsWith('.ts')) s = s.replace(/\.ts$/, '.js');
  if (fs.existsSync(s)) {
    const st = fs.statSync(s);
    if (st.isDirectory()) {
      const prefix = path.normalize(s) + path.sep;
      return all.filter((f) => f.startsWith(prefix));
    }
    return [path.normalize(s)];
  }
  if (/[*?]/.test(sel)) {
    const re = globToRegExp(sel);
    return all.filter((f) => re.test(f));
  }
  return all.filter((f) => f.includes(sel));
}

let files;
if (selectors.length === 0) {
  files = all;
} else {
  const chosen = new Set();
  for (const sel of selectors) {
    const m = select(sel);
    if (m.length === 0) {
      console.error(`run-tests: no test file matches "${sel}"`);
      finish(0, 1, 0, 1);
      return;
    }
    for (const f of m) chosen.add(f);
  }
  files = [...chosen].sort();
}

if (files.length === 0) {
  console.error('run-tests: no test files found under dist/test (is the build empty?)');
  finish(0, 1, 0, 1);
  return;
}

// ------------------------------------------------------------ TAP counting
//
// tap's `--reporter=tap` output is the whole run as one TAP 14 stream: one
// subtest per file, nested subtests indented by 4 spaces, and after each
// subtest a test point in its parent that sums it up. Counting every point at
// every depth would count each group as well as its contents (a file with 10
// assertions would count 11 or more), so this counts LEAF points: points
// whose subtest has no points of its own, i.e. the assertions and the empty
// or skipped tests. A summing-up point is counted only when it failed while
// none of the points inside it failed — that is how a file that crashed or
// exited non-zero after passing assertions, or a subtest that failed for its
// own reason, shows up — so that no failure is lost and none counted twice.
// Points with a SKIP directive count as skipped, TODO ones too (both are
// holes in the suite), and a `Bail out!` counts as a failure.

const counts = { passed: 0, failed: 0, skipped: 0 };
const failures = [];
const skips = [];

const names = []; // names[d] = name of the open subtest whose header is at depth d
let seenPoints = 0; // all points, at any depth
let countedFailures = 0;
const marks = []; // marks[d] = {points, failures} after the last point at depth <= d
let yamlEnd = null; // while inside a YAML block, the line that ends it
let lastPointIndent = -1;

function markAt(depth) {
  for (let d = Math.min(depth, marks.length - 1); d >= 0; d--) if (marks[d]) return marks[d];
  return { points: 0, failures: 0 };
}

function parseLine(line) {
  if (yamlEnd !== null) {
    if (line === yamlEnd) yamlEnd = null;
    return;
  }
  const indentMatch = /^( *)/.exec(line);
  const indent = indentMatch[1].length;
  const body = line.slice(indent);
  if (body === '---' && lastPointIndent >= 0 && indent === lastPointIndent + 2) {
    yamlEnd = ' '.repeat(indent) + '...';
    return;
  }
  const sub = /^# Subtest: (.*)$/.exec(body);
  if (sub) {
    const depth = Math.floor(indent / 4);
    names.length = depth;
    names[depth] = sub[1];
    lastPointIndent = -1;
    return;
  }
  if (/^Bail out!/.test(body)) {
    counts.failed++;
    countedFailures++;
    failures.push(`${names.join(' > ')}: ${body}`);
    return;
  }
  const pt = /^(not ok|ok)\b(?:\s+\d+)?(?:\s+-)?\s*(.*)$/.exec(body);
  if (!pt) return;
  lastPointIndent = indent;
  const depth = Math.floor(indent / 4);
  const ok = pt[1] === 'ok';
  let desc = pt[2];
  let directive = null;
  let reason = '';
  // A directive is an unescaped '#' (tap writes a '#' inside a name as '\#',
  // so requiring whitespace or the start before it excludes those).
  const dm = /(?:^|\s)#\s*(skip|todo)\S*(?:\s+(.*))?$/i.exec(desc);
  if (dm) {
    directive = dm[1].toLowerCase();
    reason = (dm[2] || '').trim();
    desc = desc.slice(0, dm.index).trim();
  }
  desc = desc.replace(/\s+#\s*time=\S+$/, '').trim();
  const where = [...names.slice(0, depth), desc].filter(Boolean).join(' > ');

  const m = markAt(depth);
  const innerPoints = seenPoints - m.points;
  const innerFailures = countedFailures - m.failures;
  seenPoints++;
  if (innerPoints === 0) {
    if (directive) {
      counts.skipped++;
      skips.push(`${where} # ${directive.toUpperCase()}${reason ? ' ' + reason : ''}`);
    } else if (ok) {
      counts.passed++;
    } else {
      counts.failed++;
      countedFailures++;
      failures.push(where);
    }
  } else if (!ok && !directive && innerFailures === 0) {
    counts.failed++;
    countedFailures++;
    failures.push(`${where} (failed after its own test points passed: crash, non-zero exit or timeout)`);
  }
  marks.length = depth;
  marks[depth] = { points: seenPoints, failures: countedFailures };
  names.length = Math.min(names.length, depth);
}

// ---------------------------------------------------------------- coverage

/**
 * Reports the coverage the run recorded and removes the recording. Returns
 * true (the floor is met), a failure's text, or null when the floor does not
 * apply (a selection covers only part of src/).
 */
function checkCoverage(floorApplies) {
  const t0 = Date.now();
  let r;
  try {
    r = coverage.reportCoverage(coverageDir);
  } catch (e) {
    r = { error: e.message };
  } finally {
    fs.rmSync(coverageDir, { recursive: true, force: true });
  }
  const v = coverage.coverageVerdict(r, floorApplies);
  console.log(`run-tests: ${v.line} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return v.point;
}

// --------------------------------------------------------------------- run

const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
if (!fs.existsSync(tapBin)) {
  console.error('run-tests: node_modules/.bin/tap not found; run `npm ci` (or `bash scripts/setup.sh`) first');
  finish(0, 1, 0, 1);
  return;
}
const timeout = Number(process.env.AOET_TEST_TIMEOUT || 900);
const jobs = Number(process.env.AOET_TEST_JOBS || 1);
const args = [
  '--reporter=tap',
  `--timeout=${timeout}`,
  `--jobs=${jobs}`,
  '--disable-coverage',
  '--allow-empty-coverage',
  ...tapArgs,
  ...files,
];
console.log(
  `run-tests: ${files.length} test file(s), ${jobs} at a time, ${timeout} s each at most${inCI ? ', CI mode (a skip is a failure)' : ''}`,
);
console.log(`run-tests: tap ${args.filter((a) => a.startsWith('-')).join(' ')} <files>`);

const coverage = require('./coverage.js');
const coverageDir = coverageWanted ? coverage.startCoverage() : null;
console.log(coverageDir ? `run-tests: recording line coverage of src/ in ${coverageDir}` : 'run-tests: no coverage recorded');
// Each process's record is some megabytes, mostly node's own code; cutting
// them down as they come keeps a whole-suite run's directory small.
const trimTimer = coverageDir ? setInterval(() => coverage.trimCoverage(coverageDir, false), 20_000) : null;
trimTimer?.unref();

const started = Date.now();
const child = spawn(tapBin, args, {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: coverageDir ? { ...process.env, NODE_V8_COVERAGE: coverageDir } : process.env,
});
let partial = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const text = partial + chunk;
  const lines = text.split('\n');
  partial = lines.pop();
  for (const l of lines) parseLine(l.replace(/\r$/, ''));
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    // Pass it on to tap (which stops its test processes) and report what ran.
    child.kill(sig);
  });
}
child.on('error', (e) => {
  console.error(`run-tests: could not start tap: ${e.message}`);
});
child.on('close', (code, signal) => {
  if (partial) parseLine(partial);
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  let { passed, failed, skipped } = counts;
  console.log(`\nrun-tests: tap finished in ${secs} s (${signal ? 'signal ' + signal : 'exit code ' + code})`);
  if (code !== 0 && failed === 0) {
    failed++;
    failures.push(`tap itself ended with ${signal ? 'signal ' + signal : 'exit code ' + code} without a failing test point`);
  }
  if (seenPoints === 0) {
    failed++;
    failures.push('no test point ran at all');
  }
  if (skips.length > 0) {
    console.log(`\n${inCI ? 'SKIPPED (counted as failures in CI: a skip there is a hole in the suite)' : 'skipped'}:`);
    for (const s of skips) console.log(`  - ${s}`);
    if (inCI) {
      failed += skipped;
      skipped = 0;
    }
  }
  if (coverageDir) {
    clearInterval(trimTimer);
    const floorApplies = selectors.length === 0;
    const point = checkCoverage(floorApplies);
    if (point === true) passed++;
    else if (point !== null) {
      failed++;
      failures.push(point);
    }
  }
  failures.unshift(...lint.failures);
  lint.failures.length = 0;
  if (failures.length > 0) {
    console.log('\nFAILED:');
    for (const f of failures.slice(0, 100)) console.log(`  - ${f}`);
    if (failures.length > 100) console.log(`  ... and ${failures.length - 100} more`);
  }
  finish(passed, failed, skipped, failed > 0 ? 1 : 0);
});
