// Line coverage of src/ for `npm test` (scripts/run-tests.js). Node itself
// records it: NODE_V8_COVERAGE names a directory, and every Node process
// started with it there (tap, the test files, and what they start: vblade
// and vbladed inside `ip netns exec`, the supervisor's worker) writes its
// counts into it when it exits. c8 then maps the counts of the compiled
// dist/src/*.js back to src/*.ts through the source maps tsc writes, and
// counts lines. A process killed with SIGKILL writes nothing, so what it ran
// counts only through the other processes.
//
// LINE_FLOOR below is the one place the floor is kept: a whole-suite run
// fails (a test point of its own) when the lines of src/ covered fall below
// it. docs/development.md says how it was set.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** Lines of src/ the whole suite must cover, in percent. */
const LINE_FLOOR = 94;

const root = path.resolve(__dirname, '..');

/** Where the report goes: the per-file table (report.txt) and the totals (coverage-summary.json). */
const REPORT_DIR = path.join(root, 'coverage');

/**
 * Makes the directory the processes write to. Anyone may write in it (the
 * worker may run as another user after dropping root), as in /tmp.
 */
function startCoverage() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aoe-target-coverage-'));
  fs.chmodSync(dir, 0o1777);
  return dir;
}

/** Whether a compiled module does anything: one of types alone compiles to comments and the CommonJS preamble. */
function hasCode(compiled) {
  let text;
  try {
    text = fs.readFileSync(path.join(root, compiled), 'utf8');
  } catch {
    return true; // not built: counted, as not run
  }
  const rest = text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '')
    .replace(/^"use strict";$/m, '')
    .replace(/^Object\.defineProperty\(exports, "__esModule", \{ value: true \}\);$/m, '');
  return rest.trim() !== '';
}

/**
 * The compiled file of every src/*.ts that has code, as the dist/ paths c8
 * is to count: output left in dist/ by a moved or deleted source is not, nor
 * a module of types alone (no process ever loads it, so its lines would count
 * as never run).
 */
function compiledSources(dir = 'src', out = []) {
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) compiledSources(rel, out);
    else if (e.isFile() && e.name.endsWith('.ts')) {
      const compiled = path.join('dist', rel.replace(/\.ts$/, '.js'));
      if (hasCode(compiled)) out.push(compiled);
    }
  }
  return out;
}

// Files of the directory already cut down, so that a later pass skips them.
const trimmed = new Set();

/**
 * Keeps only what was recorded for dist/src/ in each file of the directory:
 * a process's record also holds node's internals and every package it
 * loaded, some megabytes that c8 would read only to drop. During the run
 * (final false) only files older than a few seconds are read, and one that
 * does not parse is left for later: its process may still be writing it.
 */
function trimCoverage(dir, final) {
  const prefix = `file://${path.join(root, 'dist', 'src')}/`;
  for (const name of fs.readdirSync(dir)) {
    if (trimmed.has(name)) continue;
    const file = path.join(dir, name);
    let record;
    try {
      if (!final && Date.now() - fs.statSync(file).mtimeMs < 5000) continue;
      record = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      if (final) fs.rmSync(file, { force: true }); // cut short by the end of its process
      continue;
    }
    const result = (record.result ?? []).filter((s) => typeof s.url === 'string' && s.url.startsWith(prefix));
    if (result.length === 0) fs.rmSync(file, { force: true });
    else {
      fs.writeFileSync(file, JSON.stringify({ ...record, result }));
      trimmed.add(name);
    }
  }
}

/**
 * Reports what the directory holds: the table to report.txt in reportDir,
 * and returns { pct, covered, total } of the lines of src/, or { error }.
 */
function reportCoverage(dir, reportDir = REPORT_DIR) {
  trimCoverage(dir, true);
  const c8 = require.resolve('c8/bin/c8.js', { paths: [root] });
  const include = compiledSources().flatMap((f) => ['--include', f]);
  fs.mkdirSync(reportDir, { recursive: true });
  const args = [
    c8,
    'report',
    '--temp-directory',
    dir,
    '--report-dir',
    reportDir,
    '--reporter',
    'text',
    '--reporter',
    'json-summary',
  ];
  const r = spawnSync(process.execPath, [...args, '--all', '--src', 'dist/src', ...include], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) return { error: `c8 report failed (${r.status ?? r.signal}): ${(r.stderr || '').trim()}` };
  fs.writeFileSync(path.join(reportDir, 'report.txt'), r.stdout);
  const total = JSON.parse(fs.readFileSync(path.join(reportDir, 'coverage-summary.json'), 'utf8')).total.lines;
  return { pct: total.pct, covered: total.covered, total: total.total };
}

/**
 * What a run makes of a report: the one line to print, and `failure` (the
 * text of a failed test point), true (a passed one) or null (no point: the
 * floor applies to the whole suite only).
 */
function coverageVerdict(r, floorApplies, floor = LINE_FLOOR) {
  const where = path.relative(root, path.join(REPORT_DIR, 'report.txt'));
  if (r.error) return { line: `coverage: ${r.error}`, point: floorApplies ? `coverage: ${r.error}` : null };
  const how = !floorApplies
    ? `the floor of ${floor} % applies to the whole suite`
    : r.pct >= floor
      ? `floor ${floor} %: ok`
      : `BELOW the floor of ${floor} %`;
  const line = `coverage: src/ lines ${r.pct} % (${r.covered} of ${r.total}), ${how}; per file: ${where}`;
  if (!floorApplies) return { line, point: null };
  if (r.pct >= floor) return { line, point: true };
  return {
    line,
    point: `coverage: ${r.pct} % of the lines of src/ ran, below the floor of ${floor} % (LINE_FLOOR in scripts/coverage.js); ${where} lists the lines not run`,
  };
}

module.exports = { LINE_FLOOR, REPORT_DIR, startCoverage, trimCoverage, reportCoverage, coverageVerdict };
