// Floods of hand-made frames from one initiator: every template is sent again
// and again (with a fresh tag each time) in sendmmsg batches for a while, and
// every reply that comes back is counted and checked against the reply rules.

import { AoeClient, ReceivedFrame } from '../../../src/client/client';
import { writeAtaRequest, writeConfigQuery, writeMaskRequest, writeReserve } from '../../../src/client/requests';
import { sleep } from '../../../lab/common';
import { FuzzTarget, replyViolations } from './fuzz';

export interface FloodStats {
  sent: number;
  replies: number;
  /** Replies with E set, by AoE error code. */
  aoeErrors: Record<number, number>;
  /** ATA replies with the ERR status bit. */
  ataErrors: number;
  /** Replies without any error. */
  clean: number;
  /** Of those, by command (0 ATA, 1 config, 2 mask, 3 reserve). */
  cleanByCommand: Record<number, number>;
  violations: number;
  firstViolation?: string;
}

export interface Addr {
  dst: Uint8Array;
  src: Uint8Array;
  shelf: number;
  slot: number;
}

/** Hostile templates: junk WRITEs (48- and 28-bit) over [lba, lba + span), READs, and optionally config force set, a mask edit adding `src`, reserve set or force set. */
export function hostileFrames(
  a: Addr,
  o: { lba: number; span: number; maskAdd?: boolean; reserve?: boolean; reserveForce?: boolean; configSet?: boolean },
): Uint8Array[] {
  const out: Uint8Array[] = [];
  const junk = new Uint8Array(1024).fill(0xee);
  for (let l = o.lba; l < o.lba + o.span; l += 97) {
    const w = new Uint8Array(36 + 1024);
    writeAtaRequest(w, 0, a, 0, 0x41, 0, 2, 0x34, l, 1024, junk);
    out.push(w);
    const w28 = new Uint8Array(36 + 512);
    writeAtaRequest(w28, 0, a, 0, 0x01, 0, 1, 0x30, 0xe0000000 + l, 512, junk);
    out.push(w28);
    const r = new Uint8Array(60);
    writeAtaRequest(r, 0, a, 0, 0x40, 0, 2, 0x24, l);
    out.push(r);
  }
  if (o.configSet) {
    const c = new Uint8Array(60);
    writeConfigQuery(c, 0, a, 0, 4, Buffer.from('pwned'));
    out.push(c);
  }
  if (o.maskAdd) {
    const m = new Uint8Array(60);
    writeMaskRequest(m, 0, a, 0, 1, [{ command: 1, mac: a.src }]);
    out.push(m);
  }
  if (o.reserve ?? true) {
    const rs = new Uint8Array(60);
    writeReserve(rs, 0, a, 0, o.reserveForce ? 2 : 1, [a.src]);
    out.push(rs);
  }
  return out;
}

/** Sends the templates over and over for `durationMs`; resolves with what came back. */
export async function flood(
  client: AoeClient,
  templates: Uint8Array[],
  durationMs: number,
  target: FuzzTarget,
): Promise<FloodStats> {
  const st: FloodStats = { sent: 0, replies: 0, aoeErrors: {}, ataErrors: 0, clean: 0, cleanByCommand: {}, violations: 0 };
  const stride = Math.ceil(Math.max(...templates.map((f) => f.length)) / 64) * 64;
  const arena = new Uint8Array(stride * templates.length);
  const desc = new Uint32Array(templates.length * 2);
  templates.forEach((f, i) => {
    arena.set(f, i * stride);
    desc[i * 2] = i * stride;
    desc[i * 2 + 1] = Math.max(f.length, 60);
  });
  const unlisten = client.listen((f: ReceivedFrame) => {
    if (!f.header.response) return;
    st.replies++;
    const v = replyViolations(f.bytes, target);
    if (v.length > 0) {
      st.violations++;
      st.firstViolation ??= v.join('; ');
    }
    if (f.header.error) st.aoeErrors[f.header.errorCode] = (st.aoeErrors[f.header.errorCode] ?? 0) + 1;
    else if (f.header.command === 0 && f.bytes.length >= 36 && f.bytes[27] & 0x01) st.ataErrors++;
    else {
      st.clean++;
      st.cleanByCommand[f.header.command] = (st.cleanByCommand[f.header.command] ?? 0) + 1;
    }
  });
  const end = Date.now() + durationMs;
  let tag = 0x40000000;
  try {
    while (Date.now() < end) {
      for (let i = 0; i < templates.length; i++) {
        const o = i * stride;
        tag = (tag + 1) & 0x7fffffff;
        arena[o + 20] = tag >>> 24;
        arena[o + 21] = (tag >>> 16) & 0xff;
        arena[o + 22] = (tag >>> 8) & 0xff;
        arena[o + 23] = tag & 0xff;
      }
      const r = client.socket.send(arena, desc, templates.length);
      if (r > 0) st.sent += r;
      await sleep(1);
    }
    await sleep(200);
  } finally {
    unlisten();
  }
  return st;
}
