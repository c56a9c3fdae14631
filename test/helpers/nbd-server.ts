// Real NBD servers for the remote-store tests: nbdkit (memory, file, with
// filters) and qemu-storage-daemon (qcow2), each on a unix socket in a
// private temporary directory, stopped by pid in the test's teardown.

import { existsSync, lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, type TestLike } from '../../lab/common';
import { spawnProcess, type Proc } from '../../lab/process';
import { tempDir } from './files';

export interface NbdServer {
  proc: Proc;
  socket: string;
  /** nbd+unix:///NAME?socket=… for the server's export. */
  uri: string;
  /** Stops the server (SIGTERM, then SIGKILL): its socket is gone afterwards. */
  stop(): Promise<void>;
}

async function waitSocket(proc: Proc, socket: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(socket) && lstatSync(socket).isSocket()) return;
    if (!proc.running) throw new Error(`${proc.label} exited before it listened on ${socket}: ${proc.tail(10)}`);
    if (Date.now() > deadline)
      throw new Error(`${proc.label} did not listen on ${socket} within ${timeoutMs} ms: ${proc.tail(10)}`);
    await sleep(20);
  }
}

export function nbdUri(socket: string, name = ''): string {
  return `nbd+unix:///${name}?socket=${socket}`;
}

/**
 * nbdkit in the foreground on a unix socket: `plugin` and its arguments
 * (e.g. ['memory', 'size=64M']), filters first (['--filter=error', …]).
 * `dir`: the private directory of the socket (a new one by default), so a
 * restart can listen where the first one did.
 */
export async function startNbdkit(
  t: TestLike,
  args: readonly string[],
  opts: { dir?: string; label?: string } = {},
): Promise<NbdServer> {
  const dir = opts.dir ?? tempDir(t, 'nbdkit');
  const socket = join(dir, 'nbd.sock');
  // A server killed before it cleaned up leaves its socket: the new one must not take that for its own.
  rmSync(socket, { force: true });
  const proc = spawnProcess(t, 'nbdkit', ['--foreground', '--exit-with-parent', '--unix', socket, ...args], {
    label: opts.label ?? 'nbdkit',
  });
  await waitSocket(proc, socket);
  return {
    proc,
    socket,
    uri: nbdUri(socket),
    stop: async () => {
      await proc.stop();
    },
  };
}

/**
 * qemu-storage-daemon exporting `image` (qcow2 unless `format` says) over
 * NBD on a unix socket, export name `disk`; `snapshot`: the internal
 * snapshot to serve (read-only) instead of the image's current state.
 */
export async function startQsd(
  t: TestLike,
  image: string,
  opts: { dir?: string; writable?: boolean; format?: string; label?: string } = {},
): Promise<NbdServer> {
  const dir = opts.dir ?? tempDir(t, 'qsd');
  const socket = join(dir, 'qsd.sock');
  rmSync(socket, { force: true });
  const writable = opts.writable ?? true;
  const proc = spawnProcess(
    t,
    'qemu-storage-daemon',
    [
      '--blockdev',
      `driver=file,node-name=file0,filename=${image}`,
      '--blockdev',
      `driver=${opts.format ?? 'qcow2'},node-name=disk0,file=file0`,
      '--nbd-server',
      `addr.type=unix,addr.path=${socket}`,
      '--export',
      `type=nbd,id=exp0,node-name=disk0,name=disk,writable=${writable ? 'on' : 'off'}`,
    ],
    { label: opts.label ?? 'qemu-storage-daemon' },
  );
  await waitSocket(proc, socket);
  return {
    proc,
    socket,
    uri: nbdUri(socket, 'disk'),
    stop: async () => {
      await proc.stop();
    },
  };
}
