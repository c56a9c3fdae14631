#!/usr/bin/env node
// The shape of src/ that ESLint cannot check, run by `npm test` and
// `npm run lint` (scripts/lint.js): no class longer than the limit, no folder
// with more modules than the limit (scripts/size-limits.js has both), and
// every folder of src/ a room that .dependency-cruiser.cjs knows, none named
// for tests. Plain JavaScript over the typescript package's parser, so it
// needs no build.
//
//   node scripts/check-structure.js [root]     exit code 1 when anything is over
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');
const limits = require('./size-limits.js');

/** Every .ts file under dir, as paths relative to root. */
function tsFiles(root, dir, out = []) {
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) tsFiles(root, rel, out);
    else if (e.isFile() && e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** 1-based line of a position. */
function lineOf(source, pos) {
  return source.getLineAndCharacterOfPosition(pos).line + 1;
}

/** The classes of one file longer than the limit: one message each. */
function longClasses(root, file) {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const found = [];
  const visit = (node) => {
    if (ts.isClassLike(node)) {
      const first = lineOf(source, node.getStart(source));
      const lines = lineOf(source, node.end) - first + 1;
      if (lines > limits.classLines) {
        const name = node.name ? node.name.text : '(anonymous class)';
        found.push(
          `${file}:${first}: class ${name} has ${lines} lines; the limit is ${limits.classLines}: ` +
            'give each of its jobs an object of its own',
        );
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Folders of src/ with more modules (.ts files directly in them) than the limit. */
function crowdedFolders(files) {
  const modules = new Map();
  for (const f of files) modules.set(path.dirname(f), (modules.get(path.dirname(f)) ?? 0) + 1);
  const found = [];
  for (const [dir, n] of [...modules].sort()) {
    if (n > limits.folderModules)
      found.push(`${dir} has ${n} modules; the limit is ${limits.folderModules}: move a concern into a room of its own`);
  }
  return found;
}

/**
 * What dependency-cruiser knows of the rooms: the pathNot of its rule
 * src-unknown-room is one pattern per room of ROOMS, and the target of
 * src-not-test-room the pattern of a room named for tests.
 */
function roomRules(root) {
  const config = require(path.join(root, '.dependency-cruiser.cjs'));
  const rule = (name) => {
    const r = config.forbidden.find((f) => f.name === name);
    if (!r) throw new Error(`.dependency-cruiser.cjs has no rule ${name}`);
    return r;
  };
  return {
    known: rule('src-unknown-room').from.pathNot.map((p) => new RegExp(p)),
    testRoom: new RegExp(rule('src-not-test-room').to.path),
  };
}

/** Folders of src/ that are not rooms of .dependency-cruiser.cjs, or that are named for tests. */
function strangeRooms(root) {
  const { known, testRoom } = roomRules(root);
  const found = [];
  for (const e of fs.readdirSync(path.join(root, 'src'), { withFileTypes: true })) {
    if (!e.isDirectory()) {
      if (e.name.endsWith('.ts')) found.push(`src/${e.name}: a module outside every room; put it in the room it belongs to`);
      continue;
    }
    const probe = `src/${e.name}/x.ts`;
    if (!known.some((r) => r.test(probe)))
      found.push(`src/${e.name} is not a room of .dependency-cruiser.cjs: add it to ROOMS with the rooms it may import and why`);
    if (testRoom.test(probe))
      found.push(`src/${e.name} is named for tests, but src/ is shipped: name the room for what its code does`);
  }
  return found;
}

function check(root) {
  const files = tsFiles(root, 'src').sort();
  return [...strangeRooms(root), ...crowdedFolders(files), ...files.flatMap((f) => longClasses(root, f))];
}

function main(argv) {
  const root = path.resolve(argv[0] ?? path.join(__dirname, '..'));
  const found = check(root);
  for (const f of found) console.log(f);
  const what = `no class over ${limits.classLines} lines, no src/ folder over ${limits.folderModules} modules, every folder a known room`;
  console.log(found.length === 0 ? `structure: ${what}: ok` : `structure: ${found.length} finding(s) (${what})`);
  return found.length === 0 ? 0 : 1;
}

module.exports = { check };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
