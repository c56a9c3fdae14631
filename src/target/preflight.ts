// What `vbladed --check` tries before it calls a configuration servable:
// every backing store opens the way the server opens it, and the interfaces
// are looked up in this network namespace with start-up's verdict: one that
// does not exist is waited for (a warning), and only a configuration none of
// whose interfaces exists cannot start. Nothing is kept open, nothing is sent.

import { exportKey, type ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import type { RemoteAddon } from '../remote/remote-store';
import { openExportStore, partialSectorWarning } from './export-store';

export interface Preflight {
  /** One line per problem, "eS.L: what is wrong; what to do"; empty when everything can be served. */
  problems: string[];
  /** What serves, but not yet: an interface that does not exist now. */
  warnings: string[];
}

export function preflightExports(
  exports: readonly ExportConfig[],
  addon: Pick<NativeAddon, 'blockDeviceSize' | 'linkInfo' | 'reflinkSupported' | 'punchHole'> & RemoteAddon,
  netns?: string,
): Preflight {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const c of exports) {
    try {
      const store = openExportStore(c, addon);
      const partial = partialSectorWarning(c, store);
      if (partial !== undefined) warnings.push(partial);
      store.close();
    } catch (e) {
      problems.push(`${exportKey(c)}: ${(e as Error).message}`);
    }
  }
  const names = [...new Set(exports.flatMap((c) => c.interfaces))];
  const missing = new Set(names.filter((n) => addon.linkInfo(n, netns) === null));
  const noneExists = names.length > 0 && missing.size === names.length;
  for (const c of exports) {
    for (const name of c.interfaces.filter((n) => missing.has(n))) {
      const key = exportKey(c);
      if (noneExists) problems.push(`${key}: interface ${name} not found; list interfaces with \`ip link\``);
      else
        warnings.push(
          `${key}: interface ${name} not found; ${key} is served on it when it appears (list interfaces with \`ip link\`)`,
        );
    }
  }
  return { problems, warnings };
}
