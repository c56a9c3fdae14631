// Least privilege for a serving process started as root ([daemon] user,
// --user): once its backing files, io ring and packet sockets are open, it
// becomes the configured user and keeps only CAP_NET_RAW, which reopening an
// interface that was deleted and came back needs, and CAP_LEASE: the views'
// read lease on an image that is not the user's must be given up when a
// writer comes, and taken again later (native/privilege.c says why that
// capability is safe to keep). Kept whether or not an export has views at
// start, as vblade.service grants it: a reload may add views. What it
// opens later (the files of exports a reload adds, state files) it opens as
// that user.
//
// no_new_privs and the bounding set belong to each thread, and Node starts
// its threads (V8's, libuv's pool) before any of our code runs. So a process
// that will switch first runs itself again with both already lowered
// (confineThreads): every thread of the new image inherits them, and the
// switch then leaves the main thread CAP_NET_RAW alone.

import * as fs from 'node:fs';
import { ConfigError } from '../api/errors';
import type { NativeAddon } from '../native/addon';

/** A user setting that cannot be honoured; the message says what to do. Permanent: a restart meets it again. */
export class UserError extends ConfigError {}

/** Fails early, before anything is opened, when the user does not exist. */
export function checkUserExists(addon: NativeAddon, user: string): void {
  if (addon.lookupUser(user) === null) {
    throw new UserError(
      `there is no user "${user}"; create it (useradd --system --no-create-home ${user}) or name an existing one with --user / user =`,
    );
  }
}

/** The argument the supervisor gives a worker that will switch user: it confines its threads first. */
export const CONFINE_ARG = '--confine-threads';

/**
 * As root, unless already done: runs this program again (same pid, arguments
 * and environment) with no_new_privs set and the bounding set lowered to
 * what the start uses (docs/reliability.md), so that every thread inherits
 * them. The standard streams and a forked worker's IPC channel stay open across the exec; Node
 * removes its variables from the environment once read, so they are given
 * back (the supervisor forks with the default JSON serialization).
 */
export function confineThreads(addon: NativeAddon): void {
  if (process.geteuid?.() !== 0 || addon.privilegeConfined()) return;
  const env = Object.entries(process.env)
    .filter(([name, value]) => value !== undefined && !name.startsWith('NODE_CHANNEL_'))
    .map(([name, value]) => `${name}=${value}`);
  // Node marks even the standard streams close-on-exec.
  const keepFds = [0, 1, 2];
  const channelFd = (process.channel as { fd?: number } | undefined)?.fd;
  if (channelFd !== undefined && channelFd >= 0) {
    keepFds.push(channelFd);
    env.push(`NODE_CHANNEL_FD=${channelFd}`, 'NODE_CHANNEL_SERIALIZATION_MODE=json');
  }
  addon.reexecConfined(process.execPath, [process.argv0, ...process.execArgv, ...process.argv.slice(1)], env, keepFds);
}

/** The uid of the user a root process will become, for the owner checks of its directories. */
export function uidToBecome(addon: NativeAddon, user: string | undefined): number | undefined {
  return user === undefined ? undefined : (addon.lookupUser(user)?.uid ?? undefined);
}

/** The capabilities a switched process keeps: CAP_LEASE for views (their read lease on the image). */
export function capabilitiesKept(keepLease: boolean): string {
  return keepLease ? 'CAP_NET_RAW and CAP_LEASE' : 'CAP_NET_RAW';
}

/**
 * Becomes `user` with only CAP_NET_RAW (and CAP_LEASE with `keepLease`),
 * then checks that the state directory (when there is one) is writable by
 * it. Throws with a message that says what to do; the caller stops serving
 * and exits.
 */
export function switchToUser(
  addon: NativeAddon,
  user: string,
  stateDir?: string,
  keepLease = false,
): { uid: number; gid: number } {
  const known = addon.lookupUser(user);
  // Already that user (systemd's User= with the unit's capabilities): nothing to switch.
  const ids =
    known !== null && known.uid !== 0 && process.geteuid?.() === known.uid ? known : addon.dropPrivileges(user, keepLease);
  if (stateDir !== undefined) {
    try {
      fs.accessSync(stateDir, fs.constants.W_OK | fs.constants.X_OK);
    } catch (err) {
      throw new UserError(
        `the state directory ${stateDir} is not writable by user ${user} (${(err as NodeJS.ErrnoException).code}); ` +
          `give it to that user (chown ${user} ${stateDir}) or set another state-dir`,
        { cause: err },
      );
    }
  }
  return ids;
}
