// Shared start-up of the long-run reliability scripts: they run the compiled
// test library (dist/test/reliability/lib), so the project must be built
// (`npm run build`), and they need root (network namespaces, raw sockets).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const dist = path.resolve(__dirname, '..', '..', 'dist', 'test', 'reliability', 'lib');

/** Loads a compiled module of the reliability library, with a clear message when the build is missing. */
function lib(name) {
  const file = path.join(dist, `${name}.js`);
  if (!fs.existsSync(file)) {
    console.error(`${path.basename(process.argv[1])}: ${file} is missing; build first: npm run build`);
    process.exit(2);
  }
  return require(file);
}

/** Exits with a message unless root. */
function requireRoot() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    console.error(`${path.basename(process.argv[1])}: needs root (network namespaces, packet sockets); run it with sudo`);
    process.exit(2);
  }
}

/** Parses the options (see scriptOptions in the library); prints `usage` for --help. */
function options(defaults, usage) {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage.trim());
    process.exit(0);
  }
  try {
    return lib('harness').scriptOptions(argv, defaults);
  } catch (e) {
    console.error(`${path.basename(process.argv[1])}: ${e.message}`);
    process.exit(2);
  }
}

function fmt(n) {
  return Math.round(n).toLocaleString('en-US');
}

module.exports = { lib, requireRoot, options, fmt };
