// Named MAC groups ([group NAME], mac-mask = @NAME): what a mask expands to,
// and every mistake with the message a user reads.

import t from 'tap';
import { ConfigError, parseConfigFile, parseConfigFiles } from '../../src/config/config-file';
import { describeGroup } from '../../src/config/load';
import { reconcileState } from '../../src/config/saved-state';

const F = '/etc/vblade.conf';
const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const C = '52:54:00:00:00:0c';

function problems(text: string): string[] {
  try {
    parseConfigFile(text, F);
  } catch (e) {
    t.ok(e instanceof ConfigError);
    return (e as ConfigError).problems.map((p) => `${p.line}: ${p.message}`);
  }
  throw new Error('the file was accepted');
}

const exportOf = (n: number, mask: string): string =>
  `[export e1.${n}]\nfile = /srv/${n}.img\ninterfaces = eth1\nmac-mask = ${mask}\n`;

t.test('a group expands in every export that names it, alone or beside MACs and other groups', async (t) => {
  const c = parseConfigFile(
    `[group lab]\nmacs = ${A}, ${B}\n[group teacher]  # the front desk\nmacs = ${C}\n` +
      exportOf(1, '@lab') +
      exportOf(2, `@lab 52:54:00:00:00:01`) +
      exportOf(3, `@teacher, @lab ${A}`),
    F,
  );
  t.same(
    c.exports.map((e) => e.macMask),
    [
      [A, B],
      [A, B, '52:54:00:00:00:01'],
      [C, A, B],
    ],
  );
  t.same(c.groups, [
    { name: 'lab', macs: [A, B], usedBy: ['e1.1', 'e1.2', 'e1.3'] },
    { name: 'teacher', macs: [C], usedBy: ['e1.3'] },
  ]);
  t.same(c.warnings, []);
  t.equal(describeGroup(c.groups[0]), `group lab: 2 MACs (${A}, ${B}), used by e1.1 e1.2 e1.3`);
});

t.test('a group declared after the export, or in a fragment, is found', async (t) => {
  const c = parseConfigFiles({ text: exportOf(1, '@lab'), file: F }, [
    { text: `[group lab]\nmacs = ${A}\n`, file: '/etc/vblade.d/lab.conf' },
  ]);
  t.same(c.exports[0].macMask, [A]);
});

t.test('a changed group changes the mask of every export naming it, by the saved-state rule', async (t) => {
  const before = parseConfigFile(`[group lab]\nmacs = ${A}\n` + exportOf(1, '@lab') + exportOf(2, '@lab'), F);
  const after = parseConfigFile(`[group lab]\nmacs = ${A} ${B}\n` + exportOf(1, '@lab') + exportOf(2, '@lab'), F);
  for (const [i, e] of after.exports.entries()) {
    // Saved: the old config mask, which an initiator then edited (C added).
    const saved = { config: '', macMask: [A, C], reserve: [] as string[], configMask: before.exports[i].macMask };
    const r = reconcileState(saved, e.macMask);
    t.ok(r.changed, `e1.${i + 1}: the operator changed the group`);
    t.same(r.state.macMask, [A, B]);
    // An unchanged group keeps what initiators set.
    t.same(reconcileState({ ...saved, configMask: [A, B] }, e.macMask).state.macMask, [A, C]);
  }
});

t.test('mistakes', async (t) => {
  t.same(problems(`[group lab]\nmacs = ${A}\n` + exportOf(1, '@lba')), [
    `6: mac-mask: no group @lba (did you mean "@lab"?); groups: @lab`,
  ]);
  t.same(problems(exportOf(1, '@lab')), ['4: mac-mask: no group @lab; declare it in a [group NAME] section with macs = ...']);
  t.same(problems(`[group lab]\n` + exportOf(1, '@lab')), [
    '1: [group lab] lists no MACs; add macs = 52:54:00:12:34:56 ... or remove the group',
  ]);
  t.same(problems(`[group lab]\nmacs =\n` + exportOf(1, '@lab')), [
    '1: [group lab] lists no MACs; add macs = 52:54:00:12:34:56 ... or remove the group',
  ]);
  t.same(problems(`[group 1lab]\nmacs = ${A}\n` + exportOf(1, A)), [
    '1: "1lab" is not a group name; use up to 32 letters, digits, _ and -, starting with a letter, e.g. [group lab]',
  ]);
  t.same(problems(`[group]\nmacs = ${A}\n` + exportOf(1, A)), ['1: [group] needs a name; write [group NAME], e.g. [group lab]']);
  t.same(problems(`[group lab]\nmacs = ${A}\n[group lab]\nmacs = ${B}\n` + exportOf(1, '@lab')), [
    '3: group lab is declared twice (first on line 1); merge the two',
  ]);
  t.same(problems(`[group a]\nmacs = ${A}\n[group b]\nmacs = @a\n` + exportOf(1, '@b')), [
    "4: macs = @a: a group lists MACs, not other groups (@a); name both groups in the export's mac-mask instead, e.g. mac-mask = @a @b",
  ]);
  t.same(problems(`[group lab]\nmacs = ${A} 01:00:5e:00:00:01\n` + exportOf(1, '@lab')), [
    "2: macs: 01:00:5e:00:00:01 is a group (multicast or broadcast) address and never sends requests; give the initiator's own MAC",
  ]);
  t.same(problems(`[group lab]\nmacs = ${A}\nfile = /x\n` + exportOf(1, '@lab')), [
    '3: unknown key "file" in [group lab]; file belongs in an [export] section',
  ]);
  t.same(problems(exportOf(1, '@x/y')), [
    '4: mac-mask: "x/y" is not a group name; use up to 32 letters, digits, _ and -, starting with a letter, e.g. [group lab]',
  ]);
});

t.test('the 128-MAC limit of a mask applies to the expanded list', async (t) => {
  const macs = (from: number, n: number): string =>
    Array.from(
      { length: n },
      (_, i) =>
        `52:54:00:00:${((from + i) >> 8).toString(16).padStart(2, '0')}:${((from + i) & 255).toString(16).padStart(2, '0')}`,
    ).join(' ');
  // 100 + 28 = 128 (with an overlap counted once): accepted.
  const ok = parseConfigFile(`[group a]\nmacs = ${macs(0, 100)}\n[group b]\nmacs = ${macs(90, 38)}\n` + exportOf(1, '@a @b'), F);
  t.equal(ok.exports[0].macMask.length, 128);
  t.same(problems(`[group a]\nmacs = ${macs(0, 100)}\n[group b]\nmacs = ${macs(100, 29)}\n` + exportOf(1, '@a @b')), [
    '8: mac-mask = @a @b names more than 128 MAC addresses once its groups are expanded; an AoE mask list holds at most 128: split the machines over exports or drop some',
  ]);
});

t.test('a group no export names is a warning, not an error', async (t) => {
  const c = parseConfigFile(`[group lab]\nmacs = ${A}\n[group old]\nmacs = ${B}\n` + exportOf(1, '@lab'), F);
  t.same(c.warnings, [`${F}:3: [group old] is named by no mac-mask; use it as mac-mask = @old or remove it`]);
});
