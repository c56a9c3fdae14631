/* The AoE packet socket: AF_PACKET SOCK_RAW bound to one interface and
 * EtherType 0x88A2, a classic BPF filter, a TPACKET_V2 receive ring read in
 * place, and batched transmit with sendmmsg. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "aoe_native.h"

/* Offsets in the Ethernet frame (AoE r11 section 3.1). */
#define ETH_TYPE_OFFSET 12
#define AOE_VER_FLAGS_OFFSET 14
#define AOE_FLAG_RESPONSE 0x08
#define AOE_HEADER_END 24  /* Ethernet + AoE common header, through the tag */

#define BLOCK_ORDER_MAX 5  /* blocks up to 32 pages: one kernel allocation each */

/* Passes frames of our EtherType, at least as long as the AoE header, whose
 * R flag is clear (requests: a target). An initiator's socket takes the
 * same program with the R test inverted (FILTER_R_TEST). Everything else
 * never reaches the ring. */
#define FILTER_R_TEST 5
static const struct sock_filter aoe_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, AOE_HEADER_END, 0, 5),
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, ETH_TYPE_OFFSET),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AOE_ETHERTYPE, 0, 3),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, AOE_VER_FLAGS_OFFSET),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, AOE_FLAG_RESPONSE, 1, 0), /* FILTER_R_TEST */
    BPF_STMT(BPF_RET | BPF_K, 0xFFFFFFFFu), /* whole frame */
    BPF_STMT(BPF_RET | BPF_K, 0),           /* drop */
};

static inline size_t slot_offset(const struct packet_ring *ring, uint32_t slot) {
  return (size_t)(slot / ring->frames_per_block) * ring->block_size +
         (size_t)(slot % ring->frames_per_block) * ring->frame_size;
}

static inline struct tpacket2_hdr *slot_header(const struct packet_ring *ring, uint32_t slot) {
  return (struct tpacket2_hdr *)(ring->base + slot_offset(ring, slot));
}

/* Picks a block of 2^k pages that wastes little at its tail: the kernel
 * allocates whole power-of-two page runs, and frames never span blocks. */
static void choose_geometry(uint32_t frame_size, uint32_t *block_size, uint32_t *frames_per_block) {
  long page = sysconf(_SC_PAGESIZE);
  uint32_t best_block = 0, best_fpb = 0;
  double best_waste = 2.0;
  for (int order = 0; order <= BLOCK_ORDER_MAX; order++) {
    uint32_t block = (uint32_t)page << order;
    if (block < frame_size) continue;
    uint32_t fpb = block / frame_size;
    double waste = (double)(block - fpb * frame_size) / block;
    if (waste < best_waste) {
      best_waste = waste;
      best_block = block;
      best_fpb = fpb;
    }
    if (waste <= 1.0 / 16) break; /* good enough; smaller blocks allocate easier */
  }
  *block_size = best_block;
  *frames_per_block = best_fpb;
}

static int socket_in_netns(const struct packet_open_args *args, struct aoe_error *err) {
  struct netns_scope scope;
  int rc = netns_enter(&scope, args->netns, err);
  if (rc < 0) return rc;
  /* Protocol 0: nothing is queued until bind(), after the filter and ring exist. */
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int e = errno;
  netns_leave(&scope);
  if (fd >= 0) return fd;
  if (e == EPERM || e == EACCES)
    return aoe_fail(err, e,
                    "opening a packet socket needs CAP_NET_RAW; run as root or grant the capability (see docs/operations.md)");
  if (e == EAFNOSUPPORT)
    return aoe_fail(err, e, "this kernel has no AF_PACKET support; load the af_packet module");
  return aoe_fail(err, e, "cannot open a packet socket: %s", strerror(e));
}

static int interface_index(int fd, const struct packet_open_args *args, struct aoe_error *err) {
  size_t len = strlen(args->ifname);
  if (len == 0 || len >= IFNAMSIZ)
    return aoe_fail(err, EINVAL, "interface name '%s' is not 1 to %d bytes; name one from `ip link`", args->ifname,
                    IFNAMSIZ - 1);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, args->ifname, len);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) == 0) return ifr.ifr_ifindex;
  int e = errno;
  if (e != ENODEV) return aoe_fail(err, e, "SIOCGIFINDEX on %s failed: %s", args->ifname, strerror(e));
  if (args->netns && args->netns[0])
    return aoe_fail(err, e, "interface %s not found in network namespace %s; list interfaces with `ip -n NAME link`",
                    args->ifname, args->netns);
  return aoe_fail(err, e, "interface %s not found; list interfaces with `ip link`", args->ifname);
}

static int set_int_option(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

static int configure_ring(struct packet_ring *ring, const struct packet_open_args *args, struct aoe_error *err) {
  int fd = ring->fd;
  struct sock_filter filter[sizeof aoe_filter / sizeof aoe_filter[0]];
  memcpy(filter, aoe_filter, sizeof aoe_filter);
  if (args->accept_replies) {
    filter[FILTER_R_TEST].jt = 0; /* R set: pass */
    filter[FILTER_R_TEST].jf = 1; /* R clear: drop */
  }
  struct sock_fprog prog = {
      .len = sizeof filter / sizeof filter[0],
      .filter = filter,
  };
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
    return aoe_fail(err, errno, "attaching the AoE request filter failed: %s", strerror(errno));
  /* Our own replies would only cost filter work; kernels before 4.20 lack it. */
  if (set_int_option(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) != 0 && errno != ENOPROTOOPT)
    return aoe_fail(err, errno, "PACKET_IGNORE_OUTGOING failed: %s", strerror(errno));
  if (set_int_option(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2) != 0)
    return aoe_fail(err, errno, "this kernel refused TPACKET_V2: %s", strerror(errno));

  struct tpacket_req req = {
      .tp_block_size = ring->block_size,
      .tp_block_nr = ring->frame_count / ring->frames_per_block,
      .tp_frame_size = ring->frame_size,
      .tp_frame_nr = ring->frame_count,
  };
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
    int e = errno;
    if (e == ENOMEM)
      return aoe_fail(err, e, "the kernel could not allocate a %zu-byte receive ring; lower frameCount", ring->map_len);
    return aoe_fail(err, e, "PACKET_RX_RING (%u frames of %u bytes in %u-byte blocks) failed: %s", req.tp_frame_nr,
                    req.tp_frame_size, req.tp_block_size, strerror(e));
  }
  void *map = mmap(NULL, ring->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (map == MAP_FAILED) return aoe_fail(err, errno, "mapping the receive ring failed: %s", strerror(errno));
  ring->base = map;

  struct sockaddr_ll addr = {
      .sll_family = AF_PACKET,
      .sll_protocol = htons(AOE_ETHERTYPE),
      .sll_ifindex = ring->ifindex,
  };
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
    return aoe_fail(err, errno, "binding the packet socket to %s failed: %s", args->ifname, strerror(errno));

  ring->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (ring->epoll_fd < 0) return aoe_fail(err, errno, "epoll_create1 failed: %s", strerror(errno));
  /* Edge-triggered: the ring stays "readable" while JavaScript holds the
   * newest slot (e.g. during a disk write from it); level-triggered polling
   * would then spin the event loop. */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 0};
  if (epoll_ctl(ring->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
    return aoe_fail(err, errno, "epoll_ctl failed: %s", strerror(errno));
  return 0;
}

/* Replies leave through a second socket bound with protocol 0 (it receives
 * nothing). Every sent frame's destructor calls the socket's write-space
 * hook, which takes the wait-queue lock and walks the waiters whenever anyone
 * waits on the socket; on the receive socket our own epoll always does. On a
 * socket nobody waits on, that is a plain check (measured: 2.5 % of the
 * target's CPU at 1-sector reads). */
static int open_tx_socket(struct packet_ring *ring, const struct packet_open_args *args, struct aoe_error *err) {
  int fd = socket_in_netns(args, err);
  if (fd < 0) return fd;
  ring->tx_fd = fd;
  if (args->sndbuf > 0 && args->sndbuf <= INT32_MAX) {
    /* FORCE passes net.core.wmem_max but needs CAP_NET_ADMIN. */
    if (set_int_option(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)args->sndbuf) != 0 &&
        set_int_option(fd, SOL_SOCKET, SO_SNDBUF, (int)args->sndbuf) != 0)
      return aoe_fail(err, errno, "setting the send buffer to %u bytes failed: %s", args->sndbuf, strerror(errno));
  }
  struct sockaddr_ll addr = {
      .sll_family = AF_PACKET,
      .sll_protocol = 0,
      .sll_ifindex = ring->ifindex,
  };
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
    return aoe_fail(err, errno, "binding the sending packet socket to %s failed: %s", args->ifname, strerror(errno));
  return 0;
}

int packet_open(struct packet_ring *ring, const struct packet_open_args *args, struct aoe_error *err) {
  memset(ring, 0, sizeof *ring);
  ring->fd = -1;
  ring->tx_fd = -1;
  ring->epoll_fd = -1;

  uint32_t frame_size = (args->frame_size + TPACKET_ALIGNMENT - 1) & ~(uint32_t)(TPACKET_ALIGNMENT - 1);
  if (args->frame_size < PACKET_FRAME_SIZE_MIN || args->frame_size > PACKET_FRAME_SIZE_MAX)
    return aoe_fail(err, EINVAL, "frameSize %u is outside %u..%u; use MTU + 14 + %u rounded up to 16", args->frame_size,
                    PACKET_FRAME_SIZE_MIN, PACKET_FRAME_SIZE_MAX, (unsigned)PACKET_SLOT_HEADROOM);
  if (args->frame_count == 0) return aoe_fail(err, EINVAL, "frameCount must be at least 1");
  choose_geometry(frame_size, &ring->block_size, &ring->frames_per_block);
  uint64_t blocks = (args->frame_count + ring->frames_per_block - 1) / ring->frames_per_block;
  if (blocks * ring->block_size > PACKET_RING_MAX_BYTES)
    return aoe_fail(err, EINVAL, "a ring of %u frames of %u bytes exceeds %u bytes; lower frameCount", args->frame_count,
                    frame_size, PACKET_RING_MAX_BYTES);
  ring->frame_size = frame_size;
  ring->frame_count = (uint32_t)blocks * ring->frames_per_block; /* whole blocks */
  ring->map_len = (size_t)blocks * ring->block_size;

  ring->held = calloc(ring->frame_count, 1);
  if (ring->held == NULL) return aoe_fail(err, ENOMEM, "out of memory for %u slot flags", ring->frame_count);

  int rc = socket_in_netns(args, err);
  if (rc < 0) goto fail;
  ring->fd = rc;
  rc = interface_index(ring->fd, args, err);
  if (rc < 0) goto fail;
  ring->ifindex = rc;
  rc = configure_ring(ring, args, err);
  if (rc < 0) goto fail;
  rc = open_tx_socket(ring, args, err);
  if (rc < 0) goto fail;
  return 0;

fail:
  packet_unmap(ring);
  packet_close_fds(ring);
  packet_free(ring);
  return rc;
}

void packet_close_fds(struct packet_ring *ring) {
  if (ring->epoll_fd >= 0) close(ring->epoll_fd);
  if (ring->fd >= 0) close(ring->fd);
  if (ring->tx_fd >= 0) close(ring->tx_fd);
  ring->epoll_fd = -1;
  ring->fd = -1;
  ring->tx_fd = -1;
}

void packet_unmap(struct packet_ring *ring) {
  if (ring->base) munmap(ring->base, ring->map_len);
  ring->base = NULL;
}

void packet_free(struct packet_ring *ring) {
  free(ring->held);
  ring->held = NULL;
}

uint32_t packet_drain(struct packet_ring *ring, uint32_t *desc, uint32_t max) {
  uint32_t n = 0;
  while (n < max) {
    uint32_t slot = ring->next;
    if (ring->held[slot]) break; /* wrapped onto a slot JavaScript still has */
    struct tpacket2_hdr *hdr = slot_header(ring, slot);
    /* Acquire: the frame bytes the kernel wrote before setting USER are visible. */
    uint32_t status = __atomic_load_n(&hdr->tp_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER)) break;
    ring->next = slot + 1 == ring->frame_count ? 0 : slot + 1;
    if (hdr->tp_snaplen < hdr->tp_len) {
      /* Longer than a slot: a cut request is worthless; count it as a drop. */
      ring->truncated++;
      __atomic_store_n(&hdr->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      continue;
    }
    uint32_t *d = desc + DRAIN_STRIDE * n;
    d[DRAIN_OFFSET] = (uint32_t)(slot_offset(ring, slot) + hdr->tp_mac);
    d[DRAIN_LENGTH] = hdr->tp_snaplen;
    d[DRAIN_SLOT] = slot;
    ring->held[slot] = 1;
    n++;
  }
  return n;
}

int packet_release(struct packet_ring *ring, uint32_t slot) {
  if (slot >= ring->frame_count || !ring->held[slot]) return -EINVAL;
  ring->held[slot] = 0;
  /* Release: our reads of the slot happen before the kernel may refill it. */
  __atomic_store_n(&slot_header(ring, slot)->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  return 0;
}

bool packet_has_frames(struct packet_ring *ring) {
  uint32_t slot = ring->next;
  if (ring->held[slot]) return false;
  return __atomic_load_n(&slot_header(ring, slot)->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER;
}

int packet_send(struct packet_ring *ring, const uint8_t *arena, const uint32_t *frames, uint32_t count) {
  if (count == 1) {
    /* One reply (one request in flight, a network boot): a plain send skips
     * sendmmsg's copy and check of a message header and its iovec. */
    ssize_t n;
    do n = send(ring->tx_fd, arena + frames[SEND_OFFSET], frames[SEND_LENGTH], MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 1;
  }
  struct mmsghdr msgs[PACKET_SEND_BATCH];
  struct iovec iov[PACKET_SEND_BATCH];
  uint32_t total = 0;
  while (total < count) {
    uint32_t batch = count - total < PACKET_SEND_BATCH ? count - total : PACKET_SEND_BATCH;
    for (uint32_t i = 0; i < batch; i++) {
      const uint32_t *f = frames + SEND_STRIDE * (total + i);
      iov[i].iov_base = (void *)(arena + f[SEND_OFFSET]);
      iov[i].iov_len = f[SEND_LENGTH];
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1; /* bound socket: no address needed */
    }
    int sent;
    do sent = sendmmsg(ring->tx_fd, msgs, batch, MSG_DONTWAIT);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) return total > 0 ? (int)total : -errno;
    total += (uint32_t)sent;
    if ((uint32_t)sent < batch) break; /* socket buffer full */
  }
  return (int)total;
}

int packet_stats(struct packet_ring *ring, uint32_t *packets, uint32_t *drops) {
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (getsockopt(ring->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return -errno;
  *packets = st.tp_packets; /* the kernel already counts drops in here */
  *drops = st.tp_drops + (uint32_t)ring->truncated;
  ring->truncated = 0;
  return 0;
}

int packet_take_event(struct packet_ring *ring, bool *readable, int *sock_error) {
  struct epoll_event ev;
  *readable = false;
  *sock_error = 0;
  int n = epoll_wait(ring->epoll_fd, &ev, 1, 0);
  if (n <= 0) return 1;
  if (ev.events & EPOLLERR) {
    int value = 0;
    socklen_t len = sizeof value;
    if (getsockopt(ring->fd, SOL_SOCKET, SO_ERROR, &value, &len) == 0) *sock_error = value;
  }
  *readable = (ev.events & EPOLLIN) != 0;
  return 0;
}

void packet_rearm(struct packet_ring *ring) {
  /* MOD re-checks readiness now and queues an event if the socket is readable. */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 0};
  epoll_ctl(ring->epoll_fd, EPOLL_CTL_MOD, ring->fd, &ev);
}

int packet_set_loop_wake(struct packet_ring *ring, bool on) {
  if (!on) {
    /* Removing it also drops a wake-up already queued for libuv. */
    if (epoll_ctl(ring->epoll_fd, EPOLL_CTL_DEL, ring->fd, NULL) == 0 || errno == ENOENT) return 0;
    return -errno;
  }
  /* Adding checks readiness at once: frames that came meanwhile wake libuv. */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 0};
  if (epoll_ctl(ring->epoll_fd, EPOLL_CTL_ADD, ring->fd, &ev) == 0 || errno == EEXIST) return 0;
  return -errno;
}
