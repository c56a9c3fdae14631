// The configuration examples in docs/operations.md and the README must mean
// what their comments say: every ```ini block (README: indented block) with
// an [export] section parses as a vblade.conf, and the ```sh block after a /etc/vblade.conf.d/ name parses as
// a Debian fragment, with no comment text taken into a value.

import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { parseConfigFile } from '../../src/config/config-file';
import { parseDebianConf } from '../../src/config/debian-conf';
import type { ExportConfig } from '../../src/config/export-config';

const DOC = path.join(__dirname, '..', '..', '..', 'docs', 'operations.md');
const README = path.join(__dirname, '..', '..', '..', 'README.md');

interface Block {
  lang: string;
  text: string;
  /** The text line just before the block (e.g. "`/etc/vblade.conf.d/disk1.conf`:"). */
  before: string;
}

function codeBlocks(md: string): Block[] {
  const out: Block[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  let m: RegExpExecArray | null;
  while ((m = re.exec(md))) {
    const lines = md.slice(0, m.index).trimEnd().split('\n');
    out.push({ lang: m[1], text: m[2], before: lines[lines.length - 1] });
  }
  return out;
}

/** The README's indented code blocks (four spaces), without the indent. */
function indentedBlocks(md: string): string[] {
  const out: string[] = [];
  for (const m of md.matchAll(/(?:^ {4}.*\n)+/gm)) out.push(m[0].replace(/^ {4}/gm, ''));
  return out;
}

function valuesOf(e: ExportConfig): string[] {
  return [e.file, ...e.interfaces, ...e.macMask];
}

const blocks = codeBlocks(fs.readFileSync(DOC, 'utf8'));

t.test('vblade.conf examples parse with no comment in a value', async (t) => {
  const confs = blocks.filter((b) => b.lang === 'ini' && b.text.includes('[export'));
  t.ok(confs.length > 0, 'docs/operations.md has a vblade.conf example');
  for (const b of confs) {
    const c = parseConfigFile(b.text, 'docs/operations.md');
    for (const e of c.exports) {
      for (const v of valuesOf(e)) t.notMatch(v, /#|;/, `e${e.shelf}.${e.slot}: "${v}" holds no comment`);
    }
  }
  const first = parseConfigFile(confs[0].text, 'docs/operations.md').exports[0];
  t.same(first.interfaces, ['eth1', 'eth2'], 'interfaces = eth1 eth2   # two paths ... is two interfaces');
});

t.test("the README's vblade.conf examples parse, with no comment in a value", async (t) => {
  const confs = indentedBlocks(fs.readFileSync(README, 'utf8')).filter((b) => b.includes('[export'));
  t.ok(confs.length > 0, 'the README has a vblade.conf example');
  for (const text of confs) {
    const c = parseConfigFile(text, 'README.md');
    for (const e of c.exports) {
      for (const v of valuesOf(e)) t.notMatch(v, /#|;/, `e${e.shelf}.${e.slot}: "${v}" holds no comment`);
    }
  }
});

t.test('the lab examples (operations.md, README.md) with views set a MAC mask', async (t) => {
  const confs = [
    ...blocks.filter((b) => b.lang === 'ini' && b.text.includes('[export')).map((b) => ['docs/operations.md', b.text]),
    ...indentedBlocks(fs.readFileSync(README, 'utf8'))
      .filter((b) => b.includes('[export'))
      .map((b) => ['README.md', b]),
  ];
  const files = new Set<string>();
  for (const [where, text] of confs) {
    for (const e of parseConfigFile(text, where).exports) {
      if (e.views === undefined) continue;
      files.add(where);
      t.ok(e.macMask.length > 0, `${where} e${e.shelf}.${e.slot}: views with a mac-mask (${e.macMask.join(' ')})`);
    }
  }
  t.same([...files].sort(), ['README.md', 'docs/operations.md'], 'both files have an example with views');
});

t.test("operations.md's lab example names its machines once, as a group", async (t) => {
  const lab = blocks.find((b) => b.lang === 'ini' && b.text.includes('views = per-initiator'));
  t.ok(lab, 'the lab example is there');
  const c = parseConfigFile(lab!.text, 'docs/operations.md');
  t.match(lab!.text, /^mac-mask = @lab$/m, 'the export names the group');
  t.same(c.exports[0].macMask, ['52:54:00:12:34:56', '52:54:00:12:34:57', '52:54:00:12:34:58'], '@lab expands to its MACs');
  t.same(c.warnings, [], 'the group is used');
});

t.test('the Debian fragment example parses', async (t) => {
  const frags = blocks.filter((b) => /vblade\.conf\.d\/\S+\.conf/.test(b.before));
  t.ok(frags.length > 0, 'docs/operations.md has a vblade.conf.d example');
  for (const b of frags) {
    const d = parseDebianConf(b.text, 'docs/operations.md');
    for (const v of valuesOf(d.export)) t.notMatch(v, /#/, `"${v}" holds no comment`);
    t.same(d.warnings, []);
  }
});

t.test("failover.md's vblade.conf keeps what a failover needs: sync = yes, state on the shared storage", async (t) => {
  const FAILOVER = path.join(__dirname, '..', '..', '..', 'docs', 'failover.md');
  const confs = codeBlocks(fs.readFileSync(FAILOVER, 'utf8')).filter((b) => b.lang === 'ini' && b.text.includes('[export'));
  t.ok(confs.length > 0, 'docs/failover.md has a vblade.conf example');
  for (const b of confs) {
    const c = parseConfigFile(b.text, 'docs/failover.md');
    t.match(c.daemon['state-dir'], /^\/srv\/shared\//, 'the state directory is on the shared storage');
    for (const e of c.exports) {
      t.equal(e.sync, true, `e${e.shelf}.${e.slot}: sync = yes (the initiator never sends FLUSH)`);
      t.notOk(e.shared, `e${e.shelf}.${e.slot}: not shared = yes`);
      t.match(e.file, /^\/srv\/shared\//, `e${e.shelf}.${e.slot}: its file is on the shared storage`);
    }
  }
});
