#!/usr/bin/env node
'use strict';
// npm start: the self-contained demo (src/demo/demo.ts).
require('../dist/src/demo/demo.js')
  .main()
  .then((code) => process.exit(code));
