/*
 * aoe-loadgen: a load generator that waits for replies the way a real
 * initiator does. It keeps W requests in flight to one AoE target, sends new
 * ones with sendmmsg and sleeps in recvmmsg until a reply arrives (no busy
 * polling), so a target pays the wake-ups a real initiator makes it pay.
 *
 * Usage: aoe-loadgen --if IFNAME --shelf N --slot N [--op read|write]
 *          [--pattern random|seq] [--sectors N] [--window W] [--seconds S]
 *          [--warmup S] [--timeout-ms MS] [--retries N] [--seed N]
 *          [--verify none|pattern|zero] [--image FILE] [--target-mac aa:bb:cc:dd:ee:ff]
 *
 *   Defaults: read, random, 1 sector, W=16, 5 s measured after 1 s of
 *   warm-up, retransmission after 200 ms, a request given up (an error)
 *   after 5 retransmissions, no data check.
 *
 * It finds the target with a Query Config broadcast (or asks --target-mac
 * directly), reads its capacity with IDENTIFY DEVICE, runs, and prints one
 * JSON line on stdout:
 *   {"ops":…,"seconds":…,"iops":…,"mbps":…,"p50_us":…,"p99_us":…,"mean_us":…,
 *    "retransmits":…,"errors":…,"cpu_user_s":…,"cpu_sys_s":…,
 *    "error_kinds":{"aoe":…,"ata":…,"short":…,"data":…,"given_up":…}}
 * (and "first_error":"…" when there were errors).
 * ops are the requests that completed without error during the measured
 * seconds; latency runs from the sendmmsg that carried a request's last
 * transmission to the recvmmsg that returned its reply (CLOCK_MONOTONIC).
 *
 * Writes carry the project's test pattern (src/client/pattern.ts) for the
 * sectors they write, so a backing file filled with the pattern keeps it;
 * --verify pattern checks read data against it, --verify zero against zeros
 * (a no-disk target). The pattern of the whole target is computed once at
 * start (capacity * 512 bytes of memory, about 1 s for 256 MiB) when writing
 * or verifying, unless --image names a file that already holds it (the bench
 * writes one and maps it into every run).
 *
 * Needs CAP_NET_RAW; run it in a network namespace of its own.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE_AOE 0x88a2
#define SECTOR 512
#define FRAME_MAX 9216
#define RX_BATCH 64
#define MAX_WINDOW 4096
#define ATA_HEADER 36
#define MIN_FRAME 60
#define FLAG_RESPONSE 0x08
#define FLAG_ERROR 0x04
#define STATUS_ERR 0x01
/* Latency histogram: 100 ns buckets up to 50 ms, then one overflow bucket (read as the slowest request). */
#define BUCKET_NS 100
#define BUCKETS 500000

struct options {
  const char *ifname;
  const char *image; /* a file holding the test pattern, or NULL */
  long shelf, slot;
  int write;
  int random;
  unsigned sectors;
  unsigned window;
  double seconds, warmup;
  unsigned timeout_ms, retries;
  uint32_t seed;
  enum { VERIFY_NONE, VERIFY_PATTERN, VERIFY_ZERO } verify;
  int have_mac;
  uint8_t target_mac[6];
};

/* One request slot of the window: the frame it sends and when. */
struct request {
  uint8_t frame[ATA_HEADER + 8];
  uint64_t lba;
  uint64_t sent_ns;
  uint32_t tag;
  unsigned retransmits;
  int busy;
};

static struct {
  int fd;
  uint8_t mac[6];
  uint8_t target[6];
  unsigned max_sectors;
  uint64_t capacity;
  const uint8_t *image; /* the test pattern of every sector, or NULL */
  uint8_t zeros[255 * SECTOR];
  uint32_t serial;
  uint64_t next_seq;
  uint32_t rng;
} g;

/* What went wrong with a request: the JSON's error_kinds. */
enum error_kind { ERR_AOE, ERR_ATA, ERR_SHORT, ERR_DATA, ERR_GIVEN_UP, ERROR_KINDS };
static const char *const error_kind_names[ERROR_KINDS] = {"aoe", "ata", "short", "data", "given_up"};

static struct {
  uint64_t ops, errors, retransmits;
  uint64_t sum_ns, max_ns;
  uint32_t buckets[BUCKETS + 1];
  uint64_t kinds[ERROR_KINDS];
  const char *first_error;
} stats;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "aoe-loadgen: %s\n", what);
  exit(1);
}

/* ---------------------------------------------------------------- pattern */

/* Sector n of the project's test pattern (the same bytes as src/client/pattern.ts). */
static void fill_sector(uint8_t *p, uint64_t n) {
  uint32_t lo = (uint32_t)n, hi = (uint32_t)(n >> 32);
  uint32_t x = ((lo ^ 0x5bd1e995u) * 0x9e3779b1u) ^ ((hi + 0x27d4eb2fu) * 0x85ebca6bu);
  x ^= x >> 15;
  x *= 0x2c1b3c6du;
  x ^= x >> 12;
  if (x == 0)
    x = 0x1234567;
  memcpy(p, "SECT", 4);
  uint64_t d = n % 100000000u;
  for (int i = 11; i >= 4; i--, d /= 10)
    p[i] = '0' + d % 10;
  for (int i = 12; i < SECTOR; i += 4) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = x & 0xff;
    p[i + 1] = (x >> 8) & 0xff;
    p[i + 2] = (x >> 16) & 0xff;
    p[i + 3] = x >> 24;
  }
}

static void build_image(void) {
  if (g.capacity > (8ull << 30) / SECTOR)
    die("the target is larger than 8 GiB, too large to compute its test pattern in memory: give --image FILE");
  uint8_t *image = malloc(g.capacity * SECTOR);
  if (!image)
    die("out of memory for the test pattern");
  for (uint64_t n = 0; n < g.capacity; n++)
    fill_sector(image + n * SECTOR, n);
  g.image = image;
}

/* Maps a file that holds the pattern of (at least) the whole target, and checks its first and last sector. */
static void map_image(const char *path) {
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    fprintf(stderr, "aoe-loadgen: cannot open the pattern file %s: %s\n", path, strerror(errno));
    exit(1);
  }
  if ((uint64_t)st.st_size < g.capacity * SECTOR) {
    fprintf(stderr, "aoe-loadgen: the pattern file %s holds %lld bytes, the target has %llu sectors: it is too short\n",
            path, (long long)st.st_size, (unsigned long long)g.capacity);
    exit(1);
  }
  void *p = mmap(NULL, g.capacity * SECTOR, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    die("cannot map the pattern file");
  uint8_t expect[SECTOR];
  for (int i = 0; i < 2; i++) {
    uint64_t n = i == 0 ? 0 : g.capacity - 1;
    fill_sector(expect, n);
    if (memcmp((const uint8_t *)p + n * SECTOR, expect, SECTOR) != 0) {
      fprintf(stderr, "aoe-loadgen: %s does not hold the test pattern (sector %llu differs)\n", path,
              (unsigned long long)n);
      exit(1);
    }
  }
  g.image = p;
}

/* ----------------------------------------------------------------- socket */

static void open_socket(const char *ifname) {
  g.fd = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
  if (g.fd < 0)
    die("cannot open a packet socket (needs CAP_NET_RAW: run as root)");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(g.fd, SIOCGIFINDEX, &ifr) < 0) {
    fprintf(stderr, "aoe-loadgen: no interface %s here: %s\n", ifname, strerror(errno));
    exit(1);
  }
  /* Only AoE responses reach us: EtherType 0x88a2 with the response flag. */
  struct sock_filter code[] = {
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_AOE, 0, 3),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, FLAG_RESPONSE, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, FRAME_MAX),
    BPF_STMT(BPF_RET | BPF_K, 0),
  };
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (setsockopt(g.fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
    die("cannot attach the receive filter");
  struct sockaddr_ll sll = {
      .sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE_AOE), .sll_ifindex = ifr.ifr_ifindex};
  if (ioctl(g.fd, SIOCGIFHWADDR, &ifr) < 0 || bind(g.fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    fprintf(stderr, "aoe-loadgen: cannot bind to %s: %s\n", ifname, strerror(errno));
    exit(1);
  }
  memcpy(g.mac, ifr.ifr_hwaddr.sa_data, 6);
  int one = 1;
  setsockopt(g.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
}

/* recv/recvmmsg wait at most this long, so retransmissions and the end of the run are not missed. */
static void set_receive_timeout(unsigned us) {
  struct timeval tv = {.tv_sec = us / 1000000, .tv_usec = us % 1000000};
  setsockopt(g.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void aoe_header(uint8_t *f, const uint8_t *dst, const struct options *o, unsigned cmd, uint32_t tag) {
  memcpy(f, dst, 6);
  memcpy(f + 6, g.mac, 6);
  f[12] = ETHERTYPE_AOE >> 8;
  f[13] = ETHERTYPE_AOE & 0xff;
  f[14] = 0x10;
  f[15] = 0;
  f[16] = o->shelf >> 8;
  f[17] = o->shelf & 0xff;
  f[18] = o->slot;
  f[19] = cmd;
  f[20] = tag >> 24;
  f[21] = (tag >> 16) & 0xff;
  f[22] = (tag >> 8) & 0xff;
  f[23] = tag & 0xff;
}

static uint32_t reply_tag(const uint8_t *f) {
  return (uint32_t)f[20] << 24 | f[21] << 16 | f[22] << 8 | f[23];
}

static int from_target(const uint8_t *f, size_t len, const struct options *o, unsigned cmd) {
  return len >= 24 && (f[16] << 8 | f[17]) == o->shelf && f[18] == o->slot && f[19] == cmd;
}

/* Sends one frame (padded to 60 bytes) and waits up to 3 s, retrying every 200 ms, for its reply. */
static size_t exchange(uint8_t *frame, size_t len, const struct options *o, unsigned cmd, uint8_t *reply) {
  uint32_t tag = reply_tag(frame);
  if (len < MIN_FRAME) {
    memset(frame + len, 0, MIN_FRAME - len);
    len = MIN_FRAME;
  }
  set_receive_timeout(200000);
  for (int attempt = 0; attempt < 15; attempt++) {
    if (send(g.fd, frame, len, 0) < 0)
      die("cannot send on the interface (is it up?)");
    uint64_t until = now_ns() + 200000000u;
    while (now_ns() < until) {
      ssize_t n = recv(g.fd, reply, FRAME_MAX, 0);
      if (n > 0 && from_target(reply, n, o, cmd) && reply_tag(reply) == tag)
        return n;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        die("receive failed");
    }
  }
  return 0;
}

/* Query Config: the target's MAC (unless given) and its sectors per request. */
static void discover(const struct options *o) {
  static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  uint8_t frame[MIN_FRAME], reply[FRAME_MAX];
  memset(frame, 0, sizeof frame);
  aoe_header(frame, o->have_mac ? o->target_mac : broadcast, o, 1, 0x7f000001);
  size_t n = exchange(frame, 32, o, 1, reply);
  if (n < 32 || (reply[14] & FLAG_ERROR)) {
    fprintf(stderr, "aoe-loadgen: no AoE target e%ld.%ld answered a config query on %s within 3 s\n", o->shelf,
            o->slot, o->ifname);
    exit(1);
  }
  memcpy(g.target, reply + 6, 6);
  g.max_sectors = reply[28] ? reply[28] : 2;
}

/* IDENTIFY DEVICE: the target's capacity in sectors. */
static void identify(const struct options *o) {
  uint8_t frame[MIN_FRAME], reply[FRAME_MAX];
  memset(frame, 0, sizeof frame);
  aoe_header(frame, g.target, o, 0, 0x7f000002);
  frame[26] = 1;
  frame[27] = 0xec;
  size_t n = exchange(frame, ATA_HEADER, o, 0, reply);
  if (n < ATA_HEADER + SECTOR || (reply[14] & FLAG_ERROR) || (reply[27] & STATUS_ERR))
    die("the target did not answer IDENTIFY DEVICE with 512 bytes");
  const uint8_t *id = reply + ATA_HEADER;
#define WORD(w) ((uint64_t)(id[(w) * 2] | id[(w) * 2 + 1] << 8))
  int lba48 = ((WORD(83) | WORD(86)) & 0x0400) != 0;
  g.capacity = lba48 ? WORD(100) | WORD(101) << 16 | WORD(102) << 32 | WORD(103) << 48 : WORD(60) | WORD(61) << 16;
#undef WORD
}

/* ---------------------------------------------------------------- the run */

static uint32_t next_random(void) {
  g.rng ^= g.rng << 13;
  g.rng ^= g.rng >> 17;
  g.rng ^= g.rng << 5;
  return g.rng;
}

static uint64_t next_lba(const struct options *o) {
  uint64_t places = g.capacity / o->sectors;
  uint64_t i;
  if (o->random)
    i = ((uint64_t)next_random() << 32 | next_random()) % places;
  else
    i = g.next_seq++ % places;
  return i * o->sectors;
}

/* Prepares slot r for a new request (a new tag) and describes its frame in v/msg. */
static void new_request(struct request *r, unsigned index, const struct options *o, struct mmsghdr *msg,
                        struct iovec *v) {
  uint8_t *f = r->frame;
  r->lba = next_lba(o);
  r->tag = (++g.serial & 0xffff) << 16 | index;
  r->retransmits = 0;
  r->busy = 1;
  r->sent_ns = now_ns(); /* until it is sent: no retransmission before then */
  aoe_header(f, g.target, o, 0, r->tag);
  f[24] = 0x40 | (o->write ? 0x01 : 0); /* extended (LBA48), write */
  f[25] = 0;
  f[26] = o->sectors;
  f[27] = o->write ? 0x34 : 0x24;
  for (int i = 0; i < 6; i++)
    f[28 + i] = (r->lba >> (8 * i)) & 0xff;
  f[34] = f[35] = 0;
  int parts = 0;
  v[parts++] = (struct iovec){f, ATA_HEADER};
  if (o->write)
    /* The cast drops const: sendmmsg only reads the data. */
    v[parts++] = (struct iovec){(void *)(g.image + r->lba * SECTOR), (size_t)o->sectors * SECTOR};
  else
    v[parts++] = (struct iovec){g.zeros, MIN_FRAME - ATA_HEADER};
  memset(&msg->msg_hdr, 0, sizeof msg->msg_hdr);
  msg->msg_hdr.msg_iov = v;
  msg->msg_hdr.msg_iovlen = parts;
}

static void fail(enum error_kind kind, const char *why) {
  stats.errors++;
  stats.kinds[kind]++;
  if (!stats.first_error)
    stats.first_error = why;
}

/* Why the reply f[0..len) to request r is wrong (and *kind), or NULL when it is right. */
static const char *check_reply(const struct request *r, const uint8_t *f, size_t len, const struct options *o,
                               enum error_kind *kind) {
  *kind = ERR_AOE;
  if (f[14] & FLAG_ERROR)
    return "AoE error reply";
  *kind = ERR_ATA;
  if (len < ATA_HEADER || (f[27] & STATUS_ERR))
    return "ATA error status";
  if (o->write)
    return NULL;
  size_t want = (size_t)o->sectors * SECTOR;
  *kind = ERR_SHORT;
  if (len < ATA_HEADER + want)
    return "read reply shorter than the sectors asked for";
  *kind = ERR_DATA;
  if (o->verify == VERIFY_PATTERN && memcmp(f + ATA_HEADER, g.image + r->lba * SECTOR, want) != 0)
    return "read data differ from the test pattern";
  if (o->verify == VERIFY_ZERO && memcmp(f + ATA_HEADER, g.zeros, want) != 0)
    return "read data are not zeros";
  return NULL;
}

/* Checks the reply f[0..len) to request r; counts it when `measure`. */
static void complete(struct request *r, const uint8_t *f, size_t len, const struct options *o, uint64_t at,
                     int measure) {
  r->busy = 0;
  if (!measure)
    return;
  enum error_kind kind;
  const char *wrong = check_reply(r, f, len, o, &kind);
  if (wrong) {
    fail(kind, wrong);
    return;
  }
  uint64_t ns = at - r->sent_ns;
  uint64_t b = ns / BUCKET_NS;
  stats.buckets[b < BUCKETS ? b : BUCKETS]++;
  stats.sum_ns += ns;
  if (ns > stats.max_ns)
    stats.max_ns = ns;
  stats.ops++;
}

static double percentile_us(double q) {
  uint64_t total = 0, seen = 0;
  for (int i = 0; i <= BUCKETS; i++)
    total += stats.buckets[i];
  if (total == 0)
    return 0;
  uint64_t rank = (uint64_t)(q * (total - 1)) + 1;
  for (int i = 0; i <= BUCKETS; i++) {
    seen += stats.buckets[i];
    if (seen >= rank)
      return i < BUCKETS ? (i + 0.5) * BUCKET_NS / 1000.0 : stats.max_ns / 1000.0;
  }
  return 0;
}

static double cpu_seconds(const struct timeval *tv) {
  return tv->tv_sec + tv->tv_usec / 1e6;
}

static void run(const struct options *o) {
  static struct request req[MAX_WINDOW];
  static struct mmsghdr out[MAX_WINDOW];
  static struct iovec out_iov[MAX_WINDOW][2];
  static uint8_t rxbuf[RX_BATCH][FRAME_MAX];
  struct mmsghdr in[RX_BATCH];
  struct iovec in_iov[RX_BATCH];
  memset(in, 0, sizeof in);
  for (int i = 0; i < RX_BATCH; i++) {
    in_iov[i] = (struct iovec){rxbuf[i], FRAME_MAX};
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  /* Wake at least every 10 ms without replies: retransmissions and the end of the run. */
  set_receive_timeout(10000);
  const uint64_t timeout_ns = (uint64_t)o->timeout_ms * 1000000u;
  const uint64_t start = now_ns();
  const uint64_t measure_from = start + (uint64_t)(o->warmup * 1e9);
  const uint64_t end = measure_from + (uint64_t)(o->seconds * 1e9);
  int measuring = measure_from == start;
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  uint64_t measured_start = start;
  unsigned pending[MAX_WINDOW]; /* slots whose frames go out in the next sendmmsg */
  unsigned npending = 0;
  for (unsigned i = 0; i < o->window; i++) {
    new_request(&req[i], i, o, &out[i], out_iov[i]);
    pending[npending++] = i;
  }
  uint64_t now = start;
  for (;;) {
    /* Send what is pending, in one sendmmsg (a copy of the headers in slot order). */
    if (npending > 0) {
      static struct mmsghdr batch[MAX_WINDOW];
      for (unsigned k = 0; k < npending; k++)
        batch[k] = out[pending[k]];
      uint64_t t = now_ns();
      for (unsigned k = 0; k < npending; k++)
        req[pending[k]].sent_ns = t;
      for (unsigned sent = 0; sent < npending;) {
        int n = sendmmsg(g.fd, batch + sent, npending - sent, 0);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          break; /* ENOBUFS: the timeout retransmits them */
        }
        sent += n;
      }
      npending = 0;
    }
    int got = recvmmsg(g.fd, in, RX_BATCH, MSG_WAITFORONE, NULL);
    now = now_ns();
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      die("receive failed");
    if (!measuring && now >= measure_from) {
      /* The warm-up ends: count from here. */
      measuring = 1;
      memset(&stats, 0, sizeof stats);
      measured_start = now;
      getrusage(RUSAGE_SELF, &ru0);
    }
    int finished = measuring && now >= end;
    for (int i = 0; i < got; i++) {
      const uint8_t *f = rxbuf[i];
      size_t len = in[i].msg_len;
      if (!from_target(f, len, o, 0))
        continue;
      uint32_t tag = reply_tag(f);
      unsigned index = tag & 0xffff;
      if (index >= o->window || !req[index].busy || req[index].tag != tag)
        continue; /* a late duplicate of an answered request */
      complete(&req[index], f, len, o, now, measuring && now <= end);
      if (!finished) {
        new_request(&req[index], index, o, &out[index], out_iov[index]);
        pending[npending++] = index;
      }
    }
    if (finished)
      break;
    /* Retransmit what waited too long; give up after --retries. */
    for (unsigned i = 0; i < o->window; i++) {
      struct request *r = &req[i];
      /* sent_ns may be later than `now`: a request made in this pass. */
      if (!r->busy || r->sent_ns + timeout_ns > now)
        continue;
      if (r->retransmits >= o->retries) {
        r->busy = 0;
        if (measuring)
          fail(ERR_GIVEN_UP, "request given up after retransmissions");
        new_request(r, i, o, &out[i], out_iov[i]);
      } else {
        r->retransmits++;
        if (measuring)
          stats.retransmits++;
      }
      pending[npending++] = i;
    }
  }
  getrusage(RUSAGE_SELF, &ru1);
  double seconds = (end - measured_start) / 1e9;
  double iops = stats.ops / seconds;
  printf("{\"ops\":%llu,\"seconds\":%.3f,\"iops\":%.1f,\"mbps\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"mean_us\":%.2f,\"retransmits\":%llu,\"errors\":%llu,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f",
         (unsigned long long)stats.ops, seconds, iops, iops * o->sectors * SECTOR / 1e6, percentile_us(0.5),
         percentile_us(0.99), stats.ops ? stats.sum_ns / 1000.0 / stats.ops : 0.0,
         (unsigned long long)stats.retransmits, (unsigned long long)stats.errors,
         cpu_seconds(&ru1.ru_utime) - cpu_seconds(&ru0.ru_utime),
         cpu_seconds(&ru1.ru_stime) - cpu_seconds(&ru0.ru_stime));
  printf(",\"error_kinds\":{");
  for (int i = 0; i < ERROR_KINDS; i++)
    printf("%s\"%s\":%llu", i ? "," : "", error_kind_names[i], (unsigned long long)stats.kinds[i]);
  printf("}");
  if (stats.first_error)
    printf(",\"first_error\":\"%s\"", stats.first_error);
  printf("}\n");
}

/* ---------------------------------------------------------------- options */

static void usage_error(const char *why) {
  fprintf(stderr,
          "aoe-loadgen: %s\n"
          "usage: aoe-loadgen --if IFNAME --shelf N --slot N [--op read|write] [--pattern random|seq]\n"
          "         [--sectors N] [--window W] [--seconds S] [--warmup S] [--timeout-ms MS] [--retries N]\n"
          "         [--seed N] [--verify none|pattern|zero] [--image FILE] [--target-mac aa:bb:cc:dd:ee:ff]\n",
          why);
  exit(2);
}

static long number(const char *text, long min, long max, const char *name) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 0);
  if (errno || *end || end == text || v < min || v > max) {
    char why[160];
    snprintf(why, sizeof why, "%s wants a whole number from %ld to %ld, got \"%s\"", name, min, max, text);
    usage_error(why);
  }
  return v;
}

static double seconds_arg(const char *text, const char *name) {
  char *end;
  double v = strtod(text, &end);
  if (*end || end == text || !(v >= 0) || v > 86400) {
    char why[160];
    snprintf(why, sizeof why, "%s wants seconds from 0 to 86400, got \"%s\"", name, text);
    usage_error(why);
  }
  return v;
}

static void parse_options(int argc, char **argv, struct options *o) {
  static const struct option longs[] = {
    {"if", required_argument, 0, 'i'},
    {"shelf", required_argument, 0, 'S'},
    {"slot", required_argument, 0, 's'},
    {"op", required_argument, 0, 'o'},
    {"pattern", required_argument, 0, 'p'},
    {"sectors", required_argument, 0, 'n'},
    {"window", required_argument, 0, 'w'},
    {"seconds", required_argument, 0, 't'},
    {"warmup", required_argument, 0, 'W'},
    {"timeout-ms", required_argument, 0, 'T'},
    {"retries", required_argument, 0, 'r'},
    {"seed", required_argument, 0, 'e'},
    {"verify", required_argument, 0, 'v'},
    {"image", required_argument, 0, 'I'},
    {"target-mac", required_argument, 0, 'm'},
    {0, 0, 0, 0},
  };
  *o = (struct options){.shelf = -1,
                        .slot = -1,
                        .random = 1,
                        .sectors = 1,
                        .window = 16,
                        .seconds = 5,
                        .warmup = 1,
                        .timeout_ms = 200,
                        .retries = 5,
                        .seed = 0x5eed};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
    case 'i': o->ifname = optarg; break;
    case 'I': o->image = optarg; break;
    case 'S': o->shelf = number(optarg, 0, 0xfffe, "--shelf"); break;
    case 's': o->slot = number(optarg, 0, 0xfe, "--slot"); break;
    case 'n': o->sectors = number(optarg, 1, 255, "--sectors"); break;
    case 'w': o->window = number(optarg, 1, MAX_WINDOW, "--window"); break;
    case 't': o->seconds = seconds_arg(optarg, "--seconds"); break;
    case 'W': o->warmup = seconds_arg(optarg, "--warmup"); break;
    case 'T': o->timeout_ms = number(optarg, 1, 60000, "--timeout-ms"); break;
    case 'r': o->retries = number(optarg, 0, 1000, "--retries"); break;
    case 'e': o->seed = number(optarg, 1, 0x7fffffff, "--seed"); break;
    case 'o':
      if (strcmp(optarg, "read") && strcmp(optarg, "write"))
        usage_error("--op is read or write");
      o->write = optarg[0] == 'w';
      break;
    case 'p':
      if (strcmp(optarg, "random") && strcmp(optarg, "seq"))
        usage_error("--pattern is random or seq");
      o->random = optarg[0] == 'r';
      break;
    case 'v':
      if (!strcmp(optarg, "none"))
        o->verify = VERIFY_NONE;
      else if (!strcmp(optarg, "pattern"))
        o->verify = VERIFY_PATTERN;
      else if (!strcmp(optarg, "zero"))
        o->verify = VERIFY_ZERO;
      else
        usage_error("--verify is none, pattern or zero");
      break;
    case 'm': {
      unsigned m[6];
      char extra;
      if (sscanf(optarg, "%x:%x:%x:%x:%x:%x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &extra) != 6)
        usage_error("--target-mac wants six hex bytes like 02:00:00:00:00:01");
      for (int i = 0; i < 6; i++)
        o->target_mac[i] = m[i];
      o->have_mac = 1;
      break;
    }
    default: {
      char why[160];
      snprintf(why, sizeof why, "unknown option or missing value: %s", argv[optind - 1]);
      usage_error(why);
    }
    }
  }
  if (optind < argc)
    usage_error("unexpected argument (every setting is an --option)");
  if (!o->ifname || o->shelf < 0 || o->slot < 0)
    usage_error("--if, --shelf and --slot are required");
  if (o->seconds <= 0)
    usage_error("--seconds must be more than 0");
}

int main(int argc, char **argv) {
  struct options o;
  parse_options(argc, argv, &o);
  g.rng = o.seed;
  open_socket(o.ifname);
  discover(&o);
  if (o.sectors > g.max_sectors) {
    fprintf(stderr, "aoe-loadgen: the target takes at most %u sectors per request here; use --sectors %u or less\n",
      g.max_sectors, g.max_sectors);
    return 1;
  }
  identify(&o);
  if (g.capacity < o.sectors)
    die("the target is smaller than one request");
  if (o.write || o.verify == VERIFY_PATTERN) {
    if (o.image)
      map_image(o.image);
    else
      build_image();
  }
  run(&o);
  return 0;
}
