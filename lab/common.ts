// Shared pieces of lab/ (used by the tests and the bench): the little of
// tap's Test object that the helpers use, unique names, skip-or-fail for missing prerequisites, and the
// process-exit safety net that undoes what a test created when its teardown
// never ran (a crash, process.exit(), a tap timeout).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The part of a tap Test (or the root TAP object) that the helpers need.
 * Kept structural so that the helpers do not depend on tap's generic types.
 */
export interface TestLike {
  teardown(fn: () => unknown): void;
  pass(...args: [message: string] | [message: string, extra: { skip?: string | boolean }]): boolean;
  fail(...args: [message: string] | [message: string, extra: { [k: string]: unknown }]): boolean;
  comment(...args: unknown[]): void;
}

/** Names of everything the helpers create start with this. */
export const PREFIX = 'aoet';

let counter = 0;

/**
 * A unique id for one created object: `aoet<pid base 36>-<counter base 36>`,
 * at most 13 characters, so that a 2-character role suffix still fits the
 * kernel's 15-character interface names. The pid part lets a later run tell
 * whether the process that created a leftover still exists.
 */
export function uniqueId(): string {
  counter += 1;
  const c = counter.toString(36);
  if (c.length > 3) throw new Error('test helpers: more than 46655 objects in one process');
  return `${PREFIX}${process.pid.toString(36)}-${c}`;
}

/** The start time of a process (clock ticks since boot, /proc/<pid>/stat field 22): with the pid, it names one process for good. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The prefix of every name this process creates. */
export function ownPrefix(): string {
  return `${PREFIX}${process.pid.toString(36)}-`;
}

/**
 * Whether a process with this pid exists and has not finished: a zombie
 * (exited, not yet reaped by its parent) counts as gone.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The state follows the parenthesised command name, which may contain spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** True when the suite runs in CI, where a skip is a hole in the suite. */
export function inCI(): boolean {
  const v = process.env.CI;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/**
 * Records a missing prerequisite: outside CI a skipped test point with the
 * reason; in CI a failure, because CI must run every test. Returns false so
 * that callers can write `if (!skipOrFail(t, why)) return`.
 */
export function skipOrFail(t: TestLike, reason: string): false {
  if (inCI()) t.fail(`prerequisite missing in CI: ${reason}`);
  else t.pass(reason, { skip: reason });
  return false;
}

/** Teardown steps run in this order on exit: processes first, then mounts and loop devices, then namespaces, then files. */
export enum ExitOrder {
  Processes = 0,
  Mounts = 1,
  Network = 2,
  Files = 3,
}

interface ExitEntry {
  order: number;
  fn: () => void;
}

const exitEntries = new Set<ExitEntry>();
let exitHooked = false;
let exitRan = false;

function runExitEntries(): void {
  if (exitRan) return;
  exitRan = true;
  const list = [...exitEntries].sort((a, b) => a.order - b.order);
  exitEntries.clear();
  for (const e of list) {
    try {
      e.fn();
    } catch {
      // best effort: the safety net must not throw while the process exits
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runExitEntries();
  // Re-raise so that the process still ends by the signal. Always, even
  // when other listeners remain: tap loads signal-exit into test processes
  // (and, through NODE_OPTIONS, into every Node child), and signal-exit only
  // kills the process when it is the last listener, which it is on this
  // second delivery.
  process.removeListener(sig, onSignal);
  process.kill(process.pid, sig);
}

/**
 * Registers a synchronous cleanup for the 'exit' event and SIGINT/SIGTERM/
 * SIGHUP. Returns a function that unregisters it (call it once the normal
 * asynchronous teardown has done the work).
 */
export function onProcessExit(order: ExitOrder, fn: () => void): () => void {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', runExitEntries);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  }
  const entry: ExitEntry = { order, fn };
  exitEntries.add(entry);
  return () => {
    exitEntries.delete(entry);
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Where temporary directories go: $AOET_TMPDIR, else the OS temp dir. */
export function tempRoot(): string {
  return process.env.AOET_TMPDIR || tmpdir();
}

/** A new empty directory, removed with its contents in teardown. */
export function tempDir(t: TestLike, label = 'tmp'): string {
  const dir = mkdtempSync(join(tempRoot(), `${uniqueId()}-${label.replace(/[^\w.-]/g, '_')}-`));
  const unregister = onProcessExit(ExitOrder.Files, () => rmSync(dir, { recursive: true, force: true }));
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true });
    unregister();
  });
  return dir;
}
