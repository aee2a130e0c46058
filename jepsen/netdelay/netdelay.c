// SPDX-License-Identifier: Apache-2.0
//
// hj-netdelay: userspace packet delay / reordering for the jepsen suite.
//
// The test kernel has no `tc netem`, so packets are steered to userspace with
//
//   iptables -A OUTPUT -d <peer> -j NFQUEUE --queue-num N --queue-bypass
//
// and this program holds each queued packet for D + uniform(-J, +J) ms
// (clamped at 0) before issuing an NF_ACCEPT verdict. With J > 0 packets are
// released out of order, i.e. reordered.
//
// Single-threaded: one ppoll() loop on the nfqueue netlink socket, with the
// timeout set to the next release time. Held packets live in a binary min-heap
// keyed by (release time, arrival sequence). Only packet ids are needed, so
// the queue runs in NFQNL_COPY_META mode.
//
// Overload behaviour (never silently blackholes traffic):
//   * more than MAX_HELD packets held   -> accepted immediately ("immediate")
//   * kernel queue full                  -> kernel accepts the packet itself
//     (NFQA_CFG_F_FAIL_OPEN); not visible to us
//   * netlink socket overrun             -> likewise accepted by the kernel;
//     we see ENOBUFS from recv() and a gap in packet ids ("id_gap").
//
// Note: a queued packet remains charged to the sending socket's send buffer
// while we hold it, so a single UDP socket with the default ~208 KiB SO_SNDBUF
// blocks after a few hundred small datagrams and then gets only that many per
// delay period through. That is kernel backpressure, not loss.
//
// SIGTERM / SIGINT: drain the socket, accept every held packet, unbind, and
// print counters to stderr.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE // ppoll
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/netfilter.h> // NF_ACCEPT
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

#define PROG "hj-netdelay"
// The kernel's queue length counts every packet it has queued to us: those we
// hold plus those still in flight in the netlink socket. When it is reached the
// kernel fails the packet open itself, invisibly to us, so keep our own bound
// below it; then overload shows up in the "dropped_to_immediate" counter.
#define KERNEL_QUEUE_MAXLEN 65536u // nfq_set_queue_maxlen
#define MAX_HELD (KERNEL_QUEUE_MAXLEN - 4096u) // userspace heap bound
#define RCVBUF_BYTES (16u << 20) // netlink socket receive buffer
#define MAX_DELAY_MS 3600000L    // 1 h: sanity bound for --delay-ms/--jitter-ms
#define RECV_BATCH 1024          // max datagrams read before releasing due packets
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

// ---------------------------------------------------------------- state ----

struct held {
  int64_t release_ns; // CLOCK_MONOTONIC
  uint64_t seq;       // arrival order; tie-breaker keeps FIFO for equal times
  uint32_t id;        // nfqueue packet id
};

struct stats {
  uint64_t packets;        // packets received from the queue
  uint64_t released;       // accepted after being held
  uint64_t immediate;      // accepted at once because the heap was full
  uint64_t held_max;       // high-water mark of held packets
  uint64_t enobufs;        // ENOBUFS from recv (socket overrun)
  uint64_t id_gap;         // ids never seen (kernel fail-open / dropped)
  uint64_t verdict_errors; // nfq_set_verdict failures
  uint64_t bad_msgs;       // messages without a packet header
  uint64_t at_shutdown;    // accepted undelayed while shutting down
};

struct ctx {
  struct nfq_q_handle *qh;
  struct held *heap;
  size_t n;
  uint64_t next_seq;
  int64_t delay_ns;
  int64_t jitter_ns;
  uint64_t rng;
  bool have_last_id;
  uint32_t last_id;
  bool shutting_down; // accept immediately instead of holding
  struct stats st;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

// ----------------------------------------------------------------- time ----

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

// ------------------------------------------------------------------ rng ----

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

// Uniform integer in [0, bound) without modulo bias; bound > 0.
static uint64_t rng_below(uint64_t *s, uint64_t bound) {
  uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  uint64_t r;
  do {
    r = splitmix64(s);
  } while (r >= limit);
  return r % bound;
}

// ----------------------------------------------------------------- heap ----

static bool held_less(const struct held *a, const struct held *b) {
  if (a->release_ns != b->release_ns) return a->release_ns < b->release_ns;
  return a->seq < b->seq;
}

static void heap_push(struct ctx *c, struct held h) {
  size_t i = c->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!held_less(&h, &c->heap[parent])) break;
    c->heap[i] = c->heap[parent];
    i = parent;
  }
  c->heap[i] = h;
}

static struct held heap_pop(struct ctx *c) {
  struct held top = c->heap[0];
  struct held last = c->heap[--c->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= c->n) break;
    size_t m = l;
    if (l + 1 < c->n && held_less(&c->heap[l + 1], &c->heap[l])) m = l + 1;
    if (!held_less(&c->heap[m], &last)) break;
    c->heap[i] = c->heap[m];
    i = m;
  }
  if (c->n > 0) c->heap[i] = last;
  return top;
}

// -------------------------------------------------------------- verdicts ---

static void accept_id(struct ctx *c, uint32_t id) {
  if (nfq_set_verdict(c->qh, id, NF_ACCEPT, 0, NULL) < 0) c->st.verdict_errors++;
}

// Accept every held packet whose release time is <= now.
static void release_due(struct ctx *c, int64_t now) {
  while (c->n > 0 && c->heap[0].release_ns <= now) {
    struct held h = heap_pop(c);
    accept_id(c, h.id);
    c->st.released++;
  }
}

static void release_all(struct ctx *c) {
  while (c->n > 0) {
    struct held h = heap_pop(c);
    accept_id(c, h.id);
    c->st.released++;
  }
}

// -------------------------------------------------------------- callback ---

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *nfmsg,
                     struct nfq_data *nfa, void *data) {
  (void)qh;
  (void)nfmsg;
  struct ctx *c = data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == NULL) {
    c->st.bad_msgs++;
    return 0;
  }
  uint32_t id = ntohl(ph->packet_id);
  c->st.packets++;

  // Ids are assigned sequentially per queue; a gap means the kernel could not
  // deliver those packets to us (queue full or socket overrun) and, with
  // FAIL_OPEN, accepted them itself.
  if (c->have_last_id) {
    uint32_t expect = c->last_id + 1;
    if (id != expect && (int32_t)(id - expect) > 0) c->st.id_gap += id - expect;
  }
  c->have_last_id = true;
  c->last_id = id;

  if (c->shutting_down || c->n >= MAX_HELD) {
    if (c->shutting_down)
      c->st.at_shutdown++;
    else
      c->st.immediate++;
    accept_id(c, id);
    return 0;
  }

  int64_t d = c->delay_ns;
  if (c->jitter_ns > 0) {
    uint64_t span = 2 * (uint64_t)c->jitter_ns + 1;
    d += (int64_t)rng_below(&c->rng, span) - c->jitter_ns;
  }
  if (d < 0) d = 0;

  struct held h = {.release_ns = now_ns() + d, .seq = c->next_seq++, .id = id};
  heap_push(c, h);
  if (c->n > c->st.held_max) c->st.held_max = c->n;
  return 0;
}

// --------------------------------------------------------------- socket ----

// Read and dispatch up to `max` datagrams without blocking.
// Returns 0 normally, -1 on a fatal socket error.
static int drain_socket(struct nfq_handle *h, int fd, struct ctx *c, int max) {
  static char buf[1 << 17] __attribute__((aligned));
  for (int i = 0; i < max; i++) {
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // Socket overrun: the kernel lost some queue messages. With
        // FAIL_OPEN those packets were accepted without delay.
        c->st.enobufs++;
        continue;
      }
      fprintf(stderr, PROG ": recv: %s\n", strerror(errno));
      return -1;
    }
    if (r == 0) return 0;
    nfq_handle_packet(h, buf, (int)r);
  }
  return 0;
}

// ------------------------------------------------------------------ args ----

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " --queue N --delay-ms D [--jitter-ms J] [--seed S]\n"
          "\n"
          "Hold every packet arriving on netfilter queue N for D ms, plus a\n"
          "uniform random offset in [-J, +J] ms (clamped at 0), then accept\n"
          "it. With J > 0 packets are reordered. Steer traffic to the queue\n"
          "with e.g.\n"
          "  iptables -A OUTPUT -d PEER -j NFQUEUE --queue-num N --queue-bypass\n"
          "Needs CAP_NET_ADMIN.\n"
          "\n"
          "  -q, --queue N       netfilter queue number, 0..65535 (required)\n"
          "  -d, --delay-ms D    base delay in ms, 0..%ld (required)\n"
          "  -j, --jitter-ms J   jitter in ms, 0..%ld (default 0)\n"
          "  -s, --seed S        PRNG seed, unsigned 64-bit (default: from\n"
          "                      time and pid; printed at start-up)\n"
          "  -h, --help          show this help\n"
          "\n"
          "At most %u packets are held; beyond that packets are accepted\n"
          "immediately and counted. The kernel queue is created with maxlen\n"
          "%u and fail-open, so overload passes packets undelayed rather than\n"
          "dropping them. Held packets stay charged to the sending socket's\n"
          "send buffer, so one socket gets at most about one SO_SNDBUF worth\n"
          "of packets through per delay period. SIGTERM/SIGINT accept all\n"
          "held packets, unbind and print counters to stderr. Exit status:\n"
          "0 ok, 1 runtime error, 2 bad arguments.\n",
          MAX_DELAY_MS, MAX_DELAY_MS, MAX_HELD, KERNEL_QUEUE_MAXLEN);
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out) {
  if (s == NULL || *s == '\0' || *s == '-' || *s == '+') return false;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return false;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = (uint64_t)v;
  return true;
}

__attribute__((format(printf, 1, 2))) static _Noreturn void bad_arg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(PROG ": ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\nTry '" PROG " --help'.\n", stderr);
  exit(2);
}

// ------------------------------------------------------------------ main ----

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"queue", required_argument, NULL, 'q'},
      {"delay-ms", required_argument, NULL, 'd'},
      {"jitter-ms", required_argument, NULL, 'j'},
      {"seed", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  uint64_t queue = 0, delay_ms = 0, jitter_ms = 0, seed = 0;
  bool have_queue = false, have_delay = false, have_seed = false;

  opterr = 0;
  int o;
  while ((o = getopt_long(argc, argv, ":q:d:j:s:h", opts, NULL)) != -1) {
    switch (o) {
    case 'q':
      if (!parse_u64(optarg, 65535, &queue))
        bad_arg("invalid --queue '%s': expected an integer 0..65535", optarg);
      have_queue = true;
      break;
    case 'd':
      if (!parse_u64(optarg, (uint64_t)MAX_DELAY_MS, &delay_ms))
        bad_arg("invalid --delay-ms '%s': expected an integer 0..%ld", optarg, MAX_DELAY_MS);
      have_delay = true;
      break;
    case 'j':
      if (!parse_u64(optarg, (uint64_t)MAX_DELAY_MS, &jitter_ms))
        bad_arg("invalid --jitter-ms '%s': expected an integer 0..%ld", optarg, MAX_DELAY_MS);
      break;
    case 's':
      if (!parse_u64(optarg, UINT64_MAX, &seed))
        bad_arg("invalid --seed '%s': expected an unsigned 64-bit integer", optarg);
      have_seed = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case ':':
      bad_arg("option '%s' requires an argument", argv[optind - 1]);
      break;
    default:
      if (optopt != 0 && optopt != '?')
        bad_arg("unknown option '-%c'", optopt);
      bad_arg("unknown option '%s'", argv[optind - 1]);
      break;
    }
  }
  if (optind < argc) bad_arg("unexpected argument '%s'", argv[optind]);
  if (!have_queue) bad_arg("missing required option --queue");
  if (!have_delay) bad_arg("missing required option --delay-ms");

  if (!have_seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = ((uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec) ^
           ((uint64_t)getpid() << 32);
  }

  struct ctx c = {
      .delay_ns = (int64_t)delay_ms * NS_PER_MS,
      .jitter_ns = (int64_t)jitter_ms * NS_PER_MS,
      .rng = seed,
  };
  c.heap = calloc(MAX_HELD, sizeof *c.heap);
  if (c.heap == NULL) {
    fprintf(stderr, PROG ": out of memory\n");
    return 1;
  }

  // Signals: blocked except while waiting in ppoll(), so a SIGTERM can never
  // slip in between the g_stop check and the wait.
  sigset_t block, waitmask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  if (sigprocmask(SIG_BLOCK, &block, &waitmask) != 0) {
    perror(PROG ": sigprocmask");
    return 1;
  }
  sigdelset(&waitmask, SIGTERM);
  sigdelset(&waitmask, SIGINT);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int rc = 1;
  struct nfq_handle *h = nfq_open();
  if (h == NULL) {
    fprintf(stderr, PROG ": nfq_open: %s (need CAP_NET_ADMIN?)\n", strerror(errno));
    free(c.heap);
    return 1;
  }
  // Only needed (and only meaningful) on pre-3.8 kernels; failure is harmless.
  (void)nfq_unbind_pf(h, AF_INET);
  (void)nfq_bind_pf(h, AF_INET);

  c.qh = nfq_create_queue(h, (uint16_t)queue, on_packet, &c);
  if (c.qh == NULL) {
    fprintf(stderr, PROG ": cannot bind queue %" PRIu64 ": %s (in use by another program?)\n",
            queue, strerror(errno));
    goto out_close;
  }
  if (nfq_set_mode(c.qh, NFQNL_COPY_META, 0) < 0) {
    fprintf(stderr, PROG ": nfq_set_mode(COPY_META): %s\n", strerror(errno));
    goto out_destroy;
  }
  if (nfq_set_queue_maxlen(c.qh, KERNEL_QUEUE_MAXLEN) < 0)
    fprintf(stderr, PROG ": warning: nfq_set_queue_maxlen(%u): %s\n", KERNEL_QUEUE_MAXLEN,
            strerror(errno));
  if (nfq_set_queue_flags(c.qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN) < 0)
    fprintf(stderr, PROG ": warning: cannot set fail-open: %s\n", strerror(errno));

  int fd = nfq_fd(h);
  // nfnl_rcvbufsiz tries SO_RCVBUFFORCE (root) and falls back to SO_RCVBUF.
  unsigned int got = nfnl_rcvbufsiz(nfq_nfnlh(h), RCVBUF_BYTES);

  fprintf(stderr,
          PROG ": queue %" PRIu64 " delay %" PRIu64 " ms jitter %" PRIu64 " ms seed %" PRIu64
               " rcvbuf %u\n",
          queue, delay_ms, jitter_ms, seed, got);

  rc = 0;
  while (!g_stop) {
    struct timespec ts, *tp = NULL;
    if (c.n > 0) {
      int64_t wait = c.heap[0].release_ns - now_ns();
      if (wait < 0) wait = 0;
      ts.tv_sec = (time_t)(wait / NS_PER_S);
      ts.tv_nsec = (long)(wait % NS_PER_S);
      tp = &ts;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = ppoll(&pfd, 1, tp, &waitmask);
    if (pr < 0) {
      if (errno == EINTR) continue;
      perror(PROG ": ppoll");
      rc = 1;
      break;
    }
    if (pr > 0) {
      if (pfd.revents & POLLIN) {
        if (drain_socket(h, fd, &c, RECV_BATCH) < 0) {
          rc = 1;
          break;
        }
      } else if (pfd.revents & POLLERR) {
        // Pending socket error (typically ENOBUFS): recv reports and clears it.
        if (drain_socket(h, fd, &c, 1) < 0) {
          rc = 1;
          break;
        }
      } else if (pfd.revents & (POLLHUP | POLLNVAL)) {
        fprintf(stderr, PROG ": netlink socket closed\n");
        rc = 1;
        break;
      }
    }
    release_due(&c, now_ns());
  }

  // Shutdown: pick up whatever is already queued to us (accepted at once),
  // then accept everything still held, oldest release first.
  c.shutting_down = true;
  (void)drain_socket(h, fd, &c, (int)KERNEL_QUEUE_MAXLEN);
  release_all(&c);

  fprintf(stderr,
          PROG ": packets %" PRIu64 " released %" PRIu64 " held_max %" PRIu64
               " dropped_to_immediate %" PRIu64 " at_shutdown %" PRIu64 " enobufs %" PRIu64
               " id_gap %" PRIu64 " verdict_errors %" PRIu64 "\n",
          c.st.packets, c.st.released, c.st.held_max, c.st.immediate, c.st.at_shutdown,
          c.st.enobufs, c.st.id_gap, c.st.verdict_errors);

out_destroy:
  nfq_destroy_queue(c.qh);
out_close:
  nfq_close(h);
  free(c.heap);
  return rc;
}
