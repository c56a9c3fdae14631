// The client's half of the control socket: one request, one answer line
// (vblade ctl, tests). What the daemon says is read with bounds: an answer
// is at most MAX_REPLY bytes, and one not given in time is ControlTimeout,
// which a caller may tell from a refusal (the request may still be done).

import * as net from 'node:net';
import type { ControlReply, ControlRequest } from '../service/control';

/** The largest answer `vblade ctl` reads: stats and views of thousands of initiators fit many times over. */
const MAX_REPLY = 64 << 20;

/** No answer in time; the request may still be carried out (a reload that was only slow). */
export class ControlTimeout extends Error {}

export function controlRequest(socketPath: string, req: ControlRequest, timeoutMs = 30000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const pieces: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ControlTimeout(`no answer from ${socketPath} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(JSON.stringify({ id: 1, ...req }) + '\n'));
    sock.on('data', (chunk: Buffer) => {
      // The newline looked for in each piece as it comes: a long answer is read once, not again per piece.
      const nl = chunk.indexOf(0x0a);
      got += nl >= 0 ? nl : chunk.length;
      if (got > MAX_REPLY) {
        clearTimeout(timer);
        sock.destroy();
        reject(new Error(`${socketPath} answered more than ${MAX_REPLY / (1 << 20)} MiB; not a vbladed of ours?`));
        return;
      }
      pieces.push(nl >= 0 ? chunk.subarray(0, nl) : chunk);
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        let reply: unknown;
        try {
          reply = JSON.parse(Buffer.concat(pieces).toString('utf8'));
        } catch {
          reject(new Error(`${socketPath} answered something that is not JSON`));
          return;
        }
        const r = reply as ControlReply | null;
        if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean' || (!r.ok && typeof r.error !== 'string'))
          reject(new Error(`${socketPath} answered something that is not a reply of vbladed's`));
        else resolve(r);
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        e.code === 'ENOENT'
          ? 'no such socket; is vbladed running, and with this name?'
          : e.code === 'EACCES'
            ? 'permission denied; run as root or as a member of the control group'
            : e.code === 'ECONNREFUSED'
              ? 'nobody listens on it (a stale socket of a vbladed that died?)'
              : e.message;
      reject(new Error(`cannot connect to ${socketPath}: ${why}`));
    });
  });
}
