// Connects a server's state changes to the on-disk state store, or keeps
// state in memory only when no state directory is configured. With a store,
// the server answers a state change only once saveState resolved.

import type { Logger } from 'pino';
import type { ServerHooks } from '../target/server';

export function stateHooks(stateDir: string | undefined, log: Logger, switchTo?: number): ServerHooks {
  if (!stateDir) return {};
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { StateStore } = require('./state-store') as typeof import('./state-store');
  const store = new StateStore(stateDir, log, switchTo);
  store.open();
  return {
    initialState: (key) => store.load(key),
    saveState: (key, state) => store.save(key, state),
  };
}
