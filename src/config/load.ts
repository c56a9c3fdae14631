// Loading the exports a vbladed instance serves, from wherever its command
// line points: vblade arguments, a config file (vblade.conf(5)) or a Debian
// /etc/vblade.conf.d fragment. Used at start and again on every reload.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatProblem, parseConfigFile } from './config-file';
import type { DaemonKeys } from './keys';
import { parseDebianConf } from './debian-conf';
import { describeAccess, exportKey, viewsWithoutMaskWarning, type ExportConfig } from './export-config';
import { parseVbladeArgs } from './vblade-args';

/** Where the exports come from. */
export interface ExportSource {
  mode: 'args' | 'config' | 'debian';
  /** Absolute path of --config / --debian-config. */
  configFile?: string;
  /** The vblade arguments (mode 'args'). */
  vbladeArgv: string[];
}

export interface LoadedExports {
  exports: ExportConfig[];
  /** The [daemon] section of a config file; empty otherwise. */
  fileDaemonKeys: DaemonKeys;
  /** Instance name when none is set: the file name without .conf, or eS.L@NETIF. */
  defaultName: string;
  /** Things accepted but ignored, as "file:line: text". */
  warnings: string[];
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
  if (source.mode === 'config') {
    const c = parseConfigFile(text, file);
    const warnings = c.exports.map(viewsWithoutMaskWarning).filter((w): w is string => w !== undefined);
    return { exports: c.exports, fileDaemonKeys: c.daemon, defaultName, warnings };
  }
  const d = parseDebianConf(text, file);
  return { exports: [d.export], fileDaemonKeys: {}, defaultName, warnings: d.warnings.map(formatProblem) };
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
