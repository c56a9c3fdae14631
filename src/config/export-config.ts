// What one export is, as the command line, the config file and reloads
// describe it. The server compares these to decide what a reload changes.

export interface ExportConfig {
  /** 0..65534 (65535 is the broadcast address). */
  shelf: number;
  /** 0..254 (255 is the broadcast address). */
  slot: number;
  /** Backing file or block device; ignored when `nullStore` is set. */
  file: string;
  /** Interfaces to serve on; an export on several interfaces is several paths to one disk. */
  interfaces: string[];
  readOnly: boolean;
  /** O_DIRECT on the backing file. */
  direct: boolean;
  /** No reply to a write before its data is durable (group-committed fdatasync). */
  sync: boolean;
  /** Sectors skipped at the start of the backing store. */
  offsetSectors: number;
  /** Sectors exported; undefined = to the end of the backing store. */
  lengthSectors?: number;
  /** Initial MAC mask list (lower-case aa:bb:cc:dd:ee:ff); persisted state wins over it. */
  macMask: string[];
  /** Buffer Count advertised in Query Config replies (outstanding requests per initiator). */
  bufferCount: number;
  /** Serve zeros and drop writes without touching storage (network tests, the benchmark ceiling). */
  nullStore: boolean;
  /** Size in sectors of a null store. */
  nullSectors?: number;
}

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
}

/** Process-wide knobs of the serving core ([daemon] keys spin-us and map-in-memory). */
export interface ServingTunables {
  /** Busy-poll window after each batch, microseconds; 0 sleeps at once. */
  spinMicros: number;
  /** Map backing files that live in memory (tmpfs, ramfs), so a request is a memcpy. */
  mapInMemory: boolean;
}

export const DEFAULT_TUNABLES: Readonly<ServingTunables> = { spinMicros: 20, mapInMemory: true };

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

/** What the state directory holds for one export when it starts. */
export type SavedState =
  | { status: 'absent' }
  | { status: 'ok'; state: ExportState }
  /** The file could not be read; it is left where it is, so the export stays held across restarts. */
  | { status: 'unreadable'; file: string; reason: string };
