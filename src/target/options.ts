// The serving core's options: what a caller may set (ServerOptions) and the
// same with every default filled in, once, at start. The tunables a user
// sets in [daemon] take their defaults from DEFAULT_TUNABLES, the one place
// they are written; the others are the serving core's own.

import { DEFAULT_TUNABLES, type SpinPolicyName } from '../config/export-config';
import type { IoRing, NativeAddon } from '../native/addon';
import { openFileLimit } from '../views/admission';

export interface ServerOptions {
  /** Requests in flight over all exports (each holds one transmit slot). */
  requestSlots?: number;
  /** Transmit slots per interface. */
  txSlots?: number;
  /** How often interfaces are checked for MTU, MAC and carrier changes. */
  linkCheckMs?: number;
  /**
   * At start, fail when none of the configured interfaces exists (default);
   * false for a restarted worker, which waits for them. A missing interface
   * among others never fails: its exports wait for it there.
   */
  requireAnInterface?: boolean;
  /** Network namespace to open sockets in (tests). */
  netns?: string;
  addon?: NativeAddon;
  /** Busy-poll window after each batch, microseconds; 0 sleeps at once ([daemon] spin-us). */
  spinMicros?: number;
  /** 'adaptive': poll only while polls find work; 'always': after every batch ([daemon] spin-policy). */
  spinPolicy?: SpinPolicyName;
  /** Map backing files that live in memory ([daemon] map-in-memory). */
  mapInMemory?: boolean;
  /** Seconds between announcements on every interface that is up; 0 turns them off ([daemon] announce-interval). */
  announceSeconds?: number;
  /** How often backing stores are checked for growth (resizeExport); 0 only on request. */
  sizeCheckMs?: number;
  /** Wraps the io ring before the engine uses it: where the process set-up adds test fault injection. */
  wrapIoRing?: (io: IoRing) => IoRing;
  /**
   * How long start-up waits for another target to answer our own addresses
   * ([daemon] duplicate-probe-ms); 0 skips the probe and the claim of each
   * address on this host (tests on a fake network pass 0).
   */
  duplicateProbeMs?: number;
  /** How often exports refused because their address was served elsewhere are tried again ([daemon] duplicate-retry-s). */
  duplicateRetrySeconds?: number;
  /** Views the process may keep open over all exports (one descriptor each); default: RLIMIT_NOFILE less what the rest of the process needs. */
  maxViews?: number;
  /** After a writer had a views export's image open: how often sharing its page cache is tried again (default 30 s). */
  viewLeaseRetryMs?: number;
  /** How often views' last-seen dates are saved while initiators use them (default 60 s). */
  viewDatesSaveMs?: number;
  /** How often refusals of new views are summed up in one log line (default 60 s). */
  viewRefusalLogMs?: number;
  /** How often an rbd standby looks whether the lock owner is gone, and an owner whether it still holds the lock (default 3 s). */
  rbdLockPollMs?: number;
}

/** ServerOptions with every default filled in; the addon, the ring wrapper and the start-up policy are taken apart. */
export type ServingOptions = Required<Omit<ServerOptions, 'netns' | 'addon' | 'wrapIoRing' | 'requireAnInterface'>> & {
  netns?: string;
};

/** Descriptors left for sockets, the io ring, backing files, logs and the control socket when views take the rest. */
const FDS_KEPT_FREE = 256;

export function resolveOptions(options: ServerOptions): ServingOptions {
  return {
    requestSlots: options.requestSlots ?? 2048,
    txSlots: options.txSlots ?? 1024,
    linkCheckMs: options.linkCheckMs ?? 500,
    netns: options.netns,
    spinMicros: options.spinMicros ?? DEFAULT_TUNABLES.spinMicros,
    spinPolicy: options.spinPolicy ?? DEFAULT_TUNABLES.spinPolicy,
    mapInMemory: options.mapInMemory ?? DEFAULT_TUNABLES.mapInMemory,
    duplicateProbeMs: options.duplicateProbeMs ?? DEFAULT_TUNABLES.duplicateProbeMs,
    duplicateRetrySeconds: options.duplicateRetrySeconds ?? DEFAULT_TUNABLES.duplicateRetrySeconds,
    announceSeconds: options.announceSeconds ?? DEFAULT_TUNABLES.announceSeconds,
    sizeCheckMs: options.sizeCheckMs ?? 5000,
    maxViews: options.maxViews ?? Math.max(0, openFileLimit() - FDS_KEPT_FREE),
    viewLeaseRetryMs: options.viewLeaseRetryMs ?? 30_000,
    viewDatesSaveMs: options.viewDatesSaveMs ?? 60_000,
    viewRefusalLogMs: options.viewRefusalLogMs ?? 60_000,
    rbdLockPollMs: options.rbdLockPollMs ?? 3000,
  };
}
