// blockDeviceSize on a loop device this test attaches (and detaches), and
// unixDatagramSend to a receiver this test starts (python3, as Node has no
// AF_UNIX datagram sockets).
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../../src/native/addon';

const dir = mkdtempSync(join(tmpdir(), 'aoe-native-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function canRun(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const loopReason = process.getuid?.() !== 0 ? 'needs root to attach a loop device'
  : !canRun('losetup', ['--version']) ? 'needs losetup' : false;

t.test('blockDeviceSize', { skip: loopReason }, async (t) => {
  const image = join(dir, 'disk.img');
  const size = 3 * 1024 * 1024 + 512 * 7;
  writeFileSync(image, Buffer.alloc(size));
  let device: string;
  try {
    device = execFileSync('losetup', ['-f', '--show', image]).toString().trim();
  } catch (err) {
    t.comment(`skipped: no loop device could be attached: ${(err as Error).message.split('\n')[0]}`);
    return;
  }
  t.teardown(() => { execFileSync('losetup', ['-d', device]); });
  const fd = openSync(device, 'r');
  t.teardown(() => closeSync(fd));
  t.equal(native.blockDeviceSize(fd), size);

  const fileFd = openSync(image, 'r');
  t.teardown(() => closeSync(fileFd));
  t.throws(() => native.blockDeviceSize(fileFd), { code: 'ENOTBLK', message: /is not a block device/ });
  t.throws(() => native.blockDeviceSize(99999), { code: 'EBADF' });
});

t.test('blockDeviceSize refuses a regular file without root too', async (t) => {
  const path = join(dir, 'plain');
  writeFileSync(path, 'x');
  const fd = openSync(path, 'r');
  t.teardown(() => closeSync(fd));
  t.throws(() => native.blockDeviceSize(fd), { code: 'ENOTBLK' });
  t.throws(() => native.blockDeviceSize(-1), RangeError);
});

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
path = sys.argv[1]
s.bind(('\\0' + path[1:]) if path.startswith('@') else path)
print('ready', flush=True)
s.settimeout(5)
print(s.recv(4096).decode(), flush=True)
`;

const pythonReason = canRun('python3', ['-c', 'import socket']) ? false : 'needs python3 to receive datagrams';

async function receiveOne(path: string, message: string): Promise<string> {
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString(); // python may write 'ready' and '\n' separately
      if (out.startsWith('ready\n')) resolve();
    });
    child.on('exit', () => reject(new Error(`receiver exited early: ${out}`)));
  });
  native.unixDatagramSend(path, message);
  await exited;
  return out.slice('ready\n'.length).trimEnd();
}

t.test('unixDatagramSend', { skip: pythonReason }, async (t) => {
  const path = join(dir, 'notify.sock');
  t.equal(await receiveOne(path, 'READY=1\nSTATUS=serving e1.0 ✓'), 'READY=1\nSTATUS=serving e1.0 ✓', 'filesystem socket');
  const abstract = `@aoetn-${process.pid}-notify`;
  t.equal(await receiveOne(abstract, 'WATCHDOG=1'), 'WATCHDOG=1', 'abstract socket');
});

t.test('unixDatagramSend errors', async (t) => {
  t.throws(() => native.unixDatagramSend(join(dir, 'nobody.sock'), 'READY=1'), { code: 'ENOENT', message: /does not exist/ });
  t.throws(() => native.unixDatagramSend(`@aoetn-${process.pid}-nobody`, 'READY=1'), { code: 'ECONNREFUSED' });
  t.throws(() => native.unixDatagramSend('/' + 'x'.repeat(200), 'READY=1'), { code: 'ENAMETOOLONG' });
  t.throws(() => native.unixDatagramSend('', 'READY=1'), { code: 'EINVAL' });
});
