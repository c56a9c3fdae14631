/* Backing files in memory (tmpfs, ramfs), mapped: an inline read or write is
 * then one memcpy between the mapping and frame memory instead of a pread or
 * pwrite, which on tmpfs costs a system call and a page-cache lookup per
 * request (a third of a 1-sector read's cost on these machines).
 *
 * A mapped access can fault where the system call would have returned an
 * error: a file truncated behind our back, or a write into a hole of a full
 * tmpfs. Both raise SIGBUS. The copy runs under a handler that jumps back out
 * of the fault, and the caller then repeats the operation with pread/pwrite,
 * which reports what really happened (a short read, ENOSPC).
 *
 * The first access to each page of a new mapping is expensive where the
 * hypervisor shadows page tables (about 30 us a page written on these VMs,
 * MADV_POPULATE_* does not help: the cost is the CPU's first touch), so a
 * mapping would make the first pass over the file slower than pread/pwrite.
 * A low-priority thread therefore touches every page once, right after the
 * mapping is made, while requests are already served (docs/benchmarks.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aoe_native.h"

struct warm_job {
  const uint8_t *base;
  size_t len;
  volatile bool stop;  /* set by mapped_close before it joins */
};

struct mapping {
  int fd;              /* -1: free entry */
  uint8_t *base;
  size_t len;
  bool writable;
  bool warming;        /* `warmer` runs (or ran) and must be joined */
  pthread_t warmer;
  struct warm_job *job;
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

/* Reads one byte of every page that holds data (mincore: a hole would be
 * allocated by the read), stopping early when asked or when the file turns
 * out shorter than the mapping (SIGBUS, caught as for a copy). */
static void *warm_pages(void *arg) {
  struct warm_job *job = arg;
  struct sched_param idle = {.sched_priority = 0};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle); /* only on a CPU nobody else wants */
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  enum { CHUNK_PAGES = 256 };
  unsigned char resident[CHUNK_PAGES];
  sigjmp_buf escape;
  if (sigsetjmp(escape, 0) != 0) {
    copy_escape = NULL;
    return NULL;
  }
  copy_escape = &escape;
  volatile uint8_t sink = 0;
  for (size_t off = 0; off < job->len && !job->stop; off += CHUNK_PAGES * page) {
    size_t span = job->len - off < CHUNK_PAGES * page ? job->len - off : CHUNK_PAGES * page;
    if (mincore((void *)(job->base + off), span, resident) != 0) break;
    for (size_t i = 0; i * page < span && !job->stop; i++)
      if (resident[i] & 1) sink ^= job->base[off + i * page];
  }
  (void)sink;
  copy_escape = NULL;
  return NULL;
}

static void warm_stop(struct mapping *m) {
  if (!m->warming) return;
  m->job->stop = true;
  pthread_join(m->warmer, NULL);
  free(m->job);
  m->job = NULL;
  m->warming = false;
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
  struct warm_job *job = calloc(1, sizeof *job);
  if (job != NULL) {
    *job = (struct warm_job){.base = base, .len = len, .stop = false};
    /* No warm-up when no thread can be made: the first pass is only slower. */
    if (pthread_create(&maps[slot].warmer, NULL, warm_pages, job) == 0) {
      maps[slot].job = job;
      maps[slot].warming = true;
    } else {
      free(job);
    }
  }
  return 0;
}

int mapped_close(int fd) {
  for (size_t i = 0; i < maps_used; i++) {
    if (maps[i].fd != fd) continue;
    warm_stop(&maps[i]);
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
