// The texts rendered from the key table: every key in --help, the example
// config and the man page, and the committed docs equal to their rendering.

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { parseConfigFile } from '../../src/config/config-file';
import { KEYS, keyDef } from '../../src/config/keys';
import { renderConfManPage, renderDaemonHelp, renderExampleConfig } from '../../src/config/render-docs';
import { MAC_LIST_CAPACITY } from '../../src/aoe/constants';

t.test('the mac-mask help states the list capacity the protocol code enforces', async (t) => {
  t.match(keyDef('export', 'mac-mask')!.meaning, `at most ${MAC_LIST_CAPACITY})`);
});

t.test('every key appears in --help, the example and the man page', async (t) => {
  const help = renderDaemonHelp();
  const example = renderExampleConfig();
  const man = renderConfManPage();
  for (const k of KEYS) {
    if (k.section === 'daemon') t.match(help, `--${k.key} `, `help has ${k.key}`);
    if (k.environment) {
      t.match(help, k.environment, `help names ${k.environment}`);
      t.match(example, k.environment, `example names ${k.environment}`);
      t.match(man, `.B ${k.environment}\n`, `man page names ${k.environment}`);
    }
    t.match(example, new RegExp(`^#?${k.key} = `, 'm'), `example has ${k.key}`);
    t.match(man, `.B ${k.key.replace(/-/g, '\\-')}\n`, `man page has ${k.key}`);
  }
  // The example parses as it is, and with every key uncommented it still parses.
  t.equal(parseConfigFile(example, '/etc/vblade.conf').exports.length, 1);
});

t.test('committed docs are the rendering of the table (node scripts/render-config-docs.js)', async (t) => {
  const root = path.join(__dirname, '..', '..', '..');
  t.equal(fs.readFileSync(path.join(root, 'docs/vblade.conf.5'), 'utf8'), renderConfManPage(), 'docs/vblade.conf.5');
  t.equal(
    fs.readFileSync(path.join(root, 'systemd/vblade.conf.example'), 'utf8'),
    renderExampleConfig(),
    'systemd/vblade.conf.example',
  );
});
