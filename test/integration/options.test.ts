// vblade's options against our target, each checked on the wire and on disk:
// -r, -o/-l, -s (durability, and group commit observed with strace), -d on a
// file system with O_DIRECT, -b, -m (with two initiator namespaces behind a
// bridge), a loop block device as the backing store, --null, and SIGTERM
// while writes are in flight.
//
// All targets but the -m one run on one veth pair, one after the other, with
// the project's client listening on the other end the whole time.

import t from 'tap';
import { closeSync, constants as fsc, openSync, statSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Target,
  formatMac,
  identifyWord,
  lba28Field,
  linkInfo,
  parseAtaReply,
  parseMac,
  writeAtaRequest,
  writeConfigQuery,
  writeReadExt,
  writeWriteExt,
} from '../../src/client';
import { sleep } from '../../lab/common';
import { loopDevice, patternFile, patternSectors, requireLoop, sparseFile, tempDir, tmpfsMount } from '../helpers/files';
import { Netns, createNetns, createNetnsPair, createVeth, requireRoot } from '../../lab/netns';
import { describeExit, requireCommands, run, runOk } from '../../lab/process';
import { addr, fields, macOf, openClient, openFlagsOf, readSectors, sectorDiff, since, stamp } from './lib';
import { startTarget, waitLinkUp } from '../helpers/targets';

const ATA_OK = 0x40;
const ATA_FAIL = 0x41;
const ABRT = 0x04;
const IDNF = 0x10;

if (requireRoot(t) && requireLoop(t) && requireCommands(t, ['strace', 'mkfs.ext4'])) {
  t.test('vblade options', async (t) => {
    const t0 = Date.now();
    const pair = await createNetnsPair(t, { mtu: 1500 });
    const dir = tempDir(t, 'options');
    await waitLinkUp(pair.target, pair.targetIf);
    const c = await openClient(t, pair.init, pair.initIf, { timeoutMs: 1000 });
    const me = c.mac;
    const tmac = linkInfo(pair.targetIf, pair.target.path).mac;
    const T = (shelf: number, slot = 1): Target => ({ shelf, slot, mac: tmac, sectorCount: 2, bufferCount: 16 });
    const to = (shelf: number, slot = 1) => addr(me, shelf, slot, tmac);
    const ata = async (build: (b: Uint8Array) => number) => {
      const r = await c.send(build);
      return r.reply ? { error: r.reply.header.error, ...parseAtaReply(r.reply.bytes), length: r.reply.bytes.length } : undefined;
    };
    const stopped = async (
      tt: typeof t,
      st: { proc: { stop: () => Promise<{ code: number | null; signal: NodeJS.Signals | null }> } },
    ) => {
      const ex = await st.proc.stop();
      tt.same(ex, { code: 0, signal: null }, `SIGTERM: exit 0 (${describeExit(ex)})`);
    };

    await t.test('-r: read-only', async (t) => {
      const file = await patternFile(t, 256, { dir, name: 'ro.img' });
      const before = await readFile(file);
      const st = await startTarget(t, pair.target, ['-r', '1', '1', pair.targetIf, file]);
      t.equal(st.mode, 'O_RDONLY', `start-up line: ${st.line}`);
      t.equal((openFlagsOf(st.pid, file) ?? -1) & 3 /* O_ACCMODE */, fsc.O_RDONLY, 'the backing file is open O_RDONLY');
      t.equal(sectorDiff(await c.client.read(T(1), 10, 2), patternSectors(10, 2)), 'same', 'reads work');
      fields(
        t,
        await ata((b) => writeWriteExt(b, 0, to(1), 0, 20, 2, stamp('ro', 2))),
        { error: false, status: ATA_FAIL, err: ABRT, length: 60 },
        'WRITE EXT: ATA ABRT',
      );
      fields(
        t,
        await ata((b) => writeAtaRequest(b, 0, to(1), 0, 1, 0, 1, 0x30, lba28Field(21), 512, stamp('ro28', 1))),
        { error: false, status: ATA_FAIL, err: ABRT },
        'WRITE SECTORS: ATA ABRT',
      );
      await t.rejects(c.client.write(T(1), 30, stamp('ro-client', 2)), { name: 'AtaError' }, 'the client sees the write fail');
      fields(t, (await c.client.flush(T(1))).ata, { status: ATA_OK }, 'FLUSH CACHE on a read-only export: DRDY');
      await stopped(t, st);
      t.ok((await readFile(file)).equals(before), 'the file is unchanged byte for byte');
    });

    await t.test('-o/-l: offset and length', async (t) => {
      const file = await patternFile(t, 256, { dir, name: 'ol.img' });
      const st = await startTarget(t, pair.target, ['-o', '0x10', '-l', '64', '2', '1', pair.targetIf, file]);
      t.equal(st.sectors, 64, `size = length (${st.line})`);
      t.equal((await c.client.identify(T(2))).sectors, 64, 'IDENTIFY says 64 sectors');
      t.equal(sectorDiff(await c.client.read(T(2), 0, 2), patternSectors(16, 2)), 'same', 'export LBA 0 = file sector 16');
      t.equal(sectorDiff(await c.client.read(T(2), 62, 2), patternSectors(78, 2)), 'same', 'export LBA 63 = file sector 79');
      fields(
        t,
        await ata((b) => writeReadExt(b, 0, to(2), 0, 63, 2)),
        { status: ATA_FAIL, err: IDNF },
        'reading across the end of the length: IDNF',
      );
      fields(
        t,
        await ata((b) => writeReadExt(b, 0, to(2), 0, 64, 1)),
        { status: ATA_FAIL, err: IDNF },
        'LBA 64 (file sector 80 exists): IDNF',
      );
      fields(
        t,
        await ata((b) => writeWriteExt(b, 0, to(2), 0, 64, 1, stamp('beyond', 1))),
        { status: ATA_FAIL, err: IDNF },
        'writing past the length: IDNF',
      );
      const first = stamp('first', 1);
      const last = stamp('last', 1);
      await c.client.write(T(2), 0, first);
      await c.client.write(T(2), 63, last);
      t.equal(
        sectorDiff(await readSectors(file, 15, 2), Buffer.concat([patternSectors(15, 1), first])),
        'same',
        'export LBA 0 written to file sector 16, sector 15 untouched',
      );
      t.equal(
        sectorDiff(await readSectors(file, 79, 2), Buffer.concat([last, patternSectors(80, 1)])),
        'same',
        'export LBA 63 written to file sector 79, sector 80 untouched',
      );
      await stopped(t, st);
    });

    await t.test('-s: acknowledged writes are in the file', async (t) => {
      const file = await sparseFile(t, 4096 * 512, { dir, name: 'sync.img' });
      const st = await startTarget(t, pair.target, ['-s', '3', '1', pair.targetIf, file]);
      t.equal(
        identifyWord((await c.client.identify(T(3))).raw, 82) & 0x20,
        0,
        'IDENTIFY word 82 bit 5 clear: no volatile write cache',
      );
      const data = stamp('sync', 64);
      await c.client.write(T(3), 100, data);
      t.equal(
        sectorDiff(await readSectors(file, 100, 64), data),
        'same',
        '32 acknowledged writes (16 in flight) read back from the file',
      );
      fields(t, (await c.client.flush(T(3), true)).ata, { status: ATA_OK }, 'FLUSH CACHE EXT');
      await stopped(t, st);
    });

    await t.test('-s: group commit (fewer fdatasyncs than writes)', async (t) => {
      // io_uring's fsync operations do not pass through the system call
      // layer, so strace cannot count them; AOE_IORING=sync selects the
      // addon's synchronous backend, where every fdatasync is a system call.
      // The group commit itself (src/engine/storage.ts) is the same code for both.
      const file = await sparseFile(t, 4096 * 512, { dir, name: 'group.img' });
      const trace = join(dir, 'strace.txt');
      const st = await startTarget(t, pair.target, ['-s', '3', '2', pair.targetIf, file], {
        prefix: ['strace', '-f', '-qq', '--seccomp-bpf', '-c', '-e', 'trace=fdatasync,fsync', '-o', trace],
        env: { AOE_IORING: 'sync' },
        label: 'strace vblade',
      });
      const writes = 64;
      const data = stamp('group', writes * 2);
      const started = Date.now();
      await c.client.write(T(3, 2), 0, data);
      t.comment(`${writes} writes of 2 sectors, 16 in flight, in ${Date.now() - started} ms`);
      t.equal(sectorDiff(await readSectors(file, 0, writes * 2), data), 'same', 'all acknowledged data is in the file');
      process.kill(st.pid, 'SIGTERM'); // the target itself (strace's child); strace follows it out
      const ex = await st.proc.waitExit(15000);
      t.same(ex, { code: 0, signal: null }, 'target under strace exits 0 on SIGTERM');
      const summary = await readFile(trace, 'utf8');
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?fdatasync\s*$/m.exec(summary);
      const syncs = m ? Number(m[1]) : 0;
      t.ok(m, `strace counted fdatasync calls:\n${summary.trim()}`);
      t.ok(syncs >= 1, `at least one fdatasync (${syncs})`);
      t.ok(syncs < writes, `group commit: ${syncs} fdatasyncs for ${writes} writes`);
      // The log at stop counts them too; strace also saw the one fdatasync that stop() itself makes.
      const stopLine = st.proc.lines.map((l) => l.text).find((l) => l.includes('export counters at stop'));
      t.ok(stopLine, 'the target logs its counters when it stops');
      const counters = JSON.parse(stopLine ?? '{}') as { writes?: number; syncs?: number };
      t.equal(counters.writes, writes, `the log counts ${writes} writes`);
      t.equal(counters.syncs, syncs - 1, 'and the fdatasyncs of its group commits');
    });

    await t.test('FLUSH CACHE and FLUSH CACHE EXT each cause an fdatasync (no -s)', async (t) => {
      // As above: the synchronous backend, so that strace sees the calls, one line each as they happen.
      const file = await sparseFile(t, 4096 * 512, { dir, name: 'flush.img' });
      const trace = join(dir, 'strace-flush.txt');
      const st = await startTarget(t, pair.target, ['3', '3', pair.targetIf, file], {
        prefix: ['strace', '-f', '-qq', '--seccomp-bpf', '-e', 'trace=fdatasync', '-o', trace],
        env: { AOE_IORING: 'sync' },
        label: 'strace vblade',
      });
      const syncs = async () =>
        (await readFile(trace, 'utf8').catch(() => '')).split('\n').filter((l) => /\bfdatasync\(/.test(l)).length;
      const settle = async (want: number) => {
        const deadline = Date.now() + 2000;
        let n = await syncs();
        while (n < want && Date.now() < deadline) {
          await sleep(20);
          n = await syncs();
        }
        return n;
      };
      const data = stamp('flush', 32);
      await c.client.write(T(3, 3), 0, data);
      await sleep(200);
      t.equal(await syncs(), 0, '16 writes without -s: no fdatasync (acknowledged from the page cache)');
      fields(t, (await c.client.flush(T(3, 3))).ata, { status: ATA_OK, err: 0 }, 'FLUSH CACHE answered DRDY');
      t.equal(await settle(1), 1, 'FLUSH CACHE: one fdatasync');
      fields(t, (await c.client.flush(T(3, 3), true)).ata, { status: ATA_OK, err: 0 }, 'FLUSH CACHE EXT answered DRDY');
      t.equal(await settle(2), 2, 'FLUSH CACHE EXT: one more');
      process.kill(st.pid, 'SIGTERM');
      t.same(await st.proc.waitExit(15000), { code: 0, signal: null }, 'exit 0 on SIGTERM');
      t.ok((await syncs()) >= 3, 'and a last fdatasync on the way out');
      t.equal(sectorDiff(await readSectors(file, 0, 32), data), 'same', 'the data is in the file');
    });

    await t.test('-d: O_DIRECT', async (t) => {
      // A block file system, which (unlike tmpfs) refuses O_DIRECT buffers not aligned to its sectors.
      const where = await ext4Mount(t, dir);
      const file = await patternFile(t, 512, { dir: where, name: 'direct.img' });
      const st = await startTarget(t, pair.target, ['-d', '4', '1', pair.targetIf, file]);
      t.not((openFlagsOf(st.pid, file) ?? 0) & fsc.O_DIRECT, 0, 'the backing file is open with O_DIRECT');
      t.equal(sectorDiff(await c.client.read(T(4), 10, 2), patternSectors(10, 2)), 'same', 'reads');
      t.equal(sectorDiff(await c.client.read28(T(4), 11, 1), patternSectors(11, 1)), 'same', 'single-sector reads');
      const data = stamp('direct', 16);
      await c.client.write(T(4), 20, data);
      await c.client.write28(T(4), 41, stamp('direct1', 1));
      fields(t, (await c.client.flush(T(4))).ata, { status: ATA_OK }, 'FLUSH CACHE');
      t.equal(
        sectorDiff(await readSectors(file, 19, 18), Buffer.concat([patternSectors(19, 1), data, patternSectors(36, 1)])),
        'same',
        'writes landed in the file',
      );
      t.equal(sectorDiff(await readSectors(file, 41, 1), stamp('direct1', 1)), 'same', 'the single-sector write too');
      await stopped(t, st);
    });

    await t.test('-b: advertised buffer count', async (t) => {
      const file = await sparseFile(t, 1 << 20, { dir, name: 'b.img' });
      const mark = c.frames.length;
      const st = await startTarget(t, pair.target, ['-b', '5', '5', '1', pair.targetIf, file]);
      const ann = await c.waitFrames((f) => c.frames.indexOf(f) >= mark && f.header.tag === 0 && f.header.shelf === 5, 1, 3000);
      t.equal(ann.length, 1, 'announcement seen');
      if (ann[0]) t.equal((ann[0].bytes[24] << 8) | ann[0].bytes[25], 5, 'the announcement says 5 buffers');
      const found = await c.client.discover(5, 1, 700, true);
      t.equal(found[0]?.bufferCount, 5, 'the config reply says 5 buffers');
      await stopped(t, st);
    });

    await t.test('a loop block device as the backing store', async (t) => {
      const file = await patternFile(t, 2048, { dir, name: 'loop.img' });
      const dev = await loopDevice(t, file);
      const st = await startTarget(t, pair.target, ['6', '1', pair.targetIf, dev]);
      t.equal(st.sectors, 2048, `size from BLKGETSIZE64 (${dev}: ${st.line})`);
      t.equal((await c.client.identify(T(6))).sectors, 2048, 'IDENTIFY says 2048 sectors');
      t.equal(sectorDiff(await c.client.read(T(6), 2046, 2), patternSectors(2046, 2)), 'same', 'reads the last sectors');
      const data = stamp('loop', 4);
      await c.client.write(T(6), 5, data);
      t.equal(sectorDiff(await readSectors(dev, 5, 4), data), 'same', `the write is on ${dev}`);
      fields(
        t,
        await ata((b) => writeReadExt(b, 0, to(6), 0, 2048, 1)),
        { status: ATA_FAIL, err: IDNF },
        'past the device end: IDNF',
      );
      await stopped(t, st);
      t.equal(
        sectorDiff(await readSectors(file, 4, 6), Buffer.concat([patternSectors(4, 1), data, patternSectors(9, 1)])),
        'same',
        'and in the backing file after the target exited',
      );
    });

    await t.test('--null: zeros, writes dropped', async (t) => {
      const st = await startTarget(t, pair.target, ['--null', '7', '1', pair.targetIf, '64M']);
      t.equal(st.sectors, 131072, st.line);
      t.equal((await c.client.identify(T(7))).sectors, 131072, 'IDENTIFY: 64 MiB');
      t.equal(sectorDiff(await c.client.read(T(7), 1000, 4), Buffer.alloc(2048)), 'same', 'reads zeros');
      await c.client.write(T(7), 1000, stamp('null', 4));
      t.pass('writes are acknowledged');
      t.equal(sectorDiff(await c.client.read(T(7), 1000, 4), Buffer.alloc(2048)), 'same', 'and dropped');
      fields(t, await ata((b) => writeReadExt(b, 0, to(7), 0, 131071, 2)), { status: ATA_FAIL, err: IDNF }, 'past the end: IDNF');
      await stopped(t, st);
    });

    await t.test(
      'a file on tmpfs is mapped and stays one with the file; a sparse one is not, so reading holes costs no memory',
      async (t) => {
        const mnt = await tmpfsMount(t, '64M');
        const dense = await patternFile(t, 2048, { dir: mnt, name: 'dense.img' });
        const st = await startTarget(t, pair.target, ['8', '1', pair.targetIf, dense]);
        const maps = await readFile(`/proc/${st.pid}/maps`, 'utf8');
        t.ok(maps.includes(dense), 'the dense file is mapped into the target');
        t.equal(sectorDiff(await c.client.read(T(8), 100, 17), patternSectors(100, 17)), 'same', 'reads come from the file');
        const data = stamp('mapped', 17);
        await c.client.write(T(8), 300, data);
        t.equal(
          sectorDiff(await readSectors(dense, 300, 17), data),
          'same',
          'a write is in the file at once, while the target runs',
        );
        const fd = openSync(dense, 'r+');
        try {
          const outside = stamp('outside', 2);
          writeSync(fd, outside, 0, outside.length, 500 * 512);
          t.equal(
            sectorDiff(await c.client.read(T(8), 500, 2), outside),
            'same',
            'a change made to the file by another program is read at once',
          );
        } finally {
          closeSync(fd);
        }
        await stopped(t, st);

        const sparse = await sparseFile(t, 32 * 1024 * 1024, { dir: mnt, name: 'sparse.img' });
        const sp = await startTarget(t, pair.target, ['8', '2', pair.targetIf, sparse]);
        t.notOk((await readFile(`/proc/${sp.pid}/maps`, 'utf8')).includes(sparse), 'the sparse file is not mapped');
        for (let lba = 0; lba < 65536; lba += 2048) {
          const got = await c.client.read(T(8, 2), lba, 2);
          if (sectorDiff(got, Buffer.alloc(1024)) !== 'same') t.fail(`LBA ${lba}: holes read as zeros`);
        }
        t.ok(
          statSync(sparse).blocks * 512 < 1024 * 1024,
          `reading its holes allocated nothing (${statSync(sparse).blocks * 512} bytes in use)`,
        );
        await stopped(t, sp);
      },
    );

    await t.test('SIGTERM while writes are in flight', async (t) => {
      const file = await sparseFile(t, 8192 * 512, { dir, name: 'term.img' });
      const st = await startTarget(t, pair.target, ['8', '1', pair.targetIf, file]);
      const acked = new Map<number, Buffer>();
      let inflight = 0;
      let signalled = 0;
      let ackedAfterSignal = 0;
      let stop = false;
      const worker = async (w: number) => {
        for (let lba = w * 512; lba + 2 <= (w + 1) * 512 && !stop; lba += 2) {
          const data = stamp(`term-${lba}`, 2);
          inflight++;
          const r = await c.send((b) => writeWriteExt(b, 0, to(8), 0, lba, 2, data), 800);
          inflight--;
          if (r.reply && !r.reply.header.error && parseAtaReply(r.reply.bytes).status === ATA_OK) {
            acked.set(lba, data);
            if (signalled) ackedAfterSignal++;
          } else if (signalled) break;
        }
      };
      const workers = Array.from({ length: 16 }, (_, w) => worker(w));
      const deadline = Date.now() + 10000;
      while (acked.size < 150 && Date.now() < deadline) await sleep(2);
      const inflightAtSignal = inflight;
      signalled = Date.now();
      st.proc.signal('SIGTERM');
      const ex = await st.proc.waitExit(15000);
      stop = true;
      await Promise.all(workers);
      t.same(ex, { code: 0, signal: null }, `exit 0 (${describeExit(ex)})`);
      t.ok(inflightAtSignal > 0, `${inflightAtSignal} writes were in flight at SIGTERM`);
      t.comment(`${acked.size} writes acknowledged, ${ackedAfterSignal} of them after SIGTERM`);
      const bad: string[] = [];
      for (const [lba, data] of acked) {
        const d = sectorDiff(await readSectors(file, lba, 2), data);
        if (d !== 'same') bad.push(`LBA ${lba}: ${d}`);
      }
      t.same(bad, [], `all ${acked.size} acknowledged writes are in the file`);
    });

    await t.test('-m: initial mask, unicast announcements, a second initiator namespace', async (t) => {
      const tl = Date.now();
      const lan = await createLan(t);
      t.comment(`four namespaces and a bridge in ${since(tl)}`);
      const c1 = await openClient(t, lan.i1, lan.i1If, { timeoutMs: 800, retries: 1 });
      const c2 = await openClient(t, lan.i2, lan.i2If, { timeoutMs: 800, retries: 1 });
      const mac1 = formatMac(c1.mac);
      const mac2 = formatMac(c2.mac);
      const fake = '02:00:00:00:07:77';
      const file = await patternFile(t, 64, { dir, name: 'mask.img' });
      const st = await startTarget(t, lan.target, [
        '-m',
        `${mac1.toUpperCase()},${fake.replace(/:/g, '')}`,
        '9',
        '1',
        lan.targetIf,
        file,
      ]);
      const lmac = lan.targetMac;
      const TL: Target = { shelf: 9, slot: 1, mac: lmac, sectorCount: 2, bufferCount: 16 };
      await sleep(300);
      const anns = [...c1.frames, ...c2.frames].filter(
        (f) => f.header.tag === 0 && f.header.command === 1 && f.header.src === formatMac(lmac),
      );
      t.ok(
        c1.frames.some((f) => f.header.tag === 0 && f.header.dst === mac1),
        `the initiator in the mask got a unicast announcement (to ${mac1})`,
      );
      t.same(
        [...new Set(anns.map((f) => f.header.dst))].sort(),
        [mac1, fake].sort(),
        'announcements went to each mask entry (the bridge floods the unknown one)',
      );
      t.notOk(
        anns.some((f) => f.header.dst === 'ff:ff:ff:ff:ff:ff'),
        'no broadcast announcement',
      );
      t.same((await c1.client.maskRead(TL)).sort(), [mac1, fake].sort(), 'the mask holds the -m list');
      t.same(await c2.client.discover(9, 1, 600), [], `${mac2} (not in the mask) gets no config reply`);
      // The control query comes from the admitted initiator: once it is answered, the READ was judged.
      const readTag = await c2.sendNoWait((b) => writeReadExt(b, 0, addr(c2.mac, 9, 1, lmac), 0, 0, 1));
      const control = await c1.send((b) => writeConfigQuery(b, 0, addr(c1.mac, 9, 1, lmac), 0, 0));
      t.ok(control.reply, `${mac1}: control query answered`);
      await sleep(200);
      t.same([...c1.withTag(readTag), ...c2.withTag(readTag)], [], `${mac2}: its READ is ignored`);
      t.equal(sectorDiff(await c1.client.read(TL, 0, 2), patternSectors(0, 2)), 'same', `${mac1} reads`);
      t.same(
        (await c1.client.maskEdit(TL, [mac2])).directives.map((d) => d.mac).sort(),
        [mac1, mac2, fake].sort(),
        `${mac1} adds ${mac2} to the mask`,
      );
      t.equal((await c2.client.discover(9, 1, 600, true)).length, 1, `${mac2} is answered now`);
      t.equal(sectorDiff(await c2.client.read(TL, 2, 2), patternSectors(2, 2)), 'same', `${mac2} reads`);
      await stopped(t, st);
    });

    t.comment(`options test took ${since(t0)}`);
  });
}

/** An ext4 file system in an image on a loop device, mounted on a new directory; all undone in teardown. */
async function ext4Mount(t: Parameters<typeof tempDir>[0], dir: string): Promise<string> {
  const img = await sparseFile(t, 64 << 20, { dir, name: 'ext4.img' });
  await runOk('mkfs.ext4', ['-q', '-F', img]);
  const dev = await loopDevice(t, img);
  const mnt = tempDir(t, 'ext4');
  await runOk('mount', [dev, mnt]);
  t.teardown(async () => {
    const r = await run('umount', [mnt]);
    if (r.code !== 0) await run('umount', ['-l', mnt]);
  });
  return mnt;
}

interface Lan {
  target: Netns;
  targetIf: string;
  targetMac: Uint8Array;
  i1: Netns;
  i1If: string;
  i2: Netns;
  i2If: string;
}

/** A target namespace and two initiator namespaces joined by a bridge in a fourth (switch) namespace. */
async function createLan(t: Parameters<typeof createNetns>[0]): Promise<Lan> {
  const [target, sw, i1, i2] = await Promise.all(['lan-t', 'lan-sw', 'lan-i1', 'lan-i2'].map((l) => createNetns(t, l)));
  const legs = [await createVeth(t, target, sw), await createVeth(t, i1, sw), await createVeth(t, i2, sw)];
  const br = 'aoetbr0';
  await sw.ip(['link', 'add', 'name', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  for (const v of legs) await sw.ip(['link', 'set', 'dev', v.b.ifname, 'master', br, 'up']);
  await sw.ip(['link', 'set', 'dev', br, 'up']);
  await Promise.all([
    waitLinkUp(target, legs[0].a.ifname),
    waitLinkUp(i1, legs[1].a.ifname),
    waitLinkUp(i2, legs[2].a.ifname),
    waitLinkUp(sw, br),
  ]);
  return {
    target,
    targetIf: legs[0].a.ifname,
    targetMac: parseMac(macOf(target, legs[0].a.ifname)),
    i1,
    i1If: legs[1].a.ifname,
    i2,
    i2If: legs[2].a.ifname,
  };
}
