#!/usr/bin/env node
'use strict';
// aoe-client: the project's AoE initiator (src/client/cli.ts); see --help.
require('../dist/src/client/cli.js').main(process.argv.slice(2));
