/* Ceph RBD images served as remote stores (remote.h, rbd.h).
 *
 * librados and librbd are loaded with dlopen when the first rbd export
 * opens, so a host without Ceph still loads the addon and serves files. The
 * build only needs their headers (librbd-dev); a build without them still
 * compiles, and says so when an rbd export is opened.
 *
 * Each operation is one librbd asynchronous call whose completion callback,
 * on librbd's own thread, calls remote_done(): no thread per request. The
 * callback needs the store as well as the op, so each store keeps a pool of
 * small request records, grown in chunks and never shrunk, so the steady
 * state allocates nothing of ours. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aoe_native.h"
#include "rbd.h"
#include "remote.h"

#if __has_include(<rbd/librbd.h>) && __has_include(<rados/librados.h>) && !defined(AOE_WITHOUT_RBD)
#define HAVE_RBD_HEADERS 1
#include <rados/librados.h>
#include <rbd/librbd.h>
#endif

#ifdef HAVE_RBD_HEADERS

/* ---- the libraries ---------------------------------------------------------- */

#define RADOS_FUNCTIONS(X)                                                                             \
  X(rados_create2) X(rados_conf_read_file) X(rados_conf_set) X(rados_conf_get) X(rados_connect) X(rados_shutdown) \
      X(rados_ioctx_create) X(rados_ioctx_destroy) X(rados_ioctx_set_namespace)
#define RBD_FUNCTIONS(X)                                                                               \
  X(rbd_open) X(rbd_open_read_only) X(rbd_close) X(rbd_get_size) X(rbd_aio_create_completion)          \
      X(rbd_aio_get_return_value) X(rbd_aio_release) X(rbd_aio_read) X(rbd_aio_write) X(rbd_aio_flush)          \
      X(rbd_get_features) X(rbd_is_exclusive_lock_owner) X(rbd_lock_acquire) X(rbd_lock_get_owners)         \
      X(rbd_lock_get_owners_cleanup) X(rbd_lock_break) X(rbd_watchers_list) X(rbd_watchers_list_cleanup)   \
      X(rbd_metadata_get) X(rbd_metadata_set)

#define DECLARE_POINTER(name) __typeof__(name) *name;
static struct {
  RADOS_FUNCTIONS(DECLARE_POINTER)
  RBD_FUNCTIONS(DECLARE_POINTER)
} lib;

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_problem[200]; /* empty once both libraries are loaded */

static void lib_load(void) {
  void *rados = dlopen("librados.so.2", RTLD_NOW | RTLD_LOCAL);
  void *rbd = rados ? dlopen("librbd.so.1", RTLD_NOW | RTLD_LOCAL) : NULL;
  if (rbd == NULL) {
    snprintf(lib_problem, sizeof lib_problem, "%s", dlerror());
    return;
  }
#define LOAD(from, file, n)                                                      \
  if ((*(void **)&lib.n = dlsym(from, #n)) == NULL) {                            \
    snprintf(lib_problem, sizeof lib_problem, "%s has no %s", file, #n);         \
    return;                                                                      \
  }
#define LOAD_RADOS(n) LOAD(rados, "librados.so.2", n)
#define LOAD_RBD(n) LOAD(rbd, "librbd.so.1", n)
  RADOS_FUNCTIONS(LOAD_RADOS)
  RBD_FUNCTIONS(LOAD_RBD)
}

/* ---- stores and their operations --------------------------------------------- */

enum { REQUESTS_PER_CHUNK = 64 };

struct rbd_store;

/* What the completion callback needs: one per operation in flight. */
struct rbd_request {
  struct rbd_store *store;
  struct remote_op *op;
  uint32_t length; /* what a write or read reports when librbd says 0 */
  bool flush;
  struct rbd_request *next; /* the store's free list */
};

struct rbd_chunk {
  struct rbd_chunk *next;
  struct rbd_request requests[REQUESTS_PER_CHUNK];
};

struct rbd_store {
  rados_t cluster;
  rados_ioctx_t io;
  rbd_image_t image;
  pthread_mutex_t lock; /* the free list, in_flight */
  pthread_cond_t idle;  /* in_flight fell to 0 */
  uint32_t in_flight;
  struct rbd_request *free;
  struct rbd_chunk *chunks;
  char spec[1024]; /* POOL/[NAMESPACE/]IMAGE, for messages */
};

/* A free request record (under the lock), growing the pool when it is empty. */
static struct rbd_request *take_request(struct rbd_store *s) {
  if (s->free == NULL) {
    struct rbd_chunk *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->next = s->chunks;
    s->chunks = c;
    for (int i = 0; i < REQUESTS_PER_CHUNK; i++) {
      c->requests[i].store = s;
      c->requests[i].next = s->free;
      s->free = &c->requests[i];
    }
  }
  struct rbd_request *r = s->free;
  s->free = r->next;
  return r;
}

/* Gives a record back; the last one out wakes a closing store. */
static void put_request(struct rbd_store *s, struct rbd_request *r) {
  pthread_mutex_lock(&s->lock);
  r->next = s->free;
  s->free = r;
  if (--s->in_flight == 0) pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->lock);
}

/* librbd's completion callback, on its own thread. */
static void on_complete(rbd_completion_t c, void *arg) {
  struct rbd_request *r = arg;
  ssize_t rv = lib.rbd_aio_get_return_value(c);
  lib.rbd_aio_release(c);
  int32_t result;
  if (rv < 0) result = rv < INT32_MIN ? -EIO : (int32_t)rv;
  else if (r->flush) result = 0;
  else result = (int32_t)(rv > 0 && (uint64_t)rv < r->length ? (uint32_t)rv : r->length);
  remote_done(r->op, result);
  /* After remote_done: the store goes only once in_flight is 0. */
  put_request(r->store, r);
}

enum rbd_kind { KIND_READ, KIND_WRITE, KIND_FLUSH };

static int start(struct rbd_store *s, enum rbd_kind kind, uint8_t *mem, uint32_t len, uint64_t pos,
                 struct remote_op *op) {
  pthread_mutex_lock(&s->lock);
  struct rbd_request *r = take_request(s);
  if (r != NULL) s->in_flight++;
  pthread_mutex_unlock(&s->lock);
  if (r == NULL) return -ENOMEM;
  r->op = op;
  r->length = len;
  r->flush = kind == KIND_FLUSH;
  rbd_completion_t c;
  int rc = lib.rbd_aio_create_completion(r, on_complete, &c);
  if (rc == 0) {
    if (kind == KIND_READ) rc = lib.rbd_aio_read(s->image, pos, len, (char *)mem, c);
    else if (kind == KIND_WRITE) rc = lib.rbd_aio_write(s->image, pos, len, (const char *)mem, c);
    else rc = lib.rbd_aio_flush(s->image, c);
    /* A call that fails at once never calls back. */
    if (rc < 0) lib.rbd_aio_release(c);
  }
  if (rc < 0) put_request(s, r);
  return rc < 0 ? rc : 0;
}

static int store_read(void *store, uint8_t *mem, uint32_t len, uint64_t pos, struct remote_op *op) {
  return start(store, KIND_READ, mem, len, pos, op);
}

static int store_write(void *store, const uint8_t *mem, uint32_t len, uint64_t pos, struct remote_op *op) {
  return start(store, KIND_WRITE, (uint8_t *)mem, len, pos, op);
}

static int store_flush(void *store, struct remote_op *op) {
  return start(store, KIND_FLUSH, NULL, 0, 0, op);
}

static const struct remote_backend rbd_backend = {"rbd", store_read, store_write, store_flush};

/* ---- opening and closing ------------------------------------------------------- */

/* A keyring the conf names that exists but this process cannot read: librados
 * then reports the monitors' refusal, which would send the admin to the
 * wrong place. 0 when there is none. */
static int unreadable_keyring(rados_t cluster, const struct rbd_store_options *o, struct aoe_error *err) {
  char list[1024];
  if (lib.rados_conf_get(cluster, "keyring", list, sizeof list) < 0) return 0;
  for (char *save = NULL, *path = strtok_r(list, ",", &save); path != NULL; path = strtok_r(NULL, ",", &save)) {
    while (*path == ' ') path++;
    if (access(path, F_OK) == 0 && access(path, R_OK) != 0)
      return aoe_fail(err, EACCES,
                      "cannot read the keyring %s for client.%s (permission denied): run as a user that can read it, "
                      "or give that user a keyring of its own (keyring in %s)",
                      path, o->client, o->conf);
  }
  return 0;
}

/* Why rados_connect failed, and what to do. */
static int connect_problem(rados_t cluster, const struct rbd_store_options *o, int rc, struct aoe_error *err) {
  int unreadable = unreadable_keyring(cluster, o, err);
  if (unreadable < 0) return unreadable;
  switch (-rc) {
    case ETIMEDOUT:
      return aoe_fail(err, ETIMEDOUT,
                      "no Ceph monitor answered in time: check that `mon host` in %s names running monitors "
                      "that this host can reach",
                      o->conf);
    case EACCES:
    case EPERM:
      return aoe_fail(err, -rc,
                      "the Ceph monitors refused client.%s: check ceph-id and the key its keyring holds "
                      "(ceph auth get client.%s shows the right one)",
                      o->client, o->client);
    case ENOENT:
    case EINVAL:
      return aoe_fail(err, -rc,
                      "cannot authenticate as client.%s: no keyring with its key was found; set `keyring` "
                      "in %s or install /etc/ceph/ceph.client.%s.keyring",
                      o->client, o->conf, o->client);
    default:
      return aoe_fail(err, -rc, "cannot connect to the Ceph cluster of %s as client.%s: %s", o->conf, o->client,
                      strerror(-rc));
  }
}

/* Why rbd_open failed, and what to do. */
static int open_problem(const struct rbd_store_options *o, const char *spec, int rc, struct aoe_error *err) {
  switch (-rc) {
    case ENOENT:
      return aoe_fail(err, ENOENT, "the rbd image %s does not exist; create it (rbd create --size SIZE %s) or "
                      "correct the name (rbd ls %s)", spec, spec, o->pool);
    case EACCES:
    case EPERM:
      return aoe_fail(err, -rc, "client.%s may not open the rbd image %s: give it rbd caps on pool %s "
                      "(ceph auth caps client.%s mon 'profile rbd' osd 'profile rbd pool=%s')",
                      o->client, spec, o->pool, o->client, o->pool);
    case ETIMEDOUT:
      return aoe_fail(err, ETIMEDOUT, "no OSD answered for the rbd image %s in time: the monitors answer but "
                      "its placement groups do not; check ceph -s and ceph osd stat", spec);
    default:
      return aoe_fail(err, -rc, "cannot open the rbd image %s: %s", spec, strerror(-rc));
  }
}

static void store_free(struct rbd_store *s) {
  if (s->image) lib.rbd_close(s->image);
  if (s->io) lib.rados_ioctx_destroy(s->io);
  if (s->cluster) lib.rados_shutdown(s->cluster);
  for (struct rbd_chunk *c = s->chunks, *next; c != NULL; c = next) {
    next = c->next;
    free(c);
  }
  pthread_cond_destroy(&s->idle);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* The cluster connection of a new store: its conf read, the settings applied, connected. */
static int store_connect(struct rbd_store *s, const struct rbd_store_options *o, struct aoe_error *err) {
  char name[160];
  if (snprintf(name, sizeof name, "client.%s", o->client) >= (int)sizeof name)
    return aoe_fail(err, EINVAL, "ceph-id %s is too long", o->client);
  int rc = lib.rados_create2(&s->cluster, "ceph", name, 0);
  if (rc < 0) {
    s->cluster = NULL;
    return aoe_fail(err, -rc, "cannot make a Ceph client named %s: %s", name, strerror(-rc));
  }
  rc = lib.rados_conf_read_file(s->cluster, o->conf);
  if (rc == -ENOENT)
    return aoe_fail(err, ENOENT, "the Ceph configuration %s does not exist; set ceph-conf to the cluster's ceph.conf",
                    o->conf);
  if (rc < 0)
    return aoe_fail(err, -rc, "cannot read the Ceph configuration %s: %s (is it a ceph.conf?)", o->conf,
                    strerror(-rc));
  for (uint32_t i = 0; i < o->count; i++) {
    const char *key = o->settings[2 * i], *value = o->settings[2 * i + 1];
    rc = lib.rados_conf_set(s->cluster, key, value);
    if (rc < 0) return aoe_fail(err, -rc, "cannot set the Ceph option %s = %s: %s", key, value, strerror(-rc));
  }
  rc = lib.rados_connect(s->cluster);
  return rc < 0 ? connect_problem(s->cluster, o, rc, err) : 0;
}

int rbd_store_open(const struct rbd_store_options *o, uint64_t *size, struct aoe_error *err) {
  pthread_once(&lib_once, lib_load);
  if (lib_problem[0] != '\0')
    return aoe_fail(err, ENOPKG, "rbd exports need librbd: apt-get install librbd1 (%s)", lib_problem);
  char spec[1024];
  snprintf(spec, sizeof spec, "%s/%s%s%s", o->pool, o->space, o->space[0] ? "/" : "", o->image);
  struct rbd_store *s = calloc(1, sizeof *s);
  if (s == NULL) return aoe_fail(err, ENOMEM, "out of memory");
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->idle, NULL);
  int rc = store_connect(s, o, err);
  if (rc < 0) goto failed;
  rc = lib.rados_ioctx_create(s->cluster, o->pool, &s->io);
  if (rc < 0) {
    s->io = NULL;
    if (rc == -ENOENT)
      rc = aoe_fail(err, ENOENT, "the Ceph pool %s does not exist; correct the pool in rbd:%s (ceph osd pool ls)",
                    o->pool, spec);
    else
      rc = aoe_fail(err, -rc, "cannot use the Ceph pool %s: %s", o->pool, strerror(-rc));
    goto failed;
  }
  lib.rados_ioctx_set_namespace(s->io, o->space);
  rc = (o->read_only ? lib.rbd_open_read_only : lib.rbd_open)(s->io, o->image, &s->image, NULL);
  if (rc < 0) {
    s->image = NULL;
    rc = open_problem(o, spec, rc, err);
    goto failed;
  }
  rc = lib.rbd_get_size(s->image, size);
  if (rc < 0) {
    rc = aoe_fail(err, -rc, "cannot read the size of the rbd image %s: %s", spec, strerror(-rc));
    goto failed;
  }
  /* A writer serves only while it holds the exclusive lock (failover fences through it). */
  uint64_t features = 0;
  if (!o->read_only && lib.rbd_get_features(s->image, &features) == 0 && !(features & RBD_FEATURE_EXCLUSIVE_LOCK)) {
    rc = aoe_fail(err, EOPNOTSUPP,
                  "the rbd image %s lacks the exclusive-lock feature, which a writing gateway must hold so that "
                  "no other can write it: rbd feature enable %s exclusive-lock (or export it read-only)",
                  spec, spec);
    goto failed;
  }
  snprintf(s->spec, sizeof s->spec, "%s", spec);
  rc = remote_register(&rbd_backend, s);
  if (rc < 0) {
    rc = aoe_fail(err, -rc, "cannot serve the rbd image %s: %d remote stores are open already", spec,
                  REMOTE_MAX_STORES);
    goto failed;
  }
  return rc;
failed:
  store_free(s);
  return rc;
}

static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER; /* a call's look-up against a close's unregister */

struct rbd_store *rbd_store_detach(int handle) {
  struct rbd_store *s = remote_store(handle, &rbd_backend);
  if (s == NULL) return NULL;
  pthread_mutex_lock(&calls_lock);
  remote_unregister(handle);
  pthread_mutex_unlock(&calls_lock);
  return s;
}

void rbd_store_finish(struct rbd_store *s) {
  /* Every operation ends within rados_osd_op_timeout: wait for them, since
   * their callbacks still use the store. */
  pthread_mutex_lock(&s->lock);
  while (s->in_flight > 0) pthread_cond_wait(&s->idle, &s->lock);
  pthread_mutex_unlock(&s->lock);
  store_free(s);
}

int rbd_store_close(int handle) {
  struct rbd_store *s = rbd_store_detach(handle);
  if (s == NULL) return -EBADF;
  rbd_store_finish(s);
  return 0;
}

/* ---- the exclusive lock and metadata ------------------------------------------- */

/* Takes a store for a call: counted in flight, so a close waits for it. NULL when the handle is not an rbd store. */
static struct rbd_store *call_begin(int handle) {
  pthread_mutex_lock(&calls_lock);
  struct rbd_store *s = remote_store(handle, &rbd_backend);
  if (s != NULL) {
    pthread_mutex_lock(&s->lock);
    s->in_flight++;
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_unlock(&calls_lock);
  return s;
}

static void call_end(struct rbd_store *s) {
  pthread_mutex_lock(&s->lock);
  if (--s->in_flight == 0) pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->lock);
}

static int lock_state(struct rbd_store *s, struct rbd_call *c, struct aoe_error *err) {
  int owner = 0;
  int rc = lib.rbd_is_exclusive_lock_owner(s->image, &owner);
  if (rc < 0) return aoe_fail(err, -rc, "cannot ask whether this gateway owns the lock of %s: %s", s->spec, strerror(-rc));
  c->is_owner = owner != 0;
  rbd_lock_mode_t mode;
  char *owners[RBD_CALL_MAX_NAMES];
  size_t n = RBD_CALL_MAX_NAMES;
  rc = lib.rbd_lock_get_owners(s->image, &mode, owners, &n);
  if (rc == -ENOENT) n = 0; /* nobody holds it */
  else if (rc < 0) return aoe_fail(err, -rc, "cannot read the lock owners of %s: %s", s->spec, strerror(-rc));
  else {
    for (size_t i = 0; i < n; i++) snprintf(c->owners[i], RBD_CALL_NAME_BYTES, "%s", owners[i]);
    lib.rbd_lock_get_owners_cleanup(owners, n);
  }
  c->owner_count = (uint32_t)n;
  rbd_image_watcher_t watchers[RBD_CALL_MAX_NAMES];
  size_t w = RBD_CALL_MAX_NAMES;
  rc = lib.rbd_watchers_list(s->image, watchers, &w);
  if (rc == -ERANGE) return aoe_fail(err, ERANGE, "the rbd image %s has more than %d watchers", s->spec, RBD_CALL_MAX_NAMES);
  if (rc < 0) return aoe_fail(err, -rc, "cannot list the watchers of %s: %s", s->spec, strerror(-rc));
  for (size_t i = 0; i < w; i++) {
    snprintf(c->watchers[i].addr, RBD_CALL_NAME_BYTES, "%s", watchers[i].addr);
    c->watchers[i].id = watchers[i].id;
  }
  lib.rbd_watchers_list_cleanup(watchers, w);
  c->watcher_count = (uint32_t)w;
  return 0;
}

static int metadata_get(struct rbd_store *s, struct rbd_call *c, struct aoe_error *err) {
  size_t len = 512;
  for (int tries = 0; tries < 4; tries++) {
    char *buf = malloc(len);
    if (buf == NULL) return aoe_fail(err, ENOMEM, "out of memory");
    size_t want = len;
    int rc = lib.rbd_metadata_get(s->image, c->arg[0], buf, &want);
    if (rc == 0) {
      c->value = buf;
      return 0;
    }
    free(buf);
    if (rc == -ENOENT) return 0;
    if (rc != -ERANGE) return aoe_fail(err, -rc, "cannot read %s of the rbd image %s: %s", c->arg[0], s->spec, strerror(-rc));
    len = want + 1;
  }
  return aoe_fail(err, ERANGE, "%s of the rbd image %s keeps growing while read", c->arg[0], s->spec);
}

int rbd_store_call(struct rbd_call *c, struct aoe_error *err) {
  struct rbd_store *s = call_begin(c->handle);
  if (s == NULL) return aoe_fail(err, EBADF, "no rbd store has handle %d", c->handle);
  int rc = 0;
  switch (c->kind) {
    case RBD_CALL_LOCK_STATE:
      rc = lock_state(s, c, err);
      break;
    case RBD_CALL_LOCK_ACQUIRE:
      rc = lib.rbd_lock_acquire(s->image, RBD_LOCK_MODE_EXCLUSIVE);
      if (rc < 0)
        rc = aoe_fail(err, -rc, "cannot take the exclusive lock of the rbd image %s: %s%s", s->spec, strerror(-rc),
                      rc == -EROFS || rc == -EBUSY ? " (another client holds it)" : "");
      break;
    case RBD_CALL_LOCK_BREAK:
      rc = lib.rbd_lock_break(s->image, RBD_LOCK_MODE_EXCLUSIVE, c->arg[0]);
      if (rc < 0)
        rc = aoe_fail(err, -rc, "cannot break the lock of %s held by %s: %s%s", s->spec, c->arg[0], strerror(-rc),
                      rc == -EACCES || rc == -EPERM
                          ? " (breaking it blocklists the owner, which this gateway's cephx user may do only with the "
                            "mon cap 'profile rbd': ceph auth caps client.ID mon 'profile rbd' osd 'profile rbd pool=POOL')"
                          : "");
      break;
    case RBD_CALL_META_GET:
      rc = metadata_get(s, c, err);
      break;
    case RBD_CALL_META_SET:
      rc = lib.rbd_metadata_set(s->image, c->arg[0], c->arg[1]);
      if (rc < 0) rc = aoe_fail(err, -rc, "cannot write %s of the rbd image %s: %s", c->arg[0], s->spec, strerror(-rc));
      break;
    case RBD_CALL_SIZE:
      rc = lib.rbd_get_size(s->image, &c->size);
      if (rc < 0) rc = aoe_fail(err, -rc, "cannot read the size of the rbd image %s: %s", s->spec, strerror(-rc));
      break;
    default:
      rc = aoe_fail(err, EINVAL, "unknown rbd call %d", (int)c->kind);
  }
  call_end(s);
  return rc;
}

#else /* built without librbd-dev */

int rbd_store_call(struct rbd_call *c, struct aoe_error *err) {
  return aoe_fail(err, EBADF, "no rbd store has handle %d", c->handle);
}

int rbd_store_open(const struct rbd_store_options *o, uint64_t *size, struct aoe_error *err) {
  (void)o;
  (void)size;
  return aoe_fail(err, ENOTSUP,
                  "this build has no rbd support: librbd-dev was not installed when it was built; "
                  "apt-get install librbd-dev and rebuild (npm ci)");
}

int rbd_store_close(int handle) {
  (void)handle;
  return -EBADF;
}

struct rbd_store *rbd_store_detach(int handle) {
  (void)handle;
  return NULL;
}

void rbd_store_finish(struct rbd_store *s) { (void)s; }

#endif

/* ---- Node-API: openRbd, closeRbd ---------------------------------------------------- */

static napi_value throw_error(napi_env env, const char *code_name, int errnum, const char *message) {
  napi_value code, msg, error, errno_value;
  napi_create_string_utf8(env, code_name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  if (errnum == 0) {
    napi_create_type_error(env, code, msg, &error);
  } else {
    napi_create_error(env, code, msg, &error);
    napi_create_int32(env, -errnum, &errno_value);
    napi_set_named_property(env, error, "errno", errno_value);
  }
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  return throw_error(env, "ERR_INVALID_ARG_TYPE", 0, message);
}

/* A string property of `object` copied into buf; false with a TypeError thrown otherwise. */
static bool get_string_property(napi_env env, napi_value object, const char *key, char *buf, size_t size) {
  napi_value value;
  napi_valuetype type;
  size_t len = 0;
  char msg[160];
  if (napi_get_named_property(env, object, key, &value) != napi_ok || napi_typeof(env, value, &type) != napi_ok ||
      type != napi_string) {
    snprintf(msg, sizeof msg, "openRbd: options.%s must be a string", key);
    throw_type(env, msg);
    return false;
  }
  napi_get_value_string_utf8(env, value, NULL, 0, &len);
  if (len >= size) {
    snprintf(msg, sizeof msg, "openRbd: options.%s is longer than %zu bytes", key, size - 1);
    throw_type(env, msg);
    return false;
  }
  napi_get_value_string_utf8(env, value, buf, size, &len);
  if (strlen(buf) != len) {
    snprintf(msg, sizeof msg, "openRbd: options.%s holds a NUL", key);
    throw_type(env, msg);
    return false;
  }
  return true;
}

enum { MAX_SETTINGS = 16, SETTING_BYTES = 256 };

/* options.settings: an array of strings, key and value in turn. */
static bool get_settings(napi_env env, napi_value object, char (*out)[SETTING_BYTES], uint32_t *count) {
  napi_value array, item;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_get_named_property(env, object, "settings", &array) != napi_ok ||
      napi_is_array(env, array, &is_array) != napi_ok || !is_array || napi_get_array_length(env, array, &n) != napi_ok ||
      n % 2 != 0 || n > 2 * MAX_SETTINGS) {
    throw_type(env, "openRbd: options.settings must be an array of at most 16 key, value pairs of strings");
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_valuetype type;
    size_t len = 0;
    if (napi_get_element(env, array, i, &item) != napi_ok || napi_typeof(env, item, &type) != napi_ok ||
        type != napi_string || napi_get_value_string_utf8(env, item, out[i], SETTING_BYTES, &len) != napi_ok ||
        len >= SETTING_BYTES - 1 || strlen(out[i]) != len) {
      throw_type(env, "openRbd: options.settings holds something other than a short string");
      return false;
    }
  }
  *count = n / 2;
  return true;
}

static bool get_handle(napi_env env, napi_callback_info info, const char *usage, int *handle) {
  size_t argc = 1;
  napi_value argv[1];
  double d;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_double(env, argv[0], &d) != napi_ok || !(d >= 0 && d < REMOTE_MAX_STORES) || d != (int)d) {
    throw_type(env, usage);
    return false;
  }
  *handle = (int)d;
  return true;
}

/* An open running on libuv's pool: connecting and opening wait on the
 * cluster (up to the connection's timeouts), which must not stop the event
 * loop, and with it every other export. The options are copied here, since
 * the JavaScript values are not reachable from the pool's thread. */
struct open_work {
  napi_async_work work;
  napi_deferred deferred;
  char conf[4096], client[128], pool[256], space[256], image[256];
  char settings[2 * MAX_SETTINGS][SETTING_BYTES];
  const char *pairs[2 * MAX_SETTINGS];
  struct rbd_store_options o;
  uint64_t size;
  struct aoe_error err;
  int handle;
};

static void open_execute(napi_env env, void *data) {
  (void)env;
  struct open_work *w = data;
  w->handle = rbd_store_open(&w->o, &w->size, &w->err);
}

static void reject_aoe(napi_env env, napi_deferred deferred, const struct aoe_error *err) {
  napi_value code, msg, error, errno_value;
  napi_create_string_utf8(env, aoe_errno_name(err->errnum), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, err->message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err->errnum, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_reject_deferred(env, deferred, error);
}

static void open_complete(napi_env env, napi_status status, void *data) {
  struct open_work *w = data;
  napi_value result, handle_value, size_value;
  if (w->handle >= 0 && status != napi_ok) {
    /* Cancelled (the environment is going): nobody will close it. */
    rbd_store_close(w->handle);
    w->handle = aoe_fail(&w->err, ECANCELED, "the open of an rbd image was cancelled");
  }
  if (w->handle < 0) {
    if (status != napi_ok && w->err.errnum == 0) aoe_fail(&w->err, ECANCELED, "the open of an rbd image was cancelled");
    reject_aoe(env, w->deferred, &w->err);
  } else if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, w->handle, &handle_value) != napi_ok ||
             napi_create_double(env, (double)w->size, &size_value) != napi_ok ||
             napi_set_named_property(env, result, "handle", handle_value) != napi_ok ||
             napi_set_named_property(env, result, "size", size_value) != napi_ok) {
    rbd_store_close(w->handle);
    aoe_fail(&w->err, ENOMEM, "openRbd: cannot make its result object");
    reject_aoe(env, w->deferred, &w->err);
  } else {
    napi_resolve_deferred(env, w->deferred, result);
  }
  napi_delete_async_work(env, w->work);
  free(w);
}

/* openRbd({conf, client, pool, namespace, image, readOnly, settings}): a
 * promise of {handle, size}. A malformed argument throws at once. */
static napi_value open_rbd_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], value, promise, name;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_typeof(env, argv[0], &type) != napi_ok || type != napi_object)
    return throw_type(env, "openRbd(options) takes an object");
  struct open_work *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_error(env, "ENOMEM", ENOMEM, "openRbd: out of memory");
  struct rbd_store_options o = {w->conf, w->client, w->pool, w->space, w->image, false, w->pairs, 0};
  w->o = o;
  if (!get_string_property(env, argv[0], "conf", w->conf, sizeof w->conf) ||
      !get_string_property(env, argv[0], "client", w->client, sizeof w->client) ||
      !get_string_property(env, argv[0], "pool", w->pool, sizeof w->pool) ||
      !get_string_property(env, argv[0], "namespace", w->space, sizeof w->space) ||
      !get_string_property(env, argv[0], "image", w->image, sizeof w->image) ||
      !get_settings(env, argv[0], w->settings, &w->o.count)) {
    free(w);
    return NULL;
  }
  for (uint32_t i = 0; i < 2 * w->o.count; i++) w->pairs[i] = w->settings[i];
  if (napi_get_named_property(env, argv[0], "readOnly", &value) != napi_ok ||
      napi_get_value_bool(env, value, &w->o.read_only) != napi_ok) {
    free(w);
    return throw_type(env, "openRbd: options.readOnly must be a boolean");
  }
  napi_create_string_utf8(env, "openRbd", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    free(w);
    return throw_error(env, "ERR_NAPI", ENOMEM, "openRbd: cannot make a promise");
  }
  if (napi_create_async_work(env, NULL, name, open_execute, open_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    /* The promise is made: settle it rather than throw past it. */
    aoe_fail(&w->err, EAGAIN, "openRbd: cannot queue the open on libuv's thread pool");
    reject_aoe(env, w->deferred, &w->err);
    free(w);
  }
  return promise;
}

/* A close running on libuv's pool: the operations in flight end within
 * rados_osd_op_timeout, and librbd's close (the lock released, the watch
 * ended) waits on the cluster, which must not stop the event loop. */
struct close_work {
  napi_async_work work;
  napi_deferred deferred;
  struct rbd_store *store;
};

static void close_execute(napi_env env, void *data) {
  (void)env;
  struct close_work *w = data;
  rbd_store_finish(w->store);
  w->store = NULL;
}

static void close_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  struct close_work *w = data;
  if (w->store != NULL) rbd_store_finish(w->store); /* cancelled before it ran: close here */
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_resolve_deferred(env, w->deferred, undefined);
  napi_delete_async_work(env, w->work);
  free(w);
}

/* closeRbd(handle): the handle is forgotten at once; a promise that settles
 * once the operations in flight have ended and the image is closed. */
static napi_value close_rbd_fn(napi_env env, napi_callback_info info) {
  int handle;
  if (!get_handle(env, info, "closeRbd(handle) takes the handle openRbd returned", &handle)) return NULL;
  struct rbd_store *store = rbd_store_detach(handle);
  if (store == NULL) return throw_error(env, "EBADF", EBADF, "closeRbd: no rbd store has that handle");
  struct close_work *w = calloc(1, sizeof *w);
  napi_value promise, name;
  if (w == NULL || napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    /* Nothing to settle later: close here. */
    rbd_store_finish(store);
    free(w);
    return throw_error(env, "ENOMEM", ENOMEM, "closeRbd: out of memory (the image was closed)");
  }
  w->store = store;
  napi_create_string_utf8(env, "closeRbd", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, close_execute, close_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    /* No pool to run it on: close here, and settle the promise made. */
    rbd_store_finish(w->store);
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, w->deferred, undefined);
    free(w);
  }
  return promise;
}

bool rbd_define_functions(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"openRbd", NULL, open_rbd_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeRbd", NULL, close_rbd_fn, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) == napi_ok;
}
