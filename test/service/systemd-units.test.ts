// systemd/*.service pass `systemd-analyze verify` (with our man pages on
// MANPATH, so the Documentation= links are checked too) and keep the
// properties the service relies on: notify and watchdog, restart on failure,
// its own user with CAP_NET_RAW only, and the command lines of the units.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';

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
      'AmbientCapabilities=CAP_NET_RAW',
      'CapabilityBoundingSet=CAP_NET_RAW',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'StateDirectory=vblade',
      'RuntimeDirectory=vblade',
      'KillMode=mixed',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'SyslogIdentifier=vbladed',
      // Only this host reaches the metrics listener unless the operator opens it.
      'IPAddressDeny=any',
      'IPAddressAllow=localhost',
    ])
      has(line);
    t.match(text, /^WatchdogSec=[0-9]+$/m);
    t.match(text, /^ReadWritePaths=/m);
    t.match(text, /^ExecStart=\/usr\/bin\/vbladed --foreground /m);
  }
  t.match(unitText('vblade@.service'), /--debian-config \/etc\/vblade\.conf\.d\/%I\.conf/);
  t.match(unitText('vblade.service'), /--config \/etc\/vblade\.conf$/m);
});
