// The constants the addon exports against this JavaScript's declarations:
// the pure comparison table-tested with made-up addon objects, the loader's
// messages for a missing, broken or mismatched build, and the real addon
// (checked, and behaving as its numbers say).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDON_PATH, loadAddon, loadAddonFrom, native } from '../../src/native/addon';
import { EXPECTED_NATIVE_CONSTANTS, NativeLimit, nativeConstantMismatches } from '../../src/native/constants';

const small = { ioOpStride: 6, drainStride: 3 };

t.test('nativeConstantMismatches: table', async (t) => {
  const cases: { name: string; actual: unknown; want: string[] }[] = [
    { name: 'equal', actual: { ioOpStride: 6, drainStride: 3 }, want: [] },
    { name: 'key order does not matter', actual: { drainStride: 3, ioOpStride: 6 }, want: [] },
    { name: 'one value differs', actual: { ioOpStride: 7, drainStride: 3 }, want: ['ioOpStride: 7 in the addon, 6 here'] },
    {
      name: 'every difference is listed',
      actual: { ioOpStride: 7, drainStride: 4 },
      want: ['ioOpStride: 7 in the addon, 6 here', 'drainStride: 4 in the addon, 3 here'],
    },
    { name: 'missing in the addon', actual: { ioOpStride: 6 }, want: ['drainStride: missing in the addon, 3 here'] },
    {
      name: 'a name only the addon has',
      actual: { ioOpStride: 6, drainStride: 3, sendStride: 2 },
      want: ['sendStride: 2 in the addon, unknown here'],
    },
    { name: 'a string is not the number', actual: { ioOpStride: '6', drainStride: 3 }, want: ['ioOpStride: "6" in the addon, 6 here'] },
    { name: 'inherited names do not count', actual: Object.create({ ioOpStride: 6, drainStride: 3 }), want: [
      'ioOpStride: missing in the addon, 6 here',
      'drainStride: missing in the addon, 3 here',
    ] },
    { name: 'no object (an addon built before constants)', actual: undefined, want: ['it exports no constants object (built from older sources)'] },
    { name: 'null', actual: null, want: ['it exports no constants object (built from older sources)'] },
    { name: 'a number', actual: 6, want: ['it exports no constants object (built from older sources)'] },
  ];
  for (const c of cases) t.same(nativeConstantMismatches(c.actual, small), c.want, c.name);
});

t.test('the expected table uses the declarations (inlined const enums)', async (t) => {
  t.equal(EXPECTED_NATIVE_CONSTANTS.ioMaxBuffers, NativeLimit.IoBuffers);
  t.ok(Object.isFrozen(EXPECTED_NATIVE_CONSTANTS));
  t.same(nativeConstantMismatches({ ...EXPECTED_NATIVE_CONSTANTS }), [], 'a copy of itself agrees');
});

t.test('the built addon agrees with this JavaScript', async (t) => {
  const addon = loadAddon();
  const raw = (addon as unknown as { constants: Record<string, number> }).constants;
  t.same(nativeConstantMismatches(raw), []);
  t.ok(Object.isFrozen(raw), 'frozen: nothing can change a value after the check');
  t.equal(loadAddon(), addon, 'loaded once');
});

t.test('native forwards every function of the addon', async (t) => {
  const functions = Object.keys(loadAddon()).filter((k) => k !== 'constants').sort();
  t.same(Object.keys(native).sort(), functions);
  t.equal(native.linkInfo('aoet-noif0'), null, 'a call reaches the addon');
});

t.test('loadAddonFrom: what is wrong and how to build it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aoet-addon-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  const missing = join(dir, 'aoe_native.node');
  t.throws(() => loadAddonFrom(missing), {
    message: new RegExp(`^the native addon ${missing} is missing; build it with \`npx node-gyp rebuild\``),
  });

  const garbage = join(dir, 'garbage.node');
  writeFileSync(garbage, 'not a shared object');
  t.throws(() => loadAddonFrom(garbage), { message: new RegExp(`^cannot load the native addon ${garbage}: .*; rebuild it with`) });

  // An addon from before the constants object: any module without one.
  const old = join(dir, 'old.js');
  writeFileSync(old, 'module.exports = { openIoRing() {} };');
  t.throws(() => loadAddonFrom(old), { message: /does not match this JavaScript \(it exports no constants object/ });

  // The real build against JavaScript that expects a different layout.
  t.throws(() => loadAddonFrom(ADDON_PATH, { ...EXPECTED_NATIVE_CONSTANTS, ioOpStride: 7 }), {
    message: new RegExp(
      `^the native addon ${ADDON_PATH} does not match this JavaScript \\(ioOpStride: 6 in the addon, 7 here\\); ` +
        'rebuild both with `bash scripts/setup.sh`',
    ),
  });
});

t.test('the limits the addon reports are the ones it enforces', async (t) => {
  const ring = native.openIoRing(4);
  t.teardown(() => ring.close());
  const mem = new Uint8Array(512);
  ring.registerBuffer(NativeLimit.IoBuffers - 1, mem);
  ring.unregisterBuffer(NativeLimit.IoBuffers - 1);
  t.throws(() => ring.registerBuffer(NativeLimit.IoBuffers, mem), RangeError, 'one past the last buffer id');
  t.throws(() => native.openIoRing(NativeLimit.IoDepth + 1), RangeError, 'one past the largest depth');
  const deepest = native.openIoRing(NativeLimit.IoDepth);
  t.equal(deepest.depth, NativeLimit.IoDepth, 'the largest depth opens');
  deepest.close();
});
