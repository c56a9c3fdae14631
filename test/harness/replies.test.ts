// Self-tests of test/helpers/replies.ts: the content length of each kind of
// reply, worked out by hand from AoE r11 (header 24 bytes; ATA header 36;
// Query Config 32 + string; Mac Mask 28 + 8 per entry; Reserve/Release 26 +
// 6 per address), and the padding rule built on it.

import t from 'tap';
import { paddingProblem, replyContentLength } from '../helpers/replies';

/** A 60-byte (or `length`-byte) reply with version 1, R set, and the given bytes. */
function reply(cmd: number, fields: Record<number, number> = {}, length = 60): Uint8Array {
  const b = new Uint8Array(length);
  b[12] = 0x88;
  b[13] = 0xa2;
  b[14] = 0x18; // version 1, response
  b[19] = cmd;
  for (const [off, v] of Object.entries(fields)) b[Number(off)] = v;
  return b;
}

const E = 0x1c; // version 1, response, error

t.test('content length of each kind of reply', async (t) => {
  const rows: Array<[string, Uint8Array, number]> = [
    ['unknown command (E, error 1): header only', reply(0x42, { 14: E, 15: 1 }), 24],
    ['unsupported version (E, error 5) on a Query Config: header only', reply(1, { 14: E, 15: 5, 31: 10 }), 24],
    ['ATA without data (a write)', reply(0), 36],
    ['ATA with one sector of data', reply(0, {}, 36 + 512), 548],
    ['Query Config with no string', reply(1), 32],
    ['Query Config with a 300-byte string', reply(1, { 30: 1, 31: 44 }, 332), 332],
    ['Query Config BadArg still carries the current string', reply(1, { 14: E, 15: 2, 31: 5 }), 37],
    ['Mac Mask listing 3 entries', reply(2, { 27: 3 }), 52],
    ['Mac Mask with MError: no list, whatever Dir Count says', reply(2, { 26: 1, 27: 3 }), 28],
    ['Mac Mask with E set: no list', reply(2, { 14: E, 15: 2, 27: 3 }), 28],
    ['Reserve listing no address', reply(3), 26],
    ['Reserve listing 2 addresses', reply(3, { 25: 2 }), 38],
    ['Reserve conflict (E, error 6) still lists the holders', reply(3, { 14: E, 15: 6, 25: 8 }, 74), 74],
  ];
  for (const [what, frame, want] of rows) t.equal(replyContentLength(frame), want, what);
});

t.test('the padding rule', async (t) => {
  t.equal(paddingProblem(reply(3, { 25: 2 })), undefined, 'a 38-byte reply padded with zeros to 60 is right');
  t.match(paddingProblem(reply(3, { 25: 2 }, 59)), /59 bytes, shorter than 60/, 'a reply under 60 bytes is named');
  t.match(paddingProblem(reply(3, { 25: 2 }, 64)), /64 bytes where 60 were expected/, 'padding past 60 bytes is named');
  t.match(
    paddingProblem(reply(3, { 25: 2, 38: 0xee })),
    /byte 38 of the padding is 0xee/,
    'a stale byte right after the content is named',
  );
  t.equal(paddingProblem(reply(3, { 25: 2, 37: 0xee })), undefined, 'the last byte of the content is not padding');
});
