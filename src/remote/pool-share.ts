// The share of libuv's thread pool that remote stores may hold at once.
// Each open, close and rbd call (the lock looks, the state in the image's
// metadata) holds a pool thread while it waits on its server (up to
// remote-timeout, more for rbd: the monitors, then the OSDs); the pool has 4
// threads unless UV_THREADPOOL_SIZE says otherwise, and node:fs uses the
// same threads, for the state files of every export among others. So a
// cluster or server that hangs holds half of them at most, and a file
// export's state is still saved at once; the other remote work waits here,
// in order.

/** The size of libuv's thread pool in this process: UV_THREADPOOL_SIZE (1..1024), else 4. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, 1024) : 4;
}

/** The work was given up before it started: the caller stopped wanting it (a stop, a reload refused). */
export class WorkAbandoned extends Error {}

export class PoolShare {
  private running = 0;
  private readonly waiting: { start: () => void; signal?: AbortSignal; abandon: () => void }[] = [];

  constructor(readonly max: number) {}

  /** Work running now, and waiting for a turn. */
  get counts(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /**
   * Runs `work` once fewer than `max` run. A `signal` aborted while it
   * waits rejects with WorkAbandoned and `work` never runs; once it runs,
   * it runs to its end (native work on the pool cannot be called back).
   */
  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw new WorkAbandoned('given up before it started');
    if (this.running < this.max) this.running++;
    else await this.turn(signal); // the slot is handed over, counted already
    try {
      return await work();
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
          reject(new WorkAbandoned('given up before it started'));
        },
      };
      this.waiting.push(entry);
      signal?.addEventListener('abort', entry.abandon, { once: true });
    });
  }

  /** Hands the slot to the next waiting work, or frees it. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next.start();
    else this.running--;
  }
}

/** The one share of this process: at most half the pool's threads (at least one) wait on remote stores. */
export const remotePoolShare = new PoolShare(Math.max(1, Math.floor(threadPoolSize() / 2)));
