// Child processes for the tests and the bench: spawn one (optionally inside a network
// namespace), wait for an output line that matches a pattern, collect its
// output, run a command to completion, and stop what was started by pid
// (SIGTERM, then SIGKILL after a grace period) in the test's teardown, with a
// SIGKILL safety net when the test process exits without its teardown.

import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ExitOrder, TestLike, onProcessExit, skipOrFail } from './common';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface SpawnOptions {
  /** Run inside this network namespace (through `ip netns exec`, which execs the command: the pid is the command's). */
  netns?: string;
  /** Added to (and overriding) the parent's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** 'pipe' to write to the child's stdin with write(); default 'ignore'. */
  stdin?: 'ignore' | 'pipe';
  /** Name used in messages; default the command's base name. */
  label?: string;
  /** Milliseconds between SIGTERM and SIGKILL when stopping; default 3000. */
  graceMs?: number;
  /** Copy every output line to this process's stderr, prefixed with the label. Default: when AOET_ECHO is set. */
  echo?: boolean;
  /** Start the child in its own process group and signal the whole group (for commands that fork helpers). */
  processGroup?: boolean;
  /** Lines kept; older ones are dropped (the cursor of waitFor follows). Default 200000. */
  maxLines?: number;
  /** Called with every complete output line as it arrives (e.g. to parse a serial console). */
  onLine?: (text: string, stream: 'stdout' | 'stderr') => void;
  /** Append the raw output to this file as well, so that it survives the test for a post-mortem. */
  logFile?: string;
}

export interface WaitOptions {
  /** Default 10000 ms. */
  timeoutMs?: number;
  /** Which stream to look at; default both. */
  stream?: 'stdout' | 'stderr' | 'both';
  /** Line index to start from (see mark()); default: just after the previous match. */
  from?: number;
}

/** Builds the argv for running cmd inside a namespace (or not). */
export function inNetns(netns: string | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  if (netns === undefined) return [cmd, [...args]];
  return ['ip', ['netns', 'exec', netns, cmd, ...args]];
}

function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** A command line as a person would type it, for messages. */
export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(shellQuote).join(' ');
}

interface Waiter {
  re: RegExp;
  stream: 'stdout' | 'stderr' | 'both';
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A running child process and everything it printed. */
export class Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly label: string;
  readonly command: string;
  /** Output lines in arrival order (stdout and stderr interleaved as they came). */
  readonly lines: OutputLine[] = [];
  /** Resolves once the child has exited and its output is read. */
  readonly exited: Promise<ExitStatus>;
  exitStatus: ExitStatus | undefined;

  #dropped = 0; // lines dropped from the front of `lines`
  // Absolute line index after the last waitFor match, per stream filter: a
  // wait on one stream does not skip the other stream's lines.
  #cursor = { stdout: 0, stderr: 0, both: 0 };
  #partial = { stdout: '', stderr: '' };
  #waiters = new Set<Waiter>();
  #echo: boolean;
  #maxLines: number;
  #graceMs: number;
  #group: boolean;
  #onLine: SpawnOptions['onLine'];
  #logFd: number | undefined;
  #unregisterExit: () => void;

  constructor(cmd: string, args: readonly string[], opts: SpawnOptions = {}) {
    const [file, argv] = inNetns(opts.netns, cmd, args);
    this.command = commandLine(file, argv);
    this.label = opts.label ?? cmd.split('/').pop() ?? cmd;
    this.#echo = opts.echo ?? !!process.env.AOET_ECHO;
    this.#maxLines = opts.maxLines ?? 200000;
    this.#graceMs = opts.graceMs ?? 3000;
    this.#group = !!opts.processGroup;
    this.#onLine = opts.onLine;
    if (opts.logFile !== undefined) this.#logFd = openSync(opts.logFile, 'a');
    this.child = spawn(file, argv, {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
      detached: this.#group,
    });
    if (this.child.pid === undefined) {
      // spawn failed synchronously (e.g. ENOENT); the 'error' event follows.
      this.pid = -1;
    } else {
      this.pid = this.child.pid;
    }
    const pid = this.pid;
    const group = this.#group;
    this.#unregisterExit = onProcessExit(ExitOrder.Processes, () => {
      if (this.exitStatus === undefined && pid > 0) {
        try {
          process.kill(group ? -pid : pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => this.#onData('stdout', s));
    this.child.stderr!.on('data', (s: string) => this.#onData('stderr', s));

    this.exited = new Promise<ExitStatus>((resolve) => {
      let exitSeen: ExitStatus | undefined;
      let settleTimer: NodeJS.Timeout | undefined;
      const finish = (st: ExitStatus) => {
        if (this.exitStatus !== undefined) return;
        if (settleTimer) clearTimeout(settleTimer);
        this.#flush();
        if (this.#logFd !== undefined) {
          closeSync(this.#logFd);
          this.#logFd = undefined;
        }
        this.exitStatus = st;
        this.#unregisterExit();
        this.#rejectWaiters(`${this.label} (pid ${this.pid}) exited (${describeExit(st)}) before the line appeared`);
        resolve(st);
      };
      this.child.on('error', (err) => {
        this.#pushLine('stderr', `[spawn error] ${err.message}`);
        finish({ code: 127, signal: null });
      });
      this.child.on('exit', (code, signal) => {
        exitSeen = { code, signal };
        // Output may still be in the pipes; 'close' follows unless a
        // grandchild holds them open, so do not wait for it forever.
        settleTimer = setTimeout(() => finish(exitSeen!), 1000);
      });
      this.child.on('close', (code, signal) => finish(exitSeen ?? { code, signal }));
    });
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  #onData(stream: 'stdout' | 'stderr', chunk: string): void {
    if (this.#logFd !== undefined) writeSync(this.#logFd, chunk);
    const text = this.#partial[stream] + chunk;
    const parts = text.split('\n');
    this.#partial[stream] = parts.pop() ?? '';
    for (const p of parts) this.#pushLine(stream, p.endsWith('\r') ? p.slice(0, -1) : p);
  }

  #flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.#partial[stream] !== '') {
        const p = this.#partial[stream];
        this.#partial[stream] = '';
        this.#pushLine(stream, p);
      }
    }
  }

  #pushLine(stream: 'stdout' | 'stderr', text: string): void {
    this.lines.push({ stream, text });
    if (this.#echo) process.stderr.write(`[${this.label} ${stream}] ${text}\n`);
    this.#onLine?.(text, stream);
    if (this.lines.length > this.#maxLines) {
      const drop = this.lines.length - this.#maxLines;
      this.lines.splice(0, drop);
      this.#dropped += drop;
    }
    if (this.#waiters.size === 0) return;
    const index = this.#dropped + this.lines.length - 1;
    for (const w of this.#waiters) {
      if (w.stream !== 'both' && w.stream !== stream) continue;
      const m = w.re.exec(text);
      if (m) {
        this.#waiters.delete(w);
        clearTimeout(w.timer);
        this.#advance(stream, index);
        w.resolve(m);
      }
    }
  }

  #rejectWaiters(why: string): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`${why}: ${w.re}\n--- last output of ${this.command} ---\n${this.tail()}`));
    }
    this.#waiters.clear();
  }

  #advance(stream: 'stdout' | 'stderr', index: number): void {
    this.#cursor[stream] = Math.max(this.#cursor[stream], index + 1);
    this.#cursor.both = Math.max(this.#cursor.both, index + 1);
  }

  /** The absolute index of the next line; pass it as `from` to waitFor. */
  mark(): number {
    return this.#dropped + this.lines.length;
  }

  /**
   * Waits for the next output line matching `re`, expect-style: the search
   * starts just after the previous match on the same stream (or on any
   * stream for 'both'), or at `from`, so lines already collected count too. Rejects on timeout or when the process
   * exits first, with the tail of its output in the message.
   */
  waitFor(re: RegExp, opts: WaitOptions = {}): Promise<RegExpExecArray> {
    const stream = opts.stream ?? 'both';
    const timeoutMs = opts.timeoutMs ?? 10000;
    const start = Math.max(opts.from ?? this.#cursor[stream], this.#dropped);
    for (let i = start - this.#dropped; i < this.lines.length; i++) {
      const l = this.lines[i];
      if (stream !== 'both' && l.stream !== stream) continue;
      const m = re.exec(l.text);
      if (m) {
        this.#advance(l.stream, this.#dropped + i);
        return Promise.resolve(m);
      }
    }
    if (this.exitStatus !== undefined) {
      return Promise.reject(
        new Error(
          `${this.label} (pid ${this.pid}) had exited (${describeExit(this.exitStatus)}) without printing ${re}\n` +
            `--- last output of ${this.command} ---\n${this.tail()}`,
        ),
      );
    }
    return new Promise<RegExpExecArray>((resolve, reject) => {
      const w: Waiter = {
        re,
        stream,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${re} from ${this.label} (pid ${this.pid})\n` +
                `--- last output of ${this.command} ---\n${this.tail()}`,
            ),
          );
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  /** Waits for the process to exit by itself; rejects after timeoutMs. */
  waitExit(timeoutMs = 10000): Promise<ExitStatus> {
    if (this.exitStatus !== undefined) return Promise.resolve(this.exitStatus);
    return new Promise<ExitStatus>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.label} (pid ${this.pid}) still running after ${timeoutMs} ms\n${this.tail()}`)),
        timeoutMs,
      );
      void this.exited.then((st) => {
        clearTimeout(timer);
        resolve(st);
      });
    });
  }

  stdout(): string {
    return this.lines
      .filter((l) => l.stream === 'stdout')
      .map((l) => l.text)
      .join('\n');
  }

  stderr(): string {
    return this.lines
      .filter((l) => l.stream === 'stderr')
      .map((l) => l.text)
      .join('\n');
  }

  output(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  tail(n = 30): string {
    return this.lines
      .slice(-n)
      .map((l) => `${l.stream === 'stderr' ? 'E' : 'O'}| ${l.text}`)
      .join('\n');
  }

  /** Sends a signal to the child (or its group) if it still runs; returns whether it was sent. */
  signal(sig: NodeJS.Signals): boolean {
    if (this.exitStatus !== undefined || this.pid <= 0) return false;
    try {
      process.kill(this.#group ? -this.pid : this.pid, sig);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * SIGSTOP, then waits until every thread of the process is stopped: the
   * signal is only queued when kill() returns, and a thread already on its
   * way (a request just read) can still answer before it stops.
   */
  async freeze(timeoutMs = 5000): Promise<void> {
    if (!this.signal('SIGSTOP')) throw new Error(`${this.command}: cannot stop it (exited?)`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let states: string[] = [];
      try {
        states = readdirSync(`/proc/${this.pid}/task`).map((tid) => {
          const stat = readFileSync(`/proc/${this.pid}/task/${tid}/stat`, 'utf8');
          return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        });
      } catch {
        // a thread went while we looked: look again
      }
      if (states.length > 0 && states.every((st) => st === 'T' || st === 't')) return;
      if (Date.now() > deadline)
        throw new Error(`${this.command}: not stopped after ${timeoutMs} ms (thread states ${states.join('')})`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  write(data: string | Uint8Array): void {
    if (!this.child.stdin) throw new Error(`${this.label}: spawned without stdin: 'pipe'`);
    this.child.stdin.write(data);
  }

  /** SIGTERM, then SIGKILL after the grace period. Idempotent. */
  async stop(graceMs = this.#graceMs): Promise<ExitStatus> {
    if (this.exitStatus !== undefined) return this.exitStatus;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

export function describeExit(st: ExitStatus): string {
  return st.signal ? `signal ${st.signal}` : `code ${st.code}`;
}

/** Spawns a child and stops it in the test's teardown. */
export function spawnProcess(t: TestLike, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Proc {
  const p = new Proc(cmd, args, opts);
  t.teardown(() => p.stop());
  return p;
}

export interface RunOptions {
  netns?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string | Uint8Array;
  /** SIGKILL after this many ms; default 60000. */
  timeoutMs?: number;
}

export interface RunResult extends ExitStatus {
  stdout: string;
  stderr: string;
  command: string;
  timedOut: boolean;
}

/** Runs a command to completion and collects its output. Never rejects for a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = inNetns(opts.netns, cmd, args);
  const command = commandLine(file, argv);
  return new Promise<RunResult>((resolve) => {
    const child = spawn(file, argv, {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    const unregister = onProcessExit(ExitOrder.Processes, () => {
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60000);
    child.on('error', (e) => {
      spawnError = e;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      unregister();
      let stderr = Buffer.concat(err).toString('utf8');
      if (spawnError) stderr += `${stderr ? '\n' : ''}[spawn error] ${spawnError.message}`;
      resolve({
        code: spawnError ? 127 : code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr,
        command,
        timedOut,
      });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Describes a finished command for an error message. */
export function describeRun(r: RunResult): string {
  const how = r.timedOut ? 'timed out' : describeExit(r);
  const out = r.stdout.trim() ? `\nstdout: ${r.stdout.trim().slice(-2000)}` : '';
  const err = r.stderr.trim() ? `\nstderr: ${r.stderr.trim().slice(-2000)}` : '';
  return `\`${r.command}\` ${how}${out}${err}`;
}

/** Runs a command and rejects unless it exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0 || r.timedOut) throw new Error(describeRun(r));
  return r;
}

/** Synchronous run for exit-time cleanup; never throws. */
export function runSyncQuiet(cmd: string, args: readonly string[], timeoutMs = 10000): number | null {
  try {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: timeoutMs });
    return r.status;
  } catch {
    return null;
  }
}

/** The full path of an executable found in PATH (plus the sbin directories), or undefined. */
export function which(cmd: string): string | undefined {
  if (cmd.includes('/')) {
    try {
      accessSync(cmd, fsConstants.X_OK);
      return cmd;
    } catch {
      return undefined;
    }
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  for (const d of dirs) {
    const p = join(d, cmd);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/**
 * Checks that every command exists. When one is missing: outside CI a
 * skipped test point naming it (and `bash scripts/setup.sh`), in CI a
 * failure. Returns true when all are there.
 */
export function requireCommands(t: TestLike, cmds: readonly string[]): boolean {
  const missing = cmds.filter((c) => which(c) === undefined);
  if (missing.length === 0) return true;
  return skipOrFail(t, `missing command(s): ${missing.join(', ')} (run: sudo bash scripts/setup.sh)`);
}
