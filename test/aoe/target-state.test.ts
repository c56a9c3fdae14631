// The per-export protocol state: config string text round trip.

import t from 'tap';
import { buildIdentify, TargetState } from '../../src/aoe';

function state(): TargetState {
  return new TargetState(
    7,
    3,
    8192,
    false,
    16,
    buildIdentify({ sectors: 8192, serial: 's', firmware: 'f', model: 'm', writeCache: false }),
  );
}

t.test('a new export has no config string and empty lists', (t) => {
  const st = state();
  t.equal(st.configLen, 0);
  t.equal(st.configString(), '');
  t.equal(st.mask.count, 0);
  t.equal(st.reserve.count, 0);
  t.equal(st.version, 0);
  t.equal(st.mask.capacity, 128);
  t.equal(st.reserve.capacity, 128);
  t.end();
});

t.test('setConfigString / configString', (t) => {
  const rows: { desc: string; text: string; want: string }[] = [
    { desc: 'plain text', text: 'host1', want: 'host1' },
    { desc: 'empty', text: '', want: '' },
    { desc: 'latin-1 bytes kept', text: '\x00\xff\x80a', want: '\x00\xff\x80a' },
    { desc: 'exactly 1024', text: 'q'.repeat(1024), want: 'q'.repeat(1024) },
    { desc: 'longer than 1024: truncated', text: 'r'.repeat(1030), want: 'r'.repeat(1024) },
  ];
  for (const r of rows) {
    t.test(r.desc, (t) => {
      const st = state();
      st.setConfigString('a previous, longer string');
      st.setConfigString(r.text);
      t.equal(st.configString(), r.want);
      t.equal(st.configLen, r.want.length);
      t.ok(
        st.config.subarray(st.configLen).every((b) => b === 0),
        'bytes after the string are zero',
      );
      t.end();
    });
  }
  t.end();
});
