// The values of config keys: the types a key can have, how a value of each
// type is checked (with the message a user sees) and how it is read into
// what the settings hold. The same rules serve the config file, the long
// options of vbladed and vblade, and the environment variables.

import { cephIdProblem } from '../remote/ceph-conf';
import { isRemoteUri, parseRemoteUri } from '../remote/remote-uri';
import { parseInterfaceName, parseMacList } from './vblade-args';

export type ValueType =
  'string' | 'name' | 'cephid' | 'path' | 'store' | 'bool' | 'count' | 'sectors' | 'enum' | 'interfaces' | 'macs' | 'listen';

/** What checking and reading a value needs to know about its key. */
export interface ValueSpec {
  key: string;
  type: ValueType;
  /** The default as one would write it in the file; '' = unset. */
  default: string;
  /** Allowed values of an enum. */
  values?: readonly string[];
  /** Smallest and largest value of a count. */
  range?: readonly [number, number];
  /** A word that turns the setting off: it (or, for a yes/no key, any word that means the same) reads as no value at all. */
  off?: string;
}

/** A value as the settings hold it. */
export type Value = string | number | boolean | string[] | Listen;

/** A listening address. */
export interface Listen {
  host: string;
  port: number;
}

export const BOOL_WORDS: Record<string, boolean> = {
  yes: true,
  true: true,
  on: true,
  '1': true,
  no: false,
  false: false,
  off: false,
  '0': false,
};

/** Decimal or 0x hexadecimal, no sign, up to Number.MAX_SAFE_INTEGER. Leading zeros are decimal (no octal surprise). */
export function parseConfigInteger(s: string): number | undefined {
  let big: bigint;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) big = BigInt(s.toLowerCase());
  else if (/^[0-9]+$/.test(s)) big = BigInt(s);
  else return undefined;
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(big);
}

/** "host:port" or "[v6]:port" → parts; throws a message on error. */
export function parseListen(s: string): Listen {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):([0-9]+)$/.exec(s);
  if (!m) throw new Error(`"${s}" is not HOST:PORT; write e.g. 127.0.0.1:9469 or [::1]:9469`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`port ${m[3]} is out of range; use 1..65535`);
  return { host: m[1] ?? m[2], port };
}

/** Splits a list value on spaces and commas. */
export function splitList(v: string): string[] {
  return v.split(/[\s,]+/).filter((x) => x !== '');
}

/**
 * A checked value read as its type; undefined for the key's off word. Only
 * for values checkValue accepted: a value it would refuse reads as garbage.
 */
export function parseValue(spec: ValueSpec, text: string): Value | undefined {
  if (spec.off !== undefined && text === spec.off) return undefined;
  switch (spec.type) {
    case 'bool': {
      const yes = BOOL_WORDS[text.toLowerCase()];
      return spec.off !== undefined && yes === BOOL_WORDS[spec.off] ? undefined : yes;
    }
    case 'count':
    case 'sectors':
      return parseConfigInteger(text);
    case 'listen':
      return parseListen(text);
    case 'interfaces':
      return splitList(text);
    case 'macs':
      return parseMacList(splitList(text).join(','), spec.key, []);
    default:
      return text;
  }
}

/** A value as one writes it in the file: the inverse of parseValue for the plain types. */
export function writtenValue(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

/** Checks one value against its key's type; returns an error message or undefined. */
export function checkValue(spec: ValueSpec, value: string): string | undefined {
  switch (spec.type) {
    case 'bool':
      if (!Object.hasOwn(BOOL_WORDS, value.toLowerCase())) return `${spec.key} = "${value}" is not yes or no; write yes or no`;
      return undefined;
    case 'enum':
      if (!spec.values!.includes(value))
        return `${spec.key} = "${value}" is not one of ${spec.values!.join(', ')}; pick one of them`;
      return undefined;
    case 'count':
      return checkCount(spec, value);
    case 'sectors':
      return checkSectors(spec, value);
    case 'listen':
      if (value === '' || value === spec.off) return undefined;
      try {
        parseListen(value);
        return undefined;
      } catch (e) {
        return `${spec.key}: ${(e as Error).message}`;
      }
    case 'interfaces':
      return checkInterfaces(value);
    case 'macs':
      try {
        parseMacList(splitList(value).join(','), spec.key);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    case 'name':
      return checkInstanceName(spec, value);
    case 'cephid':
      return cephIdProblem(value);
    case 'store':
      if (isRemoteUri(value)) {
        try {
          parseRemoteUri(value);
        } catch (e) {
          return `${spec.key}: ${(e as Error).message}`;
        }
      }
      return checkValue({ ...spec, type: 'path' }, value);
    case 'path':
    case 'string':
      if (/[\0\n]/.test(value)) return `${spec.key} contains a control character; remove it`;
      return undefined;
  }
}

/**
 * An instance name names files in the run and log directories (NAME.pid,
 * NAME.sock): no '/' or '..' to climb out of them, nothing a shell or a log
 * reader would take apart.
 */
function checkInstanceName(spec: ValueSpec, value: string): string | undefined {
  if (value === '') return undefined;
  if (!/^[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,63}$/.test(value))
    return `${spec.key} = "${value}" is not an instance name; use up to 64 letters, digits and _ . @ -, not starting with a dot (it names the pid file and control socket)`;
  return undefined;
}

function checkCount(spec: ValueSpec, value: string): string | undefined {
  const n = parseConfigInteger(value);
  // A negative whole number is a number out of range, not a malformed one.
  if (n === undefined && spec.range && /^-\d+$/.test(value.trim()))
    return `${spec.key} = ${value.trim()} is out of range; use ${spec.range[0]}..${spec.range[1]}`;
  if (n === undefined)
    return `${spec.key} = "${value}" is not a whole number; write digits, e.g. ${spec.key} = ${spec.default || '1'}`;
  if (spec.range && (n < spec.range[0] || n > spec.range[1])) {
    return `${spec.key} = ${value} is out of range; use ${spec.range[0]}..${spec.range[1]}`;
  }
  return undefined;
}

function checkSectors(spec: ValueSpec, value: string): string | undefined {
  const n = parseConfigInteger(value);
  if (n === undefined) {
    return `${spec.key} = "${value}" is not a sector count; write a whole number of 512-byte sectors (decimal or 0x hex)`;
  }
  if ((spec.key === 'length' || spec.key === 'null-sectors') && n < 1) {
    return `${spec.key} = 0 exports nothing; give at least 1 sector${spec.key === 'length' ? ' or leave length out to export to the end' : ''}`;
  }
  return undefined;
}

function checkInterfaces(value: string): string | undefined {
  const names = splitList(value);
  if (names.length === 0) return 'interfaces is empty; list at least one interface, e.g. interfaces = eth1';
  const seen = new Set<string>();
  for (const n of names) {
    try {
      parseInterfaceName(n);
    } catch (e) {
      return (e as Error).message;
    }
    if (seen.has(n)) return `interface ${n} is listed twice; list each interface once`;
    seen.add(n);
  }
  return undefined;
}

/** Edit distance, for "did you mean" hints. */
export function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length];
}

/** ` (did you mean "x"?)` for the closest candidate within two edits, else ''. */
export function suggest(word: string, candidates: readonly string[], prefix = ''): string {
  let best = '';
  let bestD = 3;
  for (const c of candidates) {
    const dd = distance(word, c);
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return best ? ` (did you mean "${prefix}${best}"?)` : '';
}
