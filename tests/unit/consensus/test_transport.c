/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the peer transport over loopback TCP (consensus/transport.c):
 * every transport-to-transport test runs twice, in plaintext and with
 * mutual TLS on every link; then the refusals only TLS has. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hd_error.h"
#include "hd_tls.h"
#include "hd_util.h"
#include "transport.h"
#include "test_dirs.h"

#define CLUSTER_A "00112233445566778899aabbccddeeff"
#define CLUSTER_B "ffeeddccbbaa99887766554433221100"
#define MAX_NODES 4
#define MAX_RX 4096
#define DEADLINE_MS 10000

struct rx {
    uint64_t from;
    uint8_t kind;
    uint16_t shard;
    size_t len;
    uint32_t crc;      /* of the payload */
    uint8_t head[32];  /* its first bytes */
};

struct node {
    struct cons_transport *t;
    uint64_t id;
    int port;
    bool closed;
    bool close_in_recv;  /* close the transport from inside recv_cb */
    unsigned n_rx;
    struct rx rx[MAX_RX];
};

struct fixture {
    uv_loop_t loop;
    uv_timer_t poke;   /* keeps uv_run(ONCE) from sleeping long */
    struct node nodes[MAX_NODES + 1]; /* by id */
};

static struct fixture *f;

/* Mutual contexts of two unrelated CAs, made once; tls_on: every node
 * started gets ctx_a unless its own start says otherwise. */
static struct hd_tls_ctx *ctx_a, *ctx_b;
static bool tls_on;

static void on_recv(void *arg, uint64_t from, uint8_t kind, uint16_t shard,
                    const uint8_t *payload, size_t len)
{
    struct node *n = arg;
    assert_true(n->n_rx < MAX_RX);
    struct rx *r = &n->rx[n->n_rx++];
    *r = (struct rx){.from = from, .kind = kind, .shard = shard, .len = len,
                     .crc = hd_crc32c(0, payload, len)};
    memcpy(r->head, payload, len < sizeof r->head ? len : sizeof r->head);
    if (n->close_in_recv && !n->closed) {
        n->closed = true;
        cons_transport_close(n->t, NULL, NULL);
    }
}

static void on_closed(void *arg)
{
    struct node *n = arg;
    n->closed = true;
}

static void poke_cb(uv_timer_t *t) { (void)t; }

static int setup(void **state)
{
    (void)state;
    f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->poke);
    uv_timer_start(&f->poke, poke_cb, 5, 5);
    for (uint64_t id = 1; id <= MAX_NODES; id++) {
        f->nodes[id].id = id;
        f->nodes[id].closed = true;
    }
    return 0;
}

/* Runs the loop until cond(arg) holds; fails after DEADLINE_MS. */
static void run_until(bool (*cond)(void *), void *arg)
{
    uint64_t deadline = uv_now(&f->loop) + DEADLINE_MS;
    while (!cond(arg)) {
        assert_true(uv_now(&f->loop) < deadline);
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static void run_for(unsigned ms)
{
    uint64_t end = uv_now(&f->loop) + ms;
    while (uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static bool node_closed(void *arg) { return ((struct node *)arg)->closed; }

static void stop(uint64_t id)
{
    struct node *n = &f->nodes[id];
    if (!n->closed) {
        cons_transport_close(n->t, on_closed, n);
        run_until(node_closed, n);
    }
}

static int teardown(void **state)
{
    (void)state;
    for (uint64_t id = 1; id <= MAX_NODES; id++) {
        stop(id);
    }
    uv_close((uv_handle_t *)&f->poke, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Every handle of every transport is closed: nothing leaked. */
    int rv = uv_loop_close(&f->loop);
    free(f);
    assert_int_equal(rv, 0);
    return 0;
}

/* A port that nothing listens on right now. */
static int free_port(void)
{
    uv_tcp_t tcp;
    struct sockaddr_in sa;
    uv_tcp_init(&f->loop, &tcp);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&tcp, (const struct sockaddr *)&sa, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&tcp, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return port;
}

static void start_tls(uint64_t id, const char *cluster, int port, size_t queue_max,
                      struct hd_tls_ctx *tls)
{
    struct node *n = &f->nodes[id];
    char addr[32], err[128] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    struct cons_transport_options o = {.loop = &f->loop, .node_id = id, .cluster_id = cluster,
                                       .listen_addr = addr, .peer_queue_bytes_max = queue_max,
                                       .tls = tls};
    int rv = cons_transport_init(&n->t, &o, on_recv, n, err, sizeof err);
    if (rv != 0) {
        fail_msg("init node %llu: %s", (unsigned long long)id, err);
    }
    n->port = cons_transport_port(n->t);
    assert_true(n->port > 0);
    assert_true(port == 0 || n->port == port);
    n->closed = false;
    n->n_rx = 0;
}

static void start_on(uint64_t id, const char *cluster, int port, size_t queue_max)
{
    start_tls(id, cluster, port, queue_max, tls_on ? ctx_a : NULL);
}

static void start(uint64_t id) { start_on(id, CLUSTER_A, 0, 0); }

static void add_peer(uint64_t id, uint64_t peer)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->nodes[peer].port);
    assert_int_equal(cons_transport_set_peer(f->nodes[id].t, peer, addr), 0);
}

static void mesh(unsigned n)
{
    for (uint64_t a = 1; a <= n; a++) {
        for (uint64_t b = 1; b <= n; b++) {
            if (a != b) {
                add_peer(a, b);
            }
        }
    }
}

/* Sends frame `seq` from `from` to `to`; the payload, in two iovecs, says
 * who sent it and which it is, and is `extra` bytes longer than that. */
static int send_seq(uint64_t from, uint64_t to, uint16_t seq, size_t extra)
{
    char head[32];
    int n = snprintf(head, sizeof head, "%llu>%llu#%u", (unsigned long long)from,
                     (unsigned long long)to, seq);
    static uint8_t pad[6u << 20];
    memset(pad, (int)seq, extra < sizeof pad ? extra : sizeof pad);
    struct iovec iov[2] = {{head, (size_t)n + 1}, {pad, extra}};
    return cons_transport_send(f->nodes[from].t, to, (uint8_t)(40 + from), seq, iov, 2);
}

/* Checks that `id` received exactly frames 0..count-1 from `from`, in order. */
static void assert_got_seqs(uint64_t id, uint64_t from, uint16_t first, uint16_t count)
{
    struct node *n = &f->nodes[id];
    uint16_t want = first;
    for (unsigned i = 0; i < n->n_rx; i++) {
        const struct rx *r = &n->rx[i];
        if (r->from != from) {
            continue;
        }
        char head[32];
        snprintf(head, sizeof head, "%llu>%llu#%u", (unsigned long long)from,
                 (unsigned long long)id, want);
        assert_int_equal(r->kind, 40 + from);
        assert_int_equal(r->shard, want);
        assert_string_equal((const char *)r->head, head);
        want++;
    }
    assert_int_equal(want, first + count);
}

static unsigned count_from(uint64_t id, uint64_t from)
{
    unsigned c = 0;
    for (unsigned i = 0; i < f->nodes[id].n_rx; i++) {
        c += f->nodes[id].rx[i].from == from;
    }
    return c;
}

struct want_rx {
    uint64_t id;
    unsigned n;
};
static bool got_n(void *arg)
{
    struct want_rx *w = arg;
    return f->nodes[w->id].n_rx >= w->n;
}

static bool connected(uint64_t a, uint64_t b)
{
    struct cons_peer_stats s;
    assert_int_equal(cons_transport_peer_stats(f->nodes[a].t, b, &s), 0);
    return s.connected;
}

struct pair {
    uint64_t a, b;
    bool up;
};
static bool link_is(void *arg)
{
    struct pair *p = arg;
    return connected(p->a, p->b) == p->up;
}

/* ---------------------------------------------------------------- tests --- */

static void test_frames_arrive_in_order(void **state)
{
    (void)state;
    for (uint64_t id = 1; id <= 3; id++) {
        start(id);
    }
    mesh(3);
    for (uint16_t seq = 0; seq < 200; seq++) {
        for (uint64_t a = 1; a <= 3; a++) {
            for (uint64_t b = 1; b <= 3; b++) {
                /* Frame 100 is 5 MiB: the reader grows its buffer for it. */
                size_t extra = seq == 100 ? (5u << 20) : seq % 7 * 100;
                assert_true(a == b || send_seq(a, b, seq, extra) == 0);
            }
        }
    }
    for (uint64_t id = 1; id <= 3; id++) {
        struct want_rx w = {id, 400};
        run_until(got_n, &w);
    }
    run_for(50);
    for (uint64_t a = 1; a <= 3; a++) {
        assert_int_equal(f->nodes[a].n_rx, 400); /* no duplicates */
        for (uint64_t b = 1; b <= 3; b++) {
            if (a == b) {
                continue;
            }
            assert_got_seqs(a, b, 0, 200);
            struct cons_peer_stats s;
            assert_int_equal(cons_transport_peer_stats(f->nodes[a].t, b, &s), 0);
            assert_true(s.connected);
            assert_int_equal(s.frames_sent, 200);
            assert_int_equal(s.frames_received, 200);
            assert_int_equal(s.frames_dropped, 0);
            assert_int_equal(s.bytes_queued, 0);
            /* One handshake per pair: both sides use one connection. */
            assert_int_equal(s.reconnects, 0);
        }
    }
    /* The 5 MiB frame arrived whole. */
    const struct rx *big = NULL;
    for (unsigned i = 0; i < f->nodes[2].n_rx; i++) {
        if (f->nodes[2].rx[i].shard == 100 && f->nodes[2].rx[i].from == 1) {
            big = &f->nodes[2].rx[i];
        }
    }
    assert_non_null(big);
    assert_int_equal(big->len, strlen("1>2#100") + 1 + (5u << 20));
}

static void test_late_peer_gets_queued_frames(void **state)
{
    (void)state;
    int port3 = free_port();
    start(1);
    start(2);
    mesh(2);
    char addr3[32];
    snprintf(addr3, sizeof addr3, "127.0.0.1:%d", port3);
    assert_int_equal(cons_transport_set_peer(f->nodes[1].t, 3, addr3), 0);
    assert_int_equal(cons_transport_set_peer(f->nodes[2].t, 3, addr3), 0);
    for (uint16_t seq = 0; seq < 20; seq++) {
        assert_int_equal(send_seq(1, 3, seq, 10), 0);
        assert_int_equal(send_seq(2, 3, seq, 10), 0);
    }
    run_for(300); /* node 3 is down: dials fail and back off */
    assert_false(connected(1, 3));
    struct cons_peer_stats s;
    assert_int_equal(cons_transport_peer_stats(f->nodes[1].t, 3, &s), 0);
    assert_true(s.bytes_queued > 0 && s.frames_sent == 0);

    start_on(3, CLUSTER_A, port3, 0);
    add_peer(3, 1);
    add_peer(3, 2);
    /* Node 3 is the acceptor for both: its frames wait for their dials. */
    for (uint16_t seq = 0; seq < 5; seq++) {
        assert_int_equal(send_seq(3, 1, seq, 0), 0);
    }
    struct want_rx w3 = {3, 40}, w1 = {1, 5};
    run_until(got_n, &w3);
    run_until(got_n, &w1);
    assert_got_seqs(3, 1, 0, 20);
    assert_got_seqs(3, 2, 0, 20);
    assert_got_seqs(1, 3, 0, 5);
}

static void test_restarted_peer_is_reconnected(void **state)
{
    (void)state;
    start(1);
    start(2);
    mesh(2);
    assert_int_equal(send_seq(1, 2, 0, 0), 0);
    struct want_rx w2 = {2, 1};
    run_until(got_n, &w2);

    /* The acceptor (2) restarts on the same port: the dialer redials. */
    int port2 = f->nodes[2].port;
    stop(2);
    struct pair down = {1, 2, false};
    run_until(link_is, &down);
    for (uint16_t seq = 1; seq <= 10; seq++) {
        assert_int_equal(send_seq(1, 2, seq, 0), 0);
    }
    run_for(100);
    start_on(2, CLUSTER_A, port2, 0);
    add_peer(2, 1);
    w2.n = 10;
    run_until(got_n, &w2);
    assert_got_seqs(2, 1, 1, 10);
    struct cons_peer_stats s;
    assert_int_equal(cons_transport_peer_stats(f->nodes[1].t, 2, &s), 0);
    assert_true(s.connected);
    assert_int_equal(s.reconnects, 1);

    /* The dialer (1) restarts: its new connection replaces the old one. */
    int port1 = f->nodes[1].port;
    stop(1);
    start_on(1, CLUSTER_A, port1, 0);
    add_peer(1, 2);
    assert_int_equal(send_seq(2, 1, 7, 0), 0);
    assert_int_equal(send_seq(1, 2, 11, 0), 0);
    struct want_rx w1 = {1, 1};
    run_until(got_n, &w1);
    w2.n = 11;
    run_until(got_n, &w2);
    assert_got_seqs(1, 2, 7, 1);
    assert_got_seqs(2, 1, 1, 11);
    assert_int_equal(cons_transport_peer_stats(f->nodes[2].t, 1, &s), 0);
    assert_true(s.connected && s.reconnects >= 1);
}

static void test_other_cluster_is_refused(void **state)
{
    (void)state;
    start_on(1, CLUSTER_A, 0, 0);
    start_on(2, CLUSTER_B, 0, 0);
    mesh(2);
    for (uint16_t seq = 0; seq < 5; seq++) {
        assert_int_equal(send_seq(1, 2, seq, 0), 0);
        assert_int_equal(send_seq(2, 1, seq, 0), 0);
    }
    run_for(600); /* several dials, each refused */
    assert_int_equal(f->nodes[1].n_rx, 0);
    assert_int_equal(f->nodes[2].n_rx, 0);
    assert_false(connected(1, 2));
    assert_false(connected(2, 1));
    struct cons_peer_stats s;
    assert_int_equal(cons_transport_peer_stats(f->nodes[1].t, 2, &s), 0);
    assert_int_equal(s.frames_sent, 0);
    assert_true(s.bytes_queued > 0);
}

static void test_queue_bound_drops_and_counts(void **state)
{
    (void)state;
    int dead_port = free_port();
    start_on(1, CLUSTER_A, 0, 10000);
    start(3);
    add_peer(1, 3);
    add_peer(3, 1);
    char dead[32];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", dead_port);
    assert_int_equal(cons_transport_set_peer(f->nodes[1].t, 2, dead), 0);
    /* 1016-byte frames: 9 fit in 10000 bytes, the rest are dropped. */
    unsigned ok = 0, busy = 0;
    for (uint16_t seq = 0; seq < 100; seq++) {
        char payload[1000] = {0};
        struct iovec iov = {payload, sizeof payload};
        int rv = cons_transport_send(f->nodes[1].t, 2, 50, seq, &iov, 1);
        assert_true(rv == 0 || rv == HD_EBUSY);
        ok += rv == 0;
        busy += rv == HD_EBUSY;
    }
    assert_int_equal(ok, 9);
    assert_int_equal(busy, 91);
    /* The dead peer does not hold up the live one. */
    for (uint16_t seq = 0; seq < 5; seq++) {
        assert_int_equal(send_seq(1, 3, seq, 0), 0);
    }
    struct want_rx w3 = {3, 5};
    run_until(got_n, &w3);
    assert_got_seqs(3, 1, 0, 5);
    struct cons_peer_stats s;
    assert_int_equal(cons_transport_peer_stats(f->nodes[1].t, 2, &s), 0);
    assert_false(s.connected);
    assert_int_equal(s.frames_dropped, 91);
    assert_int_equal(s.bytes_queued, 9 * (CONS_FRAME_HEADER_SIZE + 1000));
    /* A frame is always accepted into an empty queue, even a big one. */
    assert_int_equal(cons_transport_set_peer(f->nodes[1].t, 4, dead), 0);
    assert_int_equal(send_seq(1, 4, 0, 20000), 0);
    assert_int_equal(send_seq(1, 4, 1, 0), HD_EBUSY);
    /* Other refusals. */
    struct iovec iov = {NULL, 0};
    assert_int_equal(cons_transport_send(f->nodes[1].t, 6, 50, 0, &iov, 1), HD_ENOTFOUND);
    iov.iov_len = CONS_FRAME_PAYLOAD_MAX + 1;
    assert_int_equal(cons_transport_send(f->nodes[1].t, 2, 50, 0, &iov, 1), HD_ETOOBIG);
    assert_int_equal(cons_transport_set_peer(f->nodes[1].t, 1, dead), HD_EINVAL);
    assert_int_equal(cons_transport_set_peer(f->nodes[1].t, 5, "localhost:1"), HD_EINVAL);
    assert_int_equal(cons_transport_peer_stats(f->nodes[1].t, 9, &s), HD_ENOTFOUND);
}

static void test_close_with_open_connections_leaks_nothing(void **state)
{
    (void)state;
    for (uint64_t id = 1; id <= 3; id++) {
        start(id);
    }
    mesh(3);
    struct want_rx w = {3, 2};
    assert_int_equal(send_seq(1, 3, 0, 0), 0);
    assert_int_equal(send_seq(2, 3, 0, 0), 0);
    run_until(got_n, &w);
    /* Leave frames queued, in flight and half-read, and a peer that is
     * being dialed; then close everything at once. */
    assert_int_equal(send_seq(1, 3, 1, 4u << 20), 0);
    assert_int_equal(send_seq(2, 3, 1, 4u << 20), 0);
    assert_int_equal(cons_transport_set_peer(f->nodes[1].t, 4, "127.0.0.1:1"), 0);
    assert_int_equal(send_seq(1, 4, 0, 100), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    /* Removing a peer frees its queue and forgets it. */
    cons_transport_remove_peer(f->nodes[1].t, 4);
    struct cons_peer_stats s;
    assert_int_equal(cons_transport_peer_stats(f->nodes[1].t, 4, &s), HD_ENOTFOUND);
    cons_transport_remove_peer(f->nodes[1].t, 4); /* unknown: a no-op */
    /* teardown closes all three with their connections open and checks
     * that uv_loop_close() succeeds; ASan checks the heap. */
}

static void test_close_inside_recv_callback(void **state)
{
    (void)state;
    start(1);
    start(2);
    mesh(2);
    f->nodes[2].close_in_recv = true;
    for (uint16_t seq = 0; seq < 10; seq++) {
        assert_int_equal(send_seq(1, 2, seq, 0), 0);
    }
    run_until(node_closed, &f->nodes[2]);
    run_for(50);
    /* Nothing is delivered once close was called, even from one read. */
    assert_int_equal(f->nodes[2].n_rx, 1);
}

/* A raw TCP client, speaking the protocol by hand. */
struct raw {
    uv_tcp_t tcp;
    uv_connect_t conn;
    bool connected, eof, closed;
    size_t got;
    uint8_t buf[256];
};

static void raw_connect_cb(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    assert_int_equal(status, 0);
    r->connected = true;
}
static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    struct raw *r = h->data;
    (void)s;
    *b = uv_buf_init((char *)r->buf + r->got, (unsigned)(sizeof r->buf - r->got));
}
static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = st->data;
    (void)b;
    if (n < 0) {
        r->eof = true;
        uv_read_stop(st);
    } else {
        r->got += (size_t)n;
    }
}
static void raw_closed(uv_handle_t *h) { ((struct raw *)h->data)->closed = true; }
static bool raw_connected(void *arg) { return ((struct raw *)arg)->connected; }
static bool raw_eof(void *arg) { return ((struct raw *)arg)->eof; }
static bool raw_got_hello(void *arg)
{
    return ((struct raw *)arg)->got >= CONS_FRAME_HEADER_SIZE + CONS__HELLO_SIZE;
}
static bool raw_closed_p(void *arg) { return ((struct raw *)arg)->closed; }

static void raw_open(struct raw *r, int port)
{
    memset(r, 0, sizeof *r);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_init(&f->loop, &r->tcp);
    r->tcp.data = r;
    r->conn.data = r;
    assert_int_equal(uv_tcp_connect(&r->conn, &r->tcp, (struct sockaddr *)&sa, raw_connect_cb), 0);
    run_until(raw_connected, r);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

static void raw_send(struct raw *r, const uint8_t *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    assert_int_equal(uv_try_write((uv_stream_t *)&r->tcp, &b, 1), (int)len);
}

static void raw_close(struct raw *r)
{
    uv_close((uv_handle_t *)&r->tcp, raw_closed);
    run_until(raw_closed_p, r);
}

/* A HELLO frame from node `from` of `cluster` (hex) to node `to`. */
static size_t make_hello(uint8_t *frame, const char *cluster, uint64_t from, uint64_t to)
{
    struct cons__hello h = {.from_id = from, .to_id = to};
    assert_int_equal(cons__parse_cluster_id(cluster, h.cluster), 0);
    cons__hello_encode(frame + CONS_FRAME_HEADER_SIZE, &h);
    cons__frame_seal(frame, CONS__KIND_CONTROL, CONS__CTL_HELLO, CONS__HELLO_SIZE);
    return CONS_FRAME_HEADER_SIZE + CONS__HELLO_SIZE;
}

/* Sends `data` as the first bytes of a connection; expects it closed. */
static void expect_refused(const uint8_t *data, size_t len)
{
    struct raw r;
    raw_open(&r, f->nodes[2].port);
    raw_send(&r, data, len);
    run_until(raw_eof, &r);
    raw_close(&r);
}

static void test_bad_peers_are_refused(void **state)
{
    (void)state;
    start(2);
    add_peer(2, 1); /* port 0 is never dialed: 2 is the acceptor */
    uint8_t frame[128];
    size_t len = make_hello(frame, CLUSTER_A, 1, 2);

    frame[4] = CONS_FRAME_VERSION + 1; /* unknown version */
    expect_refused(frame, len);
    len = make_hello(frame, CLUSTER_A, 1, 2);
    frame[len - 1] ^= 1;               /* bad checksum */
    expect_refused(frame, len);
    len = make_hello(frame, CLUSTER_B, 1, 2); /* another cluster */
    expect_refused(frame, len);
    len = make_hello(frame, CLUSTER_A, 3, 2); /* a higher id must not dial */
    expect_refused(frame, len);
    len = make_hello(frame, CLUSTER_A, 1, 3); /* dialed the wrong node */
    expect_refused(frame, len);
    len = make_hello(frame, CLUSTER_A, 1, 2);
    hd_put_u32(frame + 8, CONS_FRAME_PAYLOAD_MAX + 1); /* impossible length */
    expect_refused(frame, len);
    expect_refused((const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18);

    /* A well-behaved node 1: handshake, one frame, then a corrupt one. */
    struct raw r;
    raw_open(&r, f->nodes[2].port);
    len = make_hello(frame, CLUSTER_A, 1, 2);
    raw_send(&r, frame, len);
    run_until(raw_got_hello, &r);
    struct cons__frame_hdr h;
    assert_int_equal(cons__frame_decode_header(r.buf, &h), 0);
    assert_int_equal(cons__frame_verify(r.buf, &h), 0);
    struct cons__hello hello;
    assert_int_equal(cons__hello_decode(r.buf + CONS_FRAME_HEADER_SIZE, h.len, &hello), 0);
    assert_true(hello.from_id == 2 && hello.to_id == 1);
    memcpy(frame + CONS_FRAME_HEADER_SIZE, "1>2#9", 6);
    cons__frame_seal(frame, 41, 9, 6);
    raw_send(&r, frame, CONS_FRAME_HEADER_SIZE + 6);
    frame[CONS_FRAME_HEADER_SIZE] = 'X'; /* payload changed, checksum not */
    raw_send(&r, frame, CONS_FRAME_HEADER_SIZE + 6);
    run_until(raw_eof, &r);
    raw_close(&r);
    assert_int_equal(f->nodes[2].n_rx, 1);
    assert_got_seqs(2, 1, 9, 1);
    assert_int_equal(count_from(2, 3), 0);
}

static bool peer_forgotten(void *arg)
{
    struct pair *p = arg;
    struct cons_peer_stats s;
    return cons_transport_peer_stats(f->nodes[p->a].t, p->b, &s) == HD_ENOTFOUND;
}

static void test_unknown_dialer_is_learned(void **state)
{
    (void)state;
    start(1);
    start(2);
    add_peer(1, 2); /* node 2 was not told about node 1 (it is joining) */
    struct cons_peer_stats s;
    assert_int_equal(cons_transport_peer_stats(f->nodes[2].t, 1, &s), HD_ENOTFOUND);
    assert_int_equal(send_seq(1, 2, 0, 0), 0);
    struct want_rx w2 = {2, 1};
    run_until(got_n, &w2);
    /* Node 2 can answer the node it learned from the handshake. */
    assert_int_equal(send_seq(2, 1, 0, 0), 0);
    struct want_rx w1 = {1, 1};
    run_until(got_n, &w1);
    assert_got_seqs(2, 1, 0, 1);
    assert_got_seqs(1, 2, 0, 1);
    assert_int_equal(cons_transport_peer_stats(f->nodes[2].t, 1, &s), 0);
    assert_true(s.connected);
    /* Once its link is gone, a learned peer is forgotten. */
    stop(1);
    struct pair gone = {2, 1, false};
    run_until(peer_forgotten, &gone);
    assert_int_equal(send_seq(2, 1, 1, 0), HD_ENOTFOUND);
}

/* ------------------------------------------------------------ mutual TLS --- */

/* Writes PEM of a new P-256 key and a certificate for it, signed by
 * issuer (NULL: self-signed, a CA) into files under the test's temp dir. */
static void make_cert(const char *dir, const char *name, EVP_PKEY *issuer_key, X509 *issuer,
                      EVP_PKEY **key_out, X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    assert_non_null(key);
    assert_non_null(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), (long)(hd_mono_us() & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(issuer != NULL ? issuer : cert));
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                             issuer == NULL ? "critical,CA:TRUE" : "CA:FALSE");
    assert_non_null(bc);
    X509_add_ext(cert, bc, -1);
    X509_EXTENSION_free(bc);
    assert_true(X509_sign(cert, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pem", dir, name);
    FILE *cf = fopen(path, "w");
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    FILE *kf = fopen(path, "w");
    assert_true(cf != NULL && kf != NULL);
    assert_int_equal(PEM_write_X509(cf, cert), 1);
    assert_int_equal(PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(cf);
    fclose(kf);
    *key_out = key;
    *cert_out = cert;
}

/* A CA and a node certificate of it, as a mutual context. */
static struct hd_tls_ctx *make_cluster_ctx(const char *dir, const char *ca_name)
{
    EVP_PKEY *ca_key, *key;
    X509 *ca, *cert;
    char node[64], c[512], k[512], a[512], err[512] = "";
    make_cert(dir, ca_name, NULL, NULL, &ca_key, &ca);
    snprintf(node, sizeof node, "%s-node", ca_name);
    make_cert(dir, node, ca_key, ca, &key, &cert);
    snprintf(c, sizeof c, "%s/%s.pem", dir, node);
    snprintf(k, sizeof k, "%s/%s.key", dir, node);
    snprintf(a, sizeof a, "%s/%s.pem", dir, ca_name);
    struct hd_tls_ctx *ctx = NULL;
    if (hd_tls_ctx_mutual(&ctx, c, k, a, err, sizeof err) != 0) {
        fail_msg("mutual context: %s", err);
    }
    /* A certificate of another CA is refused when the context is made. */
    snprintf(a, sizeof a, "%s/%s.pem", dir, ca_name[3] == 'a' ? "ca-b" : "ca-a");
    struct hd_tls_ctx *wrong = NULL;
    if (access(a, F_OK) == 0) {
        assert_int_equal(hd_tls_ctx_mutual(&wrong, c, k, a, err, sizeof err), HD_EINVAL);
        assert_non_null(strstr(err, "is not vouched for by --peer-tls-ca"));
    }
    X509_free(ca);
    X509_free(cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    return ctx;
}

static int tls_group_setup(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "test-transport");
    ctx_a = make_cluster_ctx(dir, "ca-a");
    ctx_b = make_cluster_ctx(dir, "ca-b");
    test_dir_remove(dir);
    tls_on = true;
    return 0;
}

static int tls_group_teardown(void **state)
{
    (void)state;
    hd_tls_ctx_free(ctx_a);
    hd_tls_ctx_free(ctx_b);
    tls_on = false;
    return 0;
}

static bool refused(void *arg)
{
    return cons_transport_tls_refused(((struct node *)arg)->t) > 0;
}

static bool refused_both(void *arg)
{
    const struct pair *p = arg;
    return refused(&f->nodes[p->a]) && refused(&f->nodes[p->b]);
}

/* Node 2's certificate is of another CA: each side refuses and counts;
 * nothing passes. After a reload with the cluster's, the link comes up. */
static void test_tls_other_ca_refused_then_reload(void **state)
{
    (void)state;
    start_tls(1, CLUSTER_A, 0, 0, ctx_a);
    start_tls(2, CLUSTER_A, 0, 0, ctx_b);
    add_peer(1, 2);
    add_peer(2, 1);
    assert_int_equal(send_seq(1, 2, 7, 0), 0);
    struct pair p = {1, 2, false};
    run_until(refused_both, &p);
    run_for(300);
    assert_false(connected(1, 2));
    assert_int_equal(f->nodes[2].n_rx, 0);
    /* Node 1 dials: a redial after node 2 reloads gets through. */
    cons_transport_set_tls(f->nodes[2].t, ctx_a);
    struct want_rx w = {2, 1};
    run_until(got_n, &w);
    assert_got_seqs(2, 1, 7, 1);
    assert_true(connected(1, 2));
}

/* TLS on one side only: refused and counted by both. */
static void test_tls_against_plaintext_refused(void **state)
{
    (void)state;
    start_tls(1, CLUSTER_A, 0, 0, ctx_a); /* a TLS dialer, a plaintext acceptor */
    start_tls(2, CLUSTER_A, 0, 0, NULL);
    start_tls(3, CLUSTER_A, 0, 0, NULL);  /* a plaintext dialer, a TLS acceptor */
    start_tls(4, CLUSTER_A, 0, 0, ctx_a);
    add_peer(1, 2);
    add_peer(2, 1);
    add_peer(3, 4);
    add_peer(4, 3);
    assert_int_equal(send_seq(1, 2, 1, 0), 0);
    assert_int_equal(send_seq(3, 4, 1, 0), 0);
    struct pair p12 = {1, 2, false};
    run_until(refused_both, &p12);
    run_until(refused, &f->nodes[4]); /* node 3 cannot tell why it was closed */
    run_for(300);
    assert_false(connected(1, 2));
    assert_false(connected(3, 4));
    assert_int_equal(f->nodes[2].n_rx, 0);
    assert_int_equal(f->nodes[4].n_rx, 0);
}

int main(void)
{
    hd_log_level = 1; /* refusals are logged as WARN; keep INFO quiet */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_frames_arrive_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_peer_gets_queued_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restarted_peer_is_reconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_cluster_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound_drops_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_open_connections_leaks_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_recv_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_peers_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_dialer_is_learned, setup, teardown),
    };
    /* The same transport-to-transport tests with mutual TLS on every link
     * (the raw-socket ones speak plaintext frames: not here). */
    const struct CMUnitTest tls_tests[] = {
        cmocka_unit_test_setup_teardown(test_frames_arrive_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_peer_gets_queued_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restarted_peer_is_reconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_cluster_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound_drops_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_open_connections_leaks_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_recv_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_other_ca_refused_then_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_against_plaintext_refused, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("plaintext", tests, NULL, NULL);
    return failed + cmocka_run_group_tests_name("mutual TLS", tls_tests, tls_group_setup,
                                                tls_group_teardown);
}
