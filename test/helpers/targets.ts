// Starting a target (ours, Debian's vblade, or another program with vblade's
// command line) inside a test namespace and waiting until it serves, and
// waiting for a link's carrier before a client opens on it.
//
// Network safety: the target runs inside a namespace the test made
// (lab/netns.ts) and is stopped by pid in the test's teardown.

import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { loadAddon } from '../../src/native/addon';
import { TestLike, sleep } from '../../lab/common';
import { DEBIAN_VBLADE } from '../../lab/peers';
import { tempDir } from './files';
import type { Netns } from '../../lab/netns';
import type { Proc } from '../../lab/process';

/** The checkout (this file runs from dist/test/helpers). */
export const REPO = resolve(__dirname, '..', '..', '..');
export const OUR_VBLADE = join(REPO, 'bin', 'vblade.js');
export { DEBIAN_VBLADE } from '../../lab/peers';

/** Which target answers: this project's daemon or Debian's vblade. */
export type TargetKind = 'ours' | 'vblade';

export interface TargetCommandOptions {
  /** Default 'ours'. */
  kind?: TargetKind;
  /** Our bin/vblade.js to run (default OUR_VBLADE): see vbladeForUser(). */
  vblade?: string;
  /** A command the target is started through, e.g. ['setpriv', ...] or ['strace', ...]; the target's argv follows it. */
  prefix?: readonly string[];
}

/** The argv that starts a target with vblade-style arguments, as [command, arguments]. */
export function targetCommand(args: readonly string[], opts: TargetCommandOptions = {}): [string, string[]] {
  const program = (opts.kind ?? 'ours') === 'ours' ? [process.execPath, opts.vblade ?? OUR_VBLADE] : [DEBIAN_VBLADE];
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
    const info = loadAddon().linkInfo(ifname, ns.path);
    if (info !== null && info.up) return;
    if (Date.now() > deadline) throw new Error(`${ifname} in ${ns.name}: no carrier after ${timeoutMs} ms`);
    await sleep(25);
  }
}

/**
 * The arguments of `env` that run `command` as nobody: without the
 * NODE_OPTIONS tap gives every child (its loaders live in the checkout,
 * which nobody may not read when it is private). Run it with cwd '/'.
 */
export function asNobodyArgs(...command: string[]): string[] {
  return ['-u', 'NODE_OPTIONS', 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', ...command];
}

/** Whether every directory from / down to `path` lets others in, and `path` lets them read. */
function othersCanRead(path: string): boolean {
  for (let p = path; ; p = dirname(p)) {
    const mode = statSync(p).mode;
    if ((mode & 0o005) !== 0o005) return false;
    if (p === dirname(p)) return true;
  }
}

/** Makes a staged tree readable by everyone, whatever the umask of the checkout was. */
function openToOthers(path: string): void {
  const st = statSync(path);
  if (st.isDirectory()) {
    chmodSync(path, 0o755);
    for (const e of readdirSync(path)) openToOthers(join(path, e));
  } else chmodSync(path, st.mode | 0o444);
}

/**
 * A checkout a user other than root can run: REPO itself when everyone may
 * read it, else, for a checkout in a private directory (under /root, in a
 * `mktemp -d` directory), the program installed the way a package would be
 * -- the compiled JavaScript of src/, the addon, package.json and the
 * production dependencies -- in a temporary directory everyone can read,
 * removed in the test's teardown. Its dist/src holds the modules a test's
 * script run as that user may require.
 */
export function checkoutForUser(t: TestLike): string {
  if (othersCanRead(REPO) && othersCanRead(OUR_VBLADE)) return REPO;
  const root = tempDir(t, 'install');
  for (const p of ['package.json', 'bin', join('dist', 'src'), join('build', 'Release', 'aoe_native.node')]) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    cpSync(join(REPO, p), join(root, p), { recursive: true });
  }
  // The production dependency tree, as npm laid it out (paths are absolute).
  const deps = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO, encoding: 'utf8' })
    .split('\n')
    .filter((p) => p.startsWith(join(REPO, 'node_modules')));
  for (const p of deps) cpSync(p, join(root, relative(REPO, p)), { recursive: true });
  openToOthers(root);
  return root;
}

/** Our bin/vblade.js as a user other than root can run it (see checkoutForUser). */
export function vbladeForUser(t: TestLike): string {
  return join(checkoutForUser(t), 'bin', 'vblade.js');
}

/** vbladed's argv (after node) for `conf`, with its run directory and log file in `dir` and no state directory. */
export function vbladedArgs(dir: string, conf: string): string[] {
  const files = ['--run-dir', join(dir, 'run'), '--log-file', join(dir, 'vbladed.log')];
  return [join(REPO, 'bin', 'vbladed.js'), '--config', conf, '--state-dir', 'none', ...files];
}

/** Whether a process with this pid exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
