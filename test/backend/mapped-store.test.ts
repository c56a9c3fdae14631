// mapInMemory (src/backend/mapped-store.ts) decides which stores to map and
// undoes the mapping on close; the addon calls are passed in, so fakes here
// record what it asked for. The mapping itself is tested in test/native.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BlockStore } from '../../src/backend/block-store';
import type { TestLike } from '../../lab/common';
import { mapInMemory, type MapFunctions } from '../../src/backend/mapped-store';

function recorder(fail?: string): { fns: MapFunctions; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fns: {
      mapFile(fd, length, writable) {
        calls.push(`map ${fd} ${length} ${writable}`);
        if (fail) throw new Error(fail);
      },
      unmapFile(fd) {
        calls.push(`unmap ${fd}`);
        return true;
      },
    },
  };
}

function storeOn(t: TestLike, sparse: boolean, over: Partial<BlockStore> = {}): { store: BlockStore; closed: () => boolean } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mapped-store-'));
  const file = path.join(dir, 'img');
  if (sparse) fs.writeFileSync(file, '');
  else fs.writeFileSync(file, Buffer.alloc(8192, 1));
  const fd = fs.openSync(file, 'r+');
  if (sparse) fs.ftruncateSync(fd, 8192);
  let closed = false;
  t.teardown(() => {
    if (!closed) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const store: BlockStore = {
    kind: 'file',
    fd,
    byteOffset: 512,
    sectors: 15,
    direct: false,
    inlineIo: true,
    description: file,
    close: () => {
      closed = true;
      fs.closeSync(fd);
    },
    ...over,
  };
  return { store, closed: () => closed };
}

t.test('a whole file in memory is mapped up to the end of the export, and unmapped before it closes', async (t) => {
  const { store, closed } = storeOn(t, false);
  const r = recorder();
  const mapped = mapInMemory(store, false, r.fns, () => t.fail('no warning expected'));
  t.not(mapped, store, 'a new store that unmaps on close');
  t.same(r.calls, [`map ${store.fd} ${512 + 15 * 512} false`]);
  void mapped.close(); // a file store: closed at once
  t.same(r.calls.slice(1), [`unmap ${store.fd}`]);
  t.ok(closed(), 'the file is closed too');
});

t.test('stores that are not mapped come back as they are', async (t) => {
  const r = recorder();
  const cases: Array<[string, BlockStore]> = [
    ['not in memory', storeOn(t, false, { inlineIo: false }).store],
    ['O_DIRECT', storeOn(t, false, { direct: true }).store],
    ['sparse', storeOn(t, true).store],
  ];
  for (const [what, store] of cases)
    t.equal(
      mapInMemory(store, true, r.fns, () => undefined),
      store,
      what,
    );
  t.same(r.calls, [], 'mapFile never called');
});

t.test('a failed mapping is reported and the store keeps read and write calls', async (t) => {
  const { store } = storeOn(t, false);
  const r = recorder('ENOMEM');
  const warned: string[] = [];
  t.equal(
    mapInMemory(store, true, r.fns, (file, reason) => warned.push(`${file}: ${reason}`)),
    store,
  );
  t.same(warned, [`${store.description}: ENOMEM`]);
});
