// Records bench/storm/diskless-boot.trace.json, the boot the storm bench
// replays. Run by hand, as root, after a change to the suite's guest:
//
//   npx tsc -p tsconfig.json && node dist/bench/storm/record-trace.js [--out FILE]
//
// In private namespaces (the interop suite's topology: a bridge, the guest's
// tap, one target namespace) it captures AoE on the target's interface with
// tshark while one guest machine boots from our target, in two parts:
//   ipxe:  ipxe.lkrn runs `sanboot aoe:e1.1` on a disk whose boot sector
//          (lab/bootsector.ts) reads through INT 13h, one
//          request in flight, as a boot loader does before the kernel runs;
//   linux: the suite's diskless guest (kernel and initramfs given to QEMU)
//          finds its root with the aoe driver, mounts it, runs init to a
//          shell, and is powered off.
// The capture is read here (bench/storm/trace.ts) and only the requests are
// kept. Everything it made is removed at the end; it stops only what it
// started, by pid.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGuest, kernelAppend } from '../../lab/guest';
import { Proc } from '../../lab/process';
import { Qemu } from '../../lab/qemu';
import { TARGET_IF, Topology, targetMac } from '../../lab/topology';
import { bootSector } from '../../lab/bootsector';
import { buildRootImage } from '../../lab/root-image';
import { PhaseName, makeTrace, readPcap, requestsOf } from './trace';
import { ROOT } from '../targets';

const IPXE_LKRN = '/usr/lib/ipxe/ipxe.lkrn';
const DEFAULT_OUT = join(ROOT, 'bench', 'storm', 'diskless-boot.trace.json');

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** A 16 MiB disk with the suite's INT 13h boot sector in sector 0. */
function bootDisk(path: string): void {
  writeFileSync(path, '');
  truncateSync(path, 16 * 2 ** 20);
  const fd = openSync(path, 'r+');
  writeSync(fd, bootSector(), 0, 512, 0);
  closeSync(fd);
}

function startTarget(ns: string, file: string, dir: string, label: string): Proc {
  return new Proc(process.execPath, [join(ROOT, 'bin', 'vblade.js'), '1', '1', TARGET_IF, file], {
    netns: ns,
    label,
    logFile: join(dir, `${label}.log`),
  });
}

/** Gives a target a moment to open its interface; throws when it exited instead. */
async function settle(target: Proc): Promise<void> {
  await new Promise((r) => setTimeout(r, 1500));
  if (!target.running) throw new Error(`the target exited at start:\n${target.tail(20)}`);
}

async function main(): Promise<void> {
  const outArg = process.argv.indexOf('--out');
  const out = outArg > 0 ? process.argv[outArg + 1] : DEFAULT_OUT;
  if (process.getuid?.() !== 0) throw new Error('recording needs root: it makes namespaces, a bridge and a tap');
  const dir = mkdtempSync(join(tmpdir(), 'aoe-storm-record-'));
  const guest = await buildGuest();
  const topo = await Topology.create({ mtu: 1500, targets: 1 });
  const started: Proc[] = [];
  const qemus: Qemu[] = [];
  try {
    const ns = topo.targetNs[0];
    const pcap = join(dir, 'boot.pcap');
    const tshark = new Proc('tshark', ['-i', TARGET_IF, '-F', 'pcap', '-w', pcap, '-f', 'ether proto 0x88a2', '-q'], {
      netns: ns,
      label: 'tshark',
      logFile: join(dir, 'tshark.log'),
    });
    started.push(tshark);
    await tshark.waitFor(/Capturing on/, { timeoutMs: 20000 });

    // Part 1: iPXE, one request in flight.
    const disk = join(dir, 'ipxe.img');
    bootDisk(disk);
    let target = startTarget(ns, disk, dir, 'target-ipxe');
    started.push(target);
    await settle(target);
    const t0 = Date.now();
    const ipxe = new Qemu({
      ns: topo.guestNs,
      name: 'aoe-storm-ipxe',
      logFile: join(dir, 'serial-ipxe.log'),
      kernel: IPXE_LKRN,
      append: 'ifopen net0 && sanboot aoe:e1.1',
      debugExit: true,
      timeoutMs: 120 * 1000,
    });
    qemus.push(ipxe);
    const ipxeExit = await ipxe.done;
    log(`ipxe part: ${((Date.now() - t0) / 1000).toFixed(1)} s, QEMU exit ${ipxeExit.code}`);
    if (ipxeExit.code !== 33) throw new Error(`iPXE did not boot the boot sector (QEMU exit ${ipxeExit.code}); see ${dir}`);
    await target.stop();
    // Everything captured before this moment is iPXE's.
    const boundaryUs = Date.now() * 1000;

    // Part 2: the Linux driver, the suite's diskless root.
    const root = await buildRootImage(dir);
    target = startTarget(ns, root, dir, 'target-linux');
    started.push(target);
    await settle(target);
    const t1 = Date.now();
    const linux = new Qemu({
      ns: topo.guestNs,
      name: 'aoe-storm-linux',
      logFile: join(dir, 'serial-linux.log'),
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: kernelAppend({ scenario: 'diskless', mtu: 1500 }),
      timeoutMs: 300 * 1000,
    });
    qemus.push(linux);
    await linux.waitFor((l) => l.tag === 'diskless' && l.fields.phase === 'shell', 200 * 1000);
    log(`linux part: shell after ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    linux.send('poweroff -f\n');
    await linux.done;
    await target.stop();
    // Let the last frames reach the file.
    await new Promise((r) => setTimeout(r, 500));
    tshark.signal('SIGINT');
    await tshark.waitExit(10000);

    const frames = readPcap(readFileSync(pcap));
    const phaseAt = (us: number): PhaseName => (us < boundaryUs ? 'ipxe' : 'linux');
    // The target's own frames (its duplicate-address probes) are not a machine's boot.
    const { requests, retransmissions } = requestsOf(frames, phaseAt, (mac) => mac !== targetMac(0));
    const trace = makeTrace(
      requests,
      retransmissions,
      "One machine's diskless boot from aoe-target, captured on the target's interface: iPXE (ipxe.lkrn) sanboot of a disk whose boot sector reads 64 sectors through INT 13h, then the interop suite's diskless Linux guest (aoe driver, ext4 root, busybox init) up to its shell. QEMU under TCG (no KVM) on a shared 2-core machine: the gaps include emulation time.",
      new Date().toISOString().slice(0, 10),
    );
    // In the repository's style (one request a line), so that the format check passes on it.
    const prettier = (await import('prettier')) as typeof import('prettier');
    const style = (await prettier.resolveConfig(DEFAULT_OUT)) ?? {};
    const text = await prettier.format(JSON.stringify(trace), { ...style, parser: 'json' });
    writeFileSync(out, text);
    log(`${requests.length} requests (${retransmissions} retransmissions left out) → ${out}`);
    for (const p of trace.phases)
      log(`  ${p.name}: ${p.requests} requests, window ${p.window}, ${p.sectorsRead} sectors read, ${p.seconds} s`);
  } finally {
    for (const q of qemus) await q.kill();
    for (const p of started.reverse()) await p.stop(2000);
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`record-trace: ${e.message}\n`);
  process.exit(1);
});
