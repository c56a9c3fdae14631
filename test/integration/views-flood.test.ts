// An attacker on the segment forges IDENTIFY frames from 2,000 source MACs
// against vbladed (its real worker) serving views on a real XFS with
// reflinks: the export with a mask makes no view for them, the one without
// makes no more than max-views; the lab machine reads and writes its view
// throughout; the log has a bounded number of refusal lines; a restart
// afterwards serves every export.
//
// Network safety: vbladed and the clients run only inside namespaces this
// test creates, on a veth pair it creates; everything is removed in teardown.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AoeClient, linkInfo, writeBe32, writeIdentify, type Target } from '../../src/client';
import { sleep } from '../../lab/common';
import { createNetnsPair, requireRoot, type Netns } from '../../lab/netns';
import type { Proc } from '../../lab/process';
import { patternFile, patternSectors, tempDir } from '../helpers/files';
import { loopFs, requireLoopFs } from '../helpers/loop-fs';
import { REPO, waitLinkUp } from '../helpers/targets';

const VBLADED = path.join(REPO, 'bin', 'vbladed.js');
const FLOOD = 2000;
const MAX_VIEWS = 64;

function forged(i: number): Uint8Array {
  return Uint8Array.from([0x02, 0x5e, 0, 0, (i >> 8) & 0xff, i & 0xff]);
}

function views(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((f) => f.endsWith('.img'));
  } catch {
    return [];
  }
}

if (requireRoot(t)) {
  t.test(`vbladed: ${FLOOD} forged source MACs against views exports, with and without a mask`, async (t) => {
    if (!requireLoopFs(t, 'xfs-reflink')) return;
    const pair = await createNetnsPair(t);
    const mnt = await loopFs(t, 'xfs-reflink');
    const dir = tempDir(t, 'views-flood');
    const open = await patternFile(t, 2048, { dir: mnt, name: 'open.img' });
    const masked = await patternFile(t, 2048, { dir: mnt, name: 'masked.img' });
    const plain = await patternFile(t, 64);
    await waitLinkUp(pair.init, pair.initIf);
    const lab = AoeClient.open(pair.initIf, { netns: pair.init.path, timeoutMs: 500, retries: 8 });
    t.teardown(() => lab.close());
    const labMac = Array.from(lab.mac, (b) => b.toString(16).padStart(2, '0')).join(':');
    const conf = path.join(dir, 'vblade.conf');
    const viewsDir = path.join(mnt, 'views');
    fs.writeFileSync(
      conf,
      [
        `[export e7.1]`,
        `file = ${open}`,
        `interfaces = ${pair.targetIf}`,
        `views = per-initiator`,
        `views-dir = ${viewsDir}`,
        `max-views = ${MAX_VIEWS}`,
        ``,
        `[export e7.2]`,
        `file = ${masked}`,
        `interfaces = ${pair.targetIf}`,
        `views = per-initiator`,
        `views-dir = ${viewsDir}`,
        `mac-mask = ${labMac}`,
        ``,
        `[export e7.3]`,
        `file = ${plain}`,
        `interfaces = ${pair.targetIf}`,
        ``,
      ].join('\n'),
    );
    const tmac = linkInfo(pair.targetIf, pair.target.path).mac;
    const target = (slot: number): Target => ({ shelf: 7, slot, mac: tmac, sectorCount: 2, bufferCount: 16 });
    const start = (ns: Netns): Proc =>
      ns.spawn(t, process.execPath, [
        VBLADED,
        '--foreground',
        '--config',
        conf,
        '--run-dir',
        path.join(dir, 'run'),
        '--state-dir',
        'none',
        '--control-socket',
        'none',
        '--log',
        'stderr',
      ]);
    const serving = async (): Promise<void> => {
      const end = Date.now() + 60000;
      for (;;) {
        try {
          if (Buffer.from(await lab.read(target(3), 0, 1)).equals(patternSectors(0, 1))) return;
        } catch {
          // not yet
        }
        if (Date.now() > end) throw new Error('vbladed did not serve within 60 s');
        await sleep(200);
      }
    };
    const daemon = start(pair.target);
    await serving();
    t.match(
      daemon.stderr(),
      /e7\.1 has views = per-initiator and no mac-mask/,
      'the export without a mask is warned about at start',
    );
    t.notMatch(daemon.stderr(), /e7\.2 has views/, 'the masked one is not');

    for (const slot of [1, 2]) await lab.identify(target(slot));
    const data = (n: number): Uint8Array => new Uint8Array(512).fill(n & 0xff);
    await lab.write(target(1), 1, data(0xa1));
    await lab.write(target(2), 1, data(0xa2));

    // The flood: IDENTIFY to both view exports from each forged MAC, 100 MACs at a time.
    const frame = new Uint8Array(60);
    let labOk = 0;
    let labRounds = 0;
    for (let i = 0; i < FLOOD; i += 100) {
      for (let k = i; k < i + 100; k++) {
        for (const slot of [1, 2]) {
          writeIdentify(frame, 0, { dst: tmac, src: forged(k), shelf: 7, slot }, 0);
          writeBe32(frame, 20, 0x7000_0000 + k * 2 + slot);
          lab.sendRaw(frame);
        }
      }
      await sleep(5);
      labRounds++;
      const lba = 100 + i / 100;
      try {
        await lab.write(target(1), lba, data(lba));
        await lab.write(target(2), lba, data(lba + 1));
        const back1 = Buffer.from(await lab.read(target(1), lba, 1));
        const back2 = Buffer.from(await lab.read(target(2), lba, 1));
        if (back1.equals(data(lba)) && back2.equals(data(lba + 1))) labOk++;
      } catch {
        // counted as a failed round
      }
    }
    t.equal(labOk, labRounds, `the lab machine wrote and read back its views in all ${labRounds} rounds of the flood`);
    await sleep(1000);
    const open1 = views(path.join(viewsDir, 'e7.1'));
    const masked2 = views(path.join(viewsDir, 'e7.2'));
    t.equal(open1.length, MAX_VIEWS, `without a mask: ${open1.length} views, max-views`);
    t.same(masked2, [`${labMac.replace(/:/g, '')}.img`], 'with a mask: only the lab machine has a view');
    const refusals = daemon
      .stderr()
      .split('\n')
      .filter((l) => l.includes('refused'));
    t.ok(
      refusals.length >= 1 && refusals.length <= 3,
      `${refusals.length} refusal lines in the log for ${FLOOD - MAX_VIEWS + 1} refusals`,
    );
    t.match(refusals[0] ?? '', /view limit 64 of this export reached \(max-views\)/);

    await daemon.stop();
    const again = start(pair.target);
    await serving();
    t.notMatch(again.stderr(), /"level":50/, 'the restart logged no error');
    t.same(
      Buffer.from(await lab.read(target(1), 1, 1)),
      Buffer.from(data(0xa1)),
      'after a restart the lab machine reads its view of e7.1',
    );
    t.same(Buffer.from(await lab.read(target(2), 1, 1)), Buffer.from(data(0xa2)), 'and of e7.2');
    t.equal(views(path.join(viewsDir, 'e7.1')).length, MAX_VIEWS, 'the views were kept');
  });
}
