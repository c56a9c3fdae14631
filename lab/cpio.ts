// A writer for the "newc" cpio format (the one the Linux initramfs unpacker reads).
//
// Each entry is a 110-byte ASCII header ("070701" and thirteen 8-digit hex
// fields), the NUL-terminated name padded to a multiple of 4 bytes counted from
// the start of the header, then the data padded to a multiple of 4. The archive
// ends with an entry named "TRAILER!!!".

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export class CpioWriter {
  private parts: Buffer[] = [];
  private ino = 1;
  private dirs = new Set<string>();

  /** A directory (parents are added first when missing). */
  dir(path: string, mode = 0o755): this {
    const clean = strip(path);
    if (clean === '' || this.dirs.has(clean)) return this;
    const parent = clean.includes('/') ? clean.slice(0, clean.lastIndexOf('/')) : '';
    if (parent) this.dir(parent);
    this.dirs.add(clean);
    this.entry(clean, S_IFDIR | mode, 2, Buffer.alloc(0), 0, 0);
    return this;
  }

  file(path: string, data: Buffer | string, mode = 0o644): this {
    const clean = strip(path);
    this.parentOf(clean);
    this.entry(clean, S_IFREG | mode, 1, typeof data === 'string' ? Buffer.from(data) : data, 0, 0);
    return this;
  }

  symlink(path: string, target: string): this {
    const clean = strip(path);
    this.parentOf(clean);
    this.entry(clean, S_IFLNK | 0o777, 1, Buffer.from(target), 0, 0);
    return this;
  }

  charDevice(path: string, major: number, minor: number, mode = 0o600): this {
    const clean = strip(path);
    this.parentOf(clean);
    this.entry(clean, S_IFCHR | mode, 1, Buffer.alloc(0), major, minor);
    return this;
  }

  /** The whole archive, trailer included. */
  finish(): Buffer {
    this.entry('TRAILER!!!', 0, 1, Buffer.alloc(0), 0, 0, 0);
    return Buffer.concat(this.parts);
  }

  private parentOf(clean: string): void {
    if (clean.includes('/')) this.dir(clean.slice(0, clean.lastIndexOf('/')));
  }

  private entry(name: string, mode: number, nlink: number, data: Buffer, rmajor: number, rminor: number, ino = this.ino++): void {
    const nameBytes = Buffer.from(name + '\0');
    const fields = [
      ino,
      mode,
      0, // uid
      0, // gid
      nlink,
      0, // mtime: fixed, so the archive is reproducible
      data.length,
      0, // devmajor
      0, // devminor
      rmajor,
      rminor,
      nameBytes.length,
      0, // check (unused by newc)
    ];
    const header = Buffer.from('070701' + fields.map((v) => v.toString(16).padStart(8, '0')).join(''), 'ascii');
    this.parts.push(header, nameBytes, pad(header.length + nameBytes.length), data, pad(data.length));
  }
}

function strip(path: string): string {
  return path.replace(/^\/+/, '').replace(/\/+$/, '');
}

function pad(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}
