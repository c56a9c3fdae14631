// Hostile and odd inputs for NBD exports, against real servers: URIs that
// would run commands, read files or use transports we do not serve; socket
// paths that are not sockets, are links, or belong to another user; servers
// that close or hang in the handshake, report sizes that are not whole
// sectors or absurd, or serve read-only. Each is refused with what to do, or
// served as far as it can be with a warning; nothing crashes.

import t from 'tap';
import { chownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { parseConfigFile } from '../../src/config/config-file';
import { parseCommandLine } from '../../src/cli/vblade';
import { native } from '../../src/native/addon';
import { openRemoteStore } from '../../src/remote/remote-store';
import { parseRemoteUri } from '../../src/remote/remote-uri';
import { openExportStore, partialSectorWarning } from '../../src/target/export-store';
import { preflightExports } from '../../src/target/preflight';
import { requireRoot } from '../../lab/netns';
import { requireCommands, runOk } from '../../lab/process';
import { tempDir } from '../helpers/files';
import { exportConfig } from '../helpers/export-config';
import { nbdUri, startNbdkit } from '../helpers/nbd-server';

t.test('URIs: what is served, what is refused and why', async (t) => {
  t.match(parseRemoteUri('nbd://storage.lab:10810/disk%201'), {
    transport: 'tcp',
    host: 'storage.lab',
    port: 10810,
    name: 'disk 1',
  });
  t.match(parseRemoteUri('nbd://[fd00::5]/x'), { host: 'fd00::5', port: 10809 });
  t.match(parseRemoteUri('nbd+unix:///disk?socket=/run/nbd.sock'), { transport: 'unix', socket: '/run/nbd.sock', name: 'disk' });
  const refused: [string, RegExp][] = [
    ['nbd+ssh://host/x', /would run ssh/],
    ['nbds://host/x', /TLS is not supported/],
    ['nbd+vsock:///x', /vsock is not supported/],
    ['nbd://host/x?tls-psk-file=/etc/shadow', /no \?parameters/],
    ['nbd+unix:///x?socket=/s&tls-certificates=/root', /exactly one parameter/],
    ['nbd+unix:///x?socket=relative.sock', /must be absolute/],
    ['nbd+unix:///x?socket=/run/../etc/s', /must not contain \.\./],
    ['nbd+unix://host/x?socket=/s', /has no host/],
    ['nbd://user@host/x', /user names/],
    ['nbd://host:99999/x', /out of range/],
    ['nbd://ho st/x', /no spaces/],
    ['nbd://host/x%zz', /malformed %-escape/],
    ['nbd://host/x#frag', /no #fragment/],
    ['http://host/x', /not a store this target serves/],
    [`nbd+unix:///x?socket=/${'a'.repeat(120)}`, /longer than a unix socket/],
  ];
  for (const [uri, why] of refused) t.throws(() => parseRemoteUri(uri), why, uri);
});

t.test('the config file and the vblade command line refuse a bad URI at once', async (t) => {
  t.throws(
    () => parseConfigFile('[export e1.1]\nfile = nbd+ssh://host/x\ninterfaces = eth1\n', '/etc/vblade.conf'),
    /vblade.conf:2: file: nbd\+ssh:\/\/host\/x: nbd\+ssh:\/\/ would run ssh/,
  );
  const ok = parseConfigFile(
    '[export e1.1]\nfile = nbd://10.0.0.5/disk\ninterfaces = eth1\nnbd-connections = 2\n',
    '/etc/vblade.conf',
  );
  t.equal(ok.exports[0].file, 'nbd://10.0.0.5/disk', 'a URI is not taken for a relative path');
  t.equal(ok.exports[0].nbdConnections, 2);
  t.throws(() => parseCommandLine(['1', '1', 'eth1', 'nbds://h/x']), /TLS is not supported/);
  t.throws(() => parseCommandLine(['--remote-timeout', '0', '1', '1', 'eth1', 'nbd://h/x']), /remote-timeout/);
  t.match(parseCommandLine(['--nbd-connections', '3', '1', '1', 'eth1', 'nbd://h/x']).config, { nbdConnections: 3 });
});

t.test('what needs a local file is refused for a remote store, with the reason', async (t) => {
  const c = (over: object) => exportConfig({ file: 'nbd://127.0.0.1:1/x', ...over });
  await t.rejects(
    openRemoteStore(c({ views: 'per-initiator', viewsDir: '/srv/v' }), native),
    /views = per-initiator needs a file to clone/,
  );
  await t.rejects(openRemoteStore(c({ viewsDir: '/srv/v' }), native), /snapshots \(views-dir\)/);
  await t.rejects(openRemoteStore(c({ detectZeroes: 'unmap' }), native), /detect-zeroes = unmap punches holes/);
  await t.rejects(openRemoteStore(c({ direct: true }), native), /direct \(O_DIRECT, -d\) is for local files/);
});

if (requireCommands(t, ['nbdkit'])) {
  t.test('socket paths: not a socket, a link, another user’s, missing', async (t) => {
    const dir = tempDir(t, 'sockets');
    const server = await startNbdkit(t, ['memory', 'size=1M']);
    const open = (socket: string) => openRemoteStore(exportConfig({ file: nbdUri(socket) }), native);
    const fifo = join(dir, 'fifo');
    await runOk('mkfifo', [fifo]);
    await t.rejects(open(fifo), /is a FIFO, not a socket/);
    const link = join(dir, 'link.sock');
    symlinkSync(server.socket, link);
    await t.rejects(open(link), /is a symbolic link, not a socket/);
    const plain = join(dir, 'file.sock');
    writeFileSync(plain, '');
    await t.rejects(open(plain), /is a regular file, not a socket/);
    await t.rejects(open(join(dir, 'none.sock')), /does not exist; start the server \(e.g. nbdkit -U/);
    if (process.geteuid?.() === 0) {
      // Another user's server: planted where we look.
      const other = join(dir, 'other');
      mkdirSync(other);
      const planted = await startNbdkit(t, ['memory', 'size=1M'], { dir: other });
      chownSync(planted.socket, 65534, 65534);
      await t.rejects(open(planted.socket), /belongs to uid 65534, not to root or the daemon's user/);
      // A directory another user can write, above a socket of ours.
      const open2 = join(dir, 'open');
      mkdirSync(open2, { mode: 0o777 });
      chownSync(open2, 65534, 65534);
      const inOpen = await startNbdkit(t, ['memory', 'size=1M'], { dir: open2 });
      await t.rejects(open(inOpen.socket), /not safe to use: .*belongs to uid 65534/);
    }
    const store = await open(server.socket);
    t.equal(store.kind, 'remote');
    t.equal(store.sectors, 2048);
    await store.close();
  });

  t.test('servers that close or hang in the handshake', async (t) => {
    const dir = tempDir(t, 'handshake');
    const servers: Server[] = [];
    t.teardown(() => servers.forEach((s) => s.close()));
    const listen = async (name: string, onConn: (s: import('node:net').Socket) => void) => {
      const path = join(dir, name);
      // The client gives up on what these servers say: its reset is no failure of the test.
      const srv = createServer((c) => {
        c.on('error', () => undefined);
        onConn(c);
      });
      servers.push(srv);
      await new Promise<void>((resolve) => srv.listen(path, resolve));
      return path;
    };
    const closes = await listen('closes.sock', (s) => s.end(Buffer.from('NBDMAGIC')));
    const garbage = await listen('garbage.sock', (s) => s.end(Buffer.alloc(200, 0x41)));
    const hangs = await listen('hangs.sock', () => undefined);
    const open = (socket: string) => openRemoteStore(exportConfig({ file: nbdUri(socket), remoteTimeout: 1 }), native);
    await t.rejects(open(closes), /cannot reach the nbd server/);
    await t.rejects(open(garbage), /cannot reach the nbd server/);
    const t0 = Date.now();
    await t.rejects(open(hangs), /no answer to the handshake within 1000 ms/);
    t.ok(Date.now() - t0 < 3000, 'a hanging server is given up on after remote-timeout');
  });

  t.test('sizes: not whole sectors, absurd, empty; a read-only server', async (t) => {
    const odd = await startNbdkit(t, ['null', 'size=1000']);
    const c = exportConfig({ file: odd.uri });
    const store = await openExportStore(c, native);
    t.equal(store.sectors, 1, 'the whole sectors are served');
    t.match(partialSectorWarning(c, store), /last 488 bytes are not served/);
    await store.close();
    const huge = await startNbdkit(t, ['null', `size=${2n ** 62n}`]);
    await t.rejects(openRemoteStore(exportConfig({ file: huge.uri }), native), /more than AoE can address/);
    const empty = await startNbdkit(t, ['null', 'size=0']);
    await t.rejects(openRemoteStore(exportConfig({ file: empty.uri }), native), /nothing to serve/);
    const ro = await startNbdkit(t, ['-r', 'memory', 'size=1M']);
    await t.rejects(openRemoteStore(exportConfig({ file: ro.uri }), native), /serves .* read-only; set read-only = yes/);
    const roStore = await openRemoteStore(exportConfig({ file: ro.uri, readOnly: true }), native);
    t.equal(roStore.sectors, 2048, 'read-only = yes serves it');
    await roStore.close();
  });

  t.test('vbladed --check opens NBD exports as start does and names what is wrong', async (t) => {
    const server = await startNbdkit(t, ['memory', 'size=1M']);
    const dir = tempDir(t, 'check');
    const { problems } = await preflightExports(
      [
        exportConfig({ slot: 1, file: server.uri, interfaces: ['lo'] }),
        exportConfig({ slot: 2, file: server.uri, interfaces: ['lo'], views: 'per-initiator', viewsDir: dir }),
        exportConfig({ slot: 3, file: nbdUri(join(dir, 'gone.sock')), interfaces: ['lo'] }),
      ],
      native,
    );
    t.equal(problems.length, 2, problems.join('\n'));
    t.match(
      problems[0],
      /^e1\.2: file = nbd\+unix:.* is a remote store, not a local file: views = per-initiator needs a file to clone/,
    );
    t.match(problems[1], /^e1\.3: the nbd socket .*gone\.sock does not exist/);
  });

  t.test('vbladed --check opens the exports together: two servers that hang cost one remote-timeout', async (t) => {
    const dir = tempDir(t, 'check-hang');
    const servers: Server[] = [];
    t.teardown(() => servers.forEach((s) => s.close()));
    const sockets = await Promise.all(
      ['a', 'b'].map(async (name) => {
        const path = join(dir, `${name}.sock`);
        const srv = createServer((c) => c.on('error', () => undefined)); // accepts, says nothing
        servers.push(srv);
        await new Promise<void>((resolve) => srv.listen(path, resolve));
        return path;
      }),
    );
    const t0 = Date.now();
    const { problems } = await preflightExports(
      sockets.map((socket, i) => exportConfig({ slot: i + 1, file: nbdUri(socket), interfaces: ['lo'], remoteTimeout: 2 })),
      native,
    );
    const ms = Date.now() - t0;
    t.equal(problems.length, 2, 'both are named');
    for (const [i, p] of problems.entries())
      t.match(p, new RegExp(`^e1\\.${i + 1}: .*no answer to the handshake within 2000 ms`), 'in the order of the exports');
    t.ok(ms < 3500, `the check took ${ms} ms: the two waits of 2 s ran together`);
  });

  t.test('without libnbd: a clear message for an nbd export, files still served', async (t) => {
    // libnbd.so.0 hidden in a private mount namespace (a bind mount of /dev/null over it).
    const lib = (
      await runOk('sh', ['-c', 'ldconfig -p | sed -n "s/.*libnbd.so.0 (libc6,x86-64) => //p" | head -1'])
    ).stdout.trim();
    t.not(lib, '', 'ldconfig knows libnbd.so.0');
    if (lib === '' || !requireRoot(t)) return;
    const script = `
      const { native } = require(${JSON.stringify(require.resolve('../../src/native/addon'))});
      const ring = native.openIoRing(8); ring.close();
      native.openNbd('nbd://127.0.0.1:1/x', 1, 1000, false).then(
        () => console.log('opened?'),
        (e) => console.log('refused: ' + e.message),
      );`;
    const r = await runOk('unshare', [
      '-m',
      'sh',
      '-c',
      `mount --bind /dev/null ${lib} && exec ${process.execPath} -e "$0"`,
      script,
    ]);
    t.match(
      r.stdout,
      /^refused: nbd exports need libnbd: apt-get install libnbd0/m,
      'the nbd export is refused with what to install',
    );
  });
}
