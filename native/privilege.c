/* Switching the process to an unprivileged user that keeps CAP_NET_RAW (and
 * CAP_LEASE when an export has views).
 *
 * Node can change uid and gid, but not look a user up by name (NSS), nor keep a capability over the change,
 * drop the bounding set or set the capability sets; that is all this file
 * does. The order matters: the bounding set can only be lowered while
 * CAP_SETPCAP is held (as root), PR_SET_KEEPCAPS keeps the permitted set
 * over setuid (which clears the effective set), and capset then makes
 * CAP_NET_RAW (with CAP_LEASE) alone permitted and effective again.
 *
 * Capability sets, keepcaps, no_new_privs and the bounding set belong to the
 * calling thread. glibc applies setgroups/setgid/setuid to every thread of
 * the process; the other threads (libuv's pool, V8's) keep no capability,
 * since their keepcaps flag is clear. Sockets are opened on the JavaScript
 * thread, the one that keeps CAP_NET_RAW.
 *
 * Node starts its threads before any of our code runs, so the bounding set
 * and no_new_privs of those threads can only be set by the image that execs
 * Node: privilege_reexec_confined lowers them on the one thread left to run
 * execve, and every thread of the new image inherits them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aoe_native.h"

/* No libcap: the two system calls glibc does not wrap. */
static int capset_raw(struct __user_cap_header_struct *h, struct __user_cap_data_struct *d) {
  return (int)syscall(SYS_capset, h, d);
}

/* What a serving process started as root still uses before it switches:
 * opening files of other owners (DAC_*, FOWNER, LEASE for the read lease on
 * an image), making the views directories the user's (CHOWN), the switch
 * itself (SETUID, SETGID, SETPCAP), the packet sockets
 * (NET_RAW, NET_ADMIN for SO_SNDBUFFORCE) and locked memory for rings and
 * mapped stores (IPC_LOCK). docs/reliability.md lists the same set. */
static const unsigned long start_caps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,  CAP_SETGID, CAP_SETUID,
                                           CAP_SETPCAP,      CAP_NET_ADMIN,       CAP_NET_RAW, CAP_IPC_LOCK, CAP_LEASE};

static bool is_start_cap(unsigned long cap) {
  for (size_t i = 0; i < sizeof start_caps / sizeof start_caps[0]; i++)
    if (start_caps[i] == cap) return true;
  return false;
}

/* Lowers the calling thread's bounding set to `keep`; every capability the
 * kernel knows, up to the first it does not (EINVAL). */
static int drop_bounding_set(bool (*keep)(unsigned long), struct aoe_error *err) {
  for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0L, 0L, 0L) >= 0; cap++) {
    if (!keep(cap) && prctl(PR_CAPBSET_DROP, cap, 0L, 0L, 0L) != 0)
      return aoe_fail(err, errno, "cannot drop capability %lu from the bounding set: %s", cap, strerror(errno));
  }
  return 0;
}

static bool is_net_raw(unsigned long cap) {
  return cap == CAP_NET_RAW;
}

/* CAP_LEASE lets its holder take and give up leases (fcntl F_SETLEASE) on
 * files it does not own; nothing else. It opens no file and bypasses no
 * permission: a read lease needs a descriptor the process already has open
 * for reading, and all it does to another program is hold back that
 * program's open for writing until the lease is given up (at most the
 * kernel's lease-break-time, 45 s, if the holder never does). A write lease
 * (which an O_RDONLY descriptor may take when nobody else has the file
 * open) would hold back every open, reads too: privilege_deny_write_leases
 * refuses those to the whole process. Views keep it
 * after the switch so that they can give up, and later take again, the
 * lease on an image that is not the serving user's (root's, as an admin
 * leaves it): without it the give-up fails with EACCES and every writer of
 * the image waits the full 45 s. */
static bool is_net_raw_or_lease(unsigned long cap) {
  return cap == CAP_NET_RAW || cap == CAP_LEASE;
}

int privilege_confined(void) {
  if (prctl(PR_GET_NO_NEW_PRIVS, 0L, 0L, 0L, 0L) != 1) return 0;
  for (unsigned long cap = 0;; cap++) {
    int in = prctl(PR_CAPBSET_READ, cap, 0L, 0L, 0L);
    if (in < 0) return 1;
    if (in == 1 && !is_start_cap(cap)) return 0;
  }
}

int privilege_reexec_confined(const char *file, char *const argv[], char *const envp[], const int *keep_fds, size_t nfds,
                              struct aoe_error *err) {
  if (geteuid() != 0)
    return aoe_fail(err, EPERM, "lowering the bounding set needs root; start as root, or without the user setting");
  for (size_t i = 0; i < nfds; i++) {
    int flags = fcntl(keep_fds[i], F_GETFD);
    if (flags < 0 || fcntl(keep_fds[i], F_SETFD, flags & ~FD_CLOEXEC) != 0)
      return aoe_fail(err, errno, "cannot keep descriptor %d open over exec: %s", keep_fds[i], strerror(errno));
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0)
    return aoe_fail(err, errno, "PR_SET_NO_NEW_PRIVS failed: %s", strerror(errno));
  if (drop_bounding_set(is_start_cap, err) < 0) return -1;
  execve(file, argv, envp);
  return aoe_fail(err, errno, "cannot run %s again with a lowered bounding set: %s", file, strerror(errno));
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

int privilege_drop(const char *user, bool keep_lease, struct privilege_ids *ids, struct aoe_error *err) {
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
  if (drop_bounding_set(keep_lease ? is_net_raw_or_lease : is_net_raw, err) < 0) return -1;
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
  if (keep_lease) {
    data[CAP_TO_INDEX(CAP_LEASE)].permitted |= CAP_TO_MASK(CAP_LEASE);
    data[CAP_TO_INDEX(CAP_LEASE)].effective |= CAP_TO_MASK(CAP_LEASE);
  }
  if (capset_raw(&header, data) != 0)
    return aoe_fail(err, errno, "cannot keep CAP_NET_RAW%s as user \"%s\": %s", keep_lease ? " and CAP_LEASE" : "", user,
                    strerror(errno));
  /* Nothing further is kept over a uid change, and nothing passes to programs it runs: no_new_privs makes
   * execve of a set-user-ID or file-capability program give nothing beyond what this thread holds. */
  prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0L, 0L, 0L);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0)
    return aoe_fail(err, errno, "PR_SET_NO_NEW_PRIVS failed: %s", strerror(errno));
  ids->uid = pw.pw_uid;
  ids->gid = pw.pw_gid;
  return 0;
}

#if defined(__x86_64__)
#define AUDIT_ARCH_OURS AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_OURS AUDIT_ARCH_AARCH64
#endif

/* A seccomp filter on every thread (TSYNC) that fails fcntl(F_SETLEASE,
 * F_WRLCK) with EPERM and lets everything else through: a process holding
 * CAP_LEASE for read leases cannot take a write lease, which would hold back
 * every open of that file, root's too. Sets no_new_privs, which the filter
 * needs (the switch and systemd's NoNewPrivileges= set it already). System calls
 * of another ABI (x32, i386) are refused outright: the filter reads only
 * this ABI's numbers, and the daemon makes no other. */
int privilege_deny_write_leases(struct aoe_error *err) {
#ifdef AUDIT_ARCH_OURS
  const unsigned int arg_lo = offsetof(struct seccomp_data, args); /* args[i] low word: + 8 * i (little-endian) */
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_OURS, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __X32_SYSCALL_BIT
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
#endif
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fcntl, 0, 5),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_lo + 8),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETLEASE, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_lo + 16),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_WRLCK, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = (unsigned short)(sizeof code / sizeof code[0]), .filter = code};
  /* The filter needs no_new_privs; TSYNC gives it to every thread with the filter. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0)
    return aoe_fail(err, errno, "PR_SET_NO_NEW_PRIVS failed: %s", strerror(errno));
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
    return aoe_fail(err, errno, "cannot refuse write leases to this process (seccomp): %s", strerror(errno));
  return 0;
#else
  return aoe_fail(err, ENOSYS, "refusing write leases is not built for this architecture");
#endif
}
