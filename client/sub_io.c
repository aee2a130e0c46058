/* SPDX-License-Identifier: Apache-2.0 */
/* libherald subscriptions: the connection. A non-blocking state machine
 * (connect, handshake, WebSocket frames through wslay) that an event loop
 * drives with herald_sub_process(); herald_sub_run() drives it with poll(). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "sub_internal.h"

void herald__sub_reset_conn(struct herald_sub *s)
{
    if (s->ws != NULL) wslay_event_context_free(s->ws);
    s->ws = NULL;
    herald__tls_close(s->tls);
    s->tls = NULL;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    herald__buf_reset(&s->io);
    herald__buf_reset(&s->rest);
    s->io_off = s->rest_off = 0;
    s->ping_out = false;
    s->lost = 0;
    /* Frames held after a stop never moved a channel's position, so they
     * come again after the resume: drop them rather than deliver twice. */
    while (s->held_head != NULL) {
        struct herald__held *h = s->held_head;
        s->held_head = h->next;
        hd_free(h);
    }
    s->held_tail = &s->held_head;
    if (s->state != HERALD__S_FAILED) s->state = HERALD__S_IDLE;
}

/* The connection is gone (rv says why, errmsg was set): tell the user. */
static int conn_lost(struct herald_sub *s, int rv)
{
    herald__sub_reset_conn(s);
    if (s->down_since_ms == 0) s->down_since_ms = herald__now_ms();
    struct herald_sub_event ev = {.type = HERALD_SUB_DISCONNECTED, .rv = rv,
                                  .message = s->errmsg};
    herald__sub_event(s, &ev);
    return 1;
}

/* A permanent error: the subscription cannot go on. */
static int sub_failed(struct herald_sub *s, int rv)
{
    herald__sub_reset_conn(s);
    s->state = HERALD__S_FAILED;
    s->err = rv;
    return rv;
}

/* ------------------------------------------------------------ connect */

static int resolve(struct herald_sub *s)
{
    if (s->addr_len > 0) return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int grv = getaddrinfo(s->cfg.host, s->cfg.port, &hints, &res);
    if (grv != 0) {
        return herald__sub_fail(s, HD_EUNAVAIL, "resolve %s: %s", s->cfg.host,
                                gai_strerror(grv));
    }
    /* The first address only: a subscription reconnects often, and bench
     * runs open thousands, so the lookup is done once. */
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int herald__sub_attach(struct herald_sub *s, int fd)
{
    s->fd = fd;
    s->state = HERALD__S_HANDSHAKE;
    herald__buf_reset(&s->io);
    s->io_off = 0;
    s->req_sent = false;
    int rv = herald__ws_key(s->key, sizeof s->key);
    if (rv == 0) {
        rv = herald__ws_request(&s->io, s->cfg.host, s->cfg.port, s->cfg.base_path, s->key,
                                s->cfg.token);
    }
    return rv;
}

int herald_sub_connect(struct herald_sub *s)
{
    if (s->state == HERALD__S_FAILED) return s->err;
    herald__sub_reset_conn(s);
    s->stopped = false;
    s->deadline_ms = herald__now_ms() + s->cfg.connect_timeout_ms + s->cfg.request_timeout_ms;
    if (s->connector != NULL) return s->connector(s, s->connector_arg);
    int rv = resolve(s);
    if (rv != 0) return rv;
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return herald__sub_fail(s, HD_EUNAVAIL, "socket: %s", strerror(errno));
    int one = 1; /* frames are small and latency-bound */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&s->addr, s->addr_len) != 0 && errno != EINPROGRESS) {
        herald__sub_fail(s, HD_EUNAVAIL, "connect %s:%s: %s", s->cfg.host, s->cfg.port,
                         strerror(errno));
        close(fd);
        return HD_EUNAVAIL;
    }
    rv = herald__sub_attach(s, fd);
    s->state = HERALD__S_CONNECTING; /* the request goes once connected */
    return rv;
}

int herald_sub_fd(const struct herald_sub *s)
{
    return s->fd;
}

int herald_sub_want(const struct herald_sub *s)
{
    switch (s->state) {
    case HERALD__S_CONNECTING: return HERALD_SUB_WANT_WRITE;
    case HERALD__S_HANDSHAKE:
        if (s->tls != NULL && herald__tls_want_write(s->tls)) return HERALD_SUB_WANT_WRITE;
        if (s->cfg.tls && (s->tls == NULL || !herald__tls_established(s->tls))) {
            return s->tls == NULL ? HERALD_SUB_WANT_WRITE : HERALD_SUB_WANT_READ;
        }
        return s->req_sent ? HERALD_SUB_WANT_READ : HERALD_SUB_WANT_WRITE;
    case HERALD__S_OPEN: {
        int w = HERALD_SUB_WANT_READ;
        if (wslay_event_want_write(s->ws) || s->dirty_head != NULL) w |= HERALD_SUB_WANT_WRITE;
        if (s->tls != NULL && herald__tls_want_write(s->tls)) w |= HERALD_SUB_WANT_WRITE;
        return w;
    }
    default: return 0;
    }
}

int herald_sub_timeout_ms(const struct herald_sub *s)
{
    int64_t now = herald__now_ms(), at;
    if (s->held_head != NULL) return 0;
    if (s->state == HERALD__S_CONNECTING || s->state == HERALD__S_HANDSHAKE) {
        at = s->deadline_ms;
    } else if (s->state == HERALD__S_OPEN) {
        int idle = s->cfg.tail_idle_timeout_ms;
        at = s->last_rx_ms + (s->ping_out ? idle : idle / 2);
        if (s->ahead_at_ms != 0 && s->ahead_at_ms < at) at = s->ahead_at_ms;
    } else {
        return -1;
    }
    return at <= now ? 0 : at - now > 3600000 ? 3600000 : (int)(at - now);
}

/* ----------------------------------------------------------- wslay glue */

/* recv(2) and send(2) of the connection, through TLS for wss://. */
static ssize_t sub_recv(struct herald_sub *s, void *buf, size_t len)
{
    return s->tls != NULL ? herald__tls_recv(s->tls, buf, len) : recv(s->fd, buf, len, 0);
}

static ssize_t sub_send(struct herald_sub *s, const void *data, size_t len, int flags)
{
    return s->tls != NULL ? herald__tls_send(s->tls, data, len)
                          : send(s->fd, data, len, MSG_NOSIGNAL | flags);
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct herald_sub *s = user;
    (void)flags;
    if (s->err != 0) { /* a frame was bad: stop reading, fail */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (s->stopped) { /* read nothing more until the next process() */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (s->rest_off < s->rest.len) { /* bytes that came with the handshake answer */
        size_t n = s->rest.len - s->rest_off;
        if (n > len) n = len;
        memcpy(buf, s->rest.data + s->rest_off, n);
        s->rest_off += n;
        return (ssize_t)n;
    }
    ssize_t n;
    do {
        n = sub_recv(s, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        s->last_rx_ms = herald__now_ms();
        s->ping_out = false;
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    } else {
        s->lost = HD_EIO;
        herald__sub_fail(s, HD_EIO, "connection %s", n == 0 ? "closed by the server"
                                                            : strerror(errno));
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct herald_sub *s = user;
    ssize_t n;
    do {
        n = sub_send(s, data, len, flags & WSLAY_MSG_MORE ? MSG_MORE : 0);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    } else {
        s->lost = HD_EIO;
        herald__sub_fail(s, HD_EIO, "send: %s", strerror(errno));
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    /* RFC 6455 wants masks an intermediary cannot predict. */
    if (getrandom(buf, len, 0) != (ssize_t)len) memset(buf, 0x5a, len);
    return 0;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user)
{
    struct herald_sub *s = user;
    (void)ctx;
    /* The request asks for binary frames (ws_handshake.c): wslay checks
     * every byte of a text frame for UTF-8, which was 40% of the CPU per
     * message here. A server that does not know ?frames=binary sends text
     * frames of the same JSON. */
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        herald__sub_on_text(s, (const char *)arg->msg, arg->msg_length);
    }
    /* Pings are answered by wslay; close is seen after the receive. */
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv,
    .send_callback = ws_send,
    .genmask_callback = ws_genmask,
    .on_msg_recv_callback = ws_on_msg,
};

/* ----------------------------------------------------------- handshake */

static int step_connecting(struct herald_sub *s)
{
    struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};
    if (poll(&pfd, 1, 0) <= 0) return 0; /* not yet */
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
        herald__sub_fail(s, HD_EUNAVAIL, "connect %s:%s: %s", s->cfg.host, s->cfg.port,
                         strerror(err));
        return conn_lost(s, HD_EUNAVAIL);
    }
    s->state = HERALD__S_HANDSHAKE;
    return 0;
}

/* The handshake answer's head is complete: check it, start the WebSocket. */
static int handshake_done(struct herald_sub *s, size_t head_len)
{
    int status;
    char why[160];
    int rv = herald__ws_check_answer(s->io.data, head_len, s->key, &status, why, sizeof why);
    if (rv != 0) {
        herald__sub_fail(s, rv, "GET /v1/subscribe: %s", why);
        if (rv == HD_EUNAVAIL) return conn_lost(s, rv); /* 503, 429: try again later */
        return sub_failed(s, rv);
    }
    herald__buf_reset(&s->rest);
    s->rest_off = 0;
    rv = herald__buf_append(&s->rest, s->io.data + head_len, s->io.len - head_len);
    if (rv == 0 && wslay_event_context_client_init(&s->ws, &ws_callbacks, s) != 0) {
        rv = HD_ENOMEM;
    }
    if (rv != 0) return sub_failed(s, herald__sub_fail(s, rv, "out of memory"));
    wslay_event_config_set_max_recv_msg_length(s->ws, s->max_frame);
    s->state = HERALD__S_OPEN;
    s->attempt = 0;
    s->down_since_ms = 0;
    s->last_rx_ms = herald__now_ms();
    struct herald_sub_event ev = {.type = HERALD_SUB_CONNECTED};
    herald__sub_event(s, &ev);
    rv = herald__sub_resume(s);
    if (rv == HD_ENOMEM) return sub_failed(s, herald__sub_fail(s, rv, "out of memory"));
    return 0;
}

/* wss://: the TLS handshake before the upgrade request. 0 (done, or
 * waiting for the socket), else the connection is gone. A refused
 * certificate is final: retrying cannot help. */
static int step_tls(struct herald_sub *s)
{
    int rv = 0;
    if (s->tls == NULL) {
        rv = herald__tls_ctx(&s->cfg.tls_ctx, s->cfg.ca_file, s->errmsg, sizeof s->errmsg);
        if (rv == 0) rv = herald__tls_open(&s->tls, s->cfg.tls_ctx, s->cfg.host, s->fd,
                                           s->errmsg, sizeof s->errmsg);
        if (rv != 0) return sub_failed(s, rv);
    }
    while (!herald__tls_established(s->tls)) {
        int f = herald__tls_flush(s->tls);
        if (f == 1) return 0;
        char none;
        ssize_t n = f == 0 ? herald__tls_recv(s->tls, &none, 0) : -1;
        if (n < 0 && errno == EAGAIN) return 0;
        if (n < 0 && errno == EPROTO) {
            return sub_failed(s, herald__sub_fail(s, HD_ECORRUPT, "TLS with %s:%s: %s",
                                                  s->cfg.host, s->cfg.port,
                                                  herald__tls_why(s->tls)));
        }
        if (n == 0 && s->tls->eof) {
            return sub_failed(s, herald__sub_fail(s, HD_ECORRUPT,
                                                  "TLS with %s:%s: the server closed the "
                                                  "connection during the handshake (does it "
                                                  "serve https?)", s->cfg.host, s->cfg.port));
        }
        if (n < 0 || f < 0) {
            herald__sub_fail(s, HD_EIO, "TLS with %s:%s: %s", s->cfg.host, s->cfg.port,
                             strerror(errno));
            return conn_lost(s, HD_EIO);
        }
    }
    return 0;
}

static int step_handshake(struct herald_sub *s)
{
    if (s->cfg.tls && (s->tls == NULL || !herald__tls_established(s->tls))) {
        int rv = step_tls(s);
        if (rv != 0 || s->tls == NULL || !herald__tls_established(s->tls)) return rv;
    }
    while (!s->req_sent) { /* the request */
        ssize_t n = sub_send(s, s->io.data + s->io_off, s->io.len - s->io_off, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        if (n < 0) {
            herald__sub_fail(s, HD_EIO, "send handshake: %s", strerror(errno));
            return conn_lost(s, HD_EIO);
        }
        s->io_off += (size_t)n;
        if (s->io_off == s->io.len) { /* io now collects the answer */
            s->req_sent = true;
            herald__buf_reset(&s->io);
        }
    }
    for (;;) {
        if (herald__buf_reserve(&s->io, 4096) != 0) {
            return sub_failed(s, herald__sub_fail(s, HD_ENOMEM, "out of memory"));
        }
        ssize_t n = sub_recv(s, s->io.data + s->io.len, 4096);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        if (n <= 0) {
            herald__sub_fail(s, HD_EIO, "handshake: %s",
                             n == 0 ? "connection closed" : strerror(errno));
            return conn_lost(s, HD_EIO);
        }
        s->io.len += (size_t)n;
        s->io.data[s->io.len] = '\0';
        char *end = strstr(s->io.data, "\r\n\r\n");
        if (end != NULL) return handshake_done(s, (size_t)(end + 4 - s->io.data));
        if (s->io.len > HERALD__WS_HEAD_MAX || strlen(s->io.data) != s->io.len) {
            return sub_failed(s, herald__sub_fail(s, HD_ECORRUPT, "bad handshake answer"));
        }
    }
}

/* --------------------------------------------------------------- open */

/* Why wslay stopped reading without a close from the server: the status of
 * the close it queued (1009 too big, 1002 protocol error, 1007 bad UTF-8). */
static int ws_refused(struct herald_sub *s)
{
    uint16_t code = wslay_event_get_status_code_sent(s->ws);
    if (code == WSLAY_CODE_MESSAGE_TOO_BIG) {
        herald__sub_fail(s, HD_ETOOBIG, "server frame over %llu bytes",
                         (unsigned long long)s->max_frame);
        return HD_ETOOBIG;
    }
    herald__sub_fail(s, HD_ECORRUPT, "WebSocket protocol error from the server (close %u)",
                     (unsigned)code);
    return HD_ECORRUPT;
}

static int keepalive(struct herald_sub *s)
{
    int64_t silent = herald__now_ms() - s->last_rx_ms;
    int idle = s->cfg.tail_idle_timeout_ms;
    if (silent >= idle) {
        herald__sub_fail(s, HD_EUNKNOWN, "no byte from the server for %d ms", idle);
        return conn_lost(s, HD_EUNKNOWN);
    }
    if (silent >= idle / 2 && !s->ping_out) { /* any answer proves the link */
        struct wslay_event_msg ping = {.opcode = WSLAY_PING};
        if (wslay_event_queue_msg(s->ws, &ping) == 0) s->ping_out = true;
    }
    return 0;
}

static int step_open(struct herald_sub *s)
{
    if (s->tls != NULL && herald__tls_flush(s->tls) < 0) {
        herald__sub_fail(s, HD_EIO, "send: %s", strerror(errno));
        return conn_lost(s, HD_EIO);
    }
    int wrv = wslay_event_recv(s->ws);
    if (s->err != 0) return sub_failed(s, s->err); /* errmsg set by the frame */
    if (s->lost != 0) return conn_lost(s, s->lost);
    if (wrv != 0) return sub_failed(s, herald__sub_fail(s, HD_ENOMEM, "out of memory"));
    if (s->stopped) return 0;
    bool refused = !wslay_event_get_read_enabled(s->ws) && !wslay_event_get_close_received(s->ws);
    herald__sub_ahead_due(s);
    if (!refused && herald__sub_flush_ops(s) == HD_ENOMEM) {
        return sub_failed(s, herald__sub_fail(s, HD_ENOMEM, "out of memory"));
    }
    if (wslay_event_send(s->ws) != 0 && s->lost == 0) {
        return sub_failed(s, herald__sub_fail(s, HD_ENOMEM, "out of memory"));
    }
    if (s->lost != 0) return conn_lost(s, s->lost);
    if (refused) return sub_failed(s, ws_refused(s));
    if (wslay_event_get_close_received(s->ws)) {
        herald__sub_fail(s, HD_EIO, "the server closed the WebSocket (status %u)",
                         (unsigned)wslay_event_get_status_code_received(s->ws));
        return conn_lost(s, HD_EIO);
    }
    return keepalive(s);
}

/* Frames held after a stop go first, in order. */
static void drain_held(struct herald_sub *s)
{
    while (s->held_head != NULL && !s->stopped && s->err == 0) {
        struct herald__held *h = s->held_head;
        s->held_head = h->next;
        if (s->held_head == NULL) s->held_tail = &s->held_head;
        herald__sub_on_text(s, h->text, h->len);
        hd_free(h);
    }
}

int herald_sub_process(struct herald_sub *s)
{
    if (s->state == HERALD__S_FAILED) return s->err;
    s->stopped = false;
    drain_held(s);
    if (s->err != 0) return sub_failed(s, s->err);
    if (s->stopped) return 0;
    if (s->state == HERALD__S_IDLE) return 1;
    if (s->state != HERALD__S_OPEN && herald__now_ms() >= s->deadline_ms) {
        herald__sub_fail(s, HD_EUNKNOWN, "%s %s:%s timed out",
                         s->state == HERALD__S_CONNECTING ? "connect" : "handshake with",
                         s->cfg.host, s->cfg.port);
        return conn_lost(s, HD_EUNKNOWN);
    }
    int rv = 0;
    if (s->state == HERALD__S_CONNECTING) rv = step_connecting(s);
    if (rv == 0 && s->state == HERALD__S_HANDSHAKE) rv = step_handshake(s);
    if (rv == 0 && s->state == HERALD__S_OPEN) rv = step_open(s);
    return rv;
}

/* ------------------------------------------------------------ blocking */

int herald_sub_backoff_ms(struct herald_sub *s)
{
    int64_t delay = herald__backoff_delay(&s->cfg, s->attempt);
    s->attempt++;
    /* xorshift64: the jitter only needs to spread reconnecting clients. */
    uint64_t x = s->cfg.rng | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->cfg.rng = x;
    return delay > 1 ? (int)(delay / 2 + (int64_t)(x % (uint64_t)(delay / 2 + 1))) : (int)delay;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* No connection: wait the backoff, then start one. 0, 1 (not connected:
 * loop again), or HD_EUNAVAIL when retry_deadline_ms has passed. The time
 * of the next attempt is kept in s, so that runs with short timeouts still
 * get there. */
static int run_reconnect(struct herald_sub *s, int64_t end_ms, bool first)
{
    int64_t now = herald__now_ms();
    if (s->down_since_ms == 0) s->down_since_ms = now;
    if (now - s->down_since_ms >= s->cfg.retry_deadline_ms) {
        char last[sizeof s->errmsg];
        snprintf(last, sizeof last, "%s", s->errmsg);
        return herald__sub_fail(s, HD_EUNAVAIL, "no connection for %d ms: %s",
                                s->cfg.retry_deadline_ms, last);
    }
    if (!first && s->retry_at_ms == 0) s->retry_at_ms = now + herald_sub_backoff_ms(s);
    int64_t until = s->retry_at_ms < end_ms ? s->retry_at_ms : end_ms;
    if (until > now) sleep_ms(until - now);
    if (herald__now_ms() < s->retry_at_ms) return 1;
    s->retry_at_ms = 0;
    return herald_sub_connect(s) == 0 ? 0 : 1;
}

int herald_sub_run(struct herald_sub *s, int timeout_ms)
{
    int64_t end = timeout_ms < 0 ? INT64_MAX : herald__now_ms() + timeout_ms;
    bool first = s->state == HERALD__S_IDLE && s->attempt == 0;
    s->stopped = false;
    while (!s->stopped) {
        if (s->state == HERALD__S_FAILED) return s->err;
        if (s->state == HERALD__S_IDLE) {
            int rv = run_reconnect(s, end, first);
            first = false;
            if (rv < 0) return rv;
        }
        int64_t now = herald__now_ms();
        if (now >= end) return 0;
        if (s->state == HERALD__S_IDLE) continue;
        int wait = herald_sub_timeout_ms(s);
        if (wait < 0 || end - now < wait) wait = end - now > 3600000 ? 3600000 : (int)(end - now);
        int want = herald_sub_want(s);
        struct pollfd pfd = {.fd = s->fd,
                             .events = (short)((want & HERALD_SUB_WANT_READ ? POLLIN : 0) |
                                               (want & HERALD_SUB_WANT_WRITE ? POLLOUT : 0))};
        if (s->held_head == NULL && poll(&pfd, 1, wait) < 0 && errno != EINTR) {
            return herald__sub_fail(s, HD_EIO, "poll: %s", strerror(errno));
        }
        int rv = herald_sub_process(s);
        if (rv < 0) return rv;
    }
    return 0;
}
