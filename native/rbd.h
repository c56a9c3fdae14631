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
 * timeouts): the remote handle, or -errno with `err` saying what to do. */
int rbd_store_open(const struct rbd_store_options *o, uint64_t *size, struct aoe_error *err);
/* The image's size now (librbd follows resizes through its header watch). */
int rbd_store_size(int handle, uint64_t *size, struct aoe_error *err);
/* Forgets the handle, waits for the operations in flight, closes the image
 * and the connection. 0, or -EBADF for a handle that is not an rbd store. */
int rbd_store_close(int handle);

/* Adds openRbd, rbdSize and closeRbd to the addon's exports. */
bool rbd_define_functions(napi_env env, napi_value exports);
