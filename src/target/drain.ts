// Waiting for requests in flight to be answered. The engine says when its
// replies drained (after a batch); whoever waits for that (a removed
// export, a paused one, the stop) is woken then and looks again.

export class DrainWaiters {
  private waiters: (() => void)[] = [];

  /** Resolves at the next drain. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The engine drained: wakes everyone waiting now. */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
