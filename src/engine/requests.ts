// The engine's request table: what each request in flight is, indexed by a
// request slot number, in typed arrays allocated once. The intake, storage
// and reply parts of the engine share this one table, so the frame path
// allocates nothing per request.

/** What a request slot holds. */
export const enum RequestKind {
  Read = 1,
  /** A write answered as soon as it completes. */
  Write = 2,
  /** A write of a sync export: answered after the group commit that follows it. */
  SyncWrite = 3,
  Flush = 4,
  /** A finished reply to a state command, waiting until the export's state it shows is saved. */
  AwaitingSave = 5,
}

export class Requests {
  readonly kind: Uint8Array;
  /** Link id and export id of the request. */
  readonly link: Int32Array;
  readonly export: Int32Array;
  /** Its transmit slot on the link: the reply is built there. */
  readonly tx: Int32Array;
  /** The receive slot a write's data is written from (-1: none held). */
  readonly rx: Int32Array;
  /** Bytes of data read or written; for a reply awaiting a save, the reply's length. */
  readonly bytes: Int32Array;
  /** The engine clock when the request arrived (latency). */
  readonly start: Float64Array;
  /** The per-initiator store a request uses (ExportStores.indexOf), -1 without: its writes mark it for the group commit. */
  readonly store: Int32Array;
  /** For a reply awaiting a save: the state version that must be durable before it leaves. */
  readonly version: Float64Array;
  /** The initiator's row in its export's InitiatorTable, and the row's generation then (a row taken meanwhile credits "other"). */
  readonly initiator: Int32Array;
  readonly initiatorGen: Uint32Array;
  private readonly free: Int32Array;
  private freeN = 0;

  constructor(readonly slots: number) {
    this.kind = new Uint8Array(slots);
    this.link = new Int32Array(slots);
    this.export = new Int32Array(slots);
    this.tx = new Int32Array(slots);
    this.rx = new Int32Array(slots);
    this.bytes = new Int32Array(slots);
    this.start = new Float64Array(slots);
    this.store = new Int32Array(slots);
    this.version = new Float64Array(slots);
    this.initiator = new Int32Array(slots);
    this.initiatorGen = new Uint32Array(slots);
    this.free = new Int32Array(slots);
    for (let i = slots - 1; i >= 0; i--) this.free[this.freeN++] = i;
  }

  /** Requests between submission and reply. */
  get inflight(): number {
    return this.slots - this.freeN;
  }

  /** Whether take() would find a slot. */
  get available(): boolean {
    return this.freeN > 0;
  }

  /** How many take() calls would find a slot. */
  get freeCount(): number {
    return this.freeN;
  }

  /**
   * A free request slot for transmit slot `tx` of link `link`, filled with
   * what every kind records, or -1 when all are in use.
   */
  take(kind: RequestKind, link: number, exportId: number, tx: number, bytes: number, now: number): number {
    if (this.freeN === 0) return -1;
    const q = this.free[--this.freeN];
    this.kind[q] = kind;
    this.link[q] = link;
    this.export[q] = exportId;
    this.tx[q] = tx;
    this.rx[q] = -1;
    this.store[q] = -1; // a reply awaiting a save has no store; answer() must not take a former request's
    this.bytes[q] = bytes;
    this.start[q] = now;
    return q;
  }

  release(q: number): void {
    this.free[this.freeN++] = q;
  }
}
