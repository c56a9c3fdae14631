// A worker for supervisor and vbladed tests: the real worker.ts process
// plumbing (IPC, signals, state store) around a stub server that opens no
// sockets. Behaviour from the environment:
//   STUB_CRASH_FILE   file holding a number of ms: exit with code 3 that long after start
//   STUB_FAIL_START   reject Server.start with this message
//   STUB_NOTHING_TO_SERVE reject Server.start as the server does when no export can be served
//                     (NothingToServe, reasons separated by "|"): a failure that comes back at every try
//   STUB_NO_INTERFACE reject Server.start with this message at a first start only, as the
//                     server does when none of the interfaces exists (a restart waits)
//   STUB_HANG_AFTER   ms after start, block the event loop for good (no heartbeats)
//   STUB_STOP_DELAY   ms the stop takes (in-flight requests finishing)
// The stub gives each export without saved state an initial state
// {config: "set-by-<pid>", reserve: [52:54:00:00:00:0a]} through saveState
// (onStateChange without a state dir), implements changeState, and returns
// stats in the ServerStats shape of src/api/control.ts.

import * as fs from 'node:fs';
import { NothingToServe } from '../../src/api/errors';
import { runWorkerProcess, type ServerLike, type StartServer } from '../../src/service/worker';
import { exportKey, type ExportState, type ServerConfig } from '../../src/config/export-config';

/** What the real server does with a changed state: save it when it can, else tell. */
async function record(hooks: Parameters<StartServer>[2], key: string, s: ExportState): Promise<void> {
  if (hooks.saveState) await hooks.saveState(key, s);
  else hooks.onStateChange?.(key, s);
}

const start: StartServer = async (config, log, hooks, opts) => {
  if (process.env.STUB_FAIL_START) throw new Error(process.env.STUB_FAIL_START);
  if (process.env.STUB_NOTHING_TO_SERVE) throw new NothingToServe(process.env.STUB_NOTHING_TO_SERVE.split('|'));
  if (process.env.STUB_NO_INTERFACE && opts.firstStart) throw new Error(process.env.STUB_NO_INTERFACE);
  if (process.env.STUB_CRASH_FILE) {
    const ms = Number(fs.readFileSync(process.env.STUB_CRASH_FILE, 'utf8'));
    setTimeout(() => process.exit(3), ms);
  }
  if (process.env.STUB_HANG_AFTER) {
    setTimeout(() => {
      for (;;) {
        // blocked event loop
      }
    }, Number(process.env.STUB_HANG_AFTER));
  }
  const states = new Map<string, ExportState>();
  let current: ServerConfig = { exports: [] };
  const add = async (c: ServerConfig): Promise<void> => {
    for (const e of c.exports) {
      const key = exportKey(e);
      if (states.has(key)) continue;
      const saved = hooks.initialState?.(key);
      let s: ExportState;
      if (saved?.status === 'ok') s = saved.state;
      else {
        s = { config: `set-by-${process.pid}`, macMask: e.macMask.slice(), reserve: ['52:54:00:00:00:0a'] };
        await record(hooks, key, s);
      }
      states.set(key, s);
    }
    const keep = new Set(c.exports.map(exportKey));
    for (const k of [...states.keys()]) if (!keep.has(k)) states.delete(k);
    current = c;
  };
  await add(config);
  const keepAlive = setInterval(() => undefined, 1 << 30);
  log.info({ exports: config.exports.map(exportKey) }, 'stub server started');
  const server: ServerLike = {
    async apply(c) {
      await add(c);
      log.info({ exports: c.exports.map(exportKey) }, 'stub server applied');
    },
    async stop() {
      await new Promise((r) => setTimeout(r, Number(process.env.STUB_STOP_DELAY ?? 0)));
      clearInterval(keepAlive);
    },
    stats() {
      return {
        exports: current.exports.map((e) => ({
          key: exportKey(e),
          file: e.file,
          sectors: e.nullSectors ?? 0,
          interfaces: e.interfaces,
          readOnly: e.readOnly,
          inflight: 0,
          stateDurable: true,
          failedSaves: 0,
          config: states.get(exportKey(e))?.config ?? '',
          macMask: [],
          reserve: [],
          counters: { reads: 5, writes: 2, read_bytes: 2560, write_bytes: 1024 },
          latencyUsLog2: [0, 0, 1, 3, 1],
          latencySumUs: 120,
        })),
        interfaces: [
          {
            name: current.exports[0]?.interfaces[0] ?? 'lo',
            open: true,
            up: true,
            mtu: 1500,
            sectorsPerFrame: 2,
            counters: { rx_frames: 9 },
          },
        ],
      };
    },
    async changeState(key, change) {
      const s = states.get(key);
      if (!s) throw new Error(`${key} is not being served right now`);
      const next = change(s);
      await record(hooks, key, next);
      states.set(key, next);
      return next;
    },
  };
  return server;
};

runWorkerProcess(start);
