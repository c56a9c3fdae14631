// Self-test of scripts/coverage.js: a Node process started with
// NODE_V8_COVERAGE records what it ran of dist/src/, the records are cut
// down to src/, the report counts every line of src/ (files no one loaded
// too) against src/*.ts, and the verdict for a run follows the floor.

import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir } from '../helpers/files';
import { runOk } from '../../lab/process';

const root = resolve(__dirname, '..', '..', '..');

interface Report {
  pct: number;
  covered: number;
  total: number;
  error?: string;
}
interface Coverage {
  LINE_FLOOR: number;
  trimCoverage(dir: string, final: boolean): void;
  reportCoverage(dir: string, reportDir?: string): Report;
  coverageVerdict(r: Partial<Report>, floorApplies: boolean, floor?: number): { line: string; point: string | true | null };
}
// Plain JavaScript of scripts/, loaded as run-tests.js loads it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const coverage = require(join(root, 'scripts', 'coverage.js')) as Coverage;

t.test('a process records what it ran, and the report maps it to src/', async (t) => {
  const dir = tempDir(t, 'v8cov');
  const reports = tempDir(t, 'report');
  const macList = join(root, 'dist', 'src', 'aoe', 'mac-list.js');
  await runOk(process.execPath, ['-e', `require(${JSON.stringify(macList)})`], { env: { NODE_V8_COVERAGE: dir } });
  t.ok(readdirSync(dir).length > 0, 'the process wrote its record');

  coverage.trimCoverage(dir, true);
  const records = readdirSync(dir).map(
    (f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { result: Array<{ url: string }> },
  );
  t.equal(records.length, 1, 'the one record that ran some of dist/src/ is kept');
  t.ok(
    records[0].result.every((s) => s.url.includes('/dist/src/')),
    "and of it only dist/src/, not node's internals or packages",
  );

  const r = coverage.reportCoverage(dir, reports);
  t.notOk(r.error, 'c8 reports');
  t.ok(r.total > 1000, `every line of src/ counts (${r.total})`);
  t.ok(r.covered > 0 && r.pct < 50, `some ran, most did not (${r.pct} %)`);
  const table = readFileSync(join(reports, 'report.txt'), 'utf8');
  t.match(table, /mac-list\.ts/, 'the table names the TypeScript source');
  t.match(table, /server\.ts\s*\|\s*0 /, 'a file no one loaded counts as not run');
});

t.test('the verdict: a point only for the whole suite, failed below the floor', async (t) => {
  const r = { pct: 80, covered: 800, total: 1000 };
  t.equal(coverage.coverageVerdict(r, false, 90).point, null, 'a selection: no point');
  t.match(
    coverage.coverageVerdict(r, false, 90).line,
    /src\/ lines 80 % \(800 of 1000\), the floor of 90 % applies to the whole suite/,
  );
  t.equal(coverage.coverageVerdict(r, true, 80).point, true, 'at the floor: passed');
  t.match(
    coverage.coverageVerdict(r, true, 81).point,
    /80 % of the lines of src\/ ran, below the floor of 81 %/,
    'below: failed, saying so',
  );
  t.match(coverage.coverageVerdict({ error: 'c8 report failed (1)' }, true).point, /c8 report failed/, 'no report: failed');
  t.ok(coverage.LINE_FLOOR > 0 && coverage.LINE_FLOOR <= 100, 'the floor is a percentage');
});
