/* NBD exports through libnbd, loaded with dlopen at the first nbd export so
 * that a host without libnbd still serves files.
 *
 * Threads: one per connection, owning its libnbd handle and driving it with
 * poll() on the handle's socket and an eventfd that the io ring's thread
 * writes when it queues a request. Not the libuv loop: the frame loop may
 * spin without returning to it, and a handle driven from one thread needs no
 * locking around libnbd's state machine. Not a thread per request: a
 * connection carries hundreds of requests at once.
 *
 * A request completes exactly once: by the server's reply, or with an error
 * when its connection dies or it waited longer than the bounded wait. Only
 * the server's reply acknowledges; a lost connection fails what was on it,
 * and the thread reconnects with back-off while new requests wait up to the
 * bounded wait for it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <libnbd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aoe_native.h"
#include "nbd.h"
#include "remote.h"

#define MAX_CONNS 16
#define REQ_POOL IORING_MAX_DEPTH
#define MESSAGES 32
#define NONE UINT32_MAX
#define TICK_MS 200
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* ---- libnbd, loaded on first use ---------------------------------------- */

#define NBD_FUNCTIONS(X)                                                                                   \
  X(nbd_create) X(nbd_close) X(nbd_get_error) X(nbd_get_errno) X(nbd_set_uri_allow_transports)             \
  X(nbd_set_uri_allow_tls) X(nbd_set_uri_allow_local_file) X(nbd_aio_connect_uri) X(nbd_aio_get_fd)        \
  X(nbd_aio_get_direction) X(nbd_aio_notify_read) X(nbd_aio_notify_write) X(nbd_aio_is_connecting)         \
  X(nbd_aio_is_ready) X(nbd_aio_is_dead) X(nbd_aio_is_closed) X(nbd_get_size) X(nbd_is_read_only)          \
  X(nbd_can_flush) X(nbd_can_fua) X(nbd_can_multi_conn) X(nbd_aio_pread) X(nbd_aio_pwrite) X(nbd_aio_flush)       \
  X(nbd_aio_command_completed) X(nbd_set_request_structured_replies) X(nbd_get_block_size)

static struct {
#define FIELD(name) __typeof__(name) *name;
  NBD_FUNCTIONS(FIELD)
#undef FIELD
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_error[200];

static void load_libnbd(void) {
  void *so = dlopen("libnbd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (so == NULL) {
    snprintf(lib_error, sizeof lib_error, "nbd exports need libnbd: apt-get install libnbd0 (%s)", dlerror());
    return;
  }
#define LOOKUP(name)                                                                                      \
  lib.name = (__typeof__(name) *)dlsym(so, #name);                                                        \
  if (lib.name == NULL) {                                                                                 \
    snprintf(lib_error, sizeof lib_error, "libnbd.so.0 has no %s: install libnbd0 1.14 or newer", #name); \
    return;                                                                                               \
  }
  NBD_FUNCTIONS(LOOKUP)
#undef LOOKUP
}

/* ---- stores, connections, requests --------------------------------------- */

enum req_kind { REQ_READ, REQ_WRITE, REQ_FLUSH };

struct nbd_req {
  struct remote_op *op;
  uint8_t *mem;
  uint32_t len;
  uint64_t pos;
  uint8_t kind;
  bool finished;  /* remote_done called */
  bool in_libnbd; /* libnbd holds it as callback data: not reusable until its free callback */
  uint64_t queued_ms;
  uint32_t index, next, prev; /* free list or a connection's queue, then its in-flight list */
  struct nbd_conn *conn;
};

struct nbd_conn {
  struct nbd_store *store;
  int id;
  pthread_t thread;
  bool thread_started;
  int wake_fd;
  /* queued by the io ring's thread, under the store's lock */
  uint32_t queue_head, queue_tail;
  bool up; /* read by the io ring's thread to choose a connection */
  /* the connection thread's own */
  struct nbd_handle *h;
  uint32_t flight_head; /* doubly linked: a request leaves from anywhere */
  uint32_t backoff_ms;
  uint64_t next_attempt_ms;
  uint64_t up_since_ms; /* when its handle last became ready */
  bool logged_down;
  char down_why[200]; /* the reason last logged while down */
};

struct nbd_store {
  char *uri;
  int handle;
  uint32_t wait_ms;
  bool fua;
  bool read_only;
  bool can_flush;
  int64_t size;
  int nconns;
  struct nbd_conn conns[MAX_CONNS];
  pthread_mutex_t lock; /* the free list, the queues, the messages, stopping */
  bool stopping;
  uint32_t free_head;
  uint32_t rr;
  struct nbd_req reqs[REQ_POOL];
  char messages[MESSAGES][256];
  uint32_t message_first, message_count, messages_lost;
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A line for the daemon's log, fetched by JavaScript (nbd_store_messages). */
static void say(struct nbd_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct nbd_store *s, const char *fmt, ...) {
  pthread_mutex_lock(&s->lock);
  if (s->message_count == MESSAGES) {
    s->messages_lost++;
  } else {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->messages[(s->message_first + s->message_count) % MESSAGES], 256, fmt, ap);
    va_end(ap);
    s->message_count++;
  }
  pthread_mutex_unlock(&s->lock);
}

static void release_req(struct nbd_store *s, struct nbd_req *r) {
  pthread_mutex_lock(&s->lock);
  r->next = s->free_head;
  s->free_head = r->index;
  pthread_mutex_unlock(&s->lock);
}

static void flight_remove(struct nbd_conn *c, struct nbd_req *r) {
  struct nbd_req *reqs = c->store->reqs;
  if (r->prev != NONE) reqs[r->prev].next = r->next;
  else c->flight_head = r->next;
  if (r->next != NONE) reqs[r->next].prev = r->prev;
  r->next = r->prev = NONE;
}

/* Reports the request's result once; it is reused after libnbd lets go too. */
static void finish_req(struct nbd_req *r, int32_t result) {
  if (r->finished) return;
  r->finished = true;
  flight_remove(r->conn, r);
  remote_done(r->op, result);
  if (!r->in_libnbd) release_req(r->conn->store, r);
}

static int on_reply(void *user_data, int *error) {
  struct nbd_req *r = user_data;
  int32_t ok = r->kind == REQ_FLUSH ? 0 : (int32_t)r->len;
  finish_req(r, *error != 0 ? -*error : ok);
  return 1; /* retire the command */
}

static void on_free(void *user_data) {
  struct nbd_req *r = user_data;
  r->in_libnbd = false;
  if (r->finished) release_req(r->conn->store, r);
}

/* ---- connecting ---------------------------------------------------------- */

/* Drives libnbd's state machine until `done` says so or the deadline passes. */
static int drive_until_ready(struct nbd_handle *h, uint64_t deadline) {
  while (lib.nbd_aio_is_connecting(h) == 1) {
    uint64_t now = now_ms();
    if (now >= deadline) return -ETIMEDOUT;
    unsigned dir = lib.nbd_aio_get_direction(h);
    struct pollfd p = {.fd = lib.nbd_aio_get_fd(h), .events = 0};
    if (dir & LIBNBD_AIO_DIRECTION_READ) p.events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE) p.events |= POLLOUT;
    int n = poll(&p, 1, (int)(deadline - now));
    if (n < 0 && errno != EINTR) return -errno;
    if (n <= 0) continue;
    int r = 0;
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && (dir & LIBNBD_AIO_DIRECTION_READ)) r = lib.nbd_aio_notify_read(h);
    else if ((p.revents & POLLOUT) && (dir & LIBNBD_AIO_DIRECTION_WRITE)) r = lib.nbd_aio_notify_write(h);
    else if (p.revents & (POLLHUP | POLLERR)) return -ECONNRESET;
    if (r < 0) return -(lib.nbd_get_errno() ? lib.nbd_get_errno() : EIO);
  }
  return lib.nbd_aio_is_ready(h) == 1 ? 0 : -ECONNRESET;
}

/* The process at the other end of a unix socket runs as root or as us. The
 * path was checked at open, but once that server is gone another user can
 * put a socket of their own at the same name (a sticky directory lets
 * them): a reconnection must not serve that user's data or send them
 * writes. The kernel's record of the peer cannot be forged by the peer. */
static int check_peer(int fd, char *why, size_t why_len) {
  struct ucred peer;
  socklen_t len = sizeof peer;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
    snprintf(why, why_len, "cannot tell who serves the socket: %s", strerror(errno));
    return -1;
  }
  if (peer.uid != 0 && peer.uid != geteuid()) {
    snprintf(why, why_len,
             "the server on the socket runs as uid %u, not root or the daemon's user: another user could serve any "
             "data there; not using it",
             (unsigned)peer.uid);
    return -1;
  }
  return 0;
}

/* A ready handle, or NULL with `why` filled. */
static struct nbd_handle *connect_uri(const char *uri, uint32_t wait_ms, char *why, size_t why_len) {
  struct nbd_handle *h = lib.nbd_create();
  if (h == NULL) {
    snprintf(why, why_len, "%s", lib.nbd_get_error());
    return NULL;
  }
  /* No TLS files, no local files named in the URI, no other transports.
   * Simple replies only: a read's reply then carries exactly the bytes asked
   * for. With structured replies libnbd 1.14 completes a read whose chunks
   * covered only part of it, the rest zeroed: data the server never sent. */
  if (lib.nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX) < 0 ||
      lib.nbd_set_request_structured_replies(h, false) < 0 ||
      lib.nbd_set_uri_allow_tls(h, LIBNBD_TLS_DISABLE) < 0 || lib.nbd_set_uri_allow_local_file(h, false) < 0 ||
      lib.nbd_aio_connect_uri(h, uri) < 0) {
    snprintf(why, why_len, "%s", lib.nbd_get_error());
    lib.nbd_close(h);
    return NULL;
  }
  int r = drive_until_ready(h, now_ms() + wait_ms);
  if (r < 0) {
    const char *e = lib.nbd_get_error();
    if (r == -ETIMEDOUT) snprintf(why, why_len, "no answer to the handshake within %u ms", wait_ms);
    else snprintf(why, why_len, "%s", e && *e ? e : strerror(-r));
    lib.nbd_close(h);
    return NULL;
  }
  if (strncmp(uri, "nbd+unix://", 11) == 0 && check_peer(lib.nbd_aio_get_fd(h), why, why_len) < 0) {
    lib.nbd_close(h);
    return NULL;
  }
  return h;
}

/* ---- the connection thread ----------------------------------------------- */

static void fail_flight(struct nbd_conn *c, int32_t err) {
  while (c->flight_head != NONE) finish_req(&c->store->reqs[c->flight_head], err);
}

static void drop_handle(struct nbd_conn *c, int32_t err) {
  fail_flight(c, err);
  __atomic_store_n(&c->up, false, __ATOMIC_RELEASE);
  /* Closing calls the free callbacks of what libnbd still held. */
  lib.nbd_close(c->h);
  c->h = NULL;
  /* A connection that served a while is tried again at once; one that dies
   * soon after its handshake (a server that closes each one) backs off, or
   * the thread would reconnect as fast as the server accepts. */
  uint64_t now = now_ms();
  if (now - c->up_since_ms >= BACKOFF_MAX_MS) {
    c->backoff_ms = BACKOFF_MIN_MS;
    c->next_attempt_ms = now;
  } else {
    c->next_attempt_ms = now + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
  }
}

/* Whether another connection's handshake describes the export the store
 * serves: the same size, and the properties the store relies on (a write
 * acknowledged with FUA, a flush that covers every connection). */
static bool same_export(const struct nbd_store *s, struct nbd_handle *h, const char *when, char *why, size_t why_len) {
  const char *lost = NULL;
  if (lib.nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM) > 512) {
    snprintf(why, why_len, "the server %stakes only blocks of %lld bytes: not serving from it", when,
             (long long)lib.nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM));
    return false;
  }
  if (lib.nbd_get_size(h) != s->size) {
    snprintf(why, why_len, "the server %sreports %lld bytes, not %lld: not serving from it", when,
             (long long)lib.nbd_get_size(h), (long long)s->size);
    return false;
  }
  if (!s->read_only && lib.nbd_is_read_only(h) == 1) lost = "writes (it is read-only)";
  else if (s->can_flush && lib.nbd_can_flush(h) != 1) lost = "flush";
  else if (s->fua && lib.nbd_can_fua(h) != 1) lost = "FUA";
  else if (s->nconns > 1 && lib.nbd_can_multi_conn(h) != 1) lost = "multi-conn (a flush covering every connection)";
  if (lost != NULL) {
    snprintf(why, why_len, "the server %sdoes not offer %s as it did: not serving from it", when, lost);
    return false;
  }
  return true;
}

static void try_reconnect(struct nbd_conn *c) {
  struct nbd_store *s = c->store;
  uint64_t now = now_ms();
  if (now < c->next_attempt_ms) return;
  char why[200];
  uint32_t wait = s->wait_ms < 5000 ? s->wait_ms : 5000;
  struct nbd_handle *h = connect_uri(s->uri, wait, why, sizeof why);
  if (h != NULL && !same_export(s, h, "now ", why, sizeof why)) {
    lib.nbd_close(h);
    h = NULL;
  }
  if (h == NULL) {
    /* Once per outage, and again when the reason changes (a planted server after a refused connect). */
    if (!c->logged_down || strcmp(why, c->down_why) != 0)
      say(s, "connection %d: reconnecting failed (%s); trying again with back-off", c->id, why);
    c->logged_down = true;
    snprintf(c->down_why, sizeof c->down_why, "%s", why);
    c->next_attempt_ms = now_ms() + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    return;
  }
  c->h = h;
  c->up_since_ms = now_ms();
  c->logged_down = false;
  __atomic_store_n(&c->up, true, __ATOMIC_RELEASE);
  say(s, "connection %d: reconnected; serving resumes", c->id);
}

/* Moves the queued requests into libnbd, or fails those that waited too long while down. */
static void issue_queued(struct nbd_conn *c) {
  struct nbd_store *s = c->store;
  pthread_mutex_lock(&s->lock);
  uint32_t head = c->queue_head;
  c->queue_head = c->queue_tail = NONE;
  bool stopping = s->stopping;
  pthread_mutex_unlock(&s->lock);
  uint32_t keep_head = NONE, keep_tail = NONE;
  uint64_t now = now_ms();
  while (head != NONE) {
    struct nbd_req *r = &s->reqs[head];
    head = r->next;
    r->next = NONE;
    if (c->h == NULL) {
      if (now - r->queued_ms >= s->wait_ms || stopping) {
        r->prev = NONE;
        r->next = c->flight_head; /* finish_req takes it off the in-flight list */
        if (c->flight_head != NONE) s->reqs[c->flight_head].prev = r->index;
        c->flight_head = r->index;
        finish_req(r, -ENOTCONN);
        continue;
      }
      if (keep_tail == NONE) keep_head = r->index;
      else s->reqs[keep_tail].next = r->index;
      keep_tail = r->index;
      continue;
    }
    r->prev = NONE;
    r->next = c->flight_head;
    if (c->flight_head != NONE) s->reqs[c->flight_head].prev = r->index;
    c->flight_head = r->index;
    r->in_libnbd = true;
    nbd_completion_callback cb = {.callback = on_reply, .user_data = r, .free = on_free};
    int64_t cookie;
    if (r->kind == REQ_READ) cookie = lib.nbd_aio_pread(c->h, r->mem, r->len, r->pos, cb, 0);
    else if (r->kind == REQ_WRITE)
      cookie = lib.nbd_aio_pwrite(c->h, r->mem, r->len, r->pos, cb, s->fua ? LIBNBD_CMD_FLAG_FUA : 0);
    else cookie = lib.nbd_aio_flush(c->h, cb, 0);
    if (cookie < 0) {
      int e = lib.nbd_get_errno();
      finish_req(r, -(e ? e : EIO));
    }
  }
  if (keep_head != NONE) {
    /* Put back in front of whatever arrived meanwhile, in order. */
    pthread_mutex_lock(&s->lock);
    s->reqs[keep_tail].next = c->queue_head;
    if (c->queue_head == NONE) c->queue_tail = keep_tail;
    c->queue_head = keep_head;
    pthread_mutex_unlock(&s->lock);
  }
}

static bool oldest_overdue(struct nbd_conn *c, uint64_t now) {
  for (uint32_t i = c->flight_head; i != NONE; i = c->store->reqs[i].next)
    if (now - c->store->reqs[i].queued_ms >= c->store->wait_ms) return true;
  return false;
}

static void pump_handle(struct nbd_conn *c) {
  struct nbd_store *s = c->store;
  unsigned dir = lib.nbd_aio_get_direction(c->h);
  struct pollfd p[2] = {{.fd = lib.nbd_aio_get_fd(c->h)}, {.fd = c->wake_fd, .events = POLLIN}};
  if (dir & LIBNBD_AIO_DIRECTION_READ) p[0].events |= POLLIN;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE) p[0].events |= POLLOUT;
  int n = poll(p, 2, TICK_MS);
  if (n < 0 && errno != EINTR) n = 0;
  if (p[1].revents & POLLIN) {
    uint64_t v;
    if (read(c->wake_fd, &v, sizeof v) < 0) { /* EAGAIN: already drained */ }
  }
  char why[160] = "connection closed";
  if (n > 0 && p[0].revents) {
    int r = 0;
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && (dir & LIBNBD_AIO_DIRECTION_READ)) r = lib.nbd_aio_notify_read(c->h);
    else if ((p[0].revents & POLLOUT) && (dir & LIBNBD_AIO_DIRECTION_WRITE)) r = lib.nbd_aio_notify_write(c->h);
    /* libnbd's message is thread-local and only this call's when it failed. */
    const char *e = r < 0 ? lib.nbd_get_error() : NULL;
    if (e != NULL && *e) snprintf(why, sizeof why, "%s", e);
  }
  if (lib.nbd_aio_is_dead(c->h) == 1 || lib.nbd_aio_is_closed(c->h) == 1 || (p[0].revents & POLLNVAL)) {
    say(s, "connection %d: the server went away (%s); requests on it fail, reconnecting", c->id, why);
    drop_handle(c, -ENOTCONN);
    return;
  }
  if (oldest_overdue(c, now_ms())) {
    say(s, "connection %d: the server has not answered within %u ms; failing its requests and reconnecting", c->id,
        s->wait_ms);
    drop_handle(c, -ETIMEDOUT);
  }
}

static bool conn_idle(struct nbd_conn *c) {
  pthread_mutex_lock(&c->store->lock);
  bool idle = c->queue_head == NONE;
  pthread_mutex_unlock(&c->store->lock);
  return idle && c->flight_head == NONE;
}

/* At close, once every thread has ended: what the server acknowledged
 * becomes durable, as a file's fdatasync at stop. One flush on any
 * connection that is up covers all of them (multi-conn), so a first
 * connection that is down does not skip it. */
static void final_flush(struct nbd_store *s) {
  if (s->read_only || !s->can_flush) return;
  struct nbd_conn *c = NULL;
  for (int i = 0; i < s->nconns && c == NULL; i++)
    if (s->conns[i].h != NULL) c = &s->conns[i];
  if (c == NULL) {
    say(s, "no connection was up at close for the final flush: writes not flushed before may be lost if the server fails");
    return;
  }
  int64_t cookie = lib.nbd_aio_flush(c->h, NBD_NULL_COMPLETION, 0);
  uint64_t deadline = now_ms() + s->wait_ms;
  int done = 0;
  while (cookie > 0 && (done = lib.nbd_aio_command_completed(c->h, (uint64_t)cookie)) == 0 && now_ms() < deadline) {
    unsigned dir = lib.nbd_aio_get_direction(c->h);
    struct pollfd p = {.fd = lib.nbd_aio_get_fd(c->h), .events = 0};
    if (dir & LIBNBD_AIO_DIRECTION_READ) p.events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE) p.events |= POLLOUT;
    if (poll(&p, 1, TICK_MS) <= 0) continue;
    int r = (p.revents & POLLOUT) && !(p.revents & POLLIN) ? lib.nbd_aio_notify_write(c->h) : lib.nbd_aio_notify_read(c->h);
    if (r < 0) break;
  }
  if (done != 1) say(s, "the final flush at close did not complete: writes not flushed before may be lost if the server fails");
}

static void *conn_thread(void *arg) {
  struct nbd_conn *c = arg;
  struct nbd_store *s = c->store;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping && conn_idle(c)) break;
    if (c->h == NULL) try_reconnect(c);
    issue_queued(c);
    if (c->h != NULL) {
      pump_handle(c);
      continue;
    }
    struct pollfd p = {.fd = c->wake_fd, .events = POLLIN};
    if (poll(&p, 1, TICK_MS) > 0) {
      uint64_t v;
      if (read(c->wake_fd, &v, sizeof v) < 0) { /* drained */ }
    }
  }
  /* The handle stays open for the final flush (stop_threads). */
  return NULL;
}

/* ---- the backend the io ring calls --------------------------------------- */

static int queue_req(struct nbd_store *s, uint8_t kind, uint8_t *mem, uint32_t len, uint64_t pos,
                     struct remote_op *op) {
  pthread_mutex_lock(&s->lock);
  if (s->free_head == NONE) {
    pthread_mutex_unlock(&s->lock);
    return -EBUSY;
  }
  struct nbd_req *r = &s->reqs[s->free_head];
  s->free_head = r->next;
  /* The connection of the request before while its thread has not taken
   * that one yet: a burst goes to one thread in one wake-up and to the
   * server back to back (as fio's engine sends its queue), instead of
   * waking every connection's thread for one request each. Otherwise the
   * next in turn; one that is up. */
  struct nbd_conn *c = &s->conns[s->rr % (uint32_t)s->nconns];
  bool pending = c->queue_head != NONE && __atomic_load_n(&c->up, __ATOMIC_ACQUIRE);
  if (!pending) {
    c = &s->conns[++s->rr % (uint32_t)s->nconns];
    for (int i = 0; i < s->nconns && !__atomic_load_n(&c->up, __ATOMIC_ACQUIRE); i++)
      c = &s->conns[++s->rr % (uint32_t)s->nconns];
  }
  r->op = op;
  r->mem = mem;
  r->len = len;
  r->pos = pos;
  r->kind = kind;
  r->finished = false;
  r->in_libnbd = false;
  r->queued_ms = now_ms();
  r->conn = c;
  r->next = r->prev = NONE;
  if (c->queue_tail == NONE) c->queue_head = r->index;
  else s->reqs[c->queue_tail].next = r->index;
  c->queue_tail = r->index;
  pthread_mutex_unlock(&s->lock);
  /* Joined to a queue not taken yet: its thread has a wake-up coming. */
  if (pending) return 0;
  uint64_t one = 1;
  if (write(c->wake_fd, &one, sizeof one) < 0) { /* counter full: awake anyway */ }
  return 0;
}

static int backend_read(void *store, uint8_t *mem, uint32_t len, uint64_t pos, struct remote_op *op) {
  return queue_req(store, REQ_READ, mem, len, pos, op);
}

static int backend_write(void *store, const uint8_t *mem, uint32_t len, uint64_t pos, struct remote_op *op) {
  struct nbd_store *s = store;
  if (s->read_only) return -EROFS;
  return queue_req(s, REQ_WRITE, (uint8_t *)mem, len, pos, op);
}

static int backend_flush(void *store, struct remote_op *op) {
  struct nbd_store *s = store;
  /* A server that cannot flush writes through: nothing to wait for. */
  if (!s->can_flush) {
    remote_done(op, 0);
    return 0;
  }
  return queue_req(s, REQ_FLUSH, NULL, 0, 0, op);
}

static const struct remote_backend nbd_backend = {
    .name = "nbd", .read = backend_read, .write = backend_write, .flush = backend_flush};

/* ---- opening and closing (libuv's pool; the handle forgotten on the JavaScript thread) */

/* Ends the threads (each once its requests are answered, bounded by
 * wait_ms), flushes when `flush` says (a close, not a failed open), closes. */
static void stop_threads(struct nbd_store *s, bool flush) {
  pthread_mutex_lock(&s->lock);
  s->stopping = true;
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < s->nconns; i++) {
    struct nbd_conn *c = &s->conns[i];
    uint64_t one = 1;
    if (c->wake_fd >= 0 && write(c->wake_fd, &one, sizeof one) < 0) { /* awake anyway */ }
  }
  for (int i = 0; i < s->nconns; i++)
    if (s->conns[i].thread_started) pthread_join(s->conns[i].thread, NULL);
  if (flush) final_flush(s);
  for (int i = 0; i < s->nconns; i++) {
    struct nbd_conn *c = &s->conns[i];
    if (c->h != NULL) lib.nbd_close(c->h);
    c->h = NULL;
    if (c->wake_fd >= 0) close(c->wake_fd);
    c->wake_fd = -1;
  }
}

static void free_store(struct nbd_store *s) {
  stop_threads(s, false);
  pthread_mutex_destroy(&s->lock);
  free(s->uri);
  free(s);
}

/* Refuses what libnbd would accept but we do not: other schemes, and query
 * parameters that name files or commands (libnbd splits the query at ';'
 * as well as at '&'). */
static int check_uri(const char *uri, struct aoe_error *err) {
  bool tcp = strncmp(uri, "nbd://", 6) == 0;
  bool unix_socket = strncmp(uri, "nbd+unix://", 11) == 0;
  if (!tcp && !unix_socket)
    return aoe_fail(err, EINVAL, "%.80s: only nbd://HOST[:PORT]/NAME and nbd+unix:///NAME?socket=PATH are served", uri);
  const char *query = strchr(uri, '?');
  if (tcp && query != NULL)
    return aoe_fail(err, EINVAL, "%.80s: an nbd:// URI takes no query parameters", uri);
  if (unix_socket && (query == NULL || strncmp(query, "?socket=/", 9) != 0 || strpbrk(query + 1, "&;?#") != NULL))
    return aoe_fail(err, EINVAL, "%.80s: an nbd+unix URI takes one parameter, socket= with an absolute path", uri);
  for (const char *p = uri; *p; p++)
    if ((unsigned char)*p < 0x21 || *p == 0x7f)
      return aoe_fail(err, EINVAL, "the nbd URI holds a space or control character");
  return 0;
}

int nbd_store_open(const char *uri, const struct nbd_store_options *o, struct nbd_store_info *info,
                   struct aoe_error *err) {
  pthread_once(&lib_once, load_libnbd);
  if (lib_error[0]) return aoe_fail(err, ENOENT, "%s", lib_error);
  if (check_uri(uri, err) < 0) return -err->errnum;
  struct nbd_store *s = calloc(1, sizeof *s);
  if (s == NULL) return aoe_fail(err, ENOMEM, "out of memory for an nbd store");
  pthread_mutex_init(&s->lock, NULL);
  s->uri = strdup(uri);
  s->wait_ms = o->wait_ms ? o->wait_ms : 30000;
  for (int i = 0; i < MAX_CONNS; i++) s->conns[i].wake_fd = -1;
  for (uint32_t i = 0; i < REQ_POOL; i++) {
    s->reqs[i].index = i;
    s->reqs[i].next = i + 1 < REQ_POOL ? i + 1 : NONE;
  }
  char why[200];
  struct nbd_handle *first = connect_uri(uri, s->wait_ms, why, sizeof why);
  if (first == NULL) {
    free_store(s);
    return aoe_fail(err, ECONNREFUSED, "cannot reach the nbd server at %.80s: %.160s", uri, why);
  }
  /* libnbd refuses requests not aligned to the server's minimum block: every
   * AoE request for a sector off that grid would fail, without a word. */
  int64_t min_block = lib.nbd_get_block_size(first, LIBNBD_SIZE_MINIMUM);
  if (min_block > 512) {
    lib.nbd_close(first);
    free_store(s);
    return aoe_fail(err, EINVAL,
                    "the nbd server at %.80s takes only blocks of %lld bytes, and AoE reads and writes 512-byte sectors: "
                    "serve it with blocks of 512 bytes (nbdkit: --filter=blocksize)",
                    uri, (long long)min_block);
  }
  s->size = lib.nbd_get_size(first);
  s->read_only = lib.nbd_is_read_only(first) == 1;
  s->can_flush = lib.nbd_can_flush(first) == 1;
  bool can_fua = lib.nbd_can_fua(first) == 1;
  s->fua = o->fua && can_fua;
  bool multi = lib.nbd_can_multi_conn(first) == 1;
  uint32_t want = o->connections ? o->connections : 1;
  if (want > MAX_CONNS) want = MAX_CONNS;
  s->nconns = multi ? (int)want : 1;
  s->conns[0].h = first;
  int rc = 0;
  for (int i = 0; i < s->nconns && rc == 0; i++) {
    struct nbd_conn *c = &s->conns[i];
    c->store = s;
    c->id = i;
    c->queue_head = c->queue_tail = c->flight_head = NONE;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0) rc = aoe_fail(err, errno, "eventfd failed: %s", strerror(errno));
    if (rc == 0 && i > 0) {
      c->h = connect_uri(uri, s->wait_ms, why, sizeof why);
      if (c->h == NULL) rc = aoe_fail(err, ECONNREFUSED, "nbd connection %d to %.80s failed: %.160s", i + 1, uri, why);
      else if (!same_export(s, c->h, "on another connection ", why, sizeof why))
        rc = aoe_fail(err, EPROTO, "nbd connection %d to %.80s: %.160s; fix the server, or set nbd-connections = 1", i + 1,
                      uri, why);
    }
    if (rc == 0) {
      c->up = true;
      c->up_since_ms = now_ms();
    }
  }
  for (int i = 0; i < s->nconns && rc == 0; i++) {
    if (pthread_create(&s->conns[i].thread, NULL, conn_thread, &s->conns[i]) != 0)
      rc = aoe_fail(err, EAGAIN, "cannot start the thread of nbd connection %d", i + 1);
    else s->conns[i].thread_started = true;
  }
  if (rc == 0) {
    s->handle = remote_register(&nbd_backend, s);
    if (s->handle < 0) rc = aoe_fail(err, -s->handle, "too many remote stores open (%d)", REMOTE_MAX_STORES);
  }
  if (rc < 0) {
    free_store(s);
    return rc;
  }
  info->handle = s->handle;
  info->size = s->size;
  info->read_only = s->read_only;
  info->can_flush = s->can_flush;
  info->can_fua = can_fua;
  info->can_multi_conn = multi;
  info->connections = s->nconns;
  return s->handle;
}

static int take_messages(struct nbd_store *s, char *out, size_t out_len);

struct nbd_store *nbd_store_detach(int handle) {
  struct nbd_store *s = remote_store(handle, &nbd_backend);
  if (s != NULL) remote_unregister(handle);
  return s;
}

int nbd_store_finish(struct nbd_store *s, char *out, size_t out_len) {
  stop_threads(s, true);
  int n = take_messages(s, out, out_len);
  s->nconns = 0; /* stopped already */
  free_store(s);
  return n;
}

int nbd_store_close(int handle, char *out, size_t out_len) {
  struct nbd_store *s = nbd_store_detach(handle);
  if (s == NULL) return -EBADF;
  return nbd_store_finish(s, out, out_len);
}

int nbd_store_messages(int handle, char *out, size_t out_len) {
  struct nbd_store *s = remote_store(handle, &nbd_backend);
  if (s == NULL) return -EBADF;
  return take_messages(s, out, out_len);
}

static int take_messages(struct nbd_store *s, char *out, size_t out_len) {
  size_t used = 0;
  out[0] = 0;
  pthread_mutex_lock(&s->lock);
  if (s->messages_lost > 0) {
    used += (size_t)snprintf(out, out_len, "(%u earlier messages lost)\n", s->messages_lost);
    s->messages_lost = 0;
  }
  while (s->message_count > 0 && used + 258 < out_len) {
    used += (size_t)snprintf(out + used, out_len - used, "%s\n", s->messages[s->message_first]);
    s->message_first = (s->message_first + 1) % MESSAGES;
    s->message_count--;
  }
  pthread_mutex_unlock(&s->lock);
  return (int)used;
}
