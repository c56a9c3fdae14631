#!/usr/bin/env node
// Soak: long mixed load with memory and descriptor sampling; see docs/reliability.md.
'use strict';

const { lib, requireRoot, options, fmt } = require('./common');

const USAGE = `
usage: sudo node scripts/reliability/soak.js [--seconds S] [--sample S] [--warmup S] [--flap S] [--mtu S]

Mixed load against our target for a while: three initiators run a verified
read/write load (16 in flight each), a fourth sends control traffic and
requests that take the error paths; the interface goes down and up every
--flap seconds and its MTU to 9000 and back every --mtu seconds. The daemon's
RSS (VmRSS) and open file descriptors (/proc/PID/fd) are sampled every
--sample seconds. Passes when RSS grows less than 10 % from the baseline
(the first quarter after the warm-up) to the end, and the fds do not grow.

  --seconds S  duration (default 600)
  --sample S   sampling interval (default 5)
  --warmup S   warm-up not counted (default: a fifth of the run, at most 60)
  --flap S     link down/up interval (default 60; 0 = never)
  --mtu S      MTU 9000/1500 cycle interval (default 150; 0 = never)
`;

const o = options({ seconds: 600, sample: 5, warmup: -1, flap: 60, mtu: 150 }, USAGE);
requireRoot();
const { runScript } = lib('harness');
const { soak } = lib('soak');

runScript(async (t) => {
  console.log(`soak for ${o.seconds} s, sampling every ${o.sample} s`);
  const r = await soak(t, {
    durationMs: o.seconds * 1000,
    sampleMs: o.sample * 1000,
    warmupMs: o.warmup >= 0 ? o.warmup * 1000 : undefined,
    flapEveryMs: o.flap * 1000,
    mtuEveryMs: o.mtu * 1000,
    log: (l) => console.log(`  ${l}`),
  });
  const ops = r.loads.reduce((a, x) => a + x.result.ops, 0);
  console.log('');
  console.log(
    `load requests     ${fmt(ops)} verified, control operations ${fmt(r.controlOps)} (${r.controlErrors} failed during link faults)`,
  );
  console.log(`link faults       ${r.flaps} down/up, ${r.mtuCycles} MTU cycles`);
  console.log(
    `RSS               baseline ${(r.baselineRssKb / 1024).toFixed(1)} MiB, end ${(r.finalRssKb / 1024).toFixed(1)} MiB, growth ${r.rssGrowthPercent.toFixed(1)} %, max ${(r.maxRssKb / 1024).toFixed(1)} MiB`,
  );
  console.log(`open fds          baseline ${r.baselineFds}, end ${r.finalFds} (lowest in each window), max ${r.maxFds}`);
  for (const p of r.problems) t.fail(p);
  console.log(t.failures.length === 0 ? '\nRESULT: pass' : '\nRESULT: fail');
});
