// Command-line helpers of aoe-client and aoe-bench, and their error output.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CliError, hexDump, netnsPath, parseTargetAddress } from '../../src/client-cli/common';

const ROOT = join(__dirname, '..', '..', '..');

t.test('target addresses', async (t) => {
  t.same(parseTargetAddress('e1.2'), { shelf: 1, slot: 2 });
  t.same(parseTargetAddress('65534.254'), { shelf: 65534, slot: 254 });
  t.throws(() => parseTargetAddress('e1'), CliError);
  t.throws(() => parseTargetAddress('e65535.1'), /shelf 65535 is out of range: use 0..65534/);
  t.throws(() => parseTargetAddress('e1.255'), /slot 255 is out of range/);
});

t.test('namespace names and paths', async (t) => {
  t.equal(netnsPath('blue'), '/run/netns/blue');
  t.equal(netnsPath('/var/run/netns/x'), '/var/run/netns/x');
  t.equal(netnsPath(undefined), undefined);
  t.equal(netnsPath(''), undefined);
});

t.test('hex dump', async (t) => {
  const d = Uint8Array.from([0x53, 0x45, 0x43, 0x54, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x41]);
  t.equal(
    hexDump(d, 512),
    '00000200  53 45 43 54 00 01 02 03  04 05 06 07 08 09 0a 0b  |SECT............|\n' +
      '00000210  41                                                |A|',
  );
});

function run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', bin), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('aoe-client: help and clear errors', async (t) => {
  const help = run('aoe-client.js', ['--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /aoe-client discover \[target\]/);
  t.match(help.stdout, /aoe-client reserve <target> \[action\] \[macs\.\.\]/);
  const noIf = run('aoe-client.js', ['identify', 'e1.1']);
  t.equal(noIf.status, 1);
  t.equal(noIf.stderr, 'aoe-client: name the network interface with --if (for example --if eth1)\n');
  const badTarget = run('aoe-client.js', ['identify', 'x1', '--if', 'lo']);
  t.equal(badTarget.status, 1);
  t.match(badTarget.stderr, /not a target address: "x1"/);
  const unknown = run('aoe-client.js', ['frob']);
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /Unknown argument: frob\n\(see aoe-client --help\)/);
  const badMac = run('aoe-client.js', ['mask', 'e1.1', 'add', 'nope', '--if', 'lo']);
  t.match(badMac.stderr, /not a MAC address: "nope"/);
});

t.test('aoe-bench: help and clear errors', async (t) => {
  const help = run('aoe-bench.js', ['--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /--window/);
  const missing = run('aoe-bench.js', ['--if', 'lo', '--shelf', '1']);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /Missing required argument: slot/);
  const badWindow = run('aoe-bench.js', ['--if', 'lo', '--shelf', '1', '--slot', '1', '--window', '0']);
  t.match(badWindow.stderr, /--window must be 1..65535/);
});
