// Named MAC groups of the config file: a [group NAME] section lists MACs
// once (macs = ...), and a mac-mask names it as @NAME, alone or beside
// other groups and MACs. A group lists MACs only, never another group: one
// level is all a lab needs, and a flat list cannot form a cycle.
// The expanded list is what the export's mask is, so the AoE limit of a
// mask list applies to it, and a reload that changes a group changes the
// mask of every export that names it.

import { MAC_MASK_CAPACITY, parseMac, parseMacList } from './vblade-args';
import { splitList, suggest } from './values';

/** A group as the file declares it. */
export interface MacGroup {
  name: string;
  macs: string[];
  file: string;
  line: number;
}

/** What --check shows of a group: its MACs and the exports that name it. */
export interface GroupUse {
  name: string;
  macs: string[];
  usedBy: string[];
}

const GROUP_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/** Why `name` cannot name a group, or undefined when it can. */
export function groupNameProblem(name: string): string | undefined {
  if (GROUP_NAME.test(name)) return undefined;
  return `"${name}" is not a group name; use up to 32 letters, digits, _ and -, starting with a letter, e.g. [group lab]`;
}

/** The @NAME words of a MAC list, without the @. */
export function groupRefs(value: string): string[] {
  return splitList(value)
    .filter((w) => w.startsWith('@'))
    .map((w) => w.slice(1));
}

/**
 * Checks a MAC list as written, before the groups are known: each @NAME is
 * a valid name (when `groupsAllowed`), each other word a MAC. Returns the
 * message of the first problem, or undefined.
 */
export function checkMacListText(key: string, value: string, groupsAllowed: boolean): string | undefined {
  const words = splitList(value);
  for (const w of words) {
    if (!w.startsWith('@')) continue;
    if (!groupsAllowed)
      return `${key} = ${value}: a group lists MACs, not other groups (${w}); name both groups in the export's mac-mask instead, e.g. mac-mask = @a @b`;
    const bad = groupNameProblem(w.slice(1));
    if (bad) return `${key}: ${bad}`;
  }
  const macs = words.filter((w) => !w.startsWith('@'));
  if (macs.length === 0) return undefined;
  try {
    parseMacList(macs.join(','), key);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * A mac-mask value with its @NAME words replaced by the groups' MACs
 * (duplicates once, in order). Throws a message naming an unknown group
 * (with the nearest name) or an expanded list over the mask's limit.
 */
export function expandMacList(key: string, value: string, groups: ReadonlyMap<string, MacGroup>): string[] {
  const macs: string[] = [];
  for (const w of splitList(value)) {
    if (!w.startsWith('@')) {
      addMacs(macs, [w], key, value);
      continue;
    }
    const g = groups.get(w.slice(1));
    if (!g) {
      const known = [...groups.keys()];
      throw new Error(
        `${key}: no group ${w}${suggest(w.slice(1), known, '@')}; ` +
          (known.length
            ? `groups: ${known.map((n) => '@' + n).join(' ')}`
            : 'declare it in a [group NAME] section with macs = ...'),
      );
    }
    addMacs(macs, g.macs, key, value);
  }
  return macs;
}

/** Adds MACs (already checked) once each; throws when the list would pass the mask's limit. */
function addMacs(into: string[], words: readonly string[], key: string, value: string): void {
  for (const w of words) {
    const mac = parseMac(w, key);
    if (into.includes(mac)) continue;
    if (into.length >= MAC_MASK_CAPACITY)
      throw new Error(
        `${key} = ${value} names more than ${MAC_MASK_CAPACITY} MAC addresses once its groups are expanded; ` +
          `an AoE mask list holds at most ${MAC_MASK_CAPACITY}: split the machines over exports or drop some`,
      );
    into.push(mac);
  }
}
