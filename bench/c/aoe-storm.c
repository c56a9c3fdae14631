/*
 * aoe-storm: N diskless machines booting at once. Each client replays one
 * machine's boot (a schedule written by bench/storm/schedule.ts from the
 * recorded trace) against one AoE target, from a MAC of its own, all from one
 * raw socket in one thread. It sleeps in ppoll until a reply comes or the
 * next request is due (no busy polling), so the clients cost the machine
 * about what real initiators would.
 *
 * Usage: aoe-storm --if IFNAME --shelf N --slot N --clients N --schedule FILE
 *          [--timeout-ms MS] [--retries N] [--max-seconds S] [--mac-prefix aa:bb:cc]
 *
 * The schedule file: a first line "aoe-storm-schedule 1 STEPS", then one step
 * a line: "OP AFTER WINDOW WAIT_US LBA SECTORS" where
 *   OP      r (read SECTORS at LBA), i (IDENTIFY DEVICE), q (query config, broadcast)
 *   AFTER   s: due WAIT_US after the client's previous request was sent, once
 *              fewer than WINDOW of its requests are outstanding;
 *           i: due WAIT_US after the client's last reply, once none is outstanding
 *              (a request that needed what came before it).
 * As the Linux driver does, a client that retransmits drops its window to one
 * request and grows it back as replies come (slow start to half the window it
 * had, then one more per window of replies); it never exceeds WINDOW. A
 * retransmission is due --timeout-ms after the last transmission (the driver's
 * timer ticks every 100 ms; iPXE's first timeout is about 250 ms).
 * Client k sends from MAC PREFIX:kk:kk:kk (default prefix 02:00:53, locally
 * administered) and tells its replies apart by their destination MAC.
 *
 * Prints one JSON line: {"clients":N,"wall_us":…,"errors":…,"retransmits":…,
 *   "given_up":…,"per_client":[[done_us,ops,bytes,p50_us,p99_us,retransmits,errors],…]}
 * (and "first_error" when there was one). done_us counts from the common start
 * to the client's last reply; latency runs from the sendmmsg that carried a
 * request's last transmission to the recvmmsg that returned its reply.
 *
 * Needs CAP_NET_RAW; run it in a network namespace of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE_AOE 0x88a2
#define SECTOR 512
#define FRAME_MAX 9216
#define RX_BATCH 64
#define TX_BATCH 256
#define MAX_SLOTS 64
#define MAX_CLIENTS 4096
#define ATA_HEADER 36
#define MIN_FRAME 60
#define FLAG_RESPONSE 0x08
#define FLAG_ERROR 0x04
#define STATUS_ERR 0x01

struct step {
  char op;     /* r, i, q */
  char after;  /* s, i */
  uint16_t window;
  uint32_t wait_us;
  uint64_t lba;
  uint8_t sectors;
};

struct slot {
  uint64_t sent_ns;
  uint32_t tag;
  uint32_t step;
  uint16_t retransmits;
  uint8_t busy;
};

struct client {
  uint8_t mac[6];
  uint32_t next;      /* the next step to send */
  uint32_t serial;
  unsigned outstanding;
  /* The Linux driver's congestion window: 1 after a retransmission, grown back by replies. */
  unsigned cwnd, ssthresh, acks;
  uint64_t last_send_ns, last_reply_ns, done_ns;
  uint64_t check_ns; /* no retransmission is due before this: its slots need no scan until then */
  uint64_t ops, bytes, retransmits, errors;
  uint32_t *lat_us10; /* each answered request's latency in 0.1 µs */
  struct slot slots[MAX_SLOTS];
};

static struct {
  int fd;
  int ifindex;
  uint8_t own_mac[6];
  uint8_t target[6];
  long shelf, slot;
  struct step *steps;
  unsigned nsteps;
  struct client *clients;
  unsigned nclients;
  uint64_t timeout_ns;
  unsigned retries;
  uint8_t prefix[3];
  uint64_t given_up;
  const char *first_error;
} g;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "aoe-storm: %s\n", what);
  exit(1);
}

static void usage_error(const char *why) {
  fprintf(stderr,
          "aoe-storm: %s\n"
          "usage: aoe-storm --if IFNAME --shelf N --slot N --clients N --schedule FILE\n"
          "         [--timeout-ms MS] [--retries N] [--max-seconds S] [--mac-prefix aa:bb:cc]\n",
          why);
  exit(2);
}

/* ------------------------------------------------------------- schedule */

static void read_schedule(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "aoe-storm: cannot open the schedule %s: %s\n", path, strerror(errno));
    exit(1);
  }
  unsigned version, n;
  if (fscanf(f, "aoe-storm-schedule %u %u", &version, &n) != 2 || version != 1 || n == 0 || n > 10000000)
    die("the schedule does not start with \"aoe-storm-schedule 1 STEPS\"");
  g.steps = calloc(n, sizeof *g.steps);
  if (!g.steps)
    die("out of memory for the schedule");
  for (unsigned i = 0; i < n; i++) {
    struct step *s = &g.steps[i];
    unsigned window, sectors;
    unsigned long long wait, lba;
    char op, after;
    if (fscanf(f, " %c %c %u %llu %llu %u", &op, &after, &window, &wait, &lba, &sectors) != 6 ||
        !strchr("riq", op) || !strchr("si", after) || window < 1 || window > MAX_SLOTS || wait > 3600000000ull ||
        lba >= (1ull << 48) || sectors > 255 || (op == 'r' && sectors == 0)) {
      fprintf(stderr, "aoe-storm: schedule step %u (line %u) is not \"OP AFTER WINDOW WAIT_US LBA SECTORS\" "
                      "with OP r|i|q, AFTER s|i, WINDOW 1..%d, SECTORS 1..255 for a read\n",
              i + 1, i + 2, MAX_SLOTS);
      exit(1);
    }
    *s = (struct step){op, after, (uint16_t)window, (uint32_t)wait, lba, (uint8_t)sectors};
  }
  fclose(f);
  g.nsteps = n;
}

/* --------------------------------------------------------------- socket */

static void open_socket(const char *ifname) {
  g.fd = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
  if (g.fd < 0)
    die("cannot open a packet socket (needs CAP_NET_RAW: run as root)");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(g.fd, SIOCGIFINDEX, &ifr) < 0) {
    fprintf(stderr, "aoe-storm: no interface %s here: %s\n", ifname, strerror(errno));
    exit(1);
  }
  g.ifindex = ifr.ifr_ifindex;
  /* Only AoE responses reach us. */
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
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE_AOE), .sll_ifindex = g.ifindex};
  if (ioctl(g.fd, SIOCGIFHWADDR, &ifr) < 0 || bind(g.fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    fprintf(stderr, "aoe-storm: cannot bind to %s: %s\n", ifname, strerror(errno));
    exit(1);
  }
  memcpy(g.own_mac, ifr.ifr_hwaddr.sa_data, 6);
  int one = 1, big = 8 << 20;
  setsockopt(g.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  /* Room for a whole storm's replies between two wake-ups. */
  setsockopt(g.fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  setsockopt(g.fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
}

static void aoe_header(uint8_t *f, const uint8_t *dst, const uint8_t *src, unsigned cmd, uint32_t tag) {
  memcpy(f, dst, 6);
  memcpy(f + 6, src, 6);
  f[12] = ETHERTYPE_AOE >> 8;
  f[13] = ETHERTYPE_AOE & 0xff;
  f[14] = 0x10;
  f[15] = 0;
  f[16] = g.shelf >> 8;
  f[17] = g.shelf & 0xff;
  f[18] = g.slot;
  f[19] = cmd;
  f[20] = tag >> 24;
  f[21] = (tag >> 16) & 0xff;
  f[22] = (tag >> 8) & 0xff;
  f[23] = tag & 0xff;
}

static int from_target(const uint8_t *f, size_t len) {
  return len >= 24 && (f[16] << 8 | f[17]) == g.shelf && f[18] == g.slot;
}

/* Query Config from the interface's own MAC, every 200 ms for 3 s: the target's MAC. */
static void discover(void) {
  static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  uint8_t frame[MIN_FRAME], reply[FRAME_MAX];
  memset(frame, 0, sizeof frame);
  aoe_header(frame, broadcast, g.own_mac, 1, 0x7f000001);
  struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
  setsockopt(g.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (int attempt = 0; attempt < 15; attempt++) {
    if (send(g.fd, frame, sizeof frame, 0) < 0)
      die("cannot send on the interface (is it up?)");
    uint64_t until = now_ns() + 200000000u;
    while (now_ns() < until) {
      ssize_t n = recv(g.fd, reply, sizeof reply, 0);
      if (n >= 32 && from_target(reply, n) && reply[19] == 1 && !memcmp(reply, g.own_mac, 6) &&
          !(reply[14] & FLAG_ERROR)) {
        memcpy(g.target, reply + 6, 6);
        return;
      }
    }
  }
  fprintf(stderr, "aoe-storm: no AoE target e%ld.%ld answered a config query within 3 s\n", g.shelf, g.slot);
  exit(1);
}

/* ---------------------------------------------------------------- replay */

static uint8_t tx_frames[TX_BATCH][MIN_FRAME];
static struct iovec tx_iov[TX_BATCH];
static struct mmsghdr tx_msg[TX_BATCH];
static unsigned tx_count;

static void flush_sends(void) {
  for (unsigned sent = 0; sent < tx_count;) {
    int n = sendmmsg(g.fd, tx_msg + sent, tx_count - sent, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break; /* ENOBUFS: the timeout retransmits them */
    }
    sent += n;
  }
  tx_count = 0;
}

/* Queues the frame of slot s of client c (its first transmission or a retransmission). */
static void queue_frame(struct client *c, struct slot *s, uint64_t now) {
  static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  if (tx_count == TX_BATCH)
    flush_sends();
  const struct step *st = &g.steps[s->step];
  uint8_t *f = tx_frames[tx_count];
  memset(f, 0, MIN_FRAME);
  if (st->op == 'q') {
    aoe_header(f, broadcast, c->mac, 1, s->tag);
  } else {
    aoe_header(f, g.target, c->mac, 0, s->tag);
    f[24] = st->op == 'r' ? 0x40 : 0; /* LBA48 for reads */
    f[26] = st->op == 'r' ? st->sectors : 1;
    f[27] = st->op == 'r' ? 0x24 : 0xec;
    for (int i = 0; i < 6 && st->op == 'r'; i++)
      f[28 + i] = (st->lba >> (8 * i)) & 0xff;
  }
  tx_iov[tx_count] = (struct iovec){f, MIN_FRAME};
  memset(&tx_msg[tx_count], 0, sizeof tx_msg[tx_count]);
  tx_msg[tx_count].msg_hdr.msg_iov = &tx_iov[tx_count];
  tx_msg[tx_count].msg_hdr.msg_iovlen = 1;
  tx_count++;
  s->sent_ns = now;
  if (now + g.timeout_ns < c->check_ns)
    c->check_ns = now + g.timeout_ns;
}

/* When client c's next step may go (0: now or blocked by its window/outstanding requests → UINT64_MAX). */
static uint64_t due_at(const struct client *c) {
  if (c->next >= g.nsteps)
    return UINT64_MAX;
  const struct step *st = &g.steps[c->next];
  if (st->after == 'i')
    return c->outstanding == 0 ? c->last_reply_ns + (uint64_t)st->wait_us * 1000 : UINT64_MAX;
  unsigned window = st->window < c->cwnd ? st->window : c->cwnd;
  return c->outstanding < window ? c->last_send_ns + (uint64_t)st->wait_us * 1000 : UINT64_MAX;
}

/* Sends every step of client c that is due at `now`. */
static void send_due(struct client *c, uint64_t now) {
  while (due_at(c) <= now) {
    unsigned k = 0;
    while (k < MAX_SLOTS && c->slots[k].busy)
      k++;
    if (k == MAX_SLOTS)
      return;
    struct slot *s = &c->slots[k];
    s->busy = 1;
    s->step = c->next++;
    s->retransmits = 0;
    s->tag = (++c->serial & 0xffffff) << 8 | k;
    c->outstanding++;
    c->last_send_ns = now;
    queue_frame(c, s, now);
  }
}

static void note_error(struct client *c, const char *why) {
  c->errors++;
  if (!g.first_error)
    g.first_error = why;
}

static void finish(struct client *c, struct slot *s, uint64_t now) {
  s->busy = 0;
  c->outstanding--;
  c->last_reply_ns = now;
  if (c->next >= g.nsteps && c->outstanding == 0)
    c->done_ns = now;
}

static void take_reply(const uint8_t *f, size_t len, uint64_t now) {
  if (!from_target(f, len) || memcmp(f, g.prefix, 3) != 0)
    return;
  unsigned index = f[3] << 16 | f[4] << 8 | f[5];
  if (index >= g.nclients)
    return;
  struct client *c = &g.clients[index];
  uint32_t tag = (uint32_t)f[20] << 24 | f[21] << 16 | f[22] << 8 | f[23];
  if ((tag & 0xff) >= MAX_SLOTS)
    return;
  struct slot *s = &c->slots[tag & 0xff];
  if (!s->busy || s->tag != tag)
    return; /* a late duplicate */
  const struct step *st = &g.steps[s->step];
  if (f[19] != (st->op == 'q' ? 1 : 0))
    return;
  if (f[14] & FLAG_ERROR)
    note_error(c, "AoE error reply");
  else if (st->op != 'q' && (len < ATA_HEADER || (f[27] & STATUS_ERR)))
    note_error(c, "ATA error status");
  else if (st->op == 'r' && len < ATA_HEADER + (size_t)st->sectors * SECTOR)
    note_error(c, "read reply shorter than the sectors asked for");
  else {
    c->lat_us10[c->ops++] = (uint32_t)((now - s->sent_ns) / 100);
    if (st->op == 'r')
      c->bytes += (uint64_t)st->sectors * SECTOR;
    /* Slow start up to ssthresh, then one more per window of replies. */
    if (c->cwnd < c->ssthresh)
      c->cwnd++;
    else if (++c->acks >= c->cwnd && c->cwnd < MAX_SLOTS) {
      c->cwnd++;
      c->acks = 0;
    }
  }
  finish(c, s, now);
}

/* Retransmits what waited too long, gives up after --retries; returns the earliest retransmission due. */
static uint64_t retransmit(struct client *c, uint64_t now) {
  if (c->outstanding == 0 || now < c->check_ns)
    return c->outstanding == 0 ? UINT64_MAX : c->check_ns;
  uint64_t next = UINT64_MAX;
  for (unsigned k = 0; k < MAX_SLOTS && c->outstanding > 0; k++) {
    struct slot *s = &c->slots[k];
    if (!s->busy)
      continue;
    if (s->sent_ns + g.timeout_ns <= now) {
      if (s->retransmits >= g.retries) {
        g.given_up++;
        note_error(c, "request given up after retransmissions");
        finish(c, s, now);
        continue;
      }
      s->retransmits++;
      c->retransmits++;
      if (c->cwnd > 1) {
        unsigned w = g.steps[s->step].window < c->cwnd ? g.steps[s->step].window : c->cwnd;
        c->ssthresh = w / 2 > 1 ? w / 2 : 1;
        c->cwnd = 1;
        c->acks = 0;
      }
      queue_frame(c, s, now);
    }
    if (s->sent_ns + g.timeout_ns < next)
      next = s->sent_ns + g.timeout_ns;
  }
  c->check_ns = next;
  return next;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double percentile_us(uint32_t *v, uint64_t n, double q) {
  if (n == 0)
    return 0;
  return v[(uint64_t)(q * (n - 1) + 0.5)] / 10.0;
}

static void report(uint64_t start, uint64_t end) {
  uint64_t errors = 0, retransmits = 0;
  for (unsigned i = 0; i < g.nclients; i++) {
    errors += g.clients[i].errors;
    retransmits += g.clients[i].retransmits;
  }
  printf("{\"clients\":%u,\"steps\":%u,\"wall_us\":%.1f,\"errors\":%llu,\"retransmits\":%llu,\"given_up\":%llu",
         g.nclients, g.nsteps, (end - start) / 1e3, (unsigned long long)errors, (unsigned long long)retransmits,
         (unsigned long long)g.given_up);
  if (g.first_error)
    printf(",\"first_error\":\"%s\"", g.first_error);
  printf(",\"per_client\":[");
  for (unsigned i = 0; i < g.nclients; i++) {
    struct client *c = &g.clients[i];
    qsort(c->lat_us10, c->ops, sizeof *c->lat_us10, cmp_u32);
    double done = c->done_ns ? (c->done_ns - start) / 1e3 : -1;
    printf("%s[%.1f,%llu,%llu,%.1f,%.1f,%llu,%llu]", i ? "," : "", done, (unsigned long long)c->ops,
           (unsigned long long)c->bytes, percentile_us(c->lat_us10, c->ops, 0.5),
           percentile_us(c->lat_us10, c->ops, 0.99), (unsigned long long)c->retransmits,
           (unsigned long long)c->errors);
  }
  printf("]}\n");
}

static void run(double max_seconds) {
  uint64_t start = now_ns();
  uint64_t give_up = start + (uint64_t)(max_seconds * 1e9);
  for (unsigned i = 0; i < g.nclients; i++) {
    struct client *c = &g.clients[i];
    c->last_send_ns = c->last_reply_ns = start;
    c->cwnd = c->ssthresh = MAX_SLOTS;
    c->check_ns = UINT64_MAX;
  }
  static uint8_t rxbuf[RX_BATCH][FRAME_MAX];
  struct mmsghdr in[RX_BATCH];
  struct iovec in_iov[RX_BATCH];
  memset(in, 0, sizeof in);
  for (int i = 0; i < RX_BATCH; i++) {
    in_iov[i] = (struct iovec){rxbuf[i], FRAME_MAX};
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t now = start;
  for (;;) {
    uint64_t wake = UINT64_MAX;
    unsigned finished = 0;
    for (unsigned i = 0; i < g.nclients; i++) {
      struct client *c = &g.clients[i];
      send_due(c, now);
      uint64_t r = retransmit(c, now);
      uint64_t d = due_at(c);
      if (r < wake)
        wake = r;
      if (d < wake)
        wake = d;
      if (c->next >= g.nsteps && c->outstanding == 0)
        finished++;
    }
    flush_sends();
    if (finished == g.nclients)
      break;
    if (now >= give_up) {
      fprintf(stderr, "aoe-storm: not every client finished within --max-seconds %.0f\n", max_seconds);
      break;
    }
    if (wake > give_up)
      wake = give_up;
    struct pollfd p = {.fd = g.fd, .events = POLLIN};
    now = now_ns();
    if (wake > now) {
      uint64_t ns = wake - now;
      struct timespec ts = {.tv_sec = ns / 1000000000u, .tv_nsec = ns % 1000000000u};
      if (ppoll(&p, 1, &ts, NULL) < 0 && errno != EINTR)
        die("poll failed");
    }
    for (;;) {
      int got = recvmmsg(g.fd, in, RX_BATCH, MSG_DONTWAIT, NULL);
      now = now_ns();
      if (got <= 0) {
        if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          die("receive failed");
        break;
      }
      for (int i = 0; i < got; i++)
        take_reply(rxbuf[i], in[i].msg_len, now);
      if (got < RX_BATCH)
        break;
    }
  }
  report(start, now_ns());
}

/* --------------------------------------------------------------- options */

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

int main(int argc, char **argv) {
  static const struct option longs[] = {
    {"if", required_argument, 0, 'i'},         {"shelf", required_argument, 0, 'S'},
    {"slot", required_argument, 0, 's'},       {"clients", required_argument, 0, 'c'},
    {"schedule", required_argument, 0, 'f'},   {"timeout-ms", required_argument, 0, 'T'},
    {"retries", required_argument, 0, 'r'},    {"max-seconds", required_argument, 0, 'M'},
    {"mac-prefix", required_argument, 0, 'p'}, {0, 0, 0, 0},
  };
  const char *ifname = NULL, *schedule = NULL;
  long clients = 0, timeout_ms = 200, max_seconds = 600;
  g.shelf = g.slot = -1;
  g.retries = 20;
  memcpy(g.prefix, (uint8_t[]){0x02, 0x00, 0x53}, 3);
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
    case 'i': ifname = optarg; break;
    case 'f': schedule = optarg; break;
    case 'S': g.shelf = number(optarg, 0, 0xfffe, "--shelf"); break;
    case 's': g.slot = number(optarg, 0, 0xfe, "--slot"); break;
    case 'c': clients = number(optarg, 1, MAX_CLIENTS, "--clients"); break;
    case 'T': timeout_ms = number(optarg, 1, 60000, "--timeout-ms"); break;
    case 'r': g.retries = number(optarg, 0, 1000, "--retries"); break;
    case 'M': max_seconds = number(optarg, 1, 86400, "--max-seconds"); break;
    case 'p': {
      unsigned m[3];
      char extra;
      if (sscanf(optarg, "%x:%x:%x%c", &m[0], &m[1], &m[2], &extra) != 3 || m[0] > 255 || m[1] > 255 || m[2] > 255 ||
          (m[0] & 1))
        usage_error("--mac-prefix wants three hex bytes of a unicast MAC, like 02:00:53");
      for (int i = 0; i < 3; i++)
        g.prefix[i] = m[i];
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
  if (!ifname || g.shelf < 0 || g.slot < 0 || clients == 0 || !schedule)
    usage_error("--if, --shelf, --slot, --clients and --schedule are required");
  g.timeout_ns = (uint64_t)timeout_ms * 1000000u;
  read_schedule(schedule);
  g.nclients = clients;
  g.clients = calloc(clients, sizeof *g.clients);
  if (!g.clients)
    die("out of memory for the clients");
  for (long i = 0; i < clients; i++) {
    struct client *cl = &g.clients[i];
    memcpy(cl->mac, g.prefix, 3);
    cl->mac[3] = i >> 16;
    cl->mac[4] = (i >> 8) & 0xff;
    cl->mac[5] = i & 0xff;
    cl->lat_us10 = malloc(sizeof *cl->lat_us10 * g.nsteps);
    if (!cl->lat_us10)
      die("out of memory for the latencies");
  }
  open_socket(ifname);
  discover();
  run(max_seconds);
  return 0;
}
