#!/usr/bin/env node
'use strict';
// vblade: export a file or block device over ATA-over-Ethernet (see --help).
const { main } = require('../dist/src/cli/vblade.js');
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`vblade: ${(err && err.stack) || err}\n`);
    process.exit(1);
  },
);
