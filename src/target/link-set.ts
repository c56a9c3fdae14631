// The interfaces the server serves on, through their life: a link is made
// for each interface an export names, opened when the interface exists,
// followed through MTU, MAC and carrier changes and through its removal and
// return, retired (closed once nothing refers to its memory) and reopened.
// Also the periodic announcement of every export on every interface that is up.

import type { Logger } from 'pino';
import type { NativeAddon } from '../native/addon';
import { LinkCounter } from '../engine/counters';
import type { Engine } from '../engine/engine';
import type { ServedExport as Export } from './served-export';
import { Link } from '../engine/link';
import type { ServingOptions } from './options';

export class LinkSet {
  private readonly byName = new Map<string, Link>();
  private monitor: NodeJS.Timeout | null = null;
  private announcer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Interfaces whose last check failed (logged once, until a check succeeds). */
  private readonly failing = new Set<string>();

  constructor(
    private readonly engine: Engine<Export>,
    private readonly addon: NativeAddon,
    private readonly log: Logger,
    private readonly opts: ServingOptions,
  ) {}

  get(name: string): Link | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  values(): IterableIterator<Link> {
    return this.byName.values();
  }

  /** Serves `e` on each of its interfaces, making the links it lacks (opened later, by ensureOpen). */
  attach(e: Export): void {
    for (const name of e.config.interfaces) {
      let link = this.byName.get(name);
      if (!link) {
        const linkId = this.engine.links.length;
        link = new Link(name, linkId, this.addon, { txSlots: this.opts.txSlots, netns: this.opts.netns });
        this.engine.links.push(link);
        this.byName.set(name, link);
      }
      link.exports.push(e);
    }
  }

  /** Stops serving `e` on every link. */
  detach(e: Export): void {
    for (const link of this.byName.values()) {
      const i = link.exports.indexOf(e);
      if (i >= 0) link.exports.splice(i, 1);
    }
  }

  /** Opens every link that can be; `fatal`: an interface that exists but cannot be opened throws. */
  openAll(fatal: boolean): void {
    for (const link of this.byName.values()) this.ensureOpen(link, fatal);
  }

  /**
   * Opens a link's socket if it has none. A missing interface waits (the
   * link checks open it when it appears); at a first start, an interface
   * that exists but cannot be opened is fatal.
   */
  private ensureOpen(link: Link, fatal: boolean): void {
    if (link.socket !== null || link.inflight > 0) return;
    const info = link.readInfo();
    if (info === null) return;
    try {
      link.open(info);
    } catch (err) {
      if (fatal) throw err;
      this.log.warn({ interface: link.name, err: (err as Error).message }, 'cannot open interface yet');
      return;
    }
    this.engine.registerLinkMemory(link);
    link.accepting = true;
    link.socket!.startPolling((status) => {
      if (status < 0) this.checkLink(link);
      else this.engine.receive(link);
    });
    this.log.info({ interface: link.name, mtu: info.mtu, up: info.up, sectors: link.ctx.maxSectors }, 'interface open');
    if (info.up) this.engine.announce(link);
  }

  /** Stops taking frames on a link and closes it once nothing refers to its memory. */
  private retire(link: Link, why: string): void {
    if (link.socket === null) return;
    link.pause();
    link.reopenWanted = true;
    this.log.warn({ interface: link.name, reason: why }, 'closing interface');
    if (link.inflight === 0) this.closeLink(link);
  }

  private closeLink(link: Link): void {
    this.engine.flushLink(link);
    this.engine.unregisterLinkMemory(link);
    this.engine.forgetLink(link);
    link.close();
  }

  private checkLinks(): void {
    for (const link of this.byName.values()) this.checkLink(link);
  }

  /** A check that fails (no descriptor left for the query: EMFILE) is logged and tried again at the next tick. */
  private checkLink(link: Link): void {
    if (this.stopping) return;
    try {
      this.followLink(link);
      if (this.failing.delete(link.name)) this.log.info({ interface: link.name }, 'interface checks work again');
    } catch (err) {
      if (this.failing.has(link.name)) return;
      this.failing.add(link.name);
      this.log.error(
        { interface: link.name, err: (err as Error).message },
        `cannot check interface ${link.name}: ${(err as Error).message}; tried again every ${this.opts.linkCheckMs} ms`,
      );
    }
  }

  /** Follows an interface through MTU, MAC and carrier changes, and through its removal and return. */
  private followLink(link: Link): void {
    const info = link.readInfo();
    const sock = link.socket;
    if (info === null) {
      if (sock !== null) {
        link.counters[LinkCounter.LinkDowns]++;
        this.retire(link, 'interface vanished');
      }
      link.info = null;
      return;
    }
    if (sock === null) {
      if (link.inflight === 0) this.ensureOpen(link, false);
      return;
    }
    if (link.reopenWanted) return;
    if (info.ifindex !== sock.ifindex) {
      link.counters[LinkCounter.LinkDowns]++;
      this.retire(link, 'interface was recreated');
      return;
    }
    if (link.outgrown(info)) {
      this.retire(link, `MTU grew to ${info.mtu}; resizing the ring`);
      return;
    }
    const was = link.info;
    link.applyInfo(info);
    if (was && was.mtu !== info.mtu)
      this.log.info({ interface: link.name, mtu: info.mtu, sectors: link.ctx.maxSectors }, 'MTU changed');
    if (was && was.up && !info.up) {
      link.counters[LinkCounter.LinkDowns]++;
      this.log.warn({ interface: link.name }, 'link down');
    }
    if (was && !was.up && info.up) {
      this.log.info({ interface: link.name }, 'link up');
      this.engine.announce(link);
    }
  }

  /**
   * Starts the periodic link checks, and announces every export on every
   * interface that is up every announce-interval seconds: an initiator whose
   * driver came up before the target, or whose start-up announcement was
   * lost (a switch port still blocking), finds it within that time rather
   * than at its own next discovery round.
   */
  startWatching(): void {
    this.monitor = setInterval(() => this.checkLinks(), this.opts.linkCheckMs);
    const seconds = this.opts.announceSeconds;
    if (!(seconds > 0)) return;
    this.announcer = setInterval(() => this.announceAll(), seconds * 1000);
    this.announcer.unref();
  }

  private announceAll(): void {
    if (this.stopping) return;
    for (const link of this.byName.values()) {
      if (link.socket !== null && !link.reopenWanted && link.info?.up) this.engine.announce(link);
    }
  }

  /** Requests were answered: links waiting for that to be retired are closed, and checked again soon. */
  drained(): void {
    for (const link of this.byName.values()) {
      if (link.reopenWanted && link.inflight === 0 && link.socket !== null) {
        this.closeLink(link);
        if (!this.stopping) setImmediate(() => this.checkLink(link));
      }
    }
  }

  /** Stop, first step: no more checks or announcements, and no new frames taken. */
  stopTaking(): void {
    this.stopping = true;
    if (this.monitor) clearInterval(this.monitor);
    if (this.announcer) clearInterval(this.announcer);
    for (const link of this.byName.values()) link.pause();
  }

  /** Stop, last step: closes every open link (nothing in flight any more). */
  closeAll(): void {
    for (const link of this.byName.values()) {
      if (link.socket) this.closeLink(link);
    }
  }
}
