// The process's limit on open descriptors (RLIMIT_NOFILE, soft), which bounds
// how many views can stay open. Node has no getrlimit; /proc has it (Node
// raised the soft limit to the hard one when it started).

import * as fs from 'node:fs';

const FALLBACK = 1024;

export function openFileLimit(limitsFile = '/proc/self/limits'): number {
  try {
    const line = fs
      .readFileSync(limitsFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(soft);
    return Number.isInteger(n) && n > 0 ? n : FALLBACK;
  } catch {
    return FALLBACK;
  }
}
