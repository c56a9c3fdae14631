// Link faults while requests are in flight: the target's interface
// goes down and up, its MTU goes 1500 -> 9000 -> 1500, and its veth pair is
// deleted and recreated with the same names, all during a verified mixed
// load with retransmission. The daemon must survive each, resume, and answer
// with the sector count of the MTU it has now; the load must finish with no
// failed request and no wrong data (lost frames are the initiator's to
// retransmit, nothing else may be lost).
//
// The target hangs off a bridge (lib/topology.ts), so the initiator's own
// interface and sockets are untouched by what happens to the target's.

import t from 'tap';
import { runLoad, LoadResult } from '../../src/client/load';
import { checkSectors } from '../../src/client/pattern';
import { sleep } from '../../lab/common';
import { sparseFile, tempDir } from '../helpers/files';
import { requireRoot } from '../../lab/netns';
import { logRecords, openClient, writeClientPattern } from './lib/harness';
import { startTarget, waitLinkUp } from '../helpers/targets';
import { createHub } from './lib/topology';

const SHELF = 41;
const SLOT = 2;
const SECTORS = 16384;

if (requireRoot(t)) {
  t.test('down/up, MTU 1500 -> 9000 -> 1500 and a recreated veth under load', async (t) => {
    const hub = await createHub(t, { initiators: 1, mtu: 1500 });
    const file = await sparseFile(t, SECTORS * 512, { dir: tempDir(t, 'link') });
    writeClientPattern(file, 0, SECTORS);
    const d = await startTarget(t, hub.target.ns, [String(SHELF), String(SLOT), hub.target.ifname, file]);
    const init = hub.inits[0];
    const loadClient = await openClient(t, init.ns, init.ifname, { timeoutMs: 1000, retries: 10 });
    const ctl = await openClient(t, init.ns, init.ifname, { timeoutMs: 500, retries: 10 });
    const target = await loadClient.find(SHELF, SLOT, 10000);
    t.equal(target.sectorCount, 2, 'MTU 1500: 2 sectors per request');
    loadClient.pause();

    const steps: string[] = [];
    const load: Promise<LoadResult> = runLoad({
      socket: loadClient.socket,
      srcMac: loadClient.mac,
      target,
      op: 'mix',
      readPercent: 60,
      pattern: 'random',
      sectors: 2,
      window: 16,
      lbaCount: SECTORS,
      durationMs: 16000,
      verify: 'pattern',
      timeoutMs: 250,
      maxRetries: 80,
      seed: 0x11ff,
    });

    const sectorCount = async (): Promise<number> => (await ctl.find(SHELF, SLOT, 10000)).sectorCount;
    const waitSectors = async (want: number, what: string): Promise<void> => {
      const deadline = Date.now() + 10000;
      let got = -1;
      while (Date.now() < deadline) {
        got = await sectorCount();
        if (got === want) break;
        await sleep(100);
      }
      t.equal(got, want, `${what}: Query Config advertises ${want} sectors`);
    };

    await sleep(1500);
    // 1. Interface down and up.
    await hub.target.veth.down('a');
    steps.push('down');
    await sleep(1500);
    t.ok(d.proc.running, 'the daemon survives its interface going down');
    await hub.target.veth.up('a');
    await waitLinkUp(hub.target.ns, hub.target.ifname);
    await waitSectors(2, 'after down/up');

    // 2. MTU 1500 -> 9000: bigger requests are accepted and carry the right data.
    await hub.setMtu(9000);
    steps.push('mtu 9000');
    await waitSectors(17, 'MTU 9000');
    ctl.mtu = 9000;
    const big = await ctl.ata(target, { command: 0x24, aflags: 0x40, sectorCount: 17, lba: 4000 });
    t.equal(big.frame.length, 36 + 17 * 512, 'a 17-sector read is answered in one 8740-byte frame');
    t.equal(checkSectors(big.frame, 36, 4000, 17), -1, 'with the right data');

    // 3. MTU 9000 -> 1500: the maximum goes back down.
    await hub.setMtu(1500);
    ctl.mtu = 1500;
    steps.push('mtu 1500');
    await waitSectors(2, 'MTU back to 1500');
    const tooBig = await ctl.ata(target, { command: 0x24, aflags: 0x40, sectorCount: 17, lba: 4000 });
    t.same([tooBig.ata.status, tooBig.ata.err], [0x41, 0x04], 'a 17-sector request is now refused with ABRT (it would not fit)');

    // 4. The veth pair deleted and recreated with the same names.
    await hub.recreateTarget();
    steps.push('recreated');
    await waitLinkUp(hub.target.ns, hub.target.ifname);
    await waitSectors(2, 'after the veth was recreated');
    t.equal(checkSectors(await ctl.read(target, 100, 8), 0, 100, 8), -1, 'reads are served on the new interface');
    t.ok(d.proc.running, 'the daemon is still running');

    const r = await load;
    loadClient.resume();
    t.comment(
      `load: ${r.ops} requests (${r.reads} reads, ${r.writes} writes) in ${(r.elapsedMs / 1000).toFixed(1)} s, ${r.retransmits} retransmissions, ` +
        `${r.errors.stale} late replies; faults: ${steps.join(', ')}`,
    );
    t.same(
      { aoe: r.errors.aoe, ata: r.errors.ata, verify: r.errors.verify, short: r.errors.short, timeouts: r.errors.timeouts },
      { aoe: 0, ata: 0, verify: 0, short: 0, timeouts: 0 },
      `the load finished with every request answered and verified${r.firstError ? ` (first error: ${r.firstError})` : ''}`,
    );
    t.ok(r.ops > 1000, 'and made progress');
    t.ok(r.retransmits > 0, 'lost frames were retransmitted');
    const logs = logRecords(d.proc).map((l) => String(l.msg));
    t.ok(logs.includes('link down'), 'logged: link down');
    t.ok(logs.includes('MTU changed') || logs.includes('closing interface'), 'logged: the MTU change');
    t.ok(logs.includes('closing interface'), 'logged: the interface was closed for a reopen');
    t.ok(d.proc.running, 'the daemon is still running');
  });
}
