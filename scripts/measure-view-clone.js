#!/usr/bin/env node
// How long making a per-initiator view takes (open, FICLONE on a pool
// thread, rename, fsync of the directory: src/views/views.ts), as the
// median of ROUNDS rounds of N views each. A measurement, not a test; the
// figures are in docs/views.md. Build first (npx tsc -p .).
//
//   node scripts/measure-view-clone.js IMAGE [ROUNDS [N]]
//
// IMAGE must be on a file system with reflinks (XFS made with
// `mkfs.xfs -m reflink=1`, btrfs). The views are made in a new directory
// next to it, removed at the end. `xfs_bmap IMAGE | wc -l` counts the
// extents, which the time grows with.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { ExportViews } = require('../dist/src/views/views');
const { native } = require('../dist/src/native/addon');

const [image, rounds = '5', per = '20'] = process.argv.slice(2);
if (!image) {
  console.error('usage: node scripts/measure-view-clone.js IMAGE [ROUNDS [N]]');
  process.exit(2);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const fd = fs.openSync(image, 'r');
  const sectors = Math.floor(fs.fstatSync(fd).size / 512);
  const store = { kind: 'file', fd, byteOffset: 0, sectors, direct: false, inlineIo: false, description: image, close() {} };
  const work = fs.mkdtempSync(path.join(path.dirname(image), '.measure-view-clone-'));
  const medians = [];
  try {
    for (let r = 0; r < Number(rounds); r++) {
      const times = [];
      let made = () => {};
      const views = ExportViews.open({
        dir: path.join(work, `round${r}`),
        image: store,
        direct: false,
        readOnly: false,
        maxViews: 1e6,
        leaseRetryMs: 30_000,
        datesSaveMs: 60_000,
        fns: native,
        events: {
          created: (_name, ms) => {
            times.push(ms);
            made();
          },
          failed: (_name, message) => {
            throw new Error(message);
          },
          sharing: () => {},
          imageWriter: () => {},
        },
      });
      const mac = new Uint8Array([2, 0, 0, 0, r, 0]);
      for (let i = 0; i < Number(per); i++) {
        mac[5] = i;
        const done = new Promise((resolve) => (made = resolve));
        views.storeFor(mac, 0, 1);
        await done;
      }
      await views.closeAndSave();
      medians.push(median(times));
      console.log(
        `round ${r}: median ${median(times).toFixed(3)} ms (min ${Math.min(...times).toFixed(3)}, max ${Math.max(...times).toFixed(3)})`,
      );
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.closeSync(fd);
  }
  console.log(`${image}: ${median(medians).toFixed(3)} ms per view (median of ${rounds} round medians, ${per} views each)`);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
