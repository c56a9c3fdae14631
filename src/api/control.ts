// What the serving core answers through the control socket (`vblade ctl`,
// the metrics endpoint): plain data types, shared by the server that builds
// them and the command lines that print them. Types only, importing nothing
// of ours, so that `ctl` never loads the serving core to read a reply.

/** How the serving loop waits for work (the engine's spin policy and frame waiter). */
export interface FrameLoopStats {
  /** Busy polls after a batch, and those that found the next frame or completion before their window ran out. */
  spins: number;
  hits: number;
  /** Times the adaptive policy paused polling because too few polls found work. */
  backoffs: number;
  /** Polling now (false while paused, or with spin-us 0). */
  polling: boolean;
  /** Blocking waits in the kernel, those that ended with work, and returns to libuv. */
  sleeps: number;
  wakeups: number;
  exits: number;
  /** The loop blocks in the kernel (false: it returns to libuv after each batch). */
  blocking: boolean;
  spinMicros: number;
  spinPolicy: string;
}

/** `vblade ctl stats`: every export and interface with its counters. */
export interface ServerStats {
  exports: {
    key: string;
    file: string;
    sectors: number;
    interfaces: string[];
    /** Each interface of the export and what it does for it now. */
    paths: { interface: string; state: string }[];
    readOnly: boolean;
    inflight: number;
    /** Why the export serves nothing (its saved state is unreadable), and what to do. */
    held?: string;
    /** The state in force is on disk. */
    stateDurable: boolean;
    /** Saves of the state that failed since the start, and the last failure. */
    failedSaves: number;
    lastSaveError?: string;
    config: string;
    macMask: string[];
    reserve: string[];
    counters: Record<string, number>;
    /**
     * With views = per-initiator: how many (and the export's max-views), the
     * bytes they have of their own, new initiators refused a view (in all,
     * and by reason: max-views, open-files, min-free, views-dir, failed); sharesImage:
     * reads of blocks a view did not write go to the image (one page cache
     * for all views).
     */
    views?: {
      count: number;
      maxViews: number;
      ownBytes: number;
      failures: number;
      refused: Record<string, number>;
      sharesImage: boolean;
      /** views = per-boot: views discarded at a new boot of their machine, in this run. */
      bootDiscards: number;
      lastError?: string;
    };
    /**
     * With views-dir: how many snapshots, and the bytes they hold that
     * nothing else shares; `unknown` (count and bytes then mean nothing):
     * why they could not be measured.
     */
    snapshots?: { count: number; ownBytes: number; unknown?: string };
    /**
     * Requests, bytes and errors by initiator MAC: at most `rows` MACs (initiator-rows), busiest first,
     * then "other" (MACs whose row was taken by a new one); evictions: rows taken so.
     */
    initiators?: { rows: number; evictions: number; list: InitiatorFigures[] };
    latencyUsLog2: number[];
    /** Sum of the latencies counted in latencyUsLog2, microseconds. */
    latencySumUs: number;
  }[];
  interfaces: {
    name: string;
    open: boolean;
    state: string;
    up: boolean;
    mtu: number;
    sectorsPerFrame: number;
    counters: Record<string, number>;
  }[];
  /** How the serving loop waits for work. */
  frameLoop: FrameLoopStats;
}

/** One initiator's figures on one export; mac is "other" for initiators whose row a new MAC took. */
export interface InitiatorFigures {
  mac: string;
  requests: number;
  readBytes: number;
  writeBytes: number;
  errors: number;
}

/** One view as `vblade ctl views` lists it. */
export interface ViewListing {
  mac: string;
  file: string;
  /** Space the view does not share with the image or a snapshot (its unshared extents), not bytes written. */
  ownBytes: number;
  created: string;
  /** ISO date, or null when not seen since it was made. */
  lastSeen: string | null;
  /** Why the view is refused (its file is not what it must be): its initiator gets error replies until view-reset or view-drop. */
  refused?: string;
  /** Made from an image replaced since: it serves the old image's disk with its machine's writes; why and what to do. */
  stale?: string;
}

/** One snapshot as `vblade ctl snapshots` lists it. */
export interface SnapshotInfo {
  name: string;
  file: string;
  /** ISO date. */
  created: string;
  /** 'export', or the MAC of the view it was taken of. */
  of: string;
  /** Bytes it holds that nothing else shares (blocks the export or view has written since). */
  ownBytes: number;
}

/** What `snapshot` did. */
export interface SnapshotTaken {
  key: string;
  name: string;
  file: string;
  /** How long new requests of the export were held off, milliseconds. */
  pausedMs: number;
  of: string;
}

/** What a resize found: the exported size before and after, in sectors. */
export interface ResizeResult {
  key: string;
  file: string;
  oldSectors: number;
  newSectors: number;
  /** Why the size did not change, when it did not. */
  unchanged?: string;
  /** A grown export was announced on at least one interface (none is announced while its links are down). */
  announced?: boolean;
}

/** What a reload did, by export key. */
export interface ReloadSummary {
  added: string[];
  removed: string[];
  /** Settings changed (a changed mac-mask alone is applied in place). */
  changed: string[];
  /** The backing store changed size. */
  resized: string[];
  /** An interface an export names does not exist (yet): it is served there when it appears. */
  waiting?: string[];
  /** Added, but not served: another process or target serves the address (`vblade ctl list` says which; tried again later). */
  refused?: string[];
}
