// The AoE protocol suite: the project's client drives our target
// (bin/vblade.js) through every behaviour docs/protocol.md describes, over a
// real veth pair between two namespaces: discovery, IDENTIFY, 28- and 48-bit
// reads and writes checked against the disk past the target, FLUSH, CHECK
// POWER, the ATA error paths, Query Config, Mac Mask, Reserve/Release, the
// MTU followed without a restart, the start-up and link-up announcements, the
// frames that must be ignored, and the padding of every reply.
//
// The disk (a backing file: protocol.test.ts; an rbd image:
// test/rbd/rbd-protocol.test.ts) is a little larger than 2^28 sectors, so
// that 48-bit addressing is exercised for real: a pattern
// (test/helpers/files.ts) is written around LBA 0 and around the 28-bit
// boundary before the target starts.

import type { Test } from 'tap';
import { hostname } from 'node:os';
import {
  ReceivedFrame,
  Target,
  formatMac,
  identifyWord,
  lba28Field,
  linkInfo,
  parseAtaReply,
  parseConfigReply,
  parseIdentify,
  parseMac,
  parseMaskReply,
  parseReserveReply,
  writeAtaRequest,
  writeConfigQuery,
  writeHeader,
  writeIdentify,
  writeMaskRequest,
  writeReadExt,
  writeReserve,
  writeWriteExt,
} from '../../src/client';
import { PRODUCT_FIRMWARE, PRODUCT_MODEL } from '../../src/engine/export';
import { sleep } from '../../lab/common';
import { patternSectors } from '../helpers/files';
import { createNetns, createNetnsPair, createVeth, type Netns, type NetnsPair } from '../../lab/netns';
import { addr, fields, openClient, sectorDiff, since, stamp } from './lib';
import { paddingProblem } from '../helpers/replies';
import { startTarget, waitLinkUp } from '../helpers/targets';

const SHELF = 0x1234;
const SLOT = 0x56;
const B28 = 2 ** 28;
/** Just past the 28-bit limit: 48-bit commands are needed for the last 64 sectors. */
const SECTORS = B28 + 64;
/** Pattern regions: [0, 64) and [HIGH, HIGH + 96), which straddles 2^28. */
const HIGH = B28 - 32;

const M1 = '02:00:00:00:01:01';
const M2 = '02:00:00:00:01:02';
const M3 = '02:00:00:00:01:03';
const M9 = '02:00:00:00:09:09';
const OTHER_DST = '02:00:00:00:00:99';
const GROUP_OR_ZERO_SOURCES = ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '00:00:00:00:00:00'];

const ATA_OK = 0x40;
const ATA_FAIL = 0x41;
const ABRT = 0x04;
const IDNF = 0x10;

/** The disk behind the target: a backing file, or an image of a store served through a client library. */
export interface SuiteDisk {
  /** The target's file operand: a path, or rbd:POOL/IMAGE. */
  file: string;
  /** vblade options before the operands. */
  options: string[];
  /** The namespace the target must run in (a cluster's); undefined: the suite makes one. */
  targetNs?: Netns;
  /** Sectors as they are in the disk now, read past the target. */
  read(lba: number, count: number): Promise<Buffer>;
  /** Writes sectors past the target (before it starts). */
  write(lba: number, data: Uint8Array): Promise<void>;
  /** Bytes in the disk. */
  size(): Promise<number>;
}

/** Sectors in the suite's disk: just past the 28-bit limit. */
export const SUITE_SECTORS = SECTORS;

/** An initiator namespace joined by a veth pair to `target`. */
async function pairFrom(t: Test, target: Netns): Promise<NetnsPair> {
  const init = await createNetns(t, 'init');
  const veth = await createVeth(t, target, init, { mtu: 1500 });
  return { target, init, veth, targetIf: veth.a.ifname, initIf: veth.b.ifname };
}

/** The suite against the disk `makeDisk` makes (of SUITE_SECTORS sectors, zeros). */
export async function protocolSuite(t: Test, makeDisk: (t: Test) => Promise<SuiteDisk>): Promise<void> {
  const t0 = Date.now();
  const disk = await makeDisk(t);
  await disk.write(0, patternSectors(0, 64));
  await disk.write(HIGH, patternSectors(HIGH, 96));
  const pair = disk.targetNs ? await pairFrom(t, disk.targetNs) : await createNetnsPair(t, { mtu: 1500 });
  await waitLinkUp(pair.target, pair.targetIf);
  // The client listens before the target starts, to catch its announcement.
  const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 1500 });
  const me = c.mac;
  const meText = formatMac(me);
  const tmac = linkInfo(pair.targetIf, pair.target.path).mac;
  const tmacText = formatMac(tmac);
  const target = await startTarget(t, pair.target, [...disk.options, String(SHELF), String(SLOT), pair.targetIf, disk.file]);
  t.equal(target.sectors, SECTORS, `start-up line: ${target.line}`);
  t.equal(target.mode, 'O_RDWR');
  t.comment(`set-up and start-up took ${since(t0)}`);

  const T: Target = { shelf: SHELF, slot: SLOT, mac: tmac, sectorCount: 2, bufferCount: 16 };
  const to = (buf: Uint8Array, f: (b: Uint8Array, a: ReturnType<typeof addr>) => number, dst: Uint8Array = tmac) =>
    f(buf, addr(me, SHELF, SLOT, dst));
  const cfgRead = (buf: Uint8Array) => writeConfigQuery(buf, 0, addr(me, SHELF, SLOT, tmac), 0, 0);
  const fromTarget = (f: ReceivedFrame) => f.header.src === tmacText;

  await t.test('unsolicited announcement at start-up', async (t) => {
    const ann = await c.waitFrames((f) => fromTarget(f) && f.header.tag === 0 && f.header.command === 1, 1, 5000);
    t.equal(ann.length, 1, 'an announcement');
    if (ann.length === 0) return;
    const a = ann[0];
    t.equal(a.header.dst, 'ff:ff:ff:ff:ff:ff', 'broadcast');
    t.equal(a.header.version, 1, 'Ver 1');
    t.equal(a.header.flags, 0x08, 'R set, E clear');
    t.equal(a.header.shelf, SHELF);
    t.equal(a.header.slot, SLOT);
    const cfg = parseConfigReply(a.bytes);
    t.same(
      {
        bufferCount: cfg.bufferCount,
        firmware: cfg.firmware,
        sectorCount: cfg.sectorCount,
        aoeVersion: cfg.aoeVersion,
        ccmd: cfg.ccmd,
        configLength: cfg.configLength,
      },
      { bufferCount: 16, firmware: 0x5001, sectorCount: 2, aoeVersion: 1, ccmd: 0, configLength: 0 },
      'config fields of the announcement',
    );
    t.equal(a.bytes.length, 60, 'padded to 60 bytes');
    t.equal(paddingProblem(a.bytes), undefined, 'zero padding');
  });

  await t.test('discovery: broadcast and exact, replies carry our own address', async (t) => {
    const all = await c.client.discover(0xffff, 0xff, 800);
    t.equal(all.length, 1, 'one export answers the broadcast query');
    fields(t, all[0], {
      shelf: SHELF,
      slot: SLOT,
      macText: tmacText,
      bufferCount: 16,
      sectorCount: 2,
      firmware: 0x5001,
      aoeVersion: 1,
    });
    const exact = await c.client.discover(SHELF, SLOT, 800, true);
    t.equal(exact.length, 1, 'exact shelf.slot query answered');
    for (const [shelf, slot, what] of [
      [0xffff, SLOT, 'broadcast shelf, our slot'],
      [SHELF, 0xff, 'our shelf, broadcast slot'],
    ] as const) {
      const r = await c.send((b) => writeConfigQuery(b, 0, addr(me, shelf, slot), 0, 0));
      t.ok(r.reply, `${what}: answered`);
      if (r.reply)
        fields(
          t,
          r.reply.header,
          { shelf: SHELF, slot: SLOT, src: tmacText, dst: meText },
          `${what}: reply names e${SHELF}.${SLOT}`,
        );
    }
    const other = await c.expectSilence((b) => writeConfigQuery(b, 0, addr(me, SHELF, SLOT + 1), 0, 0), cfgRead);
    t.ok(other.controlAnswered, 'control query answered');
    t.same(other.ignored, [], 'a query for another slot gets no reply');
  });

  await t.test('IDENTIFY: size, capacity words and strings', async (t) => {
    const id = await c.client.identify(T);
    t.equal(id.sectors, SECTORS, 'size = export size');
    t.equal(id.lba48Sectors, SECTORS, 'words 100-103');
    t.equal(id.lba28Sectors, 0x0fffffff, 'words 60-61 capped at 0x0FFFFFFF');
    t.ok(id.lba48, '48-bit addressing');
    t.equal(id.model, PRODUCT_MODEL);
    t.equal(id.firmwareRevision, PRODUCT_FIRMWARE);
    t.equal(id.serial, `${SHELF}.${SLOT}:${hostname()}`.slice(0, 20), 'serial shelf.slot:hostname');
    t.equal(id.commandSets83 & 0x3400, 0x3400, 'word 83: 48-bit, FLUSH CACHE, FLUSH CACHE EXT');
    t.equal(id.commandSets86 & 0x3400, 0x3400, 'word 86: the same enabled');
    t.equal(identifyWord(id.raw, 82) & 0x20, 0x20, 'word 82 bit 5: volatile write cache (no -s)');
    // Probe-style IDENTIFYs: aoeping's 1024 zero bytes, and a count of 0.
    for (const [what, count, extra] of [
      ['with 1024 bytes of trailing payload', 1, 1024],
      ['with sector count 0', 0, 0],
    ] as const) {
      const r = await c.send((b) => to(b, (bb, a) => writeAtaRequest(bb, 0, a, 0, 0, 0, count, 0xec, 0xa0000000, extra)));
      t.ok(r.reply, `IDENTIFY ${what}: answered`);
      if (!r.reply) continue;
      t.equal(r.reply.bytes.length, 548, `IDENTIFY ${what}: 548 bytes`);
      t.equal(parseIdentify(parseAtaReply(r.reply.bytes).data).sectors, SECTORS);
    }
  });

  await t.test('READ/WRITE 28- and 48-bit, checked against the disk', async (t) => {
    t.equal(sectorDiff(Buffer.from(await c.client.read28(T, 0, 2)), patternSectors(0, 2)), 'same', '28-bit read at LBA 0');
    t.equal(
      sectorDiff(Buffer.from(await c.client.read28(T, B28 - 2, 2)), patternSectors(B28 - 2, 2)),
      'same',
      '28-bit read of the last two 28-bit LBAs (device nibble 0xE0 ignored)',
    );
    t.equal(
      sectorDiff(Buffer.from(await c.client.read(T, B28 - 1, 2)), patternSectors(B28 - 1, 2)),
      'same',
      '48-bit read across 2^28',
    );
    t.equal(
      sectorDiff(Buffer.from(await c.client.read(T, B28 + 60, 4)), patternSectors(B28 + 60, 4)),
      'same',
      '48-bit read of the last sectors',
    );

    const d28 = stamp('write28', 2);
    await c.client.write28(T, 30, d28);
    t.equal(
      sectorDiff(await disk.read(29, 4), Buffer.concat([patternSectors(29, 1), d28, patternSectors(32, 1)])),
      'same',
      '28-bit write landed at sectors 30-31 only',
    );
    const dTop = stamp('write28-top', 2);
    await c.client.write28(T, B28 - 2, dTop);
    t.equal(
      sectorDiff(await disk.read(B28 - 3, 4), Buffer.concat([patternSectors(B28 - 3, 1), dTop, patternSectors(B28, 1)])),
      'same',
      '28-bit write at the top of the 28-bit range',
    );
    const d48 = stamp('write48', 2);
    await c.client.write(T, B28 + 8, d48);
    t.equal(
      sectorDiff(await disk.read(B28 + 7, 4), Buffer.concat([patternSectors(B28 + 7, 1), d48, patternSectors(B28 + 10, 1)])),
      'same',
      '48-bit write above 2^28 landed at the right offset',
    );
    t.equal(sectorDiff(Buffer.from(await c.client.read(T, B28 + 8, 2)), d48), 'same', 'and reads back through AoE');
    const big = stamp('multi', 12);
    await c.client.write(T, 1000, big);
    t.same(await disk.read(1000, 12), big, '12 sectors written in 2-sector requests, several in flight');
  });

  await t.test('FLUSH CACHE, FLUSH CACHE EXT, CHECK POWER MODE', async (t) => {
    for (const ext of [false, true]) {
      const r = await c.client.flush(T, ext);
      fields(t, r.ata, { status: ATA_OK, err: 0 }, `${ext ? 'FLUSH CACHE EXT' : 'FLUSH CACHE'}: DRDY, no error`);
      t.equal(r.frame.length, 60);
    }
    for (const count of [0, 1, 5]) {
      const r = await c.client.ata(T, { command: 0xe5, sectorCount: count });
      fields(t, r.ata, { status: ATA_OK, err: 0, sectorCount: 0xff }, `CHECK POWER MODE with count ${count}: active/idle`);
    }
  });

  await t.test('ATA errors: unknown opcode, out of range, too many sectors, short writes', async (t) => {
    for (const op of [0xef, 0xb0, 0x25, 0x35, 0xc8, 0x40, 0x00]) {
      const r = await c.send((b) => to(b, (bb, a) => writeAtaRequest(bb, 0, a, 0, 0, 0, 1, op, lba28Field(0))));
      t.ok(r.reply, `opcode 0x${op.toString(16)}: answered`);
      if (!r.reply) continue;
      t.notOk(r.reply.header.error, 'E clear');
      fields(t, parseAtaReply(r.reply.bytes), { status: ATA_FAIL, err: ABRT }, `opcode 0x${op.toString(16)}: ABRT`);
    }
    const sizeBefore = await disk.size();
    const cases: Array<[string, (b: Uint8Array) => number, number, number]> = [
      ['read crossing the end', (b) => to(b, (bb, a) => writeReadExt(bb, 0, a, 0, SECTORS - 1, 2)), IDNF, 2],
      ['read just past the end', (b) => to(b, (bb, a) => writeReadExt(bb, 0, a, 0, SECTORS, 1)), IDNF, 1],
      ['write crossing the end', (b) => to(b, (bb, a) => writeWriteExt(bb, 0, a, 0, SECTORS - 1, 2, stamp('oor', 2))), IDNF, 2],
      ['read of 3 sectors at MTU 1500', (b) => to(b, (bb, a) => writeReadExt(bb, 0, a, 0, 0, 3)), ABRT, 3],
      ['read of 0 sectors (= 65536)', (b) => to(b, (bb, a) => writeReadExt(bb, 0, a, 0, 0, 0)), ABRT, 0],
      [
        '28-bit read of 0 sectors (= 256)',
        (b) => to(b, (bb, a) => writeAtaRequest(bb, 0, a, 0, 0, 0, 0, 0x20, lba28Field(0))),
        ABRT,
        0,
      ],
      [
        'write of 3 sectors (2 carried)',
        (b) => to(b, (bb, a) => writeAtaRequest(bb, 0, a, 0, 0x41, 0, 3, 0x34, 50, 1024, stamp('x3', 2))),
        ABRT,
        3,
      ],
      [
        'write of 2 sectors with 1 carried',
        (b) => to(b, (bb, a) => writeAtaRequest(bb, 0, a, 0, 0x41, 0, 2, 0x34, 50, 512, stamp('short', 1))),
        ABRT,
        2,
      ],
      [
        '28-bit write of 1 sector with 100 bytes',
        (b) => to(b, (bb, a) => writeAtaRequest(bb, 0, a, 0, 0x01, 0, 1, 0x30, lba28Field(50), 100, stamp('s', 1))),
        ABRT,
        1,
      ],
    ];
    for (const [what, build, err, count] of cases) {
      const r = await c.send(build, 3000);
      t.ok(r.reply, `${what}: answered`);
      if (!r.reply) continue;
      t.ok(r.reply.elapsedMs < 1000, `${what}: prompt (${r.reply.elapsedMs.toFixed(1)} ms)`);
      t.notOk(r.reply.header.error, `${what}: E clear (an ATA error, not an AoE one)`);
      fields(
        t,
        parseAtaReply(r.reply.bytes),
        { status: ATA_FAIL, err, sectorCount: count },
        `${what}: ${err === IDNF ? 'IDNF' : 'ABRT'}, count echoed`,
      );
      t.equal(r.reply.bytes.length, 60, `${what}: no data, 60 bytes`);
    }
    t.equal(await disk.size(), sizeBefore, 'the disk did not grow');
    t.equal(sectorDiff(await disk.read(SECTORS - 1, 1), patternSectors(SECTORS - 1, 1)), 'same', 'the last sector is untouched');
    t.equal(
      sectorDiff(await disk.read(50, 3), patternSectors(50, 3)),
      'same',
      'nothing of the refused writes reached sectors 50-52',
    );
  });

  await t.test('READ with trailing payload; retransmitted write', async (t) => {
    const r = await c.send((b) => {
      const n = to(b, (bb, a) => writeReadExt(bb, 0, a, 0, 0, 2));
      b.fill(0xee, n, n + 1024);
      return n + 1024;
    });
    t.ok(r.reply, 'a READ carrying 1024 bytes of payload is answered');
    if (r.reply) {
      t.equal(r.reply.bytes.length, 36 + 1024);
      t.equal(sectorDiff(Buffer.from(parseAtaReply(r.reply.bytes).data), patternSectors(0, 2)), 'same', 'with the data');
    }
    const data = stamp('retransmit', 2);
    const build = (b: Uint8Array) => to(b, (bb, a) => writeWriteExt(bb, 0, a, 0, 40, 2, data));
    const first = await c.send(build);
    const again = await c.send(build);
    t.ok(first.tag !== again.tag, 'second copy has a new tag');
    for (const [what, x] of [
      ['first', first],
      ['retransmission', again],
    ] as const) {
      t.ok(x.reply, `${what}: answered`);
      if (x.reply) fields(t, parseAtaReply(x.reply.bytes), { status: ATA_OK, err: 0, sectorCount: 0 }, `${what}: success`);
    }
    t.same(
      await disk.read(39, 4),
      Buffer.concat([patternSectors(39, 1), data, patternSectors(42, 1)]),
      'data in place once, neighbours intact',
    );
  });

  await t.test('Query Config: read, test, prefix, set, force set, lengths', async (t) => {
    const cfg = (ccmd: number, value: string | Uint8Array, declared?: number) => (b: Uint8Array) => {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
      return writeConfigQuery(b, 0, addr(me, SHELF, SLOT, tmac), 0, ccmd, bytes, declared ?? bytes.length);
    };
    const ask = async (what: string, build: (b: Uint8Array) => number) => {
      const r = await c.send(build);
      t.ok(r.reply, `${what}: answered`);
      return r.reply
        ? {
            header: r.reply.header,
            cfg: parseConfigReply(r.reply.bytes),
            text: Buffer.from(parseConfigReply(r.reply.bytes).config).toString('latin1'),
          }
        : undefined;
    };
    const silent = async (what: string, build: (b: Uint8Array) => number) => {
      const s = await c.expectSilence(build, cfgRead);
      t.ok(s.controlAnswered && s.ignored.length === 0, `${what}: no reply`);
    };
    fields(t, await ask('read', cfg(0, '')), { text: '', cfg: { configLength: 0, ccmd: 0 } }, 'empty at start');
    fields(
      t,
      await ask('set', cfg(3, 'alpha one')),
      { header: { error: false }, text: 'alpha one', cfg: { ccmd: 3 } },
      'set stores the string',
    );
    fields(t, await ask('read', cfg(0, 'ignored argument')), { text: 'alpha one' }, 'read ignores its argument');
    fields(t, await ask('test exact', cfg(1, 'alpha one')), { header: { error: false }, text: 'alpha one' });
    await silent('test with a different string', cfg(1, 'alpha'));
    fields(t, await ask('prefix test', cfg(2, 'alpha')), { text: 'alpha one' });
    fields(t, await ask('empty prefix', cfg(2, '')), { text: 'alpha one' });
    await silent('prefix longer than the string', cfg(2, 'alpha onex'));
    await silent('prefix that does not match', cfg(2, 'beta'));
    fields(
      t,
      await ask('set while another string is present', cfg(3, 'beta')),
      { header: { error: true, errorCode: 4 }, text: 'alpha one' },
      'error 4 with the current string',
    );
    fields(
      t,
      await ask('set of the identical string', cfg(3, 'alpha one')),
      { header: { error: false }, text: 'alpha one' },
      'idempotent set succeeds',
    );
    fields(t, await ask('force set', cfg(4, 'beta')), { header: { error: false }, text: 'beta' });
    fields(
      t,
      await ask('length 20 with 2 bytes present', cfg(4, 'zz', 20)),
      { header: { error: true, errorCode: 2 }, text: 'beta' },
      'refused with BadArg, nothing stored',
    );
    fields(t, await ask('read', cfg(0, '')), { text: 'beta' }, 'string unchanged');
    const long = Buffer.alloc(1024);
    for (let i = 0; i < long.length; i++) long[i] = 0x21 + ((i * 7) % 94);
    const l = await ask('force set of 1024 bytes', cfg(4, long));
    t.equal(l?.cfg.configLength, 1024);
    t.equal(l?.text, long.toString('latin1'), '1024-byte string stored');
    const lr = await c.send(cfg(0, ''));
    t.equal(lr.reply?.bytes.length, 32 + 1024, 'reply carries all 1024 bytes');
    fields(
      t,
      await ask('force set of 1025 bytes', cfg(4, Buffer.concat([long, Buffer.from('!')]))),
      { header: { error: true, errorCode: 2 }, text: long.toString('latin1') },
      'over 1024 refused',
    );
    fields(t, await ask('CCmd 7', cfg(7, '')), { header: { error: true, errorCode: 2 } }, 'unknown CCmd: BadArg');
    fields(t, await ask('force set of the empty string', cfg(4, '')), { header: { error: false }, text: '' }, 'cleared');
  });

  await t.test('sector count follows the MTU without a restart', async (t) => {
    const maxSectorsNow = async () => {
      const r = await c.send(cfgRead, 1000);
      return r.reply ? parseConfigReply(r.reply.bytes).sectorCount : -1;
    };
    const readN = (n: number) => (b: Uint8Array) => to(b, (bb, a) => writeReadExt(bb, 0, a, 0, 0, n));
    const outcome = (x: { reply?: ReceivedFrame }) => {
      if (!x.reply) return 'no reply';
      const a = parseAtaReply(x.reply.bytes);
      return `status 0x${a.status.toString(16)} error 0x${a.err.toString(16)}, ${x.reply.bytes.length} bytes`;
    };
    t.equal(await maxSectorsNow(), 2, 'MTU 1500: 2 sectors');

    await pair.veth.setMtu(9000);
    c.client.mtu = 9000;
    const changed = Date.now();
    // Right after the change, before any config query: a target must follow the MTU it has now, not the one it started with.
    const first = await c.send(readN(17), 1500);
    t.equal(
      outcome(first),
      'status 0x40 error 0x0, 8740 bytes',
      `the first 17-sector read right after the change is accepted (got ${outcome(first)})`,
    );
    t.equal(await maxSectorsNow(), 17, 'the config reply right after the change says 17');
    // Then, within a few seconds at most, without a restart:
    let n = -1;
    while (Date.now() - changed < 5000 && (n = await maxSectorsNow()) !== 17) await sleep(100);
    t.equal(n, 17, `MTU 9000: the config reply says 17 (${Date.now() - changed} ms after the change)`);
    let r = await c.send(readN(17), 1500);
    for (let i = 0; i < 3 && !r.reply; i++) r = await c.send(readN(17), 1500);
    t.equal(outcome(r), 'status 0x40 error 0x0, 8740 bytes', '17-sector read accepted');
    if (r.reply) t.equal(sectorDiff(parseAtaReply(r.reply.bytes).data, patternSectors(0, 17)), 'same', '17 sectors of data');
    const d17 = stamp('jumbo', 17);
    const w = await c.send((b) => to(b, (bb, a) => writeWriteExt(bb, 0, a, 0, 2000, 17, d17)));
    fields(t, w.reply && parseAtaReply(w.reply.bytes), { status: ATA_OK }, '17-sector write accepted');
    t.equal(sectorDiff(await disk.read(2000, 17), d17), 'same', 'and landed in the file');
    const r18 = await c.send(readN(18));
    t.equal(outcome(r18), 'status 0x41 error 0x4, 60 bytes', '18 sectors: ABRT');

    await pair.veth.setMtu(1500);
    c.client.mtu = 1500;
    const shrunk = Date.now();
    const big = await c.send(readN(17), 1500);
    t.equal(
      outcome(big),
      'status 0x41 error 0x4, 60 bytes',
      `a 17-sector read right after the decrease gets a prompt ABRT (got ${outcome(big)})`,
    );
    t.equal(await maxSectorsNow(), 2, `back to MTU 1500: the config reply says 2 (${Date.now() - shrunk} ms after the change)`);
    for (const k of [3, 17])
      t.equal(outcome(await c.send(readN(k))), 'status 0x41 error 0x4, 60 bytes', `${k} sectors at MTU 1500 again: ABRT`);
    t.equal(sectorDiff(await c.client.read(T, 0, 2), patternSectors(0, 2)), 'same', '2-sector reads still work');
  });

  await t.test('Mac Mask List: read, edit, errors, enforcement', async (t) => {
    const mask = async (what: string, mcmd: number, dirs: Array<[number, string]>, dirCount?: number) => {
      const r = await c.send((b) =>
        writeMaskRequest(
          b,
          0,
          addr(me, SHELF, SLOT, tmac),
          0,
          mcmd,
          dirs.map(([command, m]) => ({ command, mac: parseMac(m) })),
          dirCount ?? dirs.length,
        ),
      );
      t.ok(r.reply, `${what}: answered`);
      if (!r.reply) return undefined;
      const m = parseMaskReply(r.reply.bytes);
      return {
        error: r.reply.header.error,
        errorCode: r.reply.header.errorCode,
        merror: m.merror,
        dirCount: m.dirCount,
        list: m.directives.map((d) => d.mac).sort(),
        length: r.reply.bytes.length,
      };
    };
    const sorted = (...m: string[]) => [...m].sort();
    fields(t, await mask('read', 0, []), { merror: 0, dirCount: 0, list: [] }, 'empty');
    fields(
      t,
      await mask('add three', 1, [
        [1, meText],
        [1, M1],
        [1, M2],
      ]),
      { merror: 0, dirCount: 3, list: sorted(meText, M1, M2) },
    );
    fields(t, await mask('no-op directive', 1, [[0, M3]]), { merror: 0, list: sorted(meText, M1, M2) }, 'DCmd 0 changes nothing');
    fields(t, await mask('delete M1', 1, [[2, M1]]), { merror: 0, list: sorted(meText, M2) });
    fields(t, await mask('add of a present address', 1, [[1, M2]]), { merror: 0, list: sorted(meText, M2) }, 'no duplicate');
    fields(
      t,
      await mask('bad directive after a good one', 1, [
        [1, M3],
        [7, M1],
      ]),
      { error: false, merror: 2, dirCount: 1, length: 60 },
      'MError 2 at index 1',
    );
    fields(
      t,
      await mask('read', 0, []),
      { list: sorted(meText, M2) },
      'the good directive before it was not applied (all or nothing)',
    );
    fields(t, await mask('Dir Count beyond the frame', 1, [[1, M3]], 4), { error: true, errorCode: 2 }, 'BadArg');
    const fakes = Array.from({ length: 127 }, (_, i) => `02:00:00:00:7f:${i.toString(16).padStart(2, '0')}`);
    fields(
      t,
      await mask(
        '127 adds to a 2-entry list',
        1,
        fakes.map((m) => [1, m] as [number, string]),
      ),
      { merror: 3, dirCount: 126 },
      'MError 3 at the 129th entry',
    );
    fields(t, await mask('read', 0, []), { dirCount: 2 }, 'list unchanged');
    const fill = await mask(
      '126 adds',
      1,
      fakes.slice(0, 126).map((m) => [1, m] as [number, string]),
    );
    fields(t, fill, { merror: 0, dirCount: 128, length: 28 + 8 * 128 }, 'full list of 128 in one reply');
    fields(t, await mask('one more add', 1, [[1, fakes[126]]]), { merror: 3, dirCount: 0 }, 'full: MError 3');
    // Enforcement: a source outside the list is ignored, one inside is answered.
    const spoof = (src: string) => (b: Uint8Array) => writeConfigQuery(b, 0, addr(parseMac(src), SHELF, SLOT, tmac), 0, 0);
    const out = await c.expectSilence(spoof(M9), cfgRead);
    t.ok(out.controlAnswered, 'our own query is answered');
    t.same(out.ignored, [], `a query from ${M9} (not in the list) is ignored`);
    const outAta = await c.expectSilence((b) => writeReadExt(b, 0, addr(parseMac(M9), SHELF, SLOT, tmac), 0, 0, 1), cfgRead);
    t.same(outAta.ignored, [], 'so is its READ');
    const outMask = await c.expectSilence(
      (b) => writeMaskRequest(b, 0, addr(parseMac(M9), SHELF, SLOT, tmac), 0, 1, [{ command: 2, mac: me }]),
      cfgRead,
    );
    t.same(outMask.ignored, [], 'and its attempt to delete us from the list');
    const inside = await c.send(spoof(M2));
    t.equal(inside.reply?.header.dst, M2, `a query from ${M2} (in the list) is answered, to ${M2}`);
    fields(
      t,
      await mask(
        'delete the fakes and M2',
        1,
        [...fakes.slice(0, 126), M2].map((m) => [2, m] as [number, string]),
      ),
      { merror: 0, list: [meText] },
    );
    fields(
      t,
      await mask('delete ourselves', 1, [[2, meText]]),
      { merror: 0, dirCount: 0, list: [] },
      'empty again: everyone admitted',
    );
    const back = await c.send(spoof(M9));
    t.ok(back.reply, `${M9} is answered again`);
  });

  await t.test('Reserve/Release: read, set, force set, release, error 6', async (t) => {
    const res = async (what: string, rcmd: number, macs: string[], src = meText, nmacs?: number) => {
      const r = await c.send((b) =>
        writeReserve(b, 0, addr(parseMac(src), SHELF, SLOT, tmac), 0, rcmd, macs.map(parseMac), nmacs ?? macs.length),
      );
      t.ok(r.reply, `${what}: answered`);
      if (!r.reply) return undefined;
      return { error: r.reply.header.error, errorCode: r.reply.header.errorCode, list: parseReserveReply(r.reply.bytes).macs };
    };
    const ataFrom = async (src: string, build: (b: Uint8Array, a: ReturnType<typeof addr>) => number) => {
      const r = await c.send((b) => build(b, addr(parseMac(src), SHELF, SLOT, tmac)));
      return r.reply
        ? {
            error: r.reply.header.error,
            errorCode: r.reply.header.errorCode,
            dst: r.reply.header.dst,
            ata: parseAtaReply(r.reply.bytes),
            length: r.reply.bytes.length,
          }
        : undefined;
    };
    const read1 = (b: Uint8Array, a: ReturnType<typeof addr>) => writeReadExt(b, 0, a, 0, 0, 1);
    fields(t, await res('read', 0, []), { error: false, list: [] });
    fields(t, await res('set', 1, [meText]), { error: false, list: [meText] });
    fields(t, await res('read', 0, []), { list: [meText] });
    fields(
      t,
      await ataFrom(M9, read1),
      { error: true, errorCode: 6, dst: M9, ata: { status: 0x24, sectorCount: 1 } },
      'READ from a non-holder: error 6, registers echoed',
    );
    fields(
      t,
      await ataFrom(M9, (b, a) => writeWriteExt(b, 0, a, 0, 60, 1, stamp('intruder', 1))),
      { error: true, errorCode: 6 },
      'WRITE from a non-holder: error 6',
    );
    t.equal(sectorDiff(await disk.read(60, 1), patternSectors(60, 1)), 'same', 'and nothing written');
    fields(
      t,
      await ataFrom(M9, (b, a) => writeAtaRequest(b, 0, a, 0, 0, 0, 0, 0xe7, lba28Field(0))),
      { error: true, errorCode: 6 },
      'FLUSH from a non-holder: error 6',
    );
    fields(
      t,
      await ataFrom(M9, (b, a) => writeIdentify(b, 0, a, 0)),
      { error: false, length: 548 },
      'IDENTIFY from a non-holder is answered',
    );
    const cfgM9 = await c.send((b) => writeConfigQuery(b, 0, addr(parseMac(M9), SHELF, SLOT, tmac), 0, 0));
    t.ok(cfgM9.reply && !cfgM9.reply.header.error, 'Query Config from a non-holder is answered');
    fields(
      t,
      await res('set by a non-holder', 1, [M9], M9),
      { error: true, errorCode: 6, list: [meText] },
      'error 6 with the current list',
    );
    fields(t, await ataFrom(meText, read1), { error: false, ata: { status: ATA_OK } }, 'the holder reads');
    fields(t, await res('force set by another', 2, [M9, M1], M9), { error: false, list: [M9, M1] });
    fields(t, await ataFrom(meText, read1), { error: true, errorCode: 6 }, 'now we are the non-holder');
    fields(t, await res('force release by us', 2, []), { error: false, list: [] });
    fields(t, await res('set', 1, [meText]), { list: [meText] });
    fields(t, await res('release by the holder', 1, []), { error: false, list: [] });
    fields(
      t,
      await res('NMacs 3 with one address', 2, [M1], meText, 3),
      { error: true, errorCode: 2, list: [] },
      'BadArg, list unchanged',
    );
    fields(t, await ataFrom(M9, read1), { error: false, ata: { status: ATA_OK } }, 'anyone reads once released');
  });

  await t.test('frames to ignore; version and command errors', async (t) => {
    const cases: Array<[string, (b: Uint8Array) => number]> = [
      [
        'R flag set',
        (b) => {
          const n = writeConfigQuery(b, 0, addr(me, SHELF, SLOT, tmac), 0, 0);
          b[14] |= 0x08;
          return n;
        },
      ],
      [
        'R flag set on a WRITE',
        (b) => {
          const n = writeWriteExt(b, 0, addr(me, SHELF, SLOT, tmac), 0, 70, 1, stamp('R', 1));
          b[14] |= 0x08;
          return n;
        },
      ],
      ["source = the target's own MAC", (b) => writeConfigQuery(b, 0, addr(tmac, SHELF, SLOT), 0, 0)],
      // A reply goes to the source: to every host, a multicast group or nobody.
      ...GROUP_OR_ZERO_SOURCES.flatMap((src): Array<[string, (b: Uint8Array) => number]> => [
        [`Query Config from source ${src}`, (b) => writeConfigQuery(b, 0, addr(parseMac(src), SHELF, SLOT, tmac), 0, 0)],
        [`IDENTIFY from source ${src}`, (b) => writeIdentify(b, 0, addr(parseMac(src), SHELF, SLOT, tmac), 0)],
      ]),
      [
        `destination ${OTHER_DST} (another host)`,
        (b) => writeConfigQuery(b, 0, addr(me, SHELF, SLOT, parseMac(OTHER_DST)), 0, 0),
      ],
      [
        "WRITE to another host's MAC",
        (b) => writeWriteExt(b, 0, addr(me, SHELF, SLOT, parseMac(OTHER_DST)), 0, 71, 1, stamp('other', 1)),
      ],
      ['another shelf', (b) => writeConfigQuery(b, 0, addr(me, SHELF + 1, SLOT), 0, 0)],
      ['broadcast ATA READ (shelf 0xffff, slot 0xff)', (b) => writeReadExt(b, 0, addr(me, 0xffff, 0xff), 0, 0, 1)],
      ['Query Config shorter than its 32-byte header', (b) => writeConfigQuery(b, 0, addr(me, SHELF, SLOT, tmac), 0, 0) - 2],
      ['ATA request shorter than its 36-byte header', (b) => writeReadExt(b, 0, addr(me, SHELF, SLOT, tmac), 0, 0, 1) - 1],
    ];
    for (const [what, build] of cases) {
      const s = await c.expectSilence(build, cfgRead);
      t.ok(s.controlAnswered, `${what}: control answered`);
      t.same(
        s.ignored.map((f) => f.header),
        [],
        `${what}: ignored`,
      );
    }
    t.equal(sectorDiff(await disk.read(70, 2), Buffer.alloc(1024)), 'same', 'the ignored writes wrote nothing');
    const v2 = await c.send((b) => {
      const n = writeConfigQuery(b, 0, addr(me, SHELF, SLOT, tmac), 0, 0);
      b[14] = 0x20;
      return n;
    });
    fields(t, v2.reply?.header, { version: 1, error: true, errorCode: 5 }, 'Ver 2 request: Ver 1 reply with error 5');
    t.equal(v2.reply?.bytes.length, 60);
    for (const cmd of [4, 0xf0]) {
      const u = await c.send((b) => {
        writeHeader(b, 0, addr(me, SHELF, SLOT, tmac), cmd, 0);
        b.fill(0x5a, 24, 80);
        return 80;
      });
      fields(t, u.reply?.header, { error: true, errorCode: 1, command: cmd }, `command ${cmd}: error 1`);
      t.equal(u.reply?.bytes.length, 60, `command ${cmd}: header only, padded (the request's bytes are not echoed)`);
    }
    const eflag = await c.send((b) => {
      const n = writeConfigQuery(b, 0, addr(me, SHELF, SLOT, tmac), 0, 0);
      b[14] |= 0x04;
      b[15] = 3;
      return n;
    });
    fields(t, eflag.reply?.header, { error: false, errorCode: 0, flags: 0x08 }, 'E and Error in a request are not echoed');
  });

  await t.test('announcement when the link comes back up', async (t) => {
    const before = c.frames.length;
    await pair.target.ip(['link', 'set', 'dev', pair.targetIf, 'down']);
    await sleep(500);
    await pair.target.ip(['link', 'set', 'dev', pair.targetIf, 'up']);
    const since0 = Date.now();
    await waitLinkUp(pair.target, pair.targetIf);
    const ann = await c.waitFrames(
      (f) => c.frames.indexOf(f) >= before && fromTarget(f) && f.header.tag === 0 && f.header.command === 1,
      1,
      8000,
    );
    t.ok(ann.length >= 1, `announcement after the link returned (${ann.length} seen, first within ${since(since0)})`);
    if (ann[0]) {
      fields(t, ann[0].header, { dst: 'ff:ff:ff:ff:ff:ff', version: 1, flags: 0x08, shelf: SHELF, slot: SLOT });
      t.equal(paddingProblem(ann[0].bytes), undefined, 'padded with zeros');
    }
    t.equal(await c.client.configRead(T), '', 'still serving: config read');
    t.equal(sectorDiff(Buffer.from(await c.client.read(T, 0, 2)), patternSectors(0, 2)), 'same', 'still serving: read');
    t.ok(target.proc.running, 'the target did not exit');
  });

  await t.test('every reply: Ver 1, R set, our address and MAC, zero padding to 60', async (t) => {
    const replies = c.frames.filter(fromTarget);
    t.ok(replies.length > 100, `${replies.length} replies recorded`);
    const bad: string[] = [];
    for (const f of replies) {
      const h = f.header;
      const why =
        h.version !== 1
          ? `Ver ${h.version}`
          : !h.response
            ? 'R clear'
            : h.shelf !== SHELF || h.slot !== SLOT
              ? `address ${h.shelf}.${h.slot}`
              : (h.flags & 0x03) !== 0
                ? `MBZ flags 0x${h.flags.toString(16)}`
                : paddingProblem(f.bytes);
      if (why) bad.push(`tag 0x${h.tag.toString(16)} cmd ${h.command} (${f.bytes.length} bytes): ${why}`);
    }
    t.same(bad, [], 'no reply breaks the rules');
    const short = replies.filter((f) => f.bytes.length === 60).length;
    t.ok(short > 50, `${short} replies were padded to 60 bytes`);
  });

  t.comment(`protocol test took ${since(t0)}`);
}
