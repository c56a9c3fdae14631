// The layers of src/ (docs/architecture.md), checked by dependency-cruiser:
//
//   npx depcruise --config .dependency-cruiser.cjs src test bench lab bin scripts
//
// Each room of src/ lists the rooms it may import; every other arrow between
// rooms is a rule of its own, named FROM-not-TO, so a failure names the arrow
// that was drawn. A folder of src/ that is not in ROOMS breaks the rule
// src-unknown-room (and scripts/check-structure.js, which also catches one
// that imports nothing). Type-only imports count too (tsPreCompilationDeps): a type
// from a forbidden room still ties the rooms together.
'use strict';

// room -> the rooms it may import, and why it stops there.
const ROOMS = {
  aoe: {
    may: [],
    why: 'src/aoe is the protocol and nothing else: pure functions over frames, testable and portable without the daemon.',
  },
  native: {
    may: [],
    why: 'src/native is the typed loader of the C addon; everything else builds on it, so it builds on nothing of ours.',
  },
  'safe-files': {
    may: [],
    why: 'src/safe-files opens directories and files others might write, by descriptor, for every room that keeps files; it needs nothing of ours.',
  },
  backend: {
    may: ['native'],
    why: 'block stores know storage and the native I/O types, not the protocol, the server or how it is run.',
  },
  faults: {
    may: ['native'],
    why: 'fault injection wraps stores and native calls; it must not reach into the server it is used to test.',
  },
  api: {
    may: [],
    why: 'src/api is what the control socket carries (types) and the errors callers tell apart; the server and ctl both build on it, so it builds on nothing of ours.',
  },
  engine: {
    may: ['aoe', 'native', 'backend', 'config', 'api'],
    why: 'the frame path serves the exports it is handed; who opens them, how views are made and how the process is run are not its concern.',
  },
  views: {
    may: ['api', 'backend', 'native', 'config', 'safe-files'],
    why: 'copy-on-write views and snapshots work on block stores and export configs; the serving core calls them, never the other way round.',
  },
  guard: {
    may: ['api', 'aoe', 'native', 'config', 'remote'],
    why: 'the two-writer guards check configs, probe the wire and claim addresses before the serving core starts; they must not reach into it.',
  },
  target: {
    may: ['aoe', 'native', 'backend', 'config', 'engine', 'api', 'views', 'guard', 'remote'],
    why: 'the serving core is driven by service/ and cli/; it must not know who runs it, nor the fault injection wrapped around it.',
  },
  remote: {
    may: ['backend', 'native', 'config', 'safe-files'],
    why: 'stores behind a client library (NBD, RBD) are block stores opened from an export config; the serving core opens them, never the other way round.',
  },
  config: {
    may: ['aoe', 'safe-files', 'remote'],
    why: "configuration is parsed and rendered without loading the addon or the server, so the CLIs can check it cheaply; fragments (config-dir) are read through safe-files, which needs nothing of ours; a remote store's URI and Ceph id are checked by remote/'s parsers (which load no addon).",
  },
  service: {
    may: ['config', 'target', 'native', 'faults', 'aoe', 'api', 'safe-files', 'guard'],
    why: "the supervisor, worker and control plane run the target; they are driven by cli/ and do not depend on it. The supervisor (root) makes a switched worker's claim files in guard/'s root-only directory.",
  },
  cli: {
    may: ['config', 'service', 'target', 'native', 'api', 'guard', 'safe-files', 'remote'],
    why:
      'the command lines turn argv into a config and hand it to service/ (or check it with target/); ' +
      'vblade ctl add checks, through safe-files, the config file a daemon names before it writes as root, ' +
      'and asks remote/ whether a file is an rbd image or NBD URI (not a path to make absolute); ' +
      "how a serving process is put together is service/'s concern, block stores and the protocol the target's.",
  },
  client: {
    may: ['native'],
    why: 'the initiator is a separate program with its own wire code, so that it checks the target rather than sharing its mistakes.',
  },
  'client-cli': {
    may: ['client', 'native'],
    why: 'aoe-client and aoe-bench are command lines over the initiator library; the library never needs them, and they never reach into the target.',
  },
  demo: {
    may: ['client'],
    why: 'the demo shows the initiator at work; it does not reach into the target.',
  },
};

// Of config/, the serving rooms need the export's settings and the state it
// reconciles on a reload, nothing of the files, the flags or the renderers.
const SERVING_CONFIG_MODULES = ['export-config', 'saved-state'];

// Names for a folder of test code; shipped code has no such room.
const TEST_ROOM = '^src/(test|tests|testing)/';

const names = Object.keys(ROOMS);
const roomPath = (room) => `^src/${room}/`;

const forbidden = [];

for (const from of names) {
  for (const to of names) {
    if (to === from || ROOMS[from].may.includes(to)) continue;
    forbidden.push({
      name: `${from}-not-${to}`,
      comment: ROOMS[from].why,
      severity: 'error',
      from: { path: roomPath(from) },
      to: { path: roomPath(to) },
    });
  }
}

forbidden.push(
  {
    name: 'backend-native-types-only',
    comment: 'backend/ uses the addon only through the types of src/native; the stores are handed the loaded addon.',
    severity: 'error',
    from: { path: roomPath('backend') },
    to: { path: roomPath('native'), dependencyTypesNot: ['type-only'] },
  },
  {
    name: 'aoe-not-node-builtins',
    comment: 'the protocol does no I/O: no node: modules, so it runs on plain Uint8Arrays anywhere.',
    severity: 'error',
    from: { path: roomPath('aoe') },
    to: { dependencyTypes: ['core'] },
  },
  {
    name: 'aoe-not-packages',
    comment: 'the protocol imports nothing outside src/aoe, npm packages included.',
    severity: 'error',
    from: { path: roomPath('aoe') },
    to: { dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'] },
  },
  {
    name: 'native-not-packages',
    comment: 'the addon loader uses node builtins only.',
    severity: 'error',
    from: { path: roomPath('native') },
    to: { dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'] },
  },
  {
    name: 'src-unknown-room',
    comment:
      'every folder of src/ is a room of ROOMS in .dependency-cruiser.cjs, with the rooms it may import and why; ' +
      'add the new one there.',
    severity: 'error',
    from: { path: '^src/', pathNot: names.map(roomPath) },
    to: {},
  },
  {
    name: 'serving-config-narrow',
    comment:
      "the serving rooms (the frame path, the serving core, views, guards) read an export's settings and the " +
      'reconciling of its saved state from config/, not the config file, the flags or the renderers: those are ' +
      'the business of service/ and cli/.',
    severity: 'error',
    from: { path: '^src/(engine|target|views|guard|remote)/' },
    to: { path: roomPath('config'), pathNot: SERVING_CONFIG_MODULES.map((m) => `^src/config/${m}\\.ts$`) },
  },
  {
    name: 'config-only-remote-uri',
    comment:
      "config/ checks a remote store's URI and Ceph id and takes its settings' limits from remote-uri, rbd-spec and ceph-conf (no addon); opening such a store " +
      "is the serving core's, so config/ stays free of the addon.",
    severity: 'error',
    from: { path: roomPath('config') },
    to: { path: roomPath('remote'), pathNot: '^src/remote/(remote-uri|rbd-spec|ceph-conf)\\.ts$' },
  },
  {
    name: 'guard-only-remote-uri',
    comment:
      "guard/ tells two exports of one remote store apart by remote-uri's reading of their URIs (no addon); opening such a store is the serving core's.",
    severity: 'error',
    from: { path: roomPath('guard') },
    to: { path: roomPath('remote'), pathNot: '^src/remote/(remote-uri|rbd-spec)\\.ts$' },
  },
  {
    name: 'src-not-test-room',
    comment:
      'shipped code does not import a room named for tests; code that ships (fault injection, say) ' +
      'has a room named for what it does.',
    severity: 'error',
    from: { path: '^src/', pathNot: TEST_ROOM },
    to: { path: TEST_ROOM },
  },
  {
    name: 'bench-not-test',
    comment: 'the benchmarks do not depend on the test suite; what both need (namespaces, QEMU guests, processes) lives in lab/.',
    severity: 'error',
    from: { path: '^bench/' },
    to: { path: '^test/' },
  },
  {
    name: 'lab-not-test-bench',
    comment: 'lab/ is shared by test/ and bench/, so it imports neither.',
    severity: 'error',
    from: { path: '^lab/' },
    to: { path: '^(test|bench)/' },
  },
  {
    name: 'lab-not-src',
    comment:
      'lab/ builds the surroundings (namespaces, guests, processes) and runs the programs under test from outside; ' +
      'it does not import the code it surrounds.',
    severity: 'error',
    from: { path: '^lab/' },
    to: { path: '^src/' },
  },
  {
    name: 'bench-only-client-native',
    comment:
      'the benchmarks drive the targets from outside, as an initiator would: through src/client and src/native, ' +
      'never by importing the target under test.',
    severity: 'error',
    from: { path: '^bench/' },
    to: { path: '^src/', pathNot: ['^src/client/', '^src/native/'] },
  },
  {
    name: 'no-circular',
    comment: 'a cycle makes load order matter and the layers meaningless; break it by moving the shared part down a room.',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
  {
    name: 'not-to-unresolvable',
    comment: 'an import that resolves to no file fails at run time.',
    severity: 'error',
    from: {},
    // The addon is loaded from build/ (made by node-gyp) and package.json from
    // the root, both by paths relative to dist/, not to the source; bin/ and
    // scripts/ load the compiled dist/, which a lint before the build lacks.
    to: { couldNotResolve: true, pathNot: ['aoe_native\\.node$', 'package\\.json$', '(^|/)dist/'] },
  },
);

// Shipped code never depends on what does not ship.
for (const [dir, what] of [
  ['test', 'the test suite'],
  ['bench', 'the benchmarks'],
  ['lab', 'lab/ (namespaces, guests and processes for the tests and the bench)'],
]) {
  forbidden.push({
    name: `src-not-${dir}`,
    comment: `shipped code never depends on ${what}.`,
    severity: 'error',
    from: { path: '^src/' },
    to: { path: `^${dir}/` },
  });
}

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['^dist/', '^build/', '^node_modules/'] },
    // Type-only imports are arrows too.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.cjs', '.mjs', '.json', '.node'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
