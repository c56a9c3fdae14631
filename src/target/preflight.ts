// What `vbladed --check` tries before it calls a configuration servable:
// every backing store opens the way the server opens it, and the interfaces
// are looked up in this network namespace with start-up's verdict: one that
// does not exist is waited for (a warning), and only a configuration none of
// whose interfaces exists cannot start. The image of a views export is leased
// and the lease given up at once, as the export will: refused, the views
// would not share the image's page cache (a warning). Nothing is kept open,
// nothing is sent.

import { exportKey, type ExportConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import type { RemoteAddon } from '../remote/remote-store';
import { openExportStore, partialSectorWarning } from './export-store';

export interface Preflight {
  /** One line per problem, "eS.L: what is wrong; what to do"; empty when everything can be served. */
  problems: string[];
  /** What serves, but not yet (an interface that does not exist now), or slower (views without the image's lease). */
  warnings: string[];
}

export async function preflightExports(
  exports: readonly ExportConfig[],
  addon: Pick<NativeAddon, 'blockDeviceSize' | 'linkInfo' | 'reflinkSupported' | 'punchHole' | 'imageLease'> & RemoteAddon,
  netns?: string,
): Promise<Preflight> {
  const problems: string[] = [];
  const warnings: string[] = [];
  // Together, as start opens them (remote ones off the event loop, a few at a time): a check with several
  // slow remote stores waits for about the slowest; what each says is kept in the order of the exports.
  const checks = await Promise.all(
    exports.map(async (c): Promise<{ problem?: string; warnings: string[] }> => {
      try {
        const store = await openExportStore(c, addon);
        const said: string[] = [];
        const partial = partialSectorWarning(c, store);
        if (partial !== undefined) said.push(partial);
        const lease = c.views === undefined ? undefined : leaseWarning(c, store.fd, addon);
        if (lease !== undefined) said.push(lease);
        await store.close();
        return { warnings: said };
      } catch (e) {
        return { problem: `${exportKey(c)}: ${(e as Error).message}`, warnings: [] };
      }
    }),
  );
  for (const check of checks) {
    if (check.problem !== undefined) problems.push(check.problem);
    warnings.push(...check.warnings);
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

/**
 * Takes the read lease on a views export's image and gives it up, as the
 * export will. EACCES: this process neither owns the image nor holds
 * CAP_LEASE (a unit of the admin's own without it), so the views would read
 * their own files only. Other refusals (the image open for writing now) pass:
 * the export tries again while it runs.
 */
function leaseWarning(c: ExportConfig, fd: number, addon: Pick<NativeAddon, 'imageLease'>): string | undefined {
  // A writer that opens the image while the lease is held sends SIGIO, whose default action ends the process.
  if (process.listenerCount('SIGIO') === 0) process.on('SIGIO', () => undefined);
  try {
    addon.imageLease(fd, true);
    addon.imageLease(fd, false);
    return undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EACCES') return undefined;
    return (
      `${exportKey(c)}: its views will read only their own files, not share the image's page cache: user uid ${process.geteuid?.()} ` +
      `neither owns ${c.file} nor holds CAP_LEASE, which the read lease on it needs; give the unit CAP_LEASE ` +
      `(AmbientCapabilities=CAP_NET_RAW CAP_LEASE and CapabilityBoundingSet=CAP_NET_RAW CAP_LEASE, as vblade.service has), ` +
      `or start as root with user =, or give the image to the serving user`
    );
  }
}
