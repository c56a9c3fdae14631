// The boot trace: every AoE request one diskless machine made while it
// booted, read from a packet capture of the target's interface (a classic
// pcap file), and the JSON file the storm bench keeps in the repository.
//
// A request is its first transmission; a retransmission (the same initiator
// and tag again before the reply) is counted, not listed. Each request carries
// how many of that initiator's requests were outstanding when it went out
// (itself included): one all along for iPXE, up to the driver's window for
// Linux's aoe driver.

const ETHERTYPE_AOE = 0x88a2;
const FLAG_RESPONSE = 0x08;

export type PhaseName = 'ipxe' | 'linux';

/** What a request asked for. */
export type RequestKind = 'read' | 'write' | 'identify' | 'flush' | 'config' | 'other';

export interface TraceRequest {
  phase: PhaseName;
  /** The initiator's MAC. */
  mac: string;
  /** AoE command: 0 ATA, 1 query config, 2 MAC mask, 3 reserve/release. */
  cmd: number;
  kind: RequestKind;
  lba: number;
  sectors: number;
  /** µs since the previous request of the same initiator (0 for the first of a phase). */
  gapUs: number;
  /** Requests of this initiator outstanding when it was sent, itself included. */
  inFlight: number;
  /** µs from its first transmission to its reply (0: no reply seen). */
  replyUs: number;
}

export interface PhaseSummary {
  name: PhaseName;
  requests: number;
  /** Most requests outstanding at once: the window the initiator used. */
  window: number;
  sectorsRead: number;
  seconds: number;
}

export interface BootTrace {
  format: 'aoe-boot-trace/1';
  description: string;
  recorded: string;
  phases: PhaseSummary[];
  retransmissions: number;
  /** Column names of `rows`, in order. */
  columns: ['phase', 'mac', 'cmd', 'kind', 'lba', 'sectors', 'gapUs', 'inFlight', 'replyUs'];
  rows: Array<[PhaseName, string, number, RequestKind, number, number, number, number, number]>;
}

export const TRACE_COLUMNS: BootTrace['columns'] = [
  'phase',
  'mac',
  'cmd',
  'kind',
  'lba',
  'sectors',
  'gapUs',
  'inFlight',
  'replyUs',
];

/** One frame of a capture: when it was seen (µs) and its bytes. */
export interface CapturedFrame {
  us: number;
  data: Buffer;
}

/** The frames of a classic pcap file (Ethernet link type), in µs or ns resolution. */
export function readPcap(file: Buffer): CapturedFrame[] {
  if (file.length < 24) throw new Error('not a pcap file: shorter than its 24-byte header');
  const magicLe = file.readUInt32LE(0);
  const magicBe = file.readUInt32BE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d) {
    le = true;
    nano = magicLe === 0xa1b23c4d;
  } else if (magicBe === 0xa1b2c3d4 || magicBe === 0xa1b23c4d) {
    le = false;
    nano = magicBe === 0xa1b23c4d;
  } else throw new Error('not a classic pcap file (pcapng? capture with -F pcap)');
  const u32 = (at: number): number => (le ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const link = u32(20);
  if (link !== 1) throw new Error(`pcap link type ${link}, not Ethernet (1)`);
  const frames: CapturedFrame[] = [];
  for (let at = 24; at + 16 <= file.length;) {
    const sec = u32(at);
    const frac = u32(at + 4);
    const len = u32(at + 8);
    if (at + 16 + len > file.length) throw new Error(`pcap record at byte ${at} runs past the end of the file`);
    frames.push({ us: sec * 1e6 + (nano ? frac / 1000 : frac), data: file.subarray(at + 16, at + 16 + len) });
    at += 16 + len;
  }
  return frames;
}

const mac = (b: Buffer, at: number): string =>
  Array.from(b.subarray(at, at + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

function ataKind(command: number): RequestKind {
  if ([0x20, 0x24, 0xc8, 0x25].includes(command)) return 'read';
  if ([0x30, 0x34, 0xca, 0x35].includes(command)) return 'write';
  if (command === 0xec) return 'identify';
  if (command === 0xe7 || command === 0xea) return 'flush';
  return 'other';
}

interface Outstanding {
  sent: number;
  request: TraceRequest;
}

/**
 * The requests in `frames` (AoE requests and replies as seen on the target's
 * interface), each given the phase `phaseAt(us)` names for its time. Frames
 * other than AoE, and requests from MACs `initiator` refuses (the target's own
 * duplicate-address probes), are ignored.
 */
export function requestsOf(
  frames: readonly CapturedFrame[],
  phaseAt: (us: number) => PhaseName,
  initiator: (mac: string) => boolean = () => true,
): { requests: TraceRequest[]; retransmissions: number } {
  const requests: TraceRequest[] = [];
  const open = new Map<string, Map<number, Outstanding>>();
  const last = new Map<string, { us: number; phase: PhaseName }>();
  let retransmissions = 0;
  for (const f of frames) {
    const d = f.data;
    if (d.length < 24 || d.readUInt16BE(12) !== ETHERTYPE_AOE) continue;
    const response = (d[14] & FLAG_RESPONSE) !== 0;
    const tag = d.readUInt32BE(20);
    const who = response ? mac(d, 0) : mac(d, 6);
    if (!initiator(who)) continue;
    let mine = open.get(who);
    if (mine === undefined) open.set(who, (mine = new Map<number, Outstanding>()));
    if (response) {
      const answered = mine.get(tag);
      if (answered !== undefined) answered.request.replyUs = Math.round(f.us - answered.sent);
      mine.delete(tag);
      continue;
    }
    if (mine.has(tag)) {
      retransmissions++;
      continue;
    }
    const cmd = d[19];
    const ata = cmd === 0 && d.length >= 36;
    const phase = phaseAt(f.us);
    const before = last.get(who);
    last.set(who, { us: f.us, phase });
    let lba = 0;
    if (ata) for (let i = 5; i >= 0; i--) lba = lba * 256 + d[28 + i];
    const request: TraceRequest = {
      phase,
      mac: who,
      cmd,
      kind: cmd === 1 ? 'config' : ata ? ataKind(d[27]) : 'other',
      lba,
      sectors: ata ? d[26] : 0,
      gapUs: before === undefined || before.phase !== phase ? 0 : Math.round(f.us - before.us),
      inFlight: mine.size + 1,
      replyUs: 0,
    };
    mine.set(tag, { sent: f.us, request });
    requests.push(request);
  }
  return { requests, retransmissions };
}

/** The summary of each phase found in `requests`, in the order they first appear. */
export function summarizePhases(requests: readonly TraceRequest[]): PhaseSummary[] {
  const out: PhaseSummary[] = [];
  for (const r of requests) {
    let p = out.find((x) => x.name === r.phase);
    if (p === undefined) out.push((p = { name: r.phase, requests: 0, window: 0, sectorsRead: 0, seconds: 0 }));
    p.requests++;
    p.window = Math.max(p.window, r.inFlight);
    if (r.kind === 'read') p.sectorsRead += r.sectors;
    p.seconds += r.gapUs / 1e6;
  }
  for (const p of out) p.seconds = Math.round(p.seconds * 1000) / 1000;
  return out;
}

export function makeTrace(
  requests: readonly TraceRequest[],
  retransmissions: number,
  description: string,
  recorded: string,
): BootTrace {
  return {
    format: 'aoe-boot-trace/1',
    description,
    recorded,
    phases: summarizePhases(requests),
    retransmissions,
    columns: TRACE_COLUMNS,
    rows: requests.map((r) => [r.phase, r.mac, r.cmd, r.kind, r.lba, r.sectors, r.gapUs, r.inFlight, r.replyUs]),
  };
}

const KINDS: readonly RequestKind[] = ['read', 'write', 'identify', 'flush', 'config', 'other'];
const PHASES: readonly PhaseName[] = ['ipxe', 'linux'];

const wholeNumber = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

/** Reads a trace file's text; throws with the row and column that are wrong. */
export function parseTrace(text: string, source = 'the trace'): TraceRequest[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const t = doc as Partial<BootTrace> | null;
  if (t === null || typeof t !== 'object' || t.format !== 'aoe-boot-trace/1')
    throw new Error(`${source} is not an aoe-boot-trace/1 file (its "format" says ${JSON.stringify(t?.format)})`);
  if (JSON.stringify(t.columns) !== JSON.stringify(TRACE_COLUMNS))
    throw new Error(`${source}: "columns" must be ${JSON.stringify(TRACE_COLUMNS)}`);
  if (!Array.isArray(t.rows) || t.rows.length === 0) throw new Error(`${source} has no requests ("rows" is empty or missing)`);
  return t.rows.map((row: unknown, i) => {
    const where = `${source}, row ${i + 1}`;
    if (!Array.isArray(row) || row.length !== TRACE_COLUMNS.length)
      throw new Error(`${where}: wants ${TRACE_COLUMNS.length} values (${TRACE_COLUMNS.join(', ')})`);
    const [phase, m, cmd, kind, lba, sectors, gapUs, inFlight, replyUs] = row as unknown[];
    if (!PHASES.includes(phase as PhaseName)) throw new Error(`${where}: phase ${JSON.stringify(phase)} is not ipxe or linux`);
    if (typeof m !== 'string' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m))
      throw new Error(`${where}: ${JSON.stringify(m)} is not a MAC`);
    if (!wholeNumber(cmd, 255)) throw new Error(`${where}: cmd ${JSON.stringify(cmd)} is not an AoE command number`);
    if (!KINDS.includes(kind as RequestKind))
      throw new Error(`${where}: kind ${JSON.stringify(kind)} is not one of ${KINDS.join(', ')}`);
    if (!wholeNumber(lba, 2 ** 48 - 1)) throw new Error(`${where}: lba ${JSON.stringify(lba)} is not a 48-bit sector number`);
    if (!wholeNumber(sectors, 255)) throw new Error(`${where}: sectors ${JSON.stringify(sectors)} is not 0 to 255`);
    if (!wholeNumber(gapUs, 3600e6)) throw new Error(`${where}: gapUs ${JSON.stringify(gapUs)} is not 0 µs to an hour`);
    if (!wholeNumber(inFlight, 65535) || inFlight < 1)
      throw new Error(`${where}: inFlight ${JSON.stringify(inFlight)} is not 1 or more`);
    if (!wholeNumber(replyUs, 3600e6)) throw new Error(`${where}: replyUs ${JSON.stringify(replyUs)} is not 0 µs to an hour`);
    return { phase, mac: m, cmd, kind, lba, sectors, gapUs, inFlight, replyUs } as TraceRequest;
  });
}
