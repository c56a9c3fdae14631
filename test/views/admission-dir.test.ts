// A views directory the daemon cannot use (its user may not enter it, or it
// is gone) refuses new views under a reason that says so, with the fix; not
// as if the file system were full (min-free).

import * as path from 'node:path';
import t from 'tap';
import { ViewAdmission, ViewBudget, type RefusalReason } from '../../src/views/admission';
import { tempDir } from '../helpers/files';

t.test('statfs of the views directory fails: refused as views-dir, logged with the fix', async (t) => {
  const dir = path.join(tempDir(t, 'admission'), 'e5.1'); // not there: statfs fails as it does for EACCES
  const logged: [RefusalReason, string][] = [];
  const a = new ViewAdmission({
    dir,
    maxViews: 10,
    minFreePercent: 5,
    budget: new ViewBudget(100),
    refused: (reason, _count, _s, message) => logged.push([reason, message]),
  });
  t.teardown(() => a.close());
  t.equal(a.refuses(0, 0), true, 'no new view');
  t.equal(a.refusals['views-dir'], 1, 'counted as views-dir');
  t.equal(a.refusals['min-free'], 0, 'not as min-free');
  t.equal(logged[0]?.[0], 'views-dir');
  t.match(
    logged[0]?.[1],
    `cannot use the views directory ${dir}: ENOENT: no such file or directory, statfs '${dir}'; the daemon's user must be able to enter and write it and views-dir: give them to it (chown -R USER: VIEWSDIR) and reload; vbladed --check names what is wrong`,
  );
});
