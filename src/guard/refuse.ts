// What start-up and reload refuse so that two writers never write one disk
// behind each other's back: two exports of one file that would both write
// (always), and, at start-up with probing on, an export whose address another
// process on this host or another target on the wire already serves.

import type { Logger } from 'pino';
import { ConfigError } from '../api/errors';
import { exportKey, type ExportConfig, type ServerConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import type { AddressClaims } from './address-claim';
import { probeAddresses } from './duplicate-probe';
import { sharedWriterProblems } from './shared-writers';

const DUPLICATE_ADVICE =
  "two targets with one address write one disk behind each other's back; stop the other one or give this export " +
  'another shelf.slot, or, if both are meant to serve it (an active-active failover pair on one shared disk), ' +
  'set shared = yes in its export section (vblade: --shared)';

/** Two exports of this config that would write one disk: refused, naming both and the key that allows it. */
export function refuseSharedWriters(exports: readonly ExportConfig[]): void {
  const problems = sharedWriterProblems(exports);
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
}

export interface DuplicateCheck {
  addon: NativeAddon;
  /** This host's claims of addresses, held while the process serves them. */
  claims: AddressClaims;
  /** How long to wait for another target's answer; 0 skips the claims and the probe. */
  probeMs: number;
  netns?: string;
  log: Logger;
}

/**
 * Start-up: refuses exports of one file that would both write, then (when
 * probing is on) leaves out each export whose address another process on
 * this host, or another target on the wire, already serves. Those are
 * logged as errors; when none is left, start-up fails with the reason.
 */
export async function refuseDuplicates(config: ServerConfig, o: DuplicateCheck): Promise<ServerConfig> {
  refuseSharedWriters(config.exports);
  if (o.probeMs <= 0) return config;
  const refused = new Map<string, string>();
  const byInterface = new Map<string, ExportConfig[]>();
  for (const c of config.exports) {
    const key = exportKey(c);
    if (c.shared) continue;
    for (const name of c.interfaces) {
      if (await o.claims.claim(key, name, o.netns)) {
        byInterface.set(name, [...(byInterface.get(name) ?? []), c]);
      } else if (!refused.has(key)) {
        refused.set(key, `another aoe-target process on this host already serves ${key} on ${name}`);
      }
    }
  }
  const probes = [...byInterface].map(async ([name, list]) => {
    try {
      const answers = await probeAddresses(o.addon, name, list, o.probeMs, o.netns);
      for (const [key, mac] of answers) {
        if (!refused.has(key)) refused.set(key, `${key} is already served on ${name} by ${mac}`);
      }
    } catch (err) {
      // No CAP_NET_RAW: opening the serving socket says so, with what to do.
      if ((err as NodeJS.ErrnoException).code === 'EPERM') return;
      o.log.warn({ interface: name, err: (err as Error).message }, 'cannot look for other targets on this interface');
    }
  });
  await Promise.all(probes);
  const messages = [...refused.values()].map((why) => `${why}; ${DUPLICATE_ADVICE}`);
  for (const [key, message] of [...refused.keys()].map((k, i) => [k, messages[i]])) {
    o.log.error({ export: key }, `not serving ${key}: ${message}`);
  }
  const kept = config.exports.filter((c) => !refused.has(exportKey(c)));
  if (kept.length === 0 && messages.length > 0) throw new ConfigError(messages.join('\n'));
  return { ...config, exports: kept };
}
