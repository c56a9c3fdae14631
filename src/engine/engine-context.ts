// What the parts of the engine share besides the request table: the links
// and exports it serves, its clock, and what the end of a batch must do.
// One object per engine, made with it.

import type { Export } from './export';
import type { Link } from './link';

export interface EngineEvents<E extends Export = Export> {
  /**
   * An export's config string, mask or reserve list changed (once per export
   * and batch). With persistence the server saves it and answers with
   * stateSaved() or stateLost().
   */
  stateChanged(e: E): void;
  /** A request finished and its link or export may now be retired. */
  drained(): void;
  /** A remote store refused an operation in a way that may mean this gateway was fenced (-ESHUTDOWN, -EROFS). */
  storeRefused?(e: E, result: number): void;
}

export class EngineContext<E extends Export = Export> {
  /** By link id. */
  readonly links: Link[] = [];
  /** By export id (the low bits of a group commit's io tag); null where one was removed. */
  readonly exports: (E | null)[] = [];
  /**
   * performance.now() as of the current wake-up, or of the last reap that
   * brought completions: request start and reply times are read from here,
   * so the clock is read once per batch rather than twice per request.
   */
  clock = 0;
  /** Some export's state changed in this batch: stateChanged() is due at its end. */
  stateDue = false;
  /** An event handler ran, or something waits for the event loop (a view to make, a snapshot to go on): the frame loop must give libuv its turn. */
  eventsCalled = false;

  constructor(
    readonly events: EngineEvents<E>,
    /** State changes are saved to disk: their replies wait for the save (false: state lives in memory only). */
    readonly persistent: boolean,
  ) {}
}
