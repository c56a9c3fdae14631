// Daemon settings: defaults, the file, the command line and the environment
// combined; the tunables and the server config picked out of them; and the
// keys a reload cannot apply, all derived from the key table.

import t from 'tap';
import { exportConfig } from '../helpers/export-config';
import { parseConfigFile } from '../../src/config/config-file';
import {
  changesNeedingRestart,
  environmentDaemonKeys,
  resolveDaemonSettings,
  serverConfigOf,
  tunablesOf,
} from '../../src/config/daemon-settings';
import { DEFAULT_TUNABLES, type ExportConfig } from '../../src/config/export-config';
import { DAEMON_KEYS, TUNABLE_KEYS, type DaemonKeyDef } from '../../src/config/keys';
import { parseVbladedArgs } from '../../src/cli/vbladed';

const F = '/etc/vblade.conf';

function exp(over: Partial<ExportConfig>): ExportConfig {
  return exportConfig({ file: '/srv/a.img', interfaces: ['eth1'], ...over });
}

t.test('daemon settings: defaults, file, command line', async (t) => {
  const ctx = { program: 'vbladed' as const, defaultName: 'vblade' };
  const d = resolveDaemonSettings({}, {}, ctx);
  t.same(d, {
    name: 'vblade',
    runDir: '/run/vblade',
    pidFile: '/run/vblade/vblade.pid',
    log: 'syslog',
    logFormat: 'json',
    logLevel: 'info',
    syslogFormat: 'rfc3164',
    stopTimeoutSeconds: 30,
    stateDir: '/var/lib/vblade',
    controlSocket: '/run/vblade/vblade.sock',
    metricsAllowRemote: false,
    spinMicros: 20,
    spinPolicy: 'adaptive',
    mapInMemory: true,
    duplicateProbeMs: 300,
    duplicateRetrySeconds: 30,
    announceSeconds: 10,
  });
  const f = resolveDaemonSettings(
    { 'log-file': '/var/log/v.log', 'run-dir': '/tmp/r', metrics: '127.0.0.1:9469', 'state-dir': 'none' },
    { 'run-dir': '/tmp/c', name: 'x', 'control-socket': 'none' },
    ctx,
  );
  t.equal(f.log, 'file');
  t.equal(f.pidFile, '/tmp/c/x.pid');
  t.equal(f.stateDir, undefined);
  t.equal(f.controlSocket, undefined);
  t.same(f.metrics, { host: '127.0.0.1', port: 9469 });
  t.equal(resolveDaemonSettings({}, {}, { program: 'vblade', defaultName: 'v' }).log, 'stderr', 'vblade logs to stderr');
});

t.test('tunables: command line over file over environment over default', async (t) => {
  const ctx = { program: 'vbladed' as const, defaultName: 'v' };
  const env = environmentDaemonKeys({ AOE_SPIN_US: '300', AOE_MAP: '0', PATH: '/bin' });
  t.same(env, { 'spin-us': '300', 'map-in-memory': '0' }, 'only the variables the table names');
  const fromEnv = resolveDaemonSettings({}, {}, { ...ctx, fromEnvironment: env });
  t.same([fromEnv.spinMicros, fromEnv.mapInMemory], [300, false], 'the environment when nothing else sets them');
  const fromFile = resolveDaemonSettings({ 'spin-us': '0', 'map-in-memory': 'yes' }, {}, { ...ctx, fromEnvironment: env });
  t.same([fromFile.spinMicros, fromFile.mapInMemory], [0, true], 'the file wins over the environment, 0 included');
  const fromCli = resolveDaemonSettings(
    { 'spin-us': '0' },
    { 'spin-us': '50', 'map-in-memory': 'no' },
    { ...ctx, fromEnvironment: env },
  );
  t.same([fromCli.spinMicros, fromCli.mapInMemory], [50, false], 'the command line wins over the file');
  t.same(
    serverConfigOf([exp({})], fromCli).tunables,
    {
      spinMicros: 50,
      spinPolicy: 'adaptive',
      mapInMemory: false,
      duplicateProbeMs: 300,
      duplicateRetrySeconds: 30,
      announceSeconds: 10,
    },
    'the worker gets them with the exports',
  );
  t.same(environmentDaemonKeys({ AOE_SPIN_US: '', AOE_MAP: '' }), {}, 'empty variables are unset');
  t.throws(
    () => environmentDaemonKeys({ AOE_SPIN_US: 'fast' }),
    /^AOE_SPIN_US=fast in the environment: spin-us = "fast" is not a whole number.*fix or unset AOE_SPIN_US/,
  );
  t.throws(() => environmentDaemonKeys({ AOE_SPIN_US: '5000' }), /spin-us = 5000 is out of range; use 0\.\.1000/);
  t.throws(
    () => environmentDaemonKeys({ AOE_MAP: 'maybe' }),
    /^AOE_MAP=maybe in the environment: map-in-memory = "maybe" is not yes or no/,
  );
  // A name every object has is not a yes/no word (it read as a function or {} before).
  t.throws(() => environmentDaemonKeys({ AOE_MAP: 'constructor' }), /map-in-memory = "constructor" is not yes or no/);
  t.throws(() => environmentDaemonKeys({ AOE_MAP: '__proto__' }), /map-in-memory = "__proto__" is not yes or no/);
});

t.test('shared, user and duplicate-probe-ms reach the server config', async (t) => {
  const text = `[daemon]\nuser = vblade\nduplicate-probe-ms = 500\n[export e1.1]\nfile = /a\ninterfaces = eth1\nshared = yes\n[export e1.2]\nfile = /a\ninterfaces = eth1\n`;
  const file = parseConfigFile(text, F);
  t.equal(file.exports[0].shared, true, 'shared = yes');
  t.equal(file.exports[1].shared, undefined, 'not set: left out, so reloads compare equal');
  const s = resolveDaemonSettings(file.daemon, {}, { program: 'vbladed', defaultName: 'v' });
  const c = serverConfigOf(file.exports, s);
  t.equal(c.user, 'vblade', 'user');
  t.equal(c.tunables?.duplicateProbeMs, 500, 'duplicate-probe-ms');
  t.equal(serverConfigOf(file.exports, resolveDaemonSettings({}, {}, { program: 'vbladed', defaultName: 'v' })).user, undefined);
  t.throws(() => parseConfigFile(text.replace('500', '10001'), F), {
    message: `${F}:3: duplicate-probe-ms = 10001 is out of range; use 0..10000`,
  });
});

t.test("the tunables have one default: the table's is DEFAULT_TUNABLES", async (t) => {
  t.same(tunablesOf(), DEFAULT_TUNABLES, 'nothing set: the defaults');
  const s = resolveDaemonSettings({}, {}, { program: 'vbladed', defaultName: 'v' });
  t.same(serverConfigOf([], s).tunables, DEFAULT_TUNABLES, 'the daemon settings agree');
  t.same(TUNABLE_KEYS.map((k) => k.field).sort(), Object.keys(DEFAULT_TUNABLES).sort(), 'one key per tunable');
  t.same(tunablesOf({ 'announce-interval': '5' }, { 'announce-interval': '7' }).announceSeconds, 5, 'the first layer wins');
});

/** A valid value of a key other than its default. */
function otherValue(def: DaemonKeyDef): string {
  if (def.values) return def.values.find((v) => v !== def.default)!;
  if (def.type === 'bool') return def.default === 'yes' ? 'no' : 'yes';
  if (def.type === 'count') return String(def.range ? def.range[1] : Number(def.default) + 1);
  if (def.type === 'listen') return '127.0.0.1:9469';
  return def.type === 'path' ? '/srv/other' : 'other';
}

t.test('a reload reports every changed key it cannot apply, and only those', async (t) => {
  const ctx = { program: 'vbladed' as const, defaultName: 'v' };
  const running = resolveDaemonSettings({}, {}, ctx);
  t.same(changesNeedingRestart(running, resolveDaemonSettings({}, {}, ctx)), [], 'nothing changed');
  for (const def of DAEMON_KEYS) {
    const next = resolveDaemonSettings({ [def.key]: otherValue(def) }, {}, ctx);
    t.not(JSON.stringify(next[def.field]), JSON.stringify(running[def.field]), `${def.key} changes its field`);
    const reported = changesNeedingRestart(running, next);
    if (def.reload === 'applies') t.notOk(reported.includes(def.key), `a reload applies ${def.key}`);
    else t.ok(reported.includes(def.key), `${def.key} waits for a restart, and the reload says so`);
  }
});

t.test('name: a name that would leave the run directory is a config error that says what a name may be', async (t) => {
  const base = '[export e1.1]\nfile = /srv/a.img\ninterfaces = eth1\n';
  const rule = 'use up to 64 letters, digits and _ . @ -, not starting with a dot (it names the pid file and control socket)';
  for (const bad of ['../../etc/x', 'a/b', '.hidden', 'a b', 'x'.repeat(65), 'tab\there'])
    t.throws(() => parseConfigFile(`[daemon]\nname = ${bad}\n${base}`, F), {
      message: `${F}:2: name = "${bad}" is not an instance name; ${rule}`,
    });
  for (const good of ['vblade', 'e1.1@fake0', 'san-2_a', 'x'.repeat(64)])
    t.equal(parseConfigFile(`[daemon]\nname = ${good}\n${base}`, F).daemon.name, good);
  t.throws(() => parseVbladedArgs(['--name', '../x', '--config', F]), {
    message: `--name = "../x" is not an instance name; ${rule}`,
  });
});

t.test('vbladed with nothing to serve names --config first (the recipe once forgot it)', async (t) => {
  for (const argv of [['--check'], [], ['--foreground', '--user', 'vblade']])
    t.throws(() => parseVbladedArgs(argv), {
      message:
        /^name what to serve: --config FILE \(e\.g\. vbladed --config \/etc\/vblade\.conf\), --debian-config FILE, or vblade's arguments shelf slot netif file$/,
    });
  t.equal(parseVbladedArgs(['--help']).help, true, '--help alone still shows the help');
  t.equal(parseVbladedArgs(['--version']).version, true, '--version alone still prints the version');
  t.equal(parseVbladedArgs(['--check', '--config', F]).mode, 'config');
});
