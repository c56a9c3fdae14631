// What start-up and reload refuse so that two writers never write one disk
// behind each other's back: two exports of one file that would both write
// (always), and, at start-up with probing on, an export whose address another
// process on this host or another target on the wire already serves.

import type { Logger } from 'pino';
import { ConfigError, ReloadRefused } from '../api/errors';
import { exportKey, type ExportConfig, type ServerConfig } from '../config/export-config';
import type { NativeAddon } from '../native/addon';
import type { AddressClaims } from './address-claim';
import { probeAddresses } from './duplicate-probe';
import { sharedWriterProblems } from './shared-writers';
import { isRbdSpec } from '../remote/rbd-spec';

const DUPLICATE_ADVICE =
  "two targets with one address write one disk behind each other's back; stop the other one or give this export " +
  'another shelf.slot, or, if both are meant to serve it (hosts of a cluster file system; for failover see docs/failover.md), ' +
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

/** An export left out because its address is served elsewhere, and why (with what to do). */
/** The words of a refusal for another target answering on the wire (not another process of this host). */
const ON_THE_WIRE = ' is already served on ';

/**
 * Whether a refusal names another target on the wire: it may stop (or be a
 * forger answering every probe), so a later try may serve. A claim held by
 * another process of ours on this host is the admin's to settle: permanent.
 */
export function refusedOnWire(reason: string): boolean {
  return reason.includes(ON_THE_WIRE);
}

export interface RefusedExport {
  config: ExportConfig;
  reason: string;
}

/**
 * Which of `exports` another process on this host, or another target on
 * the wire, serves now: "eS.L" → why, with what to do. The claims of the
 * others are held when this returns; those of a refused export are given
 * back, so that a later try starts afresh.
 */
export async function findDuplicates(exports: readonly ExportConfig[], o: DuplicateCheck): Promise<Map<string, string>> {
  const refused = new Map<string, string>();
  if (o.probeMs <= 0) return refused;
  const byInterface = new Map<string, ExportConfig[]>();
  for (const c of exports) {
    const key = exportKey(c);
    // A writer of an rbd image is arbitrated by the image's exclusive lock: a standby is meant to find the owner answering.
    if (c.shared || (isRbdSpec(c.file) && !c.readOnly)) continue;
    for (const name of c.interfaces) {
      const claim = o.claims.claim(key, name, o.netns);
      if (claim.taken === false) {
        const pid = claim.holderPid === undefined ? '' : ` (pid ${claim.holderPid})`;
        if (!refused.has(key))
          refused.set(key, `another aoe-target process on this host already serves ${key} on ${name}${pid}; ${DUPLICATE_ADVICE}`);
        continue;
      }
      if (claim.taken === 'unchecked') {
        o.log.warn(
          { export: key, interface: name },
          `cannot claim ${key} on ${name} on this host (${claim.why}); served without the claim: another process of ours ` +
            'serving it here would not be noticed (set XDG_RUNTIME_DIR, or use the shipped units)',
        );
        byInterface.set(name, [...(byInterface.get(name) ?? []), c]);
        continue;
      }
      if (claim.taken === 'unavailable') {
        // Without the claim another process here could serve it unseen: two writers. Not served until a restart claims it.
        if (!refused.has(key))
          refused.set(
            key,
            `cannot claim ${key} on ${name} on this host (${claim.why}): the claims are root's and this process has switched ` +
              'to its user since it started; restart the service to serve it',
          );
        continue;
      }
      byInterface.set(name, [...(byInterface.get(name) ?? []), c]);
    }
  }
  const probes = [...byInterface].map(async ([name, list]) => {
    const partial = new Map<string, string[]>();
    try {
      const asked = list.filter((c) => !refused.has(exportKey(c)));
      const answers = await probeAddresses(o.addon, name, asked, o.probeMs, o.netns, partial);
      for (const [key, mac] of answers) {
        if (!refused.has(key)) refused.set(key, `${key}${ON_THE_WIRE}${name} by ${mac}; ${DUPLICATE_ADVICE}`);
      }
    } catch (err) {
      // No CAP_NET_RAW: opening the serving socket says so, with what to do.
      if ((err as NodeJS.ErrnoException).code === 'EPERM') return;
      o.log.warn({ interface: name, err: (err as Error).message }, 'cannot look for other targets on this interface');
    }
    for (const [key, macs] of partial) {
      o.log.warn(
        { export: key, interface: name, macs },
        `${key} on ${name}: ${macs.join(' ')} answered the duplicate-address probe only in part (not every round: a forged or lost reply); served`,
      );
    }
  });
  await Promise.all(probes);
  for (const key of refused.keys()) o.claims.releaseExport(key);
  return refused;
}

/**
 * A reload gives an export interfaces it did not have: claims them (the wire
 * is not probed again). Throws ReloadRefused, with the claims it took given
 * back, when another process on this host holds one or the claim cannot be
 * made any more.
 */
export function claimNewInterfaces(c: ExportConfig, before: readonly string[], o: DuplicateCheck): void {
  if (o.probeMs <= 0 || c.shared) return;
  const key = exportKey(c);
  for (const name of c.interfaces) {
    if (before.includes(name)) continue;
    const claim = o.claims.claim(key, name, o.netns);
    if (claim.taken === true) continue;
    o.claims.releaseExport(key, before);
    if (claim.taken === false) {
      const pid = claim.holderPid === undefined ? '' : ` (pid ${claim.holderPid})`;
      throw new ReloadRefused(
        `another aoe-target process on this host already serves ${key} on ${name}${pid}; ${DUPLICATE_ADVICE}`,
      );
    }
    throw new ReloadRefused(`cannot claim ${key} on ${name} on this host (${claim.why}); restart the service to serve it there`);
  }
}

/**
 * Start-up: refuses exports of one file that would both write, then (when
 * probing is on) leaves out each export whose address another process on
 * this host, or another target on the wire, already serves. Those are
 * logged as errors and returned, to be tried again later (the server
 * decides what to do when none is left).
 */
export async function refuseDuplicates(
  config: ServerConfig,
  o: DuplicateCheck,
): Promise<{ config: ServerConfig; refused: RefusedExport[] }> {
  refuseSharedWriters(config.exports);
  const reasons = await findDuplicates(config.exports, o);
  for (const [key, message] of reasons) o.log.error({ export: key }, `not serving ${key}: ${message}`);
  const kept = config.exports.filter((c) => !reasons.has(exportKey(c)));
  const refused = config.exports
    .filter((c) => reasons.has(exportKey(c)))
    .map((c) => ({ config: c, reason: reasons.get(exportKey(c))! }));
  return { config: { ...config, exports: kept }, refused };
}
