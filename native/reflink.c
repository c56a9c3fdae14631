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

int reflink_clone_range(int src_fd, uint64_t src_off, uint64_t len, int dst_fd, uint64_t dst_off, struct aoe_error *err) {
  struct file_clone_range r = {.src_fd = src_fd, .src_offset = src_off, .src_length = len, .dest_offset = dst_off};
  if (ioctl(dst_fd, FICLONERANGE, &r) == 0) return 0;
  int e = errno;
  return aoe_fail(err, e, "cannot clone %llu bytes at %llu of fd %d into fd %d at %llu (FICLONERANGE): %s",
                  (unsigned long long)len, (unsigned long long)src_off, src_fd, dst_fd, (unsigned long long)dst_off,
                  strerror(e));
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

/* Calls `each` for every extent of fd's file (FIEMAP) in file order; with
 * `sync`, dirty data is written back first (FIEMAP_FLAG_SYNC), else extents
 * not written back yet show as they are on disk. 0, or -errno (err set). */
static int each_extent(int fd, bool sync, void (*each)(const struct fiemap_extent *x, void *arg), void *arg,
                       struct aoe_error *err) {
  enum { BATCH = 256 };
  struct fiemap *map = calloc(1, sizeof *map + BATCH * sizeof(struct fiemap_extent));
  if (map == NULL) return aoe_fail(err, ENOMEM, "out of memory");
  uint64_t start = 0;
  for (;;) {
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = sync ? FIEMAP_FLAG_SYNC : 0;
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
      each(x, arg);
      if (x->fe_flags & FIEMAP_EXTENT_LAST) last = true;
      start = x->fe_logical + x->fe_length;
    }
    if (last) break;
  }
  free(map);
  return 0;
}

static void add_if_own(const struct fiemap_extent *x, void *arg) {
  if (!(x->fe_flags & FIEMAP_EXTENT_SHARED)) *(int64_t *)arg += (int64_t)x->fe_length;
}

/* Bytes of the extents of fd's file that no other file shares (FIEMAP): what
 * a clone has of its own, written since it was made; with `sync`, dirty
 * data is written back first. -errno (err set). */
int64_t reflink_own_bytes(int fd, bool sync, struct aoe_error *err) {
  int64_t own = 0;
  int rc = each_extent(fd, sync, add_if_own, &own, err);
  return rc < 0 ? rc : own;
}

struct extent_list {
  double *v;
  size_t n, cap;
  bool oom;
};

static void append_extent(const struct fiemap_extent *x, void *arg) {
  struct extent_list *l = arg;
  if (l->oom) return;
  if (l->n + 4 > l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    double *v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) {
      l->oom = true;
      return;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (double)x->fe_logical;
  l->v[l->n++] = (double)x->fe_physical;
  l->v[l->n++] = (double)x->fe_length;
  l->v[l->n++] = (double)x->fe_flags;
}

/* The extents of fd's file as (logical, physical, length, flags) quadruples
 * in *out (malloc'd; the caller frees), their count ×4 in *n. 0, or -errno. */
int reflink_extents(int fd, double **out, size_t *n, struct aoe_error *err) {
  struct extent_list l = {0};
  int rc = each_extent(fd, true, append_extent, &l, err);
  if (rc == 0 && l.oom) rc = aoe_fail(err, ENOMEM, "out of memory listing the extents of fd %d", fd);
  if (rc < 0) {
    free(l.v);
    return rc;
  }
  *out = l.v;
  *n = l.n;
  return 0;
}

/* A read lease on the image (F_SETLEASE): the kernel signals this process
 * (SIGIO) before anyone opens the file for writing or truncates it, and
 * holds them back until the lease is given up. `type` is F_RDLCK or
 * F_UNLCK. 0, or -errno (err set): EAGAIN when it is open for writing now. */
int image_lease(int fd, int type, struct aoe_error *err) {
  if (fcntl(fd, F_SETLEASE, type) == 0) return 0;
  int e = errno;
  return aoe_fail(err, e, "cannot %s a read lease on fd %d (F_SETLEASE): %s", type == F_UNLCK ? "give up" : "take", fd,
                  strerror(e));
}

/* The lease fd holds as the kernel has it: F_RDLCK, or F_UNLCK (none, or
 * one being broken because a writer waits). -errno (err set). */
int image_lease_state(int fd, struct aoe_error *err) {
  int r = fcntl(fd, F_GETLEASE);
  if (r >= 0) return r;
  int e = errno;
  return aoe_fail(err, e, "cannot read the lease on fd %d (F_GETLEASE): %s", fd, strerror(e));
}
