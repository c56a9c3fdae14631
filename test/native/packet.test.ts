// The native packet socket and linkInfo over a veth pair between two network
// namespaces this test creates (and removes). Frames never leave those
// namespaces. Needs root (ip netns, CAP_NET_RAW, setns).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:os';
import { native, PacketSocket } from '../../src/native/addon';

const AOE = 0x88a2;
/** Offset of the Ethernet header inside a TPACKET_V2 slot (tpacket2_hdr + sockaddr_ll, aligned). */
const SLOT_MAC_OFFSET = 66;

interface Received {
  offset: number;
  length: number;
  slot: number;
  bytes: Uint8Array;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function hasRoot(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    ip('netns', 'list');
    return true;
  } catch {
    return false;
  }
}

/** Two namespaces joined by a veth pair va <-> vb, both up. */
function makePair(test: typeof t, name: string): { nsA: string; nsB: string } {
  const nsA = `aoetn-${process.pid}-${name}a`;
  const nsB = `aoetn-${process.pid}-${name}b`;
  ip('netns', 'add', nsA);
  test.teardown(() => { ip('netns', 'del', nsA); });
  ip('netns', 'add', nsB);
  test.teardown(() => { ip('netns', 'del', nsB); });
  ip('-n', nsA, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', nsB);
  ip('-n', nsA, 'link', 'set', 'va', 'up');
  ip('-n', nsB, 'link', 'set', 'vb', 'up');
  return { nsA: `/run/netns/${nsA}`, nsB: `/run/netns/${nsB}` };
}

/** Writes an AoE-looking frame of `length` bytes at `offset`: byte i (i >= 15) = (seq + i) & 255. */
function writeFrame(arena: Uint8Array, offset: number, length: number, seq: number,
  opts: { flags?: number; type?: number } = {}): void {
  const type = opts.type ?? AOE;
  arena.fill(0xff, offset, offset + 6);
  arena.set([0x02, 0, 0, 0, 0, 0x01], offset + 6);
  arena[offset + 12] = type >> 8;
  arena[offset + 13] = type & 0xff;
  arena[offset + 14] = opts.flags ?? 0x10; // version 1, R clear
  for (let i = 15; i < length; i++) arena[offset + i] = (seq + i) & 0xff;
}

function seqOf(bytes: Uint8Array): number {
  return (bytes[15] - 15) & 0xff;
}

function drainAll(sock: PacketSocket, out: Received[], release = true): void {
  const desc = new Uint32Array(3 * 64);
  for (;;) {
    const n = sock.drain(desc, 64);
    for (let i = 0; i < n; i++) {
      const [offset, length, slot] = desc.subarray(3 * i, 3 * i + 3);
      out.push({ offset, length, slot, bytes: sock.ring.slice(offset, offset + length) });
      if (release) sock.release(slot);
    }
    if (n < 64) return;
  }
}

/** Collects frames until `want` have arrived or `ms` pass. */
function receive(sock: PacketSocket, want: number, ms = 2000, release = true): Promise<Received[]> {
  const out: Received[] = [];
  drainAll(sock, out, release);
  if (out.length >= want) return Promise.resolve(out);
  return new Promise((resolve) => {
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      sock.stopPolling();
      resolve(out);
    }
    sock.startPolling(() => {
      drainAll(sock, out, release);
      if (out.length >= want) finish();
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** IFF_RUNNING follows the carrier, which the kernel's linkwatch reports a little after `ip link set up`. */
async function waitUp(ifname: string, netns: string): Promise<boolean> {
  for (let i = 0; i < 150; i++) {
    if (native.linkInfo(ifname, netns)?.up) return true;
    await sleep(20);
  }
  return false;
}

if (!hasRoot()) {
  t.plan(0, 'needs root and iproute2 to create network namespaces');
} else {
  const { nsA, nsB } = makePair(t, '');
  const open = (side: 'a' | 'b', frameCount = 16, frameSize = 2048): PacketSocket => {
    const sock = native.openPacket(side === 'a' ? 'va' : 'vb', { frameSize, frameCount, netns: side === 'a' ? nsA : nsB });
    t.teardown(() => sock.close());
    return sock;
  };

  t.test('linkInfo', async (t) => {
    const info = native.linkInfo('va', nsA);
    if (!info) throw new Error('va not found');
    const [shown] = JSON.parse(ip('-n', nsA.slice('/run/netns/'.length), '-j', 'link', 'show', 'va')) as { ifindex: number; address: string }[];
    t.equal(info.mtu, 1500);
    t.equal(info.ifindex, shown.ifindex);
    t.equal(Buffer.from(info.mac).toString('hex').match(/../g)!.join(':'), shown.address);
    t.equal(info.up, true);
    t.equal(native.linkInfo('nosuch0', nsA), null, 'missing interface is null');
    t.equal(native.linkInfo('vb', nsA), null, 'vb lives in the other namespace');
    t.not(native.linkInfo('lo'), null, 'no netns: our own namespace');
    t.throws(() => native.linkInfo('va', '/run/netns/aoetn-none-such'), { code: 'ENOENT', message: /not found; create it with `ip netns add/ });
    t.throws(() => native.linkInfo('x'.repeat(16), nsA), { code: 'EINVAL' });

    ip('-n', nsA.slice(11), 'link', 'set', 'va', 'mtu', '9000');
    t.equal(native.linkInfo('va', nsA)!.mtu, 9000, 'MTU change seen at once');
    ip('-n', nsA.slice(11), 'link', 'set', 'va', 'mtu', '1500');
    ip('-n', nsA.slice(11), 'link', 'set', 'va', 'down');
    t.equal(native.linkInfo('va', nsA)!.up, false, 'down');
    ip('-n', nsA.slice(11), 'link', 'set', 'va', 'up');
    t.equal(await waitUp('va', nsA), true, 'up again');
    const mac = info.mac;
    mac[0] ^= 1;
    t.not(native.linkInfo('va', nsA)!.mac[0], mac[0], 'mac is a fresh copy');
  });

  t.test('openPacket errors', async (t) => {
    t.throws(() => native.openPacket('eth9x', { frameSize: 2048, frameCount: 4, netns: nsA }),
      { code: 'ENODEV', message: /interface eth9x not found in network namespace .*; list interfaces with `ip -n NAME link`/ });
    t.throws(() => native.openPacket('va', { frameSize: 2048, frameCount: 4, netns: '/run/netns/aoetn-none-such' }),
      { code: 'ENOENT' });
    t.throws(() => native.openPacket('va', { frameSize: 64, frameCount: 4, netns: nsA }), { code: 'EINVAL', message: /frameSize 64/ });
    t.throws(() => native.openPacket('va', { frameSize: 2048, frameCount: 0, netns: nsA }), { code: 'EINVAL' });
    t.throws(() => native.openPacket('va', { frameSize: -1, frameCount: 4, netns: nsA }), RangeError);
    t.throws(() => native.openPacket('va', {} as never), TypeError);
  });

  t.test('frames arrive in place with offsets, lengths and bytes', async (t) => {
    const a = open('a');
    const b = open('b', 8, 2000);
    t.equal(b.frameSize, 2000, 'already a multiple of 16');
    t.equal(b.frameCount, 8);
    t.equal(b.ifindex, native.linkInfo('vb', nsB)!.ifindex);
    t.ok(b.fd > 2);
    t.ok(b.ring.length >= 8 * 2000);
    const lengths = [60, 61, 1514, 24, 333];
    const arena = new Uint8Array(8192);
    const desc = new Uint32Array(2 * lengths.length);
    let at = 0;
    lengths.forEach((len, i) => {
      writeFrame(arena, at, len, i);
      desc[2 * i] = at;
      desc[2 * i + 1] = len;
      at += len + 7; // odd offsets on purpose
    });
    t.equal(a.send(arena, desc, lengths.length), lengths.length);
    const got = await receive(b, lengths.length);
    t.equal(got.length, lengths.length);
    got.forEach((f, i) => {
      t.equal(f.length, lengths[i], `frame ${i} length`);
      t.equal(f.slot, i, `frame ${i} slot`);
      t.equal(f.offset % 16, SLOT_MAC_OFFSET % 16, 'the AoE header (mac + 14) is 16-aligned');
      t.same(f.bytes, arena.subarray(desc[2 * i], desc[2 * i] + lengths[i]), `frame ${i} bytes`);
    });
  });

  t.test('the kernel filter passes only AoE requests', async (t) => {
    const a = open('a');
    const b = open('b');
    const arena = new Uint8Array(4096);
    const frames: [number, { flags?: number; type?: number }][] = [
      [60, { flags: 0x18 }], // response (R set)
      [60, { type: 0x0800 }], // IPv4
      [23, {}], // shorter than the AoE header
      [60, { flags: 0x14 }], // error flag alone is fine: a request
      [24, {}], // exactly the header
      [60, { flags: 0x1c }], // R and E
      [64, {}], // marker
    ];
    const desc = new Uint32Array(2 * frames.length);
    frames.forEach(([len, opts], i) => {
      writeFrame(arena, 128 * i, len, i, opts);
      desc[2 * i] = 128 * i;
      desc[2 * i + 1] = len;
    });
    const initiator = native.openPacket('vb', { frameSize: 2048, frameCount: 16, netns: nsB, accept: 'replies' });
    t.teardown(() => initiator.close());
    t.equal(a.send(arena, desc, frames.length), frames.length);
    const got = await receive(b, 3);
    const replies = await receive(initiator, 2);
    await sleep(20);
    drainAll(b, got);
    drainAll(initiator, replies);
    t.same(got.map((f) => seqOf(f.bytes)), [3, 4, 6], 'only the requests passed');
    t.same(got.map((f) => f.length), [60, 24, 64]);
    t.same(replies.map((f) => seqOf(f.bytes)), [0, 5], "accept: 'replies' passes only R-set frames");
    t.throws(() => native.openPacket('vb', { frameSize: 2048, frameCount: 4, netns: nsB, accept: 'all' as never }), TypeError);
  });

  t.test('release recycles slots over many rounds', async (t) => {
    const a = open('a');
    const b = open('b', 8);
    t.equal(b.frameCount, 8);
    const arena = new Uint8Array(8 * 128);
    const desc = new Uint32Array(16);
    const seqs: number[] = [];
    const slots = new Set<number>();
    for (let round = 0; round < 7; round++) {
      for (let i = 0; i < 6; i++) {
        writeFrame(arena, 128 * i, 100, round * 6 + i);
        desc[2 * i] = 128 * i;
        desc[2 * i + 1] = 100;
      }
      t.equal(a.send(arena, desc, 6), 6);
      const got = await receive(b, 6);
      for (const f of got) {
        seqs.push(seqOf(f.bytes));
        slots.add(f.slot);
      }
    }
    t.same(seqs, Array.from({ length: 42 }, (_, i) => i), '42 frames through 8 slots, in order');
    t.same([...slots].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7], 'every slot was used');
    t.same(b.stats(), { packets: 42, drops: 0 });
  });

  t.test('a held slot stops drain at the wrap; release lets it go on', async (t) => {
    const a = open('a');
    const b = open('b', 4);
    t.equal(b.frameCount, 4);
    const arena = new Uint8Array(1024);
    const desc = new Uint32Array(8);
    const send = (seq: number) => {
      writeFrame(arena, 0, 60, seq);
      desc[0] = 0;
      desc[1] = 60;
      t.equal(a.send(arena, desc, 1), 1);
    };
    t.equal(b.ready(), false, 'ready(): nothing yet');
    send(0);
    for (let i = 0; i < 100 && !b.ready(); i++) await sleep(10);
    t.equal(b.ready(), true, 'ready() once a frame is in the ring');
    const [held] = await receive(b, 1, 2000, false);
    t.equal(held.slot, 0);
    t.equal(b.ready(), false, 'and not after drain() took it');
    for (let s = 1; s < 4; s++) {
      send(s);
      const [f] = await receive(b, 1);
      t.equal(f.slot, s);
    }
    send(4); // the kernel wraps onto slot 0, still held: dropped
    await sleep(20);
    t.equal(b.ready(), false, 'ready() is false while the next slot is held, as drain() would return nothing');
    const none: Received[] = [];
    drainAll(b, none);
    t.equal(none.length, 0, 'nothing past the held slot');
    t.same(b.stats(), { packets: 5, drops: 1 });
    t.throws(() => b.release(1), { code: 'ERR_OUT_OF_RANGE' }, 'double release is refused');
    t.throws(() => b.release(99), RangeError);
    b.release(0);
    send(5);
    const [f] = await receive(b, 1);
    t.same([f.slot, seqOf(f.bytes)], [0, 5]);
  });

  t.test('MTU 9000: 9014-byte frames; frames longer than a slot are dropped', async (t) => {
    const [nameA, nameB] = [nsA.slice(11), nsB.slice(11)];
    ip('-n', nameA, 'link', 'set', 'va', 'mtu', '9000');
    ip('-n', nameB, 'link', 'set', 'vb', 'mtu', '9000');
    t.teardown(() => {
      ip('-n', nameA, 'link', 'set', 'va', 'mtu', '1500');
      ip('-n', nameB, 'link', 'set', 'vb', 'mtu', '1500');
    });
    const a = open('a');
    const big = open('b', 8, 9000 + 14 + SLOT_MAC_OFFSET);
    const small = open('b', 8, 2048);
    t.equal(big.frameSize, 9088, 'rounded up to 16');
    const arena = new Uint8Array(2 * 9014);
    writeFrame(arena, 0, 9014, 1);
    writeFrame(arena, 9014, 9014, 2);
    t.equal(a.send(arena, new Uint32Array([0, 9014, 9014, 9014]), 2), 2);
    const got = await receive(big, 2);
    t.same(got.map((f) => f.length), [9014, 9014]);
    t.same(got[1].bytes, arena.subarray(9014), 'jumbo bytes intact');
    await sleep(20);
    const cut: Received[] = [];
    drainAll(small, cut);
    t.equal(cut.length, 0, 'the 2048-byte slots got no cut frames');
    t.same(small.stats(), { packets: 2, drops: 2 }, 'counted as drops');
  });

  t.test('send() results', async (t) => {
    const a = open('a');
    const arena = new Uint8Array(2048);
    writeFrame(arena, 0, 60, 0);
    t.equal(a.send(arena, new Uint32Array(0), 0), 0, 'nothing to send');
    t.equal(a.send(arena, new Uint32Array([0, 60, 0, 60, 0, 60]), 3), 3);
    t.throws(() => a.send(arena, new Uint32Array([2000, 60]), 1), RangeError, 'outside the arena');
    t.throws(() => a.send(arena, new Uint32Array([0, 10]), 1), RangeError, 'shorter than an Ethernet header');
    t.throws(() => a.send(arena, new Uint32Array([0, 60]), 2), RangeError, 'count beyond desc');
    t.throws(() => a.send(new Uint16Array(4) as never, new Uint32Array([0, 60]), 1), TypeError);
    const many = new Uint32Array(2 * 600);
    for (let i = 0; i < 600; i++) many.set([0, 60], 2 * i);
    t.equal(a.send(arena, many, 600), 600, 'more than one sendmmsg batch');
    ip('-n', nsA.slice(11), 'link', 'set', 'va', 'down');
    t.equal(a.send(arena, new Uint32Array([0, 60]), 1), -constants.errno.ENETDOWN, 'link down: -ENETDOWN');
    ip('-n', nsA.slice(11), 'link', 'set', 'va', 'up');
    t.ok(await waitUp('va', nsA));
  });

  t.test('stats count drops when the ring is full', async (t) => {
    const a = open('a');
    const b = open('b', 4);
    const arena = new Uint8Array(10 * 64);
    const desc = new Uint32Array(20);
    for (let i = 0; i < 10; i++) {
      writeFrame(arena, 64 * i, 60, i);
      desc.set([64 * i, 60], 2 * i);
    }
    t.equal(a.send(arena, desc, 10), 10);
    await sleep(50);
    t.same(b.stats(), { packets: 10, drops: 6 });
    t.same(b.stats(), { packets: 0, drops: 0 }, 'reading resets the counters');
    const got = await receive(b, 4);
    t.same(got.map((f) => seqOf(f.bytes)), [0, 1, 2, 3], 'the first four were kept');
  });

  t.test('polling: one wake-up per arrival, none while a slot is held', async (t) => {
    const a = open('a');
    const b = open('b', 16);
    const arena = new Uint8Array(64 * 10);
    const desc = new Uint32Array(20);
    for (let i = 0; i < 10; i++) {
      writeFrame(arena, 64 * i, 60, i);
      desc.set([64 * i, 60], 2 * i);
    }
    // A reader that takes at most 3 frames per wake-up still gets all 10.
    const ring = new Uint32Array(9);
    const seen: number[] = [];
    let wakeups = 0;
    const done = new Promise<void>((resolve) => {
      b.startPolling((status) => {
        t.equal(status, 0);
        wakeups++;
        const n = b.drain(ring, 3);
        for (let i = 0; i < n; i++) {
          seen.push(seqOf(b.ring.subarray(ring[3 * i], ring[3 * i] + 60)));
          b.release(ring[3 * i + 2]);
        }
        if (seen.length === 10) resolve();
      });
    });
    t.equal(a.send(arena, desc, 10), 10);
    await done;
    b.stopPolling();
    t.same(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    t.ok(wakeups >= 4, `left-over frames woke the reader again (${wakeups} wake-ups)`);

    // Hold the newest slot (as during a disk write from it): no busy wake-ups.
    wakeups = 0;
    let held = -1;
    b.startPolling(() => {
      wakeups++;
      if (b.drain(ring, 1) === 1) held = ring[2];
    });
    t.equal(a.send(arena, desc, 1), 1);
    await sleep(100);
    t.not(held, -1, 'got the frame');
    t.ok(wakeups <= 2, `no spinning while the slot is held (${wakeups} wake-ups in 100 ms)`);
    b.release(held);
    b.stopPolling();
  });

  t.test('polling reports the link going down', async (t) => {
    const b = open('b');
    const statuses: number[] = [];
    const got = new Promise<void>((resolve) => {
      b.startPolling((status) => {
        statuses.push(status);
        if (status < 0) resolve();
      });
    });
    ip('-n', nsB.slice(11), 'link', 'set', 'vb', 'down');
    await Promise.race([got, sleep(1000)]);
    b.stopPolling();
    ip('-n', nsB.slice(11), 'link', 'set', 'vb', 'up');
    t.ok(await waitUp('vb', nsB));
    t.ok(statuses.includes(-constants.errno.ENETDOWN), `got -ENETDOWN (${statuses.join(',')})`);
  });

  t.test('close() from inside onEvent', async (t) => {
    const a = open('a');
    const b = open('b');
    const arena = new Uint8Array(64);
    writeFrame(arena, 0, 60, 9);
    const closedInside = new Promise<number>((resolve) => {
      b.startPolling(() => {
        const n = b.drain(new Uint32Array(3), 1);
        b.close();
        resolve(n);
      });
    });
    t.equal(a.send(arena, new Uint32Array([0, 60]), 1), 1);
    t.equal(await closedInside, 1);
    await sleep(20); // the loop goes on; the closed socket's poll is gone
    t.equal(b.ring.length, 0);
  });

  t.test('close() then every method throws; close is idempotent', async (t) => {
    const b = open('b');
    const ring = b.ring;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- calling it unbound is the point
    const detachedDrain = b.drain;
    t.equal(detachedDrain(new Uint32Array(3), 1), 0, 'works without `this`');
    b.startPolling(() => undefined);
    b.close();
    b.close();
    t.equal(b.ring.length, 0, 'the ring view is detached');
    t.equal(ring.length, 0);
    t.equal(ring[100], undefined, 'reads from the dead ring are harmless');
    const desc = new Uint32Array(3);
    const closed = { code: 'EBADF', message: /packet socket on vb is closed/ };
    t.throws(() => b.drain(desc, 1), closed);
    t.throws(() => b.release(0), closed);
    t.throws(() => b.send(new Uint8Array(60), new Uint32Array([0, 60]), 1), closed);
    t.throws(() => b.stats(), closed);
    t.equal(b.ready(), false, 'ready() is false once closed');
    t.throws(() => b.startPolling(() => undefined), closed);
    b.stopPolling();
    t.throws(() => detachedDrain(desc, 1), closed, 'a method taken off the object is bound to its socket');
  });
}
