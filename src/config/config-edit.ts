// `vblade ctl add` and `vblade ctl remove`: an export added or removed at
// run time, kept in a fragment of config-dir so that it survives a restart
// (vblade.conf(5), FRAGMENTS). Runs in `vblade ctl` as root (cli/ctl-edit.ts,
// which holds the edit lock and asks the daemon to reload). Nothing is left half-done:
// the new configuration is checked before the fragment is written, and
// when the reload refuses it the fragment is removed again (or, for a
// remove, put back), so the files always say what is served.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from './config-file';
import { openConfigDir, renderExportFragment } from './fragments';
import type { DaemonKeys } from './keys';
import { loadConfigFiles, type LoadedExports } from './load';

/** What the edits need of the running daemon. */
export interface ConfigEditOptions {
  configFile: string;
  /** [daemon] keys of the command line (--config-dir). */
  daemonKeys: DaemonKeys;
  defaultName: string;
  /** The group of a daemon that is not root: a config-dir made now is its (setgid 2750), so that it reads the fragments. */
  dirGroup?: number;
  /** Applies what the files now say, as a reload does; throws when the reload is refused (nothing changed). */
  reload(): Promise<unknown>;
}

/** The reload was asked for but not answered in time: it may still be applied, so the edit is not undone. */
export class ReloadUnanswered extends Error {}

export interface EditResult {
  key: string;
  fragment: string;
  reload: unknown;
}

const FRAGMENT_MODE = 0o640;

function writeProblem(e: unknown, file: string, verb: 'write' | 'remove' = 'write'): Error {
  const code = (e as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'the file system is full; free some space'
      : code === 'EROFS'
        ? 'the file system is read-only'
        : code === 'EACCES' || code === 'EPERM'
          ? `uid ${process.geteuid?.()} may not change ${path.dirname(file)} (run vblade ctl as root)`
          : (e as Error).message;
  return new Error(`cannot ${verb} ${file}: ${why}; nothing was changed`, { cause: e });
}

export class ConfigEditor {
  constructor(private readonly o: ConfigEditOptions) {}

  /** The configuration as it is on disk, with `extra` as one more fragment (not written yet). */
  private load(extra?: { text: string; file: string }): LoadedExports {
    const text = fs.readFileSync(this.o.configFile, 'utf8');
    return loadConfigFiles({ text, file: this.o.configFile }, this.o.daemonKeys, this.o.defaultName, extra);
  }

  private configDir(loaded: LoadedExports): string {
    if (!loaded.configDir)
      throw new Error(`config-dir = none in ${this.o.configFile}: there is nowhere to keep an added export; set config-dir`);
    return loaded.configDir;
  }

  /** Adds export `address` from `words` (INTERFACES FILE [KEY=VALUE...]): checked, written, reloaded. */
  async add(address: string, words: readonly string[]): Promise<EditResult> {
    const f = renderExportFragment(address, words);
    let before: LoadedExports;
    try {
      before = this.load();
    } catch (e) {
      // The file as it is now is what a reload would apply: a mistake there stops the add too.
      throw new Error(`${f.key} not added: ${this.o.configFile} or a fragment has a mistake: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const where = before.origins?.[f.key];
    if (where)
      throw new Error(`${f.key} is already exported (${where.file}:${where.line}); remove it first, or choose another address`);
    const dirPath = this.configDir(before);
    const made = !fs.existsSync(dirPath);
    const dir = openConfigDir(dirPath, { gid: this.o.dirGroup })!;
    try {
      const file = dir.pathOf(f.name);
      if (dir.lstat(f.name)) throw new Error(`${file} exists but does not declare ${f.key}; move it away first`);
      try {
        this.load({ text: f.text, file });
      } catch (e) {
        const msg = e instanceof ConfigError ? e.message : (e as Error).message;
        // Its own mistakes are in the fragment it would have written, which does not exist: say so, not its path.
        throw new Error(`${f.key} not added: ${msg.split(`${file}:`).join('the new fragment, line ')}`, { cause: e });
      }
      try {
        dir.writeFileAtomic(f.name, f.text, FRAGMENT_MODE);
      } catch (e) {
        throw writeProblem(e, file);
      }
      try {
        return { key: f.key, fragment: file, reload: await this.o.reload() };
      } catch (e) {
        if (e instanceof ReloadUnanswered)
          throw new Error(
            `${e.message}; ${file} is kept, since the daemon may still apply it: \`vblade ctl list\` says whether ${f.key} is served (vblade ctl remove ${f.key} takes it away)`,
            { cause: e },
          );
        dir.unlink(f.name);
        dir.sync();
        // A config-dir this add made goes too: left behind, it would be read (or refused) at every reload.
        if (made)
          try {
            fs.rmdirSync(dirPath);
          } catch {
            // something else was put there meanwhile: left as it is
          }
        throw new Error(`${(e as Error).message}; ${file} was removed again: ${f.key} was not added`, { cause: e });
      }
    } finally {
      dir.close();
    }
  }

  /** Removes export `key` when a fragment of its own declares it: deleted, reloaded (the export drained as a reload does). */
  async remove(key: string): Promise<EditResult> {
    const loaded = this.load();
    const where = loaded.origins?.[key];
    // It may still be served: a fragment deleted by hand stays in force until a reload.
    if (!where)
      throw new Error(
        `no export ${key} in ${this.o.configFile} or its fragments (${loaded.configDir ?? 'config-dir = none'}); if \`vblade ctl list\` shows it, its fragment was deleted by hand: \`vblade ctl reload\` stops serving it`,
      );
    if (where.file === this.o.configFile)
      throw new Error(
        `${key} is declared in the config file ${where.file}:${where.line}, not in a fragment; edit that file and run vblade ctl reload`,
      );
    const dir = openConfigDir(this.configDir(loaded))!;
    try {
      const name = where.file.slice(dir.path.length + 1);
      const text = dir.readFile(name)!.toString('utf8');
      // The whole configuration parsed: its section headers are sound, and one means this export alone.
      const headers = text.split('\n').filter((l) => l.trimStart().startsWith('['));
      if (headers.length !== 1)
        throw new Error(`${where.file} declares more than ${key}; edit that file and run vblade ctl reload`);
      // Set aside under a hidden name (not read as a fragment), not deleted: putting it back
      // is a rename, which needs no free block (the disk may fill while the reload runs).
      const aside = `.${name}.removing`;
      try {
        dir.rename(name, aside);
      } catch (e) {
        throw writeProblem(e, where.file, 'remove');
      }
      dir.sync();
      let reload: unknown;
      try {
        reload = await this.o.reload();
      } catch (e) {
        if (e instanceof ReloadUnanswered)
          throw new Error(
            `${e.message}; ${where.file} is set aside as ${aside}, since the daemon may still apply the removal: if \`vblade ctl list\` still shows ${key}, move it back and run vblade ctl reload; else delete it`,
            { cause: e },
          );
        dir.rename(aside, name);
        dir.sync();
        throw new Error(`${(e as Error).message}; ${where.file} was put back: ${key} was not removed`, { cause: e });
      }
      dir.unlink(aside);
      dir.sync();
      return { key, fragment: where.file, reload };
    } finally {
      dir.close();
    }
  }
}
