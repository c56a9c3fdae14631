/* NBD exports through libnbd (nbd.c): opened and closed from JavaScript,
 * served through the io ring as remote stores (remote.h). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aoe_error;

struct nbd_store_options {
  uint32_t connections; /* wanted; 1 unless the server allows several (multi-conn) */
  uint32_t wait_ms;     /* the bounded wait for a request, and for a handshake */
  bool fua;             /* writes with FUA when the server can (sync exports) */
};

struct nbd_store_info {
  int handle;
  int64_t size; /* bytes, as the server reports them */
  bool read_only, can_flush, can_fua, can_multi_conn;
  int connections;
};

/* Loads libnbd on first use, connects and starts the connection threads:
 * the remote handle, or -errno with `err` saying why and what to do.
 * Blocks for the handshakes (each bounded by wait_ms). */
int nbd_store_open(const char *uri, const struct nbd_store_options *o, struct nbd_store_info *info,
                   struct aoe_error *err);
/* Forgets the handle, waits for the requests in flight, flushes, closes;
 * the store's last log lines into out: their length, or -EBADF. */
int nbd_store_close(int handle, char *out, size_t out_len);
struct nbd_store;
/* nbd_store_close in two steps: the handle forgotten (NULL when it is not an
 * nbd store), then, on any thread, the wait, the flush and the close: the
 * length of the last log lines put into out. */
struct nbd_store *nbd_store_detach(int handle);
int nbd_store_finish(struct nbd_store *s, char *out, size_t out_len);
/* Takes the store's pending log lines, one per line, into out: their length. */
int nbd_store_messages(int handle, char *out, size_t out_len);
