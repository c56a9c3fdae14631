// The common header: recognising requests, addressing, and writing reply
// headers, errors and padding over buffers full of stale bytes.

import t from 'tap';
import {
  addresses,
  isAoeRequest,
  isAtaRequest,
  isForMac,
  isFromMac,
  majorOf,
  minorOf,
  padReply,
  setAoeError,
  versionOf,
  wantsMtuLook,
  writeReplyHeader,
} from '../../src/aoe';
import { A, ata, B, BCAST, cfg, dump, hdr, hex, mask, rep, resv, TARGET } from './golden';

const OFF = 5; // frames sit at a non-zero offset in these tests

function at(frame: string | Uint8Array, junk = 0xee): Uint8Array {
  const f = hex(frame);
  const b = new Uint8Array(OFF + f.length + 8).fill(junk);
  b.set(f, OFF);
  return b;
}

t.test('isAoeRequest', (t) => {
  const rows: { desc: string; frame: string; len?: number; want: boolean }[] = [
    { desc: 'version 1 request', frame: hdr({ cmd: 1 }), want: true },
    { desc: 'version 2 request (answered with error 5 later)', frame: hdr({ cmd: 1, ver: 2 }), want: true },
    { desc: 'E and MBZ flags do not matter', frame: hdr({ cmd: 0, flags: 0x07 }), want: true },
    { desc: 'R set: a response, ignored', frame: hdr({ cmd: 1, flags: 0x08 }), want: false },
    { desc: 'R and E set', frame: hdr({ cmd: 1, flags: 0x0c }), want: false },
    { desc: 'another EtherType', frame: hdr({ cmd: 1, type: 0x0800 }), want: false },
    { desc: 'byte-swapped EtherType', frame: hdr({ cmd: 1, type: 0xa288 }), want: false },
    { desc: '23 bytes', frame: hdr({ cmd: 1 }), len: 23, want: false },
    { desc: '0 bytes', frame: hdr({ cmd: 1 }), len: 0, want: false },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const b = at(r.frame);
      t.equal(isAoeRequest(b, OFF, r.len ?? b.length - OFF - 8), r.want);
      t.end();
    });
  }
  t.end();
});

t.test('isAtaRequest and wantsMtuLook: what the caller decides before respond()', (t) => {
  // maxSectors 2 in every row: a request for more may have been sent after the MTU grew.
  const rows: { desc: string; frame: string; len?: number; ata: boolean; look: boolean }[] = [
    { desc: 'READ of 2 sectors', frame: hdr({ cmd: 0 }) + ata({ aflags: 0x40, count: 2, op: 0x24 }), ata: true, look: false },
    { desc: 'READ of 3 sectors', frame: hdr({ cmd: 0 }) + ata({ aflags: 0x40, count: 3, op: 0x24 }), ata: true, look: true },
    {
      desc: 'ATA of 35 bytes (no count to look at)',
      frame: hdr({ cmd: 0 }) + ata({ count: 3, op: 0x24 }),
      len: 35,
      ata: true,
      look: false,
    },
    {
      desc: 'Query Config (its reply reports the sectors per frame)',
      frame: hdr({ cmd: 1 }) + cfg({ ccmd: 0 }),
      ata: false,
      look: true,
    },
    { desc: 'Mac Mask', frame: hdr({ cmd: 2 }) + mask({ mcmd: 0 }), ata: false, look: false },
    { desc: 'Reserve', frame: hdr({ cmd: 3 }) + resv({ rcmd: 0 }), ata: false, look: false },
    { desc: 'unknown command', frame: hdr({ cmd: 9 }), ata: false, look: false },
  ];
  for (const r of rows) {
    const b = at(r.frame);
    const len = r.len ?? b.length - OFF - 8;
    t.equal(isAtaRequest(b, OFF), r.ata, `${r.desc}: ATA`);
    t.equal(wantsMtuLook(b, OFF, len, 2), r.look, `${r.desc}: look at the MTU`);
  }
  t.end();
});

t.test('header fields', (t) => {
  const b = at(hdr({ cmd: 2, ver: 3, shelf: 0xfffe, slot: 0xfe }));
  t.equal(majorOf(b, OFF), 0xfffe, 'major, big-endian');
  t.equal(minorOf(b, OFF), 0xfe, 'minor');
  t.equal(versionOf(b, OFF), 3, 'version nibble');
  t.end();
});

t.test('addresses', (t) => {
  const rows: { desc: string; shelf: number; slot: number; want: boolean }[] = [
    { desc: 'exact e7.3', shelf: 7, slot: 3, want: true },
    { desc: 'broadcast shelf, our slot', shelf: 0xffff, slot: 3, want: true },
    { desc: 'our shelf, broadcast slot', shelf: 7, slot: 0xff, want: true },
    { desc: 'broadcast both', shelf: 0xffff, slot: 0xff, want: true },
    { desc: 'other shelf', shelf: 8, slot: 3, want: false },
    { desc: 'other slot', shelf: 7, slot: 4, want: false },
    { desc: 'broadcast shelf, other slot', shelf: 0xffff, slot: 4, want: false },
    { desc: 'other shelf, broadcast slot', shelf: 0x0107, slot: 0xff, want: false },
    { desc: 'shelf 0x0700 is not shelf 7 (byte order)', shelf: 0x0700, slot: 3, want: false },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      t.equal(addresses(at(hdr({ cmd: 0, shelf: r.shelf, slot: r.slot })), OFF, 7, 3), r.want);
      t.end();
    });
  }
  t.test('shelf 0 slot 0 and the largest address e65534.254', (t) => {
    t.ok(addresses(at(hdr({ cmd: 0, shelf: 0, slot: 0 })), OFF, 0, 0));
    t.ok(addresses(at(hdr({ cmd: 0, shelf: 0xfffe, slot: 0xfe })), OFF, 0xfffe, 0xfe));
    t.notOk(addresses(at(hdr({ cmd: 0, shelf: 0xfffe, slot: 0xfe })), OFF, 0xfffe, 0xfd));
    t.end();
  });
  t.end();
});

t.test('isForMac and isFromMac', (t) => {
  const mac = hex(TARGET);
  const rows: { desc: string; dst: string; src: string; forUs: boolean; fromUs: boolean }[] = [
    { desc: 'unicast to us from A', dst: TARGET, src: A, forUs: true, fromUs: false },
    { desc: 'broadcast from A', dst: BCAST, src: A, forUs: true, fromUs: false },
    { desc: 'unicast to B', dst: B, src: A, forUs: false, fromUs: false },
    { desc: 'multicast is not broadcast', dst: '01:00:5e:00:00:01', src: A, forUs: false, fromUs: false },
    { desc: 'differs in the last byte', dst: '02:aa:bb:00:07:04', src: A, forUs: false, fromUs: false },
    { desc: 'our own frame looped back', dst: BCAST, src: TARGET, forUs: true, fromUs: true },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const b = at(hdr({ cmd: 1, dst: r.dst, src: r.src }));
      t.equal(isForMac(b, OFF, mac), r.forUs, 'for us');
      t.equal(isFromMac(b, OFF, mac), r.fromUs, 'from us');
      t.end();
    });
  }
  t.end();
});

t.test('writeReplyHeader', (t) => {
  const rows: { desc: string; req: string; want: string }[] = [
    {
      desc: 'broadcast request: our own address, R, ver 1, tag echoed',
      req: hdr({ dst: BCAST, src: A, shelf: 0xffff, slot: 0xff, cmd: 1, tag: 0x01020304 }),
      want: `02 00 00 00 00 0a  02 aa bb 00 07 03  88 a2  18 00  00 07 03  01  01 02 03 04`,
    },
    {
      desc: 'request with E, MBZ flags and an error byte: clean header',
      req: hdr({ src: B, flags: 0x07, error: 3, cmd: 0, tag: 0xffffffff }),
      want: `02 00 00 00 00 0b  02 aa bb 00 07 03  88 a2  18 00  00 07 03  00  ff ff ff ff`,
    },
    {
      desc: 'version 2 request: the reply still says version 1',
      req: hdr({ ver: 2, cmd: 3, tag: 0x80000000 }),
      want: `02 00 00 00 00 0a  02 aa bb 00 07 03  88 a2  18 00  00 07 03  03  80 00 00 00`,
    },
    {
      desc: 'unknown command byte echoed',
      req: hdr({ cmd: 0xf1, tag: 0 }),
      want: `02 00 00 00 00 0a  02 aa bb 00 07 03  88 a2  18 00  00 07 03  f1  00 00 00 00`,
    },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const rx = at(r.req);
      const tx = new Uint8Array(40).fill(0xaa);
      writeReplyHeader(tx, 3, rx, OFF, hex(TARGET), 7, 3);
      t.equal(dump(tx.subarray(3, 27)), dump(hex(r.want)));
      t.equal(tx[2], 0xaa, 'before untouched');
      t.equal(tx[27], 0xaa, 'after untouched');
      t.end();
    });
  }
  t.test('e65534.254', (t) => {
    const tx = new Uint8Array(24);
    writeReplyHeader(tx, 0, at(hdr({ cmd: 1 })), OFF, hex(TARGET), 0xfffe, 0xfe);
    t.equal(dump(tx.subarray(16, 19)), dump(hex('ff fe fe')));
    t.end();
  });
  t.end();
});

t.test('setAoeError', (t) => {
  const tx = new Uint8Array(24);
  writeReplyHeader(tx, 0, at(hdr({ cmd: 1 })), OFF, hex(TARGET), 7, 3);
  setAoeError(tx, 0, 4);
  t.equal(tx[14], 0x1c, 'ver 1, R, E');
  t.equal(tx[15], 4, 'error code');
  t.end();
});

t.test('padReply', (t) => {
  const rows: { desc: string; len: number; want: number }[] = [
    { desc: '24-byte error reply', len: 24, want: 60 },
    { desc: '26-byte reserve reply', len: 26, want: 60 },
    { desc: '32-byte config reply', len: 32, want: 60 },
    { desc: '36-byte ATA reply', len: 36, want: 60 },
    { desc: '59 bytes', len: 59, want: 60 },
    { desc: '60 bytes: unchanged', len: 60, want: 60 },
    { desc: '548 bytes: unchanged', len: 548, want: 548 },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const tx = new Uint8Array(10 + 600).fill(0xaa);
      const n = padReply(tx, 10, r.len);
      t.equal(n, r.want, 'length');
      t.equal(dump(tx.subarray(10, 10 + r.len)), dump(hex(rep(0xaa, r.len))), 'content untouched');
      t.equal(dump(tx.subarray(10 + r.len, 10 + n)), dump(hex(rep(0, n - r.len))), 'padding zero');
      t.equal(tx[10 + Math.max(n, r.len)], 0xaa, 'nothing past the reply');
      t.equal(tx[9], 0xaa, 'nothing before the slot');
      t.end();
    });
  }
  t.end();
});
