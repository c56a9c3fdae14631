#!/usr/bin/env node
// Many initiators against one export; see docs/reliability.md.
'use strict';

const { lib, requireRoot, options, fmt } = require('./common');

const USAGE = `
usage: sudo node scripts/reliability/load.js [--seconds S] [--initiators N] [--window W] [--read P] [--sync]

N initiators, each in its own network namespace with its own MAC on one
bridge, each with W requests in flight against one export of our target, each
on its own LBA range of the test pattern. Every reply is checked against the
request it answers (tag sent by that initiator and not answered before, LBA,
length, data), and the share each initiator got is reported.

  --seconds S     duration (default 60)
  --initiators N  default 8
  --window W      requests in flight per initiator (default 16)
  --read P        percent reads (default 70)
  --sync          run the target with -s
`;

const o = options({ seconds: 60, initiators: 8, window: 16, read: 70, sync: false }, USAGE);
requireRoot();
const { runScript } = lib('harness');
const { createRig, multiLoad, describe, fairness } = lib('multi-load');
const { checkFailures } = lib('checked-socket');

runScript(async (t) => {
  console.log(`${o.initiators} initiators x ${o.window} in flight for ${o.seconds} s${o.sync ? ' (-s)' : ''}`);
  const rig = await createRig(t, { initiators: o.initiators, options: o.sync ? ['-s'] : [] });
  const results = await multiLoad(rig, { window: o.window, durationMs: o.seconds * 1000, readPercent: o.read });
  for (const line of describe(results)) console.log(`  ${line}`);
  let failed = 0;
  for (const r of results) {
    const e = r.result.errors;
    const bad = e.aoe + e.ata + e.verify + e.short + e.timeouts + e.socket + checkFailures(r.checks);
    if (bad > 0)
      t.fail(`initiator ${r.index}: ${bad} failed or mismatched requests (${r.result.firstError ?? r.checks.first[0]})`);
    failed += bad;
  }
  const ops = results.map((r) => r.result.ops);
  const f = fairness(ops);
  const total = ops.reduce((a, b) => a + b, 0);
  console.log('');
  console.log(`requests           ${fmt(total)} (${fmt(total / o.seconds)}/s), all verified: ${failed === 0 ? 'yes' : 'NO'}`);
  console.log(
    `per initiator      min ${fmt(f.min)}, max ${fmt(f.max)}, min/max ${f.ratio.toFixed(3)}, Jain's index ${f.jain.toFixed(4)}`,
  );
  console.log(`duplicates         ${results.reduce((a, r) => a + r.checks.duplicates, 0)}`);
  console.log(
    `cross-talk         ${results.reduce((a, r) => a + r.checks.unknownTag + r.checks.foreign, 0)} (replies with another initiator's tag or address)`,
  );
  console.log(`retransmissions    ${fmt(results.reduce((a, r) => a + r.result.retransmits, 0))}`);
  if (f.ratio < 0.5)
    t.fail(`unfair: the least served initiator got ${(f.ratio * 100).toFixed(0)} % of the most served one's requests`);
  if (!rig.daemon.proc.running) t.fail('the daemon exited');
  console.log(t.failures.length === 0 ? '\nRESULT: pass' : '\nRESULT: fail');
});
