// The protocol state of every export (config string, mask and reserve
// lists) on its way to disk: changes made by initiators (through the engine)
// and by the control socket are handed to the persistence hook one save at a
// time per export; a failed save goes back to the state last saved. Also the
// end of a hold, when an operator repaired or reset an unreadable state.

import type { Logger } from 'pino';
import type { ExportState, SavedState } from '../config/export-config';
import type { Engine } from '../engine/engine';
import type { ServedExport as Export } from './served-export';

export interface ServerHooks {
  /**
   * Makes an export's config string, mask and reserve lists durable;
   * resolves once they are on disk. When present, a request that changes the
   * state is answered only after this resolved, and with AoE error 3 (the
   * state going back to the last one saved) when it rejects.
   */
  saveState?(key: string, state: ExportState): Promise<void>;
  /** Told of every change when state lives in memory only (no saveState). */
  onStateChange?(key: string, state: ExportState): void;
  /** Saved state when an export starts; an unreadable one holds the export (it serves nothing). */
  initialState?(key: string): SavedState;
}

/** Someone waiting (the control socket) for an export's state up to `version` to be on disk. */
interface StateWaiter {
  version: number;
  resolve(): void;
  reject(e: Error): void;
}

export interface StateKeeperParts {
  engine: Engine<Export>;
  hooks: ServerHooks;
  log: Logger;
  /** The export served under `key`, if any. */
  exportOf(key: string): Export | undefined;
  /** A held export serves again: it is no longer held, and it is announced. */
  endHold(e: Export): void;
}

export class StateKeeper {
  private readonly stateWaiters = new Map<Export, StateWaiter[]>();

  constructor(private readonly p: StateKeeperParts) {}

  /**
   * Hands an export's changed state to the persistence hook. Saves of one
   * export never overlap: a change made while one runs is saved when it ends.
   */
  persist(e: Export): void {
    const hooks = this.p.hooks;
    if (!hooks.saveState && e.ownStateSave === null) {
      e.savedVersion = e.durableVersion = e.state.version;
      e.setDurable(e.snapshotState());
      hooks.onStateChange?.(e.key, e.durableState);
      this.settleWaiters(e, null);
      return;
    }
    if (e.saving || e.savedVersion === e.state.version) return;
    const version = e.state.version;
    const state = e.snapshotState();
    e.saving = true;
    e.savedVersion = version;
    (e.ownStateSave ?? ((s: ExportState) => hooks.saveState!(e.key, s)))(state).then(
      () => {
        e.saving = false;
        e.durableVersion = version;
        e.setDurable(state);
        this.p.engine.stateSaved(e, version);
        this.settleWaiters(e, null);
        if (e.state.version !== e.savedVersion) this.persist(e);
      },
      (err: Error) => this.saveFailed(e, err),
    );
  }

  /** Back to what is on disk: nothing may act on, or show, a state that a restart would lose. */
  private saveFailed(e: Export, err: Error): void {
    e.saving = false;
    e.failedSaves++;
    e.lastSaveError = err.message;
    const held = e.awaitingSave.length;
    e.restore(e.durableState);
    e.state.version++;
    e.savedVersion = e.durableVersion = e.state.version;
    this.p.engine.stateLost(e);
    this.settleWaiters(e, err);
    this.p.log.error(
      { export: e.key, err: err.message, failedSaves: e.failedSaves, refused: held },
      `state change of ${e.key} not saved (${err.message}); went back to the saved state and refused the ${held} request(s) waiting for it with AoE error 3 (device unavailable)`,
    );
  }

  /** Resolves the waiters of versions now durable, or rejects them all when a save failed. */
  private settleWaiters(e: Export, err: Error | null): void {
    const list = this.stateWaiters.get(e);
    if (!list) return;
    const keep = list.filter((w) => {
      if (err) w.reject(err);
      else if (w.version <= e.durableVersion) w.resolve();
      else return true;
      return false;
    });
    if (keep.length) this.stateWaiters.set(e, keep);
    else this.stateWaiters.delete(e);
  }

  /** Applies a state change made outside the frame path and resolves once it is on disk. */
  private commitState(e: Export, next: ExportState): Promise<void> {
    if (next.macMask.length > e.state.mask.capacity || next.reserve.length > e.state.reserve.capacity) {
      return Promise.reject(new Error(`a list holds at most ${e.state.mask.capacity} MAC addresses`));
    }
    e.restore(next);
    e.state.version++;
    const version = e.state.version;
    const done = new Promise<void>((resolve, reject) => {
      const list = this.stateWaiters.get(e) ?? [];
      list.push({ version, resolve, reject });
      this.stateWaiters.set(e, list);
    });
    this.p.engine.stateChangedOutside(e);
    return done;
  }

  /**
   * Changes an export's state from the control socket (mask and reserve
   * commands); resolves with the new state once it is on disk, rejects with
   * the reason when it could not be saved (the old state stays in force).
   */
  async changeState(key: string, change: (s: ExportState) => ExportState): Promise<ExportState> {
    const e = this.served(key);
    if (e.held !== null) throw new Error(`${key} is held: ${e.held}`);
    await this.commitState(e, change(e.snapshotState()));
    return e.snapshotState();
  }

  /**
   * Ends the hold of an export whose saved state was unreadable: saves
   * `state` (the repaired file's, or an empty one), then serves it and
   * announces it. Rejects, still held, when the save fails.
   */
  async release(key: string, state: ExportState): Promise<ExportState> {
    const e = this.served(key);
    if (e.held === null) throw new Error(`${key} is not held; it serves its saved state already`);
    if (e.ownStateSave !== null)
      throw new Error(`${key} is not served because ${e.held}; its state lives in its rbd image and comes with the lock`);
    await this.commitState(e, state);
    this.p.endHold(e);
    return e.snapshotState();
  }

  private served(key: string): Export {
    const e = this.p.exportOf(key);
    if (!e) throw new Error(`${key} is not being served right now`);
    return e;
  }
}
