// Intake and dispatch: every frame ready on a link's receive ring is
// checked for an AoE request to us, handed to each export it addresses, and
// answered through respond() (src/aoe). What respond() returns decides the
// rest: a finished reply is queued (or waits for a state save), storage
// work goes to Storage, silence frees the transmit slot.

// Imported from the modules themselves, not '../aoe': a re-export is a getter call per use.
import { AtaOpcode, OFF_ATA_CMDSTAT, OFF_SRC } from '../aoe/constants';
import { respond } from '../aoe/dispatch';
import { Outcome } from '../aoe/frame-context';
import {
  addresses,
  isAoeRequest,
  isAtaRequest,
  isForMac,
  isFromMac,
  isFromStation,
  majorOf,
  minorOf,
  wantsMtuLook,
} from '../aoe/header';
import { DrainLayout } from '../native/addon';
import { ExportCounter, LinkCounter } from './counters';
import { InitiatorField } from './initiators';
import type { EngineContext } from './engine-context';
import type { Export } from './export';
import { STORE_PENDING } from '../backend/block-store';
import type { Link } from './link';
import type { Replies } from './replies';
import type { Storage } from './storage';

export class Intake {
  constructor(
    private readonly ctx: EngineContext,
    private readonly storage: Storage,
    private readonly replies: Replies,
  ) {}

  /**
   * Handles the frames ready on a link's ring, as many as free transmit and
   * request slots can answer; returns how many it took. Frames beyond that
   * stay in the ring (link.rxStalled) rather than being dropped: an initiator
   * whose request is lost waits its retransmission timeout.
   */
  drain(link: Link): number {
    const sock = link.socket;
    if (sock === null || !link.accepting) return 0;
    const desc = link.rxDesc;
    let total = 0;
    for (;;) {
      // One transmit slot per frame, and one request slot: a frame addressing several exports may still find none.
      const room = Math.min(link.rxBatch, link.txAvailable, this.storage.requestsFree);
      if (room === 0) {
        // Saturated: the frames wait in the ring; counted once per stall, not per look.
        if (!link.rxStalled) link.counters[LinkCounter.RxStalls]++;
        link.rxStalled = true;
        break;
      }
      link.rxStalled = false;
      const n = sock.drain(desc, room);
      if (n === 0) break;
      total += n;
      link.counters[LinkCounter.RxFrames] += n;
      const done = link.rxDone;
      let k = 0;
      for (let i = 0; i < n; i++) {
        const p = i * DrainLayout.Stride;
        const slot = desc[p + DrainLayout.Slot];
        if (!this.frame(link, sock.ring, desc[p + DrainLayout.Offset], desc[p + DrainLayout.Length], slot)) done[k++] = slot;
      }
      if (k > 0) sock.releaseMany(done, k);
      this.storage.pump();
      if (n < room) break;
    }
    return total;
  }

  /** Takes the frames left waiting in stalled rings, now that a batch's end freed slots; returns how many. */
  resumeStalled(): number {
    const links = this.ctx.links;
    let total = 0;
    for (let i = 0; i < links.length; i++) if (links[i].rxStalled) total += this.drain(links[i]);
    return total;
  }

  /** Handles one frame for every export it addresses; true when a request still holds its receive slot. */
  private frame(link: Link, ring: Uint8Array, off: number, len: number, slot: number): boolean {
    const mac = link.ctx.mac;
    // A broadcast, multicast or zero source gets no reply (it would go to every host, or nowhere) and no view.
    if (!isAoeRequest(ring, off, len) || !isFromStation(ring, off) || isFromMac(ring, off, mac) || !isForMac(ring, off, mac)) {
      link.counters[LinkCounter.Ignored]++;
      return false;
    }
    if (wantsMtuLook(ring, off, len, link.ctx.maxSectors)) link.refresh(); // the MTU may have changed since the last look
    const ata = isAtaRequest(ring, off);
    const major = majorOf(ring, off);
    const minor = minorOf(ring, off);
    let keepsSlot = false;
    let served = false;
    const list = link.exports;
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      const st = e.state;
      if (e.closing || e.held !== null || !addresses(ring, off, st.shelf, st.slot)) continue;
      // ATA commands only for an exact address: a broadcast write must not reach every export.
      if (ata && (major !== st.shelf || minor !== st.slot)) continue;
      served = true;
      if (this.serve(link, e, ata, ring, off, len, slot)) keepsSlot = true;
    }
    if (!served) link.counters[LinkCounter.Ignored]++;
    return keepsSlot;
  }

  /** One export's answer to one frame; true when its storage work holds the receive slot. */
  private serve(link: Link, e: Export, ata: boolean, ring: Uint8Array, off: number, len: number, slot: number): boolean {
    const ctx = this.ctx;
    if (ata) {
      // While a state change is being saved, ATA access needs the saved state's consent too (a retransmission finds it saved).
      if (e.state.version !== e.durableVersion && !e.admittedBySaved(ring, off + OFF_SRC)) {
        e.counters[ExportCounter.MaskDrops]++;
        return false;
      }
      // A snapshot or view reset is waiting for the requests in flight: new ones are retransmitted later.
      if (e.paused) {
        ctx.eventsCalled = true; // the snapshot that paused it goes on in the event loop
        e.counters[ExportCounter.PausedDrops]++;
        return false;
      }
    }
    const tx = link.allocTx();
    if (tx < 0) {
      link.counters[LinkCounter.TxDrops]++;
      return false;
    }
    const outcome = respond(ring, off, len, e.state, link.ctx, link.arena, link.slotOffset(tx));
    if (e.state.version !== e.savedVersion) ctx.stateDue = true;
    // Per-initiator figures: every request the export answers (a masked or silent frame is none; storage
    // work counts in Storage.start, which may drop it for a retransmission instead).
    const who = e.initiators;
    const row = outcome <= Outcome.Flush ? who.rowFor(ring, off + OFF_SRC) : who.other;
    if (outcome <= Outcome.AtaError) {
      const at = row * InitiatorField.Count;
      who.figures[at + InitiatorField.Requests]++;
      if (outcome === Outcome.AoeError || outcome === Outcome.AtaAoeError || outcome === Outcome.AtaError)
        who.figures[at + InitiatorField.Errors]++;
    }
    switch (outcome) {
      case Outcome.Reply:
        e.counters[ExportCounter.Other]++;
        this.sendOrAwaitSave(link, e, tx);
        return false;
      case Outcome.AoeError:
        e.counters[ExportCounter.AoeErrors]++;
        this.sendOrAwaitSave(link, e, tx);
        return false;
      case Outcome.AtaReply:
        e.counters[ExportCounter.Other]++;
        // IDENTIFY, which initiators send before their first read: a new initiator's view is made now, so
        // that its reads find it (dropped reads cost the Linux driver its first retransmit timeout, ~15 s).
        // A machine the reservation refuses may neither read nor write: no view (no file, no share of max-views) for it.
        if (e.state.reserve.count === 0 || e.state.reserve.has(ring, off + OFF_SRC)) {
          // Before storeFor notes this request: whether the machine was silent before it (views = per-boot).
          if (ring[off + OFF_ATA_CMDSTAT] === AtaOpcode.IdentifyDevice && e.stores.identified(ring, off + OFF_SRC, ctx.clock))
            ctx.eventsCalled = true;
          if (e.stores.storeFor(ring, off + OFF_SRC, ctx.clock) === STORE_PENDING) ctx.eventsCalled = true;
        }
        link.queue(tx, link.ctx.replyLen);
        return false;
      case Outcome.AtaAoeError:
        e.counters[ExportCounter.AoeErrors]++;
        link.queue(tx, link.ctx.replyLen);
        return false;
      case Outcome.AtaError:
        e.counters[ExportCounter.AtaErrors]++;
        link.queue(tx, link.ctx.replyLen);
        return false;
      case Outcome.Read:
      case Outcome.Write:
      case Outcome.Flush:
        return this.storage.start(link, e, outcome, tx, ring, off, slot, row);
      case Outcome.Masked:
        e.counters[ExportCounter.MaskDrops]++;
        link.freeTx(tx);
        return false;
      default: // silence the protocol asks for: nothing to count
        link.freeTx(tx);
        return false;
    }
  }

  /** A state command's reply leaves now, or once the export's state it shows is saved. */
  private sendOrAwaitSave(link: Link, e: Export, tx: number): void {
    if ((this.ctx.persistent || e.ownStateSave !== null) && e.state.version !== e.durableVersion)
      this.replies.awaitSave(link, e, tx);
    else link.queue(tx, link.ctx.replyLen);
  }
}
