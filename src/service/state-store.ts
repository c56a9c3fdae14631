// Persisted protocol state of each export (config string, MAC mask list,
// reserve list), one JSON file per export in the state directory:
//
//   /var/lib/vblade/e1.1.json   {"version":1,"key":"e1.1","config":"...","macMask":[...],"reserve":[...]}
//
// Writes are atomic and durable: write a temporary file with an unpredictable
// name (O_EXCL, O_NOFOLLOW), fsync it, rename it over the old one, fsync the
// directory. A reader therefore sees either the old or the new file, never a
// mix, even across a power cut. Saves of the same export are coalesced: while
// one write is on its way, later states replace each other and only the
// newest is written next.
//
// The directory must belong to the daemon's user and be writable by nobody
// else: another user who can create files there could make our writes land
// elsewhere or feed us a FIFO. State files are opened without following
// symbolic links, non-blocking, and only regular files are read.
//
// A file that cannot be read as state is reported as unreadable and left
// where it is: the server holds the export (serves nothing from it) until an
// operator runs `vblade ctl restore-state` (after fixing the file) or
// `reset-state` (which moves it aside as NAME.corrupt-<time> and starts
// empty). No message quotes a file's contents.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ExportState, SavedState } from '../config/export-config';
import { decodeState, encodeState } from '../config/saved-state';
import type { TrustedDir } from '../safe-files/trusted-dir';
import { openPrivateDir } from './private-dir';

const KEY_RE = /^e[0-9]+\.[0-9]+$/;
/** Leftovers of interrupted writes: old (pid) and current (random hex) temporary names. */
const TEMP_RE = /^\.e[0-9]+\.[0-9]+\.json\.tmp-[0-9a-f]+$/;
/** A state file is a few kilobytes at most (1024-byte string, 2 × 128 MACs, the config's mask). */
const MAX_FILE_BYTES = 64 * 1024;

interface Pending {
  /** Newest state not yet handed to a write. */
  next?: ExportState;
  /** The write in progress, if any. */
  running?: Promise<void>;
  /** Resolvers of everyone waiting for `next` (or a later state) to be durable. */
  waiters: Array<{ resolve(): void; reject(e: Error): void }>;
}

export class StateStore {
  private readonly pending = new Map<string, Pending>();
  /** The directory as open() checked it: files are used through it, so a rename of the path later changes nothing. */
  private held: TrustedDir | undefined;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
    /** The uid a root daemon becomes (user =): it may own the directory. */
    private readonly switchTo?: number,
  ) {}

  fileOf(key: string): string {
    if (!KEY_RE.test(key)) throw new Error(`not an export key: ${key}`);
    return path.join(this.dir, `${key}.json`);
  }

  /** Where file `name` of the directory is opened: in the held directory once open() ran. */
  private at(name: string): string {
    return this.held ? this.held.at(name) : path.join(this.dir, name);
  }

  /**
   * Creates the directory (mode 0750) if needed, refuses one that others may
   * write to, and removes leftovers of interrupted writes.
   */
  open(): void {
    this.held?.close();
    this.held = openPrivateDir(this.dir, 'state directory', { switchTo: this.switchTo, createMode: 0o750 });
    for (const name of this.held.list()) {
      if (TEMP_RE.test(name)) {
        try {
          fs.unlinkSync(this.at(name));
        } catch {
          // a directory by that name is not ours to remove
        }
      }
    }
  }

  /**
   * The saved state of one export: absent, readable, or unreadable. An
   * unreadable file is left where it is, so that the export stays held
   * across restarts until an operator decides (restore-state, reset-state).
   */
  load(key: string): SavedState {
    const file = this.fileOf(key);
    const read = readStateFile(this.at(path.basename(file)), key);
    if (read.state) return { status: 'ok', state: read.state };
    if (read.absent) return { status: 'absent' };
    const reason = read.reason!;
    this.log.error(
      { file, reason },
      `saved state of ${key} in ${file} is unreadable (${reason}); ${key} is not served until an operator runs "vblade ctl restore-state ${key}" or "vblade ctl reset-state ${key}"`,
    );
    return { status: 'unreadable', file, reason };
  }

  /** What the state file of an export holds now, read as load() reads it, without logging. */
  inspect(key: string): { file: string; state?: ExportState; absent?: boolean; reason?: string } {
    const file = this.fileOf(key);
    return { file, ...readStateFile(this.at(path.basename(file)), key) };
  }

  /** Moves the state file of an export (whatever it is) out of the way as NAME.corrupt-<time>; returns the new name. */
  setAside(key: string): string | undefined {
    const file = this.fileOf(key);
    const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      fs.renameSync(this.at(path.basename(file)), this.at(path.basename(aside)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`cannot move ${file} aside: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    this.log.warn({ file, aside }, `moved the state file ${file} aside as ${aside}`);
    return aside;
  }

  /**
   * Saves a state; resolves once it, or a newer state of the same export, is
   * durable. Never blocks the caller: the write runs in the background.
   */
  save(key: string, state: ExportState): Promise<void> {
    this.fileOf(key);
    let p = this.pending.get(key);
    if (!p) {
      p = { waiters: [] };
      this.pending.set(key, p);
    }
    p.next = copyState(state);
    const done = new Promise<void>((resolve, reject) => p.waiters.push({ resolve, reject }));
    if (!p.running) this.pump(key, p);
    return done;
  }

  private pump(key: string, p: Pending): void {
    const state = p.next!;
    const waiters = p.waiters;
    p.next = undefined;
    p.waiters = [];
    p.running = writeStateFile((name) => this.at(name), path.basename(this.fileOf(key)), key, state)
      .then(
        () => {
          for (const w of waiters) w.resolve();
        },
        (e: Error) => {
          this.log.error({ err: e.message, key }, `cannot save the state of ${key}: ${e.message}`);
          for (const w of waiters) w.reject(e);
        },
      )
      .finally(() => {
        p.running = undefined;
        if (p.next) this.pump(key, p);
        else this.pending.delete(key);
      });
  }

  /** Resolves when every save requested so far is durable (or failed and was logged). */
  async flush(): Promise<void> {
    while (this.pending.size) {
      await Promise.all([...this.pending.values()].map((p) => p.running?.catch(() => undefined) ?? Promise.resolve()));
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Deletes the saved state of an export (not used on reload: removed exports keep theirs for when they come back). */
  remove(key: string): void {
    fs.rmSync(this.at(path.basename(this.fileOf(key))), { force: true });
  }
}

function copyState(s: ExportState): ExportState {
  const c: ExportState = { config: s.config, macMask: s.macMask.slice(), reserve: s.reserve.slice() };
  if (s.configMask) c.configMask = s.configMask.slice();
  return c;
}

/**
 * Reads one state file without following a symbolic link or blocking on a
 * FIFO; only a regular file of sensible size is read. The reason never
 * quotes the contents.
 */
function readStateFile(file: string, key: string): { state?: ExportState; absent?: boolean; reason?: string } {
  const c = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(file, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK | c.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { absent: true };
    if (code === 'ELOOP') return { reason: 'it is a symbolic link, which is not followed' };
    return { reason: `cannot open it: ${code ?? (e as Error).message}` };
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return { reason: 'it is a directory, not a file' };
    if (!st.isFile()) return { reason: 'it is not a regular file (a FIFO, socket or device)' };
    if (st.size > MAX_FILE_BYTES) return { reason: `it is ${st.size} bytes long; a state file has at most ${MAX_FILE_BYTES}` };
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const got = fs.readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
    }
    const decoded = decodeState(buf.subarray(0, n).toString('utf8'), key);
    return typeof decoded === 'string' ? { reason: decoded } : { state: decoded };
  } catch (e) {
    return { reason: `cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  } finally {
    fs.closeSync(fd);
  }
}

async function writeStateFile(at: (name: string) => string, name: string, key: string, s: ExportState): Promise<void> {
  // Unpredictable and exclusive: nobody can have prepared a link or FIFO under this name.
  const tmp = at(`.${name}.tmp-${randomBytes(8).toString('hex')}`);
  const file = at(name);
  const c = fs.constants;
  let created = false;
  try {
    const fh = await fs.promises.open(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o640);
    created = true;
    try {
      await fh.writeFile(encodeState(key, s));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
    created = false;
  } catch (e) {
    if (created) await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  const dh = await fs.promises.open(path.dirname(file), c.O_RDONLY | c.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export { decodeState, encodeState } from '../config/saved-state';
