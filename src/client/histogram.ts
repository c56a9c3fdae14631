// A latency histogram with fixed memory: values in units of 0.1 µs, exact
// below 6.4 µs, then 32 buckets per power of two (about 3 % wide), up to 429 s.
// Recording is a few integer operations and one array increment.

const EXACT = 64;
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
const FIRST_EXP = 6; // 2^6 = EXACT
export const HISTOGRAM_BUCKETS = EXACT + (32 - FIRST_EXP) * SUB;

/** Bucket index of a value in 0.1 µs units (0 .. 2^32-1). */
export function bucketOf(units: number): number {
  if (units < EXACT) return units < 0 ? 0 : units | 0;
  const v = units >= 0xffffffff ? 0xffffffff : units >>> 0;
  const e = 31 - Math.clz32(v);
  const sub = (v >>> (e - SUB_BITS)) & (SUB - 1);
  return EXACT + (e - FIRST_EXP) * SUB + sub;
}

/** Lowest value (0.1 µs units) that falls in bucket `b`, and the bucket's width. */
export function bucketLow(b: number): number {
  if (b < EXACT) return b;
  const e = ((b - EXACT) >>> SUB_BITS) + FIRST_EXP;
  const sub = (b - EXACT) & (SUB - 1);
  return (SUB + sub) * 2 ** (e - SUB_BITS);
}

export function bucketWidth(b: number): number {
  if (b < EXACT) return 1;
  const e = ((b - EXACT) >>> SUB_BITS) + FIRST_EXP;
  return 2 ** (e - SUB_BITS);
}

export interface LatencySummary {
  /** Microseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  count: number;
}

export class LatencyHistogram {
  readonly counts = new Float64Array(HISTOGRAM_BUCKETS);
  count = 0;
  sumUs = 0;
  maxUs = 0;

  /** Records one latency given in milliseconds. */
  recordMs(ms: number): void {
    const us = ms * 1000;
    this.counts[bucketOf(Math.round(us * 10))]++;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.maxUs = 0;
  }

  /** The value (µs, middle of its bucket) below which a fraction `q` of the recorded values lie. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < HISTOGRAM_BUCKETS; b++) {
      seen += this.counts[b];
      if (seen >= rank) return Math.min(this.maxUs, (bucketLow(b) + bucketWidth(b) / 2) / 10);
    }
    return this.maxUs;
  }

  summary(): LatencySummary {
    return {
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: this.maxUs,
      mean: this.count > 0 ? this.sumUs / this.count : 0,
      count: this.count,
    };
  }
}
