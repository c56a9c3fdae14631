// One export: an AoE address (shelf.slot) backed by a store, with its
// protocol state, counters, its group commit and the resolver that says
// which store each request goes to.

import * as os from 'node:os';
import { buildIdentify, MacList, SECTOR_SIZE, TargetState } from '../aoe';
import type { BlockStore } from '../backend/block-store';
import { ExportCounter, LATENCY_BUCKETS } from './counters';
import { GroupCommit } from './group-commit';
import { InitiatorTable } from './initiators';
import { SingleStore, type ExportStores } from './export-stores';
import { DEFAULT_INITIATOR_ROWS, exportKey, type ExportConfig, type ExportState } from '../config/export-config';
import { reconcileState } from '../config/saved-state';

export const PRODUCT_MODEL = 'aoe-target vblade';
export const PRODUCT_FIRMWARE = '0.1.0';

/** vblade's serial number: "shelf.slot:hostname", at most 20 characters. */
export function serialFor(shelf: number, slot: number): string {
  return `${shelf}.${slot}:${os.hostname()}`.slice(0, 20);
}

/**
 * `Views` is the type of the per-initiator views the server keeps on the
 * export; the engine never looks at them, only at `stores`.
 */
export class Export<Views = unknown> {
  readonly key: string;
  readonly state: TargetState;
  readonly counters = new Float64Array(ExportCounter.Count);
  readonly latency = new Float64Array(LATENCY_BUCKETS);
  /** Sum of the latencies counted in `latency`, microseconds (a Prometheus histogram's _sum). */
  latencySumUs = 0;
  /** Requests of this export between submission and reply. */
  inflight = 0;
  /** Set when the export is being removed: no new requests are accepted. */
  closing = false;
  /**
   * Why the export does not serve (its saved state could not be read; see
   * Server.stats), or null. A held export answers nothing until an operator
   * restores or resets its state.
   */
  held: string | null = null;
  /** State version last handed to the persistence hook (a save of it may still run). */
  savedVersion = 0;
  /** State version known to be on disk (equal to `state.version` when state lives in memory only). */
  durableVersion = 0;
  /** The state as last saved: what a failed save goes back to. */
  durableState!: ExportState;
  /** Its mask and reserve lists, for the access check while a change is being saved (admittedBySaved). */
  private readonly savedMask = new MacList();
  private readonly savedReserve = new MacList();
  /** Request slots of replies to state commands awaiting a save: they leave once the state they show is durable (replies.ts). */
  readonly awaitingSave: number[] = [];
  /**
   * Where this export's state is saved when not through the server's hook
   * (an rbd image's metadata, so that it follows a takeover); null: the hook.
   * With one, state changes are answered only once saved.
   */
  ownStateSave: ((state: ExportState) => Promise<void>) | null = null;
  /** A save of this export is running (saves of one export never overlap). */
  saving = false;
  /** Saves that failed since start, and the last failure's message (stats, metrics). */
  failedSaves = 0;
  lastSaveError: string | null = null;

  /** Per-initiator views (views = per-initiator): each request's store is its initiator's view; null without. */
  views: Views | null = null;
  /** Where each request goes: the one store, or (serveViews) the initiator's view. */
  stores: ExportStores;
  /** performance.now() of its last read, write or flush (revert refuses while initiators are active). */
  lastIoAt = 0;
  /** New ATA requests are dropped (initiators retransmit) while a snapshot or view reset waits for those in flight. */
  paused = false;

  /** Writes (in sync mode) and flushes waiting for, or answered by, an fdatasync. */
  readonly groupCommit: GroupCommit;
  /** Requests, bytes and errors by initiator MAC, in a table of initiator-rows rows. */
  readonly initiators: InitiatorTable;

  constructor(
    /** Index in the engine's export table; names the export in io tags. */
    readonly id: number,
    /** Replaced in place by a reload that changes only the mask (reconfigureMask). */
    public config: ExportConfig,
    readonly store: BlockStore,
    requestSlots: number,
    initial?: ExportState,
  ) {
    this.key = exportKey(config);
    const identify = this.identifyPage(store.sectors);
    this.state = new TargetState(config.shelf, config.slot, store.sectors, config.readOnly, config.bufferCount, identify);
    this.state.mask.setStrings(config.macMask);
    this.state.broadcastEdits = config.broadcastEdits;
    if (initial) this.restore(initial);
    this.savedVersion = this.durableVersion = this.state.version;
    this.setDurable(this.snapshotState());
    this.groupCommit = new GroupCommit(requestSlots);
    this.initiators = new InitiatorTable(config.initiatorRows ?? DEFAULT_INITIATOR_ROWS);
    this.stores = new SingleStore(store);
  }

  /** Serves each initiator from its own view from now on; `stores` resolves requests to them. */
  serveViews(views: Views, stores: ExportStores): void {
    this.views = views;
    this.stores = stores;
  }

  private identifyPage(sectors: number): Uint8Array {
    return buildIdentify({
      sectors,
      serial: serialFor(this.config.shelf, this.config.slot),
      firmware: PRODUCT_FIRMWARE,
      model: PRODUCT_MODEL,
      writeCache: !this.config.sync,
    });
  }

  /**
   * Serves `sectors` from now on: range checks, the IDENTIFY page (rewritten
   * in place) and a mapped store's mapping. Requests in flight are not
   * touched; the export, its state and its counters stay.
   */
  grow(sectors: number): void {
    this.store.sectors = sectors;
    this.store.remap?.(this.store.byteOffset + sectors * SECTOR_SIZE);
    this.state.sectors = sectors;
    this.state.identify.set(this.identifyPage(sectors));
  }

  /** Whether the state in force is on disk. */
  get durable(): boolean {
    return this.durableVersion === this.state.version;
  }

  /** Records `s` as the state on disk. */
  setDurable(s: ExportState): void {
    this.durableState = s;
    this.savedMask.setStrings(s.macMask);
    this.savedReserve.setStrings(s.reserve);
  }

  /**
   * Whether the saved state lets the initiator at buf[off..off+6) issue ATA
   * commands. While a change is being saved, ATA requests need both the
   * saved and the new state to admit them: a release or a mask addition
   * takes effect once it is on disk, a reservation at once.
   */
  admittedBySaved(buf: Uint8Array, off: number): boolean {
    return (
      (this.savedMask.count === 0 || this.savedMask.has(buf, off)) &&
      (this.savedReserve.count === 0 || this.savedReserve.has(buf, off))
    );
  }

  restore(s: ExportState): void {
    this.state.setConfigString(s.config);
    this.state.mask.setStrings(s.macMask);
    this.state.reserve.setStrings(s.reserve);
  }

  /** The persisted state; it records the config's mask, which it has been reconciled with. */
  snapshotState(): ExportState {
    const s: ExportState = {
      config: this.state.configString(),
      macMask: this.state.mask.toStrings(),
      reserve: this.state.reserve.toStrings(),
    };
    if (this.config.macMask.length) s.configMask = this.config.macMask.slice();
    return s;
  }

  /**
   * Takes a config that differs from the current one in its mac-mask only
   * (a reload): the config's new mask is in force from now on. True when the
   * mask in force changed (the state must be persisted).
   */
  reconfigureMask(c: ExportConfig): boolean {
    const { state, changed } = reconcileState(this.snapshotState(), c.macMask);
    this.config = c;
    if (!changed) return false;
    this.state.mask.setStrings(state.macMask);
    this.state.version++;
    return true;
  }
}
