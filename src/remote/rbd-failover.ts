// Failover with fencing for rbd exports. A writing gateway serves an rbd
// image only while it holds the image's exclusive lock, taken explicitly
// (librbd then refuses to hand it over when another client asks). A gateway
// that finds the lock held by a live owner is a standby: the export is held
// (it answers nothing) and the lock is looked at every few seconds. When the
// owner is gone (no owner, or its watch on the image header expired), or
// on `vblade ctl takeover`, the standby breaks the lock, which makes the
// cluster blocklist the old owner, so that whatever it still sends is
// refused; then it takes the lock, reads the AoE state kept in the image's
// metadata, serves and announces itself. An owner that loses the lock, or
// whose I/O the cluster refuses as blocklisted, stops answering for good:
// its connection is fenced, and only a restart makes it a standby again.

import type { Logger } from 'pino';
import type { ExportState } from '../config/export-config';
import { reconcileState } from '../config/saved-state';
import type { NativeAddon, RbdCallKind, RbdLockState } from '../native/addon';
import { ESHUTDOWN } from '../native/errno';
import { remotePoolShare } from './pool-share';
import { decodeState, encodeState } from '../config/saved-state';

/** Why a gateway stopped when the cluster refused it (its I/O, or a look at the lock, said EBLOCKLISTED). */
const BLOCKLISTED = 'the Ceph cluster blocklisted this gateway (another gateway broke its lock and took it)';

/** The image metadata key holding the export's AoE state (config string, MAC mask, reservation). */
export const STATE_KEY = 'aoe.state';

/**
 * What the failover needs of a served export (the engine's Export is one):
 * said here, so that remote/ does not reach into the frame path.
 */
export interface GatedExport {
  readonly key: string;
  readonly config: { readonly readOnly: boolean; readonly macMask: readonly string[] };
  readonly store: { readonly fd: number; readonly rbdSpec?: string };
  readonly state: { version: number };
  /** Why it is not served now; null while it is. */
  held: string | null;
  closing: boolean;
  savedVersion: number;
  durableVersion: number;
  /** Where its state is saved instead of the state file: set by the failover. */
  ownStateSave: ((state: ExportState) => Promise<void>) | null;
  restore(s: ExportState): void;
  snapshotState(): ExportState;
  setDurable(s: ExportState): void;
}

export interface RbdFailoverParts<E extends GatedExport> {
  addon: Pick<NativeAddon, 'rbdCall'>;
  log: Logger;
  pollMs: number;
  /** The export serves now: say so on each of its interfaces. */
  announce(e: E): void;
}

type Role = 'starting' | 'standby' | 'owner' | 'fenced';

interface Gate<E extends GatedExport> {
  e: E;
  spec: string;
  role: Role;
  timer: NodeJS.Timeout | undefined;
  /** A look at the lock, or a takeover, is running: one at a time. */
  busy: Promise<void> | undefined;
  /** The owner last seen while standing by. */
  owner: string | undefined;
  /** The last error of a look, logged once until it changes. */
  lastError: string | undefined;
  /** A look asked for by a refused operation has not started yet: the others of its batch ask for none. */
  urgent: boolean;
}

/** An error to the control socket: what `vblade ctl takeover` prints. */
export class TakeoverRefused extends Error {}

export class RbdFailover<E extends GatedExport> {
  private readonly gates = new Map<E, Gate<E>>();
  private stopped = false;

  constructor(private readonly p: RbdFailoverParts<E>) {}

  /** Whether `e` is an rbd export served only with the image's lock. */
  static gated(e: GatedExport): boolean {
    return e.store.rbdSpec !== undefined && !e.config.readOnly;
  }

  /** Takes charge of a new rbd export: held until its lock is ours, its state saved in the image from then on. */
  track(e: E): void {
    const spec = e.store.rbdSpec!;
    const g: Gate<E> = {
      e,
      spec,
      role: 'starting',
      timer: undefined,
      busy: undefined,
      owner: undefined,
      lastError: undefined,
      urgent: false,
    };
    this.gates.set(e, g);
    e.held = `starting: taking the exclusive lock of the rbd image ${spec}`;
    e.ownStateSave = (s) => this.saveState(g, s);
    g.busy = this.serialized(g, () => this.lookOnce(g))
      .catch((err: Error) => this.lookFailed(g, err))
      .finally(() => this.look(g));
  }

  /** Resolves once every export tracked so far had its first look at the lock: it serves, stands by, or said why not. */
  async settled(): Promise<void> {
    await Promise.all([...this.gates.values()].map((g) => g.busy ?? Promise.resolve()));
  }

  /** The export is going (removed, or the server stops): no more looks. */
  untrack(e: E): void {
    const g = this.gates.get(e);
    if (!g) return;
    clearTimeout(g.timer);
    this.gates.delete(e);
  }

  /** Waits for the looks and takeovers running, and starts no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const g of this.gates.values()) clearTimeout(g.timer);
    await Promise.all([...this.gates.values()].map((g) => g.busy ?? Promise.resolve()));
    this.gates.clear();
  }

  /** 'standby', 'owner', 'fenced' or 'starting'; undefined for an export not gated by a lock. */
  roleOf(e: E): Role | undefined {
    return this.gates.get(e)?.role;
  }

  /** The engine saw an operation refused (-ESHUTDOWN: blocklisted; -EROFS: without the lock): look now. */
  refused(e: E, result: number): void {
    const g = this.gates.get(e);
    if (!g || g.role !== 'owner') return;
    if (result === -ESHUTDOWN) this.fence(g, BLOCKLISTED);
    else if (!g.urgent) {
      g.urgent = true;
      this.look(g, 0);
    }
  }

  /** `vblade ctl takeover`: breaks the owner's lock (the cluster blocklists it) and serves from here. */
  async takeover(e: E): Promise<{ key: string; brokeFrom: string | null; ms: number }> {
    const g = this.gates.get(e);
    if (!g)
      throw new TakeoverRefused(
        `${e.key} is not an rbd export served with the image's lock (a file, an nbd export or read-only): nothing to take over`,
      );
    if (g.role === 'owner')
      throw new TakeoverRefused(`${e.key} is served by this gateway already: it holds the lock of ${g.spec}`);
    if (g.role === 'fenced')
      throw new TakeoverRefused(
        `${e.key} was fenced here (${e.held ?? 'its lock was lost'}); restart this gateway to stand by again, then take over`,
      );
    await g.busy;
    if (this.stopped) throw new TakeoverRefused(`${e.key}: this gateway is stopping`);
    if ((g.role as Role) === 'owner')
      throw new TakeoverRefused(`${e.key} is served by this gateway already: it took the lock of ${g.spec} meanwhile`);
    const t0 = performance.now();
    let broke: string | null = null;
    await this.serialized(g, async () => {
      // Another takeover may have run first while this one waited its turn: then the lock's owner is this
      // gateway, and breaking it would blocklist this gateway.
      if (g.role === 'owner')
        throw new TakeoverRefused(`${e.key} is served by this gateway already: it took the lock of ${g.spec} meanwhile`);
      if (g.role === 'fenced') throw new TakeoverRefused(`${e.key} was fenced here meanwhile (${e.held ?? 'its lock was lost'})`);
      const st = await this.lockState(g);
      broke = st.owners.find((o) => o !== undefined) ?? null;
      await this.acquire(g, broke, 'on request (vblade ctl takeover)');
    });
    if (e.held !== null) throw new Error(`${e.key}: took the lock but does not serve: ${e.held}`);
    return { key: e.key, brokeFrom: broke, ms: Math.round(performance.now() - t0) };
  }

  /**
   * Only the owner writes the image's state. A standby's change (a reload
   * with a new mac-mask) stays here: at takeover the image's state is read
   * and the config's mask applied to it again. A fenced gateway saves nothing.
   */
  private saveState(g: Gate<E>, s: ExportState): Promise<void> {
    if (g.role === 'owner') return this.call(g.e.store.fd, 'metadataSet', STATE_KEY, encodeState(g.e.key, s)) as Promise<void>;
    if (g.role === 'fenced') return Promise.reject(new Error(`${g.e.key} was fenced: its state is the new owner's to save`));
    return Promise.resolve();
  }

  // ---- the looks ----------------------------------------------------------------

  /** Runs one look at the lock after `delayMs` (the poll interval by default), then the next. */
  private look(g: Gate<E>, delayMs = -1): void {
    clearTimeout(g.timer);
    if (this.stopped || g.role === 'fenced' || !this.gates.has(g.e)) return;
    const run = () =>
      void this.serialized(g, () => this.lookOnce(g))
        .catch((err: Error) => this.lookFailed(g, err))
        .finally(() => this.look(g));
    if (delayMs === 0) run();
    else g.timer = setTimeout(run, delayMs < 0 ? this.p.pollMs : delayMs);
  }

  /** Runs `fn` after the look or takeover before it; rejects with its error (busy never does). */
  private serialized(g: Gate<E>, fn: () => Promise<void>): Promise<void> {
    const run = (g.busy ?? Promise.resolve()).then(fn);
    g.busy = run.catch(() => undefined);
    return run;
  }

  private async lookOnce(g: Gate<E>): Promise<void> {
    g.urgent = false;
    if (g.role === 'fenced' || g.e.closing) return;
    const st = await this.lockState(g);
    g.lastError = undefined;
    if (g.role === 'owner') {
      if (!st.owner) this.fence(g, 'it lost the exclusive lock', st.owners[0]);
      return;
    }
    const owner = st.owners[0];
    if (owner === undefined) return this.acquire(g, null, 'nobody held the lock');
    if (!alive(owner, st)) return this.acquire(g, owner, "its owner's watch on the image expired (the owner is gone)");
    this.standBy(g, owner, st);
  }

  /** An rbd call on libuv's pool, within the share remote stores may hold (pool-share.ts). */
  private call(handle: number, kind: RbdCallKind, ...args: string[]): Promise<unknown> {
    return remotePoolShare.run(() => this.p.addon.rbdCall(handle, kind, ...args));
  }

  /**
   * A call of a look or a takeover: made only while the export is still
   * tracked when its turn comes. One removed meanwhile (a reload) has its
   * store closing, and a takeover must not go on breaking or taking a lock
   * for an export that no longer serves.
   */
  private gatedCall(g: Gate<E>, kind: RbdCallKind, ...args: string[]): Promise<unknown> {
    return remotePoolShare.run(() => {
      if (this.gates.get(g.e) !== g || g.e.closing)
        return Promise.reject(new Error(`${g.e.key} was removed; its lock is left as it is`));
      return this.p.addon.rbdCall(g.e.store.fd, kind, ...args);
    });
  }

  private lockState(g: Gate<E>): Promise<RbdLockState> {
    return this.gatedCall(g, 'lockState') as Promise<RbdLockState>;
  }

  private lookFailed(g: Gate<E>, err: Error & { code?: string }): void {
    if (this.gates.get(g.e) !== g) return; // removed meanwhile: nothing to say
    if (g.role === 'owner' && err.code === 'ESHUTDOWN') return this.fence(g, BLOCKLISTED);
    if (err.message === g.lastError) return;
    g.lastError = err.message;
    this.p.log.warn(
      { export: g.e.key, role: g.role, err: err.message },
      `${g.e.key}: cannot look at the lock of ${g.spec}: ${err.message}`,
    );
  }

  private standBy(g: Gate<E>, owner: string, st: RbdLockState): void {
    const id = st.watchers.find((w) => sameAddr(w.addr, owner))?.id;
    const who = id === undefined ? owner : `client.${id} at ${owner}`;
    g.e.held = `standby: the exclusive lock of the rbd image ${g.spec} is held by ${who}; this gateway takes over when that owner is gone (its watch expired; looked at every ${this.p.pollMs / 1000} s) or on "vblade ctl takeover ${g.e.key}"`;
    if (g.role !== 'standby' || g.owner !== owner)
      this.p.log.warn({ export: g.e.key, owner: who }, `${g.e.key}: standing by: ${g.e.held}`);
    g.role = 'standby';
    g.owner = owner;
  }

  /** Breaks `breakOwner`'s lock (if any), takes the lock, reads the state from the image, serves and announces. */
  private async acquire(g: Gate<E>, breakOwner: string | null, why: string): Promise<void> {
    const t0 = performance.now();
    const { log } = this.p;
    if (breakOwner !== null) await this.gatedCall(g, 'lockBreak', breakOwner);
    await this.gatedCall(g, 'lockAcquire');
    const text = (await this.gatedCall(g, 'metadataGet', STATE_KEY)) as string | null;
    const e = g.e;
    if (text !== null) {
      const saved = decodeState(text.trimEnd(), e.key);
      if (typeof saved === 'string') {
        g.role = 'owner';
        e.held = `the AoE state kept in the rbd image ${g.spec} (image-meta ${STATE_KEY}) is unusable: ${saved}; not served until it is fixed: "rbd image-meta remove ${g.spec} ${STATE_KEY}" starts it empty, then restart this gateway`;
        log.error({ export: e.key }, `${e.key}: ${e.held}`);
        return;
      }
      // A mask this gateway's config sets wins over the image's: saved there before serving.
      if (this.adopt(e, saved)) await this.gatedCall(g, 'metadataSet', STATE_KEY, encodeState(e.key, e.snapshotState()));
    } else {
      await this.gatedCall(g, 'metadataSet', STATE_KEY, encodeState(e.key, e.snapshotState()));
    }
    g.role = 'owner';
    e.held = null;
    const broke = breakOwner === null ? '' : `; broke the lock of ${breakOwner} (the cluster blocklists it)`;
    log.info(
      { export: e.key, brokeFrom: breakOwner ?? undefined, ms: Math.round(performance.now() - t0) },
      `${e.key}: took the exclusive lock of ${g.spec} (${why})${broke}; serving`,
    );
    this.p.announce(e);
  }

  /** The image's state in force here, reconciled with this gateway's config (a mask the config sets wins); true when that changed it. */
  private adopt(e: E, saved: ExportState): boolean {
    const { state, changed } = reconcileState(saved, e.config.macMask);
    e.restore(state);
    e.state.version++;
    e.savedVersion = e.durableVersion = e.state.version;
    e.setDurable(e.snapshotState());
    return changed;
  }

  private fence(g: Gate<E>, why: string, newOwner?: string): void {
    if (g.role === 'fenced') return;
    g.role = 'fenced';
    clearTimeout(g.timer);
    const to = newOwner === undefined ? '' : ` (the lock is now ${newOwner}'s)`;
    g.e.held = `fenced: ${why}${to}; this gateway answers nothing for it and acknowledged nothing the cluster refused; restart it to stand by again (if it was blocklisted, "ceph osd blocklist ls" shows its address; the restart uses a new one)`;
    this.p.log.error({ export: g.e.key, newOwner }, `${g.e.key}: stopped serving: ${g.e.held}`);
  }
}

/** Whether the lock owner `owner` still watches the image header (its session is alive). */
function alive(owner: string, st: RbdLockState): boolean {
  return st.watchers.some((w) => sameAddr(w.addr, owner));
}

/** Ceph prints one address as "127.0.0.1:0/123" or with a "v1:"/"v2:" prefix. */
function sameAddr(a: string, b: string): boolean {
  const bare = (s: string) => s.replace(/^v[12]:/, '');
  return bare(a) === bare(b);
}
