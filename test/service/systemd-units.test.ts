// systemd/*.service pass `systemd-analyze verify` (with our man pages on
// MANPATH, so the Documentation= links are checked too) and keep the
// properties the service relies on: notify and watchdog, restart on failure,
// its own user with CAP_NET_RAW only, the confinement (system calls, /proc,
// IPC, devices, limits, writable paths), and the command lines of the units.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { configDirOf } from '../../src/config/fragments';

const ROOT = path.join(__dirname, '..', '..', '..');
const UNITS = ['vblade.service', 'vblade@.service'];
const missing =
  spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0
    ? undefined
    : 'systemd-analyze is not installed (apt-get install systemd)';

function unitText(name: string): string {
  return fs.readFileSync(path.join(ROOT, 'systemd', name), 'utf8');
}

t.test('systemd-analyze verify', { skip: missing }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vblade-units-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // ExecStart must name an executable that exists here: point it at our bin.
  const bin = path.join(ROOT, 'bin', 'vbladed.js');
  for (const u of UNITS) fs.writeFileSync(path.join(dir, u), unitText(u).replaceAll('/usr/bin/vbladed', bin));
  fs.symlinkSync('vblade@.service', path.join(dir, 'vblade@disk1.service'));
  const man = path.join(dir, 'man');
  fs.mkdirSync(path.join(man, 'man5'), { recursive: true });
  fs.mkdirSync(path.join(man, 'man8'));
  fs.copyFileSync(path.join(ROOT, 'docs', 'vblade.conf.5'), path.join(man, 'man5', 'vblade.conf.5'));
  for (const p of ['vblade.8', 'vbladed.8']) fs.copyFileSync(path.join(ROOT, 'docs', p), path.join(man, 'man8', p));
  for (const u of ['vblade.service', 'vblade@disk1.service']) {
    const r = spawnSync('systemd-analyze', ['verify', path.join(dir, u)], {
      encoding: 'utf8',
      env: { ...process.env, MANPATH: man },
    });
    t.equal(r.status, 0, `${u}: ${r.stderr}${r.stdout}`);
    t.equal(r.stderr.trim(), '', `${u}: no warnings`);
  }
});

t.test('unit properties', async (t) => {
  for (const u of UNITS) {
    const text = unitText(u);
    const has = (line: string): void => {
      t.match(text, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), `${u}: ${line}`);
    };
    for (const line of [
      'Type=notify',
      'NotifyAccess=main',
      'Restart=on-failure',
      'User=vblade',
      // CAP_LEASE only where views can be configured (vblade.conf); a Debian fragment has no views.
      `AmbientCapabilities=${u === 'vblade.service' ? 'CAP_NET_RAW CAP_LEASE' : 'CAP_NET_RAW'}`,
      `CapabilityBoundingSet=${u === 'vblade.service' ? 'CAP_NET_RAW CAP_LEASE' : 'CAP_NET_RAW'}`,
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'StateDirectory=vblade',
      'RuntimeDirectory=vblade aoe-target-vblade',
      'KillMode=mixed',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'SyslogIdentifier=vbladed',
      // Only this host reaches the metrics listener unless the operator opens it.
      'IPAddressDeny=any',
      'IPAddressAllow=localhost',
      'SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register pkey_alloc pkey_free pkey_mprotect',
      'SystemCallFilter=~@resources',
      'SystemCallErrorNumber=EPERM',
      'ProtectProc=invisible',
      'ProcSubset=pid',
      'PrivateIPC=yes',
      'RemoveIPC=yes',
      'PrivateMounts=yes',
      'DevicePolicy=closed',
      'DeviceAllow=block-* rw',
      'LimitMEMLOCK=64M',
      'LimitNOFILE=16384',
    ])
      has(line);
    t.notMatch(text, /^LimitMEMLOCK=infinity$/m, `${u}: locked memory is bounded`);
    // The views walkthrough ends with `systemctl enable --now vblade`: its views-dir must be writable.
    const writable = (/^ReadWritePaths=(.*)$/m.exec(text)?.[1].split(/\s+/) ?? []).map((p) => p.replace(/^-/, ''));
    const viewsDir = /^views-dir = (\S+)/m.exec(fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8'))?.[1];
    t.ok(viewsDir, 'docs/operations.md names a views-dir');
    t.ok(
      writable.some((p) => viewsDir === p || viewsDir?.startsWith(`${p}/`)),
      `${u}: the walkthrough's views-dir ${viewsDir} is under ReadWritePaths (${writable.join(' ')})`,
    );
    t.match(text, /^WatchdogSec=[0-9]+$/m);
    t.match(text, /^ReadWritePaths=/m);
    t.match(text, /^ExecStart=\/usr\/bin\/vbladed --foreground /m);
  }
  // The config's fragments directory, read at every start: not ConfigurationDirectory=, which systemd
  // makes root:root, so that User=vblade could not read it and the start failed (the package makes it
  // root:vblade 2750; test/package runs ExecStartPre as the unit's user).
  const fragmentsDir = configDirOf('/etc/vblade.conf', {});
  t.equal(fragmentsDir, '/etc/vblade.d');
  t.match(unitText('vblade.service'), /^User=vblade$/m);
  t.notMatch(unitText('vblade.service'), /^ConfigurationDirectory=/m);
  // vblade ctl add writes the fragments, as root; the daemon only reads them.
  t.notMatch(unitText('vblade.service'), new RegExp(`^ReadWritePaths=.*${fragmentsDir}`, 'm'));
  // %i keeps the instance as written; %I would turn a "-" into a "/" of the paths and name.
  t.match(unitText('vblade@.service'), /--debian-config \/etc\/vblade\.conf\.d\/%i\.conf --name %i$/m);
  t.match(unitText('vblade@.service'), /^ConditionPathExists=\/etc\/vblade\.conf\.d\/%i\.conf$/m);
  t.notMatch(unitText('vblade@.service'), /^(ExecStart|ConditionPathExists)=.*%I/m, 'the unescaped instance names no path');
  t.match(unitText('vblade.service'), /--config \/etc\/vblade\.conf$/m);
});
