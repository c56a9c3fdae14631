// NBD exports against a local user who is not root: once the real server's
// unix socket is gone, another user plants a server of their own at the same
// path (possible in a sticky directory every user shares, which the check at
// open allows). The target must not reconnect to it: it would serve that
// user's data to initiators and send them the initiators' writes.

import t from 'tap';
import { chmodSync, existsSync, lstatSync, rmSync } from 'node:fs';
import { linkInfo, type Target } from '../../src/client';
import { AtaError } from '../../src/client/errors';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { requireCommands, spawnProcess, type Proc } from '../../lab/process';
import { tempDir } from '../helpers/files';
import { startNbdkit } from '../helpers/nbd-server';
import { serveNbdOnPair } from '../helpers/nbd-served';
import { parseRemoteUri } from '../../src/remote/remote-uri';
import { startTarget, waitLinkUp } from '../helpers/targets';
import { openClient, sectorDiff, stamp } from '../integration/lib';
import { sleep } from '../../lab/common';

const SHELF = 7;
const logSince = (p: Proc, from: number): string =>
  p.lines
    .slice(from)
    .map((l) => l.text)
    .join('\n');
const SLOT = 4;
const NOBODY = 65534;

if (requireRoot(t) && requireCommands(t, ['nbdkit', 'setpriv'])) {
  t.test("another user's server planted at the socket path after the server stops: not reconnected to", async (t) => {
    // A shared directory like /tmp: anyone may create names in it, only the owner removes them.
    const dir = tempDir(t, 'shared');
    chmodSync(dir, 0o1777);
    const server = await startNbdkit(t, ['memory', 'size=8M'], { dir });
    const { c, target, T } = await serveNbdOnPair(t, server.uri, {
      shelf: SHELF,
      slot: SLOT,
      options: ['--remote-timeout', '2'],
      client: { timeoutMs: 3000, retries: 0 },
    });
    const ours = stamp('ours', 2);
    await c.client.write(T, 10, ours);
    t.equal(sectorDiff(Buffer.from(await c.client.read(T, 10, 2)), ours), 'same', 'served from the real server');
    const from = target.proc.mark();
    await server.stop();
    // Its socket removed, as before a restart: the name is free for anyone to take in a shared directory.
    rmSync(server.socket, { force: true });
    // The same size, other data (every byte 0x99): what the planted server would hand out.
    const planted = spawnProcess(
      t,
      'setpriv',
      [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        '--clear-groups',
        'nbdkit',
        '--foreground',
        '--exit-with-parent',
        '--unix',
        server.socket,
        'data',
        'data=0x99*8388608',
      ],
      { label: 'planted nbdkit' },
    );
    for (let i = 0; i < 500 && !(existsSync(server.socket) && lstatSync(server.socket).isSocket()); i++) await sleep(20);
    t.equal(lstatSync(server.socket).uid, NOBODY, 'the planted socket is the other user’s');
    await target.proc.waitFor(/reconnect/, { from, timeoutMs: 10000 });
    // Give the reconnection loop a few attempts (back-off from 100 ms).
    await sleep(3000);
    t.notMatch(logSince(target.proc, from), /reconnected; serving resumes/, 'the log does not say it resumed');
    t.match(logSince(target.proc, from), /uid 65534/, `the log names the other user: ${target.proc.tail(1)}`);
    let got: Buffer | undefined;
    try {
      got = Buffer.from(await c.client.read(T, 10, 2));
    } catch (e) {
      t.type(e, AtaError, 'the read is an ATA error');
    }
    t.equal(got, undefined, `no data from the planted server reaches the initiator (got ${got?.subarray(0, 4).toString('hex')})`);
    t.ok(planted.running && target.proc.running, 'both still run');
  });

  t.test('a server that takes only 4096-byte blocks: refused at start, saying why and what to do', async (t) => {
    const server = await startNbdkit(t, [
      '--filter=blocksize-policy',
      'memory',
      'size=8M',
      'blocksize-minimum=4096',
      'blocksize-preferred=4096',
      'blocksize-maximum=1048576',
    ]);
    const pair = await createNetnsPair(t, { mtu: 1500 });
    await waitLinkUp(pair.target, pair.targetIf);
    let served = '';
    try {
      const target = await startTarget(t, pair.target, [String(SHELF), '5', pair.targetIf, server.uri]);
      const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 2000, retries: 0 });
      const T: Target = {
        shelf: SHELF,
        slot: 5,
        mac: linkInfo(pair.targetIf, pair.target.path).mac,
        sectorCount: 2,
        bufferCount: 16,
      };
      const one = await c.client.read(T, 1, 1).then(
        () => 'served',
        (e: Error) => e.message,
      );
      served = `served; a read of sector 1: ${one}; the log: ${target.proc.tail(3)}`;
    } catch (e) {
      t.match((e as Error).message, /4096.*512-byte sectors.*blocksize/, 'the reason, and what to do');
    }
    t.equal(served, '', 'not served');
  });
}

t.test('an nbd+unix URI with ";" in its query: refused, since libnbd reads it as a second parameter', async (t) => {
  // libnbd connects to /run/b.sock for this URI, while /run/a.sock;socket=/run/b.sock is the path checked.
  const uri = 'nbd+unix:///?socket=/run/a.sock;socket=/run/b.sock';
  t.throws(() => parseRemoteUri(uri), /";".*another parameter.*%3B/, 'refused, with the spelling that works');
  t.match(parseRemoteUri('nbd+unix:///?socket=/run/a%3Bb.sock'), { socket: '/run/a;b.sock' }, '%3B is a ";" in the path');
});
