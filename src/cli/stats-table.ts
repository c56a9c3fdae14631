// `vblade ctl stats` for people: one table row per export and per interface,
// with the counters that matter at a glance and the 99th percentile latency. Errors and drops are the sums of
// every counter named *_errors and *_drops, so a counter added later is
// counted without a change here; `--json` and the metrics show each one.

import type { FrameLoopStats, ServerStats } from '../api/control';

type Counters = Record<string, number>;

/** Columns padded to their widest cell, two spaces apart. */
export function alignColumns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i]))
      .join('  ')
      .trimEnd(),
  );
}

/** 5120 -> "5.0 KiB"; below 1 KiB the exact count of bytes. */
export function humanBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (n < 1024) return `${n} B`;
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** The total of the counters named *SUFFIX, with the non-zero ones by name: "3 (io 1, ata 2)". */
function sumOf(counters: Counters, suffix: string): string {
  const parts = Object.entries(counters).filter(([name, v]) => name.endsWith(suffix) && v > 0);
  const total = parts.reduce((sum, [, v]) => sum + v, 0);
  if (total === 0) return '0';
  return `${total} (${parts.map(([name, v]) => `${name.slice(0, -suffix.length).replace(/_/g, ' ')} ${v}`).join(', ')})`;
}

/** The bound under which the fraction q of requests finished, from the log2 histogram (bucket i: < 2^i µs): "< 16 µs". */
export function latencyBound(hist: readonly number[] | undefined, q: number): string {
  const total = (hist ?? []).reduce((a, b) => a + b, 0);
  if (!hist || total === 0) return '-';
  let seen = 0;
  let i = 0;
  for (; i < hist.length - 1; i++) {
    seen += hist[i];
    if (seen >= q * total) break;
  }
  const us = 2 ** i;
  return us < 1000 ? `< ${us} µs` : us < 1e6 ? `< ${(us / 1000).toFixed(1)} ms` : `< ${(us / 1e6).toFixed(1)} s`;
}

export function formatStatsTables(stats: Partial<ServerStats>): string[] {
  const c = (counters: Counters, name: string): number => counters[name] ?? 0;
  const exportRows = (stats.exports ?? []).map((e) => [
    e.key,
    String(c(e.counters, 'reads')),
    String(c(e.counters, 'writes')),
    humanBytes(c(e.counters, 'read_bytes')),
    humanBytes(c(e.counters, 'write_bytes')),
    sumOf(e.counters, '_errors'),
    sumOf(e.counters, '_drops'),
    String(e.inflight),
    latencyBound(e.latencyUsLog2, 0.99),
  ]);
  const interfaceRows = (stats.interfaces ?? []).map((i) => [
    i.name,
    i.open ? (i.up ? 'up' : 'down') : 'closed',
    String(i.mtu),
    String(c(i.counters, 'rx_frames')),
    String(c(i.counters, 'tx_frames')),
    humanBytes(c(i.counters, 'tx_bytes')),
    sumOf(i.counters, '_drops'),
    String(c(i.counters, 'rx_stalls')),
  ]);
  // Views and snapshots: only for exports that have a views-dir.
  const copyRows = (stats.exports ?? [])
    .filter((e) => e.views !== undefined || e.snapshots !== undefined)
    .map((e) => [
      e.key,
      e.views ? String(e.views.count) : '-',
      // A worker of an older version sends no maxViews.
      e.views?.maxViews !== undefined ? String(e.views.maxViews) : '-',
      e.views ? humanBytes(e.views.ownBytes) : '-',
      e.views ? String(e.views.failures) : '-',
      e.views ? (e.views.sharesImage ? 'yes' : 'no') : '-',
      e.snapshots ? (e.snapshots.unknown !== undefined ? '?' : String(e.snapshots.count)) : '-',
      e.snapshots ? (e.snapshots.unknown !== undefined ? '?' : humanBytes(e.snapshots.ownBytes)) : '-',
    ]);
  const unknownSnapshots = (stats.exports ?? [])
    .filter((e) => e.snapshots?.unknown !== undefined)
    .map((e) => `${e.key} snapshots ?: ${e.snapshots!.unknown}`);
  return [
    ...alignColumns([
      ['export', 'reads', 'writes', 'read', 'written', 'errors', 'drops', 'in flight', 'p99 latency'],
      ...exportRows,
    ]),
    ...alignColumns([['interface', 'state', 'mtu', 'rx frames', 'tx frames', 'sent', 'drops', 'stalls'], ...interfaceRows]),
    ...(copyRows.length > 0
      ? alignColumns([
          ['export', 'views', 'max views', 'views own', 'views refused', 'shared cache', 'snapshots', 'snapshots own'],
          ...copyRows,
        ])
      : []),
    ...unknownSnapshots,
    ...frameLoopLine(stats.frameLoop),
  ];
}

/**
 * `vblade ctl stats --by-initiator`: per export, one row per initiator MAC
 * (busiest first) and the row "other" of those without one, then how many
 * rows the table has and how often a new MAC took a row from another.
 */
export function formatInitiatorTables(stats: Partial<ServerStats>): string[] {
  const lines: string[] = [];
  for (const e of stats.exports ?? []) {
    const t = e.initiators;
    if (t === undefined) continue;
    const rows = t.list.map((r) => [
      r.mac,
      String(r.requests),
      humanBytes(r.readBytes),
      humanBytes(r.writeBytes),
      String(r.errors),
    ]);
    lines.push(
      `${e.key}: ${t.list.filter((r) => r.mac !== 'other').length} of ${t.rows} rows in use, ${t.evictions} taken over by new MACs`,
    );
    lines.push(...alignColumns([['initiator', 'requests', 'read', 'written', 'errors'], ...rows]).map((l) => `  ${l}`));
  }
  return lines;
}

/** One line on how the serving loop waits: busy polls and what they found, sleeps in the kernel. */
function frameLoopLine(f: FrameLoopStats | undefined): string[] {
  if (f === undefined) return [];
  const pct = f.spins > 0 ? ` (${Math.round((100 * f.hits) / f.spins)} %)` : '';
  const mode = f.spinMicros === 0 ? 'off' : f.polling ? `${f.spinMicros} us, ${f.spinPolicy}` : `paused, ${f.spinPolicy}`;
  return [
    `polling: ${mode}; polls ${f.spins}, found work ${f.hits}${pct}, paused ${f.backoffs} times; ` +
      `sleeps ${f.sleeps}, woken with work ${f.wakeups}, back to the event loop ${f.exits}`,
  ];
}
