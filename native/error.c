/* Error reports from the system-call layer to binding.c. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aoe_native.h"

int aoe_fail(struct aoe_error *err, int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  err->errnum = errnum;
  return -errnum;
}

const char *aoe_errno_name(int errnum) {
  /* glibc >= 2.32; the names match what Node uses for err.code */
  const char *name = strerrorname_np(errnum);
  return name ? name : "EUNKNOWN";
}
