#!/usr/bin/env node
'use strict';
// vbladed: vblade as a daemon (src/daemon/cli-vbladed.ts).
require('../dist/src/daemon/cli-vbladed').main(process.argv.slice(2));
