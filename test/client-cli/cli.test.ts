// Command-line helpers of aoe-client and aoe-bench, and their error output.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CliError, hexDump, netnsPath, parseTargetAddress, usageMessage } from '../../src/client-cli/common';
import { createNetns, requireRoot, type Netns } from '../../lab/netns';

const ROOT = join(__dirname, '..', '..', '..');
const VERSION = (JSON.parse(fs.readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** yargs's own wording, which must not reach a user, nor a stack trace. */
const RAW =
  /Not enough non-option arguments|Unknown argument|Missing required argument|Invalid values|Did you mean|mutually exclusive|NaN|YError|^\s+at /m;

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

/**
 * Runs bin/BIN ARGS in a namespace of the test's own (no AoE program runs in
 * the root namespace, not even for its help); lo is its only interface.
 */
function runner(ns: Netns) {
  return async (bin: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> => {
    const r = await ns.run(process.execPath, [join(ROOT, 'bin', bin), ...args]);
    return { status: r.code, stdout: r.stdout, stderr: r.stderr };
  };
}

t.test('yargs messages in our words', async (t) => {
  const ctx = {
    program: 'aoe-client',
    argv: ['read', 'e1.1', '--if', 'eth1'],
    commands: { read: { usage: 'read <target> <lba> [count] --if IF', example: 'aoe-client read e1.1 0 8 --if eth1' } },
    example: 'aoe-client discover --if eth1',
  };
  t.equal(
    usageMessage('Not enough non-option arguments: got 1, need at least 2', ctx),
    'read needs <lba> (usage: aoe-client read <target> <lba> [count] --if IF; e.g. aoe-client read e1.1 0 8 --if eth1)',
  );
  t.equal(usageMessage('--sectors must be 1..255', ctx), '--sectors must be 1..255', 'our own messages pass as they are');
});

if (requireRoot(t)) {
  t.test('aoe-client: help, version and clear errors', async (t) => {
    const run = runner(await createNetns(t, 'aoe-client-cli'));
    const help = await run('aoe-client.js', ['--help']);
    t.equal(help.status, 0);
    t.match(help.stdout, /aoe-client discover \[target\]/);
    t.match(help.stdout, /aoe-client reserve <target> \[action\] \[macs\.\.\]/);
    t.match(help.stdout, /--version +show the version/);
    t.same(await run('aoe-client.js', ['--version']), { status: 0, stdout: `aoe-client ${VERSION}\n`, stderr: '' });
    const noIf = await run('aoe-client.js', ['identify', 'e1.1']);
    t.equal(noIf.status, 1);
    t.equal(noIf.stderr, 'aoe-client: name the network interface with --if (for example --if eth1)\n');
    const badTarget = await run('aoe-client.js', ['identify', 'x1', '--if', 'lo']);
    t.equal(badTarget.status, 1);
    t.match(badTarget.stderr, /not a target address: "x1"/);
    const badMac = await run('aoe-client.js', ['mask', 'e1.1', 'add', 'nope', '--if', 'lo']);
    t.match(badMac.stderr, /not a MAC address: "nope"/);
    const commands = 'discover, identify, read, write, flush, config, mask, reserve';
    const cases: Array<[string[], string]> = [
      [[], 'name a command: discover, identify, read, write, flush, config, mask or reserve'],
      [['frob'], `unknown command frob; commands are ${commands} (see aoe-client --help)`],
      [['identfy', 'e1.1'], `unknown command identfy (did you mean "identify"?); commands are ${commands}`],
      [
        ['identify'],
        'identify needs <target> (usage: aoe-client identify <target> --if IF; e.g. aoe-client identify e1.1 --if eth1)',
      ],
      [
        ['read', 'e1.1', '--if', 'lo'],
        'read needs <lba> (usage: aoe-client read <target> <lba> [count] --if IF; e.g. aoe-client read e1.1 0 8 --if eth1)',
      ],
      [
        ['identify', 'e1.1', '--if'],
        '--if needs a value (usage: aoe-client identify <target> --if IF; e.g. aoe-client identify e1.1 --if eth1)',
      ],
      [
        ['identify', 'e1.1', 'extra', '--if', 'lo'],
        'too many arguments: "extra" (usage: aoe-client identify <target> --if IF; e.g. aoe-client identify e1.1 --if eth1)',
      ],
      [
        ['identify', 'e1.1', '--bogus', '--if', 'lo'],
        'unknown option --bogus (usage: aoe-client identify <target> --if IF; e.g. aoe-client identify e1.1 --if eth1)',
      ],
      [
        ['config', 'e1.1', 'frob', '--if', 'lo'],
        'action "frob" is not one of read, test, prefix, set, fset (usage: aoe-client config <target> [read|test|prefix|set|fset] [value] --if IF; e.g. aoe-client config e1.1 set lab --if eth1)',
      ],
      [
        ['write', 'e1.1', '0', '--in', 'f', '--pattern', '2', '--if', 'lo'],
        'give --in or --pattern, not both (usage: aoe-client write <target> <lba> (--in FILE | --pattern COUNT) --if IF; e.g. aoe-client write e1.1 0 --pattern 8 --if eth1)',
      ],
      [['read', 'e1.1', 'abc', '--if', 'lo'], 'the LBA must be a sector number (0 .. 2^48-1), e.g. 0'],
      [
        ['identify', 'e1.1', '--timeout', 'abc', '--if', 'lo'],
        '--timeout is milliseconds to wait for a reply, more than 0, e.g. --timeout 500',
      ],
    ];
    const escape = await run('aoe-client.js', ['\u001b[2Jfrob']);
    t.match(
      escape.stderr,
      /^aoe-client: unknown command \\u001b\[2Jfrob; /,
      'an escape sequence on the command line is not sent raw',
    );
    t.notOk(escape.stderr.includes('\u001b'));
    for (const [args, message] of cases) {
      const r = await run('aoe-client.js', args);
      t.same(r, { status: 1, stdout: '', stderr: `aoe-client: ${message}\n` }, `aoe-client ${args.join(' ')}`);
      t.notMatch(r.stderr, RAW);
    }
  });

  t.test('aoe-bench: help, version and clear errors', async (t) => {
    const run = runner(await createNetns(t, 'aoe-bench-cli'));
    const help = await run('aoe-bench.js', ['--help']);
    t.equal(help.status, 0);
    t.match(help.stdout, /--window/);
    t.match(help.stdout, /--version +show the version/);
    t.same(await run('aoe-bench.js', ['--version']), { status: 0, stdout: `aoe-bench ${VERSION}\n`, stderr: '' });
    const eg = '(e.g. aoe-bench --if eth1 --shelf 1 --slot 1 --seconds 10; see aoe-bench --help)';
    const cases: Array<[string[], string]> = [
      [[], `missing --if, --shelf, --slot: name the network interface with --if; name the export with --shelf and --slot ${eg}`],
      [['--if', 'lo', '--shelf', '1'], `missing --slot: name the export with --shelf and --slot ${eg}`],
      [['--if'], `--if needs a value ${eg}`],
      [['--if', 'lo', '--shelf', '1', '--slot', '1', '--op', 'frob'], `--op "frob" is not one of read, write, mix ${eg}`],
      [['--if', 'lo', '--shelf', '1', '--slot', '1', 'extra'], `too many arguments: "extra" ${eg}`],
      [['--if', 'lo', '--shelf', '1', '--slot', '1', '--bogus'], `unknown option --bogus ${eg}`],
      [['--if', 'lo', '--shelf', '1', '--slot', '1', '--window', '0'], '--window must be 1..65535'],
    ];
    for (const [args, message] of cases) {
      const r = await run('aoe-bench.js', args);
      t.same(r, { status: 1, stdout: '', stderr: `aoe-bench: ${message}\n` }, `aoe-bench ${args.join(' ')}`);
      t.notMatch(r.stderr, RAW);
    }
  });
}
