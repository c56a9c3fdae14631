// `vblade ctl add` and `vblade ctl remove`, run by the client itself as
// root: it asks the daemon which config file it serves, writes or deletes
// the fragment (config-edit.ts), and asks the daemon for a reload. The
// daemon never writes its configuration, so it may run as a user who
// cannot (vblade.service runs it as vblade, and /etc/vblade.d is root's).
//
// The daemon's answer is trusted only as far as root trusts the files it
// names: the config file must be root's and writable by nobody else, under
// directories of root's (TrustedDir); its config-dir is the one the file
// itself names (a --config-dir given to vbladed is refused, not followed);
// and the fragments directory is checked again by config-edit.ts. One edit
// at a time on the host: an flock on /run/aoe-target/config-edit.lock, held
// until the reload answered; a file only root may open, since any user who
// may read the config file could hold an flock on that for ever.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ConfigEditor, ReloadUnanswered, type EditResult } from '../config/config-edit';
import { claimBaseDir, ensurePrivateDir } from '../guard/address-claim';
import { loadAddon } from '../native/addon';
import type { ConfigFiles } from '../service/control';
import { ControlTimeout, controlRequest } from './control-client';
import { TrustedDir } from '../safe-files/trusted-dir';

/** How long an edit waits for another one (another `vblade ctl add` or `remove`) to finish. */
const LOCK_WAIT_MS = 30_000;
const LOCK_POLL_MS = 50;
/** How long a reload may take to answer (it drains a removed export) before the edit is left as it is, unanswered. */
const RELOAD_WAIT_MS = 120_000;
/** The daemon takes at most 2048 characters of what a reload is for. */
const MAX_FOR = 2000;

/** An edit refused before anything changed, or the edit's own refusal: the message is for the user. */
export class CtlEditError extends Error {}

/** What to write where: the config file the daemon serves, checked. */
async function configFilesOf(socket: string, command: string): Promise<ConfigFiles> {
  const reply = await controlRequest(socket, { command: 'config-files' });
  if (!reply.ok) {
    // An older daemon edits itself: it does not know config-files.
    if (/unknown command "config-files"/.test(reply.error ?? ''))
      throw new CtlEditError(`the daemon is of an older version, which does ${command} itself; use its own vblade ctl`);
    throw new CtlEditError(reply.error ?? 'the daemon did not say which config file it serves');
  }
  const f = reply.result as ConfigFiles;
  if (typeof f?.configFile !== 'string' || !path.isAbsolute(f.configFile) || typeof f.defaultName !== 'string')
    throw new CtlEditError('the daemon did not say which config file it serves');
  if (f.commandLineConfigDir !== undefined)
    throw new CtlEditError(
      `vbladed was started with --config-dir ${f.commandLineConfigDir}, which ${command} does not follow: it edits only the config-dir its config file names; as root, ${command === 'add' ? 'write the fragment' : 'delete the fragment'} in ${f.commandLineConfigDir} yourself and run vblade ctl reload, or set config-dir in ${f.configFile} instead`,
    );
  return f;
}

/** Who the daemon at `socket` runs as, by the kernel's word (SO_PEERCRED), not the daemon's; undefined when unknown. */
function daemonIds(socket: string): Promise<{ uid: number; gid: number } | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(socket, () => {
      const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
      let ids: { uid: number; gid: number } | undefined;
      try {
        if (typeof fd === 'number' && fd >= 0) ids = loadAddon().peerCredentials(fd);
      } catch {
        // unknown: a config-dir made now is root's alone
      }
      s.destroy();
      resolve(ids);
    });
    s.on('error', () => resolve(undefined));
  });
}

/**
 * Checks the config file is root's: a regular file that nobody else may
 * write, in directories nobody else may write, and named by a path only
 * root may change: a link on the way or at its end must lie in such a
 * directory too (TrustedDir refuses the others), so that what
 * config-edit.ts reads by that name later is the file checked here.
 */
function checkConfigFile(named: string): void {
  // Each link on the way to the file lies in a directory only root may change (TrustedDir), or it is refused.
  let file = named;
  for (let hops = 0; ; hops++) {
    const dir = TrustedDir.open(path.dirname(file), { what: 'config file directory' });
    let st: fs.Stats | undefined;
    try {
      st = dir.lstat(path.basename(file));
    } finally {
      dir.close();
    }
    if (st === undefined) throw new CtlEditError(`the daemon serves ${named}, which does not exist (any more)`);
    if (!st.isSymbolicLink()) break;
    if (hops === 16) throw new CtlEditError(`${named}: too many symbolic links`);
    file = path.resolve(path.dirname(file), fs.readlinkSync(file));
  }
  const dir = TrustedDir.open(path.dirname(file), { what: 'config file directory' });
  try {
    const fd = dir.openFile(path.basename(file), { owners: [0], what: 'config file' });
    const mode = fs.fstatSync(fd).mode;
    fs.closeSync(fd);
    if ((mode & 0o022) !== 0)
      throw new CtlEditError(
        `the config file ${file} may be written by others (mode ${(mode & 0o777).toString(8)}); its exports are served as root: chmod go-w ${file}`,
      );
  } finally {
    dir.close();
  }
}

/** The edit lock file, root's alone, in root's run directory of claims (address-claim.ts); its descriptor. */
function openEditLock(): number {
  const dir = path.dirname(claimBaseDir());
  ensurePrivateDir(dir, 0o755);
  const k = fs.constants;
  const fd = fs.openSync(path.join(dir, 'config-edit.lock'), k.O_RDWR | k.O_CREAT | k.O_NOFOLLOW | k.O_NONBLOCK, 0o600);
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.uid !== 0) {
    fs.closeSync(fd);
    throw new CtlEditError(`${dir}/config-edit.lock is not a regular file of root's; remove it`);
  }
  return fd;
}

/** Waits for the edit lock; throws when another edit holds it for too long. */
async function lockEdits(fd: number): Promise<void> {
  const addon = loadAddon();
  const until = Date.now() + LOCK_WAIT_MS;
  while (!addon.lockFile(fd)) {
    if (Date.now() > until)
      throw new CtlEditError(
        `another vblade ctl add or remove on this host has been running for ${LOCK_WAIT_MS / 1000} s; try again when it is done`,
      );
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
  }
}

/** Runs `add` (words: INTERFACES FILE [KEY=VALUE...]) or `remove` against the daemon at `socket`; root only. */
export async function runConfigEdit(
  socket: string,
  command: 'add' | 'remove',
  key: string,
  words: readonly string[],
  reloadWaitMs = RELOAD_WAIT_MS,
): Promise<EditResult> {
  if ((process.geteuid?.() ?? 0) !== 0)
    throw new CtlEditError(
      `${command} is for root only: it writes the daemon's config fragments, whose files are opened as root; run it with sudo (members of the control group may use the other commands)`,
    );
  const files = await configFilesOf(socket, command);
  checkConfigFile(files.configFile);
  const daemon = await daemonIds(socket);
  const fd = openEditLock();
  try {
    await lockEdits(fd);
    const editor = new ConfigEditor({
      configFile: files.configFile,
      daemonKeys: {},
      defaultName: files.defaultName,
      // A daemon that is not root (vblade.service) must read a config-dir made now.
      dirGroup: daemon !== undefined && daemon.uid !== 0 ? daemon.gid : undefined,
      reload: async () => {
        const what = [command, key, ...words].join(' ');
        const why = what.length > MAX_FOR ? `${what.slice(0, MAX_FOR)}...` : what;
        const reply = await controlRequest(socket, { command: 'reload', for: why }, reloadWaitMs).catch((e: unknown) => {
          throw e instanceof ControlTimeout ? new ReloadUnanswered(e.message) : e;
        });
        if (!reply.ok) throw new Error(reply.error);
        return reply.result;
      },
    });
    return command === 'add' ? await editor.add(key, words) : await editor.remove(key);
  } finally {
    fs.closeSync(fd); // the lock goes with it
  }
}
