// What each replaying client does (the schedule bench/c/aoe-storm.c reads),
// made from a recorded boot: the requests of the machine in the trace, each
// with the window of its phase (one in flight for iPXE, the driver's window
// for Linux) and when it is due.
//
// A request the recorded machine sent while others were still outstanding is
// due its recorded gap after the client's previous request went out. A
// request it sent with nothing outstanding (inFlight 1) waited for what came
// before it: it is due once the client has no request outstanding, after the
// time the machine spent between that last reply and it (its gap less the
// previous request's reply time). So a slow target delays a client as it would
// delay the machine, and a fast one does not make it read ahead of itself.
//
// Writes and flushes are left out (the plain export is read-only; their time
// goes to the next request's gap): the storm is the boot's reads.

import type { PhaseName, TraceRequest } from './trace';

export type StepOp = 'read' | 'identify' | 'query';

export interface Step {
  op: StepOp;
  /** 'send': due waitUs after the previous request was sent; 'idle': waitUs after the last reply, with none outstanding. */
  after: 'send' | 'idle';
  window: number;
  waitUs: number;
  lba: number;
  sectors: number;
  phase: PhaseName;
}

export interface ScheduleOptions {
  /** Multiplies every wait (1: as recorded; 0: as fast as the target answers). */
  gapScale: number;
}

/** The MAC with the most requests in the trace: the booting machine. */
export function machineOf(requests: readonly TraceRequest[]): string {
  const counts = new Map<string, number>();
  for (const r of requests) counts.set(r.mac, (counts.get(r.mac) ?? 0) + 1);
  let best = '';
  for (const [mac, n] of counts) if (best === '' || n > (counts.get(best) ?? 0)) best = mac;
  if (best === '') throw new Error('the trace has no requests');
  return best;
}

/** The largest in-flight count of each phase: the window its initiator used. */
export function phaseWindows(requests: readonly TraceRequest[]): Map<PhaseName, number> {
  const w = new Map<PhaseName, number>();
  for (const r of requests) w.set(r.phase, Math.max(w.get(r.phase) ?? 0, r.inFlight));
  return w;
}

function opOf(r: TraceRequest): StepOp | undefined {
  if (r.kind === 'read') return 'read';
  if (r.kind === 'identify') return 'identify';
  if (r.kind === 'config') return 'query';
  return undefined;
}

export function replaySchedule(requests: readonly TraceRequest[], opts: ScheduleOptions): Step[] {
  if (!(opts.gapScale >= 0)) throw new Error(`the gap scale must be 0 or more, got ${opts.gapScale}`);
  const machine = machineOf(requests);
  const mine = requests.filter((r) => r.mac === machine);
  const windows = phaseWindows(mine);
  const steps: Step[] = [];
  let carried = 0;
  let previous: TraceRequest | undefined;
  for (const r of mine) {
    const op = opOf(r);
    if (op === undefined) {
      carried += r.gapUs;
      previous = r;
      continue;
    }
    const gap = r.gapUs + carried;
    carried = 0;
    const idle = r.inFlight === 1;
    const wait = idle && previous !== undefined ? Math.max(0, gap - previous.replyUs) : gap;
    steps.push({
      op,
      after: idle ? 'idle' : 'send',
      window: windows.get(r.phase) ?? 1,
      waitUs: Math.round(wait * opts.gapScale),
      lba: op === 'read' ? r.lba : 0,
      sectors: op === 'read' ? r.sectors : op === 'identify' ? 1 : 0,
      phase: r.phase,
    });
    previous = r;
  }
  if (steps.length === 0) throw new Error('the trace has no reads to replay');
  return steps;
}

/** The schedule file aoe-storm reads. */
export function scheduleText(steps: readonly Step[]): string {
  const op = { read: 'r', identify: 'i', query: 'q' } as const;
  const lines = steps.map((s) => `${op[s.op]} ${s.after === 'send' ? 's' : 'i'} ${s.window} ${s.waitUs} ${s.lba} ${s.sectors}`);
  return `aoe-storm-schedule 1 ${steps.length}\n${lines.join('\n')}\n`;
}

/** Bytes a client reads and the highest sector it touches (the export must be at least that large). */
export function scheduleExtent(steps: readonly Step[]): { bytes: number; endSector: number } {
  let bytes = 0;
  let endSector = 0;
  for (const s of steps)
    if (s.op === 'read') {
      bytes += s.sectors * 512;
      endSector = Math.max(endSector, s.lba + s.sectors);
    }
  return { bytes, endSector };
}

/** AoE and ATA headers before a reply's data. */
const AOE_ATA_HEADER = 36;

/** The smallest MTU whose frames carry the schedule's largest read in one reply. */
export function minimumMtu(steps: readonly Step[]): number {
  const most = Math.max(1, ...steps.filter((s) => s.op === 'read').map((s) => s.sectors));
  return AOE_ATA_HEADER + most * 512;
}
