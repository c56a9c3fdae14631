// Least privilege for a serving process started as root ([daemon] user,
// --user): once its backing files, io ring and packet sockets are open, it
// becomes the configured user and keeps only CAP_NET_RAW, which reopening an
// interface that was deleted and came back needs. What it opens later (the
// files of exports a reload adds, state files) it opens as that user.

import * as fs from 'node:fs';
import type { NativeAddon } from '../native/addon';

/** A user setting that cannot be honoured; the message says what to do. */
export class UserError extends Error {}

/** Fails early, before anything is opened, when the user does not exist. */
export function checkUserExists(addon: NativeAddon, user: string): void {
  if (addon.lookupUser(user) === null) {
    throw new UserError(
      `there is no user "${user}"; create it (useradd --system --no-create-home ${user}) or name an existing one with --user / user =`,
    );
  }
}

/** The uid of the user a root process will become, for the owner checks of its directories. */
export function uidToBecome(addon: NativeAddon, user: string | undefined): number | undefined {
  return user === undefined ? undefined : (addon.lookupUser(user)?.uid ?? undefined);
}

/**
 * Becomes `user` with only CAP_NET_RAW, then checks that the state directory
 * (when there is one) is writable by it. Throws with a message that says
 * what to do; the caller stops serving and exits.
 */
export function switchToUser(addon: NativeAddon, user: string, stateDir?: string): { uid: number; gid: number } {
  const known = addon.lookupUser(user);
  // Already that user (systemd's User= with CAP_NET_RAW): nothing to switch.
  const ids = known !== null && known.uid !== 0 && process.geteuid?.() === known.uid ? known : addon.dropPrivileges(user);
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
