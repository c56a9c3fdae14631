// vblade's own long options for the serving tunables: checked like the
// config file's keys, and winning over the compatibility environment
// variables, which win over the table's defaults.

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createNetns, requireRoot } from '../../lab/netns';
import { OUR_VBLADE, REPO } from '../helpers/targets';
import { environmentDaemonKeys, tunablesOf } from '../../src/config/daemon-settings';
import { DEFAULT_TUNABLES } from '../../src/config/export-config';
import { UsageError } from '../../src/config/vblade-args';
import { VBLADE_HELP, parseCommandLine } from '../../src/cli/vblade';

const POSITIONAL = ['1', '1', 'eth1', '/srv/a.img'];

t.test('--spin-us and --map-in-memory are taken out before the vblade arguments', async (t) => {
  const c = parseCommandLine(['--spin-us', '0', '-r', '--map-in-memory=no', ...POSITIONAL]);
  t.same(c.tunableKeys, { 'spin-us': '0', 'map-in-memory': 'no' });
  t.equal(c.config?.readOnly, true, 'the vblade options around them still count');
  t.same(parseCommandLine(POSITIONAL).tunableKeys, {}, 'nothing given, nothing set');
});

t.test('bad values are usage errors that say what to write', async (t) => {
  t.throws(
    () => parseCommandLine(['--spin-us', '2000', ...POSITIONAL]),
    new UsageError('--spin-us = 2000 is out of range; use 0..1000'),
  );
  t.throws(
    () => parseCommandLine(['--map-in-memory', 'sometimes', ...POSITIONAL]),
    /^--map-in-memory = "sometimes" is not yes or no/,
  );
  t.throws(() => parseCommandLine([...POSITIONAL, '--spin-us']), /option --spin-us needs a value/);
});

t.test('option over environment over default', async (t) => {
  const env = environmentDaemonKeys({ AOE_SPIN_US: '400', AOE_MAP: '0' });
  t.same(tunablesOf({}, {}), DEFAULT_TUNABLES, 'defaults');
  t.same(
    tunablesOf({}, env),
    {
      spinMicros: 400,
      spinPolicy: 'adaptive',
      mapInMemory: false,
      duplicateProbeMs: 300,
      duplicateRetrySeconds: 30,
      announceSeconds: 10,
    },
    'the environment',
  );
  t.same(
    tunablesOf(
      { 'spin-us': '0', 'spin-policy': 'always', 'map-in-memory': 'yes', 'duplicate-probe-ms': '0', 'announce-interval': '0' },
      env,
    ),
    {
      spinMicros: 0,
      spinPolicy: 'always',
      mapInMemory: true,
      duplicateProbeMs: 0,
      duplicateRetrySeconds: 30,
      announceSeconds: 0,
    },
    'the options, 0 included',
  );
});

t.test('--help lists both with their environment variables', async (t) => {
  for (const s of ['--spin-us', '--map-in-memory', 'AOE_SPIN_US', 'AOE_MAP']) t.match(VBLADE_HELP, s);
});

t.test('--announce-interval SECONDS: taken, checked, listed in --help', async (t) => {
  t.equal(tunablesOf(parseCommandLine(['--announce-interval', '5', ...POSITIONAL]).tunableKeys, {}).announceSeconds, 5);
  t.throws(
    () => parseCommandLine(['--announce-interval', '5s', ...POSITIONAL]),
    /^--announce-interval = "5s" is not a whole number/,
  );
  t.throws(() => parseCommandLine(['--announce-interval', '7200', ...POSITIONAL]), /out of range; use 0\.\.3600/);
  t.match(VBLADE_HELP, /--announce-interval SECONDS/);
});

t.test('--version prints the version, as vbladed --version does', async (t) => {
  if (!requireRoot(t)) return;
  // In a namespace of its own, as every run of vblade in the tests.
  const ns = await createNetns(t, 'version');
  const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  const r = await ns.run(process.execPath, [OUR_VBLADE, '--version']);
  t.same({ code: r.code, stdout: r.stdout, stderr: r.stderr }, { code: 0, stdout: `vblade ${version}\n`, stderr: '' });
});
