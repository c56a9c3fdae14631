/*
 * aoe-reflector: the bench's ceiling. A no-disk AoE r11 target that answers
 * as fast as the kernel lets a blocking C program: every read gets the right
 * number of zero sectors, every write is acknowledged and its data dropped.
 * Whatever a real target adds on top of this is its own cost.
 *
 * Usage: aoe-reflector SHELF SLOT IFNAME [SECTORS]
 *
 *   SECTORS is the capacity it claims (IDENTIFY, range checks); default
 *   2097152 (1 GiB). It runs until SIGTERM or SIGINT, then prints how many
 *   requests it answered on stderr.
 *
 * Answers: Query Config read (buffer count, firmware, sectors per frame from
 * the MTU, AoE version 1, empty config string); ATA READ/WRITE SECTORS (EXT),
 * IDENTIFY DEVICE, FLUSH CACHE (EXT), CHECK POWER MODE; other ATA commands
 * get ABRT. Requests for other shelves/slots, responses, other AoE versions
 * and other AoE commands are ignored.
 *
 * Frames come in through one blocking recvmmsg (up to 64 per call) and the
 * replies of a batch leave through one sendmmsg. Needs CAP_NET_RAW; run it in
 * a network namespace of its own, never on a shared network.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ETHERTYPE_AOE 0x88a2
#define BATCH 64
#define FRAME_MAX 9216
#define SECTOR 512
#define MIN_FRAME 60

/* Offsets from the start of the Ethernet frame (AoE r11). */
#define OFF_VERFLAGS 14
#define OFF_ERROR 15
#define OFF_MAJOR 16
#define OFF_MINOR 18
#define OFF_CMD 19
#define OFF_ATA_AFLAGS 24
#define OFF_ATA_ERRFEAT 25
#define OFF_ATA_COUNT 26
#define OFF_ATA_CMDSTAT 27
#define OFF_ATA_LBA 28
#define ATA_HEADER 36
#define OFF_CFG_BUFCNT 24
#define OFF_CFG_FIRMWARE 26
#define OFF_CFG_SECTORS 28
#define OFF_CFG_VERCCMD 29
#define OFF_CFG_LEN 30
#define CFG_HEADER 32

#define FLAG_RESPONSE 0x08
#define STATUS_DRDY 0x40
#define STATUS_ERR 0x01
#define ERROR_ABRT 0x04
#define ERROR_IDNF 0x10

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

struct reflector {
  int fd;
  uint16_t shelf;
  uint8_t slot;
  uint8_t mac[6];
  unsigned max_sectors; /* per request, from the MTU */
  uint64_t capacity;    /* sectors */
  uint8_t identify[SECTOR];
  unsigned long answered;
};

/* Zeros: the data of every read and the padding of short replies. */
static uint8_t zeros[255 * SECTOR];

static void put16(uint8_t *p, unsigned v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

/* An ATA string: two characters per word, the first in the high byte. */
static void identify_string(uint8_t *id, int word, int words, const char *text) {
  size_t len = strlen(text);
  for (int i = 0; i < words * 2; i++)
    id[word * 2 + (i ^ 1)] = i < (int)len ? (uint8_t)text[i] : ' ';
}

static void identify_word(uint8_t *id, int word, unsigned v) {
  id[word * 2] = v & 0xff;
  id[word * 2 + 1] = (v >> 8) & 0xff;
}

static void build_identify(struct reflector *r) {
  uint8_t *id = r->identify;
  uint64_t lba28 = r->capacity < 0x0fffffff ? r->capacity : 0x0fffffff;
  memset(id, 0, SECTOR);
  identify_string(id, 10, 10, "REFLECTOR");
  identify_string(id, 23, 4, "1");
  identify_string(id, 27, 20, "aoe-reflector (bench ceiling)");
  identify_word(id, 49, 0x0200); /* LBA supported */
  identify_word(id, 60, lba28 & 0xffff);
  identify_word(id, 61, lba28 >> 16);
  identify_word(id, 83, 0x4000 | 0x3400); /* LBA48, FLUSH CACHE (EXT) */
  identify_word(id, 86, 0x3400);
  for (int i = 0; i < 4; i++)
    identify_word(id, 100 + i, (r->capacity >> (16 * i)) & 0xffff);
}

/* Sets the ATA registers of a reply whose AoE header is already in place. */
static void ata_result(uint8_t *tx, const uint8_t *rx, unsigned status, unsigned error, unsigned count) {
  tx[OFF_ATA_AFLAGS] = rx[OFF_ATA_AFLAGS];
  tx[OFF_ATA_ERRFEAT] = error;
  tx[OFF_ATA_COUNT] = count;
  tx[OFF_ATA_CMDSTAT] = status;
  memcpy(tx + OFF_ATA_LBA, rx + OFF_ATA_LBA, 6);
  tx[OFF_ATA_LBA + 6] = 0;
  tx[OFF_ATA_LBA + 7] = 0;
}

/*
 * Fills the reply to the ATA request rx[0..len) into tx and says where its
 * data comes from (*data, *data_len). Returns the length of tx, 0 for none.
 */
static size_t answer_ata(struct reflector *r, const uint8_t *rx, size_t len, uint8_t *tx, const uint8_t **data,
                         size_t *data_len) {
  if (len < ATA_HEADER)
    return 0;
  unsigned op = rx[OFF_ATA_CMDSTAT];
  unsigned count = rx[OFF_ATA_COUNT];
  int ext = op == 0x24 || op == 0x34;
  int write = op == 0x30 || op == 0x34;
  switch (op) {
  case 0x20: /* READ SECTORS */
  case 0x24: /* READ SECTORS EXT */
  case 0x30: /* WRITE SECTORS */
  case 0x34: /* WRITE SECTORS EXT */
    break;
  case 0xec: /* IDENTIFY DEVICE */
    ata_result(tx, rx, STATUS_DRDY, 0, 0);
    *data = r->identify;
    *data_len = SECTOR;
    return ATA_HEADER;
  case 0xe7:
  case 0xea: /* FLUSH CACHE (EXT): nothing is stored */
    ata_result(tx, rx, STATUS_DRDY, 0, 0);
    return ATA_HEADER;
  case 0xe5: /* CHECK POWER MODE: active */
    ata_result(tx, rx, STATUS_DRDY, 0, 0xff);
    return ATA_HEADER;
  default:
    ata_result(tx, rx, STATUS_DRDY | STATUS_ERR, ERROR_ABRT, count);
    return ATA_HEADER;
  }
  uint64_t lba = 0;
  for (int i = 0; i < (ext ? 6 : 3); i++)
    lba |= (uint64_t)rx[OFF_ATA_LBA + i] << (8 * i);
  if (!ext)
    lba |= (uint64_t)(rx[OFF_ATA_LBA + 3] & 0x0f) << 24;
  /* A count of 0 means 256 (65536 with EXT): more than any frame holds. */
  if (count == 0 || count > r->max_sectors || (write && len < ATA_HEADER + (size_t)count * SECTOR)) {
    ata_result(tx, rx, STATUS_DRDY | STATUS_ERR, ERROR_ABRT, count);
    return ATA_HEADER;
  }
  if (lba + count > r->capacity) {
    ata_result(tx, rx, STATUS_DRDY | STATUS_ERR, ERROR_IDNF, count);
    return ATA_HEADER;
  }
  ata_result(tx, rx, STATUS_DRDY, 0, 0);
  if (!write) {
    *data = zeros;
    *data_len = (size_t)count * SECTOR;
  }
  return ATA_HEADER;
}

static size_t answer_config(struct reflector *r, const uint8_t *rx, size_t len, uint8_t *tx) {
  /* Only the read (ccmd 0): the config string stays empty. */
  if (len < CFG_HEADER || (rx[OFF_CFG_VERCCMD] & 0x0f) != 0)
    return 0;
  put16(tx + OFF_CFG_BUFCNT, BATCH);
  put16(tx + OFF_CFG_FIRMWARE, 0x0001);
  tx[OFF_CFG_SECTORS] = r->max_sectors;
  tx[OFF_CFG_VERCCMD] = 0x10;
  put16(tx + OFF_CFG_LEN, 0);
  return CFG_HEADER;
}

/* The reply to rx[0..len) in tx, or 0 when the frame gets none. */
static size_t answer(struct reflector *r, const uint8_t *rx, size_t len, uint8_t *tx, const uint8_t **data,
                     size_t *data_len) {
  *data = NULL;
  *data_len = 0;
  if (len < 24 || (rx[OFF_VERFLAGS] & FLAG_RESPONSE) || (rx[OFF_VERFLAGS] >> 4) != 1)
    return 0;
  unsigned major = rx[OFF_MAJOR] << 8 | rx[OFF_MAJOR + 1];
  unsigned minor = rx[OFF_MINOR];
  if ((major != r->shelf && major != 0xffff) || (minor != r->slot && minor != 0xff))
    return 0;
  size_t n;
  if (rx[OFF_CMD] == 0)
    n = answer_ata(r, rx, len, tx, data, data_len);
  else if (rx[OFF_CMD] == 1)
    n = answer_config(r, rx, len, tx);
  else
    return 0;
  if (n == 0)
    return 0;
  memcpy(tx, rx + 6, 6); /* to the sender */
  memcpy(tx + 6, r->mac, 6);
  put16(tx + 12, ETHERTYPE_AOE);
  tx[OFF_VERFLAGS] = 0x10 | FLAG_RESPONSE;
  tx[OFF_ERROR] = 0;
  put16(tx + OFF_MAJOR, r->shelf);
  tx[OFF_MINOR] = r->slot;
  tx[OFF_CMD] = rx[OFF_CMD];
  memcpy(tx + 20, rx + 20, 4); /* tag */
  return n;
}

static int open_socket(struct reflector *r, const char *ifname) {
  int fd = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
  if (fd < 0) {
    perror("aoe-reflector: packet socket (needs CAP_NET_RAW: run as root)");
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    fprintf(stderr, "aoe-reflector: no interface %s here: %s\n", ifname, strerror(errno));
    return -1;
  }
  struct sockaddr_ll sll = {
      .sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE_AOE), .sll_ifindex = ifr.ifr_ifindex};
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 || bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    fprintf(stderr, "aoe-reflector: cannot bind to %s: %s\n", ifname, strerror(errno));
    return -1;
  }
  memcpy(r->mac, ifr.ifr_hwaddr.sa_data, 6);
  if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
    fprintf(stderr, "aoe-reflector: cannot read the MTU of %s: %s\n", ifname, strerror(errno));
    return -1;
  }
  unsigned sectors = ifr.ifr_mtu > ATA_HEADER ? (ifr.ifr_mtu - (ATA_HEADER - 14)) / SECTOR : 0;
  r->max_sectors = sectors > 255 ? 255 : sectors;
  /* Wake up now and then while idle, so a signal between two calls is not missed for long. */
  struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  return fd;
}

static int parse_number(const char *text, unsigned long max, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 0);
  if (errno || *end || end == text || v > max)
    return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  struct reflector r;
  memset(&r, 0, sizeof r);
  unsigned long shelf, slot, capacity = 2097152;
  if (argc < 4 || argc > 5 || parse_number(argv[1], 0xfffe, &shelf) || parse_number(argv[2], 0xfe, &slot) ||
      (argc == 5 && (parse_number(argv[4], 0xffffffffffffUL, &capacity) || capacity == 0))) {
    fprintf(stderr,
            "usage: aoe-reflector SHELF SLOT IFNAME [SECTORS]\n"
            "  SHELF 0-65534, SLOT 0-254, SECTORS the capacity it claims (default 2097152)\n");
    return 2;
  }
  r.shelf = shelf;
  r.slot = slot;
  r.capacity = capacity;
  r.fd = open_socket(&r, argv[3]);
  if (r.fd < 0)
    return 1;
  build_identify(&r);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: recvmmsg returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  static uint8_t rxbuf[BATCH][FRAME_MAX];
  static uint8_t txbuf[BATCH][CFG_HEADER + 8];
  struct mmsghdr in[BATCH], out[BATCH];
  struct iovec in_iov[BATCH], out_iov[BATCH][3];
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  for (int i = 0; i < BATCH; i++) {
    in_iov[i].iov_base = rxbuf[i];
    in_iov[i].iov_len = FRAME_MAX;
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  while (!stopping) {
    int got = recvmmsg(r.fd, in, BATCH, MSG_WAITFORONE, NULL);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      perror("aoe-reflector: recvmmsg");
      return 1;
    }
    int n = 0;
    for (int i = 0; i < got; i++) {
      const uint8_t *data;
      size_t data_len;
      size_t len = answer(&r, rxbuf[i], in[i].msg_len, txbuf[n], &data, &data_len);
      if (len == 0)
        continue;
      /* Header, then the data (zeros or IDENTIFY), then zeros up to the minimum frame. */
      struct iovec *v = out_iov[n];
      int parts = 0;
      v[parts++] = (struct iovec){txbuf[n], len};
      if (data_len > 0)
        v[parts++] = (struct iovec){(void *)data, data_len};
      if (len + data_len < MIN_FRAME)
        v[parts++] = (struct iovec){zeros, MIN_FRAME - len - data_len};
      out[n].msg_hdr.msg_iov = v;
      out[n].msg_hdr.msg_iovlen = parts;
      n++;
    }
    for (int sent = 0; sent < n;) {
      int k = sendmmsg(r.fd, out + sent, n - sent, 0);
      if (k < 0) {
        if (errno == EINTR)
          continue;
        /* ENOBUFS and the like: the initiator retransmits, as on a real network. */
        break;
      }
      sent += k;
      r.answered += k;
    }
  }
  fprintf(stderr, "aoe-reflector: answered %lu requests\n", r.answered);
  close(r.fd);
  return 0;
}
