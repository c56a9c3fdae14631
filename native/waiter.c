/* The frame loop's wait (docs/native-abi.md, "FrameWaiter"): one epoll set
 * over the packet sockets, the io ring's eventfd and libuv's own backend
 * descriptor. The engine blocks here between batches, in the kernel like
 * vblade's read(), instead of going back through the event loop for every
 * frame, and still hands control back the moment libuv has work: its
 * descriptor turns readable (a control request, a signal, a finished save)
 * or its next timer is due (the caller asks libuv when that is, once per
 * stay in the loop, and bounds each wait by it). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "aoe_native.h"

/* epoll data: the caller's tag in the low 32 bits, the descriptor above it,
 * and whether it is an eventfd to read (acknowledge) when reported. */
#define DATA_EVENTFD (1ULL << 63)
#define LOOP_TAG 0xffffffffu

static inline uint64_t pack(int fd, uint32_t tag, bool eventfd) {
  return (eventfd ? DATA_EVENTFD : 0) | ((uint64_t)(uint32_t)fd << 32) | tag;
}

int waiter_open(struct frame_waiter *w, int loop_fd, struct aoe_error *err) {
  w->loop_fd = loop_fd;
  w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (w->epoll_fd < 0) return aoe_fail(err, errno, "epoll_create1 failed: %s", strerror(errno));
  /* Level-triggered: while libuv has work, every wait says so. */
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = pack(loop_fd, LOOP_TAG, false)};
  if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, loop_fd, &ev) != 0) {
    int e = errno;
    close(w->epoll_fd);
    w->epoll_fd = -1;
    return aoe_fail(err, e, "epoll_ctl on the event loop's descriptor failed: %s", strerror(e));
  }
  return 0;
}

int waiter_watch(struct frame_waiter *w, int fd, uint32_t tag, bool eventfd) {
  /* Sockets edge-triggered: the ring itself says what is left to drain. An
   * eventfd level-triggered, and read when reported. */
  struct epoll_event ev = {.events = eventfd ? EPOLLIN : EPOLLIN | EPOLLET, .data.u64 = pack(fd, tag, eventfd)};
  if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  if (errno == EEXIST && epoll_ctl(w->epoll_fd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  return -errno;
}

int waiter_unwatch(struct frame_waiter *w, int fd) {
  if (epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, fd, NULL) == 0 || errno == ENOENT || errno == EBADF) return 0;
  return -errno;
}

int waiter_wait(struct frame_waiter *w, int32_t *out, uint32_t max, int timeout_ms, bool *loop_due) {
  struct epoll_event evs[WAITER_MAX_EVENTS + 1];
  if (max > WAITER_MAX_EVENTS) max = WAITER_MAX_EVENTS;
  *loop_due = false;
  int n = epoll_wait(w->epoll_fd, evs, (int)max + 1, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  uint32_t k = 0;
  bool loop_seen = false, acked = false;
  for (int i = 0; i < n; i++) {
    uint64_t d = evs[i].data.u64;
    uint32_t tag = (uint32_t)d;
    if (tag == LOOP_TAG) {
      loop_seen = true;
      continue;
    }
    if (d & DATA_EVENTFD) {
      uint64_t value;
      if (read((int)(uint32_t)(d >> 32), &value, sizeof value) < 0) { /* EAGAIN: already read */ }
      acked = true;
    }
    if (k < max) {
      out[2 * k] = (int32_t)tag;
      out[2 * k + 1] = (int32_t)evs[i].events;
      k++;
    }
  }
  if (loop_seen && acked) {
    /* libuv watches the io ring's eventfd too: it may have looked readable
     * only until the read above. */
    struct pollfd p = {.fd = w->loop_fd, .events = POLLIN};
    loop_seen = poll(&p, 1, 0) > 0;
  }
  *loop_due = loop_seen;
  return (int)k;
}

void waiter_close(struct frame_waiter *w) {
  if (w->epoll_fd >= 0) close(w->epoll_fd);
  w->epoll_fd = -1;
}
