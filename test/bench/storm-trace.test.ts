// The storm bench's boot trace (bench/storm/trace.ts): requests read out of a
// pcap capture (first transmissions only, in-flight counts, reply times,
// phases), the trace file written and read back, hostile trace files refused
// with the row and field that are wrong, and the trace kept in the repo.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { DEFAULT_TRACE } from '../../bench/storm/run';
import { CapturedFrame, makeTrace, parseTrace, readPcap, requestsOf } from '../../bench/storm/trace';

const INITIATOR = 'ae:0e:00:00:02:01';
const TARGET = 'ae:0e:00:00:01:01';
const macBytes = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));

/** An AoE frame: a request from INITIATOR or a reply to it. */
function aoe(opts: {
  response?: boolean;
  tag: number;
  cmd?: number;
  ata?: number;
  lba?: number;
  count?: number;
  from?: string;
}): Buffer {
  const f = Buffer.alloc(60);
  const src = opts.from ?? (opts.response ? TARGET : INITIATOR);
  const dst = opts.response ? INITIATOR : TARGET;
  Buffer.from(macBytes(dst)).copy(f, 0);
  Buffer.from(macBytes(src)).copy(f, 6);
  f.writeUInt16BE(0x88a2, 12);
  f[14] = 0x10 | (opts.response ? 0x08 : 0);
  f.writeUInt16BE(1, 16);
  f[18] = 1;
  f[19] = opts.cmd ?? 0;
  f.writeUInt32BE(opts.tag, 20);
  f[26] = opts.count ?? 2;
  f[27] = opts.ata ?? 0x24;
  let lba = opts.lba ?? 0;
  for (let i = 0; i < 6; i++, lba = Math.floor(lba / 256)) f[28 + i] = lba % 256;
  return f;
}

/** A classic pcap file (µs, little-endian) holding `frames`. */
function pcap(frames: CapturedFrame[], magic = 0xa1b2c3d4): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(magic, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const recs = frames.map((f) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(Math.floor(f.us / 1e6), 0);
    r.writeUInt32LE(f.us % 1e6, 4);
    r.writeUInt32LE(f.data.length, 8);
    r.writeUInt32LE(f.data.length, 12);
    return Buffer.concat([r, f.data]);
  });
  return Buffer.concat([head, ...recs]);
}

t.test('requests come out of a capture with gaps, in-flight counts, reply times and phases', async (t) => {
  const frames: CapturedFrame[] = [
    { us: 1_000_000, data: aoe({ tag: 1, cmd: 1 }) },
    { us: 1_000_100, data: aoe({ tag: 1, cmd: 1, response: true }) },
    // the target's own probe: not a machine's request
    { us: 1_000_150, data: aoe({ tag: 9, cmd: 1, from: TARGET }) },
    { us: 1_000_500, data: aoe({ tag: 2, lba: 64, count: 2 }) },
    { us: 1_000_700, data: aoe({ tag: 2, response: true }) },
    { us: 2_000_000, data: aoe({ tag: 3, lba: 0, count: 2 }) },
    { us: 2_000_010, data: aoe({ tag: 4, lba: 2, count: 2 }) },
    // a retransmission of tag 4: counted, not listed
    { us: 2_200_010, data: aoe({ tag: 4, lba: 2, count: 2 }) },
    { us: 2_200_050, data: aoe({ tag: 3, response: true }) },
    { us: 2_200_060, data: aoe({ tag: 4, response: true }) },
    { us: 2_300_000, data: aoe({ tag: 5, ata: 0x34, lba: 100, count: 1 }) },
    { us: 2_300_100, data: Buffer.from('not aoe at all, an ARP or so.........................') },
  ];
  const read = readPcap(pcap(frames));
  t.equal(read.length, frames.length, 'every record of the pcap file');
  t.equal(read[3].us, 1_000_500, 'µs time stamps');
  const { requests, retransmissions } = requestsOf(
    read,
    (us) => (us < 1_500_000 ? 'ipxe' : 'linux'),
    (m) => m !== TARGET,
  );
  t.equal(retransmissions, 1);
  t.same(
    requests.map((r) => [r.phase, r.kind, r.lba, r.sectors, r.gapUs, r.inFlight, r.replyUs]),
    [
      ['ipxe', 'config', 0, 0, 0, 1, 100],
      ['ipxe', 'read', 64, 2, 500, 1, 200],
      ['linux', 'read', 0, 2, 0, 1, 200050],
      ['linux', 'read', 2, 2, 10, 2, 200050],
      ['linux', 'write', 100, 1, 299990, 1, 0],
    ],
  );
  const trace = makeTrace(requests, retransmissions, 'test', '2026-12-07');
  t.same(
    trace.phases.map((p) => [p.name, p.requests, p.window, p.sectorsRead]),
    [
      ['ipxe', 2, 1, 2],
      ['linux', 3, 2, 4],
    ],
  );
  t.same(parseTrace(JSON.stringify(trace)), requests, 'the trace file reads back to the same requests');
});

t.test('pcap files in other byte orders and resolutions; files that are not pcap', async (t) => {
  const ns = pcap([{ us: 5_000_123, data: aoe({ tag: 1 }) }], 0xa1b23c4d);
  t.equal(readPcap(ns)[0].us, 5_000_000 + 123 / 1000, 'nanosecond files: the fraction is ns');
  t.throws(() => readPcap(Buffer.alloc(10)), /shorter than its 24-byte header/);
  const ng = Buffer.alloc(28);
  ng.writeUInt32LE(0x0a0d0d0a, 0);
  t.throws(() => readPcap(ng), /pcapng\? capture with -F pcap/);
  const cut = pcap([{ us: 1, data: aoe({ tag: 1 }) }]).subarray(0, 50);
  t.throws(() => readPcap(cut), /runs past the end of the file/);
  const wifi = pcap([]);
  wifi.writeUInt32LE(105, 20);
  t.throws(() => readPcap(wifi), /link type 105, not Ethernet/);
});

t.test('hostile trace files are refused with what is wrong and where', async (t) => {
  const good: unknown[] = ['linux', INITIATOR, 0, 'read', 10, 2, 5, 1, 100];
  const doc = (rows: unknown[], extra: object = {}): string =>
    JSON.stringify({
      format: 'aoe-boot-trace/1',
      columns: ['phase', 'mac', 'cmd', 'kind', 'lba', 'sectors', 'gapUs', 'inFlight', 'replyUs'],
      rows,
      ...extra,
    });
  t.throws(() => parseTrace('{"format":', 'x.json'), /x\.json is not JSON/);
  t.throws(() => parseTrace('null'), /not an aoe-boot-trace\/1 file/);
  t.throws(() => parseTrace(doc([good], { format: 'other/2' })), /its "format" says "other\/2"/);
  t.throws(() => parseTrace(doc([good], { columns: ['lba'] })), /"columns" must be/);
  t.throws(() => parseTrace(doc([])), /has no requests/);
  const bad: Array<[number, unknown, RegExp]> = [
    [0, 'boot', /row 2: phase "boot" is not ipxe or linux/],
    [1, 'ae:0e', /row 2: "ae:0e" is not a MAC/],
    [2, 256, /row 2: cmd 256 is not an AoE command number/],
    [3, 'erase', /row 2: kind "erase" is not one of/],
    [4, -1, /row 2: lba -1 is not a 48-bit sector number/],
    [4, 2 ** 48, /row 2: lba 281474976710656/],
    [5, 1.5, /row 2: sectors 1.5 is not 0 to 255/],
    [6, '5', /row 2: gapUs "5" is not 0 µs to an hour/],
    [7, 0, /row 2: inFlight 0 is not 1 or more/],
    [8, null, /row 2: replyUs null/],
  ];
  for (const [col, value, re] of bad) {
    const row = [...good];
    row[col] = value;
    t.throws(() => parseTrace(doc([good, row])), re, `column ${col} = ${JSON.stringify(value)}`);
  }
  t.throws(() => parseTrace(doc([good, [1, 2]])), /row 2: wants 9 values/);
});

t.test('the trace kept in the repo is a boot: iPXE one in flight, then the Linux driver with a window', async (t) => {
  const file = DEFAULT_TRACE;
  const text = readFileSync(file, 'utf8');
  t.ok(text.length < 400_000, `small enough to keep (${text.length} bytes)`);
  const requests = parseTrace(text, file);
  const phases = [...new Set(requests.map((r) => r.phase))];
  t.same(phases, ['ipxe', 'linux'], 'iPXE first, then Linux');
  const ipxe = requests.filter((r) => r.phase === 'ipxe');
  const linux = requests.filter((r) => r.phase === 'linux');
  t.equal(Math.max(...ipxe.map((r) => r.inFlight)), 1, 'iPXE keeps one request in flight');
  t.ok(Math.max(...linux.map((r) => r.inFlight)) > 1, 'the Linux driver keeps several');
  t.ok(linux.filter((r) => r.kind === 'read').length > 1000, 'the Linux part reads the root file system');
  t.equal(new Set(requests.map((r) => r.mac)).size, 1, 'one machine');
});
