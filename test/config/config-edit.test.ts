// `vblade ctl add` / `remove` below the socket: the fragment a request
// becomes (and every request refused before anything is written), the
// editor's all-or-nothing rule with a reload that refuses, a full disk.
// Who may ask, and what the daemon may tell `vblade ctl`: test/cli/ctl-edit.test.ts.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderExportFragment } from '../../src/config/fragments';
import { parseConfigFile } from '../../src/config/config-file';
import { ConfigEditor } from '../../src/config/config-edit';
import { tempDir } from '../helpers/files';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import type { TestLike } from '../../lab/common';

t.test('a request becomes one [export] section that parses back to what was asked', async (t) => {
  const nasty = '/srv/odd [x] #a; "q" \\b.img';
  const f = renderExportFragment('1.3', ['eth1,eth2', nasty, 'read-only=yes', 'mac-mask=@lab 52:54:00:00:00:01']);
  t.equal(f.name, 'e1.3.conf');
  const c = parseConfigFile(`[group lab]\nmacs = 52:54:00:00:00:02\n` + f.text, '/etc/vblade.d/e1.3.conf');
  t.equal(c.exports.length, 1);
  t.equal(c.exports[0].file, nasty, 'brackets, # ; quotes and backslashes stay in the value');
  t.same(c.exports[0].interfaces, ['eth1', 'eth2']);
  t.equal(c.exports[0].readOnly, true);
  t.same(c.exports[0].macMask, ['52:54:00:00:00:02', '52:54:00:00:00:01']);
});

t.test('malformed requests are refused with what to do', async (t) => {
  const refused = (address: string, words: string[]): string => {
    try {
      renderExportFragment(address, words);
      return 'accepted';
    } catch (e) {
      return (e as Error).message;
    }
  };
  t.equal(
    refused('e1.3', ['eth1', '/a.img\n[export e9.9]']),
    '"/a.img\\n[export e9.9]" holds a control character (a newline, a tab, ...); remove it',
  );
  t.equal(
    refused('e1.3', ['eth1', '/a.img', 'read-only=yes\nfile = /etc/shadow']),
    '"read-only=yes\\nfile = /etc/shadow" holds a control character (a newline, a tab, ...); remove it',
  );
  t.equal(
    refused('e1.3', ['eth1', 'a.img']),
    'file "a.img" is not an absolute path; give the full path, e.g. /srv/vblade/disk.img (or an image rbd:POOL/IMAGE, an NBD URI nbd://HOST/NAME)',
  );
  // What JSON carries raw and a terminal, an editor or the UTF-8 encoder reads otherwise: file, then what is said.
  const invisible = 'holds an invisible character (a line separator or a format character); remove it';
  for (const [file, said] of [
    ['/srv/\u009b2J.img', '"/srv/\\u009b2J.img" holds a control character (a newline, a tab, ...); remove it'],
    ['/a.img\u2028[export e9.9]', `"/a.img\\u2028[export e9.9]" ${invisible}`],
    ['/srv/\u202egmi.kcab', `"/srv/\\u202egmi.kcab" ${invisible}`],
    ['/srv/a\ud800.img', '"/srv/a\\ud800.img" holds half of a UTF-16 surrogate pair (not a character); remove it'],
  ])
    t.equal(refused('e1.3', ['eth1', file]), said);
  t.match(refused('e1.3', ['eth1', '/a.img', 'state-dir=/tmp']), /^unknown key "state-dir"; an export's keys: read-only, direct/);
  t.equal(
    refused('e1.3', ['eth1', '/a.img', 'views=per-initiator', 'views-dir=views2']),
    'views-dir "views2" is not an absolute path; give the full path, e.g. views-dir=/srv/aoe/views',
  );
  t.match(refused('e1.3', ['eth1', '/a.img', 'syncc=yes']), /^unknown key "syncc" \(did you mean "sync"\?\); an export's keys: /);
  t.equal(refused('e1.3', ['eth1', '/a.img', 'file=/etc/shadow']), 'file is given before the settings; do not set it again');
  t.equal(refused('e1.3', ['eth1', '/a.img', 'sync=yes', 'sync=no']), 'sync is set twice; keep one');
  t.equal(refused('e1.3', ['eth1', '/a.img', 'sync']), '"sync" is not KEY=VALUE; write e.g. read-only=yes');
  t.equal(refused('../../etc/x', ['eth1', '/a.img']), '"../../etc/x" is not an export address; write eSHELF.SLOT, e.g. e1.3');
  t.equal(refused('e1.3', ['eth1', '/' + 'a'.repeat(5000)]), 'a word of the request is longer than 4096 characters');
  t.equal(
    refused('e1.3', ['eth1', '/a.img', ...Array.from({ length: 33 }, (_, i) => `k${i}=v`)]),
    'add takes at most 32 KEY=VALUE settings',
  );
});

/** A main config with e1.1, its lab.d fragments directory, and an editor whose reload is `reload`. */
function setup(t: TestLike, reload: () => Promise<unknown>, base = tempDir(t, 'edit')) {
  fs.chmodSync(base, 0o755);
  const conf = path.join(base, 'lab.conf');
  fs.writeFileSync(conf, `[export e1.1]\nnull-store = yes\nnull-sectors = 8\ninterfaces = eth1\n`);
  const editor = new ConfigEditor({ configFile: conf, daemonKeys: {}, defaultName: 'lab', reload });
  return { conf, dir: path.join(base, 'lab.d'), editor };
}

t.test('add writes the fragment and reloads; a refused reload removes it again; remove deletes only fragments', async (t) => {
  let refuse = false;
  const { dir, editor } = setup(t, async () => {
    if (refuse) throw new Error('reload refused, nothing changed: e1.3: cannot open /srv/x.img: no such file');
    return { added: ['e1.3'] };
  });
  const r = await editor.add('e1.3', ['eth1', '/srv/x.img', 'read-only=yes']);
  t.same(r, { key: 'e1.3', fragment: path.join(fs.realpathSync(dir), 'e1.3.conf'), reload: { added: ['e1.3'] } });
  t.equal(fs.statSync(dir).mode & 0o777, 0o750, 'the directory is made private');
  t.equal(fs.statSync(path.join(dir, 'e1.3.conf')).mode & 0o777, 0o640);
  t.same(fs.readdirSync(dir), ['e1.3.conf'], 'no temporary file is left');

  await t.rejects(editor.add('e1.3', ['eth2', '/srv/y.img']), {
    message: /^e1\.3 is already exported \(.*e1\.3\.conf:2\); remove it first/,
  });
  await t.rejects(editor.add('e1.1', ['eth2', '/srv/y.img']), { message: /^e1\.1 is already exported \(.*lab\.conf:1\)/ });
  await t.rejects(editor.add('e1.4', ['eth1', '/srv/y.img', 'mac-mask=@nope']), {
    message: /^e1\.4 not added: the new fragment, line 5: mac-mask: no group @nope/,
  });
  t.same(fs.readdirSync(dir), ['e1.3.conf'], 'a request the parser refuses writes nothing');

  refuse = true;
  await t.rejects(editor.add('e1.5', ['eth1', '/srv/x.img']), {
    message:
      /^reload refused, nothing changed: e1\.3: cannot open \/srv\/x\.img: no such file; .*e1\.5\.conf was removed again: e1\.5 was not added$/,
  });
  t.same(fs.readdirSync(dir), ['e1.3.conf'], 'the fragment of a refused reload is gone');
  await t.rejects(editor.remove('e1.3'), { message: /e1\.3\.conf was put back: e1\.3 was not removed$/ });
  t.same(fs.readdirSync(dir), ['e1.3.conf'], 'and a refused remove puts it back');
  refuse = false;

  await t.rejects(editor.remove('e1.1'), {
    message: /^e1\.1 is declared in the config file .*lab\.conf:1, not in a fragment; edit that file and run vblade ctl reload$/,
  });
  await t.rejects(editor.remove('e7.7'), {
    message:
      /^no export e7\.7 in .*lab\.conf or its fragments \(.*lab\.d\); if `vblade ctl list` shows it, its fragment was deleted by hand: `vblade ctl reload` stops serving it$/,
  });
  fs.writeFileSync(
    path.join(dir, 'two.conf'),
    `[export e2.1]\nnull-store = yes\nnull-sectors = 8\ninterfaces = eth1\n[export e2.2]\nnull-store = yes\nnull-sectors = 8\ninterfaces = eth1\n`,
    { mode: 0o640 },
  );
  await t.rejects(editor.remove('e2.1'), { message: /two\.conf declares more than e2\.1; edit that file/ });
  const removed = await editor.remove('e1.3');
  t.equal(removed.key, 'e1.3');
  t.same(fs.readdirSync(dir), ['two.conf'], 'the fragment is gone');
});

t.test('add with a mistake pending in the main file: not added, and the message says the file is why', async (t) => {
  const { conf, dir, editor } = setup(t, async () => ({ added: ['e1.3'] }));
  fs.appendFileSync(conf, '\n[export e2.2]\nnull-store = yes\nsinc = yes\ninterfaces = eth1\n');
  await t.rejects(editor.add('e1.3', ['eth1', '/srv/x.img']), {
    message: new RegExp(
      `^e1\\.3 not added: ${conf.replace(/[.]/g, '\\.')} or a fragment has a mistake: [\\s\\S]*unknown key "sinc"`,
    ),
  });
  t.notOk(fs.existsSync(path.join(dir, 'e1.3.conf')), 'nothing written');
});

t.test("add's answer names what else its reload applied, and warns only of the added export", async (t) => {
  const { formatResult } = await import('../../src/cli/ctl');
  const said = formatResult('add', {
    key: 'e2.8',
    fragment: '/etc/vblade.d/e2.8.conf',
    reload: {
      added: ['e2.9', 'e2.8'],
      removed: [],
      changed: ['e1.1'],
      resized: [],
      warnings: [
        'e2.3 has views = per-boot and no mac-mask: any machine ...',
        'e2.8 has views = per-boot and no mac-mask: any machine ...',
        'interface nc3v9 not found; e2.8 waits for it',
        'interface nc3v8 not found; e2.88 waits for it',
      ],
    },
  });
  t.equal(
    said,
    [
      'e2.8: added, kept in /etc/vblade.d/e2.8.conf',
      'reloaded; added: e2.9 e2.8; removed: -; changed: e1.1; resized: -',
      'warning: e2.8 has views = per-boot and no mac-mask: any machine ...',
      'warning: interface nc3v9 not found; e2.8 waits for it',
      'also applied, from edits of the config not reloaded before: added e2.9, changed e1.1',
    ].join('\n'),
  );
});

t.test('hostile: a planted FIFO or link under the fragment name, a linked or shared directory', async (t) => {
  const { dir, editor } = setup(t, async () => ({}));
  fs.mkdirSync(dir, { mode: 0o750 });
  fs.symlinkSync('/etc/passwd', path.join(dir, 'e1.3.conf'));
  // Refused when reading the directory (not a regular file), before anything is written.
  await t.rejects(editor.add('e1.3', ['eth1', '/srv/x.img']), { message: /e1\.3\.conf is a symbolic link, not a regular file/ });
  t.equal(fs.readFileSync('/etc/passwd', 'utf8').includes('[export'), false, 'the link target is untouched');
  fs.unlinkSync(path.join(dir, 'e1.3.conf'));
  fs.chmodSync(dir, 0o775);
  await t.rejects(editor.add('e1.3', ['eth1', '/srv/x.img']), { message: /config-dir .*lab\.d is writable by its group/ });
  fs.chmodSync(dir, 0o750);
  const real = dir + '-real';
  fs.renameSync(dir, real);
  fs.symlinkSync(real, dir);
  await t.rejects(editor.add('e1.3', ['eth1', '/srv/x.img']), { message: /config-dir .*lab\.d is a symbolic link/ });
  t.same(fs.readdirSync(real), [], 'nothing written through the link');
});

t.test('a full disk: the fragment is not written, nothing is half-done', async (t) => {
  if (!requireLoopFs(t, 'ext4')) return;
  const mnt = await loopFs(t, 'ext4', 8 * 1024 * 1024);
  let reloads = 0;
  const { dir, editor } = setup(t, async () => ++reloads, mnt);
  fs.mkdirSync(dir, { mode: 0o750 });
  // Fill the file system (root's reserved blocks too: we are root).
  const fill = path.join(mnt, 'fill');
  const fd = fs.openSync(fill, 'w');
  const chunk = Buffer.alloc(1 << 20, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    t.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  try {
    for (;;) fs.writeSync(fd, chunk, 0, 512);
  } catch {
    // full to the last block
  }
  fs.closeSync(fd);
  await t.rejects(editor.add('e1.3', ['eth1', '/srv/x.img', 'mac-mask=' + '52:54:00:00:00:01 '.repeat(100)]), {
    message: /^cannot write .*e1\.3\.conf: the file system is full; free some space; nothing was changed$/,
  });
  t.equal(reloads, 0, 'no reload');
  t.same(fs.readdirSync(dir), [], 'no fragment and no temporary file');
});

t.test('a disk filled during a refused remove: its fragment is put back whole all the same', async (t) => {
  if (!requireLoopFs(t, 'ext4')) return;
  const mnt = await loopFs(t, 'ext4', 8 * 1024 * 1024);
  const fill = path.join(mnt, 'fill');
  /** Fills the file system to its last block (root's reserve too: we are root), as other writers of /etc's file system may. */
  const fillUp = (): void => {
    const fd = fs.openSync(fill, 'a');
    for (const size of [1 << 20, 4096, 512])
      try {
        for (;;) fs.writeSync(fd, Buffer.alloc(size, 1));
      } catch {
        // full at this size; go on with a smaller one
      }
    fs.closeSync(fd);
  };
  let refuse = false;
  const reload = async (): Promise<unknown> => {
    if (!refuse) return {};
    // While the reload drains, a log or another file takes the blocks the removed fragment freed.
    fillUp();
    throw new Error('reload refused, nothing changed: lab.conf:9: a mistake made meanwhile');
  };
  const { dir, editor } = setup(t, reload, mnt);
  await editor.add('e1.3', ['eth1', '/srv/x.img', 'mac-mask=' + '52:54:00:00:00:01 '.repeat(100)]);
  const fragment = path.join(dir, 'e1.3.conf');
  const text = fs.readFileSync(fragment, 'utf8');
  fillUp();
  refuse = true;
  await t.rejects(editor.remove('e1.3'), {
    message:
      /^reload refused, nothing changed: lab\.conf:9: a mistake made meanwhile; .*e1\.3\.conf was put back: e1\.3 was not removed$/,
  });
  t.equal(fs.existsSync(fragment) && fs.readFileSync(fragment, 'utf8'), text, 'the fragment is there as it was');
  t.same(fs.readdirSync(dir), ['e1.3.conf'], 'and nothing beside it');
});
