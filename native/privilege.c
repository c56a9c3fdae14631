/* Switching the process to an unprivileged user that keeps CAP_NET_RAW.
 *
 * Node can change uid and gid, but not look a user up by name (NSS), nor keep a capability over the change,
 * drop the bounding set or set the capability sets; that is all this file
 * does. The order matters: the bounding set can only be lowered while
 * CAP_SETPCAP is held (as root), PR_SET_KEEPCAPS keeps the permitted set
 * over setuid (which clears the effective set), and capset then makes
 * CAP_NET_RAW alone permitted and effective again.
 *
 * Capability sets, keepcaps and the bounding set belong to the calling
 * thread. glibc applies setgroups/setgid/setuid to every thread of the
 * process; the other threads (libuv's pool) keep no capability, since their
 * keepcaps flag is clear. Sockets are opened on the JavaScript thread, the
 * one that keeps CAP_NET_RAW. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aoe_native.h"

/* No libcap: the two system calls glibc does not wrap. */
static int capset_raw(struct __user_cap_header_struct *h, struct __user_cap_data_struct *d) {
  return (int)syscall(SYS_capset, h, d);
}

int privilege_lookup(const char *user, struct privilege_ids *ids, struct aoe_error *err) {
  struct passwd pw, *found = NULL;
  char buf[4096];
  int rc = getpwnam_r(user, &pw, buf, sizeof buf, &found);
  if (rc != 0) return aoe_fail(err, rc, "cannot look up user \"%s\": %s", user, strerror(rc));
  if (found == NULL) return 0;
  ids->uid = pw.pw_uid;
  ids->gid = pw.pw_gid;
  return 1;
}

int privilege_drop(const char *user, struct privilege_ids *ids, struct aoe_error *err) {
  struct passwd pw, *found = NULL;
  char buf[4096];
  int rc = getpwnam_r(user, &pw, buf, sizeof buf, &found);
  if (rc != 0) return aoe_fail(err, rc, "cannot look up user \"%s\": %s", user, strerror(rc));
  if (found == NULL)
    return aoe_fail(err, ENOENT,
                    "there is no user \"%s\"; create it (useradd --system --no-create-home %s) or name an existing one",
                    user, user);
  if (geteuid() != 0)
    return aoe_fail(err, EPERM,
                    "switching to user \"%s\" needs root; start as root, or start as that user with CAP_NET_RAW "
                    "and without the user setting",
                    user);
  if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0)
    return aoe_fail(err, errno, "PR_SET_KEEPCAPS failed: %s", strerror(errno));
  /* Every capability the kernel knows, up to the first it does not (EINVAL). */
  for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0L, 0L, 0L) >= 0; cap++) {
    if (cap != CAP_NET_RAW && prctl(PR_CAPBSET_DROP, cap, 0L, 0L, 0L) != 0)
      return aoe_fail(err, errno, "cannot drop capability %lu from the bounding set: %s", cap, strerror(errno));
  }
  if (initgroups(pw.pw_name, pw.pw_gid) != 0)
    return aoe_fail(err, errno, "cannot take the groups of user \"%s\": %s", user, strerror(errno));
  if (setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) != 0)
    return aoe_fail(err, errno, "cannot switch to group %u of user \"%s\": %s", (unsigned)pw.pw_gid, user, strerror(errno));
  if (setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0)
    return aoe_fail(err, errno, "cannot switch to user \"%s\" (uid %u): %s", user, (unsigned)pw.pw_uid, strerror(errno));
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  memset(data, 0, sizeof data);
  data[CAP_TO_INDEX(CAP_NET_RAW)].permitted = CAP_TO_MASK(CAP_NET_RAW);
  data[CAP_TO_INDEX(CAP_NET_RAW)].effective = CAP_TO_MASK(CAP_NET_RAW);
  if (capset_raw(&header, data) != 0)
    return aoe_fail(err, errno, "cannot keep CAP_NET_RAW as user \"%s\": %s", user, strerror(errno));
  /* Nothing further is kept over a uid change, and nothing passes to programs it runs. */
  prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0L, 0L, 0L);
  ids->uid = pw.pw_uid;
  ids->gid = pw.pw_gid;
  return 0;
}
