// How a serving process is put together, in one place: the serving core
// (Server.start) with the io ring wrapped for fault plans, then, when a user
// is set, the switch to that user once what needs root is open. The worker
// of vbladed (worker.ts) and the foreground `vblade` (serveInForeground) both
// start their server here, so the two serve the same way.

import type { Logger } from 'pino';
import type { ServerConfig } from '../config/export-config';
import { withTestFaults } from '../faults/fault-io';
import { loadAddon } from '../native/addon';
import { ConfigError, NothingToServe, Server, StoreError, type ServerHooks } from '../target/server';
import { capabilitiesKept, checkUserExists, confineThreads, switchToUser, uidToBecome, UserError } from './privilege';
import { stateHooks } from './state-hooks';

export interface ServingOptions {
  /**
   * Fail when none of the configured interfaces exists (a first start, as
   * vblade does); false waits for them instead (a restarted worker).
   */
  requireAnInterface: boolean;
}

/**
 * Starts the server with the tunables the configuration carries and the
 * test fault wrapper (the ring itself unless a test sets
 * AOET_TEST_FAULT_PLAN or AOET_TEST_IO_JOURNAL). With a user set, becomes
 * that user once the server is up: its files and sockets are open by then;
 * CAP_LEASE is kept too, for views now or added by a reload.
 * A failed switch stops the server again and throws.
 */
export async function startServing(config: ServerConfig, log: Logger, hooks: ServerHooks, opts: ServingOptions): Promise<Server> {
  const server = await Server.start(config, log, hooks, {
    ...(config.tunables ?? {}),
    requireAnInterface: opts.requireAnInterface,
    wrapIoRing: (io) => withTestFaults(io),
  });
  if (config.user !== undefined) {
    try {
      // CAP_LEASE: views hold a read lease on their image, which they must be able to give up and take
      // again; a reload may add views, and a capability cannot be had back once dropped.
      const ids = switchToUser(loadAddon(), config.user, config.stateDir, true);
      log.info({ user: config.user, ...ids }, `switched user; only ${capabilitiesKept(true)} kept`);
    } catch (e) {
      await server.stop();
      throw e;
    }
  }
  // Not root (switched, or started as a user with CAP_LEASE as vblade.service does): read leases only.
  if ((process.geteuid?.() ?? 0) !== 0) {
    try {
      loadAddon().denyWriteLeases();
    } catch (e) {
      log.warn({ err: (e as Error).message }, `write leases are not refused to this process: ${(e as Error).message}`);
    }
  }
  return server;
}

/** A start that fails for a reason the message explains (configuration, store, user, an errno), not a bug. */
function isRefusal(e: unknown): boolean {
  return (
    e instanceof ConfigError ||
    e instanceof StoreError ||
    e instanceof UserError ||
    (e as NodeJS.ErrnoException).code !== undefined
  );
}

function refuse(message: string): number {
  process.stderr.write(`vblade: ${message}\n`);
  return 1;
}

/**
 * The foreground `vblade`: serves the one export of `config` until SIGTERM,
 * SIGINT or SIGHUP, then answers the requests in flight and stops. Resolves
 * to the exit code; a refusal to start is one line on standard error.
 */
export async function serveInForeground(config: ServerConfig, log: Logger): Promise<number> {
  let hooks: ServerHooks;
  try {
    if (config.user !== undefined) {
      checkUserExists(loadAddon(), config.user);
      // Runs this program again unless done already: returns only in the confined image.
      confineThreads(loadAddon());
    }
    hooks = stateHooks(config.stateDir, log, config.user === undefined ? undefined : uidToBecome(loadAddon(), config.user));
  } catch (e) {
    // A state directory others may write to, or one that cannot be created: the message says what to do.
    return refuse((e as Error).message);
  }
  let server: Server;
  try {
    server = await startServing(config, log, hooks, { requireAnInterface: true });
  } catch (e) {
    if (!isRefusal(e)) throw e;
    // The one export of the command line: its reason as it was always said, without its key in front.
    const key = `e${config.exports[0].shelf}.${config.exports[0].slot}: `;
    const message = (e as Error).message;
    return refuse(e instanceof NothingToServe && message.startsWith(key) ? message.slice(key.length) : message);
  }
  const c = config.exports[0];
  const e = server.exports[0];
  if (e.held !== null && /^(standby|starting):/.test(e.held)) {
    // An rbd standby: it serves once the image's lock is free (the log says when).
    process.stdout.write(`pid ${process.pid}: e${c.shelf}.${c.slot}, ${e.store.sectors} sectors O_RDWR, ${e.held}\n`);
    return untilSignalled(server, log);
  }
  if (e.held !== null) {
    // No control socket here to restore or reset it: refuse rather than serve without the saved mask and reservation.
    await server.stop();
    return refuse(
      `e${c.shelf}.${c.slot} is not served: ${e.held.replace(/; not served until.*$/, '')}. Fix the file, or move it away to start with empty state (its MAC mask and reservation are then lost)`,
    );
  }
  process.stdout.write(
    `pid ${process.pid}: e${c.shelf}.${c.slot}, ${e.store.sectors} sectors ${c.readOnly ? 'O_RDONLY' : 'O_RDWR'}\n`,
  );
  return untilSignalled(server, log);
}

/** Resolves once a stop signal has stopped the server: 0, or 1 when the stop failed. */
function untilSignalled(server: Server, log: Logger): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping: answering requests in flight');
      server.stop().then(
        () => resolve(0),
        (err) => {
          log.error({ err }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => stop('SIGHUP'));
  });
}
