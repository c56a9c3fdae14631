// Saved state against the config's mac-mask: which mask is in force.

import t from 'tap';
import type { ExportState } from '../../src/config/export-config';
import { reconcileState } from '../../src/config/saved-state';

const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const X = '52:54:00:00:00:99'; // set by an initiator with an AoE mask command

t.test('which mask is in force', async (t) => {
  const rows: Array<{ desc: string; saved: ExportState; config: string[]; mask: string[]; changed: boolean }> = [
    {
      desc: 'no mask anywhere',
      saved: { config: '', macMask: [], reserve: [] },
      config: [],
      mask: [],
      changed: false,
    },
    {
      desc: 'config sets none, an initiator set one: the saved mask stays',
      saved: { config: '', macMask: [X], reserve: [] },
      config: [],
      mask: [X],
      changed: false,
    },
    {
      desc: 'mac-mask added to the config, saved state with an empty mask: the config wins',
      saved: { config: '', macMask: [], reserve: [] },
      config: [A],
      mask: [A],
      changed: true,
    },
    {
      desc: 'mac-mask added to the config, saved state from before it recorded none: the config wins over a saved mask',
      saved: { config: '', macMask: [X], reserve: [] },
      config: [A],
      mask: [A],
      changed: true,
    },
    {
      desc: 'config unchanged since the last reconciliation: what an initiator set stays',
      saved: { config: '', macMask: [X], reserve: [], configMask: [A] },
      config: [A],
      mask: [X],
      changed: false,
    },
    {
      desc: 'config changed from A to B: B',
      saved: { config: '', macMask: [A], reserve: [], configMask: [A] },
      config: [B],
      mask: [B],
      changed: true,
    },
    {
      desc: 'mac-mask removed from the config: the mask is emptied',
      saved: { config: '', macMask: [A], reserve: [], configMask: [A] },
      config: [],
      mask: [],
      changed: true,
    },
    {
      desc: 'same addresses in another order: not a change',
      saved: { config: '', macMask: [X], reserve: [], configMask: [A, B] },
      config: [B, A],
      mask: [X],
      changed: false,
    },
  ];
  for (const r of rows) {
    const got = reconcileState(r.saved, r.config);
    t.same(got.state.macMask, r.mask, `${r.desc}: mask`);
    t.equal(got.changed, r.changed, `${r.desc}: changed`);
    t.same(got.state.configMask, r.config.length ? r.config : undefined, `${r.desc}: records the config's mask`);
  }
});

t.test('the config string and reserve list are always the saved ones', async (t) => {
  const saved: ExportState = { config: 'vm7', macMask: [A], reserve: [X], configMask: [A] };
  const { state } = reconcileState(saved, [B]);
  t.equal(state.config, 'vm7');
  t.same(state.reserve, [X]);
  state.reserve.push(A);
  t.same(saved.reserve, [X], 'the saved state is not modified');
});
