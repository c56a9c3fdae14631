// The bench's C programs (bench/c, built into build/bench/ with the addon)
// over a veth pair between two namespaces this test creates: the reflector
// answers the project's own client as a target must (Query Config, IDENTIFY,
// reads of N sectors carrying N * 512 bytes, writes acknowledged, a range
// error past its end), and the blocking load generator drives it for about a
// second, reporting completed requests and no errors in its JSON line; it
// also catches a target whose data are not what it expects.

import t from 'tap';
import { existsSync } from 'node:fs';
import { AoeClient, AtaError } from '../../src/client';
import { LOADGEN, type LoadgenReport } from '../../bench/generators';
import { REFLECTOR } from '../../bench/targets';
import { skipOrFail } from '../../lab/common';
import { createNetnsPair, requireRoot } from '../../lab/netns';
import { describeRun, run, spawnProcess } from '../../lab/process';
import { waitLinkUp } from '../helpers/targets';

const SHELF = 3;
const SLOT = 4;
const CAPACITY = 65536; // sectors: 32 MiB, so the pattern image of a write run is quick to compute
const MTU = 9000; // 17 sectors per request

t.test('aoe-reflector answers as a target; aoe-loadgen measures it', async (t) => {
  if (!requireRoot(t)) return;
  for (const program of [REFLECTOR, LOADGEN]) {
    if (!existsSync(program)) {
      skipOrFail(t, `${program} is missing: build it with \`npx node-gyp rebuild\``);
      return;
    }
  }
  const net = await createNetnsPair(t, { mtu: MTU });
  const reflector = spawnProcess(t, REFLECTOR, [String(SHELF), String(SLOT), net.targetIf, String(CAPACITY)], {
    netns: net.target.name,
  });
  await waitLinkUp(net.init, net.initIf);
  const client = AoeClient.open(net.initIf, { netns: net.init.path, timeoutMs: 500, retries: 3 });
  t.teardown(() => client.close());

  const found = await client.find(SHELF, SLOT, 5000);
  t.equal(found.sectorCount, 17, 'Query Config: sectors per request from the MTU');
  t.equal(found.aoeVersion, 1);
  t.equal(found.config, '', 'an empty config string');
  const id = await client.identify(found);
  t.equal(id.sectors, CAPACITY, 'IDENTIFY gives the capacity it was started with');
  t.ok(id.lba48, 'LBA48');

  for (const n of [1, 2, 17]) {
    const r = await client.ata(found, { command: 0x24, aflags: 0x40, sectorCount: n, lba: 1000 });
    t.equal(r.ata.failed, false, `read of ${n} sector(s) succeeds`);
    t.equal(r.ata.data.length, n * 512, `read of ${n} sector(s) carries ${n * 512} bytes`);
    t.ok(
      r.ata.data.every((b) => b === 0),
      'zeros',
    );
  }
  await client.write(found, 5, new Uint8Array(17 * 512).fill(0xa5));
  t.pass('a 17-sector write is acknowledged');
  await t.rejects(client.read(found, CAPACITY - 1, 2), AtaError, 'a read past the end is an ATA error');

  const loadgen = async (args: string[]): Promise<LoadgenReport> => {
    const r = await run(
      LOADGEN,
      ['--if', net.initIf, '--shelf', String(SHELF), '--slot', String(SLOT), '--seconds', '1', '--warmup', '0.2', ...args],
      { netns: net.init.name, timeoutMs: 10000 },
    );
    if (r.code !== 0) throw new Error(describeRun(r));
    return JSON.parse(r.stdout.trim()) as LoadgenReport;
  };

  const reads = await loadgen(['--op', 'read', '--pattern', 'seq', '--sectors', '17', '--verify', 'zero']);
  t.ok(reads.ops > 0, `17-sector reads completed: ${reads.ops}`);
  t.equal(reads.errors, 0, `no errors${reads.first_error ? ` (${reads.first_error})` : ''}`);
  t.ok(reads.seconds > 0.8 && reads.seconds <= 1.01, `measured about 1 s: ${reads.seconds}`);
  t.ok(Math.abs(reads.mbps - (reads.iops * 17 * 512) / 1e6) < 0.1, 'MB/s are 17 sectors per request');
  t.ok(reads.p50_us > 0 && reads.p50_us <= reads.p99_us, `p50 ${reads.p50_us} µs ≤ p99 ${reads.p99_us} µs`);

  const writes = await loadgen(['--op', 'write', '--pattern', 'random', '--sectors', '2']);
  t.ok(writes.ops > 0, `2-sector writes completed: ${writes.ops}`);
  t.equal(writes.errors, 0, 'no errors');

  const wrong = await loadgen(['--op', 'read', '--verify', 'pattern']);
  t.equal(wrong.ops, 0, 'zeros are not the test pattern: nothing counts as done');
  t.ok(wrong.errors > 0 && wrong.error_kinds.data === wrong.errors, 'every read is a data error');
  t.equal(wrong.first_error, 'read data differ from the test pattern');

  const exit = await reflector.stop();
  t.equal(exit.code, 0, 'the reflector ends on SIGTERM');
  t.match(reflector.stderr(), /aoe-reflector: answered \d+ requests/);
});
