// Self-tests of the checks that scripts/lint.js adds to the tools:
// scripts/check-structure.js (class and folder sizes of src/, its rooms) on a
// small tree made here, and scripts/check-tracker-refs.js on lines that name a
// tracker entry and lines that only look like it.

import t from 'tap';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir } from '../helpers/files';

const root = resolve(__dirname, '..', '..', '..');

interface Check {
  check(root: string): string[];
}
interface TextCheck extends Check {
  findInText(file: string, text: string): string[];
}

// Plain JavaScript of scripts/, loaded as the lint run loads it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const structure = require(join(root, 'scripts', 'check-structure.js')) as Check;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tracker = require(join(root, 'scripts', 'check-tracker-refs.js')) as TextCheck;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const limits = require(join(root, 'scripts', 'size-limits.js')) as { classLines: number; folderModules: number };

/** A tree with the real dependency-cruiser rooms and the given src/ files. */
function tree(t: Parameters<typeof tempDir>[0], files: Record<string, string>): string {
  const dir = tempDir(t, 'house');
  copyFileSync(join(root, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const classOf = (name: string, lines: number): string => `export class ${name} {\n${'  x = 1;\n'.repeat(lines - 2)}}\n`;

t.test('check-structure: a tree within the limits passes', async (t) => {
  const files: Record<string, string> = { 'src/aoe/a.ts': classOf('Fits', limits.classLines) };
  for (let i = 1; i < limits.folderModules; i++) files[`src/aoe/m${i}.ts`] = 'export const x = 1;\n';
  t.same(structure.check(tree(t, files)), []);
});

t.test('check-structure: each kind of finding, with the way out', async (t) => {
  const files: Record<string, string> = {
    'src/aoe/big.ts': `// a comment first\n${classOf('TooBig', limits.classLines + 1)}`,
    'src/newroom/a.ts': 'export const x = 1;\n',
    'src/testing/a.ts': 'export const x = 1;\n',
    'src/stray.ts': 'export const x = 1;\n',
  };
  for (let i = 0; i <= limits.folderModules; i++) files[`src/native/m${i}.ts`] = 'export const x = 1;\n';
  const found = structure.check(tree(t, files));
  t.match(found, [
    /^src\/newroom is not a room of \.dependency-cruiser\.cjs: add it to ROOMS/,
    /^src\/stray\.ts: a module outside every room/,
    /^src\/testing is not a room of \.dependency-cruiser\.cjs/,
    /^src\/testing is named for tests/,
    new RegExp(`^src/native has ${limits.folderModules + 1} modules; the limit is ${limits.folderModules}: move a concern`),
    new RegExp(`^src/aoe/big\\.ts:2: class TooBig has ${limits.classLines + 1} lines; the limit is ${limits.classLines}`),
  ]);
  t.equal(found.length, 6, 'and nothing else');
});

t.test('check-tracker-refs: what names a tracker entry and what does not', async (t) => {
  // Built from pieces, so that this file does not name one itself.
  const hash = '#';
  const named = [
    `// as asked in issue ${'1'}2`,
    `// fixed by issue ${hash}3 and the rest`,
    `// (${hash}14, items 3 and 6)`,
    `see ${hash}14.`,
    `// properties the issue ${'asks'} for`,
    `The issue that ${'asked'} for this bench`,
  ];
  for (const line of named) t.equal(tracker.findInText('f', line).length, 1, `found: ${line}`);
  const innocent = [
    '#include <stdio.h>',
    '#!/bin/sh',
    '## 1.2 Command 0',
    'filename="/srv/vblade/a #1.img"   # quoted',
    '// Command 0, Issue ATA Command',
    'color: #fff;',
    'echo $#',
    'if (!this.canIssue()) this.issue(s, now);',
  ];
  for (const line of innocent) t.same(tracker.findInText('f', line), [], `not found: ${line}`);
  t.match(tracker.findInText('docs/x.md', `a\nb issue ${hash}9\n`), [/^docs\/x\.md:2: an issue number/]);
});

t.test('check-tracker-refs: the tree names none', async (t) => {
  t.same(tracker.check(root), []);
});
