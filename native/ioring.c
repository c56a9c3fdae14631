/* Block I/O for the exports: io_uring through raw system calls (no liburing),
 * or a synchronous fallback when the kernel refuses io_uring. Both signal
 * completions through one eventfd that binding.c watches with libuv. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aoe_native.h"
#include "remote.h"

/* user_data = (buffer id + 1) << 32 | tag; buffer part 0 = no buffer. */
#define USER_DATA(buffer_slot, tag) (((uint64_t)(buffer_slot) << 32) | (uint32_t)(tag))
#define NO_BUFFER 0u
/* A punched write uses no buffer: its upper half is PUNCHED | length instead,
 * so that its completion reports the length a write would have. */
#define PUNCHED 0x80000000u
#define PUNCH_MODE (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

static int sys_io_uring_setup(unsigned entries, struct io_uring_params *p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_io_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args) {
  return (int)syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
}

static void uring_unmap(struct io_queue *q) {
  if (q->sqe_map) munmap(q->sqe_map, q->sqe_map_len);
  if (q->ring_map) munmap(q->ring_map, q->ring_map_len);
  if (q->ring_fd >= 0) close(q->ring_fd);
  q->sqe_map = q->ring_map = NULL;
  q->ring_fd = -1;
}

/* 0 on success; -errno when io_uring is unavailable (caller falls back). */
static int uring_setup(struct io_queue *q) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  /* SUBMIT_ALL: one bad SQE must not strand the ones after it (5.18+).
   * COOP_TASKRUN: completions wake us without an inter-processor interrupt;
   * a thread asleep in epoll is still woken (5.19+). */
  p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  int fd = sys_io_uring_setup(q->depth, &p);
  if (fd < 0 && errno == EINVAL) {
    memset(&p, 0, sizeof p);
    fd = sys_io_uring_setup(q->depth, &p);
  }
  if (fd < 0) return -errno;
  q->ring_fd = fd;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) { /* pre-5.4 kernels: not worth a second path */
    uring_unmap(q);
    return -ENOSYS;
  }

  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  q->ring_map_len = sq_len > cq_len ? sq_len : cq_len;
  q->ring_map = mmap(NULL, q->ring_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (q->ring_map == MAP_FAILED) {
    int e = errno;
    q->ring_map = NULL;
    uring_unmap(q);
    return -e;
  }
  q->sqe_map_len = p.sq_entries * sizeof(struct io_uring_sqe);
  q->sqe_map = mmap(NULL, q->sqe_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (q->sqe_map == MAP_FAILED) {
    int e = errno;
    q->sqe_map = NULL;
    uring_unmap(q);
    return -e;
  }

  uint8_t *ring = q->ring_map;
  q->sq_head = (uint32_t *)(ring + p.sq_off.head);
  q->sq_tail = (uint32_t *)(ring + p.sq_off.tail);
  q->sq_mask = *(uint32_t *)(ring + p.sq_off.ring_mask);
  q->sq_array = (uint32_t *)(ring + p.sq_off.array);
  q->cq_head = (uint32_t *)(ring + p.cq_off.head);
  q->cq_tail = (uint32_t *)(ring + p.cq_off.tail);
  q->cq_mask = *(uint32_t *)(ring + p.cq_off.ring_mask);
  q->cqes = ring + p.cq_off.cqes;
  q->sqes = q->sqe_map;
  /* SQEs are filled in ring order, so the indirection array is the identity. */
  for (uint32_t i = 0; i < p.sq_entries; i++) q->sq_array[i] = i;
  q->sq_local_tail = *q->sq_tail;

  /* Plain EVENTFD, not EVENTFD_ASYNC: the latter signals only completions
   * posted by io-wq workers, and never those of O_DIRECT or cold-cache reads,
   * which complete through task work in our own thread (measured on 6.18):
   * the loop would sleep on them. The extra wake-up for an inline completion
   * is avoided in io_queue_reap instead. */
  if (sys_io_uring_register(fd, IORING_REGISTER_EVENTFD, &q->event_fd, 1) != 0) {
    int e = errno;
    uring_unmap(q);
    return -e;
  }
  return 0;
}

int io_queue_open(struct io_queue *q, uint32_t depth, struct aoe_error *err) {
  memset(q, 0, sizeof *q);
  q->ring_fd = -1;
  q->event_fd = -1;
  if (depth == 0 || depth > IORING_MAX_DEPTH)
    return aoe_fail(err, EINVAL, "io ring depth %u is outside 1..%u", depth, IORING_MAX_DEPTH);
  q->depth = depth;
  q->local = calloc(depth, sizeof *q->local);
  if (q->local == NULL) return aoe_fail(err, ENOMEM, "out of memory for %u completions", depth);
  if (remote_queue_open(q) < 0) {
    free(q->local);
    return aoe_fail(err, ENOMEM, "out of memory for %u remote operations", depth);
  }
  q->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->event_fd < 0) {
    int e = errno;
    remote_queue_close(q);
    free(q->local);
    return aoe_fail(err, e, "eventfd failed: %s", strerror(e));
  }
  const char *forced = getenv("AOE_IORING");
  bool want_uring = !(forced && strcmp(forced, "sync") == 0);
  /* Any refusal (EPERM from seccomp or io_uring_disabled, ENOSYS, ENOMEM)
   * means the synchronous fallback; the caller sees it in `kind`. */
  q->uring = want_uring && uring_setup(q) == 0;
  return 0;
}

static inline bool is_whole(double v, double max) {
  return v >= 0 && v <= max && v == (double)(uint64_t)v;
}

/* Whether `len` bytes at `mem` are all zero: a word at a time, the frame's
 * data is not word-aligned (memcpy makes the unaligned loads legal). */
static bool all_zero(const uint8_t *mem, size_t len) {
  size_t i = 0;
  for (; i < len && ((uintptr_t)(mem + i) & 7) != 0; i++)
    if (mem[i] != 0) return false;
  for (; i + 32 <= len; i += 32) {
    uint64_t a, b, c, d;
    memcpy(&a, mem + i, 8);
    memcpy(&b, mem + i + 8, 8);
    memcpy(&c, mem + i + 16, 8);
    memcpy(&d, mem + i + 24, 8);
    if ((a | b | c | d) != 0) return false;
  }
  for (; i < len; i++)
    if (mem[i] != 0) return false;
  return true;
}

static void push_local(struct io_queue *q, uint64_t user_data, int32_t result) {
  uint32_t idx = (q->local_head + q->local_count) % q->depth;
  q->local[idx].user_data = user_data;
  q->local[idx].result = result;
  q->local_count++;
}

static int32_t run_punch(const struct io_op *op) {
  int r;
  do r = fallocate((int)op->fd, PUNCH_MODE, (off_t)op->position, (off_t)op->length);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

static int32_t run_sync(const struct io_op *op, uint8_t *mem) {
  int fd = (int)op->fd;
  int kind = (int)op->kind & ~(IO_OP_INLINE | IO_OP_DETECT_ZEROES | IO_OP_REMOTE);
  if (kind != IO_OP_DATASYNC) {
    int32_t copied = mapped_copy(fd, kind == IO_OP_WRITE, mem, (size_t)op->length, (uint64_t)op->position);
    if (copied >= 0) return copied;
  }
  ssize_t r;
  switch (kind) {
    case IO_OP_READ:
      do r = pread(fd, mem, (size_t)op->length, (off_t)op->position);
      while (r < 0 && errno == EINTR);
      break;
    case IO_OP_WRITE:
      do r = pwrite(fd, mem, (size_t)op->length, (off_t)op->position);
      while (r < 0 && errno == EINTR);
      break;
    default:
      r = fdatasync(fd);
      break;
  }
  return r < 0 ? -errno : (int32_t)r;
}

static void fill_sqe(struct io_queue *q, const struct io_op *op, uint8_t *mem, uint64_t user_data) {
  uint32_t idx = q->sq_local_tail & q->sq_mask;
  struct io_uring_sqe *sqe = (struct io_uring_sqe *)q->sqes + idx;
  memset(sqe, 0, sizeof *sqe);
  sqe->fd = (int)op->fd;
  sqe->user_data = user_data;
  if ((uint32_t)(user_data >> 32) & PUNCHED) {
    sqe->opcode = IORING_OP_FALLOCATE;
    sqe->off = (uint64_t)op->position;
    sqe->addr = (uint64_t)op->length; /* fallocate's length goes in addr, its mode in len */
    sqe->len = PUNCH_MODE;
    q->sq_local_tail++;
    return;
  }
  switch ((int)op->kind & ~(IO_OP_INLINE | IO_OP_DETECT_ZEROES)) {
    case IO_OP_READ:
    case IO_OP_WRITE:
      sqe->opcode = ((int)op->kind & ~IO_OP_INLINE) == IO_OP_READ ? IORING_OP_READ : IORING_OP_WRITE;
      sqe->addr = (uint64_t)(uintptr_t)mem;
      sqe->len = (uint32_t)op->length;
      sqe->off = (uint64_t)op->position;
      break;
    default:
      sqe->opcode = IORING_OP_FSYNC;
      sqe->fsync_flags = IORING_FSYNC_DATASYNC;
      break;
  }
  q->sq_local_tail++;
}

/* Hands every SQE not yet consumed by the kernel to io_uring_enter. */
static void uring_flush(struct io_queue *q) {
  __atomic_store_n(q->sq_tail, q->sq_local_tail, __ATOMIC_RELEASE);
  for (;;) {
    uint32_t pending = q->sq_local_tail - __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE);
    if (pending == 0) return;
    int r = sys_io_uring_enter(q->ring_fd, pending, 0, 0);
    /* EAGAIN/EBUSY: kernel short of memory or CQ backlog; the SQEs stay
     * queued and the next submit() or reap() hands them over again. */
    if (r < 0 && errno != EINTR) return;
    if (r == 0) return;
  }
}

int io_queue_submit(struct io_queue *q, const struct io_op *ops, const uint32_t *tags, uint32_t count) {
  uint32_t room = q->depth - q->in_flight;
  uint32_t accepted = count < room ? count : room;
  bool local_done = false;
  for (uint32_t i = 0; i < accepted; i++) {
    const struct io_op *op = &ops[i];
    uint32_t tag = tags[i];
    q->in_flight++;
    bool inline_op = is_whole(op->kind, 255) && ((int)op->kind & IO_OP_INLINE);
    bool detect_zeroes = is_whole(op->kind, 255) && ((int)op->kind & IO_OP_DETECT_ZEROES);
    /* A remote store's op: its fd is a handle; no hole punching, no inline run. */
    bool remote = is_whole(op->kind, 255) && ((int)op->kind & IO_OP_REMOTE);
    if (remote) inline_op = detect_zeroes = false;
    double kind =
        is_whole(op->kind, 255) ? (double)((int)op->kind & ~(IO_OP_INLINE | IO_OP_DETECT_ZEROES | IO_OP_REMOTE)) : -1;
    bool ok = (kind == IO_OP_READ || kind == IO_OP_WRITE || kind == IO_OP_DATASYNC) &&
              is_whole(op->fd, INT32_MAX);
    uint8_t *mem = NULL;
    uint32_t buffer_slot = NO_BUFFER;
    if (ok && kind != IO_OP_DATASYNC) {
      /* Bounds are checked here so the kernel never sees a wild pointer. */
      ok = is_whole(op->buffer_id, IORING_MAX_BUFFERS - 1) && is_whole(op->offset, (double)SIZE_MAX) &&
           is_whole(op->length, INT32_MAX) && is_whole(op->position, (double)INT64_MAX);
      if (ok) {
        struct io_buffer *buf = &q->buffers[(uint32_t)op->buffer_id];
        ok = buf->registered && op->offset + op->length <= (double)buf->len;
        if (ok) mem = buf->base + (size_t)op->offset;
        if (ok && detect_zeroes && kind == IO_OP_WRITE && all_zero(mem, (size_t)op->length)) {
          buffer_slot = PUNCHED | (uint32_t)op->length; /* the punch reads no memory: no buffer held */
        } else if (ok) {
          detect_zeroes = false;
          buffer_slot = (uint32_t)op->buffer_id + 1;
          buf->in_flight++;
        }
      }
    }
    bool punch = ok && detect_zeroes && (buffer_slot & PUNCHED);
    uint64_t user_data = USER_DATA(buffer_slot, tag);
    if (!ok) {
      push_local(q, user_data, -EINVAL);
      local_done = true;
    } else if (remote) {
      /* The buffer's in_flight, held above, is dropped by finish() at reap. */
      int r = remote_queue_start(q, (uint32_t)op->fd, (int)kind, mem, (uint32_t)op->length, (uint64_t)op->position,
                                 user_data);
      if (r < 0) {
        push_local(q, user_data, r);
        local_done = true;
      }
    } else if (punch && (inline_op || !q->uring)) {
      push_local(q, user_data, run_punch(op));
      local_done = local_done || !inline_op;
    } else if (inline_op) {
      push_local(q, user_data, run_sync(op, mem));
    } else if (q->uring) {
      fill_sqe(q, op, mem, user_data);
    } else {
      push_local(q, user_data, run_sync(op, mem));
      local_done = true;
    }
  }
  if (q->uring) uring_flush(q);
  if (local_done) {
    uint64_t one = 1;
    /* Wakes the same poll as io_uring completions do. */
    if (write(q->event_fd, &one, sizeof one) < 0) { /* counter full: already readable */ }
    q->self_signalled = true;
  }
  return (int)accepted;
}

static void finish(struct io_queue *q, uint64_t user_data, int32_t result, int32_t *out,
                   void (*on_buffer_idle)(struct io_buffer *, void *), void *ctx) {
  out[REAP_TAG] = (int32_t)(uint32_t)user_data;
  out[REAP_RESULT] = result;
  q->in_flight--;
  uint32_t buffer_slot = (uint32_t)(user_data >> 32);
  if (buffer_slot & PUNCHED) {
    if (result == 0) out[REAP_RESULT] = (int32_t)(buffer_slot & ~PUNCHED); /* the write's length, as a write reports */
    return;
  }
  if (buffer_slot == NO_BUFFER) return;
  struct io_buffer *buf = &q->buffers[buffer_slot - 1];
  buf->in_flight--;
  if (!buf->registered && buf->in_flight == 0 && buf->owner && on_buffer_idle) on_buffer_idle(buf, ctx);
}

static uint32_t reap_walk(struct io_queue *q, int32_t *out, uint32_t max,
                          void (*on_buffer_idle)(struct io_buffer *, void *), void *ctx);
static void signal_if_left(struct io_queue *q);

/* True when reap() has something to return (plain memory reads). */
static bool has_completions(struct io_queue *q) {
  return q->local_count > 0 || remote_queue_has_done(q) ||
         (q->uring && *q->cq_head != __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE));
}

uint32_t io_queue_reap(struct io_queue *q, int32_t *out, uint32_t max,
                       void (*on_buffer_idle)(struct io_buffer *, void *), void *ctx) {
  /* SQEs left queued by an EAGAIN from io_uring_enter go to the kernel now. */
  if (q->uring && q->sq_local_tail != __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE)) uring_flush(q);
  if (max == 0 || !has_completions(q)) return 0; /* no system call when idle: callers spin on this */
  /* Clear the eventfd before walking, so the wake-up for what we take now
   * does not come later for nothing; anything posted after this read
   * signals again. */
  if (q->self_signalled || remote_queue_has_done(q) ||
      (q->uring && *q->cq_head != __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE))) {
    q->self_signalled = false;
    io_queue_ack_event(q);
  }
  uint32_t n = reap_walk(q, out, max, on_buffer_idle, ctx);
  signal_if_left(q);
  return n;
}

static uint32_t reap_walk(struct io_queue *q, int32_t *out, uint32_t max,
                          void (*on_buffer_idle)(struct io_buffer *, void *), void *ctx) {
  uint32_t n = 0;
  while (n < max && q->local_count > 0) {
    struct io_completion c = q->local[q->local_head];
    q->local_head = (q->local_head + 1) % q->depth;
    q->local_count--;
    finish(q, c.user_data, c.result, out + REAP_STRIDE * n, on_buffer_idle, ctx);
    n++;
  }
  while (n < max && remote_queue_has_done(q)) {
    uint64_t user_data[64];
    int32_t result[64];
    uint32_t want = max - n < 64 ? max - n : 64;
    uint32_t got = remote_queue_take(q, user_data, result, want);
    for (uint32_t i = 0; i < got; i++, n++) finish(q, user_data[i], result[i], out + REAP_STRIDE * n, on_buffer_idle, ctx);
    if (got < want) break;
  }
  if (!q->uring) return n;
  uint32_t head = *q->cq_head;
  uint32_t tail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
  while (n < max && head != tail) {
    const struct io_uring_cqe *cqe = (const struct io_uring_cqe *)q->cqes + (head & q->cq_mask);
    finish(q, cqe->user_data, cqe->res, out + REAP_STRIDE * n, on_buffer_idle, ctx);
    head++;
    n++;
  }
  /* Release: we are done reading those CQEs before the kernel reuses them. */
  __atomic_store_n(q->cq_head, head, __ATOMIC_RELEASE);
  return n;
}

/* After a reap limited by `max`: keep a wake-up pending for what is left. */
static void signal_if_left(struct io_queue *q) {
  if (!has_completions(q)) return;
  uint64_t one = 1;
  if (write(q->event_fd, &one, sizeof one) < 0) { /* counter full: already readable */ }
  q->self_signalled = true;
}

void io_queue_ack_event(struct io_queue *q) {
  uint64_t value;
  if (read(q->event_fd, &value, sizeof value) < 0) { /* EAGAIN: nothing was signalled */ }
}

void io_queue_close(struct io_queue *q) {
  if (q->uring && q->ring_fd >= 0) {
    /* The kernel may still be writing into JavaScript memory; wait for every
     * operation so no buffer is freed under it. Files and block devices
     * complete; nothing here can block forever on a healthy disk. */
    uint32_t in_kernel = q->in_flight - q->local_count - q->remote_in_flight;
    __atomic_store_n(q->sq_tail, q->sq_local_tail, __ATOMIC_RELEASE);
    while (in_kernel > 0) {
      uint32_t head = *q->cq_head;
      uint32_t tail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
      if (head == tail) {
        /* Submits whatever is still queued (EAGAIN earlier) and waits for one. */
        uint32_t pending = q->sq_local_tail - __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE);
        if (sys_io_uring_enter(q->ring_fd, pending, 1, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR &&
            errno != EAGAIN && errno != EBUSY)
          break;
        continue;
      }
      uint32_t done = tail - head;
      in_kernel = done > in_kernel ? 0 : in_kernel - done;
      __atomic_store_n(q->cq_head, tail, __ATOMIC_RELEASE);
    }
  }
  uring_unmap(q);
  /* Remote ops write into the same memory from their backends' threads. */
  remote_queue_close(q);
  if (q->event_fd >= 0) close(q->event_fd);
  q->event_fd = -1;
  free(q->local);
  q->local = NULL;
  q->in_flight = 0;
  q->local_count = 0;
}
