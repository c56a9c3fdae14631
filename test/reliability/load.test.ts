// Load: 8 initiators, each in its own namespace with its own MAC on
// one bridge, 16 requests in flight each, against one export, for a short run
// (AOET_LOAD_SECONDS, default 10; scripts/reliability/load.js runs 60 s).
// Every reply must match its request (tag sent by that initiator and not
// answered before, LBA echoed, length right, data verified against the
// pattern of that initiator's own range), no reply may reach the wrong
// initiator, and each must get a fair share.

import t from 'tap';
import { requireRoot } from '../../lab/netns';
import { checkFailures } from './lib/checked-socket';
import { createRig, describe, fairness, multiLoad } from './lib/multi-load';

const SECONDS = Number(process.env.AOET_LOAD_SECONDS ?? 10);
const INITIATORS = 8;
const WINDOW = 16;

if (requireRoot(t)) {
  t.test(`${INITIATORS} initiators x ${WINDOW} in flight for ${SECONDS} s against one export`, async (t) => {
    const rig = await createRig(t, { initiators: INITIATORS });
    const results = await multiLoad(rig, { window: WINDOW, durationMs: SECONDS * 1000 });
    for (const line of describe(results)) t.comment(line);
    for (const r of results) {
      const e = r.result.errors;
      t.same(
        { aoe: e.aoe, ata: e.ata, verify: e.verify, short: e.short, timeouts: e.timeouts, socket: e.socket },
        { aoe: 0, ata: 0, verify: 0, short: 0, timeouts: 0, socket: 0 },
        `initiator ${r.index}: every request answered, data verified${r.result.firstError ? ` (${r.result.firstError})` : ''}`,
      );
      t.equal(
        checkFailures(r.checks),
        0,
        `initiator ${r.index}: no foreign, unknown, duplicate or malformed reply${r.checks.first.length ? `: ${r.checks.first.join(' | ')}` : ''}`,
      );
    }
    const ops = results.map((r) => r.result.ops);
    const f = fairness(ops);
    const total = ops.reduce((a, b) => a + b, 0);
    t.comment(
      `total ${total} requests (${(total / SECONDS).toFixed(0)}/s); per initiator min ${f.min}, max ${f.max}, min/max ${f.ratio.toFixed(2)}, Jain ${f.jain.toFixed(3)}`,
    );
    t.ok(f.min > 0, 'every initiator was served');
    t.ok(
      f.ratio >= 0.5,
      `fair share: the least served initiator got ${(f.ratio * 100).toFixed(0)} % of the most served one's requests (>= 50 %)`,
    );
    t.ok(rig.daemon.proc.running, 'the daemon is still running');
  });
}
