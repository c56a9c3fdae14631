// A reload: a new configuration applied completely or not at all. A plan is
// made first (stores of added and changed exports opened, interfaces
// checked) without touching what serves; only a plan without problems is
// applied.

import type { Logger } from 'pino';
import type { ReloadSummary } from '../api/control';
import { ReloadRefused } from '../api/errors';
import type { BlockStore } from '../backend/block-store';
import { exportKey, type ExportConfig, type ServerConfig } from '../config/export-config';
import { refuseSharedWriters } from '../guard/refuse';
import type { NativeAddon } from '../native/addon';
import type { Engine } from '../engine/engine';
import type { ServedExport as Export } from './served-export';
import type { ExportSet } from './export-set';
import type { Link } from '../engine/link';
import type { LinkSet } from './link-set';
import type { Resizer } from './resize';

/** A reload checked and prepared: stores opened, nothing serving touched yet. */
interface ReloadPlan {
  removed: Export[];
  replaced: { old: Export; config: ExportConfig; store: BlockStore }[];
  added: { config: ExportConfig; store: BlockStore }[];
  masked: { old: Export; config: ExportConfig }[];
  /** Exports whose backing store grew: taken in place, like `vblade ctl resize`. */
  grown: Export[];
  summary: ReloadSummary;
}

export interface ReloaderParts {
  engine: Engine<Export>;
  exports: ExportSet;
  links: LinkSet;
  resizer: Resizer;
  addon: NativeAddon;
  log: Logger;
  netns?: string;
  /** Hands a changed state to persistence (StateKeeper.persist). */
  persist(e: Export): void;
}

export class Reloader {
  constructor(private readonly p: ReloaderParts) {}

  /**
   * Applies a new configuration, completely or not at all. First everything
   * is checked and prepared without touching what serves (prepare); any
   * problem refuses the reload with nothing changed. Then exports that are
   * gone are removed, new ones added, changed ones (or ones whose backing
   * store changed size) replaced with their protocol state carried over, and
   * a changed mac-mask alone is applied in place; the others are not touched.
   */
  async apply(config: ServerConfig): Promise<ReloadSummary> {
    const { exports, links } = this.p;
    refuseSharedWriters(config.exports);
    const plan = this.prepare(config);
    for (const e of plan.removed) await exports.remove(e);
    for (const r of plan.replaced) {
      const state = r.old.snapshotState();
      await exports.remove(r.old);
      exports.add(r.config, state, r.store);
    }
    for (const a of plan.added) exports.add(a.config, undefined, a.store);
    for (const m of plan.masked) if (m.old.reconfigureMask(m.config)) this.p.persist(m.old);
    for (const e of plan.grown) {
      try {
        this.p.resizer.resizeExport(e.key); // announces it
      } catch (err) {
        // Shrunk again since the probe: the export keeps its size, as the size watch would.
        this.p.log.warn({ export: e.key, err: (err as Error).message }, 'cannot grow the export');
      }
    }
    links.openAll(false);
    const announced = new Set<Link>();
    for (const key of [...plan.summary.added, ...plan.summary.changed, ...plan.summary.resized]) {
      for (const name of exports.get(key)!.config.interfaces) announced.add(links.get(name)!);
    }
    for (const link of announced) this.p.engine.announce(link);
    this.p.log.info(plan.summary, 'configuration applied');
    return plan.summary;
  }

  /**
   * Phase one of a reload: opens the store of every added, changed and
   * resized export and checks every interface it names, without changing
   * anything that serves. Throws ReloadRefused, with every store it opened
   * closed again, when something is wrong.
   */
  private prepare(config: ServerConfig): ReloadPlan {
    const wanted = new Map(config.exports.map((c) => [exportKey(c), c]));
    const plan: ReloadPlan = {
      removed: [],
      replaced: [],
      added: [],
      masked: [],
      grown: [],
      summary: { added: [], removed: [], changed: [], resized: [] },
    };
    const opened: BlockStore[] = [];
    const open = (key: string, c: ExportConfig): BlockStore => {
      if (c.interfaces.length === 0) throw new ReloadRefused(`${key} has no interface to serve on`);
      for (const name of c.interfaces) {
        if (!this.p.links.has(name) && this.p.addon.linkInfo(name, this.p.netns) === null)
          throw new ReloadRefused(`${key}: interface ${name} not found; list interfaces with \`ip link\``);
      }
      try {
        const store = this.p.exports.openMappedStore(c);
        opened.push(store);
        return store;
      } catch (err) {
        throw new ReloadRefused(`${key}: ${(err as Error).message}`, { cause: err });
      }
    };
    try {
      for (const [key, e] of this.p.exports.entries()) {
        const c = wanted.get(key);
        if (!c) {
          plan.removed.push(e);
          plan.summary.removed.push(key);
          continue;
        }
        refuseViewsOff(key, e, c);
        const configChanged = JSON.stringify(c) !== JSON.stringify(e.config);
        const onlyMask = configChanged && JSON.stringify({ ...c, macMask: [] }) === JSON.stringify({ ...e.config, macMask: [] });
        if (configChanged) plan.summary.changed.push(key);
        const size = !configChanged || onlyMask ? this.sizeChange(e) : 'same';
        if (size !== 'same') plan.summary.resized.push(key);
        if ((configChanged && !onlyMask) || size === 'shrunk') plan.replaced.push({ old: e, config: c, store: open(key, c) });
        else {
          if (onlyMask) plan.masked.push({ old: e, config: c });
          if (size === 'grown') plan.grown.push(e);
        }
      }
      for (const [key, c] of wanted) {
        if (this.p.exports.has(key)) continue;
        plan.added.push({ config: c, store: open(key, c) });
        plan.summary.added.push(key);
      }
    } catch (err) {
      for (const store of opened) store.close();
      throw err;
    }
    return plan;
  }

  /**
   * How an export's backing file compares with the exported size (a probe;
   * unreadable counts as unchanged): grown is taken in place at apply,
   * smaller replaces the export, since a reload is the operator's word that
   * the end is unused.
   */
  private sizeChange(e: Export): 'same' | 'grown' | 'shrunk' {
    // An export with views keeps its size: each view is a clone of the image at it (Resizer.resizeExport says more).
    if (e.store.kind !== 'file' || e.config.lengthSectors !== undefined || e.views !== null) return 'same';
    try {
      const probe = this.p.exports.openStore({ ...e.config, readOnly: true, direct: false });
      const now = probe.sectors;
      probe.close();
      return now === e.store.sectors ? 'same' : now > e.store.sectors ? 'grown' : 'shrunk';
    } catch {
      return 'same';
    }
  }
}

/**
 * Views are clones of the image, which they never write: a reload that
 * turns them off and serves the image writable would let every initiator
 * write the disk all the views were made from. Read-only is allowed; serving
 * it writable takes removing the export in one reload and adding it in the next.
 */
function refuseViewsOff(key: string, e: Export, c: ExportConfig): void {
  if (e.views === null || c.views !== undefined || c.readOnly) return;
  throw new ReloadRefused(
    `${key} serves per-initiator views of ${e.config.file}; this reload would let every initiator write the image itself. ` +
      `Keep views = per-initiator, or set read-only = yes for ${key} to serve the image as it is; ` +
      `to serve it writable after all, remove ${key} in one reload and add it back in the next`,
  );
}
