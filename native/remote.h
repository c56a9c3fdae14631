/* Stores served through a client library (librbd, libnbd) instead of a file
 * descriptor. The io ring hands them the same operations it gives the kernel
 * (read, write, datasync), with the frame memory already bounds-checked, and
 * they complete them from their own threads through remote_done(), which
 * queues the completion where io_queue_reap() finds it and wakes the same
 * eventfd. JavaScript names such a store by its handle in the op's fd field
 * and sets IO_OP_REMOTE in its kind.
 *
 * Each backend lives in its own file (rbd.c, nbd.c), loads its library with
 * dlopen (a host without Ceph or libnbd still serves files), and registers
 * its open stores here. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#define IO_OP_REMOTE 0x40
#define REMOTE_MAX_STORES 4096

struct io_queue;

/* One started operation. The backend passes it back to remote_done() exactly
 * once, from any thread; the memory stays valid until then. */
struct remote_op {
  struct io_queue *queue;
  uint64_t user_data;
  int32_t result;     /* set by remote_done */
  uint32_t next;      /* the queue's free list, then its completion list; not the backend's */
};

struct remote_backend {
  const char *name; /* "rbd", "nbd": in error messages */
  /* Each starts one operation and returns 0 (remote_done follows, possibly
   * before the return) or -errno when it cannot start (no remote_done).
   * `flush` is the datasync: everything acknowledged before is durable. */
  int (*read)(void *store, uint8_t *mem, uint32_t len, uint64_t pos, struct remote_op *op);
  int (*write)(void *store, const uint8_t *mem, uint32_t len, uint64_t pos, struct remote_op *op);
  int (*flush)(void *store, struct remote_op *op);
};

/* A handle (0 .. REMOTE_MAX_STORES-1) for an open store, or -errno. */
int remote_register(const struct remote_backend *backend, void *store);
/* The store behind a handle, or NULL; for the backend's own N-API calls. */
void *remote_store(int handle, const struct remote_backend *backend);
/* Forgets a handle; the backend closes the store only after every operation
 * it started on it has called remote_done. */
void remote_unregister(int handle);
/* Thread-safe: the operation's result (bytes moved, 0 for a flush, or -errno). */
void remote_done(struct remote_op *op, int32_t result);

/* ---- the io ring's side (ioring.c), not for backends ---------------------- */

/* The queue's pool of `depth` operations and its completion list. 0 or -errno. */
int remote_queue_open(struct io_queue *q);
/* Waits until every operation started on the queue has called remote_done
 * (each backend bounds how long an operation can take), then frees the pool. */
void remote_queue_close(struct io_queue *q);
/* Starts `kind` (IO_OP_READ, IO_OP_WRITE or IO_OP_DATASYNC) on the store of
 * `handle` with memory the caller checked. 0: remote_done follows; -errno:
 * it did not start. */
int remote_queue_start(struct io_queue *q, uint32_t handle, int kind, uint8_t *mem, uint32_t len, uint64_t pos,
                       uint64_t user_data);
/* Whether completions wait: one atomic load, for the reap loop's idle check. */
bool remote_queue_has_done(struct io_queue *q);
/* Moves up to `max` completions out: their user_data and results. How many. */
uint32_t remote_queue_take(struct io_queue *q, uint64_t *user_data, int32_t *result, uint32_t max);
