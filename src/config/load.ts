// Loading the exports a vbladed instance serves, from wherever its command
// line points: vblade arguments, a config file (vblade.conf(5)) or a Debian
// /etc/vblade.conf.d fragment. Used at start and again on every reload.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, formatProblem, parseConfigFiles, type ConfigText } from './config-file';
import { configDirOf, isFragmentName, readFragments } from './fragments';
import type { GroupUse } from './mac-groups';
import type { DaemonKeys } from './keys';
import { parseDebianConf } from './debian-conf';
import { describeAccess, exportKey, idleDetectZeroesWarning, viewsWithoutMaskWarning, type ExportConfig } from './export-config';
import { parseVbladeArgs } from './vblade-args';

/** Where the exports come from. */
export interface ExportSource {
  mode: 'args' | 'config' | 'debian';
  /** Absolute path of --config / --debian-config. */
  configFile?: string;
  /** The vblade arguments (mode 'args'). */
  vbladeArgv: string[];
  /** [daemon] keys of the command line (--config-dir wins over the file's). */
  daemonKeys?: DaemonKeys;
  /** The systemd unit this process runs in, if any: what a Debian fragment's messages name. */
  systemdUnit?: string;
}

export interface LoadedExports {
  exports: ExportConfig[];
  /** The [daemon] section of a config file; empty otherwise. */
  fileDaemonKeys: DaemonKeys;
  /** Instance name when none is set: the file name without .conf, or eS.L@NETIF. */
  defaultName: string;
  /** Things accepted but ignored, as "file:line: text". */
  warnings: string[];
  /** MAC groups of a config file and the exports naming each. */
  groups?: GroupUse[];
  /** Where each export is declared (config mode): the main file or a fragment. */
  origins?: Record<string, { file: string; line: number }>;
  /** The fragments directory read (config mode), when there is one. */
  configDir?: string;
}

/** Reads and validates what the source points at. Throws UsageError, ConfigError or Error (unreadable file). */
export function loadExports(source: ExportSource): LoadedExports {
  if (source.mode === 'args') {
    const e = parseVbladeArgs(source.vbladeArgv);
    e.file = path.resolve(e.file);
    return { exports: [e], fileDaemonKeys: {}, defaultName: `${exportKey(e)}@${e.interfaces[0]}`, warnings: [] };
  }
  const file = source.configFile!;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint =
      code === 'ENOENT'
        ? 'create it (see vblade.conf(5) and systemd/vblade.conf.example)'
        : code === 'EACCES'
          ? 'check its permissions'
          : 'check the path';
    throw new Error(`cannot read ${file}: ${(e as Error).message}; ${hint}`, { cause: e });
  }
  const defaultName = path.basename(file).replace(/\.conf$/, '');
  if (source.mode === 'config') return loadConfigFiles({ text, file }, source.daemonKeys ?? {}, defaultName);
  const d = parseDebianConf(text, file, { unit: source.systemdUnit });
  return { exports: [d.export], fileDaemonKeys: {}, defaultName, warnings: d.warnings.map(formatProblem) };
}

/**
 * The main file and the fragments of its config-dir, checked together. `extra` is a fragment not yet on
 * disk (`vblade ctl add` checks it before writing it).
 */
export function loadConfigFiles(
  main: ConfigText,
  cliDaemonKeys: DaemonKeys,
  defaultName: string,
  extra?: ConfigText,
): LoadedExports {
  // The main file alone first, for its config-dir; it may declare no export itself when fragments do.
  const mainOnly = parseConfigFiles(main, [], false);
  const set = { ...mainOnly.daemon, ...cliDaemonKeys };
  const configDir = configDirOf(main.file, set);
  if (configDir && holdsConfigFile(configDir, main.file)) {
    const fix = `give fragments a directory of their own, e.g. config-dir = ${path.join(configDir, `${defaultName}.d`)}`;
    const why = `config-dir ${set['config-dir']} is the directory of this config file, which would be read again as a fragment`;
    throw new ConfigError([{ file: main.file, line: mainOnly.daemonLines['config-dir'] ?? 0, message: `${why}; ${fix}` }]);
  }
  const fragments = configDir ? readFragments(configDir) : { texts: [], problems: [] };
  const texts = extra ? [...fragments.texts.filter((t) => t.file !== extra.file), extra] : fragments.texts;
  let c;
  try {
    c = parseConfigFiles(main, texts);
  } catch (e) {
    if (e instanceof ConfigError && fragments.problems.length)
      throw new ConfigError([...fragments.problems, ...e.problems], e.sound);
    throw e;
  }
  if (fragments.problems.length) throw new ConfigError(fragments.problems, c.exports);
  const warnings = [
    ...c.warnings,
    ...c.exports
      .flatMap((e) => [viewsWithoutMaskWarning(e), idleDetectZeroesWarning(e)])
      .filter((w): w is string => w !== undefined),
  ];
  return { exports: c.exports, fileDaemonKeys: c.daemon, defaultName, warnings, groups: c.groups, origins: c.origins, configDir };
}

/** Whether `file` (a NAME.conf) is in `dir`, by the inode of its directory: a path with a trailing / or a link names it too. */
function holdsConfigFile(dir: string, file: string): boolean {
  if (!isFragmentName(path.basename(file))) return false;
  try {
    const a = fs.statSync(dir);
    const b = fs.statSync(path.dirname(path.resolve(file)));
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false; // no such directory: no fragments either
  }
}

function sectors(n: number | undefined): string {
  return `${n} sector${n === 1 ? '' : 's'}`;
}

/** One line per export for --check and the start-up log: "e1.1 on eth1: /srv/a.img, read-write, sync, buffer count 16". */
export function describeExport(e: ExportConfig): string {
  const what = e.nullStore ? `null store of ${sectors(e.nullSectors)}` : e.file;
  const range =
    e.offsetSectors || e.lengthSectors !== undefined
      ? ` from sector ${e.offsetSectors}${e.lengthSectors !== undefined ? ` for ${sectors(e.lengthSectors)}` : ' to the end'}`
      : '';
  const facts = [
    what + range,
    describeAccess(e),
    e.direct ? 'direct' : '',
    e.sync ? 'sync' : '',
    e.broadcastEdits ? 'broadcast-edits' : '',
    `buffer count ${e.bufferCount}`,
    e.macMask.length ? `mask ${e.macMask.join(',')}` : '',
  ];
  return `${exportKey(e)} on ${e.interfaces.join(' ')}: ${facts.filter(Boolean).join(', ')}`;
}

/** One line per MAC group for --check: "group lab: 3 MACs (52:54:..., ...), used by e1.1 e1.2". */
export function describeGroup(g: GroupUse): string {
  const n = `${g.macs.length} MAC${g.macs.length === 1 ? '' : 's'}`;
  return `group ${g.name}: ${n} (${g.macs.join(', ')}), ${g.usedBy.length ? `used by ${g.usedBy.join(' ')}` : 'used by no export'}`;
}
