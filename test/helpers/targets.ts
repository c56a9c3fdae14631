// Starting a target (ours, Debian's vblade, or another program with vblade's
// command line) inside a test namespace and waiting until it serves, and
// waiting for a link's carrier before a client opens on it.
//
// Network safety: the target runs inside a namespace the test made
// (test/helpers/netns.ts) and is stopped by pid in the test's teardown.

import { join, resolve } from 'node:path';
import { loadNative } from '../../src/client/transport';
import { TestLike, sleep } from './common';
import type { Netns } from './netns';
import type { Proc } from './process';

/** The checkout (this file runs from dist/test/helpers). */
export const REPO = resolve(__dirname, '..', '..', '..');
export const OUR_VBLADE = join(REPO, 'bin', 'vblade.js');
export const DEBIAN_VBLADE = '/usr/sbin/vblade';

/** Which target answers: this project's daemon or Debian's vblade. */
export type TargetKind = 'ours' | 'vblade';

export interface TargetCommandOptions {
  /** Default 'ours'. */
  kind?: TargetKind;
  /** A command the target is started through, e.g. ['setpriv', ...] or ['strace', ...]; the target's argv follows it. */
  prefix?: readonly string[];
}

/** The argv that starts a target with vblade-style arguments, as [command, arguments]. */
export function targetCommand(args: readonly string[], opts: TargetCommandOptions = {}): [string, string[]] {
  const program = (opts.kind ?? 'ours') === 'ours' ? [process.execPath, OUR_VBLADE] : [DEBIAN_VBLADE];
  const argv = [...(opts.prefix ?? []), ...program, ...args];
  return [argv[0], argv.slice(1)];
}

export interface StartTargetOptions extends TargetCommandOptions {
  env?: NodeJS.ProcessEnv;
  /** Name in messages; default the kind. */
  label?: string;
  /** How long to wait for the start-up line; default 60 s (the machine is shared). */
  timeoutMs?: number;
}

export interface RunningTarget {
  proc: Proc;
  /** The target's own pid from its start-up line (under a prefix such as strace, not the spawned one's). */
  pid: number;
  /** Exported sectors from the start-up line. */
  sectors: number;
  /** O_RDWR or O_RDONLY from the start-up line. */
  mode: string;
  /** The start-up line itself. */
  line: string;
}

// Both our target and Debian's vblade print this once the export is open.
const STARTUP = /^pid (\d+): e(\d+)\.(\d+), (\d+) sectors (O_RDWR|O_RDONLY)$/;

/**
 * Starts a target inside `ns` with vblade arguments and waits for its
 * start-up line (`pid N: eS.L, N sectors O_RDWR`). The process is stopped by
 * pid in the test's teardown (SIGTERM, then SIGKILL).
 */
export async function startTarget(
  t: TestLike,
  ns: Netns,
  args: readonly string[],
  opts: StartTargetOptions = {},
): Promise<RunningTarget> {
  const kind = opts.kind ?? 'ours';
  const [cmd, argv] = targetCommand(args, opts);
  // Long fuzz and crash runs log a line per event: keep memory bounded.
  const proc = ns.spawn(t, cmd, argv, { env: opts.env, label: opts.label ?? kind, maxLines: 20000 });
  // vblade may print its start-up line on either stream; ours uses stdout.
  const stream = kind === 'ours' ? 'stdout' : 'both';
  const m = await proc.waitFor(STARTUP, { stream, timeoutMs: opts.timeoutMs ?? 60000 });
  return { proc, pid: Number(m[1]), sectors: Number(m[4]), mode: m[5], line: m[0] };
}

/**
 * Waits until an interface in `ns` exists and has IFF_UP and IFF_RUNNING: a
 * veth's carrier follows `ip link set up` by up to ~1 s, and a link-fault test
 * waits here for a pair it has just created again.
 */
export async function waitLinkUp(ns: Netns, ifname: string, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = loadNative().linkInfo(ifname, ns.path);
    if (info !== null && info.up) return;
    if (Date.now() > deadline) throw new Error(`${ifname} in ${ns.name}: no carrier after ${timeoutMs} ms`);
    await sleep(25);
  }
}
