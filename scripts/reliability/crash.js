#!/usr/bin/env node
// Crash consistency under kill -9; see docs/reliability.md.
'use strict';

const { lib, requireRoot, options, fmt } = require('./common');

const USAGE = `
usage: sudo node scripts/reliability/crash.js [--rounds N] [--nosync N] [--window W] [--blocks B] [--seed S]

Runs our target with -s on a veth pair, keeps W versioned writes in flight
from the project's client and kills the daemon with SIGKILL N times at random
moments. After every kill: (1) the backing file holds every acknowledged
write; (2) a simulated power loss (every write the daemon's io journal does
not show as covered by a completed fdatasync is undone), a restart, and a
read of the whole disk through AoE: every acknowledged write is still there.
Then the same without -s for --nosync rounds, where only writes acknowledged
before an answered FLUSH CACHE must survive the power loss (the rest is
counted: that is what "without -s" may lose).

  --rounds N   kills with -s (default 50)
  --nosync N   kills without -s, FLUSH CACHE every 100 ms (default 10; 0 = none)
  --window W   writes in flight (default 16)
  --blocks B   blocks of 2 sectors on the disk (default 512)
  --seed S     seed of the writers and kill times (default 0x5eed5)
`;

const o = options({ rounds: 50, nosync: 10, window: 16, blocks: 512, seed: '0x5eed5' }, USAGE);
requireRoot();
const { runScript } = lib('harness');
const { crashRounds } = lib('crash');

function summary(name, rep, sync) {
  const sum = (k) => rep.rounds.reduce((a, r) => a + r[k], 0);
  console.log(`\n${name}`);
  console.log(`  kills survived             ${rep.kills} (every restart served and read back the whole disk)`);
  console.log(`  writes sent / acknowledged ${fmt(sum('sent'))} / ${fmt(rep.ackedWrites)}`);
  console.log(
    `  acknowledged-write checks  ${fmt(rep.verifiedWrites)} (latest per block per round, in the file and through AoE)`,
  );
  console.log(`  fdatasyncs (durable)       ${fmt(sum('syncs'))}; FLUSH CACHE answered ${fmt(sum('flushes'))}`);
  console.log(`  lost on kill               ${sum('lostOnKill')}`);
  console.log(
    `  lost on power loss         ${sum('lostOnPowerLoss')}${sync ? '' : ` blocks (acknowledged after the last answered FLUSH CACHE; flushed and lost: ${sum('lostFlushed')})`}`,
  );
  console.log(`  sectors undone (unsynced)  ${fmt(sum('restored'))}`);
  console.log(`  damaged sectors            ${sum('corrupt')}`);
}

runScript(async (t) => {
  const seed = Number(o.seed) >>> 0;
  const log = (l) => console.log(`  ${l}`);
  console.log(`-s: ${o.rounds} kills`);
  const s = await crashRounds(t, { rounds: o.rounds, sync: true, seed, window: o.window, blocks: o.blocks, log });
  summary('with -s', s, true);
  for (const p of s.problems) t.fail(p);
  if (o.nosync > 0) {
    console.log(`\nwithout -s: ${o.nosync} kills`);
    const n = await crashRounds(t, {
      rounds: o.nosync,
      sync: false,
      seed: seed + 1,
      window: o.window,
      blocks: o.blocks,
      flushEveryMs: 100,
      log,
    });
    summary('without -s', n, false);
    const bad = n.rounds.reduce((a, r) => a + r.lostOnKill + r.lostFlushed + r.corrupt, 0);
    if (bad > 0)
      t.fail(`without -s: ${bad} writes lost that must not be (on kill, or after an answered FLUSH CACHE), or damaged`);
  }
  console.log(t.failures.length === 0 ? '\nRESULT: pass' : '\nRESULT: fail');
});
