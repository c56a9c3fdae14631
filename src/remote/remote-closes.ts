// Remote stores close off the event loop: the addon waits for their
// requests in flight and the final flush on libuv's pool (within the share
// remote stores may hold, pool-share.ts), each bounded by the store's
// timeout. Every close is remembered here until it is done, so that a
// stopping daemon waits for all of them before it exits, also for those
// nobody awaited (a store given up on an error path).

import { remotePoolShare } from './pool-share';

const pending = new Set<Promise<void>>();

/**
 * Runs a remote store's native close in its turn and remembers it until it
 * is done; the promise never rejects: a failure (only a handle closed twice
 * can fail) goes to `onError`.
 */
export function closeRemote<T>(close: () => Promise<T>, onError: (err: Error) => void): Promise<T | undefined> {
  const closing = remotePoolShare.run(close).catch((err: Error) => {
    onError(err);
    return undefined;
  });
  void trackClose(closing.then(() => undefined));
  return closing;
}

/** Remembers a remote store's close until it settles; returns it. */
export function trackClose(closing: Promise<void>): Promise<void> {
  pending.add(closing);
  const forget = (): void => void pending.delete(closing);
  closing.then(forget, forget);
  return closing;
}

/** Resolves once no remote store is closing: those closing now and any that start meanwhile. */
export async function remoteClosesDone(): Promise<void> {
  while (pending.size > 0) await Promise.allSettled([...pending]);
}
