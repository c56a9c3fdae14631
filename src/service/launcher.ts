// The detaching half of vbladed: without --foreground it checks that the
// instance and its exports are free, says where the logs will go, starts the
// supervisor detached (its own session, no controlling terminal, stdin
// /dev/null, stdout/stderr to the log file or nowhere), waits for it to
// report over IPC, prints its pid and returns the launcher's exit code.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DaemonSettings } from '../config/keys';
import { exportKey, type ExportConfig } from '../config/export-config';
import { logOptionsOf, type Handshake } from './daemon';
import { describeRoute, openLogFile, syslogRoute } from './log';
import { checkPidFile, exportLockFile } from './pidfile';

/** How long the launcher waits for the daemon to serve before it returns anyway. */
const READY_WAIT_MS = 10000;

/** Refuses early, on the terminal, what the supervisor would refuse in the log; undefined when all is free. */
export function precheck(settings: DaemonSettings, exports: readonly ExportConfig[]): string | undefined {
  const pid = checkPidFile(settings.pidFile, `instance ${settings.name}`);
  if (pid) return pid.message;
  for (const e of exports) {
    for (const i of e.interfaces) {
      const err = checkPidFile(exportLockFile(settings.runDir, exportKey(e), i), `${exportKey(e)} on ${i}`);
      if (err) return err.message;
    }
  }
  return undefined;
}

/**
 * Where the detached daemon's records will go, in words, and the file its
 * stdout and stderr go to as well (log = file, or the fallback of syslog).
 * log = stdout or stderr becomes syslog once detached.
 */
export function logDestination(settings: DaemonSettings): { text: string; file?: string } {
  if (settings.log === 'file' && settings.logFile) return { text: settings.logFile, file: settings.logFile };
  const opts = logOptionsOf({ ...settings, log: 'syslog' });
  const route = syslogRoute(opts);
  return { text: describeRoute(route, opts), file: route.kind === 'file' ? route.path : undefined };
}

/**
 * Starts this same program (process.argv[1]) again with `argv` plus
 * --foreground --supervisor-child, detached. Resolves to 0 once the daemon
 * serves, has started but cannot serve yet (it retries), or is still
 * starting after 10 s; to 1 when it failed to start.
 */
export async function launch(argv: readonly string[], settings: DaemonSettings): Promise<number> {
  const where = logDestination(settings);
  let out: number | 'ignore' = 'ignore';
  if (where.file) {
    try {
      out = openLogFile(where.file);
    } catch (e) {
      const fix =
        settings.log === 'file'
          ? 'fix the path or its permissions'
          : 'the logs would be lost: give --log-file a file you may write, or start a syslog daemon';
      process.stderr.write(`vbladed: cannot open the log file ${where.file}: ${(e as Error).message}; ${fix}\n`);
      return 1;
    }
  }
  // One line: where the records really go (a detached daemon has no stdout or stderr to log to).
  const instead =
    settings.log === 'stdout' || settings.log === 'stderr'
      ? ` instead of ${settings.log}, which a detached daemon does not have (--foreground keeps the log on ${settings.log})`
      : '';
  process.stderr.write(`vbladed: logging to ${where.text}${instead}\n`);
  const script = path.resolve(process.argv[1]);
  const childArgv = [...argv.filter((x) => x !== '--foreground' && x !== '--supervisor-child')];
  // The child re-parses the same arguments; options go before a possible `--`.
  const dd = childArgv.indexOf('--');
  const extra = ['--foreground', '--supervisor-child'];
  if (settings.log === 'stdout' || settings.log === 'stderr') extra.push('--log=syslog');
  if (dd >= 0) childArgv.splice(dd, 0, ...extra);
  else childArgv.push(...extra);
  const child = spawn(process.execPath, [...process.execArgv, script, ...childArgv], {
    detached: true, // setsid(): own session and process group, no controlling terminal
    stdio: ['ignore', out, out, 'ipc'],
  });
  if (typeof out === 'number') fs.closeSync(out);
  const pid = child.pid!;
  const result = await new Promise<{ code: number; text?: string; pidLine: boolean }>((resolve) => {
    let failed: { code: number; text: string; pidLine: boolean } | undefined;
    const timer = setTimeout(
      () =>
        resolve({
          code: 0,
          pidLine: true,
          text: `vbladed: pid ${pid} started; not serving yet after ${READY_WAIT_MS / 1000} s (see the log)`,
        }),
      READY_WAIT_MS,
    );
    let settled = false;
    const done = (r: { code: number; text?: string; pidLine: boolean }): void => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      resolve(r);
    };
    child.on('message', (raw) => {
      const m = raw as Handshake;
      if (m.type === 'ready') done({ code: 0, pidLine: true });
      else if (m.type === 'worker-failed') {
        done({
          code: 0,
          pidLine: true,
          text: `vbladed: pid ${pid} started, but serving failed: ${m.message}\nvbladed: it keeps retrying with back-off; stop it with "kill ${pid}"`,
        });
      } else if (m.type === 'failed') {
        // Said once it has stopped (its pid file gone): a command run right after sees no daemon.
        failed = { code: 1, pidLine: false, text: `vbladed: ${m.message}` };
        clearTimeout(timer);
        setTimeout(
          () => done({ ...failed!, text: `${failed!.text}\nvbladed: pid ${pid} is still stopping (see the log)` }),
          READY_WAIT_MS,
        ).unref();
      }
    });
    child.on('exit', (code, signal) =>
      done(
        failed ?? {
          code: 1,
          pidLine: false,
          text: `vbladed: the daemon ${signal ? `was killed by ${signal}` : `exited with code ${code}`} while starting; see the log`,
        },
      ),
    );
  });
  if (child.connected) child.disconnect();
  child.unref();
  if (result.pidLine) process.stdout.write(`${pid}\n`);
  if (result.text) process.stderr.write(result.text + '\n');
  return result.code;
}
