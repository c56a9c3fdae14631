#!/usr/bin/env node
// Fails on text that names an entry of the issue tracker instead of saying
// what a thing is: the word "issue" followed by a number, a bare "#" and a
// number, or "the issue" as the one asking. Such a reference means nothing to a
// reader without the tracker, and goes stale when the entry is closed. Run by
// `npm test` and `npm run lint` (scripts/lint.js) over src/, test/, docs/,
// bench/, lab/, scripts/, bin/ and README.md.
//
//   node scripts/check-tracker-refs.js [root]     exit code 1 when one is found
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const PLACES = ['src', 'test', 'docs', 'bench', 'lab', 'scripts', 'bin', 'README.md'];

// Written as pieces so that this file does not match itself.
const PATTERNS = [
  // The word issue and a number after it, with or without "#" between them
  // ("Issue ATA Command", the name of an AoE command, has no number).
  { what: 'an issue number', re: new RegExp('\\bissues?\\s*#?\\d+', 'i') },
  // "#14" after a space, a bracket or a start of line, and not part of a
  // name such as "a #1.img"; "#include", "#!/bin/sh" and Markdown headings
  // have no digit after the "#".
  { what: 'a "#" reference', re: new RegExp('(^|[\\s([{,;:])#\\d+(?!\\.?\\w)') },
  // "the issue", up to two words, then a verb of asking or saying.
  {
    what: 'a reference to "the issue"',
    re: new RegExp(
      '\\bthe issue\\b(\\s+\\w+){0,2}\\s+(ask|asks|asked|says|said|wants|wanted|requires|required|calls|called|demands)\\b',
      'i',
    ),
  },
];

/** Every file under a place (or the place itself when it is a file), relative to root. */
function filesOf(root, place, out = []) {
  const full = path.join(root, place);
  let st;
  try {
    st = fs.statSync(full);
  } catch {
    return out;
  }
  if (st.isFile()) out.push(place);
  else if (st.isDirectory()) {
    for (const e of fs.readdirSync(full, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist') continue;
      filesOf(root, path.join(place, e.name), out);
    }
  }
  return out;
}

/** The findings in one text: one per line that matches, with the pattern it matched. */
function findInText(file, text) {
  const found = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    for (const p of PATTERNS) {
      const m = p.re.exec(lines[i]);
      if (!m) continue;
      found.push(`${file}:${i + 1}: ${p.what} ("${m[0].trim()}"): say what the thing is, not which tracker entry asked for it`);
      break;
    }
  }
  return found;
}

function check(root) {
  const found = [];
  for (const file of PLACES.flatMap((p) => filesOf(root, p)).sort()) {
    const bytes = fs.readFileSync(path.join(root, file));
    if (bytes.includes(0)) continue; // binary: a disk image, a fixture
    found.push(...findInText(file, bytes.toString('utf8')));
  }
  return found;
}

function main(argv) {
  const root = path.resolve(argv[0] ?? path.join(__dirname, '..'));
  const found = check(root);
  for (const f of found) console.log(f);
  console.log(
    found.length === 0
      ? `tracker references: none in ${PLACES.join(', ')}`
      : `tracker references: ${found.length} line(s) name a tracker entry`,
  );
  return found.length === 0 ? 0 : 1;
}

module.exports = { check, findInText };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
