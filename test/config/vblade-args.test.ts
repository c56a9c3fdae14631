// vblade's command line: getopt behaviour, vblade's defaults, and strict
// checks with exact messages.

import t from 'tap';
import { exportConfig } from '../helpers/export-config';
import { parseCInteger, parseVbladeArgs, UsageError } from '../../src/config/vblade-args';
import type { ExportConfig } from '../../src/config/export-config';

const base = exportConfig({ slot: 2, file: 'disk.img', interfaces: ['eth1'] });

const good: Array<{ desc: string; argv: string; want: Partial<ExportConfig> }> = [
  { desc: 'operands only: vblade defaults', argv: '1 2 eth1 disk.img', want: {} },
  { desc: 'flags one by one', argv: '-r -d -s 1 2 eth1 disk.img', want: { readOnly: true, direct: true, sync: true } },
  { desc: 'clustered flags', argv: '-rds 1 2 eth1 disk.img', want: { readOnly: true, direct: true, sync: true } },
  { desc: 'attached value', argv: '-b64 1 2 eth1 disk.img', want: { bufferCount: 64 } },
  { desc: 'flag cluster ending in a value option', argv: '-rb 8 1 2 eth1 disk.img', want: { readOnly: true, bufferCount: 8 } },
  {
    desc: 'options after operands (GNU permutation)',
    argv: '1 2 eth1 disk.img -r -o 8',
    want: { readOnly: true, offsetSectors: 8 },
  },
  { desc: '-o hex like strtoll base 0', argv: '-o 0x10 1 2 eth1 disk.img', want: { offsetSectors: 16 } },
  { desc: '-o octal like strtoll base 0', argv: '-o 010 1 2 eth1 disk.img', want: { offsetSectors: 8 } },
  { desc: '-l length', argv: '-l 8192 1 2 eth1 disk.img', want: { lengthSectors: 8192 } },
  {
    desc: 'MAC with colons, upper case',
    argv: '-m 52:54:00:AB:CD:EF 1 2 eth1 disk.img',
    want: { macMask: ['52:54:00:ab:cd:ef'] },
  },
  { desc: 'MAC without separators', argv: '-m 525400abcdef 1 2 eth1 disk.img', want: { macMask: ['52:54:00:ab:cd:ef'] } },
  {
    desc: 'MAC list, duplicates dropped, repeated -m appends',
    argv: '-m 52:54:00:00:00:01,525400000002,52:54:00:00:00:01 -m 52:54:00:00:00:03 1 2 eth1 disk.img',
    want: { macMask: ['52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03'] },
  },
  { desc: 'last -b wins', argv: '-b 4 -b 5 1 2 eth1 disk.img', want: { bufferCount: 5 } },
  { desc: 'largest shelf and slot', argv: '65534 254 eth1 disk.img', want: { shelf: 65534, slot: 254 } },
  { desc: '-- ends options', argv: '-r -- 1 2 eth1 -disk.img', want: { readOnly: true, file: '-disk.img' } },
];

t.test('good command lines', async (t) => {
  for (const row of good) {
    t.test(row.desc, async (t) => {
      t.same(parseVbladeArgs(row.argv.split(' ')), { ...base, ...row.want });
    });
  }
});

const bad: Array<{ desc: string; argv: string; msg: string }> = [
  { desc: 'no operands', argv: '-r', msg: 'expected 4 arguments (shelf slot netif file) after the options, got 0: none' },
  {
    desc: 'too many operands',
    argv: '1 2 eth1 a b',
    msg: 'expected 4 arguments (shelf slot netif file) after the options, got 5: "1" "2" "eth1" "a" "b"',
  },
  {
    desc: 'unknown option',
    argv: '-x 1 2 eth1 f',
    msg: 'unknown option -x; the vblade options are -b -d -s -r -m -o -l; --help lists them and the long options',
  },
  {
    desc: 'long option',
    argv: '--foo 1 2 eth1 f',
    msg: 'unknown option --foo; the vblade options are -b -d -s -r -m -o -l; --help lists them and the long options',
  },
  { desc: 'negative shelf', argv: '-1 1 eth1 f', msg: 'shelf -1 is out of range; use 0..65534' },
  { desc: 'negative slot', argv: '1 -1 eth1 f', msg: 'slot -1 is out of range; use 0..254' },
  {
    desc: 'a negative number after shelf and slot',
    argv: '1 1 -5 f',
    msg: '"-5" is not an option (the vblade options are -b -d -s -r -m -o -l); shelf and slot are 0..65534 and 0..254',
  },
  { desc: 'missing value', argv: '1 2 eth1 f -b', msg: 'option -b needs a value: the buffer count, e.g. -b 16' },
  { desc: 'bufcnt 0', argv: '-b 0 1 2 eth1 f', msg: '-b: buffer count 0 is out of range; use 1..65535' },
  { desc: 'bufcnt too large', argv: '-b 65536 1 2 eth1 f', msg: '-b: buffer count 65536 is out of range; use 1..65535' },
  {
    desc: 'bufcnt not a number',
    argv: '-b many 1 2 eth1 f',
    msg: '-b: "many" is not a number; give the buffer count as a whole number, e.g. -b 16',
  },
  {
    desc: 'negative offset',
    argv: '-o -1 1 2 eth1 f',
    msg: '-o: "-1" is not a sector count; give a whole number of 512-byte sectors (decimal, 0x hex or 0 octal)',
  },
  {
    desc: 'offset with garbage',
    argv: '-o 12k 1 2 eth1 f',
    msg: '-o: "12k" is not a sector count; give a whole number of 512-byte sectors (decimal, 0x hex or 0 octal)',
  },
  {
    desc: 'bad octal digit',
    argv: '-o 09 1 2 eth1 f',
    msg: '-o: "09" is not a sector count; give a whole number of 512-byte sectors (decimal, 0x hex or 0 octal)',
  },
  {
    desc: 'zero length',
    argv: '-l 0 1 2 eth1 f',
    msg: '-l: length 0 exports nothing; give at least 1 sector or leave -l out to export to the end',
  },
  {
    desc: 'broadcast shelf',
    argv: '65535 1 eth1 f',
    msg: 'shelf 65535 is out of range; use 0..65534 (65535 is the broadcast shelf and cannot be exported)',
  },
  {
    desc: 'shelf beyond 16 bits',
    argv: '70000 1 eth1 f',
    msg: 'shelf 70000 is out of range; use 0..65534 (65535 is the broadcast shelf and cannot be exported)',
  },
  {
    desc: 'broadcast slot',
    argv: '1 255 eth1 f',
    msg: 'slot 255 is out of range; use 0..254 (255 is the broadcast slot and cannot be exported)',
  },
  { desc: 'shelf not a number', argv: 'one 1 eth1 f', msg: 'shelf "one" is not a number; give a decimal shelf address 0..65534' },
  { desc: 'slot hex', argv: '1 0x1 eth1 f', msg: 'slot "0x1" is not a number; give a decimal slot address 0..254' },
  {
    desc: 'interface name too long',
    argv: '1 1 abcdefghijklmnop f',
    msg: 'interface name "abcdefghijklmnop" is longer than 15 characters, which Linux does not allow; check the name with "ip link"',
  },
  {
    desc: 'interface with slash',
    argv: '1 1 eth/0 f',
    msg: '"eth/0" is not a network interface name; give one as "ip link" lists it, e.g. eth1',
  },
  {
    desc: 'empty file',
    argv: ['1', '1', 'eth1', ''].join(' ') + ' ',
    msg: 'file is empty; give the path of the backing file or block device',
  },
  {
    desc: 'MAC with dashes',
    argv: '-m 52-54-00-00-00-01 1 1 eth1 f',
    msg: '-m: "52-54-00-00-00-01" is not a MAC address; write six hex pairs as aa:bb:cc:dd:ee:ff or aabbccddeeff',
  },
  {
    desc: 'MAC too short',
    argv: '-m 52:54:00:00:00 1 1 eth1 f',
    msg: '-m: "52:54:00:00:00" is not a MAC address; write six hex pairs as aa:bb:cc:dd:ee:ff or aabbccddeeff',
  },
  {
    desc: 'broadcast MAC',
    argv: '-m ff:ff:ff:ff:ff:ff 1 1 eth1 f',
    msg: "-m: ff:ff:ff:ff:ff:ff is a group (multicast or broadcast) address and never sends requests; give the initiator's own MAC",
  },
  {
    desc: 'zero MAC',
    argv: '-m 000000000000 1 1 eth1 f',
    msg: "-m: 00:00:00:00:00:00 is the all-zero address and never sends requests; give the initiator's own MAC",
  },
  {
    desc: 'empty MAC entry',
    argv: '-m 525400000001,,525400000002 1 1 eth1 f',
    msg: '-m: empty entry in MAC list "525400000001,,525400000002"; separate addresses with single commas and no spaces',
  },
];

t.test('bad command lines', async (t) => {
  for (const row of bad) {
    t.test(row.desc, async (t) => {
      const argv = row.desc === 'empty file' ? ['1', '1', 'eth1', ''] : row.argv.split(' ');
      t.throws(() => parseVbladeArgs(argv), new UsageError(row.msg));
    });
  }
});

t.test('the mask holds at most 128 addresses', async (t) => {
  const macs = (n: number): string =>
    Array.from(
      { length: n },
      (_, i) => `52:54:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
    ).join(',');
  t.equal(parseVbladeArgs(['-m', macs(128), '1', '1', 'eth1', 'f']).macMask.length, 128);
  t.throws(
    () => parseVbladeArgs(['-m', macs(129), '1', '1', 'eth1', 'f']),
    new UsageError('-m: more than 128 MAC addresses; a mask list holds at most 128'),
  );
});

t.test('parseCInteger reads like strtoll(s, &end, 0) with the whole string used', async (t) => {
  const rows: Array<[string, number | undefined]> = [
    ['0', 0],
    ['10', 10],
    ['0x1F', 31],
    ['0X10', 16],
    ['017', 15],
    ['08', undefined],
    ['', undefined],
    [' 1', undefined],
    ['+1', undefined],
    ['0x', undefined],
    ['9007199254740991', 9007199254740991],
    ['9007199254740992', undefined],
  ];
  for (const [s, want] of rows) t.equal(parseCInteger(s), want, JSON.stringify(s));
});
