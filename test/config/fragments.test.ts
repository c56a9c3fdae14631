// Config fragments (config-dir): read in name order with the main file as
// one configuration, and refused, naming the file and the fix, when
// another user could have put them there or changed them.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../src/config/config-file';
import { loadExports } from '../../src/config/load';
import { tempDir } from '../helpers/files';
import type { TestLike } from '../../lab/common';

const EXPORT = (n: number): string => `[export e1.${n}]\nnull-store = yes\nnull-sectors = 8\ninterfaces = eth1\n`;

/** A config file and its default fragments directory (NAME.d), both root's and private. */
function setup(t: TestLike, main = EXPORT(1)): { conf: string; dir: string } {
  const base = tempDir(t, 'fragments');
  fs.chmodSync(base, 0o755);
  const conf = path.join(base, 'lab.conf');
  fs.writeFileSync(conf, main);
  const dir = path.join(base, 'lab.d');
  fs.mkdirSync(dir, { mode: 0o750 });
  return { conf, dir };
}

function load(conf: string): ReturnType<typeof loadExports> {
  return loadExports({ mode: 'config', configFile: conf, vbladeArgv: [] });
}

function problemsOf(conf: string): string[] {
  try {
    load(conf);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => `${path.basename(p.file)}:${p.line}: ${p.message}`);
  }
  throw new Error('accepted');
}

t.test('fragments add exports in name order; hidden and other names are not read', async (t) => {
  const { conf, dir } = setup(t);
  fs.writeFileSync(path.join(dir, 'e1.3.conf'), EXPORT(3), { mode: 0o640 });
  fs.writeFileSync(path.join(dir, 'e1.2.conf'), EXPORT(2), { mode: 0o640 });
  fs.writeFileSync(path.join(dir, '.e1.4.conf.0123.tmp'), EXPORT(4), { mode: 0o640 });
  fs.writeFileSync(path.join(dir, 'e1.5.conf~'), EXPORT(5), { mode: 0o640 });
  const l = load(conf);
  t.same(
    l.exports.map((e) => e.slot),
    [1, 2, 3],
  );
  t.same(l.origins!['e1.2'], { file: path.join(dir, 'e1.2.conf'), line: 1 });
  t.same(l.origins!['e1.1'], { file: conf, line: 1 });
});

t.test(
  'a missing directory holds no fragments; config-dir = none reads none; a main file may leave every export to fragments',
  async (t) => {
    const { conf, dir } = setup(t);
    fs.rmdirSync(dir);
    t.equal(load(conf).exports.length, 1);
    const other = setup(t, '[daemon]\nconfig-dir = none\n');
    fs.writeFileSync(path.join(other.dir, 'e1.2.conf'), EXPORT(2), { mode: 0o640 });
    t.match(problemsOf(other.conf), ['lab.conf:0: declares no export']);
    fs.writeFileSync(other.conf, '[daemon]\nlog-format = text\n');
    t.same(
      load(other.conf).exports.map((e) => e.slot),
      [2],
    );
  },
);

t.test('an address in the main file and a fragment, and [daemon] in a fragment, are refused', async (t) => {
  const { conf, dir } = setup(t);
  fs.writeFileSync(path.join(dir, 'e1.1.conf'), `# a copy\n${EXPORT(1)}`, { mode: 0o640 });
  fs.writeFileSync(path.join(dir, 'x.conf'), `[daemon]\nlog-format = text\n`, { mode: 0o640 });
  t.same(problemsOf(conf), [
    `e1.1.conf:2: export e1.1 is declared twice (first on ${conf}:1); one section per export, list all its interfaces there`,
    'x.conf:1: a fragment holds [export] and [group] sections; put [daemon] keys in the main config file',
  ]);
});

t.test(
  "config-dir naming the config file's own directory: one problem that says so, not its exports declared twice",
  async (t) => {
    const { dir } = setup(t);
    const conf = path.join(dir, 'vblade.conf');
    fs.writeFileSync(conf, `[daemon]\nconfig-dir = ${dir}/\n\n${EXPORT(1)}`, { mode: 0o640 });
    t.same(problemsOf(conf), [
      `vblade.conf:2: config-dir ${dir} is the directory of this config file, which would be read again as a fragment; give fragments a directory of their own, e.g. config-dir = ${path.join(dir, 'vblade.d')}`,
    ]);
    // A config file there whose name is not a fragment's is not read twice: nothing to refuse.
    const other = path.join(dir, 'vblade.cfg');
    fs.writeFileSync(other, `[daemon]\nconfig-dir = ${dir}\n\n${EXPORT(1)}`, { mode: 0o640 });
    fs.rmSync(conf);
    t.same(
      load(other).exports.map((e) => `e${e.shelf}.${e.slot}`),
      ['e1.1'],
    );
  },
);

t.test('hostile: a linked, shared or foreign directory, a FIFO, a link, a writable or huge fragment', async (t) => {
  const { conf, dir } = setup(t);
  const real = dir + '-real';
  fs.renameSync(dir, real);
  fs.symlinkSync(real, dir);
  t.match(problemsOf(conf), [
    /^lab\.d:0: config-dir .*lab\.d is a symbolic link; .*name the directory itself \(config-dir = .*lab\.d-real\) or remove the link$/,
  ]);
  fs.unlinkSync(dir);
  fs.renameSync(real, dir);

  fs.chmodSync(dir, 0o770);
  t.match(problemsOf(conf), [/^lab\.d:0: config-dir .*lab\.d is writable by its group \(mode 0?770\); .*chmod go-w/]);
  fs.chmodSync(dir, 0o750);
  fs.chownSync(dir, 65534, 65534);
  t.match(problemsOf(conf), [/^lab\.d:0: config-dir .*lab\.d belongs to uid 65534/]);
  fs.chownSync(dir, 0, 0);

  execFileSync('mkfifo', [path.join(dir, 'fifo.conf')]);
  fs.symlinkSync('/etc/passwd', path.join(dir, 'link.conf'));
  fs.writeFileSync(path.join(dir, 'shared.conf'), EXPORT(2), { mode: 0o666 });
  fs.chmodSync(path.join(dir, 'shared.conf'), 0o666);
  fs.writeFileSync(path.join(dir, 'theirs.conf'), EXPORT(3), { mode: 0o644 });
  fs.chownSync(path.join(dir, 'theirs.conf'), 65534, 65534);
  fs.writeFileSync(path.join(dir, 'zbig.conf'), '#'.repeat(300 * 1024), { mode: 0o640 });
  const started = Date.now();
  const p = problemsOf(conf);
  t.ok(Date.now() - started < 5000, 'the FIFO was not opened (no wait for a writer)');
  t.match(p, [
    /^fifo\.conf:0: fragment .*fifo\.conf is a FIFO, not a regular file; it is not used: remove it$/,
    /^link\.conf:0: fragment .*link\.conf is a symbolic link, not a regular file/,
    /^shared\.conf:0: fragment .*shared\.conf is writable by every user; .*chmod go-w/,
    /^theirs\.conf:0: fragment .*theirs\.conf belongs to uid 65534, not to the daemon's user/,
    /^zbig\.conf:0: .*zbig\.conf is larger than 262144 bytes/,
  ]);
});
