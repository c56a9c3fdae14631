// The man pages: each .TH line carries the date of its text and the package
// version; groff reads them without a warning; aoe-client(1) and
// aoe-bench(1) name every command and option their --help lists (the help is
// read from the programs themselves, run in a namespace of the test's own).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { createNetns, requireRoot } from '../../lab/netns';
import { REPO } from '../helpers/targets';

const DOCS = path.join(REPO, 'docs');
const PAGES = fs.readdirSync(DOCS).filter((f) => /\.[1-8]$/.test(f));
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

/** A section of a page (from `.SH NAME` to the next .SH) as a reader sees it: roff's \- is a hyphen. */
function pageSection(name: string, section: string): string {
  const text = fs.readFileSync(path.join(DOCS, name), 'utf8').replace(/\\-/g, '-');
  const start = text.indexOf(`\n.SH ${section}\n`);
  if (start < 0) return '';
  const end = text.indexOf('\n.SH ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

/** An entry of the section for `word`: a .TP tag line that starts with it (-h, --help: either). */
function entry(word: string): RegExp {
  return new RegExp(`^\\.B[IR]? (?:-\\w ", " )?"?${word}(?![\\w-])`, 'm');
}

t.test('every page has a .TH with a date and the version', async (t) => {
  t.ok(PAGES.includes('aoe-client.1') && PAGES.includes('aoe-bench.1'), 'aoe-client(1) and aoe-bench(1) exist');
  for (const p of PAGES) {
    const th = fs
      .readFileSync(path.join(DOCS, p), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('.TH '));
    const m = /^\.TH \S+ (\d) "(\d{4}-\d\d-\d\d)" "aoe-target ([^"]+)" "[^"]+"$/.exec(th ?? '');
    t.ok(m, `${p}: ${th}`);
    if (!m) continue;
    t.equal(m[1], p.slice(-1), `${p}: the section is the file's`);
    t.ok(!Number.isNaN(Date.parse(m[2])) && Date.parse(m[2]) <= Date.now(), `${p}: ${m[2]} is a date, not in the future`);
    t.equal(m[3], VERSION, `${p}: the version is package.json's`);
  }
});

const groff = spawnSync('groff', ['-v'], { encoding: 'utf8' }).status === 0;
t.test('groff reads every page without a warning', { skip: !groff && 'no groff here' }, async (t) => {
  for (const p of PAGES) {
    const r = spawnSync('groff', ['-man', '-ww', '-z', path.join(DOCS, p)], { encoding: 'utf8' });
    t.same({ status: r.status, stderr: r.stderr }, { status: 0, stderr: '' }, p);
  }
});

if (requireRoot(t)) {
  t.test('aoe-client(1) and aoe-bench(1) name every command and option of --help', async (t) => {
    const ns = await createNetns(t, 'man-pages');
    const help = async (args: string[]): Promise<string> => {
      const r = await ns.run(process.execPath, args);
      t.equal(r.code, 0, `${args.slice(1).join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const options = (text: string): string[] => [...new Set([...text.matchAll(/^\s+(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]))];

    const client = path.join(REPO, 'bin', 'aoe-client.js');
    const clientCommands = pageSection('aoe-client.1', 'COMMANDS');
    const clientOptions = pageSection('aoe-client.1', 'OPTIONS');
    const top = await help([client, '--help']);
    const commands = [...top.matchAll(/^ {2}aoe-client (\w+)/gm)].map((m) => m[1]);
    t.ok(commands.length >= 8, `commands: ${commands.join(' ')}`);
    const all = new Set(options(top));
    for (const c of commands) {
      t.match(clientCommands, entry(c), `aoe-client(1) describes ${c} under COMMANDS`);
      for (const o of options(await help([client, c, '--help']))) all.add(o);
    }
    t.ok(all.has('--raw') && all.has('--pattern') && all.has('--version'), 'the options of the commands are read too');
    for (const o of all) t.match(clientOptions, entry(o), `aoe-client(1) describes ${o} under OPTIONS`);

    const benchOptionsPage = pageSection('aoe-bench.1', 'OPTIONS');
    const benchOptions = options(await help([path.join(REPO, 'bin', 'aoe-bench.js'), '--help']));
    t.ok(benchOptions.length >= 20, `aoe-bench options: ${benchOptions.join(' ')}`);
    for (const o of benchOptions) t.match(benchOptionsPage, entry(o), `aoe-bench(1) describes ${o} under OPTIONS`);
  });

  t.test('vblade(8) describes every long option of vblade --help', async (t) => {
    const ns = await createNetns(t, 'man-vblade');
    const r = await ns.run(process.execPath, [path.join(REPO, 'bin', 'vblade.js'), '--help']);
    t.equal(r.code, 0);
    const long = [...new Set([...r.stdout.matchAll(/^\s+(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]))];
    t.ok(long.length >= 15, `vblade options: ${long.join(' ')}`);
    const page = pageSection('vblade.8', 'OPTIONS');
    for (const o of long) t.match(page, entry(o), `vblade(8) describes ${o} under OPTIONS`);
  });
}
