// `vblade ctl add` / `remove` run by the client itself, as root, against a
// control socket: the fragment is written by the client and the daemon is
// asked only for a reload (with what it is for, in its log); a daemon that
// names a file root should not trust (writable by others, not root's, a
// --config-dir of its command line) gets nothing written; a user who is not
// root is refused before anything is asked; a raw "add" request is refused
// by the daemon; two edits at once take turns, and a user's flock on the
// config file does not hold them up.

import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import pino from 'pino';
import { runCtl } from '../../src/cli/ctl';
import { runConfigEdit } from '../../src/cli/ctl-edit';
import { parseConfigFile } from '../../src/config/config-file';
import { ControlServer, type ConfigFiles, type ControlTarget } from '../../src/service/control';
import { controlRequest } from '../../src/cli/control-client';
import { tempDir } from '../helpers/files';
import { asNobodyArgs, vbladeForUser } from '../helpers/targets';
import { requireRoot } from '../../lab/netns';
import type { TestLike } from '../../lab/common';

interface Daemon {
  sock: string;
  reloads: string[];
  logs: string[];
}

/** A control socket whose daemon serves `files`; its reloads answer `e1.3` added after `delayMs`. */
async function fakeDaemon(t: TestLike, base: string, files: ConfigFiles | undefined, delayMs = 0): Promise<Daemon> {
  // delayMs < 0: the reload never answers.
  const sock = path.join(base, 'run', 'x.sock');
  fs.mkdirSync(path.dirname(sock), { mode: 0o755, recursive: true });
  const d: Daemon = { sock, reloads: [], logs: [] };
  const target: ControlTarget = {
    request: async () => ({}),
    reload: async () => {
      d.reloads.push('reload');
      if (delayMs < 0) await new Promise(() => undefined);
      await new Promise((r) => setTimeout(r, delayMs));
      return { added: [], removed: [], changed: [], warnings: [] };
    },
  };
  if (files) target.configFiles = () => files;
  const server = await ControlServer.listen(target, {
    socketPath: sock,
    group: 'nogroup',
    log: pino({}, { write: (s: string) => d.logs.push(s) }),
  });
  t.teardown(() => server.close());
  return d;
}

async function ctl(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCtl(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

function labConfig(base: string): string {
  fs.chmodSync(base, 0o755);
  const conf = path.join(base, 'lab.conf');
  fs.writeFileSync(conf, '[export e1.1]\nnull-store = yes\nnull-sectors = 8\ninterfaces = eth1\n', { mode: 0o644 });
  return conf;
}

if (requireRoot(t)) {
  t.test('root writes the fragment itself; the daemon only reloads, and its log says what for', async (t) => {
    const base = tempDir(t, 'ctl-edit');
    const conf = labConfig(base);
    const d = await fakeDaemon(t, base, { configFile: conf, defaultName: 'lab' });
    const r = await ctl('--socket', d.sock, 'add', 'e1.3', 'eth1', '/srv/d3.img', '--read-only');
    t.equal(r.code, 0, r.err);
    const fragment = path.join(base, 'lab.d', 'e1.3.conf');
    t.match(r.out, `e1.3: added, kept in ${fragment}\n`);
    t.match(fs.readFileSync(fragment, 'utf8'), /^\[export e1\.3\]\nfile = "\/srv\/d3\.img"\n/m);
    t.equal((fs.statSync(fragment).mode & 0o777).toString(8), '640');
    t.same(d.reloads, ['reload']);
    t.ok(
      d.logs.some((l) =>
        l.includes('control socket: reload for vblade ctl add e1.3 eth1 /srv/d3.img read-only=yes, asked by uid 0'),
      ),
      'the daemon logs the reload with what it was for and who asked',
    );
    const removed = await ctl('--socket', d.sock, 'remove', 'e1.3');
    t.equal(removed.code, 0, removed.err);
    t.notOk(fs.existsSync(fragment), 'remove deleted it');
  });

  t.test('an rbd image or NBD URI is added as written, not made a path under the current directory', async (t) => {
    const base = tempDir(t, 'ctl-edit-remote');
    const conf = labConfig(base);
    const d = await fakeDaemon(t, base, { configFile: conf, defaultName: 'lab' });
    for (const [key, file, more] of [
      ['e1.4', 'rbd:aoe/disk1', ['ceph-id=aoe']],
      ['e1.5', 'nbd://storage.lab:10809/disk', []],
      ['e1.6', 'nbd+unix:///disk?socket=/run/qsd/disk.sock', ['nbd-connections=2']],
    ] as const) {
      const r = await ctl('--socket', d.sock, 'add', key, 'eth1', file, ...more);
      t.equal(r.code, 0, `${file}: ${r.err}`);
      const c = parseConfigFile(fs.readFileSync(path.join(base, 'lab.d', `${key}.conf`), 'utf8'), `${key}.conf`);
      t.equal(c.exports[0].file, file, `${key}: file = ${file}`);
    }
    const rel = await ctl('--socket', d.sock, 'add', 'e1.7', 'eth1', 'rbd-disk.img');
    t.equal(rel.code, 0, rel.err);
    t.match(
      fs.readFileSync(path.join(base, 'lab.d', 'e1.7.conf'), 'utf8'),
      `file = "${path.resolve('rbd-disk.img')}"`,
      'a relative file is still made absolute',
    );
  });

  t.test('a daemon naming a config file root should not trust: refused, nothing written or reloaded', async (t) => {
    const base = tempDir(t, 'ctl-edit-lies');
    const conf = labConfig(base);
    const cases: Array<[string, ConfigFiles, RegExp]> = [
      [
        'a --config-dir of its command line',
        { configFile: conf, commandLineConfigDir: '/etc/modprobe.d', defaultName: 'lab' },
        /^vblade ctl add: vbladed was started with --config-dir \/etc\/modprobe\.d, which add does not follow: it edits only the config-dir its config file names; as root, write the fragment in \/etc\/modprobe\.d yourself and run vblade ctl reload, or set config-dir in .*lab\.conf instead\n$/,
      ],
      ['a relative path', { configFile: 'lab.conf', defaultName: 'lab' }, /did not say which config file it serves/],
    ];
    const writable = path.join(base, 'writable.conf');
    fs.writeFileSync(writable, fs.readFileSync(conf));
    fs.chmodSync(writable, 0o666);
    cases.push([
      'a config file others may write',
      { configFile: writable, defaultName: 'lab' },
      /the config file .*writable\.conf may be written by others \(mode 666\); its exports are served as root: chmod go-w/,
    ]);
    const nobodys = path.join(base, 'nobodys.conf');
    fs.writeFileSync(nobodys, fs.readFileSync(conf));
    fs.chownSync(nobodys, 65534, 65534);
    cases.push(['a config file of another user', { configFile: nobodys, defaultName: 'lab' }, /belongs to uid 65534/]);
    const open = path.join(base, 'open');
    fs.mkdirSync(open, { mode: 0o777 });
    fs.chmodSync(open, 0o777);
    const inOpen = path.join(open, 'lab.conf');
    fs.writeFileSync(inOpen, fs.readFileSync(conf), { mode: 0o644 });
    cases.push(['a config file in a directory anyone may write', { configFile: inOpen, defaultName: 'lab' }, /writable by/]);
    // A link the daemon's user may change (in its own directory): it could point it elsewhere after the check.
    const theirs = path.join(base, 'run');
    fs.mkdirSync(theirs, { mode: 0o755 });
    fs.chownSync(theirs, 65534, 65534);
    fs.symlinkSync(conf, path.join(theirs, 'vblade.conf'));
    cases.push([
      "a link in the daemon user's directory",
      { configFile: path.join(theirs, 'vblade.conf'), defaultName: 'lab' },
      /config file directory .*\/run belongs to uid 65534/,
    ]);
    // A link of root's to such a link: every hop is checked.
    fs.symlinkSync(path.join(theirs, 'vblade.conf'), path.join(base, 'hop.conf'));
    cases.push([
      'a link of root’s to a link the daemon user may change',
      { configFile: path.join(base, 'hop.conf'), defaultName: 'lab' },
      /config file directory .*\/run belongs to uid 65534/,
    ]);
    const fifo = path.join(base, 'fifo.conf');
    execFileSync('mkfifo', [fifo]);
    cases.push(['a FIFO', { configFile: fifo, defaultName: 'lab' }, /config file .*fifo\.conf is a FIFO, not a regular file/]);
    for (const [what, files, message] of cases) {
      const d = await fakeDaemon(t, tempDir(t, 'ctl-edit-sock'), files);
      const r = await ctl('--socket', d.sock, 'add', 'e1.3', 'eth1', '/srv/d3.img');
      t.equal(r.code, 1, what);
      t.match(r.err, message, what);
      t.same(d.reloads, [], `${what}: no reload asked`);
    }
    for (const dir of [path.join(base, 'lab.d'), '/etc/modprobe.d/e1.3.conf', path.join(open, 'lab.d')])
      t.notOk(dir.endsWith('.conf') ? fs.existsSync(dir) : fs.existsSync(path.join(dir, 'e1.3.conf')), `nothing in ${dir}`);
    const none = await fakeDaemon(t, tempDir(t, 'ctl-edit-args'), undefined);
    const r = await ctl('--socket', none.sock, 'add', 'e1.3', 'eth1', '/srv/d3.img');
    t.match(r.err, /^vblade ctl add: add and remove need a daemon started with --config FILE/);
  });

  t.test('a raw add request is refused by the daemon; a user who is not root is refused by vblade ctl', async (t) => {
    const base = tempDir(t, 'ctl-edit-auth');
    const conf = labConfig(base);
    const d = await fakeDaemon(t, base, { configFile: conf, defaultName: 'lab' });
    fs.chmodSync(path.dirname(d.sock), 0o755);
    fs.chmodSync(d.sock, 0o666); // the control group's access, for nobody
    const raw = await controlRequest(d.sock, { command: 'add', export: 'e1.3', words: ['eth1', '/etc/shadow'] });
    t.equal(raw.ok, false);
    t.match(
      raw.error,
      /^add is run by `vblade ctl add` itself, as root: it writes the config fragment, then asks the daemon for a reload/,
    );
    const child = spawn(
      'env',
      asNobodyArgs(process.execPath, vbladeForUser(t), 'ctl', '--socket', d.sock, 'add', 'e1.3', 'eth1', '/etc/shadow'),
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' },
    );
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    const code = await new Promise((r) => child.on('exit', r));
    t.equal(code, 1);
    t.equal(
      err,
      "vblade ctl add: add is for root only: it writes the daemon's config fragments, whose files are opened as root; run it with sudo (members of the control group may use the other commands)\n",
    );
    t.same(d.reloads, [], 'nothing was asked of the daemon');
    t.notOk(fs.existsSync(path.join(base, 'lab.d')), 'nothing written');
  });

  t.test('two edits at once take turns: both fragments written, one reload each; a user cannot hold them up', async (t) => {
    const base = tempDir(t, 'ctl-edit-turns');
    const conf = labConfig(base);
    // A local user who may read the config file holds an flock on it: the edits' lock is elsewhere, root's alone.
    const holder = spawn(
      'setpriv',
      ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'flock', '--shared', conf, 'sleep', '60'],
      { stdio: 'ignore' },
    );
    t.teardown(() => holder.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 300));
    t.equal(holder.exitCode, null, 'nobody holds an flock on the config file');
    const d = await fakeDaemon(t, base, { configFile: conf, defaultName: 'lab' }, 300);
    const started = Date.now();
    const [a, b] = await Promise.all([
      ctl('--socket', d.sock, 'add', 'e1.3', 'eth1', '/srv/d3.img'),
      ctl('--socket', d.sock, 'add', 'e1.4', 'eth1', '/srv/d4.img'),
    ]);
    t.equal(a.code + b.code, 0, a.err + b.err);
    t.same(fs.readdirSync(path.join(base, 'lab.d')).sort(), ['e1.3.conf', 'e1.4.conf']);
    t.same(d.reloads, ['reload', 'reload']);
    t.ok(Date.now() - started >= 600, 'the second waited for the first reload to answer');
  });
}

if (requireRoot(t)) {
  t.test(
    'a reload that does not answer in time: the edit is kept (the daemon may apply it yet), and the message says how to check',
    async (t) => {
      const base = tempDir(t, 'ctl-edit-slow');
      const conf = labConfig(base);
      const d = await fakeDaemon(t, base, { configFile: conf, defaultName: 'lab' }, -1);
      await t.rejects(runConfigEdit(d.sock, 'add', 'e1.3', ['eth1', '/srv/d3.img'], 500), {
        message:
          /^no answer from .* within 0\.5 s; .*e1\.3\.conf is kept, since the daemon may still apply it: `vblade ctl list` says whether e1\.3 is served \(vblade ctl remove e1\.3 takes it away\)$/,
      });
      t.ok(fs.existsSync(path.join(base, 'lab.d', 'e1.3.conf')), 'the fragment is there');
      await t.rejects(runConfigEdit(d.sock, 'remove', 'e1.3', [], 500), {
        message: /set aside as \.e1\.3\.conf\.removing, since the daemon may still apply the removal/,
      });
      t.same(fs.readdirSync(path.join(base, 'lab.d')), ['.e1.3.conf.removing'], 'set aside, not deleted');
    },
  );

  t.test(
    'hostile control traffic: an unprintable or huge "for", a line over the limit in one piece, a huge answer',
    async (t) => {
      const base = tempDir(t, 'ctl-edit-hostile');
      const conf = labConfig(base);
      const d = await fakeDaemon(t, base, { configFile: conf, defaultName: 'lab' });
      for (const bad of ['add e1.3 \u202e gpj.exe', 'add\ne1.3', 'x'.repeat(2049), 42]) {
        const r = await controlRequest(d.sock, { command: 'reload', for: bad });
        t.equal(r.ok, false, `for ${JSON.stringify(bad).slice(0, 30)}: refused`);
        t.match(r.error, /"for" \(what a reload is for, for the log\) is printable text of at most 2048 characters/);
      }
      t.same(d.reloads, [], 'no reload ran');
      t.notOk(
        d.logs.some((l) => l.includes('\\u202e') || l.length > 8192),
        'nothing of it in the log',
      );
      // One line of 70 KB in one write: refused like one that comes in pieces.
      const line = JSON.stringify({ command: 'list', for: 'x'.repeat(70_000) }) + '\n';
      const answer = await new Promise<string>((resolve) => {
        const s = net.connect(d.sock, () => s.end(line));
        let got = '';
        s.on('data', (b: Buffer) => (got += b.toString('utf8')));
        s.on('close', () => resolve(got));
      });
      t.match(answer, /request line longer than 65536 bytes; connection closed/);
      // A socket that answers without end: vblade ctl gives up at its limit instead of taking all memory.
      const flood = path.join(base, 'flood.sock');
      const server = net.createServer((c) => {
        const chunk = Buffer.alloc(1 << 20, 0x61);
        const pump = (): void => {
          while (!c.destroyed && c.write(chunk));
          if (!c.destroyed) c.once('drain', pump);
        };
        pump();
        c.on('error', () => undefined);
      });
      await new Promise<void>((r) => server.listen(flood, r));
      t.teardown(() => server.close());
      await t.rejects(controlRequest(flood, { command: 'list' }), { message: /answered more than 64 MiB/ });
      // Answers that are JSON but no reply: said so, not a TypeError.
      for (const [name, text] of [
        ['null', 'null'],
        ['array', '[1]'],
        ['no error', '{"ok": false}'],
      ]) {
        const sock = path.join(base, `${name.replace(' ', '-')}.sock`);
        const liar = net.createServer((c) => c.end(`${text}\n`));
        await new Promise<void>((r) => liar.listen(sock, r));
        t.teardown(() => liar.close());
        await t.rejects(
          controlRequest(sock, { command: 'list' }),
          { message: /answered something that is not a reply of vbladed's/ },
          name,
        );
      }
    },
  );
}
