// A config string set over the wire by any initiator (Query Config force
// set) reaches the admin through `vblade ctl`, which must not pass its
// control characters on raw. The target decodes the string latin1, so
// bytes 0x80-0x9f become C1 controls (U+0080-U+009F), which JSON does not
// escape and which xterm acts on (CSI U+009B, OSC U+009D).
//
// Network safety: vbladed, `vblade ctl` and the client run only inside
// namespaces this test creates, on a veth pair it creates; everything is
// removed in teardown.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AoeClient, linkInfo } from '../../src/client';
import { patternFile, tempDir } from '../helpers/files';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { REPO, waitLinkUp } from '../helpers/targets';

const VBLADED = path.join(REPO, 'bin', 'vbladed.js');
const VBLADE = path.join(REPO, 'bin', 'vblade.js');
/** The review's string: SGR by ESC, CSI and OSC by C1, BEL. */
const HOSTILE = 'A\x1b[31mB\x9b31mC\x9d0;pwned\x07D';
/** What must not reach a terminal: C0 but newline and the tab between columns, DEL, C1. */
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

if (requireRoot(t)) {
  t.test('a config string with C0 and C1 controls set over the wire: ctl shows it escaped', async (t) => {
    const pair = await createNetnsPair(t);
    const dir = tempDir(t, 'ctl-wire');
    const file = await patternFile(t, 64);
    const conf = path.join(dir, 'vblade.conf');
    const socket = path.join(dir, 'ctl.sock');
    const log = path.join(dir, 'vbladed.log');
    fs.writeFileSync(
      conf,
      `[daemon]\ncontrol-socket = ${socket}\n\n[export e7.1]\nfile = ${file}\ninterfaces = ${pair.targetIf}\n`,
    );
    const daemon = pair.target.spawn(t, process.execPath, [
      VBLADED,
      '--foreground',
      '--config',
      conf,
      '--run-dir',
      path.join(dir, 'run'),
      '--state-dir',
      path.join(dir, 'state'),
      '--log',
      'file',
      '--log-file',
      log,
      '--log-format',
      'text',
    ]);
    const serving = (): boolean => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('is serving e7.1');
    for (let i = 0; !serving(); i++) {
      if (i > 300 || !daemon.running) throw new Error(`vbladed did not serve: ${daemon.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitLinkUp(pair.target, pair.targetIf);
    await waitLinkUp(pair.init, pair.initIf);
    const c = AoeClient.open(pair.initIf, { netns: pair.init.path, timeoutMs: 500, retries: 3 });
    try {
      const set = await c.configForceSet({ shelf: 7, slot: 1, mac: linkInfo(pair.targetIf, pair.target.path).mac }, HOSTILE);
      t.equal(set, HOSTILE, 'the target took the string');
    } finally {
      c.close();
    }

    const list = await pair.target.run(process.execPath, [VBLADE, 'ctl', '--socket', socket, 'list'], { timeoutMs: 20000 });
    t.equal(list.code, 0, list.stderr);
    t.notMatch(list.stdout, RAW_CONTROL, 'ctl list: no raw control character');
    t.match(list.stdout, '\tconfig: "A\\u001b[31mB\\u009b31mC\\u009d0;pwned\\u0007D"\n', 'shown escaped');
    const json = await pair.target.run(process.execPath, [VBLADE, 'ctl', '--socket', socket, '--json', 'list'], {
      timeoutMs: 20000,
    });
    t.notMatch(json.stdout, RAW_CONTROL, 'ctl --json list: no raw control character');
    const parsed = JSON.parse(json.stdout) as { exports: Array<{ state: { config: string } }> };
    t.equal(parsed.exports[0].state.config, HOSTILE, 'and the JSON still reads back as the string set');
    const mask = await pair.target.run(process.execPath, [VBLADE, 'ctl', '--socket', socket, 'show-state', 'e7.1'], {
      timeoutMs: 20000,
    });
    t.notMatch(mask.stdout, RAW_CONTROL, 'ctl show-state: no raw control character');
    t.match(mask.stdout, 'config "A\\u001b[31mB\\u009b31mC\\u009d0;pwned\\u0007D"');

    await daemon.stop();
  });
}
