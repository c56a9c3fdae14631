// Pid files and per-export locks.
//
// A pid file is created with O_CREAT|O_EXCL and holds the pid alone on one
// line, as every daemon writes it, so that `kill $(cat FILE)` works. Beside
// it, FILE.start holds
//
//   pid=1234 start=987654     the owner's start time (field 22 of /proc/PID/stat)
//
// The start time tells a live owner from a stale file whose pid has been
// reused by an unrelated process; it counts only when its pid matches the pid
// file's. Without it (a foreign file, or one being written) a live process
// counts as the owner when it looks like vbladed. A two-line file of an older
// version (pid, then start=N) is still read. A file whose owner is gone (or is
// someone else now) is stale: it is logged, removed and the creation retried
// once. Only a file that still names us is removed on release.
//
// The same mechanism guards exports: vbladed takes RUN-DIR/eS.L@IFACE.lock for
// every export and interface it serves, so a second vbladed for the same
// shelf.slot on the same interface refuses to start (or to reload into it).

import * as fs from 'node:fs';
import * as path from 'node:path';

export class AlreadyRunningError extends Error {
  constructor(
    message: string,
    readonly pid: number,
    readonly file: string,
  ) {
    super(message);
    this.name = 'AlreadyRunningError';
  }
}

export interface PidFileContent {
  pid: number;
  startTime?: string;
}

/** Start time of a process (clock ticks since boot, field 22 of /proc/PID/stat), or undefined if it does not exist. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 is fields[19].
  if (fields[0] === 'Z') return undefined; // a zombie has exited
  return fields[19];
}

/** The file beside a pid file that records its owner's start time. */
export function startTimeFile(file: string): string {
  return `${file}.start`;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export function readPidFile(file: string): PidFileContent | undefined {
  const text = readText(file);
  // The second line is what versions before FILE.start wrote.
  const m = text === undefined ? null : /^([0-9]+)\n(?:start=([0-9]+))?/.exec(text);
  if (!m) return undefined;
  const c: PidFileContent = { pid: Number(m[1]) };
  const side = /^pid=([0-9]+) start=([0-9]+)\n/.exec(readText(startTimeFile(file)) ?? '');
  if (m[2]) c.startTime = m[2];
  else if (side && Number(side[1]) === c.pid) c.startTime = side[2];
  return c;
}

/** Whether the process a pid file names is running and is still the one that wrote it. */
export function ownerAlive(c: PidFileContent): boolean {
  const start = processStartTime(c.pid);
  if (start === undefined) return false;
  if (c.startTime !== undefined) return start === c.startTime;
  // A foreign pid file without a start time: trust it only if the process looks like us.
  try {
    return /vblade/.test(fs.readFileSync(`/proc/${c.pid}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
}

/** The message for a live owner of a pid or lock file. */
export function alreadyRunningMessage(what: string, pid: number, file: string): string {
  return `vbladed is already running for ${what} (pid ${pid}, ${file}); stop it first (kill ${pid}) or choose another shelf.slot or interface`;
}

/** Read-only check (nothing is created): the error acquire() would throw for a live owner, or undefined. */
export function checkPidFile(file: string, what: string): AlreadyRunningError | undefined {
  const owner = readPidFile(file);
  if (owner && owner.pid !== process.pid && ownerAlive(owner)) {
    return new AlreadyRunningError(alreadyRunningMessage(what, owner.pid, file), owner.pid, file);
  }
  return undefined;
}

export interface PidFileOptions {
  /** What the file guards, for messages, e.g. "e1.1 on eth1" or "instance vblade". */
  what: string;
  /** Called when a stale file is removed. */
  onStale?: (info: { file: string; pid?: number }) => void;
  /** The pid to write (default: this process). */
  pid?: number;
  /** Files younger than this with unreadable content are taken as being written by a racing starter. */
  graceMs?: number;
}

export class PidFile {
  private released = false;

  private constructor(
    readonly file: string,
    readonly pid: number,
  ) {}

  /**
   * Creates `file` exclusively, replacing a stale one. Throws
   * AlreadyRunningError when a live owner holds it.
   */
  static acquire(file: string, opts: PidFileOptions): PidFile {
    const pid = opts.pid ?? process.pid;
    const start = processStartTime(pid);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    for (let attempt = 0; ; attempt++) {
      let fd: number;
      try {
        fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new AlreadyRunningError(
              `another vbladed is taking ${opts.what} right now (pid file ${file}); try again`,
              0,
              file,
            );
          }
          throw e;
        }
        const owner = readPidFile(file);
        if (owner && owner.pid !== pid && ownerAlive(owner)) {
          throw new AlreadyRunningError(alreadyRunningMessage(opts.what, owner.pid, file), owner.pid, file);
        }
        if (!owner) {
          let age = Infinity;
          try {
            age = Date.now() - fs.statSync(file).mtimeMs;
          } catch {
            // gone meanwhile: retry
          }
          if (age < (opts.graceMs ?? 2000)) {
            throw new AlreadyRunningError(
              `another vbladed is taking ${opts.what} right now (pid file ${file}); try again`,
              0,
              file,
            );
          }
        }
        opts.onStale?.({ file, pid: owner?.pid });
        // The start-time file first: while the pid file exists nobody else writes one.
        fs.rmSync(startTimeFile(file), { force: true });
        fs.rmSync(file, { force: true });
        continue;
      }
      try {
        fs.writeSync(fd, `${pid}\n`);
      } finally {
        fs.closeSync(fd);
      }
      if (start !== undefined) fs.writeFileSync(startTimeFile(file), `pid=${pid} start=${start}\n`, { mode: 0o644 });
      return new PidFile(file, pid);
    }
  }

  /** Removes the file if it still names us. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const c = readPidFile(this.file);
    if (c && c.pid === this.pid) {
      // The start-time file first: a reader in between sees a pid file of a live vbladed.
      fs.rmSync(startTimeFile(this.file), { force: true });
      fs.rmSync(this.file, { force: true });
    }
  }
}

/** The lock file of one export on one interface. */
export function exportLockFile(runDir: string, key: string, iface: string): string {
  return path.join(runDir, `${key}@${iface}.lock`);
}

/**
 * The set of export/interface locks one vbladed holds. `update` takes the
 * locks of a new export list, all or nothing, and releases those no longer
 * needed only when told (after the worker has let go of them).
 */
export class ExportLocks {
  private readonly held = new Map<string, PidFile>();

  constructor(
    readonly runDir: string,
    private readonly onStale?: (info: { file: string; pid?: number }) => void,
  ) {}

  /** Lock names (key@iface) held now. */
  names(): string[] {
    return [...this.held.keys()];
  }

  /**
   * Takes the locks for every (export, interface) in `wanted` that is not held
   * yet. On a conflict releases what this call took and throws. Returns the
   * names held before that are not in `wanted` (to release later with drop()).
   */
  acquire(wanted: ReadonlyArray<{ key: string; interfaces: readonly string[] }>): string[] {
    const want = new Set<string>();
    for (const e of wanted) for (const i of e.interfaces) want.add(`${e.key}@${i}`);
    const taken: string[] = [];
    try {
      for (const name of want) {
        if (this.held.has(name)) continue;
        const [key, iface] = name.split('@') as [string, string];
        const pf = PidFile.acquire(exportLockFile(this.runDir, key, iface), {
          what: `${key} on ${iface}`,
          onStale: this.onStale,
        });
        this.held.set(name, pf);
        taken.push(name);
      }
    } catch (e) {
      for (const name of taken) this.drop([name]);
      throw e;
    }
    return [...this.held.keys()].filter((n) => !want.has(n));
  }

  drop(names: readonly string[]): void {
    for (const n of names) {
      this.held.get(n)?.release();
      this.held.delete(n);
    }
  }

  releaseAll(): void {
    this.drop([...this.held.keys()]);
  }
}
