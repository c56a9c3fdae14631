#!/usr/bin/env node
'use strict';
// Renders docs/vblade.conf.5 and systemd/vblade.conf.example from the key
// table in src/config/keys.ts (build first: npx tsc -p .).
// test/config/render-docs.test.ts fails when the committed files differ.
const fs = require('node:fs');
const path = require('node:path');
const { renderConfManPage, renderExampleConfig } = require('../dist/src/config/render-docs.js');

const root = path.join(__dirname, '..');
const outputs = {
  'docs/vblade.conf.5': renderConfManPage(),
  'systemd/vblade.conf.example': renderExampleConfig(),
};
for (const [rel, text] of Object.entries(outputs)) {
  fs.writeFileSync(path.join(root, rel), text);
  process.stdout.write(`wrote ${rel}\n`);
}
