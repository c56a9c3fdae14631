/* Node-API glue for aoe_native: argument checks, wrapping native state in
 * JavaScript objects, libuv readiness for the packet socket and the io ring,
 * and teardown when the environment exits. No system calls of its own.
 * The typed surface is src/native/addon.ts; ownership rules are in
 * docs/native-abi.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <limits.h>
#include <net/if.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <uv.h>

#include "aoe_native.h"
#include "nbd.h"
#include "rbd.h"
#include "remote.h"

#define NAPI_OK(call)                                           \
  do {                                                          \
    if ((call) != napi_ok) return throw_last_napi_error(env);   \
  } while (0)

/* ---- errors --------------------------------------------------------------- */

static napi_value throw_last_napi_error(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    napi_throw_error(env, "ERR_NAPI", info && info->error_message ? info->error_message : "Node-API call failed");
  }
  return NULL;
}

/* Throws an Error with code = errno name and errno = -errnum, like Node's own
 * system errors. */
static napi_value throw_errno(napi_env env, int errnum, const char *message) {
  napi_value code, msg, error, errno_value;
  napi_create_string_utf8(env, aoe_errno_name(errnum), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -errnum, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_aoe_error(napi_env env, const struct aoe_error *err) {
  return throw_errno(env, err->errnum, err->message);
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *message) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
  return NULL;
}

/* ---- argument helpers ----------------------------------------------------- */

/* Reads a string argument into `buf`; false (with a TypeError thrown) when it
 * is not a string or does not fit. */
static bool get_string(napi_env env, napi_value value, char *buf, size_t size, const char *name) {
  napi_valuetype type;
  size_t len = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a string", name);
    throw_type(env, msg);
    return false;
  }
  napi_get_value_string_utf8(env, value, NULL, 0, &len);
  if (len >= size) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s is longer than %zu bytes", name, size - 1);
    throw_range(env, msg);
    return false;
  }
  napi_get_value_string_utf8(env, value, buf, size, &len);
  return true;
}

static bool is_nullish(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) != napi_ok || type == napi_undefined || type == napi_null;
}

/* A whole number in 0..max (exact in a double); false (RangeError/TypeError thrown) otherwise. */
static bool get_whole(napi_env env, napi_value value, double max, double *out, const char *name) {
  double d;
  char msg[128];
  if (napi_get_value_double(env, value, &d) != napi_ok) {
    snprintf(msg, sizeof msg, "%s must be a number", name);
    throw_type(env, msg);
    return false;
  }
  if (!(d >= 0 && d <= max && d == (double)(uint64_t)d)) {
    snprintf(msg, sizeof msg, "%s must be a whole number in 0..%.0f, got %g", name, max, d);
    throw_range(env, msg);
    return false;
  }
  *out = d;
  return true;
}

/* A whole number in 0..max; false (RangeError/TypeError thrown) otherwise. */
static bool get_uint(napi_env env, napi_value value, uint32_t max, uint32_t *out, const char *name) {
  double d;
  if (!get_whole(env, value, max, &d, name)) return false;
  *out = (uint32_t)d;
  return true;
}

static bool get_typed(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *count,
                      const char *name, const char *kind) {
  napi_typedarray_type type;
  /* Fails with napi_invalid_arg (no exception) for anything but a typed array. */
  if (napi_get_typedarray_info(env, value, &type, count, data, NULL, NULL) == napi_ok && type == want) return true;
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be %s", name, kind);
  throw_type(env, msg);
  return false;
}

static bool get_named(napi_env env, napi_value object, const char *key, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, object, key, &has) != napi_ok || !has) return false;
  return napi_get_named_property(env, object, key, out) == napi_ok && !is_nullish(env, *out);
}

/* The native state a method was created for. Each method function carries
 * it as callback data, which is cheaper than napi_unwrap(this) on every
 * frame-path call (measured: ~100 ns less per call), and keeps it alive with a
 * finalizer of its own, so a method detached from its object stays safe. */
static void *method_state(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, NULL, &data) != napi_ok) {
    throw_last_napi_error(env);
    return NULL;
  }
  return data;
}

struct method {
  const char *name;
  napi_callback cb;
};

/* Defines `count` methods on `object`, each holding one count of `owners`
 * that `release_state` gives back when the function is collected. */
static bool define_methods(napi_env env, napi_value object, const struct method *list, size_t count, void *state,
                           napi_finalize release_state, int *owners) {
  for (size_t i = 0; i < count; i++) {
    napi_value fn;
    if (napi_create_function(env, list[i].name, NAPI_AUTO_LENGTH, list[i].cb, state, &fn) != napi_ok) return false;
    if (napi_add_finalizer(env, fn, state, release_state, NULL, NULL) != napi_ok) return false;
    (*owners)++;
    napi_property_descriptor d = {list[i].name, NULL, NULL, NULL, NULL, fn, napi_default, NULL};
    if (napi_define_properties(env, object, 1, &d) != napi_ok) return false;
  }
  return true;
}

/* ---- calling back into JavaScript ----------------------------------------- */

/* A JavaScript callback driven by a libuv poll handle. */
struct js_callback {
  napi_ref fn;
  napi_async_context async;
  int running;            /* > 0 while inside napi_make_callback */
  bool destroy_pending;   /* cleared from inside the callback: destroy after it */
};

static bool callback_set(napi_env env, struct js_callback *cb, napi_value fn, const char *resource) {
  napi_value name;
  if (cb->fn) napi_delete_reference(env, cb->fn);
  cb->fn = NULL;
  if (napi_create_reference(env, fn, 1, &cb->fn) != napi_ok) return false;
  if (cb->async == NULL) {
    if (napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name) != napi_ok) return false;
    if (napi_async_init(env, NULL, name, &cb->async) != napi_ok) return false;
  }
  return true;
}

static void callback_clear(napi_env env, struct js_callback *cb, bool env_alive) {
  if (cb->fn && env_alive) napi_delete_reference(env, cb->fn);
  cb->fn = NULL;
  if (cb->running > 0) { /* close() from inside onEvent: Node still uses the context */
    cb->destroy_pending = true;
    return;
  }
  if (cb->async && env_alive) napi_async_destroy(env, cb->async);
  cb->async = NULL;
}

/* Calls cb with (argc, argv) as a fresh macrotask: promise jobs run after it,
 * and a throw becomes an 'uncaughtException', as for any Node event. */
static void callback_invoke(napi_env env, struct js_callback *cb, size_t argc, napi_value *argv) {
  napi_value fn, recv;
  if (cb->fn == NULL || napi_get_reference_value(env, cb->fn, &fn) != napi_ok || fn == NULL) return;
  napi_get_global(env, &recv); /* napi_make_callback wants an object as `this` */
  cb->running++;
  napi_status status = napi_make_callback(env, cb->async, recv, fn, argc, argv, NULL);
  cb->running--;
  if (status == napi_pending_exception) {
    napi_value error;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
  }
  if (cb->destroy_pending && cb->running == 0) {
    cb->destroy_pending = false;
    callback_clear(env, cb, true);
  }
}

/* ---- PacketSocket ---------------------------------------------------------- */

struct packet_socket {
  struct packet_ring ring;
  napi_env env;
  char ifname[IFNAMSIZ];       /* for messages */
  napi_ref ring_buffer;     /* the ArrayBuffer over the ring, detached at close */
  struct js_callback on_event;
  uv_poll_t poll;           /* watches ring.epoll_fd */
  bool poll_open;           /* uv_poll_init done, uv_close pending */
  bool polling;
  bool closed;
  bool cleanup_hook;        /* registered with napi_add_env_cleanup_hook */
  int owners;               /* object, methods, ring ArrayBuffer, poll handle; freed at 0 */
};

static void packet_socket_env_exit(void *arg);

static void packet_socket_unref(struct packet_socket *s) {
  if (--s->owners > 0) return;
  packet_free(&s->ring);
  free(s);
}

static void on_packet_poll_closed(uv_handle_t *handle) {
  packet_socket_unref(handle->data);
}

/* Stops polling and closes the descriptors. The mapping is left to the caller:
 * it may only go once no JavaScript view can reach it. */
static void packet_socket_shutdown(struct packet_socket *s, bool env_alive) {
  if (s->closed) return;
  s->closed = true;
  s->polling = false;
  if (s->poll_open) {
    s->poll_open = false;
    uv_close((uv_handle_t *)&s->poll, on_packet_poll_closed); /* before the fd goes */
  }
  callback_clear(s->env, &s->on_event, env_alive);
  packet_close_fds(&s->ring);
  if (s->cleanup_hook && env_alive) napi_remove_env_cleanup_hook(s->env, packet_socket_env_exit, s);
}

static void packet_socket_env_exit(void *arg) {
  struct packet_socket *s = arg;
  s->cleanup_hook = false; /* Node drops the hook after running it */
  packet_socket_shutdown(s, false);
  packet_unmap(&s->ring);   /* no JavaScript runs any more */
}

static void packet_socket_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct packet_socket *s = data;
  /* The ring ArrayBuffer may outlive us; its own finalizer unmaps it. */
  if (s->ring_buffer) napi_delete_reference(env, s->ring_buffer);
  s->ring_buffer = NULL;
  packet_socket_shutdown(s, true);
  packet_socket_unref(s);
}

static void packet_method_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  packet_socket_unref(data);
}

static void ring_buffer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  struct packet_socket *s = hint;
  packet_unmap(&s->ring);
  packet_socket_unref(s);
}

#define PACKET_SOCKET_METHOD(argc_max)                             \
  size_t argc = (argc_max);                                        \
  napi_value argv[(argc_max) + 1];                                 \
  struct packet_socket *s = method_state(env, info, &argc, argv);  \
  if (s == NULL) return NULL;

static napi_value packet_socket_closed_error(napi_env env, struct packet_socket *s) {
  char msg[160];
  snprintf(msg, sizeof msg, "the packet socket on %s is closed; open a new one with openPacket()", s->ifname);
  return throw_errno(env, EBADF, msg);
}

static napi_value packet_drain_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(2);
  if (s->closed) return packet_socket_closed_error(env, s);
  uint32_t *desc;
  size_t desc_len;
  uint32_t max;
  if (argc < 2) return throw_type(env, "drain(desc, maxFrames) takes two arguments");
  if (!get_typed(env, argv[0], napi_uint32_array, (void **)&desc, &desc_len, "desc", "a Uint32Array")) return NULL;
  if (!get_uint(env, argv[1], UINT32_MAX, &max, "maxFrames")) return NULL;
  if (max > desc_len / DRAIN_STRIDE) max = (uint32_t)(desc_len / DRAIN_STRIDE);
  napi_value result;
  NAPI_OK(napi_create_uint32(env, packet_drain(&s->ring, desc, max), &result));
  return result;
}

/* Whether drain() would return a frame now: a plain memory read, and no
 * typed array to unpack (that costs ~120 ns a call), for busy polling. */
static napi_value packet_ready_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(0);
  napi_value result;
  NAPI_OK(napi_get_boolean(env, !s->closed && packet_has_frames(&s->ring), &result));
  return result;
}

static napi_value packet_release_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(1);
  if (s->closed) return packet_socket_closed_error(env, s);
  uint32_t slot;
  if (argc < 1) return throw_type(env, "release(slot) takes a slot number");
  if (!get_uint(env, argv[0], UINT32_MAX, &slot, "slot")) return NULL;
  if (packet_release(&s->ring, slot) != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "slot %u is not held by JavaScript (released twice, or never returned by drain())",
             slot);
    return throw_range(env, msg);
  }
  return NULL;
}

/* release() for a batch: one crossing instead of one per frame. */
static napi_value packet_release_many_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(2);
  if (s->closed) return packet_socket_closed_error(env, s);
  uint32_t *slots;
  size_t slots_len;
  uint32_t count;
  if (argc < 2) return throw_type(env, "releaseMany(slots, count) takes two arguments");
  if (!get_typed(env, argv[0], napi_uint32_array, (void **)&slots, &slots_len, "slots", "a Uint32Array")) return NULL;
  if (!get_uint(env, argv[1], UINT32_MAX, &count, "count")) return NULL;
  if (count > slots_len) return throw_range(env, "count exceeds slots.length");
  for (uint32_t i = 0; i < count; i++) {
    if (packet_release(&s->ring, slots[i]) != 0) {
      char msg[160];
      snprintf(msg, sizeof msg, "slot %u is not held by JavaScript (released twice, or never returned by drain())",
               slots[i]);
      return throw_range(env, msg);
    }
  }
  return NULL;
}

static napi_value packet_send_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(3);
  if (s->closed) return packet_socket_closed_error(env, s);
  uint8_t *arena;
  uint32_t *desc;
  size_t arena_len, desc_len;
  uint32_t count;
  if (argc < 3) return throw_type(env, "send(arena, desc, count) takes three arguments");
  if (!get_typed(env, argv[0], napi_uint8_array, (void **)&arena, &arena_len, "arena", "a Uint8Array")) return NULL;
  if (!get_typed(env, argv[1], napi_uint32_array, (void **)&desc, &desc_len, "desc", "a Uint32Array")) return NULL;
  if (!get_uint(env, argv[2], (uint32_t)(desc_len / SEND_STRIDE), &count, "count (at most desc.length / sendStride)"))
    return NULL;
  for (uint32_t i = 0; i < count; i++) {
    uint64_t offset = desc[SEND_STRIDE * i + SEND_OFFSET], length = desc[SEND_STRIDE * i + SEND_LENGTH];
    if (length < PACKET_SEND_FRAME_MIN || length > PACKET_SEND_FRAME_MAX || offset + length > arena_len) {
      char msg[160];
      snprintf(msg, sizeof msg, "frame %u: [offset %llu, length %llu] is not a frame of %u..%u bytes inside the arena (%zu bytes)",
               i, (unsigned long long)offset, (unsigned long long)length, PACKET_SEND_FRAME_MIN, PACKET_SEND_FRAME_MAX,
               arena_len);
      return throw_range(env, msg);
    }
  }
  napi_value result;
  NAPI_OK(napi_create_int32(env, count ? packet_send(&s->ring, arena, desc, count) : 0, &result));
  return result;
}

static void on_packet_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct packet_socket *s = handle->data;
  if (s->closed || !s->polling) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value arg;
  if (status < 0) { /* libuv could not poll the epoll descriptor itself */
    napi_create_int32(env, status, &arg);
    callback_invoke(env, &s->on_event, 1, &arg);
  } else {
    bool readable;
    int sock_error;
    if (packet_take_event(&s->ring, &readable, &sock_error) == 0) {
      if (sock_error != 0) { /* e.g. ENETDOWN: the interface went down */
        napi_create_int32(env, -sock_error, &arg);
        callback_invoke(env, &s->on_event, 1, &arg);
      }
      if (readable && s->polling) {
        napi_create_int32(env, 0, &arg);
        callback_invoke(env, &s->on_event, 1, &arg);
      }
    }
    /* The wake-up is edge-triggered: if JavaScript left frames in the ring,
     * ask for another wake-up on the next loop turn. */
    if (s->polling && packet_has_frames(&s->ring)) packet_rearm(&s->ring);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value packet_start_polling_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(1);
  if (s->closed) return packet_socket_closed_error(env, s);
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function)
    return throw_type(env, "startPolling(onEvent) takes a function");
  if (!callback_set(env, &s->on_event, argv[0], "aoe:PacketSocket")) return throw_last_napi_error(env);
  if (!s->poll_open) {
    uv_loop_t *loop;
    NAPI_OK(napi_get_uv_event_loop(env, &loop));
    int rc = uv_poll_init(loop, &s->poll, s->ring.epoll_fd);
    if (rc != 0) return throw_errno(env, -rc, "uv_poll_init on the packet socket failed");
    s->poll.data = s;
    s->poll_open = true;
    s->owners++;
  }
  int rc = uv_poll_start(&s->poll, UV_READABLE, on_packet_poll);
  if (rc != 0) return throw_errno(env, -rc, "uv_poll_start on the packet socket failed");
  s->polling = true;
  packet_rearm(&s->ring); /* frames that came before polling started */
  return NULL;
}

static napi_value packet_stop_polling_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(0);
  if (s->closed || !s->polling) return NULL;
  uv_poll_stop(&s->poll);
  s->polling = false;
  if (s->on_event.fn) napi_delete_reference(env, s->on_event.fn);
  s->on_event.fn = NULL;
  return NULL;
}

/* Whether a frame wakes libuv (startPolling's callback); the frame loop
 * turns it off while it waits on the socket itself (waiter.c). */
static napi_value packet_set_loop_wake_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(1);
  if (s->closed) return NULL;
  bool on;
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) return throw_type(env, "setLoopWake(on) takes a boolean");
  int rc = packet_set_loop_wake(&s->ring, on);
  if (rc < 0) return throw_errno(env, -rc, "epoll_ctl on the packet socket's wake-up failed");
  return NULL;
}

static napi_value packet_stats_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(0);
  if (s->closed) return packet_socket_closed_error(env, s);
  uint32_t packets, drops;
  int rc = packet_stats(&s->ring, &packets, &drops);
  if (rc < 0) return throw_errno(env, -rc, "PACKET_STATISTICS failed");
  napi_value result, value;
  NAPI_OK(napi_create_object(env, &result));
  NAPI_OK(napi_create_uint32(env, packets, &value));
  NAPI_OK(napi_set_named_property(env, result, "packets", value));
  NAPI_OK(napi_create_uint32(env, drops, &value));
  NAPI_OK(napi_set_named_property(env, result, "drops", value));
  return result;
}

static napi_value packet_close_method(napi_env env, napi_callback_info info) {
  PACKET_SOCKET_METHOD(0);
  if (s->closed) return NULL;
  packet_socket_shutdown(s, true);
  /* Detach first: afterwards `ring` has length 0, so no view can reach the
   * pages we unmap next. */
  napi_value buffer;
  bool detached = s->ring_buffer && napi_get_reference_value(env, s->ring_buffer, &buffer) == napi_ok &&
                  buffer != NULL && napi_detach_arraybuffer(env, buffer) == napi_ok;
  if (s->ring_buffer) napi_delete_reference(env, s->ring_buffer);
  s->ring_buffer = NULL;
  /* If it could not be detached, views may still read it: the buffer's own
   * finalizer unmaps it once they are gone. */
  if (detached) packet_unmap(&s->ring);
  return NULL;
}

static bool define_value(napi_env env, napi_value object, const char *name, napi_value value) {
  napi_property_descriptor d = {name, NULL, NULL, NULL, NULL, value, napi_enumerable, NULL};
  return napi_define_properties(env, object, 1, &d) == napi_ok;
}

static bool define_uint(napi_env env, napi_value object, const char *name, uint32_t v) {
  napi_value value;
  return napi_create_uint32(env, v, &value) == napi_ok && define_value(env, object, name, value);
}

static napi_value open_packet(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], value;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "openPacket(ifname, options) takes two arguments");

  struct packet_open_args args = {0};
  char ifname[64], netns[PATH_MAX];
  napi_valuetype type;
  if (!get_string(env, argv[0], ifname, sizeof ifname, "ifname")) return NULL;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_object)
    return throw_type(env, "options must be an object");
  if (!get_named(env, argv[1], "frameSize", &value)) return throw_type(env, "options.frameSize is required");
  if (!get_uint(env, value, UINT32_MAX, &args.frame_size, "options.frameSize")) return NULL;
  if (!get_named(env, argv[1], "frameCount", &value)) return throw_type(env, "options.frameCount is required");
  if (!get_uint(env, value, UINT32_MAX, &args.frame_count, "options.frameCount")) return NULL;
  if (get_named(env, argv[1], "sndbuf", &value) && !get_uint(env, value, INT32_MAX, &args.sndbuf, "options.sndbuf"))
    return NULL;
  if (get_named(env, argv[1], "netns", &value)) {
    if (!get_string(env, value, netns, sizeof netns, "options.netns")) return NULL;
    args.netns = netns;
  }
  if (get_named(env, argv[1], "accept", &value)) {
    char accept[16];
    if (!get_string(env, value, accept, sizeof accept, "options.accept")) return NULL;
    if (strcmp(accept, "replies") == 0) args.accept_replies = true;
    else if (strcmp(accept, "requests") != 0) return throw_type(env, "options.accept must be 'requests' or 'replies'");
  }
  args.ifname = ifname;

  struct packet_socket *s = calloc(1, sizeof *s);
  if (s == NULL) return throw_errno(env, ENOMEM, "out of memory");
  struct aoe_error err;
  if (packet_open(&s->ring, &args, &err) < 0) {
    free(s);
    return throw_aoe_error(env, &err);
  }
  s->env = env;
  snprintf(s->ifname, sizeof s->ifname, "%.15s", ifname); /* packet_open checked the length */

  napi_value object, buffer, ring_view;
  /* The ring is the one piece of memory the addon owns and JavaScript reads. */
  if (napi_create_external_arraybuffer(env, s->ring.base, s->ring.map_len, ring_buffer_finalize, s, &buffer) !=
      napi_ok) {
    packet_unmap(&s->ring);
    packet_close_fds(&s->ring);
    packet_free(&s->ring);
    free(s);
    return throw_errno(env, ENOTSUP,
                       "Node refused an external ArrayBuffer for the receive ring (is the V8 sandbox enabled?)");
  }
  s->owners = 1; /* the ArrayBuffer; its finalizer unmaps and frees from here on */
  static const struct method methods[] = {
      {"drain", packet_drain_method},
      {"ready", packet_ready_method},
      {"release", packet_release_method},
      {"releaseMany", packet_release_many_method},
      {"send", packet_send_method},
      {"startPolling", packet_start_polling_method},
      {"stopPolling", packet_stop_polling_method},
      {"setLoopWake", packet_set_loop_wake_method},
      {"stats", packet_stats_method},
      {"close", packet_close_method},
  };
  if (napi_create_reference(env, buffer, 1, &s->ring_buffer) != napi_ok ||
      napi_create_typedarray(env, napi_uint8_array, s->ring.map_len, buffer, 0, &ring_view) != napi_ok ||
      napi_create_object(env, &object) != napi_ok ||
      !define_methods(env, object, methods, sizeof methods / sizeof methods[0], s, packet_method_finalize, &s->owners) ||
      !define_uint(env, object, "fd", (uint32_t)s->ring.fd) ||
      !define_uint(env, object, "ifindex", (uint32_t)s->ring.ifindex) ||
      !define_value(env, object, "ring", ring_view) ||
      !define_uint(env, object, "frameSize", s->ring.frame_size) ||
      !define_uint(env, object, "frameCount", s->ring.frame_count) ||
      napi_add_finalizer(env, object, s, packet_socket_finalize, NULL, NULL) != napi_ok) {
    s->closed = true;
    packet_close_fds(&s->ring);
    if (s->ring_buffer) napi_delete_reference(env, s->ring_buffer);
    s->ring_buffer = NULL;
    return throw_last_napi_error(env);
  }
  s->owners++; /* the object */
  if (napi_add_env_cleanup_hook(env, packet_socket_env_exit, s) == napi_ok) s->cleanup_hook = true;
  return object;
}

/* ---- IoRing ---------------------------------------------------------------- */

struct io_ring_handle {
  struct io_queue queue;
  napi_env env;
  struct js_callback on_ready;
  uv_poll_t poll;           /* watches queue.event_fd */
  bool poll_open;
  bool polling;
  bool closed;
  bool cleanup_hook;
  int owners;               /* object, methods, poll handle */
};

static void io_ring_env_exit(void *arg);

static void io_ring_unref(struct io_ring_handle *r) {
  if (--r->owners > 0) return;
  free(r);
}

static void on_io_poll_closed(uv_handle_t *handle) {
  io_ring_unref(handle->data);
}

static void io_ring_shutdown(struct io_ring_handle *r, bool env_alive) {
  if (r->closed) return;
  r->closed = true;
  r->polling = false;
  if (r->poll_open) {
    r->poll_open = false;
    uv_close((uv_handle_t *)&r->poll, on_io_poll_closed);
  }
  /* Waits for the kernel to finish with every buffer before we let go of them. */
  io_queue_close(&r->queue);
  for (int i = 0; i < IORING_MAX_BUFFERS; i++) {
    struct io_buffer *buf = &r->queue.buffers[i];
    if (buf->owner && env_alive) napi_delete_reference(r->env, (napi_ref)buf->owner);
    memset(buf, 0, sizeof *buf);
  }
  callback_clear(r->env, &r->on_ready, env_alive);
  if (r->cleanup_hook && env_alive) napi_remove_env_cleanup_hook(r->env, io_ring_env_exit, r);
}

static void io_ring_env_exit(void *arg) {
  struct io_ring_handle *r = arg;
  r->cleanup_hook = false;
  io_ring_shutdown(r, false);
}

static void io_method_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  io_ring_unref(data);
}

static void io_ring_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct io_ring_handle *r = data;
  io_ring_shutdown(r, true);
  io_ring_unref(r);
}

#define IO_RING_METHOD(argc_max)                                   \
  size_t argc = (argc_max);                                        \
  napi_value argv[(argc_max) + 1];                                 \
  struct io_ring_handle *r = method_state(env, info, &argc, argv); \
  if (r == NULL) return NULL;                                      \
  if (r->closed) return throw_errno(env, EBADF, "the io ring is closed; open a new one with openIoRing()");

static napi_value io_register_buffer_method(napi_env env, napi_callback_info info) {
  IO_RING_METHOD(2);
  uint32_t id;
  uint8_t *data;
  size_t len;
  if (argc < 2) return throw_type(env, "registerBuffer(id, mem) takes two arguments");
  if (!get_uint(env, argv[0], IORING_MAX_BUFFERS - 1, &id, "buffer id")) return NULL;
  if (!get_typed(env, argv[1], napi_uint8_array, (void **)&data, &len, "mem", "a Uint8Array")) return NULL;
  struct io_buffer *buf = &r->queue.buffers[id];
  if (buf->owner) {
    char msg[160];
    snprintf(msg, sizeof msg, "buffer id %u is in use%s; unregister it first", id,
             buf->registered ? "" : " (operations on it are still in flight)");
    return throw_errno(env, EBUSY, msg);
  }
  napi_ref ref;
  NAPI_OK(napi_create_reference(env, argv[1], 1, &ref));
  buf->owner = ref;
  buf->base = data;
  buf->len = len;
  buf->in_flight = 0;
  buf->registered = true;
  return NULL;
}

static void release_idle_buffer(struct io_buffer *buf, void *ctx) {
  napi_env env = ctx;
  napi_delete_reference(env, (napi_ref)buf->owner);
  buf->owner = NULL;
  buf->base = NULL;
  buf->len = 0;
}

static napi_value io_unregister_buffer_method(napi_env env, napi_callback_info info) {
  IO_RING_METHOD(1);
  uint32_t id;
  if (argc < 1) return throw_type(env, "unregisterBuffer(id) takes a buffer id");
  if (!get_uint(env, argv[0], IORING_MAX_BUFFERS - 1, &id, "buffer id")) return NULL;
  struct io_buffer *buf = &r->queue.buffers[id];
  if (!buf->registered) {
    char msg[96];
    snprintf(msg, sizeof msg, "buffer id %u is not registered", id);
    return throw_errno(env, ENOENT, msg);
  }
  buf->registered = false; /* new ops on it are refused from now on */
  if (buf->in_flight == 0) release_idle_buffer(buf, env);
  return NULL;
}

static napi_value io_submit_method(napi_env env, napi_callback_info info) {
  IO_RING_METHOD(3);
  double *ops;
  uint32_t *tags;
  size_t ops_len, tags_len;
  uint32_t count;
  if (argc < 3) return throw_type(env, "submit(ops, tags, count) takes three arguments");
  if (!get_typed(env, argv[0], napi_float64_array, (void **)&ops, &ops_len, "ops", "a Float64Array")) return NULL;
  if (!get_typed(env, argv[1], napi_uint32_array, (void **)&tags, &tags_len, "tags", "a Uint32Array")) return NULL;
  size_t fit = ops_len / IO_OP_STRIDE < tags_len ? ops_len / IO_OP_STRIDE : tags_len;
  if (!get_uint(env, argv[2], (uint32_t)fit, &count, "count (at most ops.length / ioOpStride and tags.length)"))
    return NULL;
  napi_value result;
  NAPI_OK(napi_create_int32(env, io_queue_submit(&r->queue, (const struct io_op *)ops, tags, count), &result));
  return result;
}

static napi_value io_reap_method(napi_env env, napi_callback_info info) {
  IO_RING_METHOD(2);
  int32_t *out;
  size_t out_len;
  uint32_t max;
  if (argc < 2) return throw_type(env, "reap(out, max) takes two arguments");
  if (!get_typed(env, argv[0], napi_int32_array, (void **)&out, &out_len, "out", "an Int32Array")) return NULL;
  if (!get_uint(env, argv[1], UINT32_MAX, &max, "max")) return NULL;
  if (max > out_len / REAP_STRIDE) max = (uint32_t)(out_len / REAP_STRIDE);
  napi_value result;
  NAPI_OK(napi_create_uint32(env, io_queue_reap(&r->queue, out, max, release_idle_buffer, env), &result));
  return result;
}

static void on_io_poll(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  struct io_ring_handle *r = handle->data;
  if (r->closed || !r->polling) return;
  io_queue_ack_event(&r->queue);
  napi_handle_scope scope;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return;
  callback_invoke(r->env, &r->on_ready, 0, NULL);
  napi_close_handle_scope(r->env, scope);
}

static napi_value io_start_polling_method(napi_env env, napi_callback_info info) {
  IO_RING_METHOD(1);
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function)
    return throw_type(env, "startPolling(onReady) takes a function");
  if (!callback_set(env, &r->on_ready, argv[0], "aoe:IoRing")) return throw_last_napi_error(env);
  if (!r->poll_open) {
    uv_loop_t *loop;
    NAPI_OK(napi_get_uv_event_loop(env, &loop));
    int rc = uv_poll_init(loop, &r->poll, r->queue.event_fd);
    if (rc != 0) return throw_errno(env, -rc, "uv_poll_init on the io ring eventfd failed");
    r->poll.data = r;
    r->poll_open = true;
    r->owners++;
  }
  int rc = uv_poll_start(&r->poll, UV_READABLE, on_io_poll);
  if (rc != 0) return throw_errno(env, -rc, "uv_poll_start on the io ring eventfd failed");
  r->polling = true;
  return NULL;
}

static napi_value io_stop_polling_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  struct io_ring_handle *r = method_state(env, info, &argc, NULL);
  if (r == NULL || r->closed || !r->polling) return NULL;
  uv_poll_stop(&r->poll);
  r->polling = false;
  if (r->on_ready.fn) napi_delete_reference(env, r->on_ready.fn);
  r->on_ready.fn = NULL;
  return NULL;
}

static napi_value io_close_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  struct io_ring_handle *r = method_state(env, info, &argc, NULL);
  if (r == NULL) return NULL;
  io_ring_shutdown(r, true);
  return NULL;
}

static napi_value open_io_ring(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t depth;
  if (argc < 1) return throw_type(env, "openIoRing(depth) takes a depth");
  if (!get_uint(env, argv[0], IORING_MAX_DEPTH, &depth, "depth")) return NULL;

  struct io_ring_handle *r = calloc(1, sizeof *r);
  if (r == NULL) return throw_errno(env, ENOMEM, "out of memory");
  struct aoe_error err;
  if (io_queue_open(&r->queue, depth, &err) < 0) {
    free(r);
    return throw_aoe_error(env, &err);
  }
  r->env = env;

  static const struct method methods[] = {
      {"registerBuffer", io_register_buffer_method},
      {"unregisterBuffer", io_unregister_buffer_method},
      {"submit", io_submit_method},
      {"reap", io_reap_method},
      {"startPolling", io_start_polling_method},
      {"stopPolling", io_stop_polling_method},
      {"close", io_close_method},
  };
  napi_value object, kind;
  if (napi_create_object(env, &object) != napi_ok ||
      !define_methods(env, object, methods, sizeof methods / sizeof methods[0], r, io_method_finalize, &r->owners) ||
      napi_create_string_utf8(env, r->queue.uring ? "io_uring" : "sync", NAPI_AUTO_LENGTH, &kind) != napi_ok ||
      !define_value(env, object, "kind", kind) || !define_uint(env, object, "depth", depth) ||
      !define_uint(env, object, "eventFd", (uint32_t)r->queue.event_fd) ||
      napi_add_finalizer(env, object, r, io_ring_finalize, NULL, NULL) != napi_ok) {
    /* Methods already made hold `r`; it is freed when the last of them goes. */
    io_ring_shutdown(r, true);
    if (r->owners == 0) free(r);
    return throw_last_napi_error(env);
  }
  r->owners++; /* the object */
  if (napi_add_env_cleanup_hook(env, io_ring_env_exit, r) == napi_ok) r->cleanup_hook = true;
  return object;
}

/* ---- FrameWaiter ------------------------------------------------------------ */

struct waiter_handle {
  struct frame_waiter w;
  uv_loop_t *loop;
  int32_t *events;          /* bindEvents()'s array, kept by events_ref */
  uint32_t events_max;      /* pairs it holds */
  napi_ref events_ref;
  bool closed;
  bool cleanup_hook;
  napi_env env;
  int owners;   /* object and methods */
};

static void waiter_env_exit(void *arg);

static void waiter_shutdown(struct waiter_handle *h, bool env_alive) {
  if (h->closed) return;
  h->closed = true;
  waiter_close(&h->w);
  if (h->events_ref != NULL && env_alive) napi_delete_reference(h->env, h->events_ref);
  h->events_ref = NULL;
  h->events = NULL;
  if (h->cleanup_hook && env_alive) napi_remove_env_cleanup_hook(h->env, waiter_env_exit, h);
  h->cleanup_hook = false;
}

static void waiter_unref(struct waiter_handle *h) {
  if (--h->owners > 0) return;
  free(h);
}

static void waiter_env_exit(void *arg) {
  struct waiter_handle *h = arg;
  h->cleanup_hook = false;
  waiter_shutdown(h, false);
}

static void waiter_method_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  waiter_unref(data);
}

static void waiter_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  waiter_shutdown(data, true);
  waiter_unref(data);
}

#define WAITER_METHOD(argc_max)                                  \
  size_t argc = (argc_max);                                      \
  napi_value argv[(argc_max) + 1];                               \
  struct waiter_handle *h = method_state(env, info, &argc, argv); \
  if (h == NULL) return NULL;                                    \
  if (h->closed) return throw_errno(env, EBADF, "the frame waiter is closed");

static napi_value waiter_watch_method(napi_env env, napi_callback_info info) {
  WAITER_METHOD(3);
  uint32_t fd, tag;
  bool eventfd = false;
  if (argc < 2) return throw_type(env, "watch(fd, tag, isEventFd) takes a descriptor and a tag");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd") || !get_uint(env, argv[1], INT32_MAX, &tag, "tag")) return NULL;
  if (argc > 2 && napi_get_value_bool(env, argv[2], &eventfd) != napi_ok) return throw_type(env, "isEventFd must be a boolean");
  int rc = waiter_watch(&h->w, (int)fd, tag, eventfd);
  if (rc < 0) return throw_errno(env, -rc, "epoll_ctl (frame waiter) failed");
  return NULL;
}

static napi_value waiter_unwatch_method(napi_env env, napi_callback_info info) {
  WAITER_METHOD(1);
  uint32_t fd;
  if (argc < 1) return throw_type(env, "unwatch(fd) takes a descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  int rc = waiter_unwatch(&h->w, (int)fd);
  if (rc < 0) return throw_errno(env, -rc, "epoll_ctl (frame waiter) failed");
  return NULL;
}

/* wait(timeoutMs): blocks until a watched descriptor is ready, libuv's
 * descriptor is readable or timeoutMs passed, and writes [tag, events] pairs
 * into the array given to bindEvents(). Returns their count n, or -(n + 1)
 * when libuv's descriptor is readable. Timers are the caller's business
 * (loopTimeout()): no clock is read here, once per frame mattered. */
static napi_value waiter_wait_method(napi_env env, napi_callback_info info) {
  WAITER_METHOD(1);
  uint32_t timeout;
  if (argc < 1) return throw_type(env, "wait(timeoutMs) takes a timeout");
  if (!get_uint(env, argv[0], INT32_MAX, &timeout, "timeoutMs")) return NULL;
  if (h->events == NULL) return throw_type(env, "wait() needs an array from bindEvents() first");
  bool loop_due = false;
  int n = waiter_wait(&h->w, h->events, h->events_max, (int)timeout, &loop_due);
  if (n < 0) return throw_errno(env, -n, "epoll_wait (frame waiter) failed");
  napi_value result;
  NAPI_OK(napi_create_int32(env, loop_due ? -(n + 1) : n, &result));
  return result;
}

/* bindEvents(out): the Int32Array wait() writes into, kept referenced. */
static napi_value waiter_bind_events_method(napi_env env, napi_callback_info info) {
  WAITER_METHOD(1);
  size_t len;
  void *data;
  if (argc < 1 || !get_typed(env, argv[0], napi_int32_array, &data, &len, "out", "an Int32Array")) return NULL;
  if (h->events_ref != NULL) napi_delete_reference(env, h->events_ref);
  h->events_ref = NULL;
  NAPI_OK(napi_create_reference(env, argv[0], 1, &h->events_ref));
  h->events = data;
  h->events_max = (uint32_t)(len / 2);
  return NULL;
}

/* loopTimeout(): milliseconds until libuv's next timer (-1: none; 0: it has
 * work now, e.g. an immediate), as of now. */
static napi_value waiter_loop_timeout_method(napi_env env, napi_callback_info info) {
  WAITER_METHOD(0);
  uv_update_time(h->loop);
  napi_value result;
  NAPI_OK(napi_create_int32(env, uv_backend_timeout(h->loop), &result));
  return result;
}

static napi_value waiter_close_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  struct waiter_handle *h = method_state(env, info, &argc, NULL);
  if (h != NULL) waiter_shutdown(h, true);
  return NULL;
}

static napi_value open_frame_waiter(napi_env env, napi_callback_info info) {
  (void)info;
  uv_loop_t *loop;
  NAPI_OK(napi_get_uv_event_loop(env, &loop));
  struct waiter_handle *h = calloc(1, sizeof *h);
  if (h == NULL) return throw_errno(env, ENOMEM, "out of memory");
  struct aoe_error err;
  if (waiter_open(&h->w, uv_backend_fd(loop), &err) < 0) {
    free(h);
    return throw_aoe_error(env, &err);
  }
  h->loop = loop;
  h->env = env;
  static const struct method methods[] = {
      {"watch", waiter_watch_method},
      {"unwatch", waiter_unwatch_method},
      {"wait", waiter_wait_method},
      {"bindEvents", waiter_bind_events_method},
      {"loopTimeout", waiter_loop_timeout_method},
      {"close", waiter_close_method},
  };
  napi_value object;
  if (napi_create_object(env, &object) != napi_ok ||
      !define_methods(env, object, methods, sizeof methods / sizeof methods[0], h, waiter_method_finalize, &h->owners) ||
      napi_add_finalizer(env, object, h, waiter_finalize, NULL, NULL) != napi_ok) {
    waiter_shutdown(h, true);
    if (h->owners == 0) free(h);
    return throw_last_napi_error(env);
  }
  h->owners++;
  if (napi_add_env_cleanup_hook(env, waiter_env_exit, h) == napi_ok) h->cleanup_hook = true;
  return object;
}

/* ---- free functions ------------------------------------------------------- */

static napi_value link_info(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char ifname[64], netns[PATH_MAX];
  if (argc < 1) return throw_type(env, "linkInfo(ifname, netns?) takes an interface name");
  if (!get_string(env, argv[0], ifname, sizeof ifname, "ifname")) return NULL;
  const char *ns = NULL;
  if (argc > 1 && !is_nullish(env, argv[1])) {
    if (!get_string(env, argv[1], netns, sizeof netns, "netns")) return NULL;
    ns = netns;
  }
  struct link_state link;
  struct aoe_error err;
  int rc = link_query(ifname, ns, &link, &err);
  if (rc < 0) return throw_aoe_error(env, &err);
  napi_value result, value, mac_buffer;
  if (rc == 0) {
    NAPI_OK(napi_get_null(env, &result));
    return result;
  }
  void *mac_data;
  NAPI_OK(napi_create_object(env, &result));
  NAPI_OK(napi_create_int32(env, link.ifindex, &value));
  NAPI_OK(napi_set_named_property(env, result, "ifindex", value));
  NAPI_OK(napi_create_int32(env, link.mtu, &value));
  NAPI_OK(napi_set_named_property(env, result, "mtu", value));
  NAPI_OK(napi_create_arraybuffer(env, 6, &mac_data, &mac_buffer));
  memcpy(mac_data, link.mac, 6);
  NAPI_OK(napi_create_typedarray(env, napi_uint8_array, 6, mac_buffer, 0, &value));
  NAPI_OK(napi_set_named_property(env, result, "mac", value));
  NAPI_OK(napi_get_boolean(env, link.up, &value));
  NAPI_OK(napi_set_named_property(env, result, "up", value));
  return result;
}

static napi_value block_device_size_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "blockDeviceSize(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  struct aoe_error err;
  int64_t bytes = block_device_size((int)fd, &err);
  if (bytes < 0) return throw_aoe_error(env, &err);
  napi_value result;
  NAPI_OK(napi_create_double(env, (double)bytes, &result)); /* exact below 2^53 bytes (8 PiB) */
  return result;
}

/* punchHole(fd, position, length): fallocate PUNCH_HOLE | KEEP_SIZE; throws
 * with the errno (EOPNOTSUPP: the file system cannot). detect-zeroes asks it
 * once past a file's end, where it changes nothing, to learn whether it can. */
static napi_value punch_hole_fn(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  double pos, len;
  if (argc < 3) return throw_type(env, "punchHole(fd, position, length) takes three arguments");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  if (napi_get_value_double(env, argv[1], &pos) != napi_ok || !(pos >= 0 && pos <= 9007199254740992.0) ||
      napi_get_value_double(env, argv[2], &len) != napi_ok || !(len >= 1 && len <= 9007199254740992.0))
    return throw_type(env, "punchHole: position and length must be whole numbers of bytes, length at least 1");
  int r;
  do r = fallocate((int)fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)pos, (off_t)len);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    char msg[96];
    snprintf(msg, sizeof msg, "fallocate(PUNCH_HOLE) failed: %s", strerror(e));
    return throw_errno(env, e, msg);
  }
  return NULL;
}

static napi_value map_file_fn(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  double length;
  bool writable;
  if (argc < 3) return throw_type(env, "mapFile(fd, length, writable) takes three arguments");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  if (napi_get_value_double(env, argv[1], &length) != napi_ok || !(length >= 1 && length <= 9007199254740992.0) ||
      length != (double)(uint64_t)length)
    return throw_type(env, "length must be a whole number of bytes, at least 1");
  if (napi_get_value_bool(env, argv[2], &writable) != napi_ok) return throw_type(env, "writable must be a boolean");
  int r = mapped_open((int)fd, (size_t)length, writable);
  if (r < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot map fd %u (%.0f bytes): %s", fd, length, strerror(-r));
    return throw_errno(env, -r, msg);
  }
  return NULL;
}

static napi_value unmap_file_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "unmapFile(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  napi_value result;
  NAPI_OK(napi_get_boolean(env, mapped_close((int)fd) == 0, &result));
  return result;
}

static napi_value reflink_clone_fn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t src, dst;
  if (argc < 2) return throw_type(env, "reflinkClone(srcFd, dstFd) takes two file descriptors");
  if (!get_uint(env, argv[0], INT32_MAX, &src, "srcFd") || !get_uint(env, argv[1], INT32_MAX, &dst, "dstFd")) return NULL;
  struct aoe_error err;
  if (reflink_clone((int)src, (int)dst, &err) < 0) return throw_aoe_error(env, &err);
  return NULL;
}

/* A byte offset or length: a whole number in 0..2^53 (exact in a double). */
static bool get_offset(napi_env env, napi_value value, uint64_t *out, const char *name) {
  double d;
  if (!get_whole(env, value, 9007199254740992.0, &d, name)) return false;
  *out = (uint64_t)d;
  return true;
}

static napi_value reflink_clone_range_fn(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "reflinkCloneRange(srcFd, srcOffset, length, dstFd, dstOffset) takes five numbers");
  uint32_t src, dst;
  uint64_t src_off, len, dst_off;
  if (!get_uint(env, argv[0], INT32_MAX, &src, "srcFd") || !get_offset(env, argv[1], &src_off, "srcOffset") ||
      !get_offset(env, argv[2], &len, "length") || !get_uint(env, argv[3], INT32_MAX, &dst, "dstFd") ||
      !get_offset(env, argv[4], &dst_off, "dstOffset"))
    return NULL;
  struct aoe_error err;
  if (reflink_clone_range((int)src, src_off, len, (int)dst, dst_off, &err) < 0) return throw_aoe_error(env, &err);
  return NULL;
}

/* FICLONE of a file with many extents takes tens of milliseconds: off the
 * event loop, on a libuv pool thread, resolving a promise. */
struct clone_job {
  napi_async_work work;
  napi_deferred deferred;
  int src, dst, rc;
  struct aoe_error err;
};

static void clone_execute(napi_env env, void *data) {
  (void)env;
  struct clone_job *j = data;
  j->rc = reflink_clone(j->src, j->dst, &j->err);
}

/* Rejects an async call's promise with an Error like throw_errno's: code, message, errno. */
static void reject_errno(napi_env env, napi_deferred deferred, int errnum, const char *text) {
  napi_value code, msg, error, errno_value;
  napi_create_string_utf8(env, aoe_errno_name(errnum), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -errnum, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_reject_deferred(env, deferred, error);
}

static void clone_complete(napi_env env, napi_status status, void *data) {
  struct clone_job *j = data;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  if (status == napi_ok && j->rc == 0) {
    napi_resolve_deferred(env, j->deferred, undefined);
  } else {
    int errnum = status == napi_ok ? j->err.errnum : ECANCELED;
    const char *text = status == napi_ok ? j->err.message : "clone cancelled";
    reject_errno(env, j->deferred, errnum, text);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value reflink_clone_async_fn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t src, dst;
  if (argc < 2) return throw_type(env, "reflinkCloneAsync(srcFd, dstFd) takes two file descriptors");
  if (!get_uint(env, argv[0], INT32_MAX, &src, "srcFd") || !get_uint(env, argv[1], INT32_MAX, &dst, "dstFd")) return NULL;
  struct clone_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "out of memory");
  j->src = (int)src;
  j->dst = (int)dst;
  napi_value promise, name;
  NAPI_OK(napi_create_promise(env, &j->deferred, &promise));
  NAPI_OK(napi_create_string_utf8(env, "reflinkClone", NAPI_AUTO_LENGTH, &name));
  NAPI_OK(napi_create_async_work(env, NULL, name, clone_execute, clone_complete, j, &j->work));
  NAPI_OK(napi_queue_async_work(env, j->work));
  return promise;
}

static napi_value reflink_probe_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char dir[PATH_MAX];
  if (argc < 1) return throw_type(env, "reflinkSupported(dir) takes a directory");
  if (!get_string(env, argv[0], dir, sizeof dir, "dir")) return NULL;
  struct aoe_error err;
  int r = reflink_probe(dir, &err);
  if (r < 0) return throw_aoe_error(env, &err);
  napi_value result;
  NAPI_OK(napi_get_boolean(env, r == 1, &result));
  return result;
}

static void aligned_buffer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* alignedBuffer(bytes): zeroed memory that starts on a page, for buffers
 * that O_DIRECT reads and writes (sector alignment on every file system).
 * A plain ArrayBuffer is only as aligned as malloc makes it. */
static napi_value aligned_buffer_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t bytes;
  if (argc < 1) return throw_type(env, "alignedBuffer(bytes) takes a size");
  if (!get_uint(env, argv[0], INT32_MAX, &bytes, "bytes")) return NULL;
  void *mem = NULL;
  int e = posix_memalign(&mem, 4096, bytes > 0 ? bytes : 1);
  if (e != 0) return throw_errno(env, e, "cannot allocate aligned memory for frame buffers");
  memset(mem, 0, bytes);
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, mem, bytes, aligned_buffer_finalize, NULL, &buffer) != napi_ok) {
    free(mem);
    return throw_errno(env, ENOTSUP, "Node refused an external ArrayBuffer (is the V8 sandbox enabled?)");
  }
  return buffer;
}

static napi_value own_bytes_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "unsharedBytes(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  struct aoe_error err;
  int64_t bytes = reflink_own_bytes((int)fd, true, &err);
  if (bytes < 0) return throw_aoe_error(env, &err);
  napi_value result;
  NAPI_OK(napi_create_double(env, (double)bytes, &result));
  return result;
}

/* The own bytes of a file for stats: on a libuv pool thread and without
 * forcing writeback, so that measuring hundreds of views costs the serving
 * thread nothing and writes no one's dirty data early. */
struct own_bytes_job {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int64_t bytes;
  struct aoe_error err;
};

static void own_bytes_execute(napi_env env, void *data) {
  (void)env;
  struct own_bytes_job *j = data;
  j->bytes = reflink_own_bytes(j->fd, false, &j->err);
}

static void own_bytes_complete(napi_env env, napi_status status, void *data) {
  struct own_bytes_job *j = data;
  if (status == napi_ok && j->bytes >= 0) {
    napi_value result;
    napi_create_double(env, (double)j->bytes, &result);
    napi_resolve_deferred(env, j->deferred, result);
  } else {
    int errnum = status == napi_ok ? j->err.errnum : ECANCELED;
    const char *text = status == napi_ok ? j->err.message : "measuring cancelled";
    reject_errno(env, j->deferred, errnum, text);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value own_bytes_async_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "unsharedBytesAsync(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  struct own_bytes_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "out of memory");
  j->fd = (int)fd;
  napi_value promise, name;
  NAPI_OK(napi_create_promise(env, &j->deferred, &promise));
  NAPI_OK(napi_create_string_utf8(env, "unsharedBytes", NAPI_AUTO_LENGTH, &name));
  NAPI_OK(napi_create_async_work(env, NULL, name, own_bytes_execute, own_bytes_complete, j, &j->work));
  NAPI_OK(napi_queue_async_work(env, j->work));
  return promise;
}

static napi_value extents_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "fileExtents(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  struct aoe_error err;
  double *v = NULL;
  size_t n = 0;
  if (reflink_extents((int)fd, &v, &n, &err) < 0) return throw_aoe_error(env, &err);
  napi_value ab, result;
  void *data;
  napi_status st = napi_create_arraybuffer(env, n * sizeof(double), &data, &ab);
  if (st == napi_ok && n > 0) memcpy(data, v, n * sizeof(double));
  free(v);
  NAPI_OK(st);
  NAPI_OK(napi_create_typedarray(env, napi_float64_array, n, ab, 0, &result));
  return result;
}

/* imageLease(fd, take): takes (true) or gives up (false) a read lease. */
static napi_value image_lease_fn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  bool take;
  if (argc < 2) return throw_type(env, "imageLease(fd, take) takes a file descriptor and a boolean");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  if (napi_get_value_bool(env, argv[1], &take) != napi_ok) return throw_type(env, "take must be a boolean");
  struct aoe_error err;
  if (image_lease((int)fd, take ? F_RDLCK : F_UNLCK, &err) < 0) return throw_aoe_error(env, &err);
  return NULL;
}

/* imageLeaseHeld(fd): true while the read lease is held and no writer waits for it. */
static napi_value image_lease_held_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "imageLeaseHeld(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  struct aoe_error err;
  int r = image_lease_state((int)fd, &err);
  if (r < 0) return throw_aoe_error(env, &err);
  napi_value result;
  NAPI_OK(napi_get_boolean(env, r == F_RDLCK, &result));
  return result;
}

static napi_value lock_file_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "lockFile(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  /* Exclusive and non-blocking: the kernel drops it when the last descriptor of this open file closes. */
  int r;
  do r = flock((int)fd, LOCK_EX | LOCK_NB);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EWOULDBLOCK) return throw_errno(env, errno, "cannot lock the file (flock)");
  napi_value result;
  NAPI_OK(napi_get_boolean(env, r == 0, &result));
  return result;
}

/*
 * rangeLock(fd, op, start, length): an open file description lock
 * (F_OFD_SETLK, never waiting) on bytes [start, start+length), length 0 =
 * to the end of any file. op 'r' read, 'w' write, 'u' unlock; true when
 * done, false when another open file holds a conflicting lock.
 * rangeLockTest(fd, op, start, length) (F_OFD_GETLK): whether such a lock
 * could be taken now; false when another open file holds a conflicting one.
 */
static napi_value range_lock_common(napi_env env, napi_callback_info info, bool test) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "rangeLock(fd, op, start, length) takes four arguments");
  uint32_t fd;
  char op[4];
  uint64_t start, length; /* 0..2^53 (get_offset), so they fit off_t */
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  if (!get_string(env, argv[1], op, sizeof op, "op")) return NULL;
  if (!get_offset(env, argv[2], &start, "start") || !get_offset(env, argv[3], &length, "length")) return NULL;
  short type = op[0] == 'r' ? F_RDLCK : op[0] == 'w' ? F_WRLCK : op[0] == 'u' && !test ? F_UNLCK : -1;
  if (type < 0 || op[1] != '\0') return throw_range(env, "op must be 'r', 'w' or (to take) 'u'");
  struct flock fl;
  memset(&fl, 0, sizeof fl); /* l_pid must be 0 for OFD locks */
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)start;
  fl.l_len = (off_t)length;
  int r;
  do r = fcntl((int)fd, test ? F_OFD_GETLK : F_OFD_SETLK, &fl);
  while (r < 0 && errno == EINTR);
  bool granted;
  if (r == 0) granted = !test || fl.l_type == F_UNLCK;
  else if (!test && (errno == EAGAIN || errno == EACCES)) granted = false;
  else return throw_errno(env, errno, test ? "cannot test a range lock (F_OFD_GETLK)" : "cannot take a range lock (F_OFD_SETLK)");
  napi_value result;
  NAPI_OK(napi_get_boolean(env, granted, &result));
  return result;
}

static napi_value range_lock_fn(napi_env env, napi_callback_info info) {
  return range_lock_common(env, info, false);
}

static napi_value range_lock_test_fn(napi_env env, napi_callback_info info) {
  return range_lock_common(env, info, true);
}

static napi_value unix_datagram_send_fn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_MAX];
  if (argc < 2) return throw_type(env, "unixDatagramSend(path, message) takes two arguments");
  if (!get_string(env, argv[0], path, sizeof path, "path")) return NULL;
  napi_valuetype type;
  size_t len;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_string) return throw_type(env, "message must be a string");
  NAPI_OK(napi_get_value_string_utf8(env, argv[1], NULL, 0, &len));
  char *message = malloc(len + 1);
  if (message == NULL) return throw_errno(env, ENOMEM, "out of memory");
  napi_get_value_string_utf8(env, argv[1], message, len + 1, &len);
  struct aoe_error err;
  int rc = unix_datagram_send(path, message, len, &err);
  free(message);
  if (rc < 0) return throw_aoe_error(env, &err);
  return NULL;
}

static napi_value peer_credentials_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1) return throw_type(env, "peerCredentials(fd) takes a file descriptor");
  if (!get_uint(env, argv[0], INT32_MAX, &fd, "fd")) return NULL;
  struct peer_credentials cred;
  struct aoe_error err;
  if (unix_peer_credentials((int)fd, &cred, &err) < 0) return throw_aoe_error(env, &err);
  napi_value result, value;
  NAPI_OK(napi_create_object(env, &result));
  NAPI_OK(napi_create_int32(env, cred.pid, &value));
  NAPI_OK(napi_set_named_property(env, result, "pid", value));
  NAPI_OK(napi_create_uint32(env, cred.uid, &value));
  NAPI_OK(napi_set_named_property(env, result, "uid", value));
  NAPI_OK(napi_create_uint32(env, cred.gid, &value));
  NAPI_OK(napi_set_named_property(env, result, "gid", value));
  return result;
}

static napi_value ids_object(napi_env env, const struct privilege_ids *ids) {
  napi_value result, value;
  NAPI_OK(napi_create_object(env, &result));
  NAPI_OK(napi_create_uint32(env, ids->uid, &value));
  NAPI_OK(napi_set_named_property(env, result, "uid", value));
  NAPI_OK(napi_create_uint32(env, ids->gid, &value));
  NAPI_OK(napi_set_named_property(env, result, "gid", value));
  return result;
}

static napi_value lookup_user_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char user[256];
  if (argc < 1) return throw_type(env, "lookupUser(user) takes a user name");
  if (!get_string(env, argv[0], user, sizeof user, "user")) return NULL;
  struct privilege_ids ids;
  struct aoe_error err;
  int rc = privilege_lookup(user, &ids, &err);
  if (rc < 0) return throw_aoe_error(env, &err);
  if (rc == 0) {
    napi_value null_value;
    NAPI_OK(napi_get_null(env, &null_value));
    return null_value;
  }
  return ids_object(env, &ids);
}

/* dropPrivileges(user[, keepLease]) */
static napi_value drop_privileges_fn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char user[256];
  if (argc < 1) return throw_type(env, "dropPrivileges(user[, keepLease]) takes a user name");
  if (!get_string(env, argv[0], user, sizeof user, "user")) return NULL;
  bool keep_lease = false;
  if (argc >= 2) {
    napi_valuetype type;
    NAPI_OK(napi_typeof(env, argv[1], &type));
    if (type != napi_undefined && (type != napi_boolean || napi_get_value_bool(env, argv[1], &keep_lease) != napi_ok))
      return throw_type(env, "dropPrivileges: keepLease must be a boolean");
  }
  struct privilege_ids ids;
  struct aoe_error err;
  if (privilege_drop(user, keep_lease, &ids, &err) < 0) return throw_aoe_error(env, &err);
  return ids_object(env, &ids);
}

/* denyWriteLeases(): fcntl(F_SETLEASE, F_WRLCK) fails with EPERM in the whole process from now on. */
static napi_value deny_write_leases_fn(napi_env env, napi_callback_info info) {
  (void)info;
  struct aoe_error err;
  if (privilege_deny_write_leases(&err) < 0) return throw_aoe_error(env, &err);
  napi_value undefined;
  NAPI_OK(napi_get_undefined(env, &undefined));
  return undefined;
}

static napi_value privilege_confined_fn(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  NAPI_OK(napi_get_boolean(env, privilege_confined() == 1, &result));
  return result;
}

/* A NULL-terminated copy of an array of strings (freed with free_strings); NULL with an error thrown. */
static char **get_strings(napi_env env, napi_value array, const char *name) {
  bool is_array = false;
  uint32_t n = 0;
  char msg[128];
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array) {
    snprintf(msg, sizeof msg, "%s must be an array of strings", name);
    throw_type(env, msg);
    return NULL;
  }
  napi_get_array_length(env, array, &n);
  char **out = calloc((size_t)n + 1, sizeof *out);
  if (out == NULL) {
    throw_errno(env, ENOMEM, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    size_t len = 0;
    napi_valuetype type;
    if (napi_get_element(env, array, i, &item) != napi_ok || napi_typeof(env, item, &type) != napi_ok ||
        type != napi_string) {
      snprintf(msg, sizeof msg, "%s must be an array of strings", name);
      throw_type(env, msg);
      goto failed;
    }
    napi_get_value_string_utf8(env, item, NULL, 0, &len);
    out[i] = malloc(len + 1);
    if (out[i] == NULL) {
      throw_errno(env, ENOMEM, "out of memory");
      goto failed;
    }
    napi_get_value_string_utf8(env, item, out[i], len + 1, &len);
  }
  return out;
failed:
  for (uint32_t i = 0; i < n; i++) free(out[i]);
  free(out);
  return NULL;
}

static void free_strings(char **strings) {
  if (strings == NULL) return;
  for (char **s = strings; *s != NULL; s++) free(*s);
  free(strings);
}

static napi_value reexec_confined_fn(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "reexecConfined(file, argv, env, keepFds) takes four arguments");
  char file[PATH_MAX];
  if (!get_string(env, argv[0], file, sizeof file, "file")) return NULL;
  int fds[16];
  uint32_t nfds = 0;
  bool is_array = false;
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array) return throw_type(env, "keepFds must be an array");
  napi_get_array_length(env, argv[3], &nfds);
  if (nfds > sizeof fds / sizeof fds[0]) return throw_range(env, "keepFds holds at most 16 descriptors");
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value item;
    uint32_t fd;
    NAPI_OK(napi_get_element(env, argv[3], i, &item));
    if (!get_uint(env, item, INT32_MAX, &fd, "keepFds[i]")) return NULL;
    fds[i] = (int)fd;
  }
  char **args = get_strings(env, argv[1], "argv");
  if (args == NULL) return NULL;
  char **envp = get_strings(env, argv[2], "env");
  if (envp == NULL) {
    free_strings(args);
    return NULL;
  }
  struct aoe_error err;
  privilege_reexec_confined(file, args, envp, fds, nfds, &err);
  free_strings(args);
  free_strings(envp);
  return throw_aoe_error(env, &err);
}

/* ---- nbd exports (nbd.c) ------------------------------------------------- */

static bool set_number(napi_env env, napi_value object, const char *name, double v) {
  napi_value value;
  return napi_create_double(env, v, &value) == napi_ok && define_value(env, object, name, value);
}

static bool set_bool(napi_env env, napi_value object, const char *name, bool v) {
  napi_value value;
  return napi_get_boolean(env, v, &value) == napi_ok && define_value(env, object, name, value);
}

/* An nbd open running on libuv's pool: the handshakes wait on the server
 * (each up to waitMs), which must not stop the event loop. */
struct nbd_open_job {
  napi_async_work work;
  napi_deferred deferred;
  char uri[1024];
  struct nbd_store_options o;
  struct nbd_store_info out;
  struct aoe_error err;
  int rc;
};

static void nbd_open_execute(napi_env env, void *data) {
  (void)env;
  struct nbd_open_job *j = data;
  j->rc = nbd_store_open(j->uri, &j->o, &j->out, &j->err);
}

static void nbd_open_complete(napi_env env, napi_status status, void *data) {
  struct nbd_open_job *j = data;
  char ignored[16];
  napi_value object;
  if (status != napi_ok) {
    /* Cancelled (the environment is going): nobody will close it. */
    if (j->rc >= 0) nbd_store_close(j->out.handle, ignored, sizeof ignored);
    reject_errno(env, j->deferred, ECANCELED, "the open of an nbd export was cancelled");
  } else if (j->rc < 0) {
    reject_errno(env, j->deferred, j->err.errnum, j->err.message);
  } else if (napi_create_object(env, &object) != napi_ok || !set_number(env, object, "handle", j->out.handle) ||
             !set_number(env, object, "size", (double)j->out.size) ||
             !set_bool(env, object, "readOnly", j->out.read_only) ||
             !set_bool(env, object, "canFlush", j->out.can_flush) || !set_bool(env, object, "canFua", j->out.can_fua) ||
             !set_bool(env, object, "canMultiConn", j->out.can_multi_conn) ||
             !set_number(env, object, "connections", j->out.connections)) {
    nbd_store_close(j->out.handle, ignored, sizeof ignored);
    reject_errno(env, j->deferred, ENOMEM, "openNbd: cannot make its result object");
  } else {
    napi_resolve_deferred(env, j->deferred, object);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

/* openNbd(uri, connections, waitMs, fua): a promise of what the server said
 * and the handle; connects on libuv's pool (each handshake bounded by
 * waitMs). A malformed argument throws at once. */
static napi_value open_nbd_fn(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "openNbd(uri, connections, waitMs, fua) takes four arguments");
  struct nbd_open_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "out of memory");
  bool fua = false;
  if (!get_string(env, argv[0], j->uri, sizeof j->uri, "uri") ||
      !get_uint(env, argv[1], 16, &j->o.connections, "connections") ||
      !get_uint(env, argv[2], 3600000, &j->o.wait_ms, "waitMs")) {
    free(j);
    return NULL;
  }
  if (napi_get_value_bool(env, argv[3], &fua) != napi_ok) {
    free(j);
    return throw_type(env, "fua must be a boolean");
  }
  j->o.fua = fua;
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    free(j);
    return throw_last_napi_error(env);
  }
  napi_create_string_utf8(env, "openNbd", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, nbd_open_execute, nbd_open_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    /* The promise is made: settle it rather than throw past it. */
    reject_errno(env, j->deferred, EAGAIN, "openNbd: cannot queue the open on libuv's thread pool");
    free(j);
  }
  return promise;
}

/* A close running on libuv's pool: the requests in flight are answered or
 * given up (each bounded by waitMs), then the final flush waits on the
 * server (bounded too), which must not stop the event loop. */
struct nbd_close_job {
  napi_async_work work;
  napi_deferred deferred;
  struct nbd_store *store;
  char out[8192];
  int n;
};

static void nbd_close_execute(napi_env env, void *data) {
  (void)env;
  struct nbd_close_job *j = data;
  j->n = nbd_store_finish(j->store, j->out, sizeof j->out);
  j->store = NULL;
}

static void nbd_close_settle(napi_env env, struct nbd_close_job *j) {
  if (j->store != NULL) j->n = nbd_store_finish(j->store, j->out, sizeof j->out); /* it did not run on the pool */
  napi_value result;
  if (napi_create_string_utf8(env, j->out, (size_t)(j->n > 0 ? j->n : 0), &result) != napi_ok)
    napi_get_undefined(env, &result);
  napi_resolve_deferred(env, j->deferred, result);
}

static void nbd_close_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  struct nbd_close_job *j = data;
  nbd_close_settle(env, j);
  napi_delete_async_work(env, j->work);
  free(j);
}

/* closeNbd(handle): the handle is forgotten at once; a promise of the
 * store's last log lines, once its requests are answered, what it wrote is
 * flushed and its connections are closed. */
static napi_value close_nbd_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t handle;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_uint(env, argv[0], REMOTE_MAX_STORES - 1, &handle, "handle")) return NULL;
  struct nbd_store *store = nbd_store_detach((int)handle);
  if (store == NULL) return throw_errno(env, EBADF, "no nbd store has that handle");
  struct nbd_close_job *j = calloc(1, sizeof *j);
  napi_value promise, name;
  if (j == NULL || napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    /* Nothing to settle later: close here, as before. */
    char ignored[16];
    nbd_store_finish(store, ignored, sizeof ignored);
    free(j);
    return throw_errno(env, ENOMEM, "closeNbd: out of memory (the store was closed)");
  }
  j->store = store;
  napi_create_string_utf8(env, "closeNbd", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, nbd_close_execute, nbd_close_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    nbd_close_settle(env, j); /* no pool to run it on: closed here */
    free(j);
  }
  return promise;
}

/* nbdMessages(handle): the store's log lines since the last call ("" for none). */
static napi_value nbd_messages_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t handle;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_uint(env, argv[0], REMOTE_MAX_STORES - 1, &handle, "handle")) return NULL;
  char out[8192];
  int n = nbd_store_messages((int)handle, out, sizeof out);
  if (n < 0) return throw_errno(env, EBADF, "no nbd store has that handle");
  napi_value result;
  NAPI_OK(napi_create_string_utf8(env, out, (size_t)n, &result));
  return result;
}

/* ---- constants ------------------------------------------------------------ */

/* Every number JavaScript must agree on to fill or read what crosses the
 * addon, taken from the definitions the C code itself uses. The JavaScript
 * side declares the same names (src/native/constants.ts) and compares them
 * once at load, so a stale build fails loudly instead of misreading memory. */
static const struct {
  const char *name;
  uint32_t value;
} exported_constants[] = {
    {"ioOpRead", IO_OP_READ},
    {"ioOpWrite", IO_OP_WRITE},
    {"ioOpDataSync", IO_OP_DATASYNC},
    {"ioOpInline", IO_OP_INLINE},
    {"ioOpDetectZeroes", IO_OP_DETECT_ZEROES},
    {"ioOpZeroBlocks", IO_OP_ZERO_BLOCKS},
    {"ioOpRemote", IO_OP_REMOTE},
    {"remoteMaxStores", REMOTE_MAX_STORES},
    {"ioOpKind", IO_OP_FIELD(kind)},
    {"ioOpFd", IO_OP_FIELD(fd)},
    {"ioOpBufferId", IO_OP_FIELD(buffer_id)},
    {"ioOpOffset", IO_OP_FIELD(offset)},
    {"ioOpLength", IO_OP_FIELD(length)},
    {"ioOpPosition", IO_OP_FIELD(position)},
    {"ioOpStride", IO_OP_STRIDE},
    {"reapTag", REAP_TAG},
    {"reapResult", REAP_RESULT},
    {"reapStride", REAP_STRIDE},
    {"drainOffset", DRAIN_OFFSET},
    {"drainLength", DRAIN_LENGTH},
    {"drainSlot", DRAIN_SLOT},
    {"drainStride", DRAIN_STRIDE},
    {"sendOffset", SEND_OFFSET},
    {"sendLength", SEND_LENGTH},
    {"sendStride", SEND_STRIDE},
    {"ioMaxBuffers", IORING_MAX_BUFFERS},
    {"ioMaxDepth", IORING_MAX_DEPTH},
    {"mappedMaxFiles", MAPPED_MAX_FILES},
    {"sendBatch", PACKET_SEND_BATCH},
    {"sendFrameMin", PACKET_SEND_FRAME_MIN},
    {"sendFrameMax", PACKET_SEND_FRAME_MAX},
    {"slotHeadroom", PACKET_SLOT_HEADROOM},
    {"frameSizeMin", PACKET_FRAME_SIZE_MIN},
    {"frameSizeMax", PACKET_FRAME_SIZE_MAX},
    {"ringMaxBytes", PACKET_RING_MAX_BYTES},
};

/* A frozen plain object: nothing on the JavaScript side can change a value
 * after the load-time check. */
static napi_value create_constants(napi_env env) {
  napi_value object, value;
  if (napi_create_object(env, &object) != napi_ok) return NULL;
  for (size_t i = 0; i < sizeof exported_constants / sizeof exported_constants[0]; i++) {
    if (napi_create_uint32(env, exported_constants[i].value, &value) != napi_ok ||
        !define_value(env, object, exported_constants[i].name, value))
      return NULL;
  }
  if (napi_object_freeze(env, object) != napi_ok) return NULL;
  return object;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor functions[] = {
      {"openPacket", NULL, open_packet, NULL, NULL, NULL, napi_enumerable, NULL},
      {"linkInfo", NULL, link_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openIoRing", NULL, open_io_ring, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openFrameWaiter", NULL, open_frame_waiter, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blockDeviceSize", NULL, block_device_size_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"punchHole", NULL, punch_hole_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapFile", NULL, map_file_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmapFile", NULL, unmap_file_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reflinkClone", NULL, reflink_clone_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reflinkSupported", NULL, reflink_probe_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reflinkCloneAsync", NULL, reflink_clone_async_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reflinkCloneRange", NULL, reflink_clone_range_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unsharedBytes", NULL, own_bytes_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unsharedBytesAsync", NULL, own_bytes_async_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fileExtents", NULL, extents_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"alignedBuffer", NULL, aligned_buffer_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"imageLease", NULL, image_lease_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"imageLeaseHeld", NULL, image_lease_held_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unixDatagramSend", NULL, unix_datagram_send_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lockFile", NULL, lock_file_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rangeLock", NULL, range_lock_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rangeLockTest", NULL, range_lock_test_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerCredentials", NULL, peer_credentials_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lookupUser", NULL, lookup_user_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropPrivileges", NULL, drop_privileges_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"denyWriteLeases", NULL, deny_write_leases_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"privilegeConfined", NULL, privilege_confined_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reexecConfined", NULL, reexec_confined_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openNbd", NULL, open_nbd_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeNbd", NULL, close_nbd_fn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nbdMessages", NULL, nbd_messages_fn, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok) return NULL;
  /* Each remote backend with functions of its own adds them itself. */
  if (!rbd_define_functions(env, exports)) return NULL;
  if (!rbd_lock_define_functions(env, exports)) return NULL;
  napi_value constants = create_constants(env);
  if (constants == NULL || !define_value(env, exports, "constants", constants)) return NULL;
  return exports;
}
