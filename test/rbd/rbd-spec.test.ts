// file = rbd:POOL/IMAGE and rbd:POOL/NAMESPACE/IMAGE: what is read, and
// every other form refused with what to write instead.

import t from 'tap';
import { RbdSpecError, isRbdSpec, parseRbdSpec, rbdImageSpec } from '../../src/remote/rbd-spec';

t.test('pool/image and pool/namespace/image are read', async (t) => {
  t.same(parseRbdSpec('rbd:rbd/disk0'), { kind: 'rbd', uri: 'rbd:rbd/disk0', pool: 'rbd', namespace: '', image: 'disk0' });
  const n = parseRbdSpec('rbd:volumes/tenant-a/vm_1.root+2');
  t.same([n.pool, n.namespace, n.image], ['volumes', 'tenant-a', 'vm_1.root+2']);
  t.equal(rbdImageSpec(n), 'volumes/tenant-a/vm_1.root+2');
  t.equal(rbdImageSpec(parseRbdSpec('rbd:p/i')), 'p/i');
});

t.test('a value starting with rbd: is an rbd image, any other is not', async (t) => {
  t.ok(isRbdSpec('rbd:p/i'));
  t.ok(isRbdSpec('RBD:p/i'), 'upper case is taken as meant for rbd (and refused by the parser)');
  t.notOk(isRbdSpec('/srv/rbd:p/i'));
  t.notOk(isRbdSpec('./rbd:p'), 'a relative file named rbd:… is written ./rbd:…');
  t.notOk(isRbdSpec('nbd://host/x'));
});

t.test('malformed values are refused with the reason', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['rbd:', /a pool and an image are needed/],
    ['rbd:pool', /a pool and an image are needed/],
    ['rbd:pool/', /the image is empty/],
    ['rbd:/image', /the pool is empty/],
    ['rbd:a/b/c/d', /too many \//],
    ['rbd:p//i', /the namespace is empty/],
    ['rbd:p/i@snap1', /snapshot \(@snap1\) is read-only.*rbd clone/],
    ['rbd:p/i:id=admin:conf=/etc/ceph/ceph.conf', /ceph-id and ceph-conf/],
    ['rbd://p/i', /takes no \/\//],
    ['RBD:p/i', /lower case/],
    ['rbd:p/i j', /no spaces or control characters/],
    ['rbd:p/i\nfile=/etc/passwd', /no spaces or control characters/],
    ['rbd:p/i\0', /no spaces or control characters/],
    ['rbd:p/..', /not a image name/],
    ['rbd:p/../i', /not a namespace name/],
    ['rbd:p/$(reboot)', /holds a character other than/],
    ['rbd:p/ímage', /holds a character other than/],
    [`rbd:p/${'x'.repeat(256)}`, /longer than 255/],
  ];
  for (const [value, want] of cases) {
    t.throws(() => parseRbdSpec(value), RbdSpecError, `${JSON.stringify(value).slice(0, 40)} is refused`);
    t.throws(() => parseRbdSpec(value), { message: want }, `${JSON.stringify(value).slice(0, 40)}: ${want.source}`);
  }
  t.doesNotThrow(() => parseRbdSpec(`rbd:p/${'x'.repeat(255)}`), 'a name of 255 characters is fine');
});
