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
  /** Claims and probes the addresses of added exports; returns those served elsewhere (left out, tried again later). */
  admit(added: readonly ExportConfig[]): Promise<Set<string>>;
  /** An export is gone, or has fewer interfaces: its address claims are given back, except on `keep`. */
  released(key: string, keep?: readonly string[]): void;
  /** A changed export names new interfaces: claims its address there; throws ReloadRefused when another process holds it. */
  claimNewInterfaces(c: ExportConfig, before: readonly string[]): void;
  /** Aborted when the server stops: remote stores still opening are given up (closed if they arrive). */
  signal: AbortSignal;
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
    const plan = await this.prepare(config);
    const claimed: Export[] = [];
    let refused: Set<string>;
    try {
      this.refuseWhenStopping();
      for (const r of plan.replaced) {
        this.p.claimNewInterfaces(r.config, r.old.config.interfaces);
        claimed.push(r.old);
      }
      refused = await this.p.admit(plan.added.map((a) => a.config));
      // Nothing that serves is touched before this point: a stop meanwhile refuses the reload whole.
      this.refuseWhenStopping();
    } catch (err) {
      // Another process holds a new interface's claim, an unsafe claim directory: nothing serving was touched yet.
      for (const old of claimed) this.p.released(old.key, old.config.interfaces);
      for (const s of [...plan.added, ...plan.replaced]) void s.store.close();
      throw err;
    }
    if (refused.size > 0) {
      for (const a of plan.added) if (refused.has(exportKey(a.config))) void a.store.close();
      plan.added = plan.added.filter((a) => !refused.has(exportKey(a.config)));
      plan.summary.added = plan.summary.added.filter((k) => !refused.has(k));
      plan.summary.refused = [...refused];
    }
    for (const e of plan.removed) {
      await exports.remove(e);
      this.p.released(e.key);
    }
    for (const r of plan.replaced) {
      const state = r.old.snapshotState();
      await exports.remove(r.old);
      exports.add(r.config, state, r.store);
    }
    for (const a of plan.added) exports.add(a.config, undefined, a.store);
    for (const r of plan.replaced) this.p.released(r.old.key, r.config.interfaces);
    for (const m of plan.masked) if (m.old.reconfigureMask(m.config)) this.p.persist(m.old);
    for (const e of plan.grown) {
      try {
        await this.p.resizer.resizeExport(e.key); // announces it
      } catch (err) {
        // Shrunk again since the probe: the export keeps its size, as the size watch would.
        this.p.log.warn({ export: e.key, err: (err as Error).message }, 'cannot grow the export');
      }
    }
    links.openAll(false);
    for (const w of plan.summary.waiting ?? []) this.p.log.warn(w);
    const announced = new Set<Link>();
    for (const key of [...plan.summary.added, ...plan.summary.changed, ...plan.summary.resized]) {
      for (const name of exports.get(key)!.config.interfaces) announced.add(links.get(name)!);
    }
    for (const link of announced) this.p.engine.announce(link);
    this.p.log.info(plan.summary, 'configuration applied');
    return plan.summary;
  }

  private refuseWhenStopping(): void {
    if (this.p.signal.aborted) throw new ReloadRefused('the daemon is stopping: the reload was not applied');
  }

  /**
   * Phase one of a reload: opens the store of every added, changed and
   * resized export and checks every interface it names, without changing
   * anything that serves. Throws ReloadRefused, with every store it opened
   * closed again, when something is wrong. The stores open together (remote
   * ones off the event loop, a few at a time), so a reload with several slow
   * remote stores waits for about the slowest, not their sum.
   */
  private async prepare(config: ServerConfig): Promise<ReloadPlan> {
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
    // Every problem is named, not just the first, in the order of the exports; an export that has one is left out of the plan.
    const problems: (string | undefined)[] = [];
    const opening: Promise<void>[] = [];
    const open = (key: string, c: ExportConfig, into: (store: BlockStore) => void): void => {
      if (c.interfaces.length === 0) {
        problems.push(`${key} has no interface to serve on`);
        return;
      }
      const at = problems.push(undefined) - 1;
      opening.push(
        this.p.exports.openMappedStore(c, this.p.signal).then(
          (store) => {
            opened.push(store);
            into(store);
          },
          (err: Error) => void (problems[at] = `${key}: ${err.message}`),
        ),
      );
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
        const size = !configChanged || onlyMask ? await this.sizeChange(e) : 'same';
        if (size !== 'same') plan.summary.resized.push(key);
        if ((configChanged && !onlyMask) || size === 'shrunk') {
          open(key, c, (store) => plan.replaced.push({ old: e, config: c, store }));
        } else {
          if (onlyMask) plan.masked.push({ old: e, config: c });
          if (size === 'grown') plan.grown.push(e);
        }
      }
      for (const [key, c] of wanted) {
        if (this.p.exports.has(key)) continue;
        open(key, c, (store) => plan.added.push({ config: c, store }));
        plan.summary.added.push(key);
      }
      await Promise.all(opening);
      const interfaces = this.checkInterfaces(config);
      const all = [...problems.filter((p) => p !== undefined), ...interfaces.problems];
      if (all.length > 0) {
        throw new ReloadRefused(all.length === 1 ? all[0] : `${all.length} problems:\n  ${all.join('\n  ')}`);
      }
      if (interfaces.waits.length > 0) plan.summary.waiting = interfaces.waits;
    } catch (err) {
      // Opens still running (refuseViewsOff threw while they ran) are waited for, so that each store is closed.
      await Promise.all(opening);
      for (const store of opened) void store.close();
      throw err;
    }
    return plan;
  }

  /**
   * Interfaces as start-up sees them: one that does not exist (yet) is waited
   * for and served when it appears, and only a configuration none of whose
   * interfaces exists is refused (a typo in the one interface, which would
   * leave nothing serving). Returns the problems, and a line for each new wait.
   */
  private checkInterfaces(config: ServerConfig): { problems: string[]; waits: string[] } {
    const names = [...new Set(config.exports.flatMap((c) => c.interfaces))];
    const missing = names.filter((n) => this.p.addon.linkInfo(n, this.p.netns) === null);
    if (names.length > 0 && missing.length === names.length) {
      const problems = config.exports.flatMap((c) =>
        c.interfaces.map((n) => `${exportKey(c)}: interface ${n} not found; list interfaces with \`ip link\``),
      );
      return { problems, waits: [] };
    }
    const waits = missing
      .filter((name) => !this.p.links.has(name)) // already waited for, and said so
      .map((name) => {
        const waiting = config.exports.filter((c) => c.interfaces.includes(name)).map((c) => exportKey(c));
        return `interface ${name} not found; ${waiting.join(' ')} ${waiting.length === 1 ? 'waits' : 'wait'} for it (list interfaces with \`ip link\`)`;
      });
    return { problems: [], waits };
  }

  /**
   * How an export's backing file compares with the exported size (a probe;
   * unreadable counts as unchanged): grown is taken in place at apply,
   * smaller replaces the export, since a reload is the operator's word that
   * the end is unused.
   */
  private async sizeChange(e: Export): Promise<'same' | 'grown' | 'shrunk'> {
    // An export with views keeps its size: each view is a clone of the image at it (Resizer.resizeExport says more).
    if (e.store.kind !== 'file' || e.config.lengthSectors !== undefined || e.views !== null) return 'same';
    try {
      const probe = await this.p.exports.openStore({ ...e.config, readOnly: true, direct: false }, false);
      const now = probe.sectors;
      void probe.close(); // a file: closed at once
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
