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
/* Forgets the handle, waits for the requests in flight, closes. 0 or -EBADF. */
int nbd_store_close(int handle);
/* Takes the store's pending log lines, one per line, into out: their length. */
int nbd_store_messages(int handle, char *out, size_t out_len);
