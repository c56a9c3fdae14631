// The config file: good files and every kind of mistake with its exact
// message. The settings are tested in daemon-settings.test.ts, the rendered
// docs in render-docs.test.ts.

import t from 'tap';
import { exportConfig } from '../helpers/export-config';
import { ConfigError, parseConfigFile } from '../../src/config/config-file';
import type { ExportConfig } from '../../src/config/export-config';

const F = '/etc/vblade.conf';

function exp(over: Partial<ExportConfig>): ExportConfig {
  return exportConfig({ file: '/srv/a.img', interfaces: ['eth1'], ...over });
}

t.test('good files', async (t) => {
  const rows: Array<{ desc: string; text: string; exports: ExportConfig[]; daemon?: Record<string, string> }> = [
    {
      desc: 'two exports on two interfaces, every export key',
      text: `# comment
; another comment
[daemon]
state-dir = /var/lib/vblade
log-format = text

[export e1.1]
file = /srv/a.img
interfaces = eth1 eth2

[export 1.2]
file = b.img
interfaces = eth2, eth3
read-only = yes
direct = on
sync = true
offset = 0x800
length = 2048
mac-mask = 52:54:00:00:00:01, 525400000002
broadcast-edits = yes
buffer-count = 64
`,
      exports: [
        exp({ interfaces: ['eth1', 'eth2'] }),
        exp({
          slot: 2,
          file: '/etc/b.img',
          interfaces: ['eth2', 'eth3'],
          readOnly: true,
          direct: true,
          sync: true,
          offsetSectors: 2048,
          lengthSectors: 2048,
          macMask: ['52:54:00:00:00:01', '52:54:00:00:00:02'],
          broadcastEdits: true,
          bufferCount: 64,
        }),
      ],
      daemon: { 'state-dir': '/var/lib/vblade', 'log-format': 'text' },
    },
    {
      desc: 'null store; quoted value keeps spaces; CRLF line ends; empty value = default',
      text: '[export e0.0]\r\nnull-store = yes\r\nnull-sectors = 100\r\ninterfaces = lo\r\nbuffer-count =\r\n[export e2.0]\r\nfile = "/srv/with space "\r\ninterfaces = eth1\r\n',
      exports: [
        exp({ shelf: 0, slot: 0, file: '', interfaces: ['lo'], nullStore: true, nullSectors: 100 }),
        exp({ shelf: 2, slot: 0, file: '/srv/with space ' }),
      ],
    },
    {
      desc: 'trailing comments (after values and section headers): blank then # or ; outside quotes; a # inside a word stays',
      text: `[daemon]   # the daemon's settings
log-format = text   ; readable log

[export e1.1]                  ; /etc/vblade.conf
file = /srv/disk#1.img # the second disk
interfaces = eth2 eth3   # two paths to the same disk
sync = yes	# no write acknowledged before it is on disk

[export e1.2]
file = "/srv/a #b.img"  # quoted: the # is part of the name
interfaces = eth2
`,
      exports: [
        exp({ file: '/srv/disk#1.img', interfaces: ['eth2', 'eth3'], sync: true }),
        exp({ slot: 2, file: '/srv/a #b.img', interfaces: ['eth2'] }),
      ],
      daemon: { 'log-format': 'text' },
    },
    {
      desc: 'views per initiator; a relative views-dir is taken from the config file; views = none is the default',
      text: '[export e1.1]\nfile = /srv/golden.img\ninterfaces = eth1\nviews = per-initiator\nviews-dir = views\n[export e1.2]\nfile = /srv/b.img\ninterfaces = eth1\nviews = none\n',
      exports: [
        exp({ file: '/srv/golden.img', interfaces: ['eth1'], views: 'per-initiator', viewsDir: '/etc/views' }),
        exp({ slot: 2, file: '/srv/b.img', interfaces: ['eth1'] }),
      ],
    },
    {
      desc: 'views per boot, with the silence that marks a new boot',
      text: '[export e1.1]\nfile = /srv/golden.img\ninterfaces = eth1\nviews = per-boot\nviews-dir = /v\nper-boot-gap = 45\n',
      exports: [exp({ file: '/srv/golden.img', interfaces: ['eth1'], views: 'per-boot', viewsDir: '/v', perBootGap: 45 })],
    },
  ];
  for (const row of rows) {
    t.test(row.desc, async (t) => {
      const c = parseConfigFile(row.text, F);
      t.same(c.exports, row.exports);
      t.same(c.daemon, row.daemon ?? {});
    });
  }
});

t.test('bad files: every problem with file, line and what to do', async (t) => {
  const rows: Array<{ desc: string; text: string; msg: string[] }> = [
    {
      desc: 'empty file',
      text: '# nothing\n',
      msg: [`${F}: declares no export; add an [export eSHELF.SLOT] section with file and interfaces`],
    },
    {
      desc: 'key outside a section',
      text: 'file = /x\n[export e1.1]\nfile = /x\ninterfaces = eth1\n',
      msg: [`${F}:1: "file" is outside any section; put it under [daemon], [export eSHELF.SLOT] or [group NAME]`],
    },
    {
      desc: 'unknown key with a suggestion',
      text: '[export e1.1]\nfile = /x\ninterfaces = eth1\nreadonly = yes\n',
      msg: [
        `${F}:4: unknown key "readonly" in [export e1.1] (did you mean "read-only"?); known keys: file, interfaces, read-only, direct, sync, detect-zeroes, offset, length, mac-mask, broadcast-edits, buffer-count, shared, views, per-boot-gap, views-dir, max-views, views-min-free, initiator-rows, nbd-connections, remote-timeout, ceph-conf, ceph-id, null-store, null-sectors`,
      ],
    },
    {
      desc: 'daemon key in an export section',
      text: '[export e1.1]\nfile = /x\ninterfaces = eth1\nstate-dir = /x\n',
      msg: [`${F}:4: unknown key "state-dir" in [export e1.1]; state-dir belongs in [daemon]`],
    },
    {
      desc: 'missing file and interfaces',
      text: '[export e1.1]\nsync = yes\n',
      msg: [
        `${F}:1: [export e1.1] has no file; add file = /path/to/image-or-device`,
        `${F}:1: [export e1.1] has no interfaces; add interfaces = eth1 (several may be listed)`,
      ],
    },
    {
      desc: 'bad values',
      text: '[export e1.1]\nfile = /x\ninterfaces = eth1 eth1\nread-only = maybe\noffset = -1\nlength = 0\nbuffer-count = 0\nmac-mask = ff:ff:ff:ff:ff:ff\n',
      msg: [
        `${F}:3: interface eth1 is listed twice; list each interface once`,
        `${F}:4: read-only = "maybe" is not yes or no; write yes or no`,
        `${F}:5: offset = "-1" is not a sector count; write a whole number of 512-byte sectors (decimal or 0x hex)`,
        `${F}:6: length = 0 exports nothing; give at least 1 sector or leave length out to export to the end`,
        `${F}:7: buffer-count = 0 is out of range; use 1..65535`,
        `${F}:8: mac-mask: ff:ff:ff:ff:ff:ff is a group (multicast or broadcast) address and never sends requests; give the initiator's own MAC`,
      ],
    },
    {
      desc: 'bad section headers',
      text: '[export]\n[export x1]\n[export e65535.1]\n[exprot e1.1]\n[daemon x]\n',
      msg: [
        `${F}:1: [export] needs the export's address; write [export eSHELF.SLOT], e.g. [export e1.1]`,
        `${F}:2: "x1" is not an export address; write eSHELF.SLOT, e.g. [export e1.1]`,
        `${F}:3: shelf 65535 is out of range; use 0..65534 (65535 is the broadcast shelf and cannot be exported)`,
        `${F}:4: unknown section [exprot e1.1] (did you mean "export"?); sections are [daemon], [export eSHELF.SLOT] and [group NAME], e.g. [export e1.1]`,
        `${F}:5: [daemon] takes no name; write just [daemon]`,
      ],
    },
    {
      desc: 'duplicates',
      text: '[export e1.1]\nfile = /x\nfile = /y\ninterfaces = eth1\n[export 1.1]\nfile = /z\ninterfaces = eth2\n[daemon]\n[daemon]\n',
      msg: [
        `${F}:3: file is set twice in [export e1.1] (first on line 2); keep one`,
        `${F}:5: export e1.1 is declared twice (first on line 1); one section per export, list all its interfaces there`,
        `${F}:9: [daemon] appears twice (first on line 8); merge the two sections`,
      ],
    },
    {
      desc: 'daemon values and syntax',
      text: '[daemon]\nlog = journal\nmetrics = localhost\nstop-timeout = soon\nnot a pair\nname = "unbalanced\n[export e1.1]\nfile = /x\ninterfaces = eth1\n',
      msg: [
        `${F}:2: log = "journal" is not one of auto, stdout, stderr, syslog, file; pick one of them`,
        `${F}:3: metrics: "localhost" is not HOST:PORT; write e.g. 127.0.0.1:9469 or [::1]:9469`,
        `${F}:4: stop-timeout = "soon" is not a whole number; write digits, e.g. stop-timeout = 30`,
        `${F}:5: "not a pair" is not a key = value line; write key = value, or start a comment with #`,
        `${F}:6: unbalanced quotes in the value of name; quote the whole value as "..." and write \\" for a quote inside`,
      ],
    },
    {
      desc: 'null store without size, size without null store',
      text: '[export e1.1]\nnull-store = yes\ninterfaces = lo\n[export e1.2]\nfile = /x\ninterfaces = lo\nnull-sectors = 8\n',
      msg: [
        `${F}:1: [export e1.1] has null-store = yes but no null-sectors; add null-sectors = SIZE (in 512-byte sectors)`,
        `${F}:7: null-sectors is set but null-store is not; add null-store = yes or remove null-sectors`,
      ],
    },
    {
      desc: 'views without views-dir, views of a null store, an unknown kind of views',
      text: '[export e1.1]\nfile = /x\ninterfaces = lo\nviews = per-initiator\n[export e1.2]\nnull-store = yes\nnull-sectors = 8\ninterfaces = lo\nviews = per-initiator\nviews-dir = /v\n[export e1.3]\nfile = /x\ninterfaces = lo\nviews = per-host\n',
      msg: [
        `${F}:4: views = per-initiator needs views-dir; add views-dir = /srv/aoe/views (on the same file system as file)`,
        `${F}:9: views = per-initiator cannot be used with null-store = yes; remove one of them`,
        `${F}:14: views = "per-host" is not one of none, per-initiator, per-boot; pick one of them`,
      ],
    },
    {
      desc: "a section with several mistakes: each is named in one round, the mask's group too",
      text: '[group lab]\nmacs = 52:54:00:00:00:01\n\n[export e1.1]\nfile = /x\ninterface = eth1\nmac-mask = @labb\n',
      msg: [
        `${F}:4: [export e1.1] has no interfaces; add interfaces = eth1 (several may be listed)`,
        `${F}:6: unknown key "interface" in [export e1.1] (did you mean "interfaces"?); known keys: file, interfaces, read-only, direct, sync, detect-zeroes, offset, length, mac-mask, broadcast-edits, buffer-count, shared, views, per-boot-gap, views-dir, max-views, views-min-free, initiator-rows, nbd-connections, remote-timeout, ceph-conf, ceph-id, null-store, null-sectors`,
        `${F}:7: mac-mask: no group @labb (did you mean "@lab"?); groups: @lab`,
      ],
    },
    {
      desc: 'per-boot-gap without views = per-boot, out of range, not a number',
      text: '[export e1.1]\nfile = /x\ninterfaces = lo\nviews = per-initiator\nviews-dir = /v\nper-boot-gap = 30\n[export e1.2]\nfile = /x\ninterfaces = lo\nviews = per-boot\nviews-dir = /v\nper-boot-gap = 0\n[export e1.3]\nfile = /x\ninterfaces = lo\nviews = per-boot\nviews-dir = /v\nper-boot-gap = soon\n[export e1.4]\nfile = /x\ninterfaces = lo\nviews = per-boot\nviews-dir = /v\nper-boot-gap = -1\n',
      msg: [
        `${F}:6: per-boot-gap is set but views is not per-boot; set views = per-boot or remove per-boot-gap`,
        `${F}:12: per-boot-gap = 0 is out of range; use 1..86400`,
        `${F}:18: per-boot-gap = "soon" is not a whole number; write digits, e.g. per-boot-gap = 1`,
        `${F}:24: per-boot-gap = -1 is out of range; use 1..86400`,
      ],
    },
  ];
  for (const row of rows) {
    t.test(row.desc, async (t) => {
      const err = t.throws(() => parseConfigFile(row.text, F)) as ConfigError;
      t.type(err, ConfigError);
      t.same(err.message.split('\n'), row.msg);
    });
  }
});

t.test('spin-us in the file is checked against its range', async (t) => {
  const text = `[daemon]\nspin-us = 1001\n[export e1.1]\nfile = /a\ninterfaces = eth1\n`;
  t.throws(() => parseConfigFile(text, F), { message: `${F}:2: spin-us = 1001 is out of range; use 0..1000` });
  t.equal(parseConfigFile(text.replace('1001', '1000'), F).daemon['spin-us'], '1000');
});

t.test('a yes/no value is one of its words, not a name every object has', async (t) => {
  // "constructor" and "__proto__" are `in` every object: read as a function or {}, truthy in the
  // supervisor but gone (function) after the JSON trip to the worker, so read-only = constructor served read-write.
  for (const word of ['constructor', '__proto__', 'Constructor', '__PROTO__']) {
    const text = `[export e1.1]\nfile = /a\ninterfaces = eth1\nread-only = ${word}\n`;
    t.throws(
      () => parseConfigFile(text, F),
      { message: `${F}:4: read-only = "${word}" is not yes or no; write yes or no` },
      word,
    );
  }
});
