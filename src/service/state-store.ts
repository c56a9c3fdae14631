// Persisted protocol state of each export (config string, MAC mask list,
// reserve list), one JSON file per export in the state directory:
//
//   /var/lib/vblade/e1.1.json   {"version":1,"key":"e1.1","config":"...","macMask":[...],"reserve":[...]}
//
// Writes are atomic and durable: write a temporary file, fsync it, rename it
// over the old one, fsync the directory. A reader therefore sees either the
// old or the new file, never a mix, even across a power cut. Saves of the same
// export are coalesced: while one write is on its way, later states replace
// each other and only the newest is written next.
//
// A file that cannot be read as state is logged, moved aside as
// NAME.corrupt-<time> (kept for inspection) and treated as absent.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ExportState } from '../config/export-config';

const FORMAT_VERSION = 1;
const KEY_RE = /^e[0-9]+\.[0-9]+$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

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

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  fileOf(key: string): string {
    if (!KEY_RE.test(key)) throw new Error(`not an export key: ${key}`);
    return path.join(this.dir, `${key}.json`);
  }

  /** Creates the directory (mode 0750) if needed and removes leftovers of interrupted writes. */
  open(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    for (const name of fs.readdirSync(this.dir)) {
      if (/^\.e[0-9]+\.[0-9]+\.json\.tmp-[0-9]+$/.test(name)) {
        fs.rmSync(path.join(this.dir, name), { force: true });
      }
    }
  }

  /** The saved state of one export, or undefined (none saved, or the file was corrupt and has been moved aside). */
  load(key: string): ExportState | undefined {
    const file = this.fileOf(key);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.log.error({ err: e, file }, `cannot read saved state of ${key}; starting it with empty state`);
      return undefined;
    }
    const state = decodeState(text, key);
    if (typeof state === 'string') {
      const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      try {
        fs.renameSync(file, aside);
      } catch (e) {
        this.log.error({ err: e, file }, `cannot move the corrupt state file aside`);
      }
      this.log.warn(
        { file, aside, reason: state },
        `saved state of ${key} is corrupt (${state}); ignored it and kept it as ${aside}`,
      );
      return undefined;
    }
    return state;
  }

  /** Every export with a readable saved state. */
  loadAll(): Map<string, ExportState> {
    const out = new Map<string, ExportState>();
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw e;
    }
    for (const name of names) {
      const m = /^(e[0-9]+\.[0-9]+)\.json$/.exec(name);
      if (!m) continue;
      const s = this.load(m[1]);
      if (s) out.set(m[1], s);
    }
    return out;
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
    p.next = { config: state.config, macMask: state.macMask.slice(), reserve: state.reserve.slice() };
    const done = new Promise<void>((resolve, reject) => p.waiters.push({ resolve, reject }));
    if (!p.running) this.pump(key, p);
    return done;
  }

  private pump(key: string, p: Pending): void {
    const state = p.next!;
    const waiters = p.waiters;
    p.next = undefined;
    p.waiters = [];
    p.running = writeStateFile(this.dir, this.fileOf(key), key, state)
      .then(
        () => {
          for (const w of waiters) w.resolve();
        },
        (e: Error) => {
          this.log.error({ err: e, key }, `cannot save the state of ${key}: ${e.message}`);
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
    fs.rmSync(this.fileOf(key), { force: true });
  }
}

/** Encodes a state as the file's text. */
export function encodeState(key: string, s: ExportState): string {
  return JSON.stringify({ version: FORMAT_VERSION, key, config: s.config, macMask: s.macMask, reserve: s.reserve }) + '\n';
}

/** Decodes a state file; returns a string saying what is wrong when it is not a valid state of `key`. */
export function decodeState(text: string, key: string): ExportState | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (o.version !== FORMAT_VERSION) return `unknown format version ${JSON.stringify(o.version)}`;
  if (o.key !== key) return `written for ${JSON.stringify(o.key)}, not ${key}`;
  if (typeof o.config !== 'string' || o.config.length > 1024) return 'config is not a string of at most 1024 characters';
  for (const f of ['macMask', 'reserve'] as const) {
    const list = o[f];
    if (!Array.isArray(list) || list.length > 255 || !list.every((m) => typeof m === 'string' && MAC_RE.test(m))) {
      return `${f} is not a list of at most 255 MAC addresses`;
    }
  }
  return { config: o.config, macMask: (o.macMask as string[]).slice(), reserve: (o.reserve as string[]).slice() };
}

async function writeStateFile(dir: string, file: string, key: string, s: ExportState): Promise<void> {
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    const fh = await fs.promises.open(tmp, 'w', 0o640);
    try {
      await fh.writeFile(encodeState(key, s));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  const dh = await fs.promises.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
