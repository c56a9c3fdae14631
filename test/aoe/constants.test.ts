// Offsets and codes against AoE r11, and sectors per frame for an MTU.

import t from 'tap';
import * as aoe from '../../src/aoe';

t.test('field offsets (from the start of the Ethernet frame)', (t) => {
  const rows: [string, number, number][] = [
    ['OFF_DST', aoe.OFF_DST, 0],
    ['OFF_SRC', aoe.OFF_SRC, 6],
    ['OFF_TYPE', aoe.OFF_TYPE, 12],
    ['OFF_VERFLAGS', aoe.OFF_VERFLAGS, 14],
    ['OFF_ERROR', aoe.OFF_ERROR, 15],
    ['OFF_MAJOR', aoe.OFF_MAJOR, 16],
    ['OFF_MINOR', aoe.OFF_MINOR, 18],
    ['OFF_CMD', aoe.OFF_CMD, 19],
    ['OFF_TAG', aoe.OFF_TAG, 20],
    ['OFF_ARG', aoe.OFF_ARG, 24],
    ['HEADER_LEN', aoe.HEADER_LEN, 24],
    ['MIN_FRAME_LEN', aoe.MIN_FRAME_LEN, 60],
    ['OFF_ATA_AFLAGS', aoe.OFF_ATA_AFLAGS, 24],
    ['OFF_ATA_FEATURE', aoe.OFF_ATA_FEATURE, 25],
    ['OFF_ATA_SECTORS', aoe.OFF_ATA_SECTORS, 26],
    ['OFF_ATA_CMDSTAT', aoe.OFF_ATA_CMDSTAT, 27],
    ['OFF_ATA_LBA', aoe.OFF_ATA_LBA, 28],
    ['OFF_ATA_DATA', aoe.OFF_ATA_DATA, 36],
    ['ATA_HEADER_LEN', aoe.ATA_HEADER_LEN, 36],
    ['OFF_CFG_BUFCNT', aoe.OFF_CFG_BUFCNT, 24],
    ['OFF_CFG_FIRMWARE', aoe.OFF_CFG_FIRMWARE, 26],
    ['OFF_CFG_SECTORS', aoe.OFF_CFG_SECTORS, 28],
    ['OFF_CFG_VERCCMD', aoe.OFF_CFG_VERCCMD, 29],
    ['OFF_CFG_LEN', aoe.OFF_CFG_LEN, 30],
    ['OFF_CFG_STRING', aoe.OFF_CFG_STRING, 32],
    ['CFG_HEADER_LEN', aoe.CFG_HEADER_LEN, 32],
    ['OFF_MASK_MCMD', aoe.OFF_MASK_MCMD, 25],
    ['OFF_MASK_MERROR', aoe.OFF_MASK_MERROR, 26],
    ['OFF_MASK_DIRCOUNT', aoe.OFF_MASK_DIRCOUNT, 27],
    ['OFF_MASK_DIRS', aoe.OFF_MASK_DIRS, 28],
    ['MASK_HEADER_LEN', aoe.MASK_HEADER_LEN, 28],
    ['DIRECTIVE_LEN', aoe.DIRECTIVE_LEN, 8],
    ['OFF_RES_RCMD', aoe.OFF_RES_RCMD, 24],
    ['OFF_RES_NMACS', aoe.OFF_RES_NMACS, 25],
    ['OFF_RES_MACS', aoe.OFF_RES_MACS, 26],
    ['RES_HEADER_LEN', aoe.RES_HEADER_LEN, 26],
  ];
  for (const [name, got, want] of rows) t.equal(got, want, name);
  t.end();
});

t.test('codes', (t) => {
  const rows: [string, number, number][] = [
    ['ETHERTYPE_AOE', aoe.ETHERTYPE_AOE, 0x88a2],
    ['AOE_VERSION', aoe.AOE_VERSION, 1],
    ['FLAG_RESPONSE', aoe.FLAG_RESPONSE, 0x08],
    ['FLAG_ERROR', aoe.FLAG_ERROR, 0x04],
    ['AFLAG_EXTENDED', aoe.AFLAG_EXTENDED, 0x40],
    ['AFLAG_DEVICE', aoe.AFLAG_DEVICE, 0x10],
    ['AFLAG_ASYNC', aoe.AFLAG_ASYNC, 0x02],
    ['AFLAG_WRITE', aoe.AFLAG_WRITE, 0x01],
    ['ATA_STATUS_ERR', aoe.ATA_STATUS_ERR, 0x01],
    ['ATA_STATUS_DRDY', aoe.ATA_STATUS_DRDY, 0x40],
    ['ATA_ERROR_ABRT', aoe.ATA_ERROR_ABRT, 0x04],
    ['ATA_ERROR_IDNF', aoe.ATA_ERROR_IDNF, 0x10],
    ['MAX_CONFIG_LEN', aoe.MAX_CONFIG_LEN, 1024],
    ['FIRMWARE_VERSION', aoe.FIRMWARE_VERSION, 0x5001],
    ['MAC_LIST_CAPACITY', aoe.MAC_LIST_CAPACITY, 128],
    ['SECTOR_SIZE', aoe.SECTOR_SIZE, 512],
    ['BROADCAST_SHELF', aoe.BROADCAST_SHELF, 0xffff],
    ['BROADCAST_SLOT', aoe.BROADCAST_SLOT, 0xff],
    ['MAX_SHELF', aoe.MAX_SHELF, 0xfffe],
    ['MAX_SLOT', aoe.MAX_SLOT, 0xfe],
  ];
  for (const [name, got, want] of rows) t.equal(got, want, name);
  t.end();
});

t.test('a full mask list reply fits a 1500-byte MTU', (t) => {
  t.ok(aoe.MASK_HEADER_LEN + aoe.MAC_LIST_CAPACITY * aoe.DIRECTIVE_LEN <= 1514);
  t.ok(aoe.RES_HEADER_LEN + aoe.MAC_LIST_CAPACITY * 6 <= 1514);
  t.ok(aoe.CFG_HEADER_LEN + aoe.MAX_CONFIG_LEN <= 1514);
  t.end();
});

t.test('sectorsForMtu: floor((MTU - 36) / 512), as vblade and Linux compute it', (t) => {
  const rows: [number, number][] = [
    [0, 0],
    [35, 0],
    [36, 0],
    [547, 0],
    [548, 1],
    [1000, 1],
    [1059, 1],
    [1060, 2],
    [1500, 2],
    [4132, 8],
    [8228, 16],
    [9000, 17],
    [9216, 17],
    [65535, 127],
    [130595, 254],
    [130596, 255],
    [1 << 20, 255],
  ];
  for (const [mtu, want] of rows) t.equal(aoe.sectorsForMtu(mtu), want, `MTU ${mtu} → ${want}`);
  t.end();
});
