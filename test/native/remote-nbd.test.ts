// The io ring's remote operations (native/remote.c) on a real NBD server
// (nbdkit; native/nbd.c): reads, writes and flushes go to the server through
// libnbd threads and come back through reap(), what was written is on the
// server (read back with nbdcopy), and the server's errors are results, not
// crashes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { IoOp, IoOpFlag, IoOpLayout, type IoRing, native } from '../../src/native/addon';
import { requireCommands, runOk, spawnProcess } from '../../lab/process';
import { tempDir } from '../helpers/files';
import { startNbdkit } from '../helpers/nbd-server';

const EBADF = constants.errno.EBADF;
const EINVAL = constants.errno.EINVAL;
const MiB = 1 << 20;

type Op = [number, number, number, number, number, number];

/** Submits `ops` and waits for all their completions: results by tag (100, 101, …). */
async function run(ring: IoRing, ops: Op[], timeoutMs = 10000): Promise<number[]> {
  const packed = new Float64Array(IoOpLayout.Stride * ops.length);
  const tags = new Uint32Array(ops.length);
  ops.forEach((op, i) => {
    packed.set(op, IoOpLayout.Stride * i);
    tags[i] = 100 + i;
  });
  const results = new Map<number, number>();
  const out = new Int32Array(2 * 64);
  const reapAll = (): void => {
    for (let n = ring.reap(out, 64); n > 0; n = ring.reap(out, 64)) for (let i = 0; i < n; i++) results.set(out[2 * i], out[2 * i + 1]);
  };
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${results.size} of ${ops.length} completions`)), timeoutMs);
    ring.startPolling(() => {
      reapAll();
      if (results.size >= ops.length) {
        clearTimeout(timer);
        ring.stopPolling();
        resolve();
      }
    });
  });
  if (ring.submit(packed, tags, ops.length) !== ops.length) throw new Error('submit refused ops');
  await done;
  return ops.map((_, i) => results.get(100 + i)!);
}

const R = IoOp.Read | IoOpFlag.Remote;
const W = IoOp.Write | IoOpFlag.Remote;
const F = IoOp.DataSync | IoOpFlag.Remote;

if (requireCommands(t, ['nbdkit', 'nbdcopy'])) {
  t.test('reads, writes and flushes through an nbdkit memory export', async (t) => {
    const server = await startNbdkit(t, ['memory', 'size=16M']);
    const info = await native.openNbd(server.uri, 4, 5000, false);
    t.teardown(() => native.closeNbd(info.handle));
    t.equal(info.size, 16 * MiB, 'the size is the server’s');
    t.equal(info.readOnly, false);
    t.equal(info.canMultiConn, true, 'nbdkit memory allows several connections');
    t.equal(info.connections, 4);
    const ring = native.openIoRing(64);
    t.teardown(() => ring.close());
    const src = new Uint8Array(MiB);
    for (let i = 0; i < src.length; i++) src[i] = (i * 13 + 7) & 0xff;
    const dst = new Uint8Array(MiB);
    ring.registerBuffer(0, src);
    ring.registerBuffer(1, dst);
    const h = info.handle;
    // 16 writes of 64 KiB spread over the export, then a flush.
    const writes: Op[] = [];
    for (let i = 0; i < 16; i++) writes.push([W, h, 0, i * 65536, 65536, i * MiB]);
    t.same(await run(ring, writes), new Array(16).fill(65536), 'every write reports its length');
    t.same(await run(ring, [[F, h, 0, 0, 0, 0]]), [0], 'the flush succeeds');
    const reads: Op[] = [];
    for (let i = 0; i < 16; i++) reads.push([R, h, 1, i * 65536, 65536, i * MiB]);
    t.same(await run(ring, reads), new Array(16).fill(65536), 'every read reports its length');
    t.same(Buffer.from(dst), Buffer.from(src), 'what was read is what was written');
    // The server has it: copied out by libnbd's own tool.
    const out = join(tempDir(t, 'nbdcopy'), 'copy.img');
    await runOk('nbdcopy', [server.uri, out]);
    const copy = readFileSync(out);
    for (let i = 0; i < 16; i++)
      t.same(copy.subarray(i * MiB, i * MiB + 65536), Buffer.from(src.subarray(i * 65536, (i + 1) * 65536)), `64 KiB at ${i} MiB`);
    // Past the end, a closed-over handle, bad memory: results, not crashes.
    const bad = await run(ring, [
      [R, h, 1, 0, 4096, 16 * MiB],
      [R, 4095, 1, 0, 4096, 0],
      [R, h, 1, MiB - 100, 4096, 0],
    ]);
    t.ok(bad[0] < 0, `a read past the server's end fails (${bad[0]})`);
    t.equal(bad[1], -EBADF, 'a handle nothing is open under: EBADF');
    t.equal(bad[2], -EINVAL, 'memory past the buffer: EINVAL, nothing sent');
  });

  t.test("the server's errors come back as results", async (t) => {
    const server = await startNbdkit(t, ['--filter=error', 'memory', 'size=4M', 'error-pwrite-rate=100%', 'error=EIO']);
    const info = await native.openNbd(server.uri, 1, 5000, false);
    t.teardown(() => native.closeNbd(info.handle));
    const ring = native.openIoRing(8);
    t.teardown(() => ring.close());
    const mem = new Uint8Array(8192);
    ring.registerBuffer(0, mem);
    const [w, r] = await run(ring, [
      [W, info.handle, 0, 0, 4096, 0],
      [R, info.handle, 0, 4096, 4096, 4096],
    ]);
    t.equal(w, -constants.errno.EIO, 'the write fails with the server’s EIO');
    t.equal(r, 4096, 'a read on the same connection still works');
  });

  t.test('refusals at open say why', async (t) => {
    await t.rejects(native.openNbd('nbds://example.com/x', 1, 1000, false), /only nbd:\/\/HOST/);
    await t.rejects(native.openNbd('nbd+unix:///x?socket=/tmp/s&tls-psk-file=/etc/shadow', 1, 1000, false), /one parameter/);
    const dir = tempDir(t, 'nosrv');
    await t.rejects(native.openNbd(`nbd+unix:///?socket=${dir}/none.sock`, 1, 1000, false), /cannot reach the nbd server/);
  });

  t.test('close waits for remote operations in flight, bounded by the wait', async (t) => {
    const server = await startNbdkit(t, ['memory', 'size=1M']);
    const info = await native.openNbd(server.uri, 1, 1000, false);
    const ring = native.openIoRing(8);
    const mem = new Uint8Array(4096);
    ring.registerBuffer(0, mem);
    await server.proc.freeze(); // it answers nothing now
    t.teardown(() => server.proc.signal('SIGCONT'));
    const ops = new Float64Array(IoOpLayout.Stride);
    ops.set([R, info.handle, 0, 0, 4096, 0]);
    t.equal(ring.submit(ops, new Uint32Array([1]), 1), 1);
    const t0 = Date.now();
    ring.close(); // must not free the buffer while libnbd may still write into it
    const waited = Date.now() - t0;
    t.ok(waited >= 500 && waited < 3000, `close returned once the read failed after the wait (${waited} ms)`);
    await native.closeNbd(info.handle);
    t.pass('no crash');
  });

  t.test('close returns at once and settles after the final flush gives up on a server that hangs', async (t) => {
    const server = await startNbdkit(t, ['memory', 'size=1M']);
    const info = await native.openNbd(server.uri, 2, 1000, false);
    t.ok(info.canFlush, 'the server can flush: the close flushes');
    await server.proc.freeze();
    t.teardown(() => server.proc.signal('SIGCONT'));
    const t0 = performance.now();
    const closing = native.closeNbd(info.handle);
    const returned = performance.now() - t0;
    t.ok(returned < 100, `closeNbd returned in ${returned.toFixed(1)} ms: the wait is not the event loop's`);
    t.throws(() => native.nbdMessages(info.handle), /no nbd store has that handle/, 'the handle is forgotten at once');
    t.throws(() => native.closeNbd(info.handle), /no nbd store has that handle/, 'a second close of it throws at once');
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    const last = await closing;
    clearInterval(ticker);
    const settled = performance.now() - t0;
    t.ok(settled >= 900, `the promise settled after the flush's wait (${settled.toFixed(0)} ms, wait 1000 ms)`);
    t.ok(ticks >= 10, `the event loop ran meanwhile (${ticks} ticks of 50 ms)`);
    t.match(last, /final flush at close did not complete/, 'its last lines say the flush did not complete');
  });

  t.test('nbd:// over TCP on the loopback', async (t) => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const proc = spawnProcess(t, 'nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', 'size=1M']);
    let info: Awaited<ReturnType<typeof native.openNbd>> | undefined;
    for (let i = 0; i < 100 && info === undefined; i++) {
      try {
        info = await native.openNbd(`nbd://127.0.0.1:${port}/`, 2, 2000, false);
      } catch (e) {
        if (!proc.running) throw new Error(`nbdkit exited: ${proc.tail(5)}`, { cause: e });
        if (!/cannot reach/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (info === undefined) throw new Error('nbdkit did not listen');
    const h = info.handle;
    t.teardown(() => native.closeNbd(h));
    t.equal(info.size, MiB);
    const ring = native.openIoRing(8);
    t.teardown(() => ring.close());
    const mem = new Uint8Array(8192);
    mem.fill(0x5a, 0, 4096);
    ring.registerBuffer(0, mem);
    t.same(await run(ring, [[W, h, 0, 0, 4096, 8192]]), [4096]);
    t.same(await run(ring, [[R, h, 0, 4096, 4096, 8192]]), [4096]);
    t.same(Buffer.from(mem.subarray(4096)), Buffer.alloc(4096, 0x5a), 'read back over TCP');
  });
}
