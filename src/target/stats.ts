// Observation: what `vblade ctl stats` and the metrics endpoint show of the
// serving core, built on request from the exports, links and frame loop.
// Reading the kernel's ring drop counter here also adds it to the link's.

import type { ServerStats } from '../api/control';
import type { ViewsAdmin } from '../views/admin';
import { EXPORT_COUNTER_NAMES, LINK_COUNTER_NAMES, LinkCounter } from '../engine/counters';
import type { Engine } from '../engine/engine';
import type { ServedExport as Export } from './served-export';
import type { LinkSet } from './link-set';
import type { ServingOptions } from './options';

export interface StatsSources {
  engine: Engine<Export>;
  links: LinkSet;
  views: ViewsAdmin;
  opts: ServingOptions;
}

export function serverStats(exports: readonly Export[], s: StatsSources): ServerStats {
  return {
    exports: exports.map((e) => exportStats(e, s)),
    // A link no export names any more and that is closed (an interface that never appeared) is not shown.
    interfaces: [...s.links.values()]
      .filter((l) => l.exports.length > 0 || l.socket !== null)
      .map((l) => {
        const k = l.socket?.stats();
        if (k) l.counters[LinkCounter.RxRingDrops] += k.drops;
        return {
          name: l.name,
          open: l.socket !== null,
          state: l.state,
          up: l.info?.up ?? false,
          mtu: l.info?.mtu ?? 0,
          sectorsPerFrame: l.ctx.maxSectors,
          counters: Object.fromEntries(LINK_COUNTER_NAMES.map((n, i) => [n, l.counters[i]])),
        };
      }),
    frameLoop: { ...s.engine.loopCounters(), spinMicros: s.opts.spinMicros, spinPolicy: s.opts.spinPolicy },
  };
}

function exportStats(e: Export, s: StatsSources): ServerStats['exports'][number] {
  return {
    key: e.key,
    file: e.store.description,
    sectors: e.store.sectors,
    interfaces: e.config.interfaces,
    paths: e.config.interfaces.map((name) => ({ interface: name, state: s.links.get(name)!.state })),
    readOnly: e.config.readOnly,
    inflight: e.inflight,
    ...(e.held !== null ? { held: e.held } : {}),
    stateDurable: e.durable,
    failedSaves: e.failedSaves,
    ...(e.lastSaveError !== null ? { lastSaveError: e.lastSaveError } : {}),
    config: e.state.configString(),
    macMask: e.state.mask.toStrings(),
    reserve: e.state.reserve.toStrings(),
    counters: Object.fromEntries(EXPORT_COUNTER_NAMES.map((n, i) => [n, e.counters[i]])),
    ...(e.views !== null
      ? {
          views: {
            count: e.views.count,
            maxViews: e.views.admission.maxViews,
            ownBytes: e.views.ownBytes(),
            failures: e.views.admission.total,
            refused: { ...e.views.admission.refusals },
            sharesImage: e.views.sharesImage,
            bootDiscards: e.views.bootDiscards,
            ...(e.views.admission.lastMessage !== null ? { lastError: e.views.admission.lastMessage } : {}),
          },
        }
      : {}),
    ...(e.config.viewsDir !== undefined ? { snapshots: s.views.snapshotTotals(e) } : {}),
    initiators: { rows: e.initiators.rows, evictions: e.initiators.evictions, list: e.initiators.snapshot() },
    latencyUsLog2: Array.from(e.latency),
    latencySumUs: e.latencySumUs,
  };
}
