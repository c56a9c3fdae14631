// Running commands and child processes for the interop harness.
//
// Everything the harness starts is tracked by pid and ended by pid: nothing is
// ever killed by name. `Child` keeps the last part of a process's output so that
// a failing test can show it.

import { spawn, execFile, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** Do not throw when the exit status is not 0. */
  allowFail?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
}

/** Runs a command to completion and returns its output. Throws on a non-zero exit unless allowFail. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        maxBuffer: 256 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 10 * 60 * 1000,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const status = (err as { code?: unknown } | null)?.code;
        const code = err ? (typeof status === 'number' ? status : 1) : 0;
        if (err && !opts.allowFail) {
          reject(new Error(`${cmd} ${args.join(' ')} failed (${err.message.split('\n')[0]}):\n${stderr}${stdout}`));
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** The ways a tracked child can be started and followed. */
export interface ChildOptions {
  /** Every complete output line (stdout and stderr) is passed here. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Raw output is appended to this file as well. */
  logFile?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep stdin open as a pipe (for writing to the child). */
  stdinPipe?: boolean;
}

/** A long-running child process followed by pid. */
export class Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly name: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private tail: string[] = [];
  private partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  private log: number | null = null;

  constructor(name: string, cmd: string, args: string[], opts: ChildOptions = {}) {
    this.name = name;
    if (opts.logFile) this.log = fs.openSync(opts.logFile, 'a');
    this.proc = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    if (this.proc.pid === undefined) {
      // spawn failures (ENOENT) are reported on 'error'; pid is then undefined
      this.pid = -1;
    } else {
      this.pid = this.proc.pid;
    }
    const feed = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      if (this.log !== null) fs.writeSync(this.log, chunk);
      const text = this.partial[stream] + chunk.toString('latin1');
      const lines = text.split('\n');
      this.partial[stream] = lines.pop() ?? '';
      for (const raw of lines) {
        const line = raw.replace(/\r/g, '');
        this.tail.push(line);
        if (this.tail.length > 200) this.tail.shift();
        opts.onLine?.(line, stream);
      }
    };
    this.proc.stdout?.on('data', feed('stdout'));
    this.proc.stderr?.on('data', feed('stderr'));
    this.exited = new Promise((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        for (const stream of ['stdout', 'stderr'] as const) {
          if (this.partial[stream]) {
            const line = this.partial[stream].replace(/\r/g, '');
            this.tail.push(line);
            opts.onLine?.(line, stream);
            this.partial[stream] = '';
          }
        }
        if (this.log !== null) {
          fs.closeSync(this.log);
          this.log = null;
        }
        this.exitInfo = { code, signal };
        live.delete(this);
        resolve(this.exitInfo);
      };
      this.proc.on('error', (err) => {
        this.tail.push(`spawn error: ${err.message}`);
        finish(127, null);
      });
      this.proc.on('close', finish);
    });
    live.add(this);
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** The last output lines, for a failure message. */
  lastLines(n = 40): string {
    return this.tail.slice(-n).join('\n');
  }

  write(text: string): void {
    this.proc.stdin?.write(text);
  }

  /** Sends a signal to this child (by its pid). */
  signal(sig: NodeJS.Signals): void {
    if (this.running && this.pid > 0) {
      try {
        process.kill(this.pid, sig);
      } catch {
        /* already gone */
      }
    }
  }

  /** Ends the child: `sig` first, SIGKILL after graceMs. Resolves when it has exited. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (!this.running) return;
    this.signal(sig);
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const live = new Set<Child>();

/** Kills every still-running child by pid (synchronously; for exit handlers). */
export function killAllChildrenSync(): void {
  for (const c of live) {
    if (c.pid > 0) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
