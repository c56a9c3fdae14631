// AoeClient against an in-process fake target (no network).
import t from 'tap';
import { AoeClient } from '../../src/client/client';
import { AoeError, AtaError, TimeoutError } from '../../src/client/errors';
import { checkSectors, fillSectors } from '../../src/client/pattern';
import { writeConfigQuery, writeMaskRequest } from '../../src/client/requests';
import { FakeTarget, FakeTargetOptions } from './fake-target';

const US = Uint8Array.from([0x02, 0, 0, 0, 0, 0x0a]);

function open(opts: FakeTargetOptions = {}, mtu = 9000): { fake: FakeTarget; client: AoeClient } {
  const fake = new FakeTarget({ maxSectors: 17, ...opts });
  const client = new AoeClient(fake, { mac: US, mtu, timeoutMs: 30, retries: 2 });
  return { fake, client };
}

t.test('discover, identify, read, write', async (t) => {
  const { fake, client } = open();
  const found = await client.discover();
  t.equal(found.length, 1);
  const target = found[0];
  t.match(target, {
    shelf: 7,
    slot: 3,
    macText: '02:00:00:00:00:0b',
    bufferCount: 16,
    sectorCount: 17,
    firmware: 0x4019,
    aoeVersion: 1,
    config: '',
  });
  t.same(await client.discover(7, 4), [], 'nobody answers for e7.4');

  const id = await client.identify(target);
  t.equal(id.sectors, fake.sectors);
  t.equal(id.lba48, true);
  t.equal(id.model, 'Fake AoE target');

  const data = await client.read(target, 10, 40); // 17 + 17 + 6 sectors
  t.equal(data.length, 40 * 512);
  t.equal(checkSectors(data, 0, 10, 40), -1, 'read data is the pattern of LBA 10..49');

  const out = new Uint8Array(3 * 512);
  fillSectors(out, 0, 1000, 3);
  await client.write(target, 2000, out);
  t.same(fake.disk.subarray(2000 * 512, 2003 * 512), out);
  t.same(await client.read28(target, 2000, 3), out, '28-bit read');
  await client.write28(target, 3000, out);
  t.same(fake.disk.subarray(3000 * 512, 3003 * 512), out);
  t.equal((await client.flush(target)).ata.status, 0x40);

  await t.rejects(client.write(target, 0, new Uint8Array(100)), RangeError);
  client.close();
  t.ok(fake.closed);
});

t.test('requests are split by what the target and the MTU allow', async (t) => {
  const { fake, client } = open({}, 1500);
  fake.record = true;
  const target = await client.find(7, 3);
  t.equal(client.maxSectors(target), 2, 'MTU 1500 allows 2 sectors');
  await client.read(target, 0, 5);
  t.same(
    fake.sent
      .slice(1)
      .map((f) => f[26])
      .sort(),
    [1, 2, 2],
  );
  client.close();
});

t.test('errors: ATA, AoE, timeouts', async (t) => {
  const { fake, client } = open({ sectors: 100, aoeErrorAt: new Map([[50, 3]]) });
  const target = await client.find(7, 3);
  await t.rejects(client.read(target, 99, 2), AtaError);
  await t.rejects(client.read(target, 99, 2), /status 0x41, error 0x10 \(IDNF\)/);
  await t.rejects(client.read(target, 50, 1), AoeError);
  await t.rejects(client.read(target, 50, 1), /AoE error 3 \(device unavailable\)/);
  const r = await client.ata(target, { command: 0xef });
  t.equal(r.ata.status, 0x41, 'ata() returns failed replies instead of throwing');
  t.equal(r.ata.err, 0x04);

  fake.close();
  const quiet = new FakeTarget({ drop: () => true });
  const c2 = new AoeClient(quiet, { mac: US, mtu: 9000, timeoutMs: 10, retries: 2 });
  quiet.record = true;
  await t.rejects(c2.identify({ shelf: 7, slot: 3, mac: quiet.mac }), TimeoutError);
  t.equal(quiet.sent.length, 3, 'one send and two retransmissions');
  const tags = new Set(quiet.sent.map((f) => f.subarray(20, 24).join()));
  t.equal(tags.size, 3, 'each retransmission has a new tag');
  await t.rejects(c2.find(7, 3, 50), /no AoE target e7.3 answered/);
  c2.close();
});

t.test('error messages count sectors as a reader says them', async (t) => {
  const { fake, client } = open({ sectors: 100, aoeErrorAt: new Map([[50, 3]]) });
  t.teardown(() => fake.close());
  const target = await client.find(7, 3);
  await t.rejects(client.read(target, 50, 1), {
    message: 'read of 1 sector at LBA 50 to e7.3 refused: AoE error 3 (device unavailable)',
  });
  await t.rejects(client.read(target, 99, 2), { message: /^read of 2 sectors at LBA 99 failed: / });
  await t.rejects(client.write(target, 50, new Uint8Array(512)), { message: /^write of 1 sector at LBA 50 / });
  await t.rejects(client.read28(target, 50, 1), { message: /^28-bit read of 1 sector at LBA 50 / });
  await t.rejects(client.write28(target, 50, new Uint8Array(512)), { message: /^28-bit write of 1 sector at LBA 50 / });
});

t.test('config string commands', async (t) => {
  const { client } = open();
  const target = await client.find(7, 3);
  t.equal(await client.configRead(target), '');
  t.equal(await client.configSet(target, 'hello'), 'hello');
  t.equal(await client.configSet(target, 'hello'), 'hello', 'setting the same string again succeeds');
  const err = await client.configSet(target, 'other').catch((e: unknown) => e);
  t.type(err, AoeError);
  t.equal((err as AoeError).code, 4);
  t.equal(await client.configTest(target, 'hello'), true);
  t.equal(await client.configTest(target, 'hell'), false, 'no reply on mismatch');
  t.equal(await client.configPrefixTest(target, 'hell'), true);
  t.equal(await client.configForceSet(target, 'x'), 'x');
  const found = await client.discover();
  t.equal(found[0].config, 'x');
  client.close();
});

t.test('mask and reserve commands', async (t) => {
  const { fake, client } = open();
  const target = await client.find(7, 3);
  t.same(await client.maskRead(target), []);
  const r = await client.maskEdit(target, ['02:00:00:00:00:0a', '02:00:00:00:00:01']);
  t.equal(r.merror, 0);
  t.same(
    r.directives.map((d) => d.mac),
    ['02:00:00:00:00:0a', '02:00:00:00:00:01'],
  );
  t.same(
    (await client.maskEdit(target, [], ['02:00:00:00:00:01'])).directives.map((d) => d.mac),
    ['02:00:00:00:00:0a'],
  );
  const bad = await client.mask(target, 1, [{ command: 9, mac: US }]);
  t.same({ merror: bad.merror, dirCount: bad.dirCount }, { merror: 2, dirCount: 0 });
  fake.mask = [];

  t.same(await client.reserveRead(target), []);
  t.same(await client.reserveSet(target, ['02:00:00:00:00:0a']), ['02:00:00:00:00:0a']);
  t.same((await client.read(target, 0, 1)).length, 512, 'the holder may read');
  fake.reserve = ['02:00:00:00:00:99'];
  const e = await client.read(target, 0, 1).catch((x: unknown) => x);
  t.equal((e as AoeError).code, 6, 'others get error 6');
  await t.rejects(client.reserveSet(target, []), /AoE error 6/);
  t.same(await client.reserveForceSet(target, []), []);
  t.same(await client.release(target), []);
  client.close();
});

t.test('rawExchange sends any frame and collects replies', async (t) => {
  const { fake, client } = open();
  const frame = new Uint8Array(60);
  const len = writeConfigQuery(frame, 0, { dst: fake.mac, src: US, shelf: 7, slot: 3 }, 0x1234, 9);
  const got = await client.rawExchange(frame.subarray(0, len), { timeoutMs: 20 });
  t.equal(got.length, 1);
  t.match(got[0].header, { error: true, errorCode: 2, tag: 0x1234 }, 'CCmd 9: bad argument');

  const mask = new Uint8Array(60);
  const mlen = writeMaskRequest(mask, 0, { dst: fake.mac, src: US, shelf: 7, slot: 3 }, 0x5555, 7);
  t.equal((await client.rawExchange(mask.subarray(0, mlen), { timeoutMs: 20, max: 1 })).length, 1);

  // Replies with another tag are only collected with matchTag: false.
  const unsolicited = new Uint8Array(32);
  unsolicited.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x0b, 0x88, 0xa2, 0x08, 0, 0, 7, 3, 1, 0, 0, 0, 0]);
  setTimeout(() => fake.inject(unsolicited), 5);
  t.equal((await client.rawExchange(mask.subarray(0, mlen), { timeoutMs: 20 })).length, 1);
  setTimeout(() => fake.inject(unsolicited), 5);
  const all = await client.rawExchange(mask.subarray(0, mlen), { timeoutMs: 20, matchTag: false });
  t.equal(all.length, 2);
  t.equal(all.filter((f) => f.header.tag === 0 && f.header.version === 0).length, 1, 'the announcement is among them');

  const seen: number[] = [];
  const stop = client.listen((f) => seen.push(f.header.tag));
  fake.inject(unsolicited);
  await new Promise((r) => setTimeout(r, 10));
  stop();
  t.same(seen, [0]);
  client.close();
});

t.test('tags: bit 31 clear by default, set with userTags', async (t) => {
  const fake = new FakeTarget();
  const a = new AoeClient(fake, { mac: US, mtu: 1500 });
  const b = new AoeClient(fake, { mac: US, mtu: 1500, userTags: true });
  for (let i = 0; i < 100; i++) {
    t.ok(a.newTag() < 0x80000000);
    t.ok(b.newTag() >= 0x80000000);
  }
});

t.test('pause hands the socket over', async (t) => {
  const { client } = open();
  const target = await client.find(7, 3);
  client.pause();
  client.resume();
  t.equal((await client.read(target, 0, 1)).length, 512);
  client.close();
  await t.rejects(async () => client.read(target, 0, 1), /closed/);
});
