// Shared plumbing of the reliability tests and of the long-run scripts in
// scripts/reliability: a TestLike for scripts (teardowns run at the end),
// opening a client once the veth has its carrier, a seeded random generator
// and small file utilities. Targets are started with test/helpers/targets.ts.
//
// Every frame goes over veth/bridge devices inside namespaces the test made
// (lab/netns.ts); processes are stopped by pid only.

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { AoeClient } from '../../../src/client/client';
import { fillSector } from '../../../src/client/pattern';
import { TestLike } from '../../../lab/common';
import type { Netns } from '../../../lab/netns';
import { Proc } from '../../../lab/process';
import { waitLinkUp } from '../../helpers/targets';

// ------------------------------------------------------------------ scripts

/**
 * A TestLike for the long-run scripts: teardowns are kept and run in reverse
 * order by close(); pass/fail/comment print a line each.
 */
export class ScriptRun implements TestLike {
  private readonly teardowns: (() => unknown)[] = [];
  readonly failures: string[] = [];
  quiet = false;

  teardown(fn: () => unknown): void {
    this.teardowns.push(fn);
  }

  pass(message: string, extra?: { skip?: string | boolean }): boolean {
    if (!this.quiet || extra?.skip) console.log(`${extra?.skip ? 'skip' : 'ok'}: ${message}`);
    return true;
  }

  fail(message: string, extra?: { [k: string]: unknown }): boolean {
    this.failures.push(message);
    console.log(`FAIL: ${message}${extra ? ` ${JSON.stringify(extra)}` : ''}`);
    return false;
  }

  comment(...args: unknown[]): void {
    console.log(`# ${args.map(String).join(' ')}`);
  }

  async close(): Promise<void> {
    while (this.teardowns.length > 0) {
      const fn = this.teardowns.pop()!;
      try {
        await fn();
      } catch (e) {
        console.log(`# teardown failed: ${(e as Error).message}`);
      }
    }
  }
}

/** Parses `--name value` / `--name=value` options of a script; numbers where the default is one. */
export function scriptOptions<T extends Record<string, number | string | boolean>>(argv: readonly string[], defaults: T): T {
  const out: Record<string, number | string | boolean> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--'))
      throw new Error(
        `unexpected argument "${a}"; options are ${Object.keys(defaults)
          .map((k) => `--${k}`)
          .join(' ')}`,
      );
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (!(name in defaults))
      throw new Error(
        `unknown option --${name}; options are ${Object.keys(defaults)
          .map((k) => `--${k}`)
          .join(' ')}`,
      );
    const d = defaults[name];
    if (typeof d === 'boolean' && inline === undefined) {
      out[name] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new Error(`--${name} needs a value`);
    out[name] = typeof d === 'number' ? Number(v) : typeof d === 'boolean' ? v !== '0' && v !== 'false' : v;
    if (typeof d === 'number' && !Number.isFinite(out[name])) throw new Error(`--${name}: "${v}" is not a number`);
  }
  return out as T;
}

/** Runs a script body with a ScriptRun, cleans up, and sets the exit code (1 on any failure or exception). */
export function runScript(body: (t: ScriptRun) => Promise<void>): void {
  const t = new ScriptRun();
  const done = (code: number): void => {
    process.exitCode = code;
  };
  body(t).then(
    async () => {
      await t.close();
      done(t.failures.length > 0 ? 1 : 0);
      if (t.failures.length > 0) console.log(`${t.failures.length} failure(s)`);
    },
    async (e: unknown) => {
      console.log(`ERROR: ${(e as Error).stack ?? String(e)}`);
      await t.close();
      done(1);
    },
  );
}

// ------------------------------------------------------------------ random

/** xoshiro128**, seeded through splitmix32: fast, reproducible, 2^128 period. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() || 1;
  }

  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** 0 <= n < k */
  int(k: number): number {
    return k <= 1 ? 0 : Math.floor((this.u32() / 0x100000000) * k);
  }

  /** lo <= n <= hi */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  fill(buf: Uint8Array, off: number, len: number): void {
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      const x = this.u32();
      buf[off + i] = x & 0xff;
      buf[off + i + 1] = (x >>> 8) & 0xff;
      buf[off + i + 2] = (x >>> 16) & 0xff;
      buf[off + i + 3] = x >>> 24;
    }
    for (; i < len; i++) buf[off + i] = this.u32() & 0xff;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A seed from the environment variable `name` (decimal or 0x hex), else `fallback`. */
export function seedFrom(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback >>> 0;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}="${v}" is not a number`);
  return n >>> 0;
}

// ------------------------------------------------------------------ client

export interface ClientOpenOptions {
  timeoutMs?: number;
  retries?: number;
  frameCount?: number;
}

/** Opens an AoeClient on `ifname` in `ns` once it is up; closed in teardown. */
export async function openClient(t: TestLike, ns: Netns, ifname: string, opts: ClientOpenOptions = {}): Promise<AoeClient> {
  await waitLinkUp(ns, ifname);
  const c = AoeClient.open(ifname, {
    netns: ns.path,
    timeoutMs: opts.timeoutMs ?? 500,
    retries: opts.retries ?? 6,
    frameCount: opts.frameCount ?? 1024,
  });
  t.teardown(() => c.close());
  return c;
}

// ------------------------------------------------------------------ files

/** Writes the client's test pattern (src/client/pattern.ts) over sectors [first, first + count) of a file. */
export function writeClientPattern(file: string, first: number, count: number, fileSector = first): void {
  const fd = openSync(file, 'r+');
  try {
    const chunk = 2048;
    const buf = new Uint8Array(chunk * 512);
    for (let s = 0; s < count; s += chunk) {
      const n = Math.min(chunk, count - s);
      for (let i = 0; i < n; i++) fillSector(buf, i * 512, first + s + i);
      writeSync(fd, buf, 0, n * 512, (fileSector + s) * 512);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** SHA-256 of a whole file (hex). */
export function fileHash(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Parses the daemon's JSON log lines (stderr) into objects; other lines are skipped. */
export function logRecords(proc: Proc): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const l of proc.lines) {
    if (l.stream !== 'stderr' || !l.text.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l.text) as Record<string, unknown>);
    } catch {
      // not JSON
    }
  }
  return out;
}

/** Resident set size (kB) and open file descriptors of a process, from /proc. */
export function procUsage(pid: number): { rssKb: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  return { rssKb: m ? Number(m[1]) : 0, fds };
}

/** Percentile of a sorted-or-not numeric array. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
