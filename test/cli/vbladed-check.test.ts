// `vbladed --check` opens every backing file and looks up every interface as
// serving would, and says what cannot be served with the fix, exit 1; an
// interface that does not exist yet is a warning, as start-up waits for it.
//
// Network safety: vbladed runs only inside a namespace this test creates,
// with a veth pair it creates; --check sends nothing, but is kept out of the
// root namespace all the same.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { patternFile, tempDir } from '../helpers/files';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { createNetns, createVeth, requireRoot } from '../../lab/netns';
import { asNobodyArgs, checkoutForUser, REPO } from '../helpers/targets';

const VBLADED = path.join(REPO, 'bin', 'vbladed.js');

if (requireRoot(t)) {
  t.test('--check: files and interfaces', async (t) => {
    const ns = await createNetns(t, 'check');
    const veth = await createVeth(t, ns, ns);
    const dir = tempDir(t, 'check');
    const file = await patternFile(t, 64);
    const conf = path.join(dir, 'vblade.conf');
    const check = () => ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run')]);

    fs.writeFileSync(conf, `[export e1.1]\nfile = ${file}\ninterfaces = ${veth.a.ifname}\n`);
    const good = await check();
    t.equal(good.code, 0, good.stderr);
    t.match(good.stdout, `${conf}: OK, 1 export\n  e1.1 on ${veth.a.ifname}: ${file}, read-write`);
    t.equal(good.stderr, '');

    const missing = path.join(dir, 'missing.img');
    fs.writeFileSync(
      conf,
      `[export e1.1]\nfile = ${missing}\ninterfaces = ${veth.a.ifname}\n\n[export e1.2]\nfile = ${file}\ninterfaces = ${veth.a.ifname} ${veth.a.ifname}x\n`,
    );
    const bad = await check();
    t.equal(bad.code, 1);
    t.equal(bad.stdout, '', 'no OK');
    t.equal(
      bad.stderr,
      [
        `vbladed: warning: e1.2: interface ${veth.a.ifname}x not found; e1.2 is served on it when it appears (list interfaces with \`ip link\`)`,
        `vbladed: e1.1: cannot open ${missing}: no such file; check the path or create it (e.g. truncate -s 1G ${missing})`,
        `vbladed: ${conf}: 1 problem; fix it and check again`,
        '',
      ].join('\n'),
    );

    // A file of 1000 bytes: served, but its last 488 bytes are not, and --check says so.
    const odd = path.join(dir, 'odd.img');
    fs.writeFileSync(odd, Buffer.alloc(1000));
    fs.writeFileSync(conf, `[export e1.1]\nfile = ${odd}\ninterfaces = ${veth.a.ifname}\n`);
    const partial = await check();
    t.equal(partial.code, 0, partial.stderr);
    t.equal(
      partial.stderr,
      `vbladed: warning: e1.1: ${odd} is 1000 bytes, not a multiple of 512: its last 488 bytes are not served (initiators see 1 sector); to serve them, grow the file to whole sectors, e.g. truncate -s 1024 ${odd}\n`,
    );
    fs.writeFileSync(conf, `[export e1.1]\nfile = ${odd}\ninterfaces = ${veth.a.ifname}\nlength = 1\n`);
    const chosen = await check();
    t.equal(chosen.stderr, '', 'with a length the end is chosen: no warning');

    // An interface that is not there yet (a VLAN or NIC that comes up later): start waits for it, and so does --check.
    fs.writeFileSync(conf, `[export e1.1]\nfile = ${file}\ninterfaces = ${veth.a.ifname} ${veth.a.ifname}x\n`);
    const later = await check();
    t.equal(later.code, 0, later.stderr);
    t.match(later.stdout, `${conf}: OK, 1 export`);
    t.equal(
      later.stderr,
      `vbladed: warning: e1.1: interface ${veth.a.ifname}x not found; e1.1 is served on it when it appears (list interfaces with \`ip link\`)\n`,
    );

    // No interface of the config exists: start would fail, so --check does.
    fs.writeFileSync(conf, `[export e1.1]\nfile = ${file}\ninterfaces = ${veth.a.ifname}x\n`);
    const none = await check();
    t.equal(none.code, 1);
    t.equal(
      none.stderr,
      `vbladed: e1.1: interface ${veth.a.ifname}x not found; list interfaces with \`ip link\`\nvbladed: ${conf}: 1 problem; fix it and check again\n`,
    );
  });
}

t.test('--check: views on a file system without reflinks are refused, on XFS with reflinks they pass', async (t) => {
  if (!requireLoopFs(t, 'ext4') || !requireLoopFs(t, 'xfs-reflink')) return;
  const ns = await createNetns(t, 'check-views');
  const veth = await createVeth(t, ns, ns);
  const dir = tempDir(t, 'check-views');
  const conf = path.join(dir, 'vblade.conf');
  const check = () => ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run')]);
  const section = (image: string, viewsDir: string): string =>
    `[export e1.1]\nfile = ${image}\ninterfaces = ${veth.a.ifname}\nviews = per-initiator\nviews-dir = ${viewsDir}\n`;

  const ext4 = await loopFs(t, 'ext4');
  const onExt4 = await patternFile(t, 64, { dir: ext4, name: 'golden.img' });
  fs.writeFileSync(conf, section(onExt4, path.join(ext4, 'views')));
  const bad = await check();
  t.equal(bad.code, 1);
  t.equal(
    bad.stderr.split('\n').find((l) => l.startsWith('vbladed: e1.1:')),
    `vbladed: e1.1: views of ${onExt4} need a file system that makes copy-on-write clones (reflinks), and ${ext4} is on ext2/3/4 without them; use XFS made with \`mkfs.xfs -m reflink=1\` (the default since xfsprogs 5.1) or btrfs (for a logical volume: LVM thin snapshots, see docs/operations.md)`,
  );
  t.notOk(fs.existsSync(path.join(ext4, 'views')), '--check creates nothing');

  const xfs = await loopFs(t, 'xfs-reflink');
  const onXfs = await patternFile(t, 64, { dir: xfs, name: 'golden.img' });
  fs.writeFileSync(conf, section(onXfs, path.join(xfs, 'views')));
  const good = await check();
  t.equal(good.code, 0, good.stderr);
  t.notOk(fs.existsSync(path.join(xfs, 'views')), '--check creates nothing here either');
  t.equal(
    good.stderr,
    `vbladed: warning: e1.1 has views = per-initiator and no mac-mask: any machine on ${veth.a.ifname} can make views (a file each, as large as the image can grow) by sending frames from made-up MACs, up to max-views = 256; set mac-mask = the MACs of the lab's machines\n`,
    'a views export without a mask is warned about',
  );
  fs.writeFileSync(conf, `${section(onXfs, path.join(xfs, 'views'))}mac-mask = 52:54:00:12:34:56\n`);
  const masked = await check();
  t.equal(masked.code, 0, masked.stderr);
  t.equal(masked.stderr, '', 'with a mask: no warning');
});

t.test('--check lists MAC groups with their exports, warns of an unused one, and reads fragments', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'check-groups');
  const veth = await createVeth(t, ns, ns);
  const dir = tempDir(t, 'check-groups');
  fs.chmodSync(dir, 0o755);
  const file = await patternFile(t, 64);
  const file2 = await patternFile(t, 64);
  const conf = path.join(dir, 'lab.conf');
  const check = () => ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run')]);
  fs.writeFileSync(
    conf,
    `[group lab]\nmacs = 52:54:00:00:00:01 52:54:00:00:00:02\n[group old]\nmacs = 52:54:00:00:00:09\n` +
      `[export e1.1]\nfile = ${file}\ninterfaces = ${veth.a.ifname}\nmac-mask = @lab\n`,
  );
  fs.mkdirSync(path.join(dir, 'lab.d'), { mode: 0o750 });
  fs.writeFileSync(
    path.join(dir, 'lab.d', 'e1.2.conf'),
    `[export e1.2]\nfile = ${file2}\ninterfaces = ${veth.a.ifname}\nread-only = yes\nmac-mask = @lab 52:54:00:00:00:03\n`,
    { mode: 0o640 },
  );
  const r = await check();
  t.equal(r.code, 0, r.stderr);
  t.equal(
    r.stdout.split('\n').slice(0, 6).join('\n'),
    [
      `${conf}: OK, 2 exports`,
      `  e1.1 on ${veth.a.ifname}: ${file}, read-write, buffer count 16, mask 52:54:00:00:00:01,52:54:00:00:00:02`,
      `  e1.2 on ${veth.a.ifname}: ${file2}, read-only, buffer count 16, mask 52:54:00:00:00:01,52:54:00:00:00:02,52:54:00:00:00:03`,
      `  group lab: 2 MACs (52:54:00:00:00:01, 52:54:00:00:00:02), used by e1.1 e1.2`,
      `  group old: 1 MAC (52:54:00:00:00:09), used by no export`,
      `  fragments from ${path.join(dir, 'lab.d')}`,
    ].join('\n'),
  );
  t.equal(r.stderr, `vbladed: warning: ${conf}:3: [group old] is named by no mac-mask; use it as mac-mask = @old or remove it\n`);

  // A typo in a group's name, in a fragment: the file and line, and the nearest name.
  fs.writeFileSync(
    path.join(dir, 'lab.d', 'e1.2.conf'),
    `[export e1.2]\nfile = ${file2}\ninterfaces = ${veth.a.ifname}\nmac-mask = @lba\n`,
  );
  const typo = await check();
  t.equal(typo.code, 1);
  t.match(
    typo.stderr,
    `${path.join(dir, 'lab.d', 'e1.2.conf')}:4: mac-mask: no group @lba (did you mean "@lab"?); groups: @lab @old`,
  );
});

t.test('--check warns of a metrics listener that anyone on the network can reach, unless that is acknowledged', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'check-metrics');
  const veth = await createVeth(t, ns, ns);
  const dir = tempDir(t, 'check-metrics');
  const file = await patternFile(t, 64);
  const conf = path.join(dir, 'vblade.conf');
  const check = (daemon: string) => {
    fs.writeFileSync(conf, `[daemon]\n${daemon}\n[export e1.1]\nfile = ${file}\ninterfaces = ${veth.a.ifname}\n`);
    return ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run')]);
  };
  for (const local of ['127.0.0.1:9469', '[::1]:9469', 'localhost:9469', '127.0.0.2:9469']) {
    const r = await check(`metrics = ${local}\n`);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stderr, '', `no warning for ${local}`);
  }
  const wild = await check('metrics = 0.0.0.0:9469\n');
  t.equal(wild.code, 0, 'a warning, not a refusal');
  t.equal(
    wild.stderr,
    'vbladed: warning: metrics = 0.0.0.0:9469 listens on every address of this host: anyone who can reach port 9469 can read ' +
      'the metrics (export names and files, counters) and make the daemon answer; bind 127.0.0.1:9469 (a Prometheus on ' +
      'this host, or a tunnel to it), or let only your Prometheus reach the port (a firewall rule, or IPAddressAllow= in ' +
      'the systemd unit) and set metrics-allow-remote = yes\n',
  );
  const lan = await check('metrics = 192.0.2.7:9469\n');
  t.match(lan.stderr, /^vbladed: warning: metrics = 192\.0\.2\.7:9469 is not a loopback address: anyone who can reach port 9469/);
  const v6 = await check('metrics = [::]:9469\n');
  t.match(v6.stderr, /^vbladed: warning: metrics = \[::\]:9469 listens on every address of this host/);
  const acknowledged = await check('metrics = 0.0.0.0:9469\nmetrics-allow-remote = yes\n');
  t.equal(acknowledged.code, 0, acknowledged.stderr);
  t.equal(acknowledged.stderr, '', 'metrics-allow-remote = yes: no warning');
});

t.test(
  '--check: a state directory every user shares (/tmp) fails as start does, without advice to change its mode',
  async (t) => {
    if (!requireRoot(t)) return;
    const ns = await createNetns(t, 'check-state');
    const veth = await createVeth(t, ns, ns);
    const dir = tempDir(t, 'check-state');
    fs.chmodSync(dir, 0o755);
    const shared = path.join(dir, 'tmp');
    fs.mkdirSync(shared);
    fs.chmodSync(shared, 0o1777); // like /tmp
    const file = await patternFile(t, 64);
    const conf = path.join(dir, 'vblade.conf');
    fs.writeFileSync(conf, `[daemon]\nstate-dir = ${shared}\n\n[export e1.1]\nfile = ${file}\ninterfaces = ${veth.a.ifname}\n`);
    const r = await ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run')]);
    t.equal(r.code, 1, 'refused, as start refuses it');
    t.equal(r.stdout, '', 'no OK');
    t.match(
      r.stderr,
      `vbladed: state directory ${shared} is writable by its group and others (mode 1777); another user could replace its files: ` +
        'it is a directory every user shares (do not change its mode); use a directory of its own, made with install -d -m 750 DIR\n',
    );
    t.notMatch(r.stderr, /chmod/, 'no chmod of a shared directory is suggested');
  },
);

t.test('--check says what start would of the log file, and makes nothing', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'check-log');
  const veth = await createVeth(t, ns, ns);
  const dir = tempDir(t, 'check-log');
  const file = await patternFile(t, 64);
  const conf = path.join(dir, 'vblade.conf');
  const run = path.join(dir, 'run');
  const withLog = (logFile: string) =>
    fs.writeFileSync(
      conf,
      `[daemon]\nlog = file\nlog-file = ${logFile}\n\n[export e1.1]\nfile = ${file}\ninterfaces = ${veth.a.ifname}\n`,
    );
  const check = () => ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', run]);
  const start = () => ns.run('timeout', ['5', process.execPath, VBLADED, '--foreground', '--config', conf, '--run-dir', run]);

  // The directory above the log directory is missing: start refuses, and --check says so first.
  const deep = path.join(dir, 'nodir', 'logs', 'vblade.log');
  withLog(deep);
  const missing = await check();
  t.equal(missing.code, 1, 'a log file start cannot make is a problem');
  const fix = `${path.join(dir, 'nodir')} does not exist; create ${path.join(dir, 'nodir', 'logs')} (mode 0750) or choose another log-file`;
  t.match(missing.stderr, `vbladed: cannot open the log file ${deep}: ${fix}\n`);
  t.match((await start()).stderr, fix, 'start refuses it for the same reason');

  // A log directory under a directory anyone may change: refused by both.
  const open = path.join(dir, 'open');
  fs.mkdirSync(path.join(open, 'logs'), { recursive: true });
  fs.chmodSync(open, 0o777);
  withLog(path.join(open, 'logs', 'vblade.log'));
  const unsafe = await check();
  t.equal(unsafe.code, 1);
  t.match(unsafe.stderr, /cannot open the log file .*is writable by its group and others \(mode 0777\) without the sticky bit/);
  t.match((await start()).stderr, /is writable by its group and others \(mode 0777\) without the sticky bit/);

  // A directory start would make, in a parent it trusts: fine, and --check leaves it unmade.
  const later = path.join(dir, 'logs', 'vblade.log');
  withLog(later);
  const fine = await check();
  t.equal(fine.code, 0, fine.stderr);
  t.match(fine.stdout, `log to ${later}`);
  t.notOk(fs.existsSync(path.dirname(later)), '--check made no directory');
});

t.test('--check ends a refusal of the file itself with the count too', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'check-parse');
  const dir = tempDir(t, 'check-parse');
  const conf = path.join(dir, 'vblade.conf');
  fs.writeFileSync(conf, '[export e1.1]\nfile = /x\ninterface = eth1\n');
  const r = await ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /has no interfaces;[\s\S]*unknown key "interface"/, 'both mistakes');
  t.match(r.stderr, new RegExp(`\\n${`vbladed: ${conf}: 2 problems; fix them and check again`.replace(/[.]/g, '\\.')}\\n$`));
});

t.test('--check names in one round a section mistake and a missing file or interface of another export', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'check-round');
  const dir = tempDir(t, 'check-round');
  const conf = path.join(dir, 'vblade.conf');
  const missing = path.join(dir, 'missing.img');
  fs.writeFileSync(
    conf,
    `[export e1.1]\nfile = /x\ninterface = eth1\n\n[export e1.2]\nfile = ${missing}\ninterfaces = lo\n\n[export e1.3]\nfile = ${missing}\ninterfaces = nosuchif0\nread-only = yes\n`,
  );
  const r = await ns.run(process.execPath, [VBLADED, '--check', '--config', conf, '--run-dir', path.join(dir, 'run')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /unknown key "interface"/, 'the section mistake');
  t.match(
    r.stderr,
    new RegExp(`e1\\.2: cannot open ${missing.replace(/[.]/g, '\\.')}`),
    "the other export's missing file, in the same round",
  );
  t.match(r.stderr, /vbladed: warning: e1\.3: interface nosuchif0 not found/, 'and its missing interface (a warning)');
  t.notMatch(r.stderr, /e1\.1: cannot open \/x/, 'the mistaken section is not tried');
  t.match(r.stderr, /: 4 problems; fix them and check again\n$/);
});

t.test('run as a user: a run directory it cannot make is named by --check and by start, with the fix', async (t) => {
  if (!requireRoot(t)) return;
  const ns = await createNetns(t, 'check-rundir');
  const dir = tempDir(t, 'check-rundir');
  fs.chmodSync(dir, 0o755); // root's: nobody may make anything in it
  const file = await patternFile(t, 8, { dir });
  fs.chmodSync(file, 0o644);
  const conf = path.join(dir, 'vblade.conf');
  fs.writeFileSync(conf, `[daemon]\nstate-dir = none\n\n[export e1.1]\nfile = ${file}\nread-only = yes\ninterfaces = lo\n`, {
    mode: 0o644,
  });
  const run = path.join(dir, 'rund');
  const vbladed = path.join(checkoutForUser(t), 'bin', 'vbladed.js');
  const fix = `uid 65534 may not write ${dir}; make it yourself (install -d -o 65534 -m 755 ${run})`;
  const checked = await ns.run('env', asNobodyArgs(process.execPath, vbladed, '--check', '--config', conf, '--run-dir', run));
  t.equal(checked.code, 1, `--check refuses it (it said OK): ${checked.stdout}`);
  t.match(checked.stderr, `the run directory ${run} does not exist, and start cannot make it: ${fix}`);
  const started = await ns.run(
    'env',
    asNobodyArgs(process.execPath, vbladed, '--foreground', '--log', 'stderr', '--config', conf, '--run-dir', run),
    { timeoutMs: 30000 },
  );
  t.not(started.code, 0, 'start stops');
  t.match(started.stderr, `cannot make ${run}: ${fix}`, 'start names the directory and the fix');
  t.notMatch(started.stderr, /\/proc\/self\/fd/, 'not the descriptor path it used');
});
