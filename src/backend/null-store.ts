// A store without storage: reads return zeros, writes are dropped. Useful to
// test a network path and as the benchmark's ceiling.

import type { LocalStore } from './block-store';

export function openNullStore(sectors: number): LocalStore {
  return {
    kind: 'null',
    fd: -1,
    byteOffset: 0,
    sectors,
    direct: false,
    inlineIo: true,
    description: 'null',
    close() {},
  };
}
