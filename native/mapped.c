/* Backing files in memory (tmpfs, ramfs), mapped: an inline read or write is
 * then one memcpy between the mapping and frame memory instead of a pread or
 * pwrite, which on tmpfs costs a system call and a page-cache lookup per
 * request (a third of a 1-sector read's cost on these machines).
 *
 * A mapped access can fault where the system call would have returned an
 * error: a file truncated behind our back, or a write into a hole of a full
 * tmpfs. Both raise SIGBUS. The copy runs under a handler that jumps back out
 * of the fault, and the caller then repeats the operation with pread/pwrite,
 * which reports what really happened (a short read, ENOSPC). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "aoe_native.h"

struct mapping {
  int fd;              /* -1: free entry */
  uint8_t *base;
  size_t len;
  bool writable;
};

static struct mapping maps[MAPPED_MAX_FILES];
static size_t maps_used; /* entries 0..maps_used-1 may be in use */
static bool handler_installed;
static struct sigaction previous_bus;
/* Set only while a protected copy runs on this thread. */
static __thread sigjmp_buf *copy_escape;

static const struct mapping *mapped_find(int fd) {
  for (size_t i = 0; i < maps_used; i++)
    if (maps[i].fd == fd) return &maps[i];
  return NULL;
}

static void on_sigbus(int sig, siginfo_t *info, void *context) {
  if (copy_escape != NULL) siglongjmp(*copy_escape, 1);
  /* Not ours: behave as before we were installed. */
  if ((previous_bus.sa_flags & SA_SIGINFO) && previous_bus.sa_sigaction != NULL) {
    previous_bus.sa_sigaction(sig, info, context);
  } else if (previous_bus.sa_handler != SIG_DFL && previous_bus.sa_handler != SIG_IGN) {
    previous_bus.sa_handler(sig);
  } else {
    /* Returning re-runs the faulting access, which now gets the default action. */
    signal(SIGBUS, SIG_DFL);
  }
}

static int install_handler(void) {
  if (handler_installed) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  /* NODEFER: we leave the handler by siglongjmp without restoring the mask. */
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &previous_bus) != 0) return -errno;
  handler_installed = true;
  return 0;
}

int mapped_open(int fd, size_t len, bool writable) {
  if (fd < 0 || len == 0) return -EINVAL;
  if (mapped_find(fd) != NULL) return -EEXIST;
  int r = install_handler();
  if (r < 0) return r;
  size_t slot = 0;
  while (slot < maps_used && maps[slot].fd >= 0) slot++;
  if (slot == MAPPED_MAX_FILES) return -EMFILE;
  void *base = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return -errno;
  maps[slot] = (struct mapping){.fd = fd, .base = base, .len = len, .writable = writable};
  if (slot == maps_used) maps_used++;
  return 0;
}

int mapped_close(int fd) {
  for (size_t i = 0; i < maps_used; i++) {
    if (maps[i].fd != fd) continue;
    munmap(maps[i].base, maps[i].len);
    maps[i].fd = -1;
    while (maps_used > 0 && maps[maps_used - 1].fd < 0) maps_used--;
    return 0;
  }
  return -ENOENT;
}

/* Copies between frame memory and the mapping of `fd`. Returns the length
 * moved, or -1 when the caller must use pread/pwrite instead: no mapping, a
 * range outside it, or a fault during the copy. */
int32_t mapped_copy(int fd, bool write, uint8_t *mem, size_t length, uint64_t position) {
  const struct mapping *m = mapped_find(fd);
  if (m == NULL || (write && !m->writable) || position > m->len || length > m->len - position) return -1;
  sigjmp_buf escape;
  if (sigsetjmp(escape, 0) != 0) {
    copy_escape = NULL;
    return -1;
  }
  copy_escape = &escape;
  if (write) memcpy(m->base + position, mem, length);
  else memcpy(mem, m->base + position, length);
  copy_escape = NULL;
  return (int32_t)length;
}
