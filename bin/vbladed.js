#!/usr/bin/env node
'use strict';
// vbladed: vblade as a daemon (src/cli/vbladed.ts).
require('../dist/src/cli/vbladed').main(process.argv.slice(2));
