// The data pattern and the latency histogram.
import t from 'tap';
import { HISTOGRAM_BUCKETS, LatencyHistogram, bucketLow, bucketOf, bucketWidth } from '../../src/client/histogram';
import { formatMac, parseMac } from '../../src/client/mac';
import {
  PatternImage,
  checkSector,
  checkSectors,
  fillSector,
  fillSectors,
  isZero,
  patternLabel,
  sectorPattern,
} from '../../src/client/pattern';

t.test('sector N starts with SECT and N in 8 digits', async (t) => {
  const s = sectorPattern(1234);
  t.equal(Buffer.from(s.subarray(0, 12)).toString('latin1'), 'SECT00001234');
  t.equal(patternLabel(s, 0), 1234);
  t.equal(Buffer.from(sectorPattern(123456789012).subarray(0, 12)).toString('latin1'), 'SECT56789012', 'N modulo 10^8');
  t.equal(s.length, 512);
});

t.test('the rest depends on all of N, deterministically', async (t) => {
  const a = sectorPattern(7);
  const b = sectorPattern(7);
  const c = sectorPattern(8);
  const d = sectorPattern(7 + 100000000); // same 8 digits, different N
  t.same(a, b);
  t.not(Buffer.compare(a.subarray(12), c.subarray(12)), 0);
  t.not(Buffer.compare(a.subarray(12), d.subarray(12)), 0);
  t.ok(isZero(a, 12, 500) === false);
  // Golden bytes pin the generator down: a change would break backing files made to match.
  t.equal(Buffer.from(sectorPattern(0).subarray(0, 24)).toString('hex'), '534543543030303030303030' + '650cb96e1ff484a91cfce6d7');
  t.equal(Buffer.from(sectorPattern(1).subarray(12, 20)).toString('hex'), '991d3015d8ede5c6');
});

t.test('checkSector finds the first wrong byte', async (t) => {
  const buf = new Uint8Array(4 * 512);
  fillSectors(buf, 0, 40, 4);
  t.equal(checkSectors(buf, 0, 40, 4), -1);
  t.equal(checkSector(buf, 512, 41), -1);
  t.equal(checkSector(buf, 512, 42), 11, 'wrong number: 00000041 and 00000042 differ in the last digit, byte 11');
  buf[512 + 300] ^= 1;
  t.equal(checkSector(buf, 512, 41), 300);
  t.equal(checkSectors(buf, 0, 40, 4), 1);
  buf[1024] = 0;
  t.equal(checkSector(buf, 1024, 42), 0);
  fillSector(buf, 1536, 99);
  t.equal(checkSector(buf, 1536, 43), 10);
  t.equal(patternLabel(new Uint8Array(512), 0), -1);
});

t.test('isZero looks at every byte, also past its 64 KiB comparison block', async (t) => {
  const buf = new Uint8Array(200 * 1024);
  t.ok(isZero(buf, 3, buf.length - 3));
  for (const at of [3, 4096, 65538, 65539, 200 * 1024 - 1]) {
    buf[at] = 1;
    t.notOk(isZero(buf, 3, buf.length - 3), `a one at ${at} is seen`);
    t.ok(isZero(buf, at + 1, buf.length - at - 1), `but not from ${at + 1} on`);
    buf[at] = 0;
  }
});

t.test('a pattern image holds the same bytes as fillSectors, checks with one compare and fills writes', async (t) => {
  const image = new PatternImage(1000, 40);
  const expected = new Uint8Array(40 * 512);
  fillSectors(expected, 0, 1000, 40);
  t.equal(Buffer.compare(image.bytes, expected), 0);
  t.ok(image.covers(1000, 40) && image.covers(1039, 1));
  t.notOk(image.covers(999, 1), 'before the range');
  t.notOk(image.covers(1030, 11), 'past its end');

  // A reply as a ring would hold it: 17 sectors at an odd offset.
  const ring = new Uint8Array(9000);
  const off = 37;
  image.copyTo(ring, off, 1010, 17);
  t.equal(checkSectors(ring, off, 1010, 17), -1, 'copyTo writes the pattern of exactly those sectors');
  t.ok(image.matches(ring, off, 1010, 17));
  t.notOk(image.matches(ring, off, 1011, 17), 'the same data one sector off does not match');
  ring[off + 16 * 512 + 511] ^= 0x40;
  t.notOk(image.matches(ring, off, 1010, 17), 'the last byte of the last sector counts');
  t.ok(image.matches(ring, off, 1010, 16), 'and nothing past n sectors is compared');
});

t.test('histogram buckets', async (t) => {
  for (const v of [0, 1, 63, 64, 65, 100, 1000, 12345, 1e6, 2 ** 31, 2 ** 32 - 1]) {
    const b = bucketOf(v);
    t.ok(b >= 0 && b < HISTOGRAM_BUCKETS, `bucket of ${v} in range`);
    t.ok(bucketLow(b) <= v && v < bucketLow(b) + bucketWidth(b), `${v} lies in its bucket [${bucketLow(b)}, +${bucketWidth(b)})`);
  }
  t.equal(bucketOf(2 ** 40), HISTOGRAM_BUCKETS - 1, 'values past the range land in the last bucket');
  const h = new LatencyHistogram();
  for (let i = 1; i <= 1000; i++) h.recordMs(i / 1000); // 1..1000 µs
  const s = h.summary();
  t.equal(s.count, 1000);
  t.ok(Math.abs(s.p50 - 500) / 500 < 0.04, `p50 ${s.p50} ≈ 500 µs`);
  t.ok(Math.abs(s.p99 - 990) / 990 < 0.04, `p99 ${s.p99} ≈ 990 µs`);
  t.equal(s.max, 1000);
  t.ok(Math.abs(s.mean - 500.5) < 1e-6);
  h.reset();
  t.equal(h.summary().p50, 0);
});

t.test('MAC text', async (t) => {
  t.equal(formatMac(parseMac('02:AB:0c:0d:0e:0f')), '02:ab:0c:0d:0e:0f');
  t.equal(formatMac(parseMac('02-ab-0c-0d-0e-0f')), '02:ab:0c:0d:0e:0f');
  t.equal(formatMac(parseMac('02ab0c0d0e0f')), '02:ab:0c:0d:0e:0f');
  t.throws(() => parseMac('02:ab:0c:0d:0e'), /not a MAC address/);
  t.throws(() => parseMac('zz:ab:0c:0d:0e:0f'), /not a MAC address/);
});
