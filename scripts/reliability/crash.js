#!/usr/bin/env node
// Crash consistency under kill -9; see docs/reliability.md.
'use strict';

const { lib, requireRoot, options, fmt } = require('./common');

const USAGE = `
usage: sudo node scripts/reliability/crash.js [--rounds N] [--nosync N] [--reservations R] [--window W] [--blocks B] [--seed S]

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
  --reservations R  rounds per event of the reservation check (default 5;
               0 = none): Reserve force sets acknowledged right before kill -9
               of the worker or supervisor, a restart, a reload, a link flap,
               a full state directory, SIGTERM or kill -9 of plain vblade;
               the last acknowledged list must be in force afterwards
  --window W   writes in flight (default 16)
  --blocks B   blocks of 2 sectors on the disk (default 512)
  --seed S     seed of the writers and kill times (default 0x5eed5)
`;

const o = options({ rounds: 50, nosync: 10, reservations: 5, window: 16, blocks: 512, seed: '0x5eed5' }, USAGE);
requireRoot();
const { runScript } = lib('harness');
const { crashRounds } = lib('crash');
const { reservationRounds } = lib('reservation-crash');

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
  if (o.rounds > 0) {
    console.log(`-s: ${o.rounds} kills`);
    const s = await crashRounds(t, { rounds: o.rounds, sync: true, seed, window: o.window, blocks: o.blocks, log });
    summary('with -s', s, true);
    for (const p of s.problems) t.fail(p);
  }
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
  if (o.reservations > 0) {
    console.log(`\nreservations: ${o.reservations} rounds per event`);
    const r = await reservationRounds(t, { rounds: o.reservations, seed: seed + 2, log });
    console.log('\nreservations');
    console.log(
      `  events                     ${Object.entries(r.events)
        .map(([e, n]) => `${e} ${n}`)
        .join(', ')}`,
    );
    const ms = [...r.ackMs].sort((a, b) => a - b);
    const pct = (p) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))].toFixed(1);
    console.log(
      `  changes acknowledged       ${r.acknowledged} (round trip incl. the save: median ${pct(50)} ms, p99 ${pct(99)} ms)`,
    );
    console.log(`  acknowledged and lost      ${r.lost}`);
    console.log(`  refused (error 3, full)    ${r.refused}; took effect anyway ${r.appeared}`);
    for (const p of r.problems) t.fail(p);
  }
  console.log(t.failures.length === 0 ? '\nRESULT: pass' : '\nRESULT: fail');
});
