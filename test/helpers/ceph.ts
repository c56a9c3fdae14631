// Reading and writing a test cluster's images past librbd and past the
// target (rados get, rbd import-diff). The cluster itself is lab/ceph.ts,
// shared with the bench.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeRun } from '../../lab/process';
import type { CephCluster } from '../../lab/ceph';

export { type CephCluster, type CephOptions, rbdBench, requireCeph, startCeph } from '../../lab/ceph';

/** Where an image's data objects are: `rbd info` of POOL/IMAGE or POOL/NAMESPACE/IMAGE. */
interface ImageLayout {
  pool: string;
  namespace: string;
  size: number;
  prefix: string;
  objectSize: number;
}

async function imageLayout(cluster: CephCluster, spec: string): Promise<ImageLayout> {
  const parts = spec.split('/');
  const info = JSON.parse((await cluster.rbd(['info', '--format', 'json', spec])).stdout) as {
    size: number;
    block_name_prefix: string;
    object_size: number;
  };
  return {
    pool: parts[0],
    namespace: parts.length === 3 ? parts[1] : '',
    size: info.size,
    prefix: info.block_name_prefix,
    objectSize: info.object_size,
  };
}

/** The image's size in bytes, as `rbd info` reports it. */
export async function imageSize(cluster: CephCluster, spec: string): Promise<number> {
  return (await imageLayout(cluster, spec)).size;
}

/**
 * Reads `length` bytes at `offset` of an image from its RADOS objects
 * (`rados get`), past librbd and past the target: what the OSD holds. An
 * object that does not exist reads as zeros, as it does through rbd.
 */
export async function readImage(cluster: CephCluster, spec: string, offset: number, length: number): Promise<Buffer> {
  const l = await imageLayout(cluster, spec);
  const out = Buffer.alloc(length);
  const file = join(cluster.dir, `read-${process.pid}.obj`);
  for (let pos = offset; pos < offset + length;) {
    const index = Math.floor(pos / l.objectSize);
    const within = pos - index * l.objectSize;
    const n = Math.min(l.objectSize - within, offset + length - pos);
    const name = `${l.prefix}.${index.toString(16).padStart(16, '0')}`;
    const r = await cluster.ns.run('rados', ['-c', cluster.conf, '-p', l.pool, '--namespace', l.namespace, 'get', name, file]);
    // An object ends at its last written byte: what lies past it reads as zeros.
    const obj = r.code === 0 ? readFileSync(file) : undefined;
    if (obj !== undefined && within < obj.length) obj.copy(out, pos - offset, within, Math.min(within + n, obj.length));
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) throw new Error(describeRun(r));
    pos += n;
  }
  return out;
}

/**
 * Writes `data` at `offset` of an image past the target: an image diff of
 * one extent (`rbd import-diff`, format v1: "rbd diff v1\n", then records
 * 's' size, 'w' offset length data, 'e').
 */
export async function writeImage(cluster: CephCluster, spec: string, offset: number, data: Uint8Array): Promise<void> {
  const size = await imageSize(cluster, spec);
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  const diff = Buffer.concat([
    Buffer.from('rbd diff v1\n'),
    Buffer.from('s'),
    u64(size),
    Buffer.from('w'),
    u64(offset),
    u64(data.length),
    data,
    Buffer.from('e'),
  ]);
  const file = join(cluster.dir, `write-${process.pid}.diff`);
  writeFileSync(file, diff);
  await cluster.rbd(['import-diff', '--no-progress', file, spec]);
}
