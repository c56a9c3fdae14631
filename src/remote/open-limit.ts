// How many remote stores are opened at once. Each open holds one of
// libuv's pool threads while it waits on its server (up to remote-timeout,
// twice for rbd: the monitors, then the OSDs); the pool has 4 threads
// unless UV_THREADPOOL_SIZE says otherwise, and node:fs, the state files
// and the rbd lock looks use the same threads. So a configuration with many
// dead remote exports takes half of them at most; the other opens wait here,
// in order.

/** The size of libuv's thread pool in this process: UV_THREADPOOL_SIZE (1..1024), else 4. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, 1024) : 4;
}

/** The open was given up before it started: the caller stopped wanting it (a stop, a reload refused). */
export class OpenAbandoned extends Error {}

export class OpenLimit {
  private running = 0;
  private readonly waiting: { start: () => void; signal?: AbortSignal; abandon: () => void }[] = [];

  constructor(readonly max: number) {}

  /** Opens running now, and waiting for a turn. */
  get counts(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /**
   * Runs `open` once fewer than `max` run. A `signal` aborted while it
   * waits rejects with OpenAbandoned and `open` never runs; once it runs,
   * it runs to its end (a native open cannot be called back).
   */
  async run<T>(open: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw new OpenAbandoned('the open was given up before it started');
    if (this.running < this.max) this.running++;
    else await this.turn(signal); // the slot is handed over, counted already
    try {
      return await open();
    } finally {
      this.release();
    }
  }

  private turn(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry = {
        signal,
        start: () => {
          signal?.removeEventListener('abort', entry.abandon);
          resolve();
        },
        abandon: () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new OpenAbandoned('the open was given up before it started'));
        },
      };
      this.waiting.push(entry);
      signal?.addEventListener('abort', entry.abandon, { once: true });
    });
  }

  /** Hands the slot to the next waiting open, or frees it. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next.start();
    else this.running--;
  }
}

/** The one limit of this process: at most half the pool's threads (at least one) open remote stores. */
export const remoteOpens = new OpenLimit(Math.max(1, Math.floor(threadPoolSize() / 2)));
