/* SPDX-License-Identifier: Apache-2.0 */
/* Peer transport on libuv: peers, bounded queues, handshake, framing, reconnects. */
#include "transport.h"

#include <stdio.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_fifo.h"
#include "hd_tls.h"
#include "hd_util.h"
#include "transport_tls.h"

#define CONS__QUEUE_BYTES_DEFAULT ((size_t)64 << 20)
#define CONS__BACKOFF_MIN_MS 50u
#define CONS__BACKOFF_MAX_MS 2000u
#define CONS__TICK_MS 250u      /* idle checks and pings */
#define CONS__PING_AFTER_MS 1000u
#define CONS__RBUF_MIN (64u << 10)
#define CONS__WRITE_BUFS_MAX 64u /* frames per uv_write */
#define CONS__HELLO_FRAME (CONS_FRAME_HEADER_SIZE + CONS__HELLO_SIZE)
#define CONS__LEARNED_MAX 64u   /* peers known only from their HELLO */
#define CONS__TLS_HANDSHAKE_BYTE 0x16 /* first byte of a TLS handshake record */

struct cons__frame {
    struct cons__frame *next;
    size_t len;      /* header + payload bytes in data */
    bool control;    /* a PING: not counted as sent */
    uint8_t data[];  /* sealed frame */
};

struct cons_peer;

/* One TCP connection: dialed, accepted, handshaking or ready. It outlives
 * its peer link while closing: uv_close is asynchronous. */
struct cons__conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t hello_req;
    uv_write_t write_req;             /* queued frames; one in flight */
    struct cons_transport *t;
    struct cons_peer *peer;           /* NULL: accepted, no HELLO yet; or detached */
    struct cons__conn *prev, *next;   /* t->conns */
    bool outbound;                    /* we dialed it */
    bool ready;                       /* handshake done */
    bool closing;
    bool writing;                     /* write_req (or TLS frames) in flight */
    bool tls_first;                   /* TLS acceptor: nothing read yet */
    struct cons_tls_link *tls;        /* with peer TLS: the session; NULL: plaintext */
    uint8_t *rbuf;                    /* received bytes not yet consumed */
    size_t rlen, rcap;
    uint64_t last_recv_ms;            /* loop time of the last bytes read (or open) */
    char addr[72];                    /* remote address, for logs */
    uint8_t hello[CONS__HELLO_FRAME];
    uv_buf_t wbufs[CONS__WRITE_BUFS_MAX];
};

struct cons_peer {
    uint64_t id;
    char *addr;                       /* hd_malloc'ed, as given; NULL if learned */
    struct sockaddr_storage sa;
    struct cons_transport *t;
    uv_timer_t timer;                 /* redial after a backoff */
    struct cons__conn *conn;          /* current connection, if any */
    struct cons__frame *head, *tail;  /* queue; the first inflight_n are written */
    unsigned inflight_n;
    size_t bytes_queued;
    unsigned backoff_ms;              /* next redial delay (before jitter) */
    uint64_t last_send_ms;
    uint64_t handshakes;
    bool dropping;                    /* dropped since the last accepted frame */
    bool learned;                     /* added by its HELLO, not by set_peer */
    bool removed;
    struct cons_peer_stats stats;
};

struct cons_transport {
    uv_loop_t *loop;
    uint64_t node_id;
    uint8_t cluster[16];
    size_t queue_bytes_max;
    cons_transport_recv_cb recv_cb;
    void *recv_arg;
    uv_tcp_t listener;
    uv_timer_t tick;
    struct cons_peer **peers;
    size_t peers_n, peers_cap;
    unsigned learned_n;               /* peers with `learned` set */
    struct cons__conn *conns;         /* every open connection */
    unsigned handles_open;            /* handles whose close cb is pending */
    uint64_t rng;
    struct hd_tls_ctx *tls;           /* peer TLS (mutual) for new connections; NULL: off */
    uint64_t tls_refused;             /* links refused at the TLS handshake */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void cons__conn_fail(struct cons__conn *c, int level, const char *why);
static void cons__peer_flush(struct cons_peer *p);
static void cons__peer_dial(struct cons_peer *p);
static void cons__peer_timer_cb(uv_timer_t *timer);
static struct cons_peer *cons__peer_learn(struct cons_transport *t, uint64_t id);
static void cons__conn_consume(struct cons__conn *c);
static int cons__send_hello(struct cons__conn *c, uint64_t to_id);

/* --------------------------------------------------------------- helpers --- */

static bool cons__dials(const struct cons_transport *t, uint64_t peer_id)
{
    return t->node_id < peer_id; /* the lower id dials: one connection per pair */
}

static struct cons_peer *cons__peer_find(const struct cons_transport *t, uint64_t id)
{
    for (size_t i = 0; i < t->peers_n; i++) {
        if (t->peers[i]->id == id) {
            return t->peers[i];
        }
    }
    return NULL;
}

static void cons__maybe_finish_close(struct cons_transport *t)
{
    if (!t->closing || t->handles_open > 0) {
        return;
    }
    void (*cb)(void *) = t->close_cb;
    void *arg = t->close_arg;
    HD_ASSERT(t->conns == NULL);
    HD_ASSERT(t->peers_n == 0);
    hd_free(t->peers);
    hd_free(t);
    if (cb != NULL) {
        cb(arg);
    }
}

static void cons__handle_closed(uv_handle_t *h)
{
    struct cons_transport *t = h->data;
    HD_ASSERT(t->handles_open > 0);
    t->handles_open--;
    cons__maybe_finish_close(t);
}

static unsigned cons__jitter(struct cons_transport *t, unsigned ms)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    /* Uniform in [ms/2, ms]: nodes that failed together redial apart. */
    return ms / 2 + (unsigned)(t->rng % (ms / 2 + 1));
}

/* An error of herald (HD_E*) or of libuv (a negative errno): the TLS
 * path returns both. */
static const char *cons__strerror(int rv)
{
    const char *text = hd_strerror(rv);
    return strcmp(text, "unknown error") != 0 ? text : uv_strerror(rv);
}

/* ---------------------------------------------------------------- queues --- */

static void cons__frame_pop(struct cons_peer *p)
{
    struct cons__frame *f;
    HD_FIFO_POP(p->head, p->tail, f);
    HD_ASSERT(f != NULL);
    HD_ASSERT(p->bytes_queued >= f->len);
    p->bytes_queued -= f->len;
    hd_free(f);
}

static void cons__frame_push(struct cons_peer *p, struct cons__frame *f)
{
    HD_FIFO_PUSH(p->head, p->tail, f);
    p->bytes_queued += f->len;
}

static struct cons__frame *cons__frame_new(uint8_t kind, uint16_t shard,
                                           const struct iovec *iov, unsigned n, size_t len)
{
    struct cons__frame *f = hd_malloc(sizeof *f + CONS_FRAME_HEADER_SIZE + len);
    if (f == NULL) {
        return NULL;
    }
    f->len = CONS_FRAME_HEADER_SIZE + len;
    f->control = kind == CONS__KIND_CONTROL;
    uint8_t *p = f->data + CONS_FRAME_HEADER_SIZE;
    for (unsigned i = 0; i < n; i++) {
        if (iov[i].iov_len > 0) {
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
    }
    cons__frame_seal(f->data, kind, shard, (uint32_t)len);
    return f;
}

/* The frames of the last flush left (status 0), or did not. */
static void cons__frames_written(struct cons__conn *c, int status)
{
    struct cons_peer *p = c->peer;
    HD_ASSERT(c->writing);
    c->writing = false;
    if (p == NULL || c->closing) {
        return; /* detached: the frames stay queued for the next connection */
    }
    if (status < 0) {
        cons__conn_fail(c, 1, uv_strerror(status));
        return;
    }
    HD_ASSERT(p->conn == c);
    for (unsigned i = 0; i < p->inflight_n; i++) {
        p->stats.frames_sent += !p->head->control;
        cons__frame_pop(p);
    }
    p->inflight_n = 0;
    cons__peer_flush(p);
}

static void cons__write_cb(uv_write_t *req, int status)
{
    cons__frames_written(req->data, status);
}

/* Writes queued frames if the peer's connection is ready and idle. */
static void cons__peer_flush(struct cons_peer *p)
{
    struct cons__conn *c = p->conn;
    if (c == NULL || !c->ready || c->closing || c->writing || p->head == NULL) {
        return;
    }
    HD_ASSERT(p->inflight_n == 0);
    unsigned n = 0;
    for (struct cons__frame *f = p->head; f != NULL && n < CONS__WRITE_BUFS_MAX; f = f->next) {
        c->wbufs[n++] = uv_buf_init((char *)f->data, (unsigned)f->len);
    }
    int rv;
    if (c->tls != NULL) {
        rv = cons_tls_link_write(c->tls, c->wbufs, n, true);
    } else {
        c->write_req.data = c;
        rv = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, c->wbufs, n, cons__write_cb);
    }
    if (rv != 0) {
        cons__conn_fail(c, 1, cons__strerror(rv));
        return;
    }
    c->writing = true;
    p->inflight_n = n;
    p->last_send_ms = uv_now(p->t->loop);
}

/* --------------------------------------------------------- connections --- */

static void cons__conn_closed(uv_handle_t *h)
{
    struct cons__conn *c = h->data;
    struct cons_transport *t = c->t;
    HD_ASSERT(c->closing);
    HD_ASSERT(!c->writing); /* libuv cancels writes before closing */
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    hd_free(c->rbuf);
    cons_tls_link_free(c->tls); /* its writes were cancelled before this */
    hd_free(c);
    HD_ASSERT(t->handles_open > 0);
    t->handles_open--;
    cons__maybe_finish_close(t);
}

static void cons__peer_schedule_dial(struct cons_peer *p)
{
    struct cons_transport *t = p->t;
    unsigned delay = cons__jitter(t, p->backoff_ms);
    p->backoff_ms = p->backoff_ms * 2 > CONS__BACKOFF_MAX_MS ? CONS__BACKOFF_MAX_MS
                                                           : p->backoff_ms * 2;
    HD_LOG_DEBUG("transport: redial node %llu in %u ms", (unsigned long long)p->id, delay);
    uv_timer_start(&p->timer, cons__peer_timer_cb, delay, 0);
}

/* Closes a connection: detaches it from its peer (whose frames stay queued)
 * and, if we dial that peer, schedules a redial. level: log level. */
static void cons__conn_fail(struct cons__conn *c, int level, const char *why)
{
    if (c->closing) {
        return;
    }
    struct cons_peer *p = c->peer;
    c->closing = true;
    if (p != NULL) {
        hd_log(level, "transport: link to node %llu (%s) closed: %s",
               (unsigned long long)p->id, c->addr, why);
        HD_ASSERT(p->conn == c);
        p->conn = NULL;
        p->inflight_n = 0; /* written again on the next connection */
        p->stats.connected = false;
        c->peer = NULL;
        if (c->outbound && !p->removed && !c->t->closing) {
            cons__peer_schedule_dial(p);
        }
    } else {
        hd_log(level, "transport: connection %s closed: %s", c->addr, why);
    }
    uv_close((uv_handle_t *)&c->tcp, cons__conn_closed);
}

static struct cons__conn *cons__conn_new(struct cons_transport *t)
{
    struct cons__conn *c = hd_calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    HD_ASSERT(!t->closing);
    int rv = uv_tcp_init(t->loop, &c->tcp);
    HD_ASSERT(rv == 0); /* only fails for bad flags */
    c->tcp.data = c;
    c->t = t;
    c->last_recv_ms = uv_now(t->loop);
    snprintf(c->addr, sizeof c->addr, "?");
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    t->handles_open++;
    return c;
}

static void cons__hello_cb(uv_write_t *req, int status)
{
    struct cons__conn *c = req->data;
    if (status < 0 && !c->closing) {
        cons__conn_fail(c, 1, uv_strerror(status));
    }
}

static int cons__send_hello(struct cons__conn *c, uint64_t to_id)
{
    struct cons_transport *t = c->t;
    struct cons__hello h = {.from_id = t->node_id, .to_id = to_id};
    memcpy(h.cluster, t->cluster, sizeof h.cluster);
    cons__hello_encode(c->hello + CONS_FRAME_HEADER_SIZE, &h);
    cons__frame_seal(c->hello, CONS__KIND_CONTROL, CONS__CTL_HELLO, CONS__HELLO_SIZE);
    uv_buf_t buf = uv_buf_init((char *)c->hello, sizeof c->hello);
    if (c->tls != NULL) {
        return cons_tls_link_write(c->tls, &buf, 1, false); /* inside TLS */
    }
    c->hello_req.data = c;
    return uv_write(&c->hello_req, (uv_stream_t *)&c->tcp, &buf, 1, cons__hello_cb);
}

/* Links a connection whose handshake just completed to its peer. */
static void cons__conn_ready(struct cons__conn *c, struct cons_peer *p)
{
    HD_ASSERT(!c->ready);
    HD_ASSERT(p->conn == NULL || p->conn == c);
    p->conn = c;
    c->peer = p;
    c->ready = true;
    p->inflight_n = 0;
    p->handshakes++;
    p->stats.reconnects = p->handshakes - 1;
    p->stats.connected = true;
    p->backoff_ms = CONS__BACKOFF_MIN_MS;
    p->last_send_ms = uv_now(c->t->loop);
    HD_LOG_INFO("transport: link to node %llu (%s) up", (unsigned long long)p->id, c->addr);
    cons__peer_flush(p);
}

/* ------------------------------------------------------------ handshake --- */

/* The acceptor's side: the dialer introduced itself. */
static void cons__accept_hello(struct cons__conn *c, const struct cons__hello *h)
{
    struct cons_transport *t = c->t;
    struct cons_peer *p = cons__peer_find(t, h->from_id);
    char why[128];
    HD_ASSERT(!c->outbound);
    if (h->from_id >= t->node_id) { /* the lower id dials */
        snprintf(why, sizeof why, "refused: node %llu must wait for node %llu to dial",
                 (unsigned long long)h->from_id, (unsigned long long)t->node_id);
    } else if (h->to_id != 0 && h->to_id != t->node_id) {
        snprintf(why, sizeof why, "refused: node %llu expected node %llu here",
                 (unsigned long long)h->from_id, (unsigned long long)h->to_id);
    } else {
        why[0] = '\0';
    }
    if (why[0] == '\0' && p == NULL) {
        p = cons__peer_learn(t, h->from_id);
        if (p == NULL) {
            snprintf(why, sizeof why, "refused: cannot learn node %llu (%u learned)",
                     (unsigned long long)h->from_id, t->learned_n);
        }
    }
    if (why[0] != '\0') {
        cons__conn_fail(c, 1, why);
        return;
    }
    if (p->conn != NULL) {
        /* The dialer restarted (or lost its link) before we noticed. */
        cons__conn_fail(p->conn, 2, "replaced by a newer connection");
    }
    int rv = cons__send_hello(c, h->from_id);
    if (rv != 0) {
        cons__conn_fail(c, 1, cons__strerror(rv));
        return;
    }
    cons__conn_ready(c, p);
}

/* The dialer's side: the node we dialed answered. */
static void cons__dialer_hello(struct cons__conn *c, const struct cons__hello *h)
{
    struct cons_peer *p = c->peer;
    char why[128];
    HD_ASSERT(c->outbound);
    HD_ASSERT(p != NULL && p->conn == c);
    if (h->from_id != p->id || h->to_id != c->t->node_id) {
        snprintf(why, sizeof why, "refused: answered as node %llu (for node %llu)",
                 (unsigned long long)h->from_id, (unsigned long long)h->to_id);
        cons__conn_fail(c, 1, why);
        return;
    }
    cons__conn_ready(c, p);
}

static void cons__conn_hello(struct cons__conn *c, const struct cons__frame_hdr *h,
                             const uint8_t *payload)
{
    struct cons__hello hello;
    if (h->kind != CONS__KIND_CONTROL || h->shard != CONS__CTL_HELLO ||
        cons__hello_decode(payload, h->len, &hello) != 0) {
        cons__conn_fail(c, 1, "refused: no valid HELLO");
        return;
    }
    if (memcmp(hello.cluster, c->t->cluster, sizeof hello.cluster) != 0) {
        cons__conn_fail(c, 1, "refused: another cluster id");
        return;
    }
    if (c->outbound) {
        cons__dialer_hello(c, &hello);
    } else {
        cons__accept_hello(c, &hello);
    }
}

/* ------------------------------------------------------------------ TLS --- */

/* A link refused at the TLS handshake (a certificate refused, TLS on one
 * side only): counted for /metrics and logged. A dialer logs the first
 * refusal of a series at warn and its redials at debug, so a node that
 * keeps being refused does not flood the log; every refused incoming
 * connection is logged. */
static void cons__conn_refuse(struct cons__conn *c, const char *why)
{
    char msg[400];
    c->t->tls_refused++;
    bool repeat = c->outbound && c->peer != NULL && c->peer->backoff_ms > CONS__BACKOFF_MIN_MS;
    snprintf(msg, sizeof msg, "peer TLS: refused at the handshake: %s", why);
    cons__conn_fail(c, repeat ? 3 : 1, msg);
}

/* Decrypted bytes: appended to the read buffer, whole frames delivered.
 * Non-zero (1) once the connection closed, which stops the feed. */
static int cons__tls_plain(void *arg, const void *data, size_t len)
{
    struct cons__conn *c = arg;
    if (c->closing) {
        return 1;
    }
    if (c->rcap - c->rlen < len) {
        size_t need = c->rlen + len;
        size_t cap = c->rcap * 2 > need ? c->rcap * 2 : need;
        cap = cap < CONS__RBUF_MIN ? CONS__RBUF_MIN : cap;
        uint8_t *rbuf = hd_realloc(c->rbuf, cap);
        if (rbuf == NULL) {
            cons__conn_fail(c, 1, "out of memory");
            return 1;
        }
        c->rbuf = rbuf;
        c->rcap = cap;
    }
    memcpy(c->rbuf + c->rlen, data, len);
    c->rlen += len;
    cons__conn_consume(c);
    return c->closing ? 1 : 0;
}

static void cons__tls_written(void *arg, int status)
{
    cons__frames_written(arg, status);
}

/* Starts TLS on a connection just dialed or accepted. */
static int cons__conn_tls_start(struct cons__conn *c)
{
    static const struct cons_tls_link_cbs cbs = {.plain = cons__tls_plain,
                                                 .written = cons__tls_written};
    c->tls_first = !c->outbound;
    int rv = cons_tls_link_new(&c->tls, c->t->tls, c->outbound, (uv_stream_t *)&c->tcp, &cbs, c);
    if (rv == HD_ECORRUPT) {
        cons__conn_refuse(c, cons_tls_link_why(c->tls));
    }
    return rv;
}

/* Ciphertext arrived (len bytes in the link's buffer). */
static void cons__conn_tls_read(struct cons__conn *c, size_t len)
{
    if (c->tls_first) {
        c->tls_first = false;
        if (((const uint8_t *)cons_tls_link_rbuf(c->tls).base)[0] != CONS__TLS_HANDSHAKE_BYTE) {
            cons__conn_refuse(c, "no TLS handshake: a plaintext peer (that node has no "
                                 "--peer-tls-*) or something else on the TLS peer port");
            return;
        }
    }
    bool was_up = cons_tls_link_established(c->tls);
    int rv = cons_tls_link_feed(c->tls, len);
    if (c->closing) {
        return; /* a frame's callback closed it */
    }
    if (rv != 0) {
        char why[320];
        snprintf(why, sizeof why, "%s", rv == HD_ESHUTDOWN ? "the other side ended TLS"
                                        : rv == HD_ECORRUPT ? cons_tls_link_why(c->tls)
                                                            : cons__strerror(rv));
        if (!c->ready && rv != HD_ESHUTDOWN) {
            cons__conn_refuse(c, why);
        } else {
            cons__conn_fail(c, 1, why);
        }
        return;
    }
    if (!was_up && cons_tls_link_established(c->tls)) {
        HD_LOG_DEBUG("transport: peer TLS up with %s", c->addr);
        if (c->outbound) {
            rv = cons__send_hello(c, c->peer->id); /* the cluster id, inside TLS */
            if (rv != 0) {
                cons__conn_fail(c, 1, cons__strerror(rv));
            }
        }
    }
}

/* A read error or the end of the stream. */
static void cons__conn_read_failed(struct cons__conn *c, int nread)
{
    bool eof = nread == UV_EOF;
    if (eof && c->tls != NULL && !c->ready) {
        cons__conn_refuse(c, "closed by the other side during the handshake (it has no "
                             "--peer-tls-*, or refused our certificate: see its log)");
    } else if (eof && !c->ready && c->outbound) {
        cons__conn_fail(c, 2, "closed by the other side before its HELLO (another cluster, "
                              "or its peer port speaks TLS: see its log)");
    } else {
        cons__conn_fail(c, eof ? 2 : 1, eof ? "closed by the other side" : uv_strerror(nread));
    }
}

/* -------------------------------------------------------------- reading --- */

static void cons__conn_frame(struct cons__conn *c, const struct cons__frame_hdr *h,
                             const uint8_t *payload)
{
    struct cons_transport *t = c->t;
    if (!c->ready) {
        cons__conn_hello(c, h, payload);
        return;
    }
    struct cons_peer *p = c->peer;
    HD_ASSERT(p != NULL && p->conn == c);
    if (h->kind == CONS__KIND_CONTROL) {
        if (h->shard != CONS__CTL_PING) {
            cons__conn_fail(c, 1, "unexpected control frame");
        }
        return;
    }
    p->stats.frames_received++;
    t->recv_cb(t->recv_arg, p->id, h->kind, h->shard, payload, h->len);
}

/* Delivers every complete frame in the read buffer, then keeps the tail. */
static void cons__conn_consume(struct cons__conn *c)
{
    size_t off = 0;
    char why[64];
    while (!c->closing && c->rlen - off >= CONS_FRAME_HEADER_SIZE) {
        const uint8_t *frame = c->rbuf + off;
        struct cons__frame_hdr h;
        if (cons__frame_decode_header(frame, &h) != 0) {
            if (!c->ready && off == 0 && frame[0] == CONS__TLS_HANDSHAKE_BYTE) {
                cons__conn_refuse(c, "a TLS handshake on this plaintext peer port (that node "
                                     "has --peer-tls-*, this one not)");
                return;
            }
            cons__conn_fail(c, 1, "bad frame magic or length");
            return;
        }
        if (h.version != CONS_FRAME_VERSION) {
            snprintf(why, sizeof why, "refused: unknown protocol version %u", h.version);
            cons__conn_fail(c, 1, why);
            return;
        }
        if (c->rlen - off - CONS_FRAME_HEADER_SIZE < h.len) {
            break;
        }
        if (cons__frame_verify(frame, &h) != 0) {
            cons__conn_fail(c, 1, "frame checksum mismatch");
            return;
        }
        off += CONS_FRAME_HEADER_SIZE + h.len;
        /* May re-enter the transport, even close it: c stays valid until
         * its close callback, which runs later on the loop. */
        cons__conn_frame(c, &h, frame + CONS_FRAME_HEADER_SIZE);
    }
    if (c->closing) {
        return;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if (c->rlen == 0 && c->rcap > CONS__RBUF_MIN) {
        hd_free(c->rbuf); /* give back the buffer of a large frame */
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

static void cons__alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct cons__conn *c = handle->data;
    size_t need = CONS__RBUF_MIN;
    struct cons__frame_hdr h;
    (void)suggested;
    if (c->tls != NULL) {
        *buf = cons_tls_link_rbuf(c->tls); /* ciphertext; plaintext goes to rbuf */
        return;
    }
    /* The buffer starts at a frame: size it for the whole frame at once. */
    if (c->rlen >= CONS_FRAME_HEADER_SIZE && cons__frame_decode_header(c->rbuf, &h) == 0 &&
        CONS_FRAME_HEADER_SIZE + (size_t)h.len > need) {
        need = CONS_FRAME_HEADER_SIZE + (size_t)h.len;
    }
    if (c->rcap < need) {
        uint8_t *rbuf = hd_realloc(c->rbuf, need);
        if (rbuf == NULL) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->rbuf = rbuf;
        c->rcap = need;
    }
    HD_ASSERT(c->rcap > c->rlen);
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void cons__read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct cons__conn *c = stream->data;
    (void)buf;
    if (nread == 0 || c->closing) {
        return;
    }
    if (nread < 0) {
        cons__conn_read_failed(c, (int)nread);
        return;
    }
    c->last_recv_ms = uv_now(c->t->loop);
    if (c->tls != NULL) {
        cons__conn_tls_read(c, (size_t)nread);
        return;
    }
    HD_ASSERT(c->rlen + (size_t)nread <= c->rcap);
    c->rlen += (size_t)nread;
    cons__conn_consume(c);
}

/* ---------------------------------------------------- dialing, accepting --- */

static void cons__connect_cb(uv_connect_t *req, int status)
{
    struct cons__conn *c = req->data;
    if (c->closing) {
        return; /* UV_ECANCELED: closed while connecting */
    }
    HD_ASSERT(c->outbound && c->peer != NULL);
    if (status < 0) {
        /* Log the first failure of a series, not every redial. */
        int level = c->peer->backoff_ms == CONS__BACKOFF_MIN_MS ? 2 : 3;
        cons__conn_fail(c, level, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rv = c->t->tls != NULL ? cons__conn_tls_start(c) : 0;
    if (rv == 0) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, cons__alloc_cb, cons__read_cb);
    }
    if (rv == 0 && c->tls == NULL) {
        rv = cons__send_hello(c, c->peer->id); /* with TLS: once it is up */
    }
    if (rv != 0 && !c->closing) {
        cons__conn_fail(c, 1, cons__strerror(rv));
    }
}

static void cons__peer_dial(struct cons_peer *p)
{
    struct cons_transport *t = p->t;
    HD_ASSERT(p->conn == NULL);
    HD_ASSERT(cons__dials(t, p->id) && !p->removed);
    HD_ASSERT(p->addr != NULL);
    struct cons__conn *c = cons__conn_new(t);
    if (c == NULL) {
        HD_LOG_WARN("transport: dial node %llu: out of memory", (unsigned long long)p->id);
        cons__peer_schedule_dial(p);
        return;
    }
    c->outbound = true;
    c->peer = p;
    p->conn = c;
    snprintf(c->addr, sizeof c->addr, "%s", p->addr);
    c->connect_req.data = c;
    int rv = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->sa,
                            cons__connect_cb);
    if (rv != 0) {
        cons__conn_fail(c, 1, cons__strerror(rv));
    }
}

static void cons__peer_timer_cb(uv_timer_t *timer)
{
    struct cons_peer *p = timer->data;
    if (p->conn == NULL && !p->removed && !p->t->closing) {
        cons__peer_dial(p);
    }
}

static void cons__accept_cb(uv_stream_t *server, int status)
{
    struct cons_transport *t = server->data;
    if (status < 0) {
        HD_LOG_WARN("transport: accept: %s", uv_strerror(status));
        return;
    }
    struct cons__conn *c = t->closing ? NULL : cons__conn_new(t);
    if (c == NULL) {
        HD_LOG_WARN("transport: accept: out of memory or closing");
        return;
    }
    int rv = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rv == 0) {
        struct sockaddr_storage sa;
        int len = (int)sizeof sa;
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
            cons__addr_str((const struct sockaddr *)&sa, c->addr, sizeof c->addr);
        }
        uv_tcp_nodelay(&c->tcp, 1);
        rv = t->tls != NULL ? cons__conn_tls_start(c) : 0;
    }
    if (rv == 0) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, cons__alloc_cb, cons__read_cb);
    }
    if (rv != 0 && !c->closing) {
        cons__conn_fail(c, 1, cons__strerror(rv));
    }
}

/* Closes silent connections (dead peers, stuck handshakes) and pings idle
 * links so that the other side does not close them. */
static void cons__tick_cb(uv_timer_t *timer)
{
    struct cons_transport *t = timer->data;
    uint64_t now = uv_now(t->loop);
    for (struct cons__conn *c = t->conns; c != NULL; c = c->next) {
        if (!c->closing && now - c->last_recv_ms >= CONS_TRANSPORT_IDLE_MS) {
            cons__conn_fail(c, 1, "nothing received for too long");
        }
    }
    for (size_t i = t->peers_n; i-- > 0;) {
        if (t->peers[i]->learned && t->peers[i]->conn == NULL) {
            /* Forgotten once its link is gone; it redials us if needed. */
            cons_transport_remove_peer(t, t->peers[i]->id);
        }
    }
    for (size_t i = 0; i < t->peers_n; i++) {
        struct cons_peer *p = t->peers[i];
        if (p->conn == NULL || !p->conn->ready || p->head != NULL ||
            now - p->last_send_ms < CONS__PING_AFTER_MS) {
            continue;
        }
        struct cons__frame *f = cons__frame_new(CONS__KIND_CONTROL, CONS__CTL_PING, NULL, 0, 0);
        if (f != NULL) {
            cons__frame_push(p, f);
            cons__peer_flush(p);
        }
    }
}

/* ------------------------------------------------------------ interface --- */

static int cons__listen(struct cons_transport *t, const struct cons_transport_options *o,
                        char *errmsg, size_t errmsg_len)
{
    struct sockaddr_storage sa;
    if (cons__parse_addr(o->listen_addr, &sa) != 0) {
        snprintf(errmsg, errmsg_len, "bad listen address '%s'",
                 o->listen_addr ? o->listen_addr : "");
        return HD_EINVAL;
    }
    int rv = uv_tcp_bind(&t->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&t->listener, 128, cons__accept_cb);
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "listen on %s: %s", o->listen_addr, uv_strerror(rv));
        return hd_from_errno(-rv);
    }
    return 0;
}

int cons_transport_init(struct cons_transport **out, const struct cons_transport_options *o,
                        cons_transport_recv_cb cb, void *arg, char *errmsg,
                        size_t errmsg_len)
{
    HD_ASSERT(out != NULL && o != NULL);
    HD_ASSERT(o->loop != NULL && cb != NULL);
    int rv = HD_EINVAL;
    struct cons_transport *t = hd_calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        return HD_ENOMEM;
    }
    if (o->node_id == 0) {
        snprintf(errmsg, errmsg_len, "node id must be > 0");
        goto err_alloc;
    }
    if (cons__parse_cluster_id(o->cluster_id, t->cluster) != 0) {
        snprintf(errmsg, errmsg_len, "cluster id must be 32 hex characters");
        goto err_alloc;
    }
    t->loop = o->loop;
    t->node_id = o->node_id;
    t->queue_bytes_max = o->peer_queue_bytes_max ? o->peer_queue_bytes_max
                                                 : CONS__QUEUE_BYTES_DEFAULT;
    t->recv_cb = cb;
    t->recv_arg = arg;
    t->rng = hd_hash64(&o->node_id, sizeof o->node_id) ^ hd_mono_us();
    t->rng |= 1; /* xorshift must not start at 0 */
    uv_tcp_init(t->loop, &t->listener);
    t->listener.data = t;
    t->handles_open++;
    rv = cons__listen(t, o, errmsg, errmsg_len);
    if (rv != 0) {
        goto err_listener;
    }
    uv_timer_init(t->loop, &t->tick);
    t->tick.data = t;
    t->handles_open++;
    uv_timer_start(&t->tick, cons__tick_cb, CONS__TICK_MS, CONS__TICK_MS);
    t->tls = o->tls != NULL ? hd_tls_ctx_ref(o->tls) : NULL;
    *out = t;
    return 0;

err_listener:
    /* The handle exists: t is freed by its close callback, on the loop. */
    t->closing = true;
    uv_close((uv_handle_t *)&t->listener, cons__handle_closed);
    HD_ASSERT(rv != 0);
    return rv;
err_alloc:
    hd_free(t);
    HD_ASSERT(rv != 0);
    return rv;
}

int cons_transport_port(const struct cons_transport *t)
{
    struct sockaddr_storage sa;
    int len = (int)sizeof sa;
    HD_ASSERT(t != NULL);
    if (uv_tcp_getsockname(&t->listener, (struct sockaddr *)&sa, &len) != 0) {
        return -1;
    }
    if (sa.ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)(const void *)&sa)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)(const void *)&sa)->sin_port);
}

/* Creates a peer (not dialed yet); takes `addr` (may be NULL) only on success. */
static struct cons_peer *cons__peer_new(struct cons_transport *t, uint64_t id, char *addr)
{
    HD_ASSERT(id != 0 && id != t->node_id);
    HD_ASSERT(cons__peer_find(t, id) == NULL);
    if (t->peers_n == t->peers_cap) {
        size_t cap = t->peers_cap ? t->peers_cap * 2 : 8;
        struct cons_peer **peers = hd_realloc(t->peers, cap * sizeof *peers);
        if (peers == NULL) {
            return NULL;
        }
        t->peers = peers;
        t->peers_cap = cap;
    }
    struct cons_peer *p = hd_calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    *p = (struct cons_peer){.id = id, .addr = addr, .t = t,
                            .backoff_ms = CONS__BACKOFF_MIN_MS};
    uv_timer_init(t->loop, &p->timer);
    p->timer.data = p;
    t->handles_open++;
    t->peers[t->peers_n++] = p;
    return p;
}

static int cons__peer_add(struct cons_transport *t, uint64_t id, char *addr,
                          const struct sockaddr_storage *sa)
{
    struct cons_peer *p = cons__peer_new(t, id, addr);
    if (p == NULL) {
        hd_free(addr);
        return HD_ENOMEM;
    }
    p->sa = *sa;
    if (cons__dials(t, id)) {
        cons__peer_dial(p);
    }
    return 0;
}

/* A node of our cluster that dialed us before we were told about it (it
 * joins, or knows the new membership before we do): we answer it, so that
 * Raft can bring us up to date. Bounded, as any node can claim an id. */
static struct cons_peer *cons__peer_learn(struct cons_transport *t, uint64_t id)
{
    HD_ASSERT(id < t->node_id); /* only dialers are learned; we never dial them */
    if (t->learned_n >= CONS__LEARNED_MAX) {
        return NULL;
    }
    struct cons_peer *p = cons__peer_new(t, id, NULL);
    if (p != NULL) {
        p->learned = true;
        t->learned_n++;
        HD_LOG_INFO("transport: learned node %llu from its HELLO", (unsigned long long)id);
    }
    return p;
}

int cons_transport_set_peer(struct cons_transport *t, uint64_t id, const char *addr)
{
    HD_ASSERT(t != NULL);
    HD_ASSERT(!t->closing);
    struct sockaddr_storage sa;
    if (id == 0 || id == t->node_id || cons__parse_addr(addr, &sa) != 0) {
        return HD_EINVAL;
    }
    char *copy = hd_strndup(addr, strlen(addr));
    if (copy == NULL) {
        return HD_ENOMEM;
    }
    struct cons_peer *p = cons__peer_find(t, id);
    if (p == NULL) {
        return cons__peer_add(t, id, copy, &sa);
    }
    bool changed = p->addr == NULL || strcmp(p->addr, copy) != 0;
    if (p->learned) {
        p->learned = false; /* configured now: kept when its link drops */
        t->learned_n--;
    }
    hd_free(p->addr);
    p->addr = copy;
    p->sa = sa;
    if (changed && cons__dials(t, id)) {
        if (p->conn != NULL) {
            cons__conn_fail(p->conn, 2, "address changed");
        }
        uv_timer_stop(&p->timer); /* dial the new address now */
        p->backoff_ms = CONS__BACKOFF_MIN_MS;
        cons__peer_dial(p);
    }
    return 0;
}

static void cons__peer_closed(uv_handle_t *h)
{
    struct cons_peer *p = h->data;
    struct cons_transport *t = p->t;
    HD_ASSERT(p->removed && p->head == NULL);
    hd_free(p->addr);
    hd_free(p);
    HD_ASSERT(t->handles_open > 0);
    t->handles_open--;
    cons__maybe_finish_close(t);
}

void cons_transport_remove_peer(struct cons_transport *t, uint64_t id)
{
    HD_ASSERT(t != NULL);
    for (size_t i = 0; i < t->peers_n; i++) {
        struct cons_peer *p = t->peers[i];
        if (p->id != id) {
            continue;
        }
        p->removed = true;
        if (p->learned) {
            t->learned_n--;
        }
        if (p->conn != NULL) {
            cons__conn_fail(p->conn, 2, "peer removed");
        }
        HD_ASSERT(p->conn == NULL && p->inflight_n == 0);
        while (p->head != NULL) {
            cons__frame_pop(p); /* the closed socket no longer reads them */
        }
        uv_close((uv_handle_t *)&p->timer, cons__peer_closed);
        t->peers[i] = t->peers[--t->peers_n];
        return;
    }
}

int cons_transport_send(struct cons_transport *t, uint64_t to_id, uint8_t kind,
                        uint16_t shard, const struct iovec *iov, unsigned n)
{
    HD_ASSERT(t != NULL);
    HD_ASSERT(kind >= CONS_TRANSPORT_KIND_MIN);
    if (t->closing) {
        return HD_ESHUTDOWN;
    }
    struct cons_peer *p = cons__peer_find(t, to_id);
    if (p == NULL) {
        return HD_ENOTFOUND;
    }
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        if (iov[i].iov_len > CONS_FRAME_PAYLOAD_MAX - len) {
            return HD_ETOOBIG;
        }
        len += iov[i].iov_len;
    }
    size_t frame_len = CONS_FRAME_HEADER_SIZE + len;
    if (p->bytes_queued > 0 && p->bytes_queued + frame_len > t->queue_bytes_max) {
        if (!p->dropping) {
            HD_LOG_WARN("transport: queue to node %llu full (%zu bytes), dropping frames",
                        (unsigned long long)p->id, p->bytes_queued);
        }
        p->dropping = true;
        p->stats.frames_dropped++;
        return HD_EBUSY;
    }
    struct cons__frame *f = cons__frame_new(kind, shard, iov, n, len);
    if (f == NULL) {
        return HD_ENOMEM;
    }
    p->dropping = false;
    cons__frame_push(p, f);
    cons__peer_flush(p);
    return 0;
}

int cons_transport_peer_stats(const struct cons_transport *t, uint64_t id,
                              struct cons_peer_stats *out)
{
    HD_ASSERT(t != NULL && out != NULL);
    const struct cons_peer *p = cons__peer_find(t, id);
    if (p == NULL) {
        return HD_ENOTFOUND;
    }
    *out = p->stats;
    out->connected = p->conn != NULL && p->conn->ready && !p->conn->closing;
    out->bytes_queued = p->bytes_queued;
    return 0;
}

void cons_transport_set_tls(struct cons_transport *t, struct hd_tls_ctx *ctx)
{
    HD_ASSERT(t->tls != NULL && ctx != NULL);
    hd_tls_ctx_free(t->tls); /* open sessions hold their own reference */
    t->tls = hd_tls_ctx_ref(ctx);
}

uint64_t cons_transport_tls_refused(const struct cons_transport *t)
{
    return t->tls_refused;
}

void cons_transport_close(struct cons_transport *t, void (*cb)(void *arg), void *arg)
{
    HD_ASSERT(t != NULL);
    HD_ASSERT(!t->closing);
    t->closing = true;
    hd_tls_ctx_free(t->tls);
    t->tls = NULL;
    t->close_cb = cb;
    t->close_arg = arg;
    uv_close((uv_handle_t *)&t->listener, cons__handle_closed);
    uv_close((uv_handle_t *)&t->tick, cons__handle_closed);
    while (t->peers_n > 0) {
        cons_transport_remove_peer(t, t->peers[t->peers_n - 1]->id);
    }
    for (struct cons__conn *c = t->conns; c != NULL; c = c->next) {
        cons__conn_fail(c, 3, "transport closing");
    }
}
