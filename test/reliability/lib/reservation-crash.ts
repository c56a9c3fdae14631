// A reservation survives everything the daemon survives: an
// initiator changes an export's reserve list with Reserve force sets; right
// after an acknowledgement something happens to the daemon -- kill -9 of the
// worker, kill -9 of the supervisor, a clean restart, a reload, a link flap,
// the state directory's file system full -- and afterwards the reserve list
// read through AoE must be the last acknowledged one. A change refused with
// AoE error 3 (the save failed) must not appear. Used by crash.test.ts and
// scripts/reliability/crash.js.
//
// The daemon is vbladed in the foreground (`vblade --config`), with a state
// directory, inside a namespace the test made; `plain-sigterm` and
// `plain-kill` use `vblade --state-dir` instead. Processes are stopped by pid.

import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { DiscoveredTarget } from '../../../src/client/client';
import { AoeError } from '../../../src/client/errors';
import { sleep, type TestLike } from '../../../lab/common';
import { sparseFile, tempDir, tmpfsMount } from '../../helpers/files';
import { createNetnsPair, type NetnsPair } from '../../../lab/netns';
import type { Proc } from '../../../lab/process';
import { OUR_VBLADE, startTarget } from '../../helpers/targets';
import { openClient, Rng } from './harness';

export const RESERVATION_EVENTS = [
  'kill-worker',
  'kill-supervisor',
  'restart',
  'reload',
  'link-flap',
  'enospc',
  'plain-sigterm',
  'plain-kill',
] as const;
export type ReservationEvent = (typeof RESERVATION_EVENTS)[number];

export interface ReservationReport {
  /** Reserve changes the daemon acknowledged, and of those, not found afterwards. */
  acknowledged: number;
  lost: number;
  /** Changes refused with AoE error 3 (state dir full), and of those, found afterwards anyway. */
  refused: number;
  appeared: number;
  events: Record<string, number>;
  /** Round-trip time of each acknowledged change (ms): the save is inside it. */
  ackMs: number[];
  problems: string[];
}

const SHELF = 5;
const SLOT = 1;

/** Reserve lists of 0..3 addresses that are not the client's (so reads and force sets always work). */
function randomList(rng: Rng): string[] {
  const n = rng.int(4);
  const out = new Set<string>();
  for (let i = 0; i < n; i++) out.add(`02:00:00:5e:00:${(1 + rng.int(200)).toString(16).padStart(2, '0')}`);
  return [...out];
}

class Daemon {
  proc: Proc | undefined;
  workerPid = 0;
  constructor(
    private readonly t: TestLike,
    private readonly pair: NetnsPair,
    private readonly conf: string,
    private readonly plain: { stateDir: string; file: string } | undefined,
  ) {}

  async start(): Promise<void> {
    if (this.plain) {
      const args = ['--state-dir', this.plain.stateDir, String(SHELF), String(SLOT), this.pair.targetIf, this.plain.file];
      this.proc = (await startTarget(this.t, this.pair.target, args, { label: 'vblade' })).proc;
      return;
    }
    this.proc = this.pair.target.spawn(this.t, process.execPath, [OUR_VBLADE, '--config', this.conf], {
      label: 'vbladed',
      maxLines: 20000,
    });
    await this.serving();
  }

  /** Waits for the (next) worker to serve; remembers its pid. */
  async serving(): Promise<void> {
    const m = await this.proc!.waitFor(/"msg":"worker (\d+) is serving/, { timeoutMs: 60000 });
    this.workerPid = Number(m[1]);
  }

  async stop(signal: NodeJS.Signals): Promise<void> {
    const p = this.proc!;
    p.signal(signal);
    await p.waitExit(30000);
    if (!this.plain && signal === 'SIGKILL') {
      // The worker notices its supervisor is gone and stops; wait until it has, by pid.
      for (let i = 0; i < 300 && processExists(this.workerPid); i++) await sleep(50);
    }
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `rounds` rounds of each event and counts acknowledged and lost reservation changes. */
export async function reservationRounds(
  t: TestLike,
  opts: { rounds: number; seed: number; events?: readonly ReservationEvent[]; log?: (l: string) => void },
): Promise<ReservationReport> {
  const rng = new Rng(opts.seed);
  const rep: ReservationReport = { acknowledged: 0, lost: 0, refused: 0, appeared: 0, events: {}, ackMs: [], problems: [] };
  for (const event of opts.events ?? RESERVATION_EVENTS) {
    for (let round = 0; round < opts.rounds; round++) {
      await oneRound(t, event, rng, rep, opts.log);
      rep.events[event] = (rep.events[event] ?? 0) + 1;
    }
  }
  return rep;
}

async function oneRound(
  t: TestLike,
  event: ReservationEvent,
  rng: Rng,
  rep: ReservationReport,
  log?: (l: string) => void,
): Promise<void> {
  const pair = await createNetnsPair(t, { labels: ['rtarget', 'rinit'] });
  const stateDir = event === 'enospc' ? await tmpfsMount(t, '64k') : join(tempDir(t, 'state'), 'state');
  const file = await sparseFile(t, 1 << 20);
  const run = tempDir(t, 'run');
  const conf = join(run, 'vblade.conf');
  writeFileSync(
    conf,
    `[daemon]\nstate-dir = ${stateDir}\nrun-dir = ${run}\ncontrol-socket = none\nlog = stderr\n\n` +
      `[export e${SHELF}.${SLOT}]\nfile = ${file}\ninterfaces = ${pair.targetIf}\n`,
  );
  const plain = event.startsWith('plain-') ? { stateDir, file } : undefined;
  const d = new Daemon(t, pair, conf, plain);
  await d.start();
  const client = await openClient(t, pair.init, pair.initIf, { timeoutMs: 300, retries: 20 });
  let target: DiscoveredTarget = await client.find(SHELF, SLOT, 30000);

  // A few acknowledged changes, then one right before the event.
  let acked: string[] = [];
  const changes = 1 + rng.int(4);
  for (let i = 0; i < changes; i++) {
    const want = randomList(rng);
    const sent = performance.now();
    acked = await client.reserveForceSet(target, want);
    rep.ackMs.push(performance.now() - sent);
    rep.acknowledged++;
    if (acked.join() !== want.join()) rep.problems.push(`${event}: the reply listed ${acked.join(' ')} for ${want.join(' ')}`);
  }

  let refused: string[] | undefined;
  switch (event) {
    case 'kill-worker':
      process.kill(d.workerPid, 'SIGKILL');
      await d.serving();
      break;
    case 'kill-supervisor':
      await d.stop('SIGKILL');
      await d.start();
      break;
    case 'restart':
    case 'plain-sigterm':
      await d.stop('SIGTERM');
      await d.start();
      break;
    case 'plain-kill':
      await d.stop('SIGKILL');
      await d.start();
      break;
    case 'reload':
      d.proc!.signal('SIGHUP');
      await d.proc!.waitFor(/"msg":"reloaded: /, { timeoutMs: 30000 });
      break;
    case 'link-flap':
      await pair.veth.down('a');
      await sleep(700);
      await pair.veth.up('a');
      await sleep(700);
      break;
    case 'enospc': {
      fill(stateDir);
      const want = randomList(rng).concat(['02:00:00:5e:01:01']);
      try {
        await client.reserveForceSet(target, want);
        rep.problems.push('enospc: a change was acknowledged although the state directory is full');
        rep.acknowledged++;
        acked = want;
      } catch (e) {
        if (!(e instanceof AoeError) || e.code !== 3) throw e;
        refused = want;
        rep.refused++;
        const shown = parseReserveList(e);
        if (shown.join() !== acked.join())
          rep.problems.push(`enospc: error 3 listed ${shown.join(' ')}, not the saved ${acked.join(' ')}`);
      }
      process.kill(d.workerPid, 'SIGKILL');
      await d.serving();
      break;
    }
  }
  target = await client.find(SHELF, SLOT, 30000);
  const now = await client.reserveRead(target);
  if (now.join() !== acked.join()) {
    rep.lost++;
    rep.problems.push(`${event}: the reserve list is [${now.join(' ')}] after the event; acknowledged was [${acked.join(' ')}]`);
  }
  if (refused && now.join() === refused.join()) rep.appeared++;
  log?.(`${event}: ${changes} acknowledged${refused ? ', 1 refused (error 3)' : ''}; after: [${now.join(' ')}]`);
  await d.stop('SIGTERM');
  await pair.target.delete();
  await pair.init.delete();
}

/** Fills a (small tmpfs) directory until the file system reports ENOSPC. */
function fill(dir: string): void {
  const chunk = Buffer.alloc(4096, 0x5a);
  const filler = join(dir, 'filler');
  try {
    for (let i = 0; i < 1 << 16; i++) writeFileSync(filler, chunk, { flag: 'a' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  }
}

/** The reserve list an error reply carried. */
function parseReserveList(e: AoeError): string[] {
  const f = e.frame;
  const n = f[25];
  const out: string[] = [];
  for (let i = 0; i < n && 26 + i * 6 + 6 <= f.length; i++) {
    out.push(
      Array.from(f.subarray(26 + i * 6, 32 + i * 6))
        .map((b) => b.toString(16).padStart(2, '0'))
        .join(':'),
    );
  }
  return out;
}
