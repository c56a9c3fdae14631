#!/usr/bin/env node
'use strict';
// aoe-bench: load one AoE export and measure it (src/client-cli/aoe-bench.ts); see --help.
require('../dist/src/client-cli/aoe-bench.js').main(process.argv.slice(2));
