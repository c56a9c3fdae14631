/* Ceph RBD images as remote stores (rbd.c): librbd and librados loaded with
 * dlopen on first use, each image opened with a cluster connection of its
 * own, its operations started with librbd's asynchronous calls and
 * completed through remote_done() from librbd's callback thread. */
#pragma once
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

struct aoe_error;

struct rbd_store_options {
  const char *conf;      /* ceph.conf path */
  const char *client;    /* the cephx name without "client.": admin */
  const char *pool;
  const char *space;     /* the rados namespace; "" for the default one */
  const char *image;
  bool read_only;        /* rbd_open_read_only: no header watch, writes -EROFS */
  /* Configuration set on the connection after the conf is read, as
   * key, value pairs (rbd_cache, the timeouts): `count` pairs. */
  const char *const *settings;
  uint32_t count;
};

/* Connects and opens the image (blocking, bounded by the connection's
 * timeouts; openRbd runs it on libuv's thread pool): the remote handle, or -errno with `err` saying what to do. */
int rbd_store_open(const struct rbd_store_options *o, uint64_t *size, struct aoe_error *err);
struct rbd_store;
/* Forgets the handle, waits for the operations in flight, closes the image
 * and the connection. 0, or -EBADF for a handle that is not an rbd store. */
int rbd_store_close(int handle);
/* rbd_store_close in two steps: the handle forgotten (no new operation or
 * call finds it; NULL when it is not an rbd store), then, on any thread,
 * the wait for what is in flight and the close. */
struct rbd_store *rbd_store_detach(int handle);
void rbd_store_finish(struct rbd_store *s);

/* ---- the exclusive lock and the image's metadata (rbd-lock.c runs these on
 * a worker thread: each waits on the cluster) ------------------------------- */

enum rbd_call_kind {
  RBD_CALL_LOCK_STATE,   /* whether we own the lock, its owners, the header's watchers */
  RBD_CALL_LOCK_ACQUIRE, /* rbd_lock_acquire(EXCLUSIVE): held until close; never handed over on request */
  RBD_CALL_LOCK_BREAK,   /* rbd_lock_break(EXCLUSIVE, arg[0]): the owner is blocklisted by the cluster */
  RBD_CALL_META_GET,     /* rbd_metadata_get(arg[0]) */
  RBD_CALL_META_SET,     /* rbd_metadata_set(arg[0], arg[1]) */
  RBD_CALL_SIZE,         /* rbd_get_size: it may refresh the image from the OSDs, so it waits on them too */
};

enum { RBD_CALL_MAX_NAMES = 16, RBD_CALL_NAME_BYTES = 160, RBD_CALL_ARG_BYTES = 8192 };

struct rbd_watcher {
  char addr[RBD_CALL_NAME_BYTES];
  int64_t id; /* the client's global id: client.ID */
};

struct rbd_call {
  enum rbd_call_kind kind;
  int handle;
  char arg[2][RBD_CALL_ARG_BYTES];
  /* LOCK_STATE */
  bool is_owner;
  uint32_t owner_count, watcher_count;
  char owners[RBD_CALL_MAX_NAMES][RBD_CALL_NAME_BYTES];
  struct rbd_watcher watchers[RBD_CALL_MAX_NAMES];
  /* META_GET: the value (malloc'd, the caller frees), NULL when the key is not set */
  char *value;
  /* SIZE: bytes */
  uint64_t size;
};

/* Runs one call (blocking); 0, or -errno with `err` saying what went wrong. */
int rbd_store_call(struct rbd_call *c, struct aoe_error *err);

/* Adds openRbd and closeRbd to the addon's exports (the size is an rbdCall: it may wait on the OSDs). */
bool rbd_define_functions(napi_env env, napi_value exports);
/* Adds rbdCall (rbd-lock.c). */
bool rbd_lock_define_functions(napi_env env, napi_value exports);
