/* Shared declarations of the aoe_native addon.
 *
 * The addon is split by concern: binding.c is the only file that speaks
 * Node-API; packet.c, ioring.c and link.c are plain C over Linux system calls
 * and report failures through struct aoe_error, which binding.c turns into a
 * JavaScript Error with `code` set to the errno name. See docs/native-abi.md.
 */
#ifndef AOE_NATIVE_H
#define AOE_NATIVE_H

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

/* ---- errors (error.c) ---------------------------------------------------- */

struct aoe_error {
  int errnum;          /* positive errno value */
  char message[320];   /* what went wrong and what to do */
};

/* Fills `err` and returns -errnum, so callers can `return aoe_fail(...)`. */
int aoe_fail(struct aoe_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "ENODEV" for ENODEV; "EUNKNOWN" when the C library has no name for it. */
const char *aoe_errno_name(int errnum);

/* ---- network namespaces and interfaces (link.c) -------------------------- */

/* The calling thread's network namespace while a netns_scope is entered. */
struct netns_scope {
  int home_fd;   /* our own namespace, to return to; -1 when none was entered */
};

/* Moves the calling thread into the namespace at `path` (NULL or "" = stay). */
int netns_enter(struct netns_scope *scope, const char *path, struct aoe_error *err);
/* Returns to the namespace the thread had before netns_enter. Aborts the
 * process if that fails: every later socket would land in the wrong place. */
void netns_leave(struct netns_scope *scope);

struct link_state {
  int ifindex;
  int mtu;
  uint8_t mac[6];
  bool up;   /* IFF_UP and IFF_RUNNING */
};

/* 1 = found and filled, 0 = no such interface, <0 = -errno with `err` set. */
int link_query(const char *ifname, const char *netns, struct link_state *out,
               struct aoe_error *err);

/* Bytes in the block device open on `fd`, or -errno with `err` set. */
int64_t block_device_size(int fd, struct aoe_error *err);

/* One datagram to an AF_UNIX SOCK_DGRAM socket; '@' prefix = abstract. */
int unix_datagram_send(const char *path, const void *msg, size_t len,
                       struct aoe_error *err);

/* The process at the other end of a connected AF_UNIX socket, as the kernel
 * recorded it at connect() (SO_PEERCRED). 0, or -errno with `err` set. */
struct peer_credentials {
  int32_t pid;
  uint32_t uid;
  uint32_t gid;
};
int unix_peer_credentials(int fd, struct peer_credentials *out, struct aoe_error *err);

/* ---- the AoE packet socket (packet.c) ------------------------------------ */

#define AOE_ETHERTYPE 0x88A2
/* Frames per sendmmsg system call (send() loops over larger counts). */
#define PACKET_SEND_BATCH 256
/* Bytes in front of the Ethernet header in a receive slot: the kernel puts
 * the tpacket2 header and sockaddr_ll first and aligns the network header
 * to 16 (66 on every architecture Linux runs this on). */
#define PACKET_SLOT_HEADROOM (TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - ETH_HLEN)
/* Receive slot sizes openPacket accepts (before rounding up to 16). */
#define PACKET_FRAME_SIZE_MIN 128u
#define PACKET_FRAME_SIZE_MAX 65536u
/* Largest receive ring, all slots together. */
#define PACKET_RING_MAX_BYTES (1u << 30)
/* Frame lengths send() accepts: an Ethernet header at least, and what
 * sendmmsg's length field and a 64 KiB interface can carry at most. */
#define PACKET_SEND_FRAME_MIN 14u
#define PACKET_SEND_FRAME_MAX 65535u

/* Layout of drain()'s descriptors: DRAIN_STRIDE uint32 per frame. */
enum drain_field { DRAIN_OFFSET, DRAIN_LENGTH, DRAIN_SLOT, DRAIN_STRIDE };
/* Layout of send()'s descriptors: SEND_STRIDE uint32 per frame. */
enum send_field { SEND_OFFSET, SEND_LENGTH, SEND_STRIDE };

struct packet_ring {
  int fd;                /* receives (the ring), in epoll */
  int tx_fd;             /* sends: a second socket nobody waits on, see packet_open */
  int epoll_fd;          /* edge-triggered wake-ups for the socket, see packet_wait_fd */
  int ifindex;
  uint8_t *base;         /* mmapped TPACKET_V2 receive ring */
  size_t map_len;
  uint32_t frame_size;
  uint32_t frame_count;
  uint32_t block_size;
  uint32_t frames_per_block;
  uint32_t next;         /* first slot drain() has not returned yet */
  uint8_t *held;         /* held[slot] = 1 while JavaScript owns the slot */
  uint64_t truncated;    /* frames longer than a slot, dropped by drain() */
};

struct packet_open_args {
  const char *ifname;
  const char *netns;     /* NULL = current namespace */
  uint32_t frame_size;
  uint32_t frame_count;
  uint32_t sndbuf;       /* 0 = kernel default */
  bool accept_replies;   /* pass R-set frames (an initiator) instead of requests */
};

int packet_open(struct packet_ring *ring, const struct packet_open_args *args,
                struct aoe_error *err);
/* Teardown in three steps, each idempotent, because binding.c must unmap only
 * once no JavaScript view can reach the ring: close the descriptors, unmap
 * the ring, free the slot flags. */
void packet_close_fds(struct packet_ring *ring);
void packet_unmap(struct packet_ring *ring);
void packet_free(struct packet_ring *ring);

/* Writes DRAIN_STRIDE numbers per frame; returns the number of frames. */
uint32_t packet_drain(struct packet_ring *ring, uint32_t *desc, uint32_t max);
/* 0, or -EINVAL when the slot is out of range or not held by JavaScript. */
int packet_release(struct packet_ring *ring, uint32_t slot);
/* True when drain() would return at least one frame now. */
bool packet_has_frames(struct packet_ring *ring);
/* `frames` holds SEND_STRIDE numbers per frame into `arena` (already bounds-checked).
 * Returns frames sent, or -errno when none could be sent. At most
 * PACKET_SEND_BATCH frames per sendmmsg; loops until all are sent. */
int packet_send(struct packet_ring *ring, const uint8_t *arena,
                const uint32_t *frames, uint32_t count);
int packet_stats(struct packet_ring *ring, uint32_t *packets, uint32_t *drops);

/* After a wake-up of epoll_fd: consumes the edge. Returns 1 when there was no
 * event, else 0 with `readable` (frames may be waiting) and `sock_error` (the
 * socket's pending error, read and cleared with SO_ERROR; 0 if none) set. */
int packet_take_event(struct packet_ring *ring, bool *readable, int *sock_error);
/* Asks epoll_fd to report again if frames are already waiting (used after a
 * wake-up in which JavaScript did not take every frame). */
void packet_rearm(struct packet_ring *ring);
/* Whether the socket wakes its own epoll (and so libuv): off while the frame
 * loop waits on the socket itself (waiter.c), so that a frame does not also
 * make libuv's descriptor readable. Turning it on queues a wake-up if frames
 * are waiting. */
int packet_set_loop_wake(struct packet_ring *ring, bool on);

/* ---- block I/O queue (ioring.c) ------------------------------------------ */

#define IORING_MAX_BUFFERS 64
#define IORING_MAX_DEPTH 4096

enum io_op_kind { IO_OP_READ = 0, IO_OP_WRITE = 1, IO_OP_DATASYNC = 2 };
/* Or'ed into a kind: run the operation now, inside submit(), and return its
 * completion from the next reap() without signalling the eventfd (the caller
 * reaps right after submitting). For stores that never block: tmpfs. */
#define IO_OP_INLINE 0x10
/* Or'ed into a write: when its data is all zero, punch a hole over the range
 * instead (fallocate PUNCH_HOLE | KEEP_SIZE); the completion reports the
 * write's length as a write would (detect-zeroes = unmap). */
#define IO_OP_DETECT_ZEROES 0x20
/* Or'ed into a detect-zeroes write that is not whole file system blocks:
 * after the punch, a block at its edges that now reads all zero is punched
 * whole (a part of a block frees nothing). JavaScript sets it only when no
 * other write to those blocks is in the kernel: one landing between the
 * look and the punch would be lost. */
#define IO_OP_ZERO_BLOCKS 0x80
/* Every flag bit of a kind: those above and remote.h's IO_OP_REMOTE (where it is used, remote.h is included). */
#define IO_OP_FLAGS (IO_OP_INLINE | IO_OP_DETECT_ZEROES | IO_OP_REMOTE | IO_OP_ZERO_BLOCKS)

/* One operation as JavaScript describes it (IoRing.submit `ops`): the
 * struct is the layout, so JavaScript's field indexes come from offsetof. */
struct io_op {
  double kind, fd, buffer_id, offset, length, position;
};
#define IO_OP_FIELD(member) (offsetof(struct io_op, member) / sizeof(double))
#define IO_OP_STRIDE (sizeof(struct io_op) / sizeof(double))
_Static_assert(sizeof(struct io_op) == IO_OP_STRIDE * sizeof(double),
               "struct io_op must be whole doubles: JavaScript fills it as a Float64Array");

/* Layout of reap()'s output: REAP_STRIDE int32 per completion. */
enum reap_field { REAP_TAG, REAP_RESULT, REAP_STRIDE };

struct io_buffer {
  uint8_t *base;
  size_t len;
  uint32_t in_flight;   /* ops using it that have not been reaped */
  bool registered;      /* false while retiring: unregistered, ops still in flight */
  void *owner;          /* binding.c's reference keeping the memory alive */
};

struct io_completion {
  uint64_t user_data;
  int32_t result;
};

struct io_queue {
  bool uring;           /* false: synchronous fallback */
  uint32_t depth;
  uint32_t in_flight;
  int event_fd;         /* readable when completions may be waiting */
  bool self_signalled;  /* we wrote event_fd ourselves; reap() must clear it */
  struct io_buffer buffers[IORING_MAX_BUFFERS];

  /* completions produced in user space: refused ops and the sync fallback */
  struct io_completion *local;
  uint32_t local_head, local_count;

  /* operations on stores behind a client library (remote.c): a pool of
   * `depth`, the free list touched only by the submitting thread, the
   * completion list by any thread under remote_lock */
  struct remote_op *remote_ops;
  uint32_t remote_free;                   /* first free op, or UINT32_MAX */
  pthread_mutex_t remote_lock;
  pthread_cond_t remote_idle;             /* remote_started fell to 0 */
  uint32_t remote_done_head, remote_done_tail;
  uint32_t remote_done_count;             /* atomic: completions not taken yet */
  uint32_t remote_started;                /* atomic: started, remote_done not called yet */
  uint32_t remote_in_flight;              /* started, not taken by reap (submitting thread only) */

  /* io_uring (uring == true) */
  int ring_fd;
  void *ring_map;
  size_t ring_map_len;
  void *sqe_map;
  size_t sqe_map_len;
  uint32_t *sq_head, *sq_tail, *sq_array;
  uint32_t sq_mask;
  uint32_t sq_local_tail;
  void *sqes;
  uint32_t *cq_head, *cq_tail;
  uint32_t cq_mask;
  void *cqes;
};

/* ---- switching to an unprivileged user (privilege.c) ---------------------- */

struct privilege_ids {
  uint32_t uid;
  uint32_t gid;
};

/* 1 = found (`ids` filled), 0 = no such user, <0 = -errno with `err` set. */
int privilege_lookup(const char *user, struct privilege_ids *ids, struct aoe_error *err);

/* As root: becomes `user` (its uid, gid and groups) keeping only CAP_NET_RAW
 * and, when `keep_lease`, CAP_LEASE (the read lease of views on an image the
 * user does not own), permitted and effective, with every other capability
 * out of the bounding set. 0, or -errno with `err` set (the process may be
 * half switched then: the caller exits). */
int privilege_drop(const char *user, bool keep_lease, struct privilege_ids *ids, struct aoe_error *err);

/* 1 when no_new_privs is set and the bounding set holds no more than what
 * a start as root uses (privilege.c start_caps), else 0. */
int privilege_confined(void);

/* Fails fcntl(F_SETLEASE, F_WRLCK) with EPERM in every thread of the process
 * from now on (seccomp, inherited by children); 0, or -1 with `err`. */
int privilege_deny_write_leases(struct aoe_error *err);

/* As root: sets no_new_privs, lowers the bounding set to the start
 * capabilities, clears FD_CLOEXEC on `keep_fds` and execs `file`. Returns
 * only on failure (-errno with `err` set). */
int privilege_reexec_confined(const char *file, char *const argv[], char *const envp[], const int *keep_fds, size_t nfds,
                              struct aoe_error *err);

/* ---- backing files in memory, mapped (mapped.c) -------------------------- */

#define MAPPED_MAX_FILES 256

/* Maps `len` bytes of `fd` (MAP_SHARED); inline ops on fd then copy instead
 * of calling pread/pwrite. 0 or -errno. */
int mapped_open(int fd, size_t len, bool writable);
/* Unmaps fd's mapping: 0, or -ENOENT when it has none. */
int mapped_close(int fd);
/* Bytes copied, or -1 when the caller must fall back to pread/pwrite. */
int32_t mapped_copy(int fd, bool write, uint8_t *mem, size_t length, uint64_t position);

/* ---- copy-on-write clones (reflink.c) ------------------------------------ */

/* Makes dst_fd's file a clone of src_fd's (FICLONE): 0, or -errno with err set. */
int reflink_clone(int src_fd, int dst_fd, struct aoe_error *err);
/* Clones `len` bytes at `src_off` of src_fd into dst_fd at `dst_off` (FICLONERANGE): offsets block-aligned, the
 * length too unless the range ends at src's end of file. 0, or -errno (err set). */
int reflink_clone_range(int src_fd, uint64_t src_off, uint64_t len, int dst_fd, uint64_t dst_off, struct aoe_error *err);
/* Whether the file system of directory `dir` clones files: 1 yes, 0 no, -errno (err set) when the directory cannot be used. */
int reflink_probe(const char *dir, struct aoe_error *err);
/* Bytes of fd's file in extents shared with no other file (FIEMAP): a clone's own; `sync` writes dirty data back first. -errno (err set). */
int64_t reflink_own_bytes(int fd, bool sync, struct aoe_error *err);
/* The extents of a file as (logical, physical, length, flags) quadruples. */
int reflink_extents(int fd, double **out, size_t *n, struct aoe_error *err);
/* A read lease (F_RDLCK) or none (F_UNLCK) on an image; its state as the kernel has it. */
int image_lease(int fd, int type, struct aoe_error *err);
int image_lease_state(int fd, struct aoe_error *err);

/* depth: 1..IORING_MAX_DEPTH. Honours AOE_IORING=sync. */
int io_queue_open(struct io_queue *q, uint32_t depth, struct aoe_error *err);
/* Waits for every operation in flight, then releases the ring. */
void io_queue_close(struct io_queue *q);
/* Returns ops accepted (refused ones complete with -EINVAL), or -errno. */
int io_queue_submit(struct io_queue *q, const struct io_op *ops,
                    const uint32_t *tags, uint32_t count);
/* Writes REAP_STRIDE numbers per completion; returns how many.
 * `on_buffer_idle` is called with a buffer whose last op was reaped while it
 * was retiring, so binding.c can drop its reference. */
uint32_t io_queue_reap(struct io_queue *q, int32_t *out, uint32_t max,
                       void (*on_buffer_idle)(struct io_buffer *buf, void *ctx),
                       void *ctx);
/* Clears the eventfd after a wake-up. */
void io_queue_ack_event(struct io_queue *q);

/* ---- the frame loop's wait (waiter.c) ---------------------------------- */

#define WAITER_MAX_EVENTS 64

struct frame_waiter {
  int epoll_fd;
  int loop_fd;   /* libuv's backend descriptor (uv_backend_fd) */
};

int waiter_open(struct frame_waiter *w, int loop_fd, struct aoe_error *err);
/* Adds `fd` under `tag` (replacing an earlier registration of the same fd);
 * an eventfd is read whenever it is reported. 0 or -errno. */
int waiter_watch(struct frame_waiter *w, int fd, uint32_t tag, bool eventfd);
int waiter_unwatch(struct frame_waiter *w, int fd);
/* Waits up to timeout_ms (-1: no limit) and writes [tag, epoll events] per
 * ready descriptor into out (at most max). *loop_due: libuv's descriptor is
 * readable. Returns the count or -errno. */
int waiter_wait(struct frame_waiter *w, int32_t *out, uint32_t max, int timeout_ms, bool *loop_due);
void waiter_close(struct frame_waiter *w);

#endif
