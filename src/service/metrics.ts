// Prometheus text exposition (format 0.0.4) of the server's stats
// (ServerStats, src/api/control.ts), on an opt-in HTTP listener
// (`--metrics 127.0.0.1:9469`, GET /metrics).
//
//   per export     vblade_export_<counter>_total{export}     every entry of counters
//                  vblade_export_sectors / _inflight / _read_only{export}
//                  vblade_export_state_save_failures_total / _state_unsaved / _held{export}
//                  vblade_export_latency_seconds{export}     histogram from latencyUsLog2
//                                                            (bucket i: < 2^i µs) and latencySumUs
//   per initiator  vblade_initiator_<field>_total{export,mac}  requests, read/written bytes, errors;
//                  at most initiator-rows MACs and "other" per export
//                  vblade_export_initiator_rows / _initiator_evictions_total{export}
//   per interface  vblade_interface_<counter>_total{interface}
//                  vblade_interface_up / _open / _mtu / _sectors_per_frame{interface}
//   serving loop   vblade_spins_total, _spin_hits_total, _spin_backoffs_total, vblade_spinning,
//                  vblade_sleeps_total, vblade_wakeups_total
//   supervisor     vblade_up, vblade_worker_restarts_total, vblade_worker_uptime_seconds
//
// Fields missing from the stats object are left out, so a partial object
// (a worker that is restarting) still renders.

import * as http from 'node:http';
import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ServerStats } from '../api/control';

type Labels = Record<string, string>;

interface Family {
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  samples: string[];
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels): string {
  const keys = Object.keys(labels);
  if (!keys.length) return '';
  return '{' + keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(',') + '}';
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function metricName(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]/g, '_')
    .toLowerCase();
}

class Exposition {
  private readonly families = new Map<string, Family>();

  private family(name: string, type: Family['type'], help: string): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { type, help, samples: [] };
      this.families.set(name, f);
    }
    return f;
  }

  counter(name: string, help: string, labels: Labels, value: number): void {
    this.family(name, 'counter', help).samples.push(`${name}${labelText(labels)} ${num(value)}`);
  }

  gauge(name: string, help: string, labels: Labels, value: number): void {
    this.family(name, 'gauge', help).samples.push(`${name}${labelText(labels)} ${num(value)}`);
  }

  /** A histogram from per-bucket counts; bucket i counts values below bounds[i], the rest (if any) are above every bound. */
  histogram(name: string, help: string, labels: Labels, bounds: number[], counts: number[], sum?: number): void {
    const f = this.family(name, 'histogram', help);
    let cum = 0;
    for (let i = 0; i < bounds.length; i++) {
      cum += counts[i] ?? 0;
      f.samples.push(`${name}_bucket${labelText({ ...labels, le: num(bounds[i]) })} ${cum}`);
    }
    for (let i = bounds.length; i < counts.length; i++) cum += counts[i] ?? 0;
    f.samples.push(`${name}_bucket${labelText({ ...labels, le: '+Inf' })} ${cum}`);
    if (sum !== undefined) f.samples.push(`${name}_sum${labelText(labels)} ${num(sum)}`);
    f.samples.push(`${name}_count${labelText(labels)} ${cum}`);
  }

  text(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.samples);
    }
    return out.join('\n') + '\n';
  }
}

const COUNTER_HELP: Record<string, string> = {
  reads: 'ATA read commands answered',
  writes: 'ATA write commands answered',
  read_bytes: 'bytes read from the backing store for initiators',
  write_bytes: 'bytes written to the backing store for initiators',
  flushes: 'FLUSH CACHE commands answered',
  other: 'requests answered without storage (identify, config, mask, reserve)',
  ata_errors: 'ATA errors sent (bad arguments, out of range, read-only)',
  io_errors: 'backing store I/O errors, answered with ATA ABRT',
  aoe_errors: 'AoE-level error replies',
  mask_drops: 'frames dropped by the MAC mask',
  syncs: 'fdatasync calls for -s writes and FLUSH commands (group commit: one covers many)',
  paused_drops:
    "ATA requests dropped while the export was paused (snapshot, view reset) or the initiator's view was being made (the initiator retransmits)",
  rx_frames: 'AoE request frames received',
  tx_frames: 'frames sent',
  tx_bytes: 'bytes sent',
  rx_ring_drops: 'frames the kernel dropped because the receive ring was full',
  tx_drops: 'replies dropped (no transmit slot or the link went away)',
  ignored: 'frames ignored (not for us)',
  link_downs: 'times the link went down or vanished',
  rx_stalls:
    'times frames came while every transmit or request slot was held, and waited in the receive ring (the target was saturated; a full ring then drops, counted in rx_ring_drops)',
};

/** Upper bounds of latencyUsLog2 buckets in seconds: bucket i counts requests faster than 2^i µs; the last bucket is open. */
function log2Bounds(buckets: number): number[] {
  return Array.from({ length: Math.max(0, buckets - 1) }, (_, i) => 2 ** i / 1e6);
}

export interface SupervisorFacts {
  restarts?: number;
  workerUptimeMs?: number;
  ready?: boolean;
}

/** The server's stats (and supervisor facts) as Prometheus text. */
export function renderMetrics(stats: Partial<ServerStats> | undefined, supervisor?: SupervisorFacts): string {
  const x = new Exposition();
  if (supervisor) {
    if (typeof supervisor.ready === 'boolean') x.gauge('vblade_up', '1 when the worker is serving', {}, supervisor.ready ? 1 : 0);
    if (typeof supervisor.restarts === 'number')
      x.counter('vblade_worker_restarts_total', 'times the worker was restarted', {}, supervisor.restarts);
    if (typeof supervisor.workerUptimeMs === 'number') {
      x.gauge('vblade_worker_uptime_seconds', 'seconds since the worker started', {}, supervisor.workerUptimeMs / 1000);
    }
  }
  for (const e of stats?.exports ?? []) {
    const l = { export: e.key };
    for (const [n, v] of Object.entries(e.counters ?? {})) {
      const name = `vblade_export_${metricName(n)}_total`;
      x.counter(name, COUNTER_HELP[n] ?? n.replace(/_/g, ' '), l, v);
    }
    if (typeof e.sectors === 'number') x.gauge('vblade_export_sectors', 'exported size in 512-byte sectors', l, e.sectors);
    if (typeof e.inflight === 'number') x.gauge('vblade_export_inflight', 'requests in flight', l, e.inflight);
    if (typeof e.readOnly === 'boolean')
      x.gauge('vblade_export_read_only', '1 when the export refuses writes', l, e.readOnly ? 1 : 0);
    if (typeof e.failedSaves === 'number')
      x.counter(
        'vblade_export_state_save_failures_total',
        'saves of the config string, mask or reserve list that failed (the requests got AoE error 3)',
        l,
        e.failedSaves,
      );
    if (typeof e.stateDurable === 'boolean')
      x.gauge('vblade_export_state_unsaved', '1 while the state in force is not on disk yet', l, e.stateDurable ? 0 : 1);
    if (typeof e.stateDurable === 'boolean' || e.held !== undefined)
      x.gauge(
        'vblade_export_held',
        '1 when the export serves nothing because its saved state is unreadable (see vblade ctl show-state)',
        l,
        e.held !== undefined ? 1 : 0,
      );
    viewAndSnapshotMetrics(x, l, e);
    if (e.initiators !== undefined) initiatorMetrics(x, e.key, e.initiators);
    if (Array.isArray(e.latencyUsLog2) && e.latencyUsLog2.length) {
      x.histogram(
        'vblade_export_latency_seconds',
        'time from request to reply',
        l,
        log2Bounds(e.latencyUsLog2.length),
        e.latencyUsLog2,
        typeof e.latencySumUs === 'number' ? e.latencySumUs / 1e6 : undefined,
      );
    }
  }
  for (const i of stats?.interfaces ?? []) {
    const l = { interface: i.name };
    for (const [n, v] of Object.entries(i.counters ?? {})) {
      x.counter(`vblade_interface_${metricName(n)}_total`, COUNTER_HELP[n] ?? n.replace(/_/g, ' '), l, v);
    }
    if (typeof i.up === 'boolean') x.gauge('vblade_interface_up', '1 when the interface is up and running', l, i.up ? 1 : 0);
    if (typeof i.open === 'boolean') x.gauge('vblade_interface_open', '1 when the packet socket is open', l, i.open ? 1 : 0);
    if (typeof i.mtu === 'number') x.gauge('vblade_interface_mtu', 'interface MTU', l, i.mtu);
    if (typeof i.sectorsPerFrame === 'number')
      x.gauge('vblade_interface_sectors_per_frame', 'sectors that fit one frame', l, i.sectorsPerFrame);
  }
  const f = stats?.frameLoop;
  if (f !== undefined) {
    x.counter('vblade_spins_total', 'busy polls of the rings after a batch', {}, f.spins);
    x.counter('vblade_spin_hits_total', 'busy polls that found the next frame or completion in their window', {}, f.hits);
    x.counter('vblade_spin_backoffs_total', 'times polling was paused because too few polls found work', {}, f.backoffs);
    x.gauge('vblade_spinning', '1 while the server polls after each batch (0: paused, or spin-us 0)', {}, f.polling ? 1 : 0);
    x.counter('vblade_sleeps_total', 'blocking waits for frames or completions in the kernel', {}, f.sleeps);
    x.counter('vblade_wakeups_total', 'blocking waits that ended with work', {}, f.wakeups);
  }
  return x.text();
}

type ExportFigures = ServerStats['exports'][number];

/** The views' and snapshots' figures of one export (views-dir). */
function viewAndSnapshotMetrics(x: Exposition, l: Record<string, string>, e: Partial<ExportFigures>): void {
  if (e.views !== undefined) {
    x.gauge('vblade_export_views', 'per-initiator views of the export (views = per-initiator)', l, e.views.count);
    x.gauge(
      'vblade_export_views_own_bytes',
      'bytes of space the views hold that the image does not share, as last measured (seconds ago)',
      l,
      e.views.ownBytes,
    );
    x.counter(
      'vblade_export_view_failures_total',
      'new initiators whose view could not be made (they got an error reply)',
      l,
      e.views.failures,
    );
    if (e.views.maxViews !== undefined)
      x.gauge('vblade_export_views_max', 'views the export may have (max-views)', l, e.views.maxViews);
    for (const [reason, n] of Object.entries(e.views.refused ?? {}))
      x.counter(
        'vblade_export_view_refusals_total',
        'requests of new initiators refused a view, by reason: max-views, open-files (the process bound), min-free (views-min-free), views-dir (the views directory cannot be used), failed (making it failed)',
        { ...l, reason },
        n,
      );
    if (e.views.bootDiscards !== undefined)
      x.counter(
        'vblade_export_view_boot_discards_total',
        'views = per-boot: views discarded because their machine booted again (an IDENTIFY after per-boot-gap without a request)',
        l,
        e.views.bootDiscards,
      );
    x.gauge(
      'vblade_export_views_share_image',
      '1 while views read the blocks they did not write from the image (one page cache); 0 while each reads its own file',
      l,
      e.views.sharesImage ? 1 : 0,
    );
  }
  if (e.snapshots !== undefined) {
    x.gauge(
      'vblade_export_snapshots_unknown',
      '1 while the snapshots cannot be measured (vblade ctl stats says why); their figures are then left out',
      l,
      e.snapshots.unknown === undefined ? 0 : 1,
    );
  }
  if (e.snapshots !== undefined && e.snapshots.unknown === undefined) {
    x.gauge('vblade_export_snapshots', 'snapshots of the export and its views', l, e.snapshots.count);
    x.gauge(
      'vblade_export_snapshots_own_bytes',
      'bytes the snapshots hold that nothing else shares, as last measured (seconds ago)',
      l,
      e.snapshots.ownBytes,
    );
  }
}

const INITIATOR_FIELDS = [
  [
    'requests',
    'requests',
    'requests of the initiator the export answered or served (mac="other": initiators whose row a new MAC took)',
  ],
  ['read_bytes', 'readBytes', 'bytes read for the initiator'],
  ['written_bytes', 'writeBytes', 'bytes written for the initiator'],
  ['errors', 'errors', 'error replies to the initiator (AoE, ATA and I/O errors)'],
] as const;

/**
 * vblade_initiator_*_total{export,mac}: one series per row of the export's
 * initiator table, so at most initiator-rows + 1 MACs per export whatever
 * source MACs frames claim.
 */
function initiatorMetrics(x: Exposition, key: string, t: NonNullable<ServerStats['exports'][number]['initiators']>): void {
  for (const r of t.list) {
    for (const [name, field, help] of INITIATOR_FIELDS)
      x.counter(`vblade_initiator_${name}_total`, help, { export: key, mac: r.mac }, r[field]);
  }
  x.gauge(
    'vblade_export_initiator_rows',
    'initiator MACs the export counts one by one (initiator-rows)',
    { export: key },
    t.rows,
  );
  x.counter(
    'vblade_export_initiator_evictions_total',
    'times a new initiator MAC took the row of a less active one (its figures moved to mac="other")',
    { export: key },
    t.evictions,
  );
}

/** Bounds of the listener: anyone who can reach it may connect. */
export const METRICS_LIMITS = {
  /** Connections kept at once; beyond it the oldest idle one (no request being answered) is closed. */
  maxConnections: 16,
  /** A request's headers must arrive within this, counted from the connection (or the last answer). */
  headersTimeoutMs: 5000,
  /** A whole request must arrive within this. */
  requestTimeoutMs: 10000,
  /** A connection kept alive after an answer is closed when no next request starts within this. */
  keepAliveTimeoutMs: 2000,
  /** How often Node looks for connections past the two timeouts above. */
  checkIntervalMs: 1000,
  /** A rendered page is served again for this long: at most one stats request to the worker per interval. */
  pageCacheMs: 1000,
  /**
   * Requests of one connection answered but not yet taken by the client
   * (pipelined by one that does not read): beyond 4 of them, or 1 MiB of
   * answers waiting in the socket, the connection is closed, since each
   * would hold a whole page in memory. A scraper sends one at a time.
   */
  maxPipelined: 4,
  maxUnsentBytes: 1 << 20,
  /** Bytes a connection may send before its requests are answered (a GET is a few hundred): more is a flood, closed before it is parsed. */
  maxUnansweredBytes: 16 * 1024,
};

export interface MetricsSource {
  stats(): Promise<unknown>;
  supervisor?(): SupervisorFacts;
}

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A page as served: its text, and the worker's error when the figures could not be had. */
interface Page {
  text: string;
  error?: string;
  at: number;
}

/**
 * Keeps at most `max` connections: beyond that the oldest one that waits
 * (for its first request, or idle between requests) is closed, else the new
 * one; a connection whose request is being answered is never cut. A
 * connection must have sent a request's headers within `headersMs` of its
 * arrival or of its last answer: Node's own headersTimeout is checked only
 * from a request's first byte and not reliably before tens of seconds.
 */
class ConnectionGuard {
  /** Connections in the order they came: while waiting, the timer that closes them; null while a request is answered. */
  private readonly sockets = new Map<net.Socket, NodeJS.Timeout | null>();

  constructor(
    private readonly max: number,
    private readonly headersMs: number,
  ) {}

  add(socket: net.Socket): void {
    this.wait(socket);
    socket.once('close', () => {
      const timer = this.sockets.get(socket);
      if (timer) clearTimeout(timer);
      this.sockets.delete(socket);
    });
    if (this.sockets.size <= this.max) return;
    for (const [s, timer] of this.sockets) {
      if (timer !== null) {
        s.destroy();
        return;
      }
    }
  }

  /** The connection waits for its next request's headers. */
  wait(socket: net.Socket): void {
    if (socket.destroyed) return;
    this.sockets.set(
      socket,
      setTimeout(() => socket.destroy(), this.headersMs),
    );
  }

  /** A request of the connection is being answered. */
  answering(socket: net.Socket): void {
    const timer = this.sockets.get(socket);
    if (timer) clearTimeout(timer);
    if (timer !== undefined) this.sockets.set(socket, null);
  }
}

export class MetricsServer {
  private page: Page | null = null;
  /** The one stats request to the worker in flight, if any: scrapes meanwhile wait for its page. */
  private pending: Promise<Page> | null = null;

  private constructor(
    private readonly server: http.Server,
    private readonly source: MetricsSource,
  ) {}

  get address(): { host: string; port: number } {
    const a = this.server.address() as { address: string; port: number };
    return { host: a.address, port: a.port };
  }

  /** The page to serve: the last one while it is fresh, else the one being made, else a new one. */
  private current(): Promise<Page> {
    const now = performance.now();
    if (this.page !== null && now - this.page.at < METRICS_LIMITS.pageCacheMs) return Promise.resolve(this.page);
    this.pending ??= this.render().finally(() => (this.pending = null));
    return this.pending;
  }

  private async render(): Promise<Page> {
    let page: Page;
    try {
      const stats = await this.source.stats();
      page = { text: renderMetrics(stats as Partial<ServerStats>, this.source.supervisor?.()), at: performance.now() };
    } catch (e) {
      // The worker is down or restarting: still say so in metrics form.
      const text = renderMetrics(undefined, { ...this.source.supervisor?.(), ready: false });
      page = { text, error: (e as Error).message.replace(/[^\x20-\x7e]/g, ' '), at: performance.now() };
    }
    this.page = page;
    return page;
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url !== '/metrics') {
      res
        .writeHead(url === '/' ? 200 : 404, { 'content-type': 'text/plain' })
        .end(url === '/' ? 'vbladed metrics at /metrics\n' : 'not found\n');
      return;
    }
    this.current().then(
      (page) => {
        const headers: http.OutgoingHttpHeaders = { 'content-type': CONTENT_TYPE };
        if (page.error !== undefined) headers['x-vblade-error'] = page.error;
        res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : page.text);
      },
      (e: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot render metrics: ${e.message}\n`);
      },
    );
  }

  static async listen(source: MetricsSource, at: { host: string; port: number }, log: Logger): Promise<MetricsServer> {
    const L = METRICS_LIMITS;
    const server = http.createServer({
      headersTimeout: L.headersTimeoutMs,
      requestTimeout: L.requestTimeoutMs,
      keepAliveTimeout: L.keepAliveTimeoutMs,
      connectionsCheckingInterval: L.checkIntervalMs,
    });
    const m = new MetricsServer(server, source);
    const guard = new ConnectionGuard(L.maxConnections, L.headersTimeoutMs);
    const received = new WeakMap<net.Socket, number>();
    server.on('connection', (socket: net.Socket) => {
      guard.add(socket);
      // Ahead of the HTTP parser, which is handed this same chunk next: a flood of pipelined requests is
      // blanked (the parser stops at its first byte instead of making thousands of requests) and the connection closed.
      socket.prependListener('data', (chunk: Buffer) => {
        const n = (received.get(socket) ?? 0) + chunk.length;
        received.set(socket, n);
        if (n > L.maxUnansweredBytes) {
          chunk.fill(0);
          socket.destroy();
        }
      });
    });
    const unsent = new WeakMap<net.Socket, number>();
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const socket = req.socket;
      const queued = (unsent.get(socket) ?? 0) + 1;
      if (queued > L.maxPipelined || socket.writableLength > L.maxUnsentBytes) {
        socket.destroy();
        return;
      }
      unsent.set(socket, queued);
      res.once('finish', () => {
        unsent.set(socket, (unsent.get(socket) ?? 1) - 1);
        received.set(socket, 0);
      });
      guard.answering(socket);
      res.once('close', () => guard.wait(socket));
      m.serve(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    log.info(
      { metrics: m.address },
      `metrics at http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${m.address.port}/metrics`,
    );
    return m;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
