// What `vbladed --check` cannot judge as root: whether the serving user
// (user =) may open each backing file, make views in its views directories
// and write the state directory. A daemon started as root opens its files at start before it
// switches, but opens the files a reload adds, and makes every new view, as
// that user; so --check tries both in a short-lived child that has become
// the user, where modes, groups and ACLs count as they will then.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { exportKey, type ExportConfig } from '../config/export-config';
import { loadAddon } from '../native/addon';
import { isRemoteUri } from '../remote/remote-uri';
import { openExportFile } from './export-store';
import { chownFix, snapshotsDirOf, viewsDirOf } from '../views/views-dir';

const CHILD_ARG = '--open-as-user';

/** How long the child may take to open every file (a hung NFS mount must not hang --check). */
const CHILD_TIMEOUT_MS = 30_000;

/**
 * What `user` may not do, one line each ("eS.L: what is wrong; what to do"):
 * `files` it may not open (start opens those as root before switching, so
 * only what a reload adds meets them) and `views` directories it may not
 * make views in (every new machine after the switch meets those).
 */
export interface UserProblems {
  files: string[];
  views: string[];
  /** The state directory, when it exists and the user may not write it (start refuses that too). */
  state: string[];
}

export function problemsAsUser(exports: readonly ExportConfig[], user: string, stateDir?: string): UserProblems {
  const files = exports.filter((c) => !c.nullStore || c.views !== undefined);
  if (files.length === 0 && stateDir === undefined) return { files: [], views: [], state: [] };
  const r = spawnSync(process.execPath, [__filename, CHILD_ARG], {
    input: JSON.stringify({ user, exports: files, stateDir }),
    encoding: 'utf8',
    timeout: CHILD_TIMEOUT_MS,
    // The child runs as the user, who may stop it (SIGSTOP): a stopped process never acts on SIGTERM.
    killSignal: 'SIGKILL',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  try {
    const out = JSON.parse(r.stdout) as Partial<Record<keyof UserProblems, unknown>>;
    const lines = (v: unknown): v is string[] => Array.isArray(v) && v.every((p) => typeof p === 'string');
    if (lines(out.files) && lines(out.views) && lines(out.state)) return { files: out.files, views: out.views, state: out.state };
  } catch {
    // reported below
  }
  const why = r.error ? r.error.message : r.stderr.trim() || `exit status ${r.status}`;
  return {
    files: [],
    views: [`cannot check the files as user ${user} (${why}); run vbladed --check again, or start it and read the log`],
    state: [],
  };
}

/** The child: becomes the user, opens each file the way the server does, closes it, prints what failed. */
function runChild(): void {
  const input = JSON.parse(fs.readFileSync(0, 'utf8')) as { user: string; exports: ExportConfig[]; stateDir?: string };
  const addon = loadAddon();
  addon.dropPrivileges(input.user);
  const out: UserProblems = { files: [], views: [], state: [] };
  if (input.stateDir !== undefined) {
    const problem = stateDirProblem(input.stateDir, input.user);
    if (problem !== null) out.state.push(problem);
  }
  for (const c of input.exports) {
    try {
      // A remote store is opened before the switch and its connections stay the opener's.
      if (!c.nullStore && !isRemoteUri(c.file)) openExportFile(c, addon).close();
    } catch (e) {
      out.files.push(`${exportKey(c)}: ${(e as Error).message}`);
    }
    const views = viewsProblem(c, input.user);
    if (views !== null) out.views.push(`${exportKey(c)}: ${views}`);
  }
  process.stdout.write(JSON.stringify(out));
}

/** As the user: whether it may make files in the state directory (one start makes is the user's). */
function stateDirProblem(dir: string, user: string): string | null {
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    return `the state directory ${dir} is not writable by user ${user} (${code}); give it to that user (chown ${user}: ${dir}) or set another state-dir`;
  }
}

/**
 * As the user: whether views-dir, VIEWSDIR/eS.L and its snapshots/ (those
 * that exist; start makes the others for the user) let it enter and make
 * files, as it must to make a view for a new machine after the switch.
 */
function viewsProblem(c: ExportConfig, user: string): string | null {
  if (c.views === undefined || c.viewsDir === undefined) return null;
  const dir = viewsDirOf(c);
  const places: [string, string][] = [
    ['views-dir', c.viewsDir],
    [`the views directory of ${exportKey(c)}`, dir],
    ['the snapshots directory', snapshotsDirOf(c)],
  ];
  for (const [what, place] of places) {
    try {
      fs.accessSync(place, fs.constants.W_OK | fs.constants.X_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      const why = code === 'EACCES' ? 'permission denied' : (e as Error).message;
      return `user ${user} (uid ${process.getuid?.()}) cannot make views in ${what} ${place}: ${why}; give it to that user: ${chownFix({ name: user }, c.viewsDir)}`;
    }
  }
  return null;
}

if (require.main === module && process.argv[2] === CHILD_ARG) runChild();
