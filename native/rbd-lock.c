/* rbdCall: the exclusive lock, the metadata and the size of an open rbd image, from
 * JavaScript. Each call waits on the cluster (up to its operation timeout),
 * so it runs as Node-API async work on libuv's thread pool and settles a
 * promise: the event loop, and the frames of every other export, go on. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aoe_native.h"
#include "rbd.h"

struct call_work {
  napi_async_work work;
  napi_deferred deferred;
  struct rbd_call call;
  struct aoe_error err;
  int rc;
};

static void run_call(napi_env env, void *data) {
  (void)env;
  struct call_work *w = data;
  w->rc = rbd_store_call(&w->call, &w->err);
}

static napi_value string_of(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

/* LOCK_STATE: {owner, owners: [addr], watchers: [{addr, id}]}. */
static napi_value lock_state_value(napi_env env, const struct rbd_call *c) {
  napi_value out, owners, watchers, flag;
  napi_create_object(env, &out);
  napi_get_boolean(env, c->is_owner, &flag);
  napi_set_named_property(env, out, "owner", flag);
  napi_create_array_with_length(env, c->owner_count, &owners);
  for (uint32_t i = 0; i < c->owner_count; i++) napi_set_element(env, owners, i, string_of(env, c->owners[i]));
  napi_set_named_property(env, out, "owners", owners);
  napi_create_array_with_length(env, c->watcher_count, &watchers);
  for (uint32_t i = 0; i < c->watcher_count; i++) {
    napi_value w, id;
    napi_create_object(env, &w);
    napi_set_named_property(env, w, "addr", string_of(env, c->watchers[i].addr));
    napi_create_double(env, (double)c->watchers[i].id, &id);
    napi_set_named_property(env, w, "id", id);
    napi_set_element(env, watchers, i, w);
  }
  napi_set_named_property(env, out, "watchers", watchers);
  return out;
}

static void settle_call(napi_env env, napi_status status, void *data) {
  struct call_work *w = data;
  napi_value result;
  if (status != napi_ok && w->rc == 0) w->rc = aoe_fail(&w->err, ECANCELED, "the rbd call was cancelled");
  if (w->rc < 0) {
    napi_value code, msg, errno_value;
    napi_create_string_utf8(env, aoe_errno_name(w->err.errnum), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, w->err.message, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &result);
    napi_create_int32(env, -w->err.errnum, &errno_value);
    napi_set_named_property(env, result, "errno", errno_value);
    napi_reject_deferred(env, w->deferred, result);
  } else {
    if (w->call.kind == RBD_CALL_LOCK_STATE) result = lock_state_value(env, &w->call);
    else if (w->call.kind == RBD_CALL_META_GET && w->call.value != NULL) result = string_of(env, w->call.value);
    else if (w->call.kind == RBD_CALL_META_GET) napi_get_null(env, &result);
    else if (w->call.kind == RBD_CALL_SIZE) napi_create_double(env, (double)w->call.size, &result);
    else napi_get_undefined(env, &result);
    napi_resolve_deferred(env, w->deferred, result);
  }
  free(w->call.value);
  napi_delete_async_work(env, w->work);
  free(w);
}

static napi_value throw_usage(napi_env env) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                        "rbdCall(handle, kind, ...args) takes a handle, one of lockState, lockAcquire, lockBreak "
                        "(owner), metadataGet (key), metadataSet (key, value), size, and short strings");
  return NULL;
}

static const struct {
  const char *name;
  enum rbd_call_kind kind;
  uint32_t args;
} KINDS[] = {
    {"lockState", RBD_CALL_LOCK_STATE, 0},  {"lockAcquire", RBD_CALL_LOCK_ACQUIRE, 0},
    {"lockBreak", RBD_CALL_LOCK_BREAK, 1},  {"metadataGet", RBD_CALL_META_GET, 1},
    {"metadataSet", RBD_CALL_META_SET, 2},  {"size", RBD_CALL_SIZE, 0},
};

/* rbdCall(handle, kind, ...args): a promise of the call's result. */
static napi_value rbd_call_fn(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  double d;
  char kind[32];
  size_t len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_double(env, argv[0], &d) != napi_ok || !(d >= 0 && d < 4096) || d != (int)d ||
      napi_get_value_string_utf8(env, argv[1], kind, sizeof kind, &len) != napi_ok)
    return throw_usage(env);
  int k = -1;
  for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
    if (strcmp(kind, KINDS[i].name) == 0) k = (int)i;
  if (k < 0 || argc < 2 + KINDS[k].args) return throw_usage(env);
  struct call_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    napi_throw_error(env, "ENOMEM", "rbdCall: out of memory");
    return NULL;
  }
  w->call.kind = KINDS[k].kind;
  w->call.handle = (int)d;
  for (uint32_t i = 0; i < KINDS[k].args; i++) {
    if (napi_get_value_string_utf8(env, argv[2 + i], w->call.arg[i], RBD_CALL_ARG_BYTES, &len) != napi_ok ||
        len >= RBD_CALL_ARG_BYTES - 1 || strlen(w->call.arg[i]) != len) {
      free(w);
      return throw_usage(env);
    }
  }
  napi_value promise, name;
  napi_create_string_utf8(env, "rbdCall", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, run_call, settle_call, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    free(w);
    napi_throw_error(env, "ERR_NAPI", "rbdCall: cannot queue the call");
    return NULL;
  }
  return promise;
}

bool rbd_lock_define_functions(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"rbdCall", NULL, rbd_call_fn, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, 1, functions) == napi_ok;
}
