// Scenario 2: iPXE's `sanboot aoe:e1.1` boots a disk exported by the target
// under test. The disk's boot sector (lab/bootsector.ts) proves the boot on
// COM1, reads 64 sectors through INT 13h (iPXE turns them into AoE reads of 2
// sectors each), writes one back, and ends QEMU.
//   ipxe-lkrn:          QEMU -kernel ipxe.lkrn with a `sanboot` command line
//   ipxe-nic-rom-dhcp:  the ipxe-qemu NIC option ROM, DHCP (busybox udhcpd in
//                       the target namespace) handing out root-path aoe:e1.1

import * as fs from 'node:fs';
import t from 'tap';
import { bootSector, bootSectorChecksum, MARKER, READ_SECTORS, WRITE_LBA } from '../../lab/bootsector';
import { TARGET_IF } from '../../lab/topology';
import { Qemu } from '../../lab/qemu';
import { MIB, ScenarioContext, scenarioTest, TapTest } from './lib/scenario';
import { selectedTargets } from './targets';

const IPXE_LKRN = '/usr/lib/ipxe/ipxe.lkrn';
// At least one 255x63 cylinder: iPXE's INT 13h guesses that geometry for a disk
// without partitions, and a smaller disk has zero cylinders, so the CHS read
// of the boot sector fails ("Boot from SAN device 0x80 failed: Input/output error").
const DISK_BYTES = 16 * MIB;
// documentation prefix (RFC 5737), only ever inside the test's own namespaces
const DHCP_SERVER = '192.0.2.1';

function makeDisk(ctx: ScenarioContext): { file: string; sum: string; lba1: Buffer } {
  const file = ctx.exportFile('disk.img', DISK_BYTES);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, bootSector(), 0, 512, 0);
  fs.closeSync(fd);
  ctx.fillRandom(file, 512, READ_SECTORS * 512);
  const data = Buffer.alloc(READ_SECTORS * 512);
  const rfd = fs.openSync(file, 'r');
  fs.readSync(rfd, data, 0, data.length, 512);
  fs.closeSync(rfd);
  return { file, sum: bootSectorChecksum(data), lba1: data.subarray(0, 512) };
}

function checkBoot(
  t: TapTest,
  ctx: ScenarioContext,
  q: Qemu,
  exit: { timedOut: boolean; code: number | null },
  disk: { file: string; sum: string; lba1: Buffer },
): void {
  const x = ctx.extra;
  for (const l of q.results) t.comment(`serial: ${l.raw}`);
  t.equal(exit.timedOut, false, 'the boot sector ended QEMU (no host timeout)', x);
  t.equal(exit.code, 33, 'QEMU exit status 33 = the boot sector reached isa-debug-exit', x);
  const boot = q.first('ipxe-boot');
  t.equal(boot.marker, MARKER, 'iPXE booted the boot sector from the export (marker on COM1)', x);
  t.same(
    q.lines('ipxe-error').map((l) => l.raw),
    [],
    'no INT 13h errors',
    x,
  );
  t.equal(q.first('ipxe-read').sum, disk.sum, `INT 13h read of ${READ_SECTORS} sectors through AoE has the right checksum`, x);
  t.equal(q.first('ipxe-write').status, 'ok', 'INT 13h write through AoE succeeded', x);
  const written = Buffer.alloc(512);
  const fd = fs.openSync(disk.file, 'r');
  fs.readSync(fd, written, 0, 512, WRITE_LBA * 512);
  fs.closeSync(fd);
  t.ok(written.equals(disk.lba1), `sector ${WRITE_LBA} of the export file now holds what the guest wrote`, x);
}

for (const target of selectedTargets()) {
  scenarioTest(t, target, 'ipxe-lkrn', async (t, ctx) => {
    const topo = await ctx.topology({ mtu: 1500, targets: 1 });
    const disk = makeDisk(ctx);
    await ctx.startTarget(topo.targetNs[0], ['1', '1', TARGET_IF, disk.file]);
    const q = ctx.qemu({
      ns: topo.guestNs,
      kernel: IPXE_LKRN,
      append: 'ifopen net0 && sanboot aoe:e1.1',
      debugExit: true,
      timeoutMs: 120 * 1000,
    });
    const exit = await q.done;
    t.comment(`iPXE (ipxe.lkrn) run took ${(exit.ms / 1000).toFixed(1)} s`);
    checkBoot(t, ctx, q, exit, disk);
  });

  scenarioTest(t, target, 'ipxe-nic-rom-dhcp', async (t, ctx) => {
    const topo = await ctx.topology({ mtu: 1500, targets: 1 });
    const disk = makeDisk(ctx);
    await topo.addIPv4(0, `${DHCP_SERVER}/24`);
    const conf = ctx.path('udhcpd.conf');
    fs.writeFileSync(
      conf,
      [
        `interface ${TARGET_IF}`,
        'start 192.0.2.100',
        'end 192.0.2.120',
        'max_leases 20',
        `lease_file ${ctx.path('udhcpd.leases')}`,
        `pidfile ${ctx.path('udhcpd.pid')}`,
        'opt subnet 255.255.255.0',
        'opt lease 600',
        'opt rootpath aoe:e1.1',
        '',
      ].join('\n'),
    );
    fs.writeFileSync(ctx.path('udhcpd.leases'), '');
    const dhcpd = ctx.startHelper(topo.targetNs[0], 'udhcpd', ['busybox', 'udhcpd', '-f', conf]);
    await ctx.startTarget(topo.targetNs[0], ['1', '1', TARGET_IF, disk.file]);
    const q = ctx.qemu({ ns: topo.guestNs, netBoot: true, debugExit: true, timeoutMs: 180 * 1000 });
    const exit = await q.done;
    t.comment(`iPXE (NIC ROM, DHCP root-path) run took ${(exit.ms / 1000).toFixed(1)} s`);
    t.ok(dhcpd.running, 'udhcpd was still running', ctx.extra);
    checkBoot(t, ctx, q, exit, disk);
  });
}
