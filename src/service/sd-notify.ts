// systemd's notification protocol (sd_notify(3)): datagrams of
// newline-separated VAR=value assignments to the AF_UNIX socket named by
// $NOTIFY_SOCKET. We send READY=1, RELOADING=1, STOPPING=1, STATUS=...,
// MAINPID=... and WATCHDOG=1 every WATCHDOG_USEC/2 while healthy.
//
// STOPPING=1 is the last message: systemd expects nothing after it (the
// watchdog is off once the unit stops), so a status change of the stopping
// worker or the end of a reload is not sent.
//
// Everything is a no-op when NOTIFY_SOCKET is unset (not started by systemd
// with Type=notify). Node cannot send on a unix datagram socket, so the
// native addon's unixDatagramSend does; it is injected for tests.

import { loadAddon } from '../native/addon';

export type DatagramSend = (path: string, message: string) => void;

export interface NotifyEnv {
  NOTIFY_SOCKET?: string;
  WATCHDOG_USEC?: string;
  WATCHDOG_PID?: string;
}

/** Variables that must not leak into child processes (the worker must not notify in our name). */
export const NOTIFY_ENV_VARS = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

function nativeSend(): DatagramSend {
  const addon = loadAddon();
  return (p, m) => addon.unixDatagramSend(p, m);
}

export class SdNotify {
  /** The socket path ('@...' = abstract namespace), or undefined when not under systemd notify. */
  readonly socket: string | undefined;
  /** Watchdog period in microseconds for this process, or undefined. */
  readonly watchdogUsec: number | undefined;
  private send: DatagramSend | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  private stopped = false;

  constructor(env: NotifyEnv = process.env, send?: DatagramSend, pid: number = process.pid) {
    const socket = env.NOTIFY_SOCKET;
    this.socket = socket && (socket.startsWith('/') || socket.startsWith('@')) ? socket : undefined;
    const usec = env.WATCHDOG_USEC ? Number(env.WATCHDOG_USEC) : NaN;
    const forPid = env.WATCHDOG_PID ? Number(env.WATCHDOG_PID) : pid;
    this.watchdogUsec = Number.isSafeInteger(usec) && usec > 0 && forPid === pid ? usec : undefined;
    this.send = send;
  }

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** Sends raw assignments; returns false (and remembers why) when sending failed, or nothing was sent after STOPPING=1. Never throws. */
  notify(assignments: string): boolean {
    if (!this.socket || this.stopped) return false;
    try {
      this.send ??= nativeSend();
      this.send(this.socket, assignments);
      return true;
    } catch (e) {
      this.lastError = (e as Error).message;
      return false;
    }
  }

  /** Why the last send failed, if it did. */
  get error(): string | undefined {
    return this.lastError;
  }

  ready(status?: string): boolean {
    return this.notify(status ? `READY=1\nSTATUS=${oneLine(status)}` : 'READY=1');
  }

  /** Before re-reading the configuration; follow with ready() when done. */
  reloading(status?: string): boolean {
    const mono = monotonicUsec();
    return this.notify(`RELOADING=1\nMONOTONIC_USEC=${mono}` + (status ? `\nSTATUS=${oneLine(status)}` : ''));
  }

  /** The last message; later calls send nothing. */
  stopping(status?: string): boolean {
    const sent = this.notify(status ? `STOPPING=1\nSTATUS=${oneLine(status)}` : 'STOPPING=1');
    this.stopped = true;
    this.stopWatchdog();
    return sent;
  }

  status(text: string): boolean {
    return this.notify(`STATUS=${oneLine(text)}`);
  }

  mainPid(pid: number): boolean {
    return this.notify(`MAINPID=${pid}`);
  }

  watchdog(): boolean {
    return this.notify('WATCHDOG=1');
  }

  /**
   * Sends WATCHDOG=1 every WATCHDOG_USEC/2 while `healthy()` returns true.
   * No-op without a watchdog. The timer does not keep the process alive.
   */
  startWatchdog(healthy: () => boolean = () => true): void {
    if (!this.enabled || this.watchdogUsec === undefined || this.timer) return;
    const periodMs = Math.max(1, Math.floor(this.watchdogUsec / 2000));
    this.timer = setInterval(() => {
      if (healthy()) this.watchdog();
    }, periodMs);
    this.timer.unref();
  }

  stopWatchdog(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function oneLine(s: string): string {
  return s.replace(/\n/g, ' ');
}

function monotonicUsec(): string {
  // CLOCK_MONOTONIC in microseconds; process.hrtime is monotonic and, on Linux, CLOCK_MONOTONIC.
  return (process.hrtime.bigint() / 1000n).toString();
}

/** A copy of `env` without the notify variables. */
export function withoutNotifyEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of NOTIFY_ENV_VARS) delete out[k];
  return out;
}
