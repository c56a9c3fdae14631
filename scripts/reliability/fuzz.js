#!/usr/bin/env node
// Long fuzzing run against a live daemon; see docs/reliability.md.
'use strict';

const { lib, requireRoot, options, fmt } = require('./common');

const USAGE = `
usage: sudo node scripts/reliability/fuzz.js [--frames N] [--seed S] [--mtu M] [--batch B] [--progress N] [--target ours|vblade]

Sends seeded hostile frames (noise, random headers, every command with random
and lying fields, mutations) to our target on a veth pair between two fresh
network namespaces, in sendmmsg batches each followed by a clean-up and a
probe. Afterwards: the daemon is alive, answers, data written before the
fuzzing reads back unchanged, the file outside the export window is untouched.
Prints frames/s, crashes and hangs; exits 1 on any failure.

  --frames N     frames to send (default 1000000)
  --seed S       seed (default 0xf022a0e5; decimal or 0x hex)
  --mtu M        MTU of the veth pair (default 1500; 9000 for jumbo frames)
  --batch B      frames per batch (default 256)
  --progress N   a progress line every N frames (default 100000)
  --target T     ours (default), or vblade: run the same fuzzer against
                 Debian's vblade (lab/peers.ts) as a control (it is expected to fail)
`;

const o = options({ frames: 1000000, seed: '0xf022a0e5', mtu: 1500, batch: 256, progress: 100000, target: 'ours' }, USAGE);
requireRoot();
const { runScript } = lib('harness');
const { fuzzSession } = lib('fuzz-session');

runScript(async (t) => {
  const seed = Number(o.seed) >>> 0;
  console.log(
    `fuzzing ${o.target === 'vblade' ? "Debian's vblade" : 'our target'} with ${fmt(o.frames)} frames, seed 0x${seed.toString(16)}, MTU ${o.mtu}`,
  );
  const r = await fuzzSession(t, {
    seed,
    frames: o.frames,
    mtu: o.mtu,
    batch: o.batch,
    progressEvery: o.progress,
    kind: o.target === 'vblade' ? 'vblade' : 'ours',
    log: (l) => console.log(`  ${l}`),
  });
  const s = r.stats;
  console.log('');
  console.log(`frames sent      ${fmt(s.sent)} (${fmt(s.refused)} not sendable: shorter than an Ethernet header)`);
  console.log(`time             ${(s.elapsedMs / 1000).toFixed(1)} s`);
  console.log(`frames/s         ${fmt(s.framesPerSecond)}`);
  console.log(
    `kinds            ${Object.entries(s.kinds)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')}`,
  );
  console.log(`replies          ${fmt(s.replies)}; bad replies ${fmt(s.violations)}`);
  console.log(`probes           ${fmt(s.probes)} over ${fmt(s.batches)} batches`);
  console.log(`WRITEs moved     ${fmt(s.movedWrites)} (out of the protected range)`);
  console.log(`crashes          ${s.crashes}`);
  console.log(`hangs            ${s.hangs}`);
  console.log(`verified sectors ${r.verifiedSectors}`);
  for (const v of s.firstViolations.slice(0, 5)) console.log(`bad reply: ${v.problems.join('; ')}\n  ${v.hex.slice(0, 160)}`);
  if (r.crasher) console.log(`culprit frame (hex; make it a named golden row in test/aoe):\n  ${r.crasher}`);
  if (r.daemonExit) console.log(`daemon exit: ${r.daemonExit}`);
  for (const p of r.problems) t.fail(p);
  if (s.crashes + s.hangs + s.violations === 0 && r.problems.length === 0) console.log('\nRESULT: pass');
  else t.fail('RESULT: fail');
});
