// What the guest of `npm run bench:initiator` reports, turned into numbers:
// its `AOETEST bench ...` lines (lab/guest-scripts/bench.sh) carry either GNU
// dd's byte count and seconds or one fio line in terse format version 3.

/** The workloads the guest knows, in table order. */
export const GUEST_WORKLOADS = ['dd-write', 'dd-read', 'seq-write', 'seq-read', 'rand-read', 'rand-write'] as const;
export type GuestWorkload = (typeof GUEST_WORKLOADS)[number];

/** One workload run once against one target, as the guest measured it. */
export interface GuestMeasurement {
  round: number;
  /** The export's name in the guest, e.g. "e1.1". */
  dev: string;
  workload: GuestWorkload;
  /** MiB (2^20 bytes) per second. */
  mibps: number;
  /** fio only. */
  iops?: number;
  /** fio only: median completion latency, µs. */
  clatP50Us?: number;
}

/** One direction (read or write) of a fio terse v3 line. */
export interface FioDirection {
  kib: number;
  bwKiBps: number;
  iops: number;
  runtimeMs: number;
  /** Completion latency percentiles, µs, keyed by the percentile ("50" for the median). */
  clatPercentilesUs: Record<string, number>;
}

// Terse v3: version; fio version; job name; group id; error; then the read
// block, the write block, CPU and I/O depth fields. A block is I/O KiB,
// bandwidth KiB/s, IOPS, runtime ms, submission latency (4), completion
// latency (4), 20 completion latency percentiles ("50.000000%=66"), total
// latency (4) and bandwidth statistics (5): 41 fields.
const BLOCK_FIELDS = 41;
const READ_AT = 5;
const WRITE_AT = READ_AT + BLOCK_FIELDS;
const PERCENTILES_AT = 12;
const PERCENTILES = 20;

function direction(fields: string[], at: number): FioDirection {
  const clatPercentilesUs: Record<string, number> = {};
  for (let i = 0; i < PERCENTILES; i++) {
    const m = /^([\d.]+)%=(\d+)$/.exec(fields[at + PERCENTILES_AT + i]);
    // fio pads the list with "0%=0" when fewer percentiles are asked for
    if (m && Number(m[1]) > 0) clatPercentilesUs[String(Number(m[1]))] = Number(m[2]);
  }
  return {
    kib: Number(fields[at]),
    bwKiBps: Number(fields[at + 1]),
    iops: Number(fields[at + 2]),
    runtimeMs: Number(fields[at + 3]),
    clatPercentilesUs,
  };
}

/** Parses one fio `--output-format=terse --terse-version=3` line. */
export function parseFioTerse(line: string): { job: string; error: number; read: FioDirection; write: FioDirection } {
  const fields = line.trim().split(';');
  if (fields[0] !== '3') throw new Error(`not a fio terse version 3 line (it starts with "${fields[0]}")`);
  if (fields.length < WRITE_AT + BLOCK_FIELDS)
    throw new Error(
      `fio terse line has ${fields.length} fields, fewer than the ${WRITE_AT + BLOCK_FIELDS} of its read and write blocks`,
    );
  return {
    job: fields[2],
    error: Number(fields[4]),
    read: direction(fields, READ_AT),
    write: direction(fields, WRITE_AT),
  };
}

function isWorkload(w: string): w is GuestWorkload {
  return (GUEST_WORKLOADS as readonly string[]).includes(w);
}

/** Turns the key=value fields of one `AOETEST bench` line into a measurement; throws on anything malformed. */
export function parseBenchFields(fields: Record<string, string>): GuestMeasurement {
  const round = Number(fields.round);
  const { dev, workload } = fields;
  if (!Number.isInteger(round) || round < 1) throw new Error(`bench line without a round number: round=${fields.round}`);
  if (!dev) throw new Error('bench line without dev=');
  if (!isWorkload(workload)) throw new Error(`bench line with an unknown workload "${workload}"`);
  const base = { round, dev, workload };
  if (workload.startsWith('dd-')) {
    const bytes = Number(fields.bytes);
    const s = Number(fields.s);
    if (!(bytes > 0) || !(s > 0)) throw new Error(`dd line without bytes= and s= (${JSON.stringify(fields)})`);
    return { ...base, mibps: bytes / 2 ** 20 / s };
  }
  if (!fields.terse) throw new Error(`fio line without terse= (${JSON.stringify(fields)})`);
  const fio = parseFioTerse(fields.terse);
  if (fio.error !== 0) throw new Error(`fio reported error ${fio.error} for ${workload} on ${dev}`);
  const d = workload.endsWith('write') ? fio.write : fio.read;
  return { ...base, mibps: d.bwKiBps / 1024, iops: d.iops, clatP50Us: d.clatPercentilesUs['50'] };
}
