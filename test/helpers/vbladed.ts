// vbladed with its real worker in a test namespace, for the integration
// tests: start it on a config file, talk to it with `vblade ctl`, and read
// an export from a client in the initiator's namespace.
//
// Network safety: everything here runs inside the namespace it is given,
// one a test created (lab/netns.ts), never in the root namespace.

import * as path from 'node:path';
import { AoeClient, type Target } from '../../src/client';
import { sleep, type TestLike } from '../../lab/common';
import type { Netns } from '../../lab/netns';
import type { Proc } from '../../lab/process';
import { patternSectors } from './files';
import { REPO } from './targets';

export const VBLADED = path.join(REPO, 'bin', 'vbladed.js');
export const VBLADE = path.join(REPO, 'bin', 'vblade.js');

/** `vbladed --foreground --config CONF` in `ns`, its run and state directories in `dir`, logging JSON to stderr. */
export function spawnVbladed(t: TestLike, ns: Netns, conf: string, dir: string, env?: NodeJS.ProcessEnv): Proc {
  const dirs = ['--run-dir', path.join(dir, 'run'), '--state-dir', path.join(dir, 'state')];
  return ns.spawn(t, process.execPath, [VBLADED, '--foreground', '--config', conf, ...dirs, '--log', 'stderr'], { env });
}

/** `vblade ctl ARGS` inside the namespace. */
export async function ctlIn(
  ns: Netns,
  socket: string,
  ...args: string[]
): Promise<{ code: number | null; out: string; err: string }> {
  const r = await ns.run(process.execPath, [VBLADE, 'ctl', '--socket', socket, ...args], { timeoutMs: 30000 });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** Whether sector 0 of the target reads back as the pattern, from a client on `ifname` in `ns`. */
export async function readsPattern(ns: Netns, ifname: string, target: Target): Promise<boolean> {
  const c = AoeClient.open(ifname, { netns: ns.path, timeoutMs: 400, retries: 2 });
  try {
    return Buffer.from(await c.read(target, 0, 1)).equals(patternSectors(0, 1));
  } catch {
    return false;
  } finally {
    c.close();
  }
}

/** Polls `fn` until it is true; throws after `timeoutMs`. */
export async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 15000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
