/* Copy-on-write clones of whole files (FICLONE), for per-initiator views and
 * snapshots: a clone shares every block with its source until either is
 * written, so it is made in a time that depends on the file's extent count,
 * not its size. XFS (reflink=1) and btrfs support it; ext4, tmpfs and XFS
 * made without reflinks refuse with EOPNOTSUPP (or EINVAL, EXDEV, ENOTTY). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "aoe_native.h"

int reflink_clone(int src_fd, int dst_fd, struct aoe_error *err) {
  if (ioctl(dst_fd, FICLONE, src_fd) == 0) return 0;
  int e = errno;
  return aoe_fail(err, e, "cannot clone fd %d into fd %d (FICLONE): %s", src_fd, dst_fd, strerror(e));
}

static bool refused_by_file_system(int e) {
  return e == EOPNOTSUPP || e == EINVAL || e == EXDEV || e == ENOTTY || e == EISDIR;
}

/* Clones one written block between two unnamed files in `dir`: the only
 * certain answer (XFS says yes or no per file system, not per type), and it
 * leaves nothing behind. 1: supported; 0: refused; -errno (err set): the
 * directory itself is the problem. */
int reflink_probe(const char *dir, struct aoe_error *err) {
  int src = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (src < 0) {
    int e = errno;
    if (refused_by_file_system(e)) return 0;
    return aoe_fail(err, e, "cannot create a file in %s: %s", dir, strerror(e));
  }
  int dst = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (dst < 0) {
    int e = errno;
    close(src);
    return aoe_fail(err, e, "cannot create a file in %s: %s", dir, strerror(e));
  }
  static const char block[4096] = {1};
  int result;
  if (pwrite(src, block, sizeof block, 0) != (ssize_t)sizeof block) {
    int e = errno ? errno : ENOSPC;
    result = aoe_fail(err, e, "cannot write a test block in %s: %s", dir, strerror(e));
  } else if (ioctl(dst, FICLONE, src) == 0) {
    result = 1;
  } else {
    int e = errno;
    result = refused_by_file_system(e) ? 0 : aoe_fail(err, e, "cannot clone a test file in %s: %s", dir, strerror(e));
  }
  close(dst);
  close(src);
  return result;
}

/* Bytes of the extents of fd's file that no other file shares (FIEMAP): what
 * a clone has of its own, written since it was made. -errno (err set). */
int64_t reflink_own_bytes(int fd, struct aoe_error *err) {
  enum { BATCH = 256 };
  struct fiemap *map = calloc(1, sizeof *map + BATCH * sizeof(struct fiemap_extent));
  if (map == NULL) return aoe_fail(err, ENOMEM, "out of memory");
  int64_t own = 0;
  uint64_t start = 0;
  for (;;) {
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = BATCH;
    map->fm_mapped_extents = 0;
    if (ioctl(fd, FS_IOC_FIEMAP, map) < 0) {
      int e = errno;
      free(map);
      return aoe_fail(err, e, "cannot list the extents of fd %d (FIEMAP): %s", fd, strerror(e));
    }
    if (map->fm_mapped_extents == 0) break;
    bool last = false;
    for (uint32_t i = 0; i < map->fm_mapped_extents; i++) {
      const struct fiemap_extent *x = &map->fm_extents[i];
      if (!(x->fe_flags & FIEMAP_EXTENT_SHARED)) own += (int64_t)x->fe_length;
      if (x->fe_flags & FIEMAP_EXTENT_LAST) last = true;
      start = x->fe_logical + x->fe_length;
    }
    if (last) break;
  }
  free(map);
  return own;
}
