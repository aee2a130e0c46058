/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench engine: keep-alive connections on one libuv loop, closed or
 * open loop. */
#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "bench_internal.h"
#include "bench_pace.h"
#include "bench_tls.h"
#include "herald/herald.h"

/*
 * Each connection carries `depth` requests at once (1 unless --connections
 * is below --in-flight, when HTTP/1.1 pipelining makes up the difference).
 * Answers come back in request order, so slot k's answer is always the
 * next one expected. A slot is re-armed only when both its write has
 * completed and its answer has arrived, so a request buffer is never
 * rewritten while libuv may still be sending it.
 *
 * Open loop (cfg->rate > 0, one request per connection): a connection with
 * nothing to send waits on the idle stack; when the schedule
 * (bench_pace.h) has a send due, the timer pops idle connections, and a
 * connection whose answer arrives takes a due send at once. A send's
 * latency runs from the time it was due.
 */

#define BODY_MAX 1024           /* an append answer is ~100 bytes */
#define RECONNECT_DELAY_MS 100  /* after a lost connection */
#define CONNECT_WAIT_MS 5000    /* all connections must be up by then */
#define DRAIN_WAIT_MS 10000     /* outstanding answers after the window */

struct bench_slot {
    uv_write_t write_req; /* the request's write */
    char *req;            /* formatted request, capacity req_cap */
    size_t req_len;       /* bytes in req */
    uint64_t sent_ns;     /* uv_hrtime() when the write was queued */
    unsigned channel;     /* the channel appended to */
    bool writing;         /* write not yet completed */
    bool waiting;         /* answer not yet received */
};

struct bench_conn {
    uv_tcp_t tcp;              /* the connection */
    uv_connect_t connect_req;  /* its connect */
    uv_timer_t retry_timer;    /* reconnect delay */
    struct bench_state *st;    /* owner */
    int index;                 /* connection number, part of every nonce */
    int depth;                 /* requests this connection carries */
    struct bench_slot *slots;  /* depth slots */
    uint64_t next_send;        /* requests sent, ever: slot = n % depth */
    uint64_t next_answer;      /* answers received, ever */
    http_parser parser;        /* answer parser */
    int status;                /* status of the answer being parsed */
    char body[BODY_MAX];       /* its body (truncated at BODY_MAX) */
    size_t body_len;           /* bytes in body */
    uint64_t rng;              /* channel choice */
    bool up;                   /* connected and usable */
    bool idle;                 /* open loop: on the idle stack */
    bool ever_up;              /* was connected once (counts toward the start) */
    bool tcp_open;             /* tcp initialised and not yet closed */
    bool peer_closes;          /* the last answer said Connection: close */
    struct bench_tls *tls;     /* https: the session; NULL: plaintext */
    char read_buf[65536];      /* libuv reads land here */
};

struct bench_state {
    const struct bench_config *cfg;
    struct bench_result *res;
    uv_loop_t loop;
    uv_timer_t phase_timer;    /* connect wait, then window, then drain */
    struct bench_conn *conns;  /* cfg->connections entries */
    char *payload;             /* payload_bytes of [a-z0-9], JSON-safe */
    uint64_t run_key;          /* random: seeds --random-nonces, so reruns never
                                  reuse one */
    uint64_t nonce_seq;        /* makes random nonces unique inside the run */
    int connected;             /* connections that have been up */
    bool measuring;            /* inside the window */
    bool stopping;             /* window over: send nothing more */
    bool finished;             /* every handle is being closed */
    char last_error[128];      /* last connection error, for a fatal report */
    uint64_t start_ns;         /* window start */
    uint64_t end_ns;           /* window end */
    uint64_t outstanding;      /* requests awaiting answers, all connections */
    size_t req_cap;            /* capacity of each slot's request buffer */
    struct bench_pace pace;    /* open loop: the schedule */
    bool pacing;               /* open loop, pace set up (close it at the end) */
    int *idle;                 /* open loop: connections waiting for a due send */
    int n_idle;                /* entries used in idle */
};

static void conn_connect(struct bench_conn *cn);
static void conn_fail(struct bench_conn *cn, const char *kind);
static void maybe_finish(struct bench_state *st);

/* A bijection of 64 bits that looks random (splitmix64's finalizer). */
static uint64_t splitmix64(uint64_t z)
{
    z = (z + 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 31)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 29);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ----------------------------------------------------------- requests */

static void on_write(uv_write_t *req, int status);

static int conn_target_index(const struct bench_config *cfg, int conn)
{
    if (cfg->channel_target != NULL) {
        return cfg->channel_target[conn % cfg->channels];
    }
    return conn % cfg->n_targets;
}

static const struct bench_target *conn_target(const struct bench_conn *cn)
{
    const struct bench_config *cfg = cn->st->cfg;
    return &cfg->targets[conn_target_index(cfg, cn->index)];
}

/* A channel for the connection's next append: any, or with a leader-aware
 * map one its server leads (drawn until one is: the connection's own channel,
 * index mod channels, always is, so this ends; about n_targets draws). */
static unsigned pick_channel(const struct bench_config *cfg, struct bench_conn *cn)
{
    for (;;) {
        unsigned channel = (unsigned)(xorshift(&cn->rng) % (uint64_t)cfg->channels);
        if (cfg->channel_target == NULL ||
            cfg->channel_target[channel] == conn_target_index(cfg, cn->index)) {
            return channel;
        }
    }
}

/*
 * The next nonce: libherald's, time-ordered (herald_nonce_generate), unless
 * --random-nonces asks for 128 bits that look random, as a client using
 * UUIDv4 would send (README: "Nonces"). 0, or -1 if none could be made.
 */
static int format_nonce(struct bench_state *st, char *out, size_t size)
{
    if (!st->cfg->random_nonces) {
        return herald_nonce_generate(out, size) == 0 ? 0 : -1;
    }
    uint64_t n = st->nonce_seq++;
    uint64_t a = splitmix64(st->run_key ^ n), b = splitmix64(a ^ n);
    snprintf(out, size, "%016" PRIx64 "%016" PRIx64, a, b);
    return 0;
}

static int format_request(struct bench_state *st, struct bench_conn *cn, struct bench_slot *s)
{
    const struct bench_config *cfg = st->cfg;
    const struct bench_target *tg = conn_target(cn);
    unsigned channel = pick_channel(cfg, cn);
    s->channel = channel;
    char body_head[128], nonce[HERALD_NONCE_HEX_LEN + 1];
    if (format_nonce(st, nonce, sizeof nonce) != 0) return -1;
    int head_len = snprintf(body_head, sizeof body_head,
                            "{\"nonce\":\"%s\",\"payload\":\"", nonce);
    size_t body_len = (size_t)head_len + cfg->payload_bytes + 2;
    int n = snprintf(s->req, st->req_cap,
                     "POST %s/v1/channels/bench-%u/messages HTTP/1.1\r\nHost: %s\r\n"
                     "%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     tg->base_path, channel, tg->host_header,
                     cfg->token ? "Authorization: Bearer " : "", cfg->token ? cfg->token : "",
                     cfg->token ? "\r\n" : "", body_len, body_head);
    if (n < 0 || (size_t)n + cfg->payload_bytes + 2 >= st->req_cap) return -1;
    memcpy(s->req + n, st->payload, cfg->payload_bytes);
    if (cfg->stamp_payload) { /* the fan-out's subscribers measure from it */
        char stamp[17];
        snprintf(stamp, sizeof stamp, "%016" PRIx64, uv_hrtime());
        memcpy(s->req + n, stamp, 16);
    }
    memcpy(s->req + (size_t)n + cfg->payload_bytes, "\"}", 2);
    s->req_len = (size_t)n + cfg->payload_bytes + 2;
    return 0;
}

/* Open loop: cn waits for the next due send. */
static void conn_idle(struct bench_conn *cn, uint64_t now)
{
    struct bench_state *st = cn->st;
    if (!cn->idle) {
        cn->idle = true;
        st->idle[st->n_idle++] = cn->index;
    }
    bench_pace_arm(&st->pace, now);
}

/* Sends the next request on cn if the closed loop, or the open loop's
 * schedule, allows one. */
static void conn_send(struct bench_conn *cn)
{
    struct bench_state *st = cn->st;
    while (cn->up && !st->stopping && cn->next_send - cn->next_answer < (uint64_t)cn->depth) {
        struct bench_slot *s = &cn->slots[cn->next_send % (uint64_t)cn->depth];
        if (s->writing || s->waiting) return; /* its previous write is still queued */
        uint64_t now = uv_hrtime(), due = now;
        if (st->pacing && !bench_pace_take(&st->pace, now, &due)) {
            conn_idle(cn, now);
            return;
        }
        if (format_request(st, cn, s) != 0) {
            conn_fail(cn, "format");
            return;
        }
        uv_buf_t buf = uv_buf_init(s->req, (unsigned)s->req_len);
        s->write_req.data = cn;
        s->sent_ns = due;
        int rv = cn->tls != NULL
                     ? bench_tls_write(cn->tls, s->req, s->req_len, &s->write_req, on_write)
                     : uv_write(&s->write_req, (uv_stream_t *)&cn->tcp, &buf, 1, on_write);
        if (rv != 0) {
            conn_fail(cn, "io");
            return;
        }
        s->writing = true;
        s->waiting = true;
        cn->next_send++;
        st->outstanding++;
        st->res->sent++;
    }
}

/* Open loop: sends are due; the idle connections take them. */
static void on_due(void *arg)
{
    struct bench_state *st = arg;
    uint64_t now = uv_hrtime();
    while (st->n_idle > 0 && bench_pace_due(&st->pace, now)) {
        struct bench_conn *cn = &st->conns[st->idle[--st->n_idle]];
        cn->idle = false;
        conn_send(cn); /* a connection that went down sends when it is back */
    }
    if (st->n_idle > 0) bench_pace_arm(&st->pace, now);
}

static void on_write(uv_write_t *req, int status)
{
    struct bench_conn *cn = req->data;
    struct bench_slot *s = (struct bench_slot *)req; /* write_req is the first member */
    s->writing = false;
    if (status != 0) {
        if (status != UV_ECANCELED) conn_fail(cn, "io");
        return;
    }
    conn_send(cn);
}

/* ------------------------------------------------------------ answers */

static struct bench_conn *conn_of(http_parser *p)
{
    return p->data;
}

static int on_headers_complete(http_parser *p)
{
    struct bench_conn *cn = conn_of(p);
    cn->status = (int)p->status_code;
    cn->body_len = 0;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct bench_conn *cn = conn_of(p);
    size_t room = BODY_MAX - cn->body_len;
    if (len > room) len = room; /* a too-long answer fails verification anyway */
    memcpy(cn->body + cn->body_len, at, len);
    cn->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct bench_conn *cn = conn_of(p);
    struct bench_state *st = cn->st;
    if (cn->next_answer == cn->next_send) return -1; /* an answer nobody asked for */
    struct bench_slot *s = &cn->slots[cn->next_answer % (uint64_t)cn->depth];
    uint64_t now = uv_hrtime();
    s->waiting = false;
    cn->next_answer++;
    st->outstanding--;
    char buf[16];
    const char *kind = bench_check_answer(cn->status, cn->body, cn->body_len, buf, sizeof buf);
    if (kind != NULL) {
        bench_count_failed(st->res, kind);
    } else {
        if (!st->stopping) st->res->acked++;
        st->res->acked_total++;
        if (st->res->channel_acked != NULL) st->res->channel_acked[s->channel]++;
        if (!bench_record_latency(st->res, (now - s->sent_ns) / 1000)) return -1;
    }
    if (!http_should_keep_alive(p)) cn->peer_closes = true;
    return 0;
}

static const http_parser_settings answer_settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct bench_conn *cn = h->data;
    (void)suggested;
    *buf = uv_buf_init(cn->read_buf, sizeof cn->read_buf);
}

/* Answer bytes (decrypted, with https): 0, or -1 once cn failed. */
static int conn_answers(void *arg, const void *data, size_t len)
{
    struct bench_conn *cn = arg;
    size_t used = http_parser_execute(&cn->parser, &answer_settings, data, len);
    if (HTTP_PARSER_ERRNO(&cn->parser) != HPE_OK || used != len) {
        conn_fail(cn, "bad_http");
        return -1;
    }
    return 0;
}

static void conn_up(struct bench_conn *cn);

/* https: ciphertext read. */
static int conn_tls_read(struct bench_conn *cn, const char *data, size_t len)
{
    if (bench_tls_feed(cn->tls, data, len) != 0) {
        if (cn->tcp_open && !uv_is_closing((uv_handle_t *)&cn->tcp)) {
            snprintf(cn->st->last_error, sizeof cn->st->last_error, "TLS: %s",
                     bench_tls_why(cn->tls));
            conn_fail(cn, "tls");
        }
        return -1;
    }
    if (!cn->up && bench_tls_established(cn->tls)) conn_up(cn);
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct bench_conn *cn = stream->data;
    if (nread < 0) {
        conn_fail(cn, "io");
        return;
    }
    if (nread == 0) return; /* EAGAIN; a zero-length execute would mean EOF */
    int rv = cn->tls != NULL ? conn_tls_read(cn, buf->base, (size_t)nread)
                             : conn_answers(cn, buf->base, (size_t)nread);
    if (rv != 0) {
        /* cn failed */
    } else if (cn->peer_closes) {
        conn_fail(cn, "io"); /* pipelined requests behind a close are lost */
    } else {
        conn_send(cn);
    }
    maybe_finish(cn->st);
}

/* -------------------------------------------------------- connections */

static void on_retry_timer(uv_timer_t *t)
{
    conn_connect(t->data);
}

static void on_conn_close(uv_handle_t *h)
{
    struct bench_conn *cn = h->data;
    struct bench_state *st = cn->st;
    cn->tcp_open = false;
    bench_tls_free(cn->tls); /* its writes were cancelled before this */
    cn->tls = NULL;
    if (!st->finished) uv_timer_start(&cn->retry_timer, on_retry_timer, RECONNECT_DELAY_MS, 0);
}

/* Drops cn; its unanswered requests count as `kind` errors. */
static void conn_fail(struct bench_conn *cn, const char *kind)
{
    struct bench_state *st = cn->st;
    if (!cn->tcp_open || uv_is_closing((uv_handle_t *)&cn->tcp)) return;
    for (; cn->next_answer < cn->next_send; cn->next_answer++) {
        cn->slots[cn->next_answer % (uint64_t)cn->depth].waiting = false;
        st->outstanding--;
        bench_count_failed(st->res, kind);
    }
    cn->up = false;
    cn->peer_closes = false;
    uv_close((uv_handle_t *)&cn->tcp, on_conn_close);
}

static void start_window(struct bench_state *st);

static void on_connect(uv_connect_t *req, int status)
{
    struct bench_conn *cn = req->data;
    struct bench_state *st = cn->st;
    if (status == UV_ECANCELED) return;
    if (status != 0) {
        snprintf(st->last_error, sizeof st->last_error, "connect: %s", uv_strerror(status));
        bench_count_error(st->res, "connect");
        conn_fail(cn, "connect");
        return;
    }
    uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
    const struct bench_target *tg = conn_target(cn);
    if (tg->tls) { /* up once the handshake is done */
        if (bench_tls_open(&cn->tls, st->cfg->tls, tg->host, (uv_stream_t *)&cn->tcp,
                           conn_answers, cn) != 0) {
            snprintf(st->last_error, sizeof st->last_error, "TLS: %s", bench_tls_why(cn->tls));
            conn_fail(cn, "tls");
        }
        return;
    }
    conn_up(cn);
}

/* Connected (and, with https, the handshake done): requests may go. */
static void conn_up(struct bench_conn *cn)
{
    struct bench_state *st = cn->st;
    cn->up = true;
    if (!cn->ever_up) {
        cn->ever_up = true;
        if (++st->connected == st->cfg->connections) start_window(st);
    } else {
        conn_send(cn);
    }
}

static void conn_connect(struct bench_conn *cn)
{
    struct bench_state *st = cn->st;
    if (st->finished) return;
    uv_tcp_init(&st->loop, &cn->tcp);
    cn->tcp.data = cn;
    cn->tcp_open = true;
    uv_tcp_nodelay(&cn->tcp, 1);
    http_parser_init(&cn->parser, HTTP_RESPONSE);
    cn->parser.data = cn;
    cn->connect_req.data = cn;
    int rv = uv_tcp_connect(&cn->connect_req, &cn->tcp,
                            (const struct sockaddr *)&conn_target(cn)->addr, on_connect);
    if (rv != 0) {
        snprintf(st->last_error, sizeof st->last_error, "connect: %s", uv_strerror(rv));
        bench_count_error(st->res, "connect");
        conn_fail(cn, "connect");
    }
}

/* ------------------------------------------------------------- phases */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* Closes every handle; uv_run() returns once they are all closed. */
static void finish_all(struct bench_state *st)
{
    if (st->finished) return;
    st->finished = true;
    st->stopping = true;
    for (int i = 0; i < st->cfg->connections; i++) {
        struct bench_conn *cn = &st->conns[i];
        conn_fail(cn, "timeout"); /* no-op unless still open */
        uv_close((uv_handle_t *)&cn->retry_timer, on_handle_closed);
    }
    uv_close((uv_handle_t *)&st->phase_timer, on_handle_closed);
    if (st->pacing) {
        st->pacing = false;
        bench_pace_close(&st->pace);
    }
}

static void maybe_finish(struct bench_state *st)
{
    if (st->stopping && st->outstanding == 0) finish_all(st);
}

static void on_phase_timer(uv_timer_t *t)
{
    struct bench_state *st = t->data;
    if (!st->measuring && !st->stopping) { /* connect phase ran out */
        snprintf(st->res->fatal, sizeof st->res->fatal,
                 "only %d of %d connections came up within %d ms (%s)", st->connected,
                 st->cfg->connections, CONNECT_WAIT_MS,
                 st->last_error[0] ? st->last_error : "no error seen");
        finish_all(st);
    } else if (st->measuring) { /* window over: drain */
        st->measuring = false;
        st->stopping = true;
        st->end_ns = uv_hrtime();
        if (st->pacing) {
            bench_pace_stop(&st->pace);
            st->res->late = st->pace.late;
        }
        if (st->cfg->on_window != NULL) st->cfg->on_window(st->cfg->window_arg, false);
        uv_timer_start(&st->phase_timer, on_phase_timer, DRAIN_WAIT_MS, 0);
        maybe_finish(st);
    } else { /* drain ran out: what is left counts as timeouts */
        finish_all(st);
    }
}

static void start_window(struct bench_state *st)
{
    st->measuring = true;
    if (st->cfg->on_window != NULL) st->cfg->on_window(st->cfg->window_arg, true);
    uv_update_time(&st->loop); /* the hook may have taken a while */
    st->start_ns = uv_hrtime();
    uint64_t window_ms = (uint64_t)(st->cfg->duration_s * 1000);
    if (st->pacing) {
        bench_pace_start(&st->pace, st->start_ns);
        window_ms += 2; /* libuv's timers may fire up to 1 ms early: keep the last sends */
    }
    uv_timer_start(&st->phase_timer, on_phase_timer, window_ms, 0);
    for (int i = 0; i < st->cfg->connections; i++) conn_send(&st->conns[i]);
}

static int state_init(struct bench_state *st, const struct bench_config *cfg,
                      struct bench_result *res)
{
    memset(st, 0, sizeof *st);
    st->cfg = cfg;
    st->res = res;
    st->req_cap = 1024 + cfg->payload_bytes + (cfg->token ? strlen(cfg->token) : 0);
    uint64_t rng = cfg->seed * 0x9E3779B97F4A7C15ULL + 1;
    st->payload = malloc(cfg->payload_bytes + 1);
    st->conns = calloc((size_t)cfg->connections, sizeof *st->conns);
    st->idle = calloc((size_t)cfg->connections, sizeof *st->idle);
    if (st->payload == NULL || st->conns == NULL || st->idle == NULL) return -1;
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < cfg->payload_bytes; i++) st->payload[i] = alnum[xorshift(&rng) % 36];
    /* Random nonces must differ from every earlier run's, whatever the seed. */
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) id = uv_hrtime();
    st->run_key = id;
    for (int i = 0; i < cfg->connections; i++) {
        struct bench_conn *cn = &st->conns[i];
        cn->st = st;
        cn->index = i;
        cn->depth = cfg->in_flight / cfg->connections + (i < cfg->in_flight % cfg->connections);
        cn->rng = cfg->seed * 0xD1B54A32D192ED03ULL + (uint64_t)i * 2 + 1;
        cn->slots = calloc((size_t)cn->depth, sizeof *cn->slots);
        if (cn->slots == NULL) return -1;
        for (int k = 0; k < cn->depth; k++) {
            cn->slots[k].req = malloc(st->req_cap);
            if (cn->slots[k].req == NULL) return -1;
        }
    }
    return 0;
}

static void state_free(struct bench_state *st)
{
    for (int i = 0; st->conns != NULL && i < st->cfg->connections; i++) {
        for (int k = 0; st->conns[i].slots != NULL && k < st->conns[i].depth; k++) {
            free(st->conns[i].slots[k].req);
        }
        free(st->conns[i].slots);
    }
    free(st->conns);
    free(st->idle);
    free(st->payload);
}

int bench_run(const struct bench_config *cfg, struct bench_result *res)
{
    memset(res, 0, sizeof *res);
    struct bench_state *st = malloc(sizeof *st); /* large: keep it off the stack */
    if (cfg->count_channels) {
        res->channel_acked = calloc((size_t)cfg->channels, sizeof *res->channel_acked);
    }
    if (st == NULL || state_init(st, cfg, res) != 0 ||
        (cfg->count_channels && res->channel_acked == NULL) || uv_loop_init(&st->loop) != 0) {
        snprintf(res->fatal, sizeof res->fatal, "out of memory");
        if (st != NULL) state_free(st);
        free(st);
        return -1;
    }
    uv_timer_init(&st->loop, &st->phase_timer);
    st->phase_timer.data = st;
    uv_timer_start(&st->phase_timer, on_phase_timer, CONNECT_WAIT_MS, 0);
    for (int i = 0; i < cfg->connections; i++) {
        uv_timer_init(&st->loop, &st->conns[i].retry_timer);
        st->conns[i].retry_timer.data = &st->conns[i];
    }
    if (cfg->rate > 0) {
        int rv = bench_pace_init(&st->pace, &st->loop, cfg->rate, cfg->duration_s, on_due, st);
        st->pacing = rv == 0;
        res->scheduled = st->pace.total;
        if (rv != 0) {
            snprintf(res->fatal, sizeof res->fatal, "timerfd: %s", uv_strerror(rv));
            finish_all(st);
        }
    }
    for (int i = 0; i < cfg->connections; i++) conn_connect(&st->conns[i]);
    uv_run(&st->loop, UV_RUN_DEFAULT);
    uv_loop_close(&st->loop);
    if (st->start_ns != 0) {
        uint64_t end = st->end_ns != 0 ? st->end_ns : uv_hrtime();
        res->elapsed_s = (double)(end - st->start_ns) / 1e9;
    }
    state_free(st);
    free(st);
    return res->fatal[0] ? -1 : 0;
}
