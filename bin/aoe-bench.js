#!/usr/bin/env node
'use strict';
// aoe-bench: load one AoE export and measure it (src/client/bench-cli.ts); see --help.
require('../dist/src/client/bench-cli.js').main(process.argv.slice(2));
