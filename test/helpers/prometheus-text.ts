// A checker of the Prometheus text exposition format (0.0.4), for tests: what
// a scraper needs to accept a page. Returns the problems found (none: []).
// Histograms need, per label set, _bucket lines with ascending `le` ending in
// +Inf, cumulative counts that never fall, a _sum and a _count equal to the
// +Inf bucket.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;

export function parseSample(line: string): Sample | null {
  const m = SAMPLE_RE.exec(line);
  if (!m) return null;
  const labels: Record<string, string> = {};
  if (m[3]) {
    let consumed = 0;
    for (const l of m[3].matchAll(LABEL_RE)) {
      if (l.index !== consumed) return null;
      labels[l[1]] = l[2];
      consumed += l[0].length;
    }
    if (consumed !== m[3].length) return null;
  }
  const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
  if (Number.isNaN(value) && m[4] !== 'NaN') return null;
  return { name: m[1], labels, value };
}

export function checkExposition(text: string): string[] {
  const problems: string[] = [];
  if (!text.endsWith('\n')) problems.push('the page does not end with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        if (types.has(meta[2])) problems.push(`TYPE given twice for ${meta[2]}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(meta[3])) problems.push(`unknown type ${meta[3]}`);
        types.set(meta[2], meta[3]);
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const s = parseSample(line);
    if (!s) {
      problems.push(`malformed sample line: ${line}`);
      continue;
    }
    const family = familyOf(s.name, types);
    if (family === undefined) problems.push(`sample ${s.name} comes before its TYPE line`);
    const id = `${s.name}${JSON.stringify(s.labels)}`;
    if (seen.has(id)) problems.push(`duplicate series ${id}`);
    seen.add(id);
    samples.push(s);
  }
  for (const [name, type] of types) if (type === 'histogram') problems.push(...checkHistogram(name, samples));
  return problems;
}

function familyOf(sample: string, types: Map<string, string>): string | undefined {
  if (types.has(sample)) return sample;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = sample.endsWith(suffix) ? sample.slice(0, -suffix.length) : '';
    if (base && types.get(base) === 'histogram') return base;
  }
  return undefined;
}

function seriesKey(labels: Record<string, string>): string {
  const rest = Object.entries(labels).filter(([k]) => k !== 'le');
  return JSON.stringify(rest.sort());
}

function checkHistogram(name: string, samples: Sample[]): string[] {
  const problems: string[] = [];
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  const get = (labels: Record<string, string>) => {
    const k = seriesKey(labels);
    let s = series.get(k);
    if (!s) series.set(k, (s = { buckets: [] }));
    return s;
  };
  for (const s of samples) {
    if (s.name === `${name}_bucket`) {
      if (s.labels.le === undefined) problems.push(`${name}_bucket without le`);
      else get(s.labels).buckets.push([s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value]);
    } else if (s.name === `${name}_sum`) get(s.labels).sum = s.value;
    else if (s.name === `${name}_count`) get(s.labels).count = s.value;
  }
  for (const [k, s] of series) {
    const where = `${name}${k}`;
    if (s.sum === undefined) problems.push(`${where} has no _sum`);
    if (s.count === undefined) problems.push(`${where} has no _count`);
    const last = s.buckets[s.buckets.length - 1];
    if (!last || last[0] !== Infinity) problems.push(`${where} has no le="+Inf" bucket last`);
    for (let i = 1; i < s.buckets.length; i++) {
      if (!(s.buckets[i][0] > s.buckets[i - 1][0])) problems.push(`${where}: le values not ascending at ${i}`);
      if (s.buckets[i][1] < s.buckets[i - 1][1]) problems.push(`${where}: bucket counts fall at le=${s.buckets[i][0]}`);
    }
    if (last && s.count !== undefined && last[1] !== s.count)
      problems.push(`${where}: _count ${s.count} differs from the +Inf bucket ${last[1]}`);
  }
  return problems;
}
