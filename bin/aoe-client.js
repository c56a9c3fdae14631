#!/usr/bin/env node
'use strict';
// aoe-client: the project's AoE initiator (src/client-cli/aoe-client.ts); see --help.
require('../dist/src/client-cli/aoe-client.js').main(process.argv.slice(2));
