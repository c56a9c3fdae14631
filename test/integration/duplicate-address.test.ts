// A second target for an address that is already served: at start-up our
// target asks on each interface who answers its shelf.slot, and refuses to
// serve it when another target does (ours or Debian's vblade, on the other
// end of the wire), or when another of our processes serves it on the same
// interface of this host (which the wire cannot show: the two never see each
// other's frames). With --shared (shared = yes) both serve, as an
// active-active failover pair does.
//
// Network safety: every target runs inside the namespaces this test creates.

import t from 'tap';
import { join } from 'node:path';
import type { TestLike } from '../../lab/common';
import { sparseFile, tempDir } from '../helpers/files';
import { createNetnsPair, requireRoot, type NetnsPair } from '../../lab/netns';
import { REPO, startTarget, targetCommand, waitLinkUp } from '../helpers/targets';

const SHELF = 62;
const SLOT = 7;
const ADDRESS = [String(SHELF), String(SLOT)];

async function pairWithFiles(t: TestLike): Promise<{ net: NetnsPair; first: string; second: string; peerMac: string }> {
  const net = await createNetnsPair(t, { mtu: 1500 });
  await waitLinkUp(net.target, net.targetIf);
  await waitLinkUp(net.init, net.initIf);
  const dir = tempDir(t, 'dup');
  const first = await sparseFile(t, 2048 * 512, { dir, name: 'first.img' });
  const second = await sparseFile(t, 2048 * 512, { dir, name: 'second.img' });
  const peerMac = (await net.veth.show('b')).address;
  return { net, first, second, peerMac };
}

/** Runs our vblade in the target namespace until it exits (or 60 s). */
async function runOurs(net: NetnsPair, args: string[]) {
  const [cmd, argv] = targetCommand(args);
  return net.target.run(cmd, argv, { timeoutMs: 60000 });
}

if (requireRoot(t)) {
  t.test('another of our targets on the wire serves the address: refused, then allowed with --shared', async (t) => {
    const { net, first, second, peerMac } = await pairWithFiles(t);
    const other = await startTarget(t, net.init, [...ADDRESS, net.initIf, first], { label: 'first' });
    const r = await runOurs(net, [...ADDRESS, net.targetIf, second]);
    t.equal(r.code, 1, 'exit status 1');
    t.match(
      r.stderr,
      new RegExp(`^vblade: e${SHELF}\\.${SLOT} is already served on ${net.targetIf} by ${peerMac}; .*shared = yes`, 'm'),
      `the message names the address, the interface, the other MAC and the key: ${r.stderr.trim()}`,
    );
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
    const both = await startTarget(t, net.target, ['--shared', ...ADDRESS, net.targetIf, second], { label: 'second' });
    t.equal(both.mode, 'O_RDWR', 'with --shared the second starts');
    t.ok(other.proc.running, 'and the first goes on serving');
  });

  t.test("Debian's vblade on the wire serves the address: refused", async (t) => {
    const { net, first, second, peerMac } = await pairWithFiles(t);
    await startTarget(t, net.init, [...ADDRESS, net.initIf, first], { kind: 'vblade', label: 'debian' });
    const r = await runOurs(net, [...ADDRESS, net.targetIf, second]);
    t.equal(r.code, 1, 'exit status 1');
    t.match(r.stderr, `is already served on ${net.targetIf} by ${peerMac}`, `names vblade's MAC: ${r.stderr.trim()}`);
  });

  t.test('another of our processes serves the address on the same interface: refused', async (t) => {
    const { net, first, second } = await pairWithFiles(t);
    const firstRun = tempDir(t, 'run-a');
    const secondRun = tempDir(t, 'run-b');
    await startTarget(t, net.target, ['--state-dir', firstRun, ...ADDRESS, net.targetIf, first], { label: 'first' });
    const r = await runOurs(net, ['--state-dir', secondRun, ...ADDRESS, net.targetIf, second]);
    t.equal(r.code, 1, 'exit status 1');
    t.match(
      r.stderr,
      `vblade: another aoe-target process on this host already serves e${SHELF}.${SLOT} on ${net.targetIf}`,
      `the message says so: ${r.stderr.trim()}`,
    );
    const other = await startTarget(t, net.target, ['--null', String(SHELF), String(SLOT + 1), net.targetIf, '1M'], {
      label: 'other-slot',
    });
    t.equal(other.sectors, 2048, 'another address on the same interface is served');
  });

  t.test('vbladed with its own run-dir for an address our vblade serves on the same interface: refused', async (t) => {
    const { net, first, second } = await pairWithFiles(t);
    await startTarget(t, net.target, [...ADDRESS, net.targetIf, first], { label: 'first' });
    const dir = tempDir(t, 'vbladed-dup');
    const r = await net.target.run(
      process.execPath,
      [
        join(REPO, 'bin', 'vbladed.js'),
        '--run-dir',
        join(dir, 'run'),
        '--state-dir',
        'none',
        '--log-file',
        join(dir, 'vbladed.log'),
        ...ADDRESS,
        net.targetIf,
        second,
      ],
      { timeoutMs: 60000 },
    );
    // Every export is refused: nothing can be served, so the launcher says why and exits 1, and nothing is left running.
    t.equal(r.code, 1, 'the launcher exits 1');
    t.equal(r.stdout, '', 'no pid: nothing runs');
    t.match(
      r.stderr,
      `vbladed: nothing can be served, so vbladed stops; fix the configuration (or the files it names) and start it again:\n  another aoe-target process on this host already serves e${SHELF}.${SLOT} on ${net.targetIf}`,
      `the launcher says why: ${r.stderr.trim()}`,
    );
  });
}
