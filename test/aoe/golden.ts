// Helpers for the src/aoe tests: golden frames written as annotated hex,
// field-by-field frame builders, a test export, one request/reply exchange
// through respond(), the invariants every reply must satisfy, and a runner
// for tables of rows.
//
// Hex text: everything from '#' to the end of a line is a comment; spaces,
// newlines, '|' and ':' are ignored, so MACs can be written aa:bb:cc:dd:ee:ff.

import {
  buildIdentify,
  FrameContext,
  isReply,
  Outcome,
  respond,
  sectorsForMtu,
  TargetState,
  parseMac,
  formatMac,
} from '../../src/aoe';
import { replyContentLength } from '../helpers/replies';

type Test = tap.Test;

// ---------------------------------------------------------------- hex text

/** Bytes from annotated hex text (and/or byte arrays), concatenated. */
export function hex(...parts: (string | Uint8Array)[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      chunks.push(p);
      continue;
    }
    const clean = p.replace(/#[^\n]*/g, '').replace(/[\s|:]/g, '');
    if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length % 2 !== 0) {
      throw new Error(`bad hex text: ${JSON.stringify(p.slice(0, 80))}`);
    }
    const b = new Uint8Array(clean.length / 2);
    for (let i = 0; i < b.length; i++) b[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
    chunks.push(b);
  }
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Two hex digits. */
export function u8(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0');
}

export function be16(n: number): string {
  return u8(n >> 8) + u8(n);
}

export function be32(n: number): string {
  return u8(n >>> 24) + u8(n >>> 16) + u8(n >>> 8) + u8(n);
}

/** `n` copies of one byte, as hex text. */
export function rep(byte: number, n: number): string {
  return u8(byte).repeat(n);
}

/** Latin-1 text as hex. */
export function ascii(s: string): string {
  let h = '';
  for (let i = 0; i < s.length; i++) h += u8(s.charCodeAt(i));
  return h;
}

/** Six little-endian LBA bytes of a number (up to 2^48 - 1). */
export function lba6(n: number): string {
  let h = '';
  for (let i = 0; i < 6; i++) {
    h += u8(n % 256);
    n = Math.floor(n / 256);
  }
  return h;
}

/** Bytes padded with zeros to the Ethernet minimum of 60. */
export function pad60(...parts: (string | Uint8Array)[]): Uint8Array {
  const b = hex(...parts);
  if (b.length >= 60) return b;
  const out = new Uint8Array(60);
  out.set(b);
  return out;
}

/** Hex dump, 16 bytes a line, for readable diffs. */
export function dump(b: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < b.length; i += 16) {
    const row: string[] = [];
    for (let j = i; j < Math.min(i + 16, b.length); j++) row.push(u8(b[j]));
    lines.push(`${i.toString().padStart(4, ' ')}: ${row.join(' ')}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- addresses

export const BCAST = 'ff:ff:ff:ff:ff:ff';
/** The target's own MAC. */
export const TARGET = '02:aa:bb:00:07:03';
/** Initiators. */
export const A = '02:00:00:00:00:0a';
export const B = '02:00:00:00:00:0b';
export const C = '02:00:00:00:00:0c';
export const D = '02:00:00:00:00:0d';

/** The MAC of initiator number i (for filling lists): 0e:00:00:00:hi:lo. */
export function macN(i: number): string {
  return `0e:00:00:00:${u8(i >> 8)}:${u8(i)}`;
}

// ---------------------------------------------------------------- frame builders (hex text)

export interface HdrFields {
  dst?: string;
  src?: string;
  type?: number;
  ver?: number;
  flags?: number;
  error?: number;
  shelf?: number;
  slot?: number;
  cmd: number;
  tag?: number;
}

/** The 24-byte Ethernet + AoE header. Defaults: A → TARGET, ver 1, e7.3, tag 0x0000abcd. */
export function hdr(f: HdrFields): string {
  return [
    (f.dst ?? TARGET).replace(/:/g, ''),
    (f.src ?? A).replace(/:/g, ''),
    be16(f.type ?? 0x88a2),
    u8(((f.ver ?? 1) << 4) | (f.flags ?? 0)),
    u8(f.error ?? 0),
    be16(f.shelf ?? 7),
    u8(f.slot ?? 3),
    u8(f.cmd),
    be32(f.tag ?? 0xabcd),
  ].join(' ');
}

/** A reply header as our target must write it: TARGET → dst, ver 1, R (and E with an error), e7.3. */
export function rhdr(f: { cmd: number; tag?: number; dst?: string; error?: number; shelf?: number; slot?: number }): string {
  return hdr({
    dst: f.dst ?? A,
    src: TARGET,
    flags: f.error ? 0x0c : 0x08,
    error: f.error ?? 0,
    shelf: f.shelf ?? 7,
    slot: f.slot ?? 3,
    cmd: f.cmd,
    tag: f.tag ?? 0xabcd,
  });
}

export interface AtaFields {
  aflags?: number;
  feature?: number;
  count?: number;
  op: number;
  /** A number (written little-endian over six bytes) or six bytes of hex. */
  lba?: number | string;
  /** The two reserved bytes 34-35. */
  res?: number;
}

/** The 12 ATA argument bytes (frame offsets 24-35). */
export function ata(f: AtaFields): string {
  const lba = typeof f.lba === 'string' ? f.lba : lba6(f.lba ?? 0);
  return [u8(f.aflags ?? 0), u8(f.feature ?? 0), u8(f.count ?? 0), u8(f.op), lba, be16(f.res ?? 0)].join(' ');
}

export interface CfgFields {
  bufcnt?: number;
  fw?: number;
  scnt?: number;
  /** The whole byte 29 (version nibble and CCmd); overrides ver/ccmd. */
  vercmd?: number;
  ver?: number;
  ccmd?: number;
  /** Config String Length; defaults to the length of `str`. */
  len?: number;
  /** The string, as latin-1 text. */
  str?: string;
}

/** The Query Config argument (frame offsets 24-31) and string. */
export function cfg(f: CfgFields): string {
  const s = f.str ?? '';
  const vercmd = f.vercmd ?? ((f.ver ?? 0) << 4) | (f.ccmd ?? 0);
  return [be16(f.bufcnt ?? 0), be16(f.fw ?? 0), u8(f.scnt ?? 0), u8(vercmd), be16(f.len ?? s.length), ascii(s)].join(' ');
}

/** A Query Config reply argument from our target: bufcnt 16, firmware 0x5001, AoE 1. */
export function cfgReply(f: { ccmd?: number; scnt?: number; str?: string; bufcnt?: number }): string {
  return cfg({ bufcnt: f.bufcnt ?? 16, fw: 0x5001, scnt: f.scnt ?? 2, ver: 1, ccmd: f.ccmd ?? 0, str: f.str ?? '' });
}

export type Dir = [dcmd: number, mac: string, reserved?: number];

/** The Mac Mask argument (frame offsets 24-27) and directives. */
export function mask(f: { res?: number; mcmd: number; merror?: number; dircount?: number; dirs?: Dir[] }): string {
  const dirs = f.dirs ?? [];
  let h = [u8(f.res ?? 0), u8(f.mcmd), u8(f.merror ?? 0), u8(f.dircount ?? dirs.length)].join(' ');
  for (const [dcmd, mac, r] of dirs) h += ` ${u8(r ?? 0)} ${u8(dcmd)} ${mac.replace(/:/g, '')}`;
  return h;
}

/** A Mac Mask reply listing `macs` (each as directive 0). */
export function maskList(mcmd: number, macs: string[]): string {
  return mask({ mcmd, dirs: macs.map((m): Dir => [0, m]) });
}

/** The Reserve/Release argument (frame offsets 24-25) and addresses. */
export function resv(f: { rcmd: number; nmacs?: number; macs?: string[] }): string {
  const macs = f.macs ?? [];
  return [u8(f.rcmd), u8(f.nmacs ?? macs.length), ...macs.map((m) => m.replace(/:/g, ''))].join(' ');
}

// ---------------------------------------------------------------- a test export

export interface TargetOpts {
  shelf?: number;
  slot?: number;
  sectors?: number;
  readOnly?: boolean;
  bufferCount?: number;
  mtu?: number;
  mask?: string[];
  reserve?: string[];
  config?: string;
  writeCache?: boolean;
  mac?: string;
  /** Take Mac Mask edits and Reserve sets sent to broadcast (config key broadcast-edits). */
  broadcastEdits?: boolean;
}

export class Target {
  readonly st: TargetState;
  readonly ctx: FrameContext;
  private mtuNow: number;

  constructor(o: TargetOpts = {}) {
    const shelf = o.shelf ?? 7;
    const slot = o.slot ?? 3;
    const sectors = o.sectors ?? 8192;
    const identify = buildIdentify({
      sectors,
      serial: `${shelf}.${slot}:testhost`,
      firmware: 'V1',
      model: 'aoe-target',
      writeCache: o.writeCache ?? true,
    });
    this.st = new TargetState(shelf, slot, sectors, o.readOnly ?? false, o.bufferCount ?? 16, identify);
    this.mtuNow = o.mtu ?? 1500;
    this.ctx = new FrameContext(parseMac(o.mac ?? TARGET), sectorsForMtu(this.mtuNow));
    if (o.mask) this.st.mask.setStrings(o.mask);
    if (o.reserve) this.st.reserve.setStrings(o.reserve);
    if (o.config !== undefined) this.st.setConfigString(o.config);
    this.st.broadcastEdits = o.broadcastEdits ?? false;
    this.st.version = 0;
  }

  get mtu(): number {
    return this.mtuNow;
  }

  /** An MTU change: the next request sees the new sectors per frame. */
  set mtu(m: number) {
    this.mtuNow = m;
    this.ctx.maxSectors = sectorsForMtu(m);
  }
}

// ---------------------------------------------------------------- one exchange

/** Where requests and replies sit inside their buffers (non-zero, as in a ring). */
export const RX_OFF = 40;
export const TX_OFF = 72;
const TAIL = 64;

export interface Exchange {
  outcome: Outcome;
  /** The finished reply (a reply outcome: ctx.replyLen bytes), else null. */
  reply: Uint8Array | null;
  /** The first 36 bytes of the slot (the prepared header of a Pending reply). */
  head: Uint8Array;
  /** The whole transmit buffer. */
  tx: Uint8Array;
  /** respond() did not modify the receive buffer. */
  rxIntact: boolean;
  /** respond() wrote nothing before the slot or beyond MTU + 14 bytes of it. */
  outsideIntact: boolean;
}

/**
 * Runs one request through respond(). The request sits at RX_OFF in a
 * buffer whose other bytes are `rxJunk`; the reply slot at TX_OFF in a
 * buffer filled with `txJunk` (stale data that must never leak).
 */
export function exchange(tg: Target, req: Uint8Array, rxJunk = 0xcc, txJunk = 0xaa, tx?: Uint8Array): Exchange {
  const slot = tg.mtu + 14;
  const rx = new Uint8Array(RX_OFF + req.length + TAIL).fill(rxJunk);
  rx.set(req, RX_OFF);
  const rxCopy = rx.slice();
  if (!tx) tx = new Uint8Array(TX_OFF + slot + TAIL).fill(txJunk);
  const txCopy = tx.slice();
  tg.ctx.replyLen = -1; // a stale length must not pass for this frame's
  const outcome = respond(rx, RX_OFF, req.length, tg.st, tg.ctx, tx, TX_OFF);
  let rxIntact = true;
  for (let i = 0; i < rx.length; i++) if (rx[i] !== rxCopy[i]) rxIntact = false;
  let outsideIntact = true;
  for (let i = 0; i < TX_OFF; i++) if (tx[i] !== txCopy[i]) outsideIntact = false;
  for (let i = TX_OFF + slot; i < tx.length; i++) if (tx[i] !== txCopy[i]) outsideIntact = false;
  return {
    outcome,
    reply: isReply(outcome) ? tx.slice(TX_OFF, TX_OFF + tg.ctx.replyLen) : null,
    head: tx.slice(TX_OFF, TX_OFF + 36),
    tx,
    rxIntact,
    outsideIntact,
  };
}

// ---------------------------------------------------------------- reply invariants

function macAt(b: Uint8Array, o: number): string {
  return formatMac(b, o);
}

/**
 * What is wrong with the header of a reply (or a prepared Pending reply) to
 * `req`: addressing, Ver 1, R, E exactly with an error code, our shelf/slot,
 * command and tag echoed. For ATA: flags and LBA echoed, reserved bytes zero.
 */
export function headerProblems(req: Uint8Array, rep: Uint8Array, tg: Target): string[] {
  const p: string[] = [];
  if (rep.length < 24) return [`reply of ${rep.length} bytes`];
  if (macAt(rep, 0) !== macAt(req, 6)) p.push(`dst ${macAt(rep, 0)} is not the requester ${macAt(req, 6)}`);
  if (macAt(rep, 6) !== formatMac(tg.ctx.mac, 0)) p.push(`src ${macAt(rep, 6)} is not our MAC`);
  if (rep[12] !== 0x88 || rep[13] !== 0xa2) p.push('EtherType is not 0x88a2');
  if (rep[14] >> 4 !== 1) p.push(`Ver ${rep[14] >> 4}`);
  if ((rep[14] & 0x08) === 0) p.push('R flag clear');
  if ((rep[14] & 0x03) !== 0) p.push(`MBZ flag bits ${rep[14] & 3}`);
  const e = (rep[14] & 0x04) !== 0;
  if (e && rep[15] === 0) p.push('E set with error 0');
  if (!e && rep[15] !== 0) p.push(`error byte ${rep[15]} without E`);
  const shelf = (rep[16] << 8) | rep[17];
  if (shelf !== tg.st.shelf || rep[18] !== tg.st.slot) p.push(`address ${shelf}.${rep[18]} is not ours`);
  if (rep[19] !== req[19]) p.push(`command ${rep[19]} not echoed (${req[19]})`);
  for (let i = 20; i < 24; i++) if (rep[i] !== req[i]) p.push('tag not echoed');
  if (rep[19] === 0 && !(e && (rep[15] === 1 || rep[15] === 5)) && rep.length >= 36) {
    if (rep[24] !== req[24]) p.push('AFlags not echoed');
    for (let i = 28; i < 34; i++) if (rep[i] !== req[i]) p.push(`LBA byte ${i - 28} not echoed`);
    if (rep[34] !== 0 || rep[35] !== 0) p.push('ATA reserved bytes not zero');
  }
  return p;
}

/** Header problems plus: length = max(60, content), padding all zero, inside the MTU. */
export function replyProblems(req: Uint8Array, rep: Uint8Array, tg: Target): string[] {
  const p = headerProblems(req, rep, tg);
  const n = replyContentLength(rep);
  if (rep.length !== Math.max(60, n)) p.push(`length ${rep.length}, content ${n}`);
  for (let i = n; i < rep.length; i++) {
    if (rep[i] !== 0) {
      p.push(`padding byte ${i} is 0x${u8(rep[i])}`);
      break;
    }
  }
  if (rep.length > tg.mtu + 14) p.push(`length ${rep.length} exceeds MTU ${tg.mtu} + 14`);
  return p;
}

// ---------------------------------------------------------------- table rows

export type Want =
  /** Silence, for whichever reason. */
  | 'no reply'
  /** Silence for this reason (ShortFrame, Masked, ShortArgument, ConfigMismatch). */
  | { none: Outcome }
  /**
   * The exact finished reply. The outcome defaults to what the golden bytes
   * show (replyOutcome): the command, E, and ERR in an ATA reply's status.
   */
  | { reply: string | Uint8Array; outcome?: Outcome }
  /** Storage work (Read, Write, Flush) with the reply header prepared (first 36 bytes). */
  | { pending: Outcome; lba?: number; count?: number; head: string | Uint8Array };

/** The outcome a finished reply's own bytes show: its command (ATA or not), E, and ERR in an ATA status. */
export function replyOutcome(rep: Uint8Array): Outcome {
  const ata = rep[19] === 0;
  if (rep[14] & 0x04) return ata ? Outcome.AtaAoeError : Outcome.AoeError;
  if (ata) return rep[27] & 0x01 ? Outcome.AtaError : Outcome.AtaReply;
  return Outcome.Reply;
}

export interface StateWant {
  mask?: string[];
  reserve?: string[];
  /** Config string as latin-1 text. */
  config?: string;
  /** How much st.version moved (0: unchanged). */
  versionDelta?: number;
}

export interface Step {
  request: string | Uint8Array;
  want: Want;
  state?: StateWant;
  /** Extra assertions on the exchange. */
  check?: (t: Test, x: Exchange, tg: Target) => void;
}

export interface Row {
  desc: string;
  target?: TargetOpts;
  setup?: (tg: Target) => void;
  request?: string | Uint8Array;
  want?: Want;
  state?: StateWant;
  check?: (t: Test, x: Exchange, tg: Target) => void;
  /** Several requests against the same export, in order. */
  steps?: Step[];
}

/** Runs one step; returns the exchange. */
export function runStep(t: Test, tg: Target, s: Step, label = ''): Exchange {
  const req = hex(s.request);
  const v0 = tg.st.version;
  const x = exchange(tg, req);
  t.ok(x.rxIntact, `${label}request buffer untouched`);
  t.ok(x.outsideIntact, `${label}nothing written outside the reply slot`);
  const w = s.want;
  if (w === 'no reply') {
    t.ok(x.outcome >= Outcome.ShortFrame, `${label}no reply (outcome ${x.outcome})`);
  } else if ('none' in w) {
    t.equal(x.outcome, w.none, `${label}no reply, for this reason`);
  } else if ('reply' in w) {
    const want = hex(w.reply);
    t.equal(x.outcome, w.outcome ?? replyOutcome(want), `${label}reply outcome`);
    t.equal(x.reply?.length, want.length, `${label}reply length`);
    if (x.reply) {
      t.equal(dump(x.reply), dump(want), `${label}reply bytes`);
      t.same(replyProblems(req, x.reply, tg), [], `${label}reply invariants`);
    }
  } else {
    t.equal(x.outcome, w.pending, `${label}storage outcome`);
    if (w.lba !== undefined) t.equal(tg.ctx.ata.lba, w.lba, `${label}lba`);
    if (w.count !== undefined) t.equal(tg.ctx.ata.count, w.count, `${label}count`);
    t.equal(dump(x.head), dump(hex(w.head)), `${label}prepared reply header`);
    t.same(headerProblems(req, x.head, tg), [], `${label}header invariants`);
  }
  const sw = s.state;
  if (sw) {
    if (sw.mask) t.same(tg.st.mask.toStrings(), sw.mask, `${label}mask list`);
    if (sw.reserve) t.same(tg.st.reserve.toStrings(), sw.reserve, `${label}reserve list`);
    if (sw.config !== undefined) t.equal(tg.st.configString(), sw.config, `${label}config string`);
    if (sw.versionDelta !== undefined) t.equal(tg.st.version - v0, sw.versionDelta, `${label}state version delta`);
  }
  s.check?.(t, x, tg);
  return x;
}

/** One t.test per row. */
export function runRows(t: Test, rows: Row[]): void {
  for (const row of rows) {
    t.test(row.desc, (t) => {
      const tg = new Target(row.target);
      row.setup?.(tg);
      if (row.steps) {
        row.steps.forEach((s, i) => runStep(t, tg, s, `step ${i + 1}: `));
      } else {
        if (row.request === undefined || row.want === undefined) throw new Error(`row "${row.desc}" has no request/want`);
        runStep(t, tg, { request: row.request, want: row.want, state: row.state, check: row.check });
      }
      t.end();
    });
  }
}
