// What `vbladed --check` tries before it calls a configuration servable:
// every backing store opens the way the server opens it, and every interface
// exists in this network namespace. Nothing is kept open, nothing is sent.

import { exportKey, type ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import { openExportStore } from './export-store';

/** One line per problem, "eS.L: what is wrong; what to do"; empty when everything can be served. */
export function preflightExports(
  exports: readonly ExportConfig[],
  addon: Pick<NativeAddon, 'blockDeviceSize' | 'linkInfo' | 'reflinkSupported'>,
  netns?: string,
): string[] {
  const problems: string[] = [];
  for (const c of exports) {
    const key = exportKey(c);
    try {
      openExportStore(c, addon).close();
    } catch (e) {
      problems.push(`${key}: ${(e as Error).message}`);
    }
    for (const name of c.interfaces) {
      if (addon.linkInfo(name, netns) === null)
        problems.push(`${key}: interface ${name} not found; list interfaces with \`ip link\``);
    }
  }
  return problems;
}
