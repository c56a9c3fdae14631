// What one export is, as the command line, the config file and reloads
// describe it. The server compares these to decide what a reload changes.

export interface ExportConfig {
  /** 0..65534 (65535 is the broadcast address). */
  shelf: number;
  /** 0..254 (255 is the broadcast address). */
  slot: number;
  /** Backing file or block device, or a remote store's URI (nbd://…: src/remote/); ignored when `nullStore` is set. */
  file: string;
  /** Interfaces to serve on; an export on several interfaces is several paths to one disk. */
  interfaces: string[];
  readOnly: boolean;
  /** O_DIRECT on the backing file. */
  direct: boolean;
  /** No reply to a write before its data is durable (group-committed fdatasync). */
  sync: boolean;
  /** 'unmap': a write of all-zero data punches a hole instead (detect-zeroes); undefined = every write is written. */
  detectZeroes?: 'unmap';
  /** Initiator MACs counted each in a row of their own (initiator-rows); undefined = DEFAULT_INITIATOR_ROWS. */
  initiatorRows?: number;
  /** Sectors skipped at the start of the backing store. */
  offsetSectors: number;
  /** Sectors exported; undefined = to the end of the backing store. */
  lengthSectors?: number;
  /** Initial MAC mask list (lower-case aa:bb:cc:dd:ee:ff); persisted state wins over it. */
  macMask: string[];
  /** Take Mac Mask edits and Reserve sets sent to the broadcast shelf or slot (by default only to this exact address). */
  broadcastEdits: boolean;
  /** Buffer Count advertised in Query Config replies (outstanding requests per initiator). */
  bufferCount: number;
  /** Serve zeros and drop writes without touching storage (network tests, the benchmark ceiling). */
  nullStore: boolean;
  /** Size in sectors of a null store. */
  nullSectors?: number;
  /**
   * Another writer of this disk is intended (a cluster file system such as
   * OCFS2 or GFS2): skip the checks that refuse a second export of the same
   * file and a second target answering this shelf.slot.
   */
  shared?: boolean;
  /**
   * 'per-initiator': every initiator MAC gets its own copy-on-write clone of `file` (src/views/views.ts);
   * 'per-boot': the same, and a machine's view is a fresh clone again when it boots again (docs/views.md says
   * what marks a boot); undefined = none.
   */
  views?: 'per-initiator' | 'per-boot';
  /** With views = per-boot: seconds a machine must have sent no ATA request before an IDENTIFY counts as a new boot; undefined = DEFAULT_PER_BOOT_GAP. */
  perBootGap?: number;
  /** Where views and snapshots live (VIEWSDIR/eS.L/...); must be on `file`'s reflink file system. */
  viewsDir?: string;
  /** Views the export may have (max-views); undefined = DEFAULT_MAX_VIEWS. */
  maxViews?: number;
  /** Percent of the views file system kept free; below it no new view is made (views-min-free); undefined = DEFAULT_VIEWS_MIN_FREE. */
  viewsMinFree?: number;
  /** A remote nbd store: connections wanted (nbd-connections); undefined = DEFAULT_NBD_CONNECTIONS. */
  nbdConnections?: number;
  /** A remote store: seconds a request may wait for the server before it fails (remote-timeout); undefined = DEFAULT_REMOTE_TIMEOUT. */
  remoteTimeout?: number;
  /** An rbd store: the Ceph configuration (ceph-conf); undefined = DEFAULT_CEPH_CONF. */
  cephConf?: string;
  /** An rbd store: the cephx id without "client." (ceph-id); undefined = DEFAULT_CEPH_ID. */
  cephId?: string;
}

/**
 * How an export is written, as --check, the start-up log and `ctl list`
 * say it: an image with views is never written (each machine writes its own
 * clone), so "read-write" would mislead.
 */
/** Seconds of silence before an IDENTIFY that marks a new boot (per-boot-gap). */
export const DEFAULT_PER_BOOT_GAP = 30;

export function describeAccess(c: ExportConfig): string {
  if (c.views === undefined) return c.readOnly ? 'read-only' : 'read-write';
  const dir = `${c.viewsDir ?? '?'}/${exportKey(c)}`;
  return c.readOnly
    ? `read-only, views = ${c.views} in ${dir} (no new view is made)`
    : `image read-only, views = ${c.views} (a copy-on-write view per machine) in ${dir}`;
}

/** detect-zeroes = unmap on an export that is never written: it can do nothing (undefined otherwise). */
export function idleDetectZeroesWarning(c: ExportConfig): string | undefined {
  if (c.detectZeroes !== 'unmap' || !c.readOnly) return undefined;
  return `${exportKey(c)} has detect-zeroes = unmap and is read-only: nothing is written, so nothing is made a hole; remove one of them`;
}

/**
 * Why a views export without a MAC mask is a risk, and what to set: a view
 * is made for any source MAC the export admits, and AoE trusts the source
 * MAC of a frame. undefined when the export has no views or has a mask.
 */
export function viewsWithoutMaskWarning(c: ExportConfig): string | undefined {
  if (c.views === undefined || c.macMask.length > 0) return undefined;
  return `${exportKey(c)} has views = ${c.views} and no mac-mask: any machine on ${c.interfaces.join(', ')} can make views (a file each, as large as the image can grow) by sending frames from made-up MACs, up to max-views = ${c.maxViews ?? DEFAULT_MAX_VIEWS}; set mac-mask = the MACs of the lab's machines`;
}

/** Initiators counted one by one per export (initiator-rows); more share the row "other". */
export const DEFAULT_INITIATOR_ROWS = 256;
export const MAX_INITIATOR_ROWS = 4096;

/** Views an export may have unless max-views says otherwise: a lab's machines, not every MAC a segment can forge. */
export const DEFAULT_MAX_VIEWS = 256;
export const MAX_MAX_VIEWS = 1_000_000;
/** Percent of the views file system kept free for the views that exist. */
export const DEFAULT_VIEWS_MIN_FREE = 5;

export interface ServerConfig {
  exports: ExportConfig[];
  /** Directory for persisted config strings, mask and reserve lists; undefined = keep state in memory only. */
  stateDir?: string;
  /**
   * How the serving process runs; fixed when it starts (a reload does not
   * change them). Carried here only to reach the worker, which hands them to
   * the server as ServerOptions; the server itself does not look here.
   */
  tunables?: ServingTunables;
  /**
   * The user the serving process switches to once its files and sockets are
   * open, keeping only CAP_NET_RAW and CAP_LEASE (for views)
   * ([daemon] user, --user); fixed when it
   * starts, like the tunables. undefined = stay as started.
   */
  user?: string;
}

export const SPIN_POLICIES = ['adaptive', 'always'] as const;
export type SpinPolicyName = (typeof SPIN_POLICIES)[number];

/** Process-wide knobs of the serving core; the [daemon] keys that set them are TUNABLE_KEYS in keys.ts. */
export interface ServingTunables {
  /** Busy-poll window after each batch, microseconds; 0 sleeps at once. */
  spinMicros: number;
  /** adaptive: poll only while polls find work (spin-policy.ts); always: after every batch. */
  spinPolicy: SpinPolicyName;
  /** Map backing files that live in memory (tmpfs, ramfs), so a request is a memcpy. */
  mapInMemory: boolean;
  /** At start-up, how long to wait for another target answering one of our addresses; 0 = do not look. */
  duplicateProbeMs: number;
  /** How often an export left out because its address was served elsewhere is tried again, seconds. */
  duplicateRetrySeconds: number;
  /** Seconds between unsolicited announcements of every export on every interface that is up; 0: only at start, link up and export add. */
  announceSeconds: number;
}

/**
 * The tunables' defaults, written once: the key table (keys.ts) and the
 * server take theirs from here.
 *
 * announceSeconds 10: an initiator that loaded its driver before the target (or the path)
 * was up finds the export within 10 s instead of at its own next discovery
 * round (Linux's aoe driver asks every 60 s). The cost is one minimum-size
 * frame per export, interface (and MAC mask entry) every 10 s.
 */
export const DEFAULT_TUNABLES: Readonly<ServingTunables> = {
  spinMicros: 20,
  spinPolicy: 'adaptive',
  mapInMemory: true,
  duplicateProbeMs: 300,
  duplicateRetrySeconds: 30,
  announceSeconds: 10,
};

/** Longer than any reply takes on a LAN; a longer wait only delays the start. */
export const MAX_DUPLICATE_PROBE_MS = 10000;

/** An hour: a refused export waits no longer than that for its address to be free. */
export const MAX_DUPLICATE_RETRY_SECONDS = 3600;

/** An hour: a longer interval would not shorten anybody's wait. */
export const MAX_ANNOUNCE_SECONDS = 3600;

/** Longer busy polling only burns a core; the wake-up it saves costs tens of microseconds. */
export const MAX_SPIN_MICROS = 1000;

/** The key that identifies an export across reloads. */
export function exportKey(e: { shelf: number; slot: number }): string {
  return `e${e.shelf}.${e.slot}`;
}

/** The persisted part of an export's protocol state. */
export interface ExportState {
  config: string;
  macMask: string[];
  reserve: string[];
  /**
   * The config's mac-mask when this state was last reconciled with the
   * config; undefined when the config set none. A config whose mask differs
   * from this has been changed by the operator, and its mask wins.
   */
  configMask?: string[];
}

/** "262144 sectors (128 MiB)": sizes in messages. */
export function describeSize(sectors: number): string {
  const bytes = sectors * 512;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 'bytes';
  for (const unit of units) {
    if (v < 1024) break;
    v /= 1024;
    u = unit;
  }
  return `${sectors} sectors (${u === 'bytes' ? v : Number(v.toFixed(1))} ${u})`;
}

/** What the state directory holds for one export when it starts. */
export type SavedState =
  | { status: 'absent' }
  | { status: 'ok'; state: ExportState }
  /** The file could not be read; it is left where it is, so the export stays held across restarts. */
  | { status: 'unreadable'; file: string; reason: string };
