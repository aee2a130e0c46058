/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the HTTP server over real loopback sockets, driving the loop from the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_util.h"
#include "http_server.h"

enum mode {
    MODE_SYNC,   /* answer at once with the path */
    MODE_ASYNC,  /* answer from a timer 50 ms later */
    MODE_HOLD,   /* keep the conn; the test answers */
    MODE_STREAM, /* stream three events and keep streaming */
    MODE_BIG,    /* stream 32 MiB at once, then wait for DRAINED */
    MODE_LENT,   /* stream LENT_CHUNKS lent buffers of fx.lent, each released once */
};

#define LENT_CHUNK (64u << 10)
#define LENT_CHUNKS 512u /* 32 MiB: more than loopback socket buffers absorb */

struct fx {
    uv_loop_t loop;
    struct api_http_server *srv;
    int port;
    bool closed;
    enum mode mode;
    int n_requests;
    char paths[16][32];
    bool overlap; /* a request arrived while another was held */
    struct api_http_conn *held;
    char held_path[32];
    uv_timer_t timer;
    bool timer_init;
    int events[8];
    int n_events;
    uint8_t *lent;      /* MODE_LENT: the bytes, unchanged until released */
    unsigned released;  /* MODE_LENT: release callbacks so far */
};

static struct fx fx;

/* ------------------------------------------------------------------ */
/* Server side                                                         */
/* ------------------------------------------------------------------ */

static void answer_held(void)
{
    char body[64];
    int n = snprintf(body, sizeof body, "path=%s", fx.held_path);
    struct api_http_conn *c = fx.held;
    fx.held = NULL;
    api_http_respond(c, 200, "text/plain", "X-Test: 1\r\n", body, (size_t)n);
}

static void on_async_timer(uv_timer_t *t)
{
    (void)t;
    answer_held();
}

static void on_stream_event(struct api_http_conn *c, int event, void *arg)
{
    (void)arg;
    if (fx.n_events < 8) {
        fx.events[fx.n_events++] = event;
    }
    if (event == API_HTTP_STREAM_CLOSED) {
        api_http_stream_end(c);
    }
}

static uint8_t lent_byte(size_t k)
{
    return (uint8_t)(k * 7 + k / 65521);
}

/* Scribbles over the chunk: had it been released before it was written,
 * the client would see the scribble. */
static void on_lent_released(void *arg)
{
    uint8_t *chunk = arg;
    assert_true(chunk >= fx.lent && chunk < fx.lent + LENT_CHUNKS * LENT_CHUNK);
    memset(chunk, 0, LENT_CHUNK);
    fx.released++;
}

static void on_request(struct api_http_conn *c, const struct api_http_request *req, void *arg)
{
    (void)arg;
    if (fx.held != NULL) {
        fx.overlap = true;
    }
    int i = fx.n_requests++ % 16;
    snprintf(fx.paths[i], sizeof fx.paths[i], "%.*s", (int)req->path_len, req->path);
    snprintf(fx.held_path, sizeof fx.held_path, "%.*s", (int)req->path_len, req->path);
    switch (fx.mode) {
    case MODE_SYNC:
        fx.held = c;
        answer_held();
        break;
    case MODE_ASYNC:
        fx.held = c;
        uv_timer_start(&fx.timer, on_async_timer, 50, 0);
        break;
    case MODE_HOLD:
        fx.held = c;
        break;
    case MODE_STREAM:
        assert_int_equal(api_http_stream_begin(c, 200, "text/event-stream",
                                               "Cache-Control: no-cache\r\n", on_stream_event,
                                               NULL),
                         0);
        for (int e = 1; e <= 3; e++) {
            char ev[32];
            int n = snprintf(ev, sizeof ev, "data: %d\n\n", e);
            assert_int_equal(api_http_stream_write(c, ev, (size_t)n), 0);
        }
        fx.held = c;
        break;
    case MODE_BIG: {
        assert_int_equal(api_http_stream_begin(c, 200, "application/octet-stream", NULL,
                                               on_stream_event, NULL),
                         0);
        size_t len = 32u << 20; /* more than loopback socket buffers absorb */
        char *big = hd_malloc(len);
        memset(big, 'x', len);
        assert_int_equal(api_http_stream_write(c, big, len), 0);
        hd_free(big); /* the server must not keep pointing at it */
        assert_true(api_http_stream_queued(c) > 0);
        fx.held = c;
        break;
    }
    case MODE_LENT:
        assert_int_equal(api_http_stream_begin(c, 200, "application/octet-stream", NULL,
                                               on_stream_event, NULL),
                         0);
        for (unsigned i = 0; i < LENT_CHUNKS; i++) {
            /* Two buffers a write, as the fan-out engine gives them. */
            uv_buf_t b[2] = {uv_buf_init((char *)fx.lent + i * LENT_CHUNK, LENT_CHUNK / 2),
                             uv_buf_init((char *)fx.lent + i * LENT_CHUNK + LENT_CHUNK / 2,
                                         LENT_CHUNK / 2)};
            assert_int_equal(api_http_stream_writev_lent(c, b, 2, on_lent_released,
                                                         fx.lent + i * LENT_CHUNK),
                             0);
        }
        fx.held = c;
        break;
    }
}

static void on_server_closed(void *arg)
{
    (void)arg;
    fx.closed = true;
}

static void pump(int ms)
{
    uint64_t end = hd_mono_us() + (uint64_t)ms * 1000;
    while (hd_mono_us() < end) {
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        usleep(500);
    }
}

static bool pump_until(bool (*cond)(void), int ms)
{
    uint64_t end = hd_mono_us() + (uint64_t)ms * 1000;
    while (!cond()) {
        if (hd_mono_us() > end) {
            return false;
        }
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    return true;
}

static void fx_start(const struct api_http_limits *limits, enum mode mode)
{
    memset(&fx, 0, sizeof fx);
    assert_int_equal(uv_loop_init(&fx.loop), 0);
    uv_timer_init(&fx.loop, &fx.timer);
    fx.mode = mode;
    char err[128] = "";
    int rv = api_http_server_init(&fx.srv, &fx.loop, "127.0.0.1:0", limits, on_request, NULL,
                                  err, sizeof err);
    if (rv != 0) {
        fail_msg("server init: %s", err);
    }
    fx.port = api_http_server_port(fx.srv);
    assert_true(fx.port > 0);
}

/* With the writer thread, and fx.lent filled with a pattern. */
static void fx_start_writer(enum mode mode)
{
    fx_start(NULL, mode);
    assert_int_equal(api_http_server_start_writer(fx.srv), 0);
    fx.lent = hd_malloc(LENT_CHUNKS * LENT_CHUNK);
    assert_non_null(fx.lent);
    for (size_t k = 0; k < LENT_CHUNKS * LENT_CHUNK; k++) {
        fx.lent[k] = lent_byte(k);
    }
}

static bool is_closed(void)
{
    return fx.closed;
}

static void fx_stop(void)
{
    if (fx.held != NULL && fx.mode != MODE_STREAM && fx.mode != MODE_BIG && fx.mode != MODE_LENT) {
        answer_held();
    }
    api_http_server_close(fx.srv, on_server_closed, NULL);
    assert_false(fx.closed); /* never from inside the call */
    assert_true(pump_until(is_closed, 5000));
    uv_close((uv_handle_t *)&fx.timer, NULL);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    hd_free(fx.lent);
    fx.lent = NULL;
}

/* ------------------------------------------------------------------ */
/* Client side: plain non-blocking sockets in the same thread          */
/* ------------------------------------------------------------------ */

static int client_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void client_send(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            pump(1);
            continue;
        }
        assert_true(n > 0);
        s += n;
        len -= (size_t)n;
    }
}

struct reply {
    char buf[16384];
    size_t len;
    bool eof;
};

/* Reads until `want` appears `count` times (want NULL: until EOF), or the
 * timeout. Keeps the text NUL-terminated. */
static void client_read(int fd, struct reply *r, const char *want, int count, int ms)
{
    uint64_t end = hd_mono_us() + (uint64_t)ms * 1000;
    for (;;) {
        if (want != NULL) {
            int seen = 0;
            for (const char *p = r->buf; (p = strstr(p, want)) != NULL; p++) {
                seen++;
            }
            if (seen >= count) {
                return;
            }
        }
        if (r->eof || hd_mono_us() > end) {
            return;
        }
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, r->buf + r->len, sizeof r->buf - 1 - r->len, 0);
        if (n > 0) {
            r->len += (size_t)n;
            r->buf[r->len] = '\0';
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            r->eof = true;
        } else {
            usleep(500);
        }
    }
}

static size_t conns(void)
{
    return api_http_server_connections(fx.srv);
}

static bool no_conns(void)
{
    return conns() == 0;
}

static bool one_request(void)
{
    return fx.n_requests >= 1;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void test_roundtrip_keep_alive(void **state)
{
    (void)state;
    fx_start(NULL, MODE_SYNC);
    int fd = client_connect();
    client_send(fd, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    struct reply r = {0};
    client_read(fd, &r, "path=/first", 1, 2000);
    assert_non_null(strstr(r.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r.buf, "Content-Length: 11\r\n"));
    assert_non_null(strstr(r.buf, "Content-Type: text/plain\r\n"));
    assert_non_null(strstr(r.buf, "X-Test: 1\r\n"));
    assert_null(strstr(r.buf, "Connection: close"));
    /* Same connection, second request. */
    client_send(fd, "HEAD /second HTTP/1.1\r\nHost: x\r\n\r\n");
    client_send(fd, "GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    client_read(fd, &r, NULL, 0, 2000);
    assert_true(r.eof);
    assert_int_equal(fx.n_requests, 3);
    /* HEAD: the length of the body, but no body. */
    assert_non_null(strstr(r.buf, "Content-Length: 12\r\n"));
    assert_null(strstr(r.buf, "path=/second"));
    assert_non_null(strstr(r.buf, "Connection: close\r\n"));
    assert_non_null(strstr(r.buf, "path=/third"));
    close(fd);
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

static void test_async_response(void **state)
{
    (void)state;
    fx_start(NULL, MODE_ASYNC);
    int fd = client_connect();
    uint64_t t0 = hd_mono_us();
    client_send(fd, "POST /later HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    struct reply r = {0};
    client_read(fd, &r, "path=/later", 1, 2000);
    assert_non_null(strstr(r.buf, "path=/later"));
    assert_true(hd_mono_us() - t0 >= 45000);
    close(fd);
    fx_stop();
}

static void test_pipelining_order(void **state)
{
    (void)state;
    fx_start(NULL, MODE_ASYNC);
    int fd = client_connect();
    client_send(fd, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"
                    "POST /3 HTTP/1.1\r\nContent-Length: 1\r\n\r\nzGET /4 HTTP/1.1\r\n\r\n");
    struct reply r = {0};
    client_read(fd, &r, "HTTP/1.1 200", 4, 3000);
    assert_int_equal(fx.n_requests, 4);
    assert_false(fx.overlap); /* one request at a time */
    const char *p1 = strstr(r.buf, "path=/1");
    const char *p2 = strstr(r.buf, "path=/2");
    const char *p3 = strstr(r.buf, "path=/3");
    const char *p4 = strstr(r.buf, "path=/4");
    assert_true(p1 != NULL && p2 != NULL && p3 != NULL && p4 != NULL);
    assert_true(p1 < p2 && p2 < p3 && p3 < p4);
    close(fd);
    fx_stop();
}

/* Requests that arrive while an earlier one is in the caller's hands are
 * read and held, then answered in order after it. */
static void test_input_held_while_pending(void **state)
{
    (void)state;
    fx_start(NULL, MODE_ASYNC);
    int fd = client_connect();
    client_send(fd, "GET /a HTTP/1.1\r\n\r\n");
    assert_true(pump_until(one_request, 2000));
    client_send(fd, "GET /b HTTP/1.1\r\n\r\nGET /");
    pump(5);
    client_send(fd, "c HTTP/1.1\r\nConnection: close\r\n\r\n");
    struct reply r = {0};
    client_read(fd, &r, NULL, 0, 3000);
    assert_true(r.eof);
    assert_int_equal(fx.n_requests, 3);
    assert_false(fx.overlap);
    const char *a = strstr(r.buf, "path=/a");
    const char *b = strstr(r.buf, "path=/b");
    const char *c = strstr(r.buf, "path=/c");
    assert_true(a != NULL && b != NULL && c != NULL && a < b && b < c);
    close(fd);
    fx_stop();
}

static void test_client_gone_before_async_response(void **state)
{
    (void)state;
    fx_start(NULL, MODE_HOLD);
    int fd = client_connect();
    client_send(fd, "GET /gone HTTP/1.1\r\n\r\n");
    assert_true(pump_until(one_request, 2000));
    close(fd);
    pump(50);
    assert_int_equal(conns(), 1); /* kept while lent */
    struct api_http_conn *c = fx.held;
    fx.held = NULL;
    int rv = api_http_respond(c, 200, "text/plain", NULL, "late", 4);
    assert_true(rv == 0 || rv == HD_ESHUTDOWN);
    assert_true(pump_until(no_conns, 3000));
    fx_stop();
}

static void test_half_close_still_answered(void **state)
{
    (void)state;
    fx_start(NULL, MODE_ASYNC);
    int fd = client_connect();
    client_send(fd, "GET /half HTTP/1.1\r\n\r\n");
    shutdown(fd, SHUT_WR);
    struct reply r = {0};
    client_read(fd, &r, NULL, 0, 3000);
    assert_true(r.eof);
    assert_non_null(strstr(r.buf, "path=/half"));
    close(fd);
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

static bool got_closed_event(void)
{
    for (int i = 0; i < fx.n_events; i++) {
        if (fx.events[i] == API_HTTP_STREAM_CLOSED) {
            return true;
        }
    }
    return false;
}

static void test_stream_then_client_closes(void **state)
{
    (void)state;
    fx_start(NULL, MODE_STREAM);
    int fd = client_connect();
    client_send(fd, "GET /tail HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n");
    struct reply r = {0};
    client_read(fd, &r, "data: 3\n\n", 1, 2000);
    assert_non_null(strstr(r.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r.buf, "Content-Type: text/event-stream\r\n"));
    assert_non_null(strstr(r.buf, "Connection: close\r\n"));
    assert_null(strstr(r.buf, "Content-Length"));
    assert_non_null(strstr(r.buf, "\r\n\r\ndata: 1\n\ndata: 2\n\ndata: 3\n\n"));
    close(fd);
    assert_true(pump_until(got_closed_event, 2000));
    fx.held = NULL; /* on_stream_event ended it */
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

static bool got_drained_event(void)
{
    return fx.n_events > 0 && fx.events[0] == API_HTTP_STREAM_DRAINED;
}

static void test_stream_backpressure_and_end(void **state)
{
    (void)state;
    fx_start(NULL, MODE_BIG);
    int fd = client_connect();
    client_send(fd, "GET /big HTTP/1.1\r\n\r\n");
    assert_true(pump_until(one_request, 2000));
    assert_int_equal(fx.n_events, 0);
    /* Drain it all: DRAINED must follow. */
    size_t total = 0;
    char buf[65536];
    uint64_t end = hd_mono_us() + 5000000;
    while (!got_drained_event() && hd_mono_us() < end) {
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            total += (size_t)n;
        }
    }
    assert_true(got_drained_event());
    assert_int_equal(api_http_stream_queued(fx.held), 0);
    assert_int_equal(api_http_stream_write(fx.held, "tail", 4), 0);
    api_http_stream_end(fx.held);
    fx.held = NULL;
    struct reply r = {0};
    while (!r.eof && hd_mono_us() < end) {
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            total += (size_t)n;
            if (n >= 4) {
                memcpy(r.buf, buf + n - 4, 4);
            }
        } else if (n == 0) {
            r.eof = true;
        }
    }
    assert_true(r.eof);
    assert_memory_equal(r.buf, "tail", 4);
    assert_true(total > (32u << 20));
    assert_false(got_closed_event()); /* ended by us: no CLOSED */
    close(fd);
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

static bool all_released(void)
{
    return fx.released == LENT_CHUNKS;
}

/* The writer thread writes lent buffers in order, through full socket
 * buffers (EAGAIN), releases each once after it is written, then DRAINED;
 * bytes the server copies (stream_write) and the end follow them. */
static void test_writer_order_drained_end(void **state)
{
    (void)state;
    fx_start_writer(MODE_LENT);
    int fd = client_connect();
    client_send(fd, "GET /lent HTTP/1.1\r\n\r\n");
    assert_true(pump_until(one_request, 2000));
    size_t cap = LENT_CHUNKS * LENT_CHUNK + 4096;
    uint8_t *got = hd_malloc(cap);
    size_t len = 0;
    bool ended = false, eof = false;
    uint64_t end = hd_mono_us() + 20000000;
    while (!eof && hd_mono_us() < end) {
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        if (!ended && got_drained_event()) {
            assert_true(all_released());
            assert_int_equal(api_http_stream_queued(fx.held), 0);
            assert_int_equal(api_http_stream_write(fx.held, "tail", 4), 0);
            api_http_stream_end(fx.held);
            fx.held = NULL;
            ended = true;
        }
        ssize_t n = recv(fd, got + len, cap - len, MSG_DONTWAIT);
        if (n > 0) {
            len += (size_t)n;
        } else if (n == 0) {
            eof = true;
        }
    }
    assert_true(eof);
    const uint8_t *body = memmem(got, len, "\r\n\r\n", 4);
    assert_non_null(body);
    body += 4;
    size_t body_len = len - (size_t)(body - got);
    assert_int_equal(body_len, LENT_CHUNKS * LENT_CHUNK + 4);
    for (size_t k = 0; k < LENT_CHUNKS * LENT_CHUNK; k++) {
        if (body[k] != lent_byte(k)) fail_msg("byte %zu differs", k);
    }
    assert_memory_equal(body + LENT_CHUNKS * LENT_CHUNK, "tail", 4);
    assert_false(got_closed_event());
    hd_free(got);
    close(fd);
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

/* A client that leaves with megabytes queued in the writer: every lent
 * buffer is released, the owner hears CLOSED, the connection goes; and a
 * server closed while another client stops reading still ends. */
static void test_writer_client_gone(void **state)
{
    (void)state;
    fx_start_writer(MODE_LENT);
    int fd = client_connect();
    client_send(fd, "GET /lent HTTP/1.1\r\n\r\n");
    assert_true(pump_until(one_request, 2000));
    pump(50);
    assert_true(fx.released < LENT_CHUNKS); /* the socket is full */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd); /* a reset: the writer's next writev fails */
    assert_true(pump_until(got_closed_event, 5000));
    fx.held = NULL; /* on_stream_event ended it */
    assert_true(pump_until(all_released, 5000));
    assert_true(pump_until(no_conns, 5000));
    /* Stuck behind a client that does not read: the server's close ends it. */
    fx.released = 0;
    fx.n_requests = 0;
    for (size_t k = 0; k < LENT_CHUNKS * LENT_CHUNK; k++) {
        fx.lent[k] = lent_byte(k);
    }
    fd = client_connect();
    client_send(fd, "GET /lent HTTP/1.1\r\n\r\n");
    assert_true(pump_until(one_request, 2000));
    pump(50);
    fx_stop(); /* every handle closed, the writer thread joined */
    assert_int_equal(fx.released, LENT_CHUNKS);
    close(fd);
}

static void test_request_timeout_slowloris(void **state)
{
    (void)state;
    struct api_http_limits lim = {.request_timeout_ms = 200, .idle_timeout_ms = 5000};
    fx_start(&lim, MODE_SYNC);
    int fd = client_connect();
    uint64_t t0 = hd_mono_us();
    const char *drip = "GET /slow HTTP/1.1\r\nHost: x\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    struct reply r = {0};
    for (size_t i = 0; drip[i] != '\0' && !r.eof; i++) {
        char one[2] = {drip[i], '\0'};
        if (send(fd, one, 1, MSG_NOSIGNAL) != 1) {
            break;
        }
        client_read(fd, &r, "HTTP/1.1 408", 1, 20);
    }
    client_read(fd, &r, NULL, 0, 3000);
    assert_true(r.eof);
    assert_non_null(strstr(r.buf, "HTTP/1.1 408 Request Timeout\r\n"));
    assert_non_null(strstr(r.buf, "\"code\":\"request_timeout\""));
    uint64_t took_ms = (hd_mono_us() - t0) / 1000;
    assert_true(took_ms >= 190 && took_ms < 2500);
    assert_int_equal(fx.n_requests, 0);
    close(fd);
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct api_http_limits lim = {.request_timeout_ms = 5000, .idle_timeout_ms = 200};
    fx_start(&lim, MODE_SYNC);
    int fd = client_connect();
    client_send(fd, "GET /once HTTP/1.1\r\n\r\n");
    uint64_t t0 = hd_mono_us();
    struct reply r = {0};
    client_read(fd, &r, NULL, 0, 3000);
    /* Answered, then closed quietly once idle: no 408 for keep-alive. */
    assert_true(r.eof);
    assert_non_null(strstr(r.buf, "path=/once"));
    assert_null(strstr(r.buf, "408"));
    uint64_t took_ms = (hd_mono_us() - t0) / 1000;
    assert_true(took_ms >= 190 && took_ms < 2500);
    close(fd);
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

static bool two_conns(void)
{
    return conns() == 2;
}

static void test_connection_limit(void **state)
{
    (void)state;
    struct api_http_limits lim = {.connections_max = 2};
    fx_start(&lim, MODE_SYNC);
    int a = client_connect();
    int b = client_connect();
    assert_true(pump_until(two_conns, 2000));
    int c = client_connect();
    struct reply r = {0};
    client_read(c, &r, NULL, 0, 3000);
    assert_true(r.eof);
    assert_non_null(strstr(r.buf, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(r.buf, "Retry-After: 1\r\n"));
    assert_non_null(strstr(r.buf, "{\"error\":{\"code\":\"overloaded\""));
    close(c);
    /* The admitted ones still work; freeing a slot admits a new one. */
    client_send(a, "GET /a HTTP/1.1\r\n\r\n");
    struct reply ra = {0};
    client_read(a, &ra, "path=/a", 1, 2000);
    assert_non_null(strstr(ra.buf, "path=/a"));
    close(b);
    assert_true(pump_until(two_conns, 2000) || conns() <= 2);
    pump(50);
    int d = client_connect();
    client_send(d, "GET /d HTTP/1.1\r\n\r\n");
    struct reply rd = {0};
    client_read(d, &rd, "path=/d", 1, 2000);
    assert_non_null(strstr(rd.buf, "path=/d"));
    close(a);
    close(d);
    assert_true(pump_until(no_conns, 3000));
    fx_stop();
}

static void test_protocol_errors(void **state)
{
    (void)state;
    struct api_http_limits lim = {.body_bytes_max = 100, .headers_max = 3};
    fx_start(&lim, MODE_SYNC);

    int fd = client_connect();
    client_send(fd, "BLAH\x01 / HTTP/1.1\r\n\r\n");
    struct reply r = {0};
    client_read(fd, &r, NULL, 0, 3000);
    assert_true(r.eof);
    assert_non_null(strstr(r.buf, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(r.buf, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(r.buf, "Connection: close\r\n"));
    assert_non_null(strstr(r.buf, "{\"error\":{\"code\":\"bad_request\",\"message\":"));
    close(fd);

    /* Over the body limit: 413 before any body, no 100 Continue. */
    fd = client_connect();
    client_send(fd, "POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n");
    struct reply r2 = {0};
    client_read(fd, &r2, NULL, 0, 3000);
    assert_true(r2.eof);
    assert_null(strstr(r2.buf, "100 Continue"));
    assert_non_null(strstr(r2.buf, "HTTP/1.1 413 Payload Too Large\r\n"));
    close(fd);

    fd = client_connect();
    client_send(fd, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    struct reply r3 = {0};
    client_read(fd, &r3, NULL, 0, 3000);
    assert_non_null(strstr(r3.buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    close(fd);

    /* Within the limit, 100-continue is answered and the body then read. */
    fd = client_connect();
    client_send(fd, "POST /ok HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    struct reply r4 = {0};
    client_read(fd, &r4, "HTTP/1.1 100 Continue\r\n\r\n", 1, 2000);
    assert_non_null(strstr(r4.buf, "HTTP/1.1 100 Continue\r\n\r\n"));
    assert_int_equal(fx.n_requests, 0);
    client_send(fd, "hello");
    client_read(fd, &r4, "path=/ok", 1, 2000);
    assert_non_null(strstr(r4.buf, "path=/ok"));
    close(fd);
    assert_true(pump_until(no_conns, 3000));
    fx_stop();
}

/* A head hook that says what it was given: the path and X-Who header of
 * the request (or "none"), and the status. */
static size_t test_hook(const struct api_http_request *req, int status, char *out,
                        size_t out_len, void *arg)
{
    assert_ptr_equal(arg, &fx);
    assert_int_equal(out_len, API_HTTP_HOOK_HEADERS_MAX);
    if (req == NULL) {
        return (size_t)snprintf(out, out_len, "X-Hook: none %d\r\n", status);
    }
    size_t who_len = 0;
    const char *who = api_http_header(req, "X-Who", &who_len);
    assert_int_equal(req->body_len, 0); /* a view never shows a partial body */
    return (size_t)snprintf(out, out_len, "X-Hook: %.*s %.*s %d\r\n", (int)req->path_len,
                            req->path, (int)who_len, who != NULL ? who : "", status);
}

static void expect_reply(const char *request, const char *want)
{
    int fd = client_connect();
    client_send(fd, request);
    struct reply r = {0};
    client_read(fd, &r, want, 1, 3000);
    if (strstr(r.buf, want) == NULL) {
        fail_msg("wanted '%s' in: %s", want, r.buf);
    }
    close(fd);
}

static void test_head_hook(void **state)
{
    (void)state;
    struct api_http_limits lim = {.body_bytes_max = 100};
    fx_start(&lim, MODE_SYNC);
    api_http_server_set_head_hook(fx.srv, test_hook, &fx);
    /* Responses given by the caller. */
    expect_reply("GET /a?q=1 HTTP/1.1\r\nX-Who: me\r\n\r\n", "X-Test: 1\r\nX-Hook: /a me 200\r\n");
    /* Errors the server answers itself: with what arrived, once the
     * headers did (here 413 before the body), else with nothing. */
    expect_reply("POST /up HTTP/1.1\r\nX-Who: big\r\nContent-Length: 101\r\n\r\n",
                 "X-Hook: /up big 413\r\n");
    expect_reply("POST /bad HTTP/1.1\r\nX-Who: chunk\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "zz\r\n",
                 "X-Hook: /bad chunk 400\r\n");
    expect_reply("BLAH\x01 / HTTP/1.1\r\n\r\n", "X-Hook: none 400\r\n");
    assert_true(pump_until(no_conns, 3000));
    fx_stop();
    /* Streams too. */
    fx_start(NULL, MODE_STREAM);
    api_http_server_set_head_hook(fx.srv, test_hook, &fx);
    int fd = client_connect();
    client_send(fd, "GET /tail HTTP/1.1\r\nX-Who: reader\r\n\r\n");
    struct reply r = {0};
    client_read(fd, &r, "data: 3\n\n", 1, 2000);
    assert_non_null(strstr(r.buf, "Cache-Control: no-cache\r\nX-Hook: /tail reader 200\r\n\r\n"));
    close(fd);
    assert_true(pump_until(got_closed_event, 2000));
    fx.held = NULL;
    assert_true(pump_until(no_conns, 2000));
    fx_stop();
}

static void test_close_with_pending_request(void **state)
{
    (void)state;
    fx_start(NULL, MODE_HOLD);
    int fd = client_connect();
    int idle = client_connect();
    client_send(fd, "GET /pending HTTP/1.1\r\n\r\n");
    assert_true(pump_until(one_request, 2000));
    api_http_server_close(fx.srv, on_server_closed, NULL);
    pump(50);
    assert_false(fx.closed); /* the lent conn keeps it open */
    struct reply ri = {0};
    client_read(idle, &ri, NULL, 0, 2000);
    assert_true(ri.eof); /* idle ones are closed */
    answer_held();
    struct reply r = {0};
    client_read(fd, &r, NULL, 0, 3000);
    assert_true(r.eof);
    assert_non_null(strstr(r.buf, "path=/pending"));
    assert_non_null(strstr(r.buf, "Connection: close\r\n"));
    assert_true(pump_until(is_closed, 3000));
    close(fd);
    close(idle);
    uv_close((uv_handle_t *)&fx.timer, NULL);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
}

static void test_bad_listen_address(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct api_http_server *s = NULL;
    char err[128];
    assert_int_equal(api_http_server_init(&s, &loop, "nonsense", NULL, on_request, NULL, err,
                                          sizeof err),
                     HD_EINVAL);
    assert_int_equal(api_http_server_init(&s, &loop, "127.0.0.1:99999", NULL, on_request,
                                          NULL, err, sizeof err),
                     HD_EINVAL);
    /* Address in use: fails at once, leaves nothing behind. */
    fx_start(NULL, MODE_SYNC);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", fx.port);
    int rv = api_http_server_init(&s, &loop, addr, NULL, on_request, NULL, err, sizeof err);
    assert_true(rv < 0);
    assert_non_null(strstr(err, "bind"));
    assert_int_equal(uv_loop_close(&loop), 0);
    fx_stop();
    /* IPv6 form parses (the host may lack IPv6; only the syntax is checked). */
    uv_loop_init(&loop);
    rv = api_http_server_init(&s, &loop, "[::1]:0", NULL, on_request, NULL, err, sizeof err);
    assert_int_not_equal(rv, HD_EINVAL);
    if (rv == 0) {
        assert_true(api_http_server_port(s) > 0);
        api_http_server_close(s, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_keep_alive),
        cmocka_unit_test(test_async_response),
        cmocka_unit_test(test_pipelining_order),
        cmocka_unit_test(test_input_held_while_pending),
        cmocka_unit_test(test_client_gone_before_async_response),
        cmocka_unit_test(test_half_close_still_answered),
        cmocka_unit_test(test_stream_then_client_closes),
        cmocka_unit_test(test_stream_backpressure_and_end),
        cmocka_unit_test(test_writer_order_drained_end),
        cmocka_unit_test(test_writer_client_gone),
        cmocka_unit_test(test_request_timeout_slowloris),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_head_hook),
        cmocka_unit_test(test_close_with_pending_request),
        cmocka_unit_test(test_bad_listen_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
