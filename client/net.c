/* SPDX-License-Identifier: Apache-2.0 */
/* libherald transport: blocking keep-alive HTTP exchanges with deadlines. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"
#include "hd_error.h"

int64_t herald__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void herald__disconnect(struct herald_client *c)
{
    herald__tls_close(c->tls_conn);
    c->tls_conn = NULL;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* Waits until fd is ready for `events` or deadline_ms passes. 0, or
 * HD_EUNKNOWN on timeout (the caller decides what a timeout means). */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        /* Poll at least once even when the deadline has passed, so an
         * event that is already there (a refused connect) is reported as
         * what it is rather than as a timeout. */
        int64_t left = deadline_ms - herald__now_ms();
        if (left < 0) left = 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return hd_from_errno(errno);
        if (n == 0 && left == 0) return HD_EUNKNOWN;
    }
}

/* Non-blocking connect to one address, bounded by deadline_ms. Returns 0 or
 * a positive errno value (ETIMEDOUT on timeout), kept for the message. */
static int connect_addr(const struct addrinfo *ai, int64_t deadline_ms, int *fd_out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) return errno;
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err != EINPROGRESS) goto err_close;
        err = wait_fd(fd, POLLOUT, deadline_ms) == 0 ? 0 : ETIMEDOUT;
        if (err != 0) goto err_close;
        socklen_t elen = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) goto err_close;
    }
    int one = 1; /* requests are small and latency-bound */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fd_out = fd;
    return 0;
err_close:
    close(fd);
    return err;
}

/* https: the TLS handshake on the new connection, within deadline_ms. A
 * refused certificate (or a server that does not speak TLS) is final:
 * HD_ECORRUPT, not retried; a timeout or a lost connection is not. */
static int tls_handshake(struct herald_client *c, int64_t deadline_ms)
{
    int rv = herald__tls_ctx(&c->tls_ctx, c->ca_file, c->errmsg, sizeof c->errmsg);
    if (rv == 0) rv = herald__tls_open(&c->tls_conn, c->tls_ctx, c->host, c->fd, c->errmsg,
                                       sizeof c->errmsg);
    while (rv == 0 && !herald__tls_established(c->tls_conn)) {
        int f = herald__tls_flush(c->tls_conn);
        char none;
        ssize_t n = f == 0 ? herald__tls_recv(c->tls_conn, &none, 0) : -1;
        if (n == 0 && c->tls_conn->eof) {
            rv = herald__fail(c, HD_ECORRUPT,
                              "TLS with %s:%s: the server closed the connection during the "
                              "handshake (does it serve https?)", c->host, c->port);
        } else if (f < 0 || (n < 0 && errno != EAGAIN)) {
            bool proto = errno == EPROTO;
            rv = herald__fail(c, proto ? HD_ECORRUPT : HD_EIO, "TLS with %s:%s: %s", c->host,
                              c->port, proto ? herald__tls_why(c->tls_conn) : strerror(errno));
        } else if (!herald__tls_established(c->tls_conn) &&
                   wait_fd(c->fd, f == 1 ? POLLOUT : POLLIN, deadline_ms) != 0) {
            rv = herald__fail(c, HD_EUNAVAIL, "TLS with %s:%s: handshake timed out", c->host,
                              c->port);
        }
    }
    if (rv != 0) herald__disconnect(c);
    return rv;
}

static int client_connect(struct herald_client *c, int64_t deadline_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int grv = getaddrinfo(c->host, c->port, &hints, &res);
    if (grv != 0) {
        return herald__fail(c, HD_EUNAVAIL, "resolve %s: %s", c->host, gai_strerror(grv));
    }
    int64_t conn_deadline = herald__now_ms() + c->connect_timeout_ms;
    if (conn_deadline > deadline_ms) conn_deadline = deadline_ms;
    int err = EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        err = connect_addr(ai, conn_deadline, &c->fd);
        if (err == 0) break;
    }
    freeaddrinfo(res);
    if (err != 0) {
        return herald__fail(c, HD_EUNAVAIL, "connect %s:%s: %s", c->host, c->port,
                            strerror(err));
    }
    return c->tls ? tls_handshake(c, deadline_ms) : 0;
}

/* https: encrypts it all, then waits until the socket took every byte. */
static int tls_send_all(struct herald__tls *t, const char *p, size_t len, int64_t deadline_ms)
{
    if (herald__tls_send(t, p, len) < 0) return HD_EIO;
    for (;;) {
        int f = herald__tls_flush(t);
        if (f <= 0) return f == 0 ? 0 : HD_EIO;
        int rv = wait_fd(t->fd, POLLOUT, deadline_ms);
        if (rv != 0) return rv;
    }
}

static int send_all(struct herald_client *c, const char *p, size_t len, int64_t deadline_ms)
{
    if (c->tls_conn != NULL) return tls_send_all(c->tls_conn, p, len, deadline_ms);
    int fd = c->fd;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n >= 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return HD_EIO;
        int rv = wait_fd(fd, POLLOUT, deadline_ms);
        if (rv != 0) return rv;
    }
    return 0;
}

/* Reads into r until a whole response is parsed. *got_bytes tells a stale
 * keep-alive connection (closed before any answer) from a real failure. */
static int recv_response(struct herald_client *c, struct herald__resp *r, int64_t deadline_ms,
                         bool *got_bytes)
{
    char buf[16384];
    int fd = c->fd;
    while (!r->done) {
        ssize_t n = c->tls_conn != NULL ? herald__tls_recv(c->tls_conn, buf, sizeof buf)
                                        : recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) return HD_EIO;
            int rv = wait_fd(fd, POLLIN, deadline_ms);
            if (rv != 0) return rv;
            continue;
        }
        if (n > 0) *got_bytes = true;
        /* Streams (tails) only time out when silent for too long. */
        if (n > 0 && r->idle_timeout_ms > 0) {
            deadline_ms = herald__now_ms() + r->idle_timeout_ms;
        }
        long used = herald__resp_feed(r, buf, (size_t)n);
        if (used < 0) return used == HD_ECORRUPT && n == 0 ? HD_EIO : (int)used;
        /* Bytes after the response (none are expected) make the stream
         * unusable for the next exchange. */
        if (r->done && used < n) r->keep_alive = false;
        if (n == 0 && !r->done) return HD_EIO;
    }
    return 0;
}

int herald__auth_header(struct herald__buf *b, const char *token)
{
    if (token == NULL) return 0;
    for (const char *p = token; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~') return HD_EINVAL;
    }
    return herald__buf_printf(b, "Authorization: Bearer %s\r\n", token);
}

static int build_request(struct herald_client *c, struct herald__buf *req, const char *method,
                         const char *target, const char *extra_headers, size_t body_len)
{
    int rv = herald__buf_printf(req,
                                "%s %s%s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: herald/0.1\r\n"
                                "%s",
                                method, c->base_path, target, c->host, c->port,
                                extra_headers ? extra_headers : "");
    if (rv == 0) rv = herald__auth_header(req, c->token);
    if (rv == 0 && body_len > 0) {
        rv = herald__buf_printf(req, "Content-Length: %zu\r\n", body_len);
    }
    if (rv == 0) rv = herald__buf_append(req, "\r\n", 2);
    return rv;
}

static int exchange_once(struct herald_client *c, const struct herald__buf *req,
                         const char *body, size_t body_len, int64_t deadline_ms,
                         struct herald__resp *r, bool *got_bytes)
{
    int rv = send_all(c, req->data, req->len, deadline_ms);
    if (rv == 0 && body_len > 0) rv = send_all(c, body, body_len, deadline_ms);
    if (rv == 0) rv = recv_response(c, r, deadline_ms, got_bytes);
    return rv;
}

int herald__exchange(struct herald_client *c, const char *method, const char *target,
                     const char *extra_headers, const char *body, size_t body_len,
                     int64_t deadline_ms, struct herald__resp *r, bool *sent)
{
    struct herald__buf req = {0};
    int rv = build_request(c, &req, method, target, extra_headers, body_len);
    if (rv != 0) goto out;
    *sent = false;
    c->http_status = 0;
    for (int pass = 0; pass < 2; pass++) {
        bool reused = c->fd >= 0;
        if (!reused && (rv = client_connect(c, deadline_ms)) != 0) goto out; /* errmsg set */
        bool got_bytes = false;
        *sent = true;
        rv = exchange_once(c, &req, body, body_len, deadline_ms, r, &got_bytes);
        if (rv == 0) break;
        herald__disconnect(c);
        /* A reused connection the server had already closed fails without
         * a byte of answer; that is routine, so retry at once on a new one. */
        if (!(reused && !got_bytes && rv == HD_EIO)) break;
        int idle_timeout_ms = r->idle_timeout_ms;
        herald__resp_close(r);
        herald__resp_init(r, r->body_cb, r->body_arg);
        r->idle_timeout_ms = idle_timeout_ms;
    }
    if (rv == HD_EUNKNOWN) {
        herald__fail(c, rv, "%s %s: timed out", method, target);
    } else if (rv != 0) {
        herald__fail(c, rv, "%s %s: %s", method, target, hd_strerror(rv));
    } else {
        c->http_status = r->status;
        if (!r->keep_alive) herald__disconnect(c);
    }
out:
    herald__buf_free(&req);
    return rv;
}

static uint64_t rng_next(struct herald_client *c)
{
    /* xorshift64*: jitter only needs to decorrelate clients. */
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 2685821657736338717ULL;
}

int64_t herald__backoff_delay(const struct herald_client *c, int doublings)
{
    int64_t delay = c->backoff_initial_ms;
    for (int i = 0; i < doublings && delay < c->backoff_max_ms; i++) delay *= 2;
    return delay > c->backoff_max_ms ? c->backoff_max_ms : delay;
}

bool herald__backoff(struct herald_client *c, int attempt, int retry_after_s,
                     int64_t deadline_ms)
{
    int64_t delay = herald__backoff_delay(c, attempt - 1);
    /* "Equal jitter": half fixed, half random, so retries never bunch up
     * yet still back off. */
    if (delay > 1) delay = delay / 2 + (int64_t)(rng_next(c) % (uint64_t)(delay / 2 + 1));
    if (retry_after_s > 0 && delay < (int64_t)retry_after_s * 1000) {
        delay = (int64_t)retry_after_s * 1000;
    }
    int64_t now = herald__now_ms();
    if (now >= deadline_ms) return false;
    if (now + delay >= deadline_ms) delay = deadline_ms - now - 1;
    struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (delay % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return herald__now_ms() < deadline_ms;
}

bool herald__status_retryable(int status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

int herald__http_error(struct herald_client *c, const struct herald__resp *r, const char *what)
{
    int rv;
    switch (r->status) {
    case 400: rv = HD_EINVAL; break;
    case 404: rv = HD_ENOTFOUND; break;
    case 409: rv = HD_EEXIST; break;
    case 413: rv = HD_ETOOBIG; break;
    case 503: rv = HD_EUNAVAIL; break;
    default: rv = r->status >= 500 ? HD_EUNAVAIL : HD_EINVAL; break;
    }
    const char *code = "";
    const char *message = "";
    json_t *root = r->body.len > 0 ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
    json_t *err = json_object_get(root, "error");
    if (json_is_string(json_object_get(err, "code"))) {
        code = json_string_value(json_object_get(err, "code"));
    }
    if (json_is_string(json_object_get(err, "message"))) {
        message = json_string_value(json_object_get(err, "message"));
    }
    if (err == NULL && r->body.len > 0) message = r->body.data; /* not JSON: show it */
    herald__fail(c, rv, "%s: HTTP %d%s%s%s%.200s", what, r->status, *code ? " " : "", code,
                 *message ? ": " : "", message);
    json_decref(root);
    return rv;
}
