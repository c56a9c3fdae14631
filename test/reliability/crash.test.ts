// Crash consistency: kill -9 the daemon during concurrent writes and
// check every acknowledged write afterwards, both as a process crash (the file
// right after the kill) and as a simulated power loss (writes the io journal
// does not show as covered by a completed fdatasync are undone). See
// lib/crash.ts; scripts/reliability/crash.js runs 50 kills.
//
// Reservations: a Reserve force set acknowledged right before kill -9 of the
// worker or the supervisor, a restart, a reload, a link flap or a full state
// directory is still in force afterwards (lib/reservation-crash.ts).
//
// AOET_CRASH_ROUNDS overrides the number of -s kills (default 5);
// AOET_RESERVATION_ROUNDS the rounds per reservation event (default 1).

import t from 'tap';
import { requireRoot } from '../../lab/netns';
import { crashRounds } from './lib/crash';
import { seedFrom } from './lib/harness';
import { RESERVATION_EVENTS, reservationRounds } from './lib/reservation-crash';

const ROUNDS = Number(process.env.AOET_CRASH_ROUNDS ?? 5);
const SEED = seedFrom('AOET_CRASH_SEED', 0x5eed5);

if (requireRoot(t)) {
  t.test(`-s: ${ROUNDS} kills during concurrent writes lose no acknowledged write`, async (t) => {
    const rep = await crashRounds(t, { rounds: ROUNDS, sync: true, seed: SEED, log: (l) => t.comment(l) });
    t.equal(rep.kills, ROUNDS, `${ROUNDS} kills, each followed by a restart that served again`);
    t.ok(rep.ackedWrites > 0, `${rep.ackedWrites} writes acknowledged in all`);
    t.ok(
      rep.rounds.every((r) => r.syncs > 0),
      'every round made writes durable with fdatasync (group commit)',
    );
    t.equal(
      rep.rounds.reduce((a, r) => a + r.lostOnKill, 0),
      0,
      'process crash: every acknowledged write is in the file',
    );
    t.equal(
      rep.rounds.reduce((a, r) => a + r.lostOnPowerLoss, 0),
      0,
      'simulated power loss: every acknowledged write survives',
    );
    t.equal(
      rep.rounds.reduce((a, r) => a + r.corrupt, 0),
      0,
      'no damaged sector, none from the future, none gone back',
    );
    t.same(rep.problems, [], 'no problems');
    t.comment(`${rep.verifiedWrites} checks of acknowledged writes`);
  });

  t.test('without -s: a kill loses nothing acknowledged; a power loss only what no FLUSH CACHE covered', async (t) => {
    const rep = await crashRounds(t, {
      rounds: 2,
      sync: false,
      seed: SEED + 1,
      flushEveryMs: 200,
      killAfterMs: [300, 700],
      log: (l) => t.comment(l),
    });
    t.equal(rep.kills, 2);
    t.equal(
      rep.rounds.reduce((a, r) => a + r.lostOnKill, 0),
      0,
      'process crash: every acknowledged write is in the file',
    );
    t.equal(
      rep.rounds.reduce((a, r) => a + r.lostFlushed, 0),
      0,
      'power loss: every write acknowledged before an answered FLUSH CACHE survives',
    );
    t.equal(
      rep.rounds.reduce((a, r) => a + r.corrupt, 0),
      0,
      'no damaged sector',
    );
    t.ok(
      rep.rounds.every((r) => r.flushes > 0),
      'flushes were answered in every round',
    );
    const lost = rep.rounds.reduce((a, r) => a + r.lostOnPowerLoss, 0);
    t.ok(
      lost > 0,
      `control: the simulated power loss does lose writes acknowledged after the last FLUSH (${lost} blocks), so the -s result means something`,
    );
  });

  const reservationRoundsEach = Number(process.env.AOET_RESERVATION_ROUNDS ?? 1);
  t.test(`reservations: none acknowledged is lost to ${RESERVATION_EVENTS.join(', ')}`, async (t) => {
    const rep = await reservationRounds(t, { rounds: reservationRoundsEach, seed: SEED + 2, log: (l) => t.comment(l) });
    t.same(rep.events, Object.fromEntries(RESERVATION_EVENTS.map((e) => [e, reservationRoundsEach])), 'every event ran');
    t.ok(rep.acknowledged > 0, `${rep.acknowledged} reservation changes acknowledged`);
    t.equal(rep.lost, 0, 'none of them lost');
    t.equal(rep.refused, reservationRoundsEach, 'with the state directory full, the change was refused with AoE error 3');
    t.equal(rep.appeared, 0, 'and the refused change never took effect');
    t.same(rep.problems, [], 'no problems');
  });
}
