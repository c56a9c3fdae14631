/* Interface facts by ioctl, network namespaces, block device size, and the
 * AF_UNIX datagram used for systemd notifications. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "aoe_native.h"

int netns_enter(struct netns_scope *scope, const char *path, struct aoe_error *err) {
  scope->home_fd = -1;
  if (path == NULL || path[0] == '\0') return 0;

  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0)
    return aoe_fail(err, errno, "cannot open our own network namespace (/proc/thread-self/ns/net): %s; is /proc mounted?",
                    strerror(errno));
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(home);
    if (e == ENOENT)
      return aoe_fail(err, e, "network namespace %s not found; create it with `ip netns add NAME` or fix the path", path);
    return aoe_fail(err, e, "cannot open network namespace %s: %s; check the path and its permissions", path, strerror(e));
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int e = errno;
    close(target);
    close(home);
    if (e == EPERM)
      return aoe_fail(err, e, "entering network namespace %s needs CAP_SYS_ADMIN; run as root or leave out the netns option", path);
    if (e == EINVAL)
      return aoe_fail(err, e, "%s is not a network namespace; use a path like /run/netns/NAME", path);
    return aoe_fail(err, e, "cannot enter network namespace %s: %s", path, strerror(e));
  }
  close(target);
  scope->home_fd = home;
  return 0;
}

void netns_leave(struct netns_scope *scope) {
  if (scope->home_fd < 0) return;
  if (setns(scope->home_fd, CLONE_NEWNET) != 0) {
    /* Staying in the wrong namespace would silently misplace every later socket. */
    fprintf(stderr, "aoe_native: cannot return to our own network namespace: %s\n", strerror(errno));
    abort();
  }
  close(scope->home_fd);
  scope->home_fd = -1;
}

static int check_ifname(const char *ifname, struct aoe_error *err) {
  size_t len = strlen(ifname);
  if (len == 0) return aoe_fail(err, EINVAL, "interface name is empty; name one from `ip link`");
  if (len >= IFNAMSIZ)
    return aoe_fail(err, EINVAL, "interface name '%s' is longer than %d bytes; name one from `ip link`", ifname,
                    IFNAMSIZ - 1);
  return 0;
}

int link_query(const char *ifname, const char *netns, struct link_state *out, struct aoe_error *err) {
  int rc = check_ifname(ifname, err);
  if (rc < 0) return rc;

  struct netns_scope scope;
  rc = netns_enter(&scope, netns, err);
  if (rc < 0) return rc;
  /* Any socket will do for SIOCGIF*; it answers for the namespace it was made in. */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int socket_errno = errno;
  netns_leave(&scope);
  if (fd < 0) return aoe_fail(err, socket_errno, "cannot create a socket for interface queries: %s", strerror(socket_errno));

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, strlen(ifname));
  const char *step = "SIOCGIFINDEX";
  if (ioctl(fd, SIOCGIFINDEX, &ifr) != 0) goto failed;
  out->ifindex = ifr.ifr_ifindex;
  step = "SIOCGIFMTU";
  if (ioctl(fd, SIOCGIFMTU, &ifr) != 0) goto failed;
  out->mtu = ifr.ifr_mtu;
  step = "SIOCGIFHWADDR";
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) goto failed;
  memcpy(out->mac, ifr.ifr_hwaddr.sa_data, 6);
  step = "SIOCGIFFLAGS";
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) goto failed;
  out->up = (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
  close(fd);
  return 1;

failed: {
    int e = errno;
    close(fd);
    /* The interface may vanish between two ioctls; either way it is not there. */
    if (e == ENODEV) return 0;
    return aoe_fail(err, e, "%s on interface %s failed: %s", step, ifname, strerror(e));
  }
}

int64_t block_device_size(int fd, struct aoe_error *err) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return aoe_fail(err, errno, "descriptor %d: %s; pass the fd of an open block device", fd, strerror(errno));
  if (!S_ISBLK(st.st_mode))
    return aoe_fail(err, ENOTBLK, "descriptor %d is not a block device; use the file size for regular files", fd);
  uint64_t bytes = 0;
  if (ioctl(fd, BLKGETSIZE64, &bytes) != 0)
    return aoe_fail(err, errno, "BLKGETSIZE64 on descriptor %d failed: %s", fd, strerror(errno));
  return (int64_t)bytes;
}

int unix_datagram_send(const char *path, const void *msg, size_t len, struct aoe_error *err) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t path_len = strlen(path);
  if (path_len == 0) return aoe_fail(err, EINVAL, "socket path is empty");
  if (path_len >= sizeof addr.sun_path)
    return aoe_fail(err, ENAMETOOLONG, "socket path %s is longer than %zu bytes", path, sizeof addr.sun_path - 1);
  memcpy(addr.sun_path, path, path_len);
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
  if (path[0] == '@') addr.sun_path[0] = '\0';   /* abstract: no trailing NUL counted */
  else addr_len += 1;

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return aoe_fail(err, errno, "cannot create an AF_UNIX socket: %s", strerror(errno));
  ssize_t sent = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
  int e = errno;
  close(fd);
  if (sent >= 0) return 0;
  if (e == ENOENT) return aoe_fail(err, e, "socket %s does not exist; is the receiver (e.g. systemd) running?", path);
  if (e == ECONNREFUSED) return aoe_fail(err, e, "nobody is listening on socket %s", path);
  if (e == EACCES || e == EPERM)
    return aoe_fail(err, e, "permission denied sending to socket %s; check its owner and mode", path);
  return aoe_fail(err, e, "sending to socket %s failed: %s", path, strerror(e));
}

int unix_peer_credentials(int fd, struct peer_credentials *out, struct aoe_error *err) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return aoe_fail(err, errno, "cannot read the peer of descriptor %d: %s; pass a connected unix socket", fd, strerror(errno));
  out->pid = cred.pid;
  out->uid = cred.uid;
  out->gid = cred.gid;
  return 0;
}
