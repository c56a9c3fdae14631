// Shared pieces of the integration tests: opening the project's client on
// the other end of the veth pair once its carrier is up, and sending
// hand-built frames while recording everything that comes back. Targets are
// started with test/helpers/targets.ts.
//
// Network safety: every frame goes over veth devices that the test created
// inside namespaces it created (lab/netns.ts); nothing here opens a
// socket outside them.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { AoeClient, BROADCAST_MAC, FrameAddress, ReceivedFrame, formatMac, linkInfo, writeBe32 } from '../../src/client';
import { sleep, TestLike } from '../../lab/common';
import type { Netns } from '../../lab/netns';
import { describeRun, type RunResult } from '../../lab/process';
import { waitLinkUp } from '../helpers/targets';

/** The MAC of an interface as aa:bb:cc:dd:ee:ff. */
export function macOf(ns: Netns, ifname: string): string {
  return formatMac(linkInfo(ifname, ns.path).mac);
}

/**
 * Opens the project's client on `ifname` in `ns` (after the carrier is up),
 * records every AoE reply it sees, and closes it in teardown.
 */
export async function openClient(
  t: TestLike,
  ns: Netns,
  ifname: string,
  opts: { timeoutMs?: number; retries?: number } = {},
): Promise<Recorder> {
  await waitLinkUp(ns, ifname);
  const client = AoeClient.open(ifname, { netns: ns.path, timeoutMs: opts.timeoutMs ?? 1500, retries: opts.retries ?? 3 });
  const rec = new Recorder(client);
  t.teardown(() => rec.close());
  return rec;
}

/**
 * A client plus a log of every frame it received, so that a test can check
 * afterwards that nothing answered a frame that must be ignored.
 */
export class Recorder {
  readonly frames: ReceivedFrame[] = [];
  readonly client: AoeClient;
  private readonly unlisten: () => void;

  constructor(client: AoeClient) {
    this.client = client;
    this.unlisten = client.listen((f) => this.frames.push(f));
  }

  get mac(): Uint8Array {
    return this.client.mac;
  }

  close(): void {
    this.unlisten();
    this.client.close();
  }

  /** Frames seen so far carrying this tag. */
  withTag(tag: number): ReceivedFrame[] {
    return this.frames.filter((f) => f.header.tag === tag);
  }

  /** Waits for `n` frames matching `pred` among those recorded (including earlier ones). */
  async waitFrames(pred: (f: ReceivedFrame) => boolean, n = 1, timeoutMs = 5000): Promise<ReceivedFrame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.frames.filter(pred);
      if (got.length >= n || Date.now() > deadline) return got;
      await sleep(10);
    }
  }

  /**
   * Builds a frame with `build(buf)` (returning its length), gives it a fresh
   * tag, sends it once, and returns the first reply with that tag (or
   * undefined after `timeoutMs`).
   */
  async send(
    build: (buf: Uint8Array) => number,
    timeoutMs = 3000,
  ): Promise<{ tag: number; reply?: ReceivedFrame; sent: Uint8Array }> {
    const buf = new Uint8Array(10000);
    const len = build(buf);
    const frame = buf.subarray(0, len);
    const tag = this.client.newTag();
    writeBe32(frame, 20, tag);
    const got = await this.client.rawExchange(frame, { timeoutMs, max: 1 });
    return { tag, reply: got[0], sent: frame.slice() };
  }

  /**
   * Sends a frame that must be ignored, then a control request that must be
   * answered; returns the replies (if any) that the first one drew. Because
   * the target handles frames in order, an answered control means the first
   * frame was seen and judged; a short extra wait catches late stragglers.
   */
  async expectSilence(
    build: (buf: Uint8Array) => number,
    control: (buf: Uint8Array) => number,
  ): Promise<{ ignored: ReceivedFrame[]; controlAnswered: boolean }> {
    const first = await this.sendNoWait(build);
    const c = await this.send(control, 5000);
    await sleep(150);
    return { ignored: this.withTag(first), controlAnswered: c.reply !== undefined };
  }

  /** Sends a frame (with a fresh tag) without waiting for anything; returns the tag. */
  async sendNoWait(build: (buf: Uint8Array) => number): Promise<number> {
    const buf = new Uint8Array(10000);
    const len = build(buf);
    const frame = buf.subarray(0, len);
    const tag = this.client.newTag();
    writeBe32(frame, 20, tag);
    this.client.sendRaw(frame);
    return tag;
  }
}

/** A frame address from the client to a target (unicast when `dst` is given, else broadcast). */
export function addr(src: Uint8Array, shelf: number, slot: number, dst?: Uint8Array): FrameAddress {
  return { dst: dst ?? BROADCAST_MAC, src, shelf, slot };
}

/** Reads `count` sectors of a file at sector `lba` straight from disk. */
export async function readSectors(path: string, lba: number, count: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(count * 512);
    const { bytesRead } = await fh.read(buf, 0, buf.length, lba * 512);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Writes sectors into a file at sector `lba`. */
export async function writeSectors(path: string, lba: number, data: Uint8Array): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(data, 0, data.length, lba * 512);
  } finally {
    await fh.close();
  }
}

/** A buffer of `count` sectors, each filled with a recognisable byte pattern. */
export function stamp(label: string, count: number): Buffer {
  const b = Buffer.alloc(count * 512);
  for (let s = 0; s < count; s++) {
    const text = `${label}/${s}/`;
    for (let i = 0; i < 512; i++) b[s * 512 + i] = text.charCodeAt(i % text.length);
  }
  return b;
}

/** The open flags (octal, as /proc/PID/fdinfo shows them) of the descriptor `pid` holds on `path`. */
export function openFlagsOf(pid: number, path: string): number | undefined {
  const dir = `/proc/${pid}/fd`;
  for (const fd of readdirSync(dir)) {
    let target: string;
    try {
      target = readlinkSync(join(dir, fd));
    } catch {
      continue;
    }
    if (target === path) {
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      const m = /^flags:\s+([0-7]+)$/m.exec(info);
      if (m) return parseInt(m[1], 8);
    }
  }
  return undefined;
}

/** Milliseconds since `start` (a Date.now() value), for timing comments. */
export function since(start: number): string {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}

/** `got` reduced to the keys that `want` names (recursively for plain objects); arrays and values are kept whole. */
export function project(got: unknown, want: unknown): unknown {
  if (want !== null && typeof want === 'object' && !Array.isArray(want) && got !== null && typeof got === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(want))
      out[k] = project((got as Record<string, unknown>)[k], (want as Record<string, unknown>)[k]);
    return out;
  }
  return got;
}

/** Like t.match for the named fields, but arrays must be equal in full (t.match lets [] match any array). */
export function fields(
  t: { same: (a: unknown, b: unknown, ...rest: [string]) => boolean },
  got: unknown,
  want: unknown,
  msg = 'fields as expected',
): boolean {
  return t.same(project(got, want), want, msg);
}

/**
 * Compares sectors read from somewhere with what they should hold: 'same',
 * or which sector differs first and how both begin (readable in a test
 * message, unlike a diff of two binary buffers).
 */
export function sectorDiff(got: Uint8Array, want: Uint8Array): string {
  if (got.length !== want.length) return `${got.length} bytes instead of ${want.length}`;
  let i = 0;
  while (i < got.length && got[i] === want[i]) i++;
  if (i === got.length) return 'same';
  const s = Math.floor(i / 512);
  const head = (b: Uint8Array) => {
    const h = Buffer.from(b.subarray(s * 512, s * 512 + 16));
    return `${JSON.stringify(h.toString('latin1').replace(/[^\x20-\x7e]/g, '.'))}`;
  };
  return `sector +${s} differs at byte ${i % 512}: got ${head(got)}, want ${head(want)}`;
}

/** Asserts that a finished command exited 0; on failure its command line and output follow as a comment. */
export function exitedZero(
  t: { equal: (a: unknown, b: unknown, ...rest: [string]) => boolean; comment: (...a: unknown[]) => void },
  r: RunResult,
  what: string,
): boolean {
  const ok = t.equal(r.timedOut ? 'timed out' : r.code, 0, `${what} exits 0`);
  if (!ok) t.comment(describeRun(r));
  return ok;
}
