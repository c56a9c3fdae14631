// The serving core's options with their defaults filled in: the tunables a
// user sets in [daemon] default to DEFAULT_TUNABLES, the one place their
// defaults are written, for a caller that passes none (a test, a library
// user) as for the daemon.

import t from 'tap';
import { DEFAULT_TUNABLES, type ServingTunables } from '../../src/config/export-config';
import { resolveOptions } from '../../src/target/options';

t.test('every tunable left out takes its default from DEFAULT_TUNABLES', async (t) => {
  const o = resolveOptions({});
  for (const k of Object.keys(DEFAULT_TUNABLES) as (keyof ServingTunables)[]) t.equal(o[k], DEFAULT_TUNABLES[k], k);
});

t.test('a tunable given, 0 included, wins over its default', async (t) => {
  const o = resolveOptions({ duplicateProbeMs: 0, announceSeconds: 0, spinMicros: 0, spinPolicy: 'always', mapInMemory: false });
  t.same(
    {
      duplicateProbeMs: o.duplicateProbeMs,
      announceSeconds: o.announceSeconds,
      spinMicros: o.spinMicros,
      spinPolicy: o.spinPolicy,
      mapInMemory: o.mapInMemory,
    },
    { duplicateProbeMs: 0, announceSeconds: 0, spinMicros: 0, spinPolicy: 'always', mapInMemory: false },
  );
});
