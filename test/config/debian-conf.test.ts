// Debian's /etc/vblade.conf.d/NAME.conf fragments.

import t from 'tap';
import { exportConfig } from '../helpers/export-config';
import { ConfigError } from '../../src/config/config-file';
import { parseDebianConf, parseIonice } from '../../src/config/debian-conf';
import { ownServiceUnit } from '../../src/cli/vbladed';
import type { ExportConfig } from '../../src/config/export-config';

const F = '/etc/vblade.conf.d/disk1.conf';

function exp(over: Partial<ExportConfig>): ExportConfig {
  return exportConfig({ slot: 2, file: '/srv/vblade/disk1.img', interfaces: ['eth1'], ...over });
}

t.test('good fragments', async (t) => {
  const rows: Array<{ desc: string; text: string; want: ExportConfig; warnings?: string[] }> = [
    { desc: 'the four mandatory keys', text: 'shelf=1\nslot=2\nnetif=eth1\nfilename=/srv/vblade/disk1.img\n', want: exp({}) },
    {
      desc: 'options in single quotes, comments, blanks',
      text: "# Debian example\n\nshelf=1\nslot=2\nnetif=eth1\nfilename=/srv/vblade/disk1.img\noptions='-r -b 32 -m 52:54:00:00:00:01,52:54:00:00:00:02'\n",
      want: exp({ readOnly: true, bufferCount: 32, macMask: ['52:54:00:00:00:01', '52:54:00:00:00:02'] }),
    },
    {
      desc: 'double quotes and spaces around =',
      text: 'shelf = 1\nslot=2\nnetif="eth1"\nfilename="/srv/vblade/disk1.img"\noptions="-d -s -o 0x800 -l 2048"\n',
      want: exp({ direct: true, sync: true, offsetSectors: 2048, lengthSectors: 2048 }),
    },
    {
      desc: 'ionice, run by hand, and unknown keys are warnings',
      text: "shelf=1\nslot=2\nnetif=eth1\nfilename=srv/vblade/disk1.img\nionice='-c2 -n7'\nFOO=bar\n",
      want: exp({}),
      warnings: [
        `${F}:5: ionice='-c2 -n7' is not applied: vbladed does not run ionice, as Debian's unit did (it would have set best-effort I/O priority 7); to get it, run vbladed under "ionice -c2 -n7" or start it with "systemctl start vblade@NAME", whose unit sets best-effort I/O priority 7`,
        `${F}:6: FOO is not a vblade.conf.d key and is ignored; the keys are shelf, slot, netif, filename, options, ionice`,
      ],
    },
    {
      desc: 'trailing comments as the shell reads them; a # inside a word stays',
      text: "shelf=1 # rack 1\nslot=2\t# second disk\nnetif=eth1\nfilename=/srv/vblade/disk#1.img\noptions='-s' # sync\n",
      want: exp({ file: '/srv/vblade/disk#1.img', sync: true }),
    },
    {
      desc: 'a # inside quotes is part of the value',
      text: 'shelf=1\nslot=2\nnetif=eth1\nfilename="/srv/vblade/a #1.img"   # quoted\n',
      want: exp({ file: '/srv/vblade/a #1.img' }),
    },
  ];
  for (const row of rows) {
    t.test(row.desc, async (t) => {
      const d = parseDebianConf(row.text, F);
      t.same(d.export, row.want);
      t.same(d.warnings.map((w) => `${w.file}:${w.line}: ${w.message}`).sort(), (row.warnings ?? []).sort());
    });
  }
});

t.test('bad fragments', async (t) => {
  const rows: Array<{ desc: string; text: string; msg: string[] }> = [
    {
      desc: 'missing keys',
      text: 'shelf=1\nnetif=\n',
      msg: [
        `${F}: slot is missing; add a line like slot=1`,
        `${F}: filename is missing; add a line like filename=/srv/vblade/disk.img`,
        `${F}:2: netif is empty; add a line like netif=eth1`,
      ],
    },
    {
      desc: 'out of range, bad option, operand in options',
      text: "shelf=65535\nslot=300\nnetif=eth1\nfilename=/x\noptions='-b 0'\n",
      msg: [
        `${F}:1: shelf 65535 is out of range; use 0..65534 (65535 is the broadcast shelf and cannot be exported)`,
        `${F}:2: slot 300 is out of range; use 0..254 (255 is the broadcast slot and cannot be exported)`,
        `${F}:5: options: -b: buffer count 0 is out of range; use 1..65535`,
      ],
    },
    {
      desc: 'syntax',
      text: "shelf=1\nslot=1\nslot=2\nnetif eth1\nfilename='/x\noptions='-r /dev/sda'\n",
      msg: [
        `${F}: netif is missing; add a line like netif=eth1`,
        `${F}: filename is missing; add a line like filename=/srv/vblade/disk.img`,
        `${F}:3: slot is set twice (first on line 2); keep one`,
        `${F}:4: "netif eth1" is not a name=value assignment; write e.g. shelf=1`,
        `${F}:5: unbalanced quotes in the value of filename; quote the whole value, e.g. filename='...'`,
        `${F}:6: options holds "/dev/sda", which is not a vblade option; shelf, slot, netif and filename have their own lines`,
      ],
    },
  ];
  for (const row of rows) {
    t.test(row.desc, async (t) => {
      const err = t.throws(() => parseDebianConf(row.text, F)) as ConfigError;
      t.type(err, ConfigError);
      t.same(err.message.split('\n'), row.msg);
    });
  }
});

t.test('ionice under the unit: silent when the unit sets the same, else names that unit', async (t) => {
  const base = 'shelf=1\nslot=2\nnetif=eth1\nfilename=/srv/vblade/disk1.img\n';
  const unit = { unit: 'vblade@disk1.service' };
  for (const same of ["ionice='-c2 -n7'", 'ionice="-c 2 -n 7"', "ionice='--class best-effort --classdata 7'"]) {
    t.same(parseDebianConf(`${base}${same}\n`, F, unit).warnings, [], `${same}: what the unit does already`);
  }
  t.same(
    parseDebianConf(`${base}ionice='-c3'\n`, F, unit).warnings.map((w) => w.message),
    [
      `ionice='-c3' is not applied: vbladed does not run ionice; vblade@disk1.service sets the I/O priority (IOSchedulingClass=best-effort, IOSchedulingPriority=7 as shipped); for idle I/O, change them with "systemctl edit vblade@disk1.service"`,
    ],
  );
  t.same(
    parseDebianConf(`${base}ionice='-x'\n`, F).warnings.map((w) => w.message),
    [
      `ionice='-x' is not applied: vbladed does not run ionice, as Debian's unit did; to get it, run vbladed under "ionice -x" or start it with "systemctl start vblade@NAME", whose unit sets best-effort I/O priority 7`,
    ],
    'an ionice value that cannot be read is still named',
  );
  t.same(parseDebianConf(`${base}ionice=\n`, F).warnings, [], 'an empty ionice= asks for nothing');
});

t.test('parseIonice reads what ionice(1) takes', async (t) => {
  t.same(parseIonice('-c2 -n7'), { ioClass: 'best-effort', level: 7 });
  t.same(parseIonice('-c 3'), { ioClass: 'idle', level: undefined });
  t.same(parseIonice('--class=realtime --classdata=0'), { ioClass: 'realtime', level: 0 });
  for (const bad of ['', '-n7', '-c9', '-c2 -n8', '-c2 -n', '-p 1', '-c2 extra'])
    t.equal(parseIonice(bad), undefined, `"${bad}"`);
});

t.test('a near miss of a key is an error with "did you mean"; another name stays a warning', async (t) => {
  const base = 'shelf=1\nnetif=eth1\nfilename=/srv/vblade/disk1.img\n';
  t.throws(() => parseDebianConf(`${base}slot=2\noption='-r'\n`, F), {
    message: new RegExp(
      `^${F}:5: option is not a vblade.conf.d key \\(did you mean "options"\\?\\); the keys are shelf, slot, netif, filename, options, ionice$`,
    ),
  });
  t.throws(() => parseDebianConf(`${base}slott=2\n`, F), {
    message: /slott is not a vblade\.conf\.d key \(did you mean "slot"\?\)/,
  });
  t.same(
    parseDebianConf(`${base}slot=2\nVBLADE_PERSIST_ID=7\n`, F).warnings.map((w) => w.message),
    ['VBLADE_PERSIST_ID is not a vblade.conf.d key and is ignored; the keys are shelf, slot, netif, filename, options, ionice'],
  );
});

t.test('the unit a fragment is served by comes from the cgroup', async (t) => {
  t.equal(ownServiceUnit('0::/system.slice/system-vblade.slice/vblade@disk1.service\n'), 'vblade@disk1.service');
  t.equal(ownServiceUnit('12:pids:/\n0::/user.slice/user-0.slice/session-3.scope\n'), undefined, 'a login session: by hand');
  t.equal(ownServiceUnit(''), undefined, 'no cgroup file');
});

t.test('hostile ionice values: no raw control character in the warning, a long one read as unreadable', async (t) => {
  const base = 'shelf=1\nslot=2\nnetif=eth1\nfilename=/srv/vblade/disk1.img\n';
  const [w] = parseDebianConf(`${base}ionice='-c3 \u001b[2J\u009b31m'\n`, F).warnings;
  t.match(w.message, /^ionice='-c3 \\u001b\[2J\\u009b31m' is not applied/);
  t.notOk(/\p{Cc}/u.test(w.message), 'no control character raw');
  const long = '-c '.repeat(5000) + '2';
  t.equal(parseIonice(long), undefined, 'a value that is not what ionice takes');
  t.match(
    parseDebianConf(`${base}ionice='${long}'\n`, F).warnings[0].message,
    /is not applied: vbladed does not run ionice, as Debian's unit did; to get it/,
  );
});
