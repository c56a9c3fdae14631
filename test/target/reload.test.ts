// A reload applies completely or changes nothing: what an initiator and
// stats() see when a reload names a missing backing file or interface, and
// how a grown backing file is reported. On the fake addon.

import t from 'tap';
import * as fs from 'node:fs';
import { patternFile, patternSectors } from '../helpers/files';
import { Initiator, exportOf, settle, startInProcess } from '../helpers/in-process';

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

async function readsSector0(i: Initiator, shelf = 1, slot = 2): Promise<boolean> {
  const tag = i.read(0, 1, shelf, slot);
  await settle(50);
  if (i.unclaimed(tag) === 0) return false;
  const r = await i.ataReply(tag);
  return Buffer.from(r.ata.data).equals(patternSectors(0, 1));
}

t.test('file = changed to a missing path: refused, nothing changed, the export still serves', async (t) => {
  const file = await patternFile(t, 64);
  const other = await patternFile(t, 64);
  const { server, initiator } = await startInProcess(t, [exportOf(file), exportOf(other, { slot: 3 })]);
  const fds = openFds();
  const next = {
    exports: [
      exportOf('/nonexistent/disk.img'), // changed to a missing file
      exportOf(other, { slot: 4 }), // e1.3 removed, e1.4 added: must not happen either
    ],
  };
  await t.rejects(server.apply(next), {
    message: /^e1\.2: cannot open \/nonexistent\/disk\.img: .*no such file/i,
  });
  t.equal(openFds(), fds, 'the stores the reload opened are closed again');
  t.same(
    server.stats().exports.map((e) => [e.key, e.file]),
    [
      ['e1.2', file],
      ['e1.3', other],
    ],
    'the same exports, on the same files',
  );
  t.ok(await readsSector0(initiator), 'e1.2 still answers reads');
  t.ok(await readsSector0(initiator, 1, 3), 'e1.3 was not removed');
  t.notOk(await readsSector0(initiator, 1, 4), 'e1.4 was not added');
});

t.test('a mistyped interfaces = on reload: refused, the export keeps serving where it did', async (t) => {
  const file = await patternFile(t, 64);
  const { server, initiator } = await startInProcess(t, [exportOf(file)]);
  await t.rejects(server.apply({ exports: [exportOf(file, { interfaces: ['fake9'] })] }), {
    message: 'e1.2: interface fake9 not found; list interfaces with `ip link`',
  });
  t.same(server.stats().exports[0].interfaces, ['fake0']);
  t.ok(await readsSector0(initiator), 'still answers on fake0');
});

t.test('reload: an added export on an interface that does not exist yet waits for it; every problem is named', async (t) => {
  const file = await patternFile(t, 64);
  const { server, initiator } = await startInProcess(t, [exportOf(file)]);
  const later = exportOf(await patternFile(t, 8), { slot: 3, interfaces: ['fake9'] });
  const summary = await server.apply({ exports: [exportOf(file), later] });
  t.same(summary.added, ['e1.3']);
  t.same(summary.waiting, ['interface fake9 not found; e1.3 waits for it (list interfaces with `ip link`)']);
  t.ok(await readsSector0(initiator), 'e1.2 still answers on fake0');

  const missing = `${file}.missing`;
  await t.rejects(
    server.apply({
      exports: [exportOf(missing), later, exportOf(missing, { slot: 4 })],
    }),
    {
      message: new RegExp(
        `^2 problems:\\n {2}e1\\.2: cannot open ${missing.replace(/[.]/g, '\\.')}: no such file.*\\n {2}e1\\.4: cannot open `,
      ),
    },
  );
  t.same(
    server.stats().exports.map((e) => e.key),
    ['e1.2', 'e1.3'],
    'nothing changed',
  );
});

t.test('a grown backing file is reported as resized, not changed, and its new size is served', async (t) => {
  const file = await patternFile(t, 64);
  const { server, initiator } = await startInProcess(t, [exportOf(file)]);
  fs.appendFileSync(file, Buffer.alloc(64 * 512));
  const summary = await server.apply({ exports: [exportOf(file)] });
  t.same(summary, { added: [], removed: [], changed: [], resized: ['e1.2'] });
  t.equal(server.stats().exports[0].sectors, 128);
  const r = await initiator.ataReply(initiator.read(127, 1));
  t.notOk(r.ata.failed, 'the new last sector is readable');
});

t.test('a reload that changes nothing says so', async (t) => {
  const file = await patternFile(t, 64);
  const { server } = await startInProcess(t, [exportOf(file)]);
  const before = server.exports[0];
  t.same(await server.apply({ exports: [exportOf(file)] }), { added: [], removed: [], changed: [], resized: [] });
  t.equal(server.exports[0], before, 'not replaced');
});
