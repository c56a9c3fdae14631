/* The remote-store layer (remote.h): the registry of open stores behind a
 * client library, each io queue's pool of operations for them, and the
 * completion list their threads fill through remote_done(). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "aoe_native.h"
#include "remote.h"

#define NONE UINT32_MAX

struct registered {
  const struct remote_backend *backend;
  void *store;
};

/* Handles are registered and dropped on the JavaScript thread and looked up
 * there too (submit); the atomics only keep a stray reader coherent. */
static struct registered stores[REMOTE_MAX_STORES];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

int remote_register(const struct remote_backend *backend, void *store) {
  if (backend == NULL || store == NULL) return -EINVAL;
  pthread_mutex_lock(&registry_lock);
  int handle = -EMFILE;
  for (int i = 0; i < REMOTE_MAX_STORES; i++) {
    if (__atomic_load_n(&stores[i].store, __ATOMIC_ACQUIRE) != NULL) continue;
    stores[i].backend = backend;
    __atomic_store_n(&stores[i].store, store, __ATOMIC_RELEASE);
    handle = i;
    break;
  }
  pthread_mutex_unlock(&registry_lock);
  return handle;
}

void *remote_store(int handle, const struct remote_backend *backend) {
  if (handle < 0 || handle >= REMOTE_MAX_STORES) return NULL;
  void *store = __atomic_load_n(&stores[handle].store, __ATOMIC_ACQUIRE);
  if (store == NULL || stores[handle].backend != backend) return NULL;
  return store;
}

void remote_unregister(int handle) {
  if (handle < 0 || handle >= REMOTE_MAX_STORES) return;
  pthread_mutex_lock(&registry_lock);
  __atomic_store_n(&stores[handle].store, NULL, __ATOMIC_RELEASE);
  stores[handle].backend = NULL;
  pthread_mutex_unlock(&registry_lock);
}

int remote_queue_open(struct io_queue *q) {
  q->remote_ops = calloc(q->depth, sizeof *q->remote_ops);
  if (q->remote_ops == NULL) return -ENOMEM;
  for (uint32_t i = 0; i < q->depth; i++) {
    q->remote_ops[i].queue = q;
    q->remote_ops[i].next = i + 1 < q->depth ? i + 1 : NONE;
  }
  q->remote_free = 0;
  q->remote_done_head = q->remote_done_tail = NONE;
  q->remote_done_count = 0;
  q->remote_started = 0;
  q->remote_in_flight = 0;
  pthread_mutex_init(&q->remote_lock, NULL);
  pthread_cond_init(&q->remote_idle, NULL);
  return 0;
}

void remote_queue_close(struct io_queue *q) {
  if (q->remote_ops == NULL) return;
  /* The backends' threads may still write into frame memory and into these
   * ops: wait for each to report. Every backend bounds an operation's time. */
  pthread_mutex_lock(&q->remote_lock);
  while (__atomic_load_n(&q->remote_started, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&q->remote_idle, &q->remote_lock);
  pthread_mutex_unlock(&q->remote_lock);
  pthread_cond_destroy(&q->remote_idle);
  pthread_mutex_destroy(&q->remote_lock);
  free(q->remote_ops);
  q->remote_ops = NULL;
}

int remote_queue_start(struct io_queue *q, uint32_t handle, int kind, uint8_t *mem, uint32_t len, uint64_t pos,
                       uint64_t user_data) {
  if (handle >= REMOTE_MAX_STORES) return -EBADF;
  void *store = __atomic_load_n(&stores[handle].store, __ATOMIC_ACQUIRE);
  const struct remote_backend *backend = stores[handle].backend;
  if (store == NULL || backend == NULL) return -EBADF;
  /* in_flight never exceeds depth, so a free op is always there; be sure. */
  if (q->remote_free == NONE) return -EBUSY;
  uint32_t index = q->remote_free;
  struct remote_op *op = &q->remote_ops[index];
  q->remote_free = op->next;
  op->user_data = user_data;
  op->result = 0;
  op->next = NONE;
  __atomic_add_fetch(&q->remote_started, 1, __ATOMIC_ACQ_REL);
  int r;
  switch (kind) {
    case IO_OP_READ: r = backend->read(store, mem, len, pos, op); break;
    case IO_OP_WRITE: r = backend->write(store, mem, len, pos, op); break;
    default: r = backend->flush(store, op); break;
  }
  if (r >= 0) q->remote_in_flight++;
  else {
    /* Not started: no remote_done comes for it. */
    __atomic_sub_fetch(&q->remote_started, 1, __ATOMIC_ACQ_REL);
    op->next = q->remote_free;
    q->remote_free = index;
  }
  return r < 0 ? r : 0;
}

void remote_done(struct remote_op *op, int32_t result) {
  struct io_queue *q = op->queue;
  uint32_t index = (uint32_t)(op - q->remote_ops);
  op->result = result;
  op->next = NONE;
  pthread_mutex_lock(&q->remote_lock);
  bool was_empty = q->remote_done_tail == NONE;
  if (was_empty) q->remote_done_head = index;
  else q->remote_ops[q->remote_done_tail].next = index;
  q->remote_done_tail = index;
  __atomic_add_fetch(&q->remote_done_count, 1, __ATOMIC_RELEASE);
  /* Wakes the poll that io_uring completions wake (full counter: already
   * readable); under the lock, so that a closing queue waiting for this op
   * has not closed the eventfd yet. Only the first completion into an empty
   * list writes: the others find a wake-up already pending, since reap()
   * reads the eventfd before it takes the list (under this lock) and signals
   * again when it leaves some behind. */
  if (was_empty) {
    uint64_t one = 1;
    if (write(q->event_fd, &one, sizeof one) < 0) { /* nothing to do */ }
  }
  if (__atomic_sub_fetch(&q->remote_started, 1, __ATOMIC_ACQ_REL) == 0) pthread_cond_broadcast(&q->remote_idle);
  pthread_mutex_unlock(&q->remote_lock);
}

bool remote_queue_has_done(struct io_queue *q) {
  return q->remote_ops != NULL && __atomic_load_n(&q->remote_done_count, __ATOMIC_ACQUIRE) > 0;
}

uint32_t remote_queue_take(struct io_queue *q, uint64_t *user_data, int32_t *result, uint32_t max) {
  uint32_t n = 0;
  pthread_mutex_lock(&q->remote_lock);
  while (n < max && q->remote_done_head != NONE) {
    uint32_t index = q->remote_done_head;
    struct remote_op *op = &q->remote_ops[index];
    q->remote_done_head = op->next;
    if (q->remote_done_head == NONE) q->remote_done_tail = NONE;
    user_data[n] = op->user_data;
    result[n] = op->result;
    n++;
    /* The free list belongs to the submitting thread, which is this one. */
    op->next = q->remote_free;
    q->remote_free = index;
  }
  __atomic_sub_fetch(&q->remote_done_count, n, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&q->remote_lock);
  q->remote_in_flight -= n;
  return n;
}
