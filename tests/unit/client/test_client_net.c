/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for libherald's network paths against a scripted loopback responder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_internal.h"
#include "hd_error.h"

/* ------------------------------------------------------------ responder */

#define REQ_MAX 64

/* What the responder does with request number `index` (0-based, counted
 * across connections): `reply` bytes are written (NULL: none), then the
 * connection is closed if `close_after`. */
struct action {
    const char *reply;
    bool close_after;
};

struct responder {
    int lfd;                        /* listening socket */
    int port;                       /* its port */
    pthread_t thread;               /* serving thread */
    struct action (*script)(int index);
    pthread_mutex_t mu;             /* guards what follows */
    char *requests[REQ_MAX];        /* raw requests received */
    int nreq;                       /* entries in requests */
    int accepts;                    /* connections accepted */
    volatile int stop;              /* set to end the thread */
};

/* Reads one request (headers and Content-Length body). NULL on EOF. */
static char *read_request(int fd)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        char *end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
        if (end != NULL) {
            size_t head = (size_t)(end - buf) + 4;
            const char *cl = memmem(buf, head, "Content-Length: ", 16);
            size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
            if (len >= head + body) {
                buf[head + body] = '\0';
                return buf;
            }
        }
        if (len + 1 >= cap) break;
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) break;
        len += (size_t)n;
    }
    free(buf);
    return NULL;
}

static void serve_connection(struct responder *rs, int fd)
{
    char *req;
    while (!rs->stop && (req = read_request(fd)) != NULL) {
        pthread_mutex_lock(&rs->mu);
        int index = rs->nreq++;
        if (index < REQ_MAX) {
            rs->requests[index] = req;
        } else {
            free(req);
        }
        pthread_mutex_unlock(&rs->mu);
        struct action a = rs->script(index);
        if (a.reply != NULL) {
            size_t len = strlen(a.reply), off = 0;
            while (off < len) {
                ssize_t n = send(fd, a.reply + off, len - off, MSG_NOSIGNAL);
                if (n <= 0) break;
                off += (size_t)n;
            }
        }
        if (a.close_after) break;
    }
    close(fd);
}

static void *responder_main(void *arg)
{
    struct responder *rs = arg;
    while (!rs->stop) {
        struct pollfd pfd = {.fd = rs->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0) continue;
        int fd = accept(rs->lfd, NULL, NULL);
        if (fd < 0) continue;
        pthread_mutex_lock(&rs->mu);
        rs->accepts++;
        pthread_mutex_unlock(&rs->mu);
        serve_connection(rs, fd);
    }
    return NULL;
}

static void responder_start(struct responder *rs, struct action (*script)(int))
{
    memset(rs, 0, sizeof *rs);
    rs->script = script;
    pthread_mutex_init(&rs->mu, NULL);
    rs->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(rs->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(rs->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(rs->lfd, 16), 0);
    socklen_t slen = sizeof sa;
    getsockname(rs->lfd, (struct sockaddr *)&sa, &slen);
    rs->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&rs->thread, NULL, responder_main, rs), 0);
}

static void responder_stop(struct responder *rs)
{
    rs->stop = 1;
    pthread_join(rs->thread, NULL);
    close(rs->lfd);
    for (int i = 0; i < rs->nreq && i < REQ_MAX; i++) free(rs->requests[i]);
    pthread_mutex_destroy(&rs->mu);
}

/* A client for rs with fast retries, so tests stay quick. */
static void client_for(struct herald_client *c, const struct responder *rs)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rs->port);
    assert_int_equal(herald_client_init(c, url), 0);
    c->backoff_initial_ms = 1;
    c->backoff_max_ms = 5;
    c->request_timeout_ms = 2000;
    c->retry_deadline_ms = 3000;
}

/* Value of a JSON string field in a request body, copied into out. */
static const char *body_field(const char *req, const char *key, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(req, pat);
    if (p == NULL) return NULL;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    snprintf(out, size, "%.*s", (int)(q - p), p);
    return out;
}

/* Value of a header in a raw request (exact name match), or NULL. */
static const char *header_value(const char *req, const char *name, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    const char *p = strstr(req, pat);
    if (p == NULL) return NULL;
    p += strlen(pat);
    snprintf(out, size, "%.*s", (int)strcspn(p, "\r"), p);
    return out;
}

/* --------------------------------------------------------------- append */

#define R503 "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 51\r\n\r\n" \
             "{\"error\":{\"code\":\"no_leader\",\"message\":\"election\"}}"

static struct action append_script(int index)
{
    static const char dup[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 67\r\n\r\n"
        "{\"channel\":\"c1\",\"seq\":42,\"ts\":\"1732234567.000123\",\"duplicate\":true}";
    switch (index) {
    case 0: return (struct action){R503, false};
    case 1: return (struct action){NULL, true}; /* request lost: close, no answer */
    default: return (struct action){dup, false};
    }
}

/* 503, then a dropped connection, then the answer: every attempt must carry
 * the same nonce, and the duplicate answer is reported as such. */
static void test_append_retries_with_same_nonce(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, append_script);
    struct herald_client c;
    client_for(&c, &rs);
    struct herald_append_result res;
    assert_int_equal(herald_append(&c, "c1", "hello", 5, NULL, &res), 0);
    assert_true(res.seq == 42);
    assert_true(res.ts_us == 1732234567000123ULL);
    assert_true(res.duplicate);
    assert_int_equal(strlen(res.nonce), HERALD_NONCE_HEX_LEN);
    assert_int_equal(rs.nreq, 3);
    for (int i = 0; i < rs.nreq; i++) {
        char nonce[200], payload[200];
        assert_non_null(body_field(rs.requests[i], "nonce", nonce, sizeof nonce));
        assert_string_equal(nonce, res.nonce);
        assert_non_null(body_field(rs.requests[i], "payload", payload, sizeof payload));
        assert_string_equal(payload, "hello");
        assert_non_null(strstr(rs.requests[i], "POST /v1/channels/c1/messages HTTP/1.1\r\n"));
    }
    herald_client_close(&c);
    responder_stop(&rs);
}

static struct action always_503(int index)
{
    (void)index;
    return (struct action){R503, false};
}

static void test_append_deadline_unknown(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, always_503);
    struct herald_client c;
    client_for(&c, &rs);
    c.retry_deadline_ms = 300;
    c.backoff_initial_ms = 20;
    c.backoff_max_ms = 40;
    struct herald_append_result res;
    assert_int_equal(herald_append(&c, "c1", "x", 1, "my-nonce", &res), HD_EUNKNOWN);
    assert_string_equal(res.nonce, "my-nonce");
    assert_true(res.attempts >= 3);
    /* The last attempt may give up before the responder has counted it:
     * exactly the "outcome unknown" case. */
    pthread_mutex_lock(&rs.mu);
    int nreq = rs.nreq;
    pthread_mutex_unlock(&rs.mu);
    assert_in_range(nreq, res.attempts - 1, res.attempts);
    assert_int_equal(rs.accepts, 1); /* 503s keep the connection alive */
    for (int i = 0; i < nreq; i++) {
        char nonce[200];
        assert_string_equal(body_field(rs.requests[i], "nonce", nonce, sizeof nonce), "my-nonce");
    }
    assert_non_null(strstr(herald_errmsg(&c), "no_leader"));
    herald_client_close(&c);
    responder_stop(&rs);
}

static struct action created_script(int index)
{
    static char reply[2][256];
    char body[128];
    int n = snprintf(body, sizeof body,
                     "{\"channel\":\"c1\",\"seq\":%d,\"ts\":\"17.00000%d\",\"duplicate\":false}",
                     index + 1, index);
    snprintf(reply[index % 2], sizeof reply[0],
             "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", n,
             body);
    return (struct action){reply[index % 2], false};
}

/* Keep-alive reuse, and a binary payload going out as payload_b64. */
static void test_append_keepalive_and_binary(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, created_script);
    struct herald_client c;
    client_for(&c, &rs);
    struct herald_append_result res;
    assert_int_equal(herald_append(&c, "c1", "a", 1, NULL, &res), 0);
    assert_true(res.seq == 1 && !res.duplicate && res.attempts == 1);
    assert_int_equal(herald_append(&c, "c1", "\xff\x00\x01", 3, NULL, &res), 0);
    assert_true(res.seq == 2 && res.ts_us == 17000001);
    assert_int_equal(rs.accepts, 1);
    char b64[64];
    assert_string_equal(body_field(rs.requests[1], "payload_b64", b64, sizeof b64), "/wAB");
    herald_client_close(&c);
    responder_stop(&rs);
}

static struct action bad_request(int index)
{
    (void)index;
    return (struct action){"HTTP/1.1 400 Bad Request\r\nContent-Length: 57\r\n\r\n"
                           "{\"error\":{\"code\":\"bad_nonce\",\"message\":\"nonce too long\"}}",
                           false};
}

static void test_append_client_error_not_retried(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, bad_request);
    struct herald_client c;
    client_for(&c, &rs);
    struct herald_append_result res;
    assert_int_equal(herald_append(&c, "c1", "x", 1, NULL, &res), HD_EINVAL);
    assert_int_equal(rs.nreq, 1);
    assert_int_equal(c.http_status, 400);
    assert_non_null(strstr(herald_errmsg(&c), "HTTP 400 bad_nonce: nonce too long"));
    assert_int_equal(herald_append(&c, "bad/channel", "x", 1, NULL, &res), HD_EINVAL);
    assert_int_equal(rs.nreq, 1);
    herald_client_close(&c);
    responder_stop(&rs);
}

static void test_unreachable(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, bad_request);
    int port = rs.port;
    responder_stop(&rs); /* nobody listens on port now */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    struct herald_client c;
    herald_client_init(&c, url);
    c.retry_deadline_ms = 100;
    c.backoff_initial_ms = 5;
    struct herald_append_result res;
    assert_int_equal(herald_append(&c, "c1", "x", 1, NULL, &res), HD_EUNAVAIL);
    if (strstr(herald_errmsg(&c), "refused") == NULL) fail_msg("errmsg: %s", herald_errmsg(&c));
    herald_client_close(&c);
}

/* ----------------------------------------------------------------- read */

static struct action read_script(int index)
{
    static char reply[1024];
    static const char body_ok[] =
        "{\"channel\":\"c1\",\"messages\":["
        "{\"seq\":6,\"ts\":\"100.000001\",\"nonce\":\"n6\",\"payload\":\"six\"},"
        "{\"seq\":7,\"ts\":\"100.000002\",\"nonce\":\"n7\",\"payload_b64\":\"/wAB\"}],"
        "\"next_seq\":7}";
    static const char body_gap[] =
        "{\"channel\":\"c1\",\"messages\":["
        "{\"seq\":1,\"ts\":\"1.000000\",\"nonce\":\"a\",\"payload\":\"x\"},"
        "{\"seq\":3,\"ts\":\"2.000000\",\"nonce\":\"b\",\"payload\":\"y\"}],\"next_seq\":3}";
    const char *body = index == 0 ? body_ok : body_gap;
    snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    return (struct action){reply, false};
}

struct collected {
    uint64_t seqs[16];
    int n;
    char payloads[16][16];
    size_t lens[16];
    bool binary[16];
    int stop_at; /* > 0: stop after this many */
};

static int collect_cb(void *arg, const struct herald_message *m)
{
    struct collected *col = arg;
    assert_true(col->n < 16);
    col->seqs[col->n] = m->seq;
    col->lens[col->n] = m->payload_len < 16 ? m->payload_len : 15;
    memcpy(col->payloads[col->n], m->payload, col->lens[col->n]);
    col->binary[col->n] = m->payload_binary;
    assert_string_equal(m->channel, "c1");
    col->n++;
    return col->stop_at > 0 && col->n == col->stop_at;
}

static void test_read(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, read_script);
    struct herald_client c;
    client_for(&c, &rs);
    struct collected col = {0};
    uint64_t next = 0;
    assert_int_equal(herald_read(&c, "c1", 5, 2, &next, collect_cb, &col), 2);
    assert_non_null(strstr(rs.requests[0], "GET /v1/channels/c1/messages?after_seq=5&limit=2 "));
    assert_true(next == 7);
    assert_true(col.seqs[0] == 6 && col.seqs[1] == 7);
    assert_memory_equal(col.payloads[0], "six", 3);
    assert_true(col.binary[1] && col.lens[1] == 3);
    assert_memory_equal(col.payloads[1], "\xff\x00\x01", 3);
    /* A server that skips a seq is caught. */
    col.n = 0;
    assert_int_equal(herald_read(&c, "c1", 0, 0, &next, collect_cb, &col), HD_ECORRUPT);
    assert_non_null(strstr(herald_errmsg(&c), "expected seq 2, got 3"));
    assert_int_equal(col.n, 1);
    herald_client_close(&c);
    responder_stop(&rs);
}

/* ----------------------------------------------------------------- tail */

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
#define EV(n) "id: " #n "\nevent: message\ndata: {\"channel\":\"c1\",\"seq\":" #n \
              ",\"ts\":\"50.00000" #n "\",\"nonce\":\"n" #n "\",\"payload\":\"p" #n "\"}\n\n"

static struct action tail_script(int index)
{
    switch (index) {
    case 0: /* EOF-delimited stream, then the server goes away */
        return (struct action){SSE_HEAD "\r\n: hello\n\n" EV(1) EV(2) "id: 3\ndata: {\"par", true};
    case 1: /* chunked, event 3 split over chunks, then an abrupt close */
        return (struct action){SSE_HEAD "Transfer-Encoding: chunked\r\n\r\n"
                               "11\r\nid: 3\nevent: mess\r\n"
                               "51\r\nage\ndata: {\"channel\":\"c1\",\"seq\":3,\"ts\":\"50.000003\","
                               "\"nonce\":\"n3\",\"payload\":\"p3\"}\n\n\r\n",
                               true};
    case 2: return (struct action){R503, false};
    default: return (struct action){SSE_HEAD "\r\n: keep-alive\n\n" EV(4) EV(5), false};
    }
}

/* Drops and a 503 in between: the consumer sees 1..4 exactly once, and each
 * reconnect resumes with Last-Event-ID = the last seq delivered. */
static void test_tail_reconnects_with_last_event_id(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, tail_script);
    struct herald_client c;
    client_for(&c, &rs);
    struct collected col = {.stop_at = 4};
    assert_int_equal(herald_tail(&c, "c1", 0, collect_cb, &col), 0);
    assert_int_equal(col.n, 4);
    for (int i = 0; i < 4; i++) assert_true(col.seqs[i] == (uint64_t)i + 1);
    assert_memory_equal(col.payloads[2], "p3", 2);
    assert_int_equal(rs.nreq, 4);
    char v[64];
    assert_non_null(strstr(rs.requests[0], "GET /v1/channels/c1/tail?after_seq=0 "));
    assert_non_null(header_value(rs.requests[0], "Accept", v, sizeof v));
    assert_string_equal(v, "text/event-stream");
    assert_null(header_value(rs.requests[0], "Last-Event-ID", v, sizeof v));
    assert_string_equal(header_value(rs.requests[1], "Last-Event-ID", v, sizeof v), "2");
    assert_non_null(strstr(rs.requests[1], "tail?after_seq=2 "));
    assert_string_equal(header_value(rs.requests[2], "Last-Event-ID", v, sizeof v), "3");
    assert_string_equal(header_value(rs.requests[3], "Last-Event-ID", v, sizeof v), "3");
    herald_client_close(&c);
    responder_stop(&rs);
}

static struct action tail_gap_script(int index)
{
    (void)index;
    return (struct action){SSE_HEAD "\r\n" EV(1) EV(3), true};
}

static void test_tail_detects_gap(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, tail_gap_script);
    struct herald_client c;
    client_for(&c, &rs);
    struct collected col = {0};
    assert_int_equal(herald_tail(&c, "c1", 0, collect_cb, &col), HD_ECORRUPT);
    assert_int_equal(col.n, 1);
    assert_non_null(strstr(herald_errmsg(&c), "seq 3 after 1 (gap)"));
    /* Resuming after seq 1 from a server that repeats it is caught too. */
    col.n = 0;
    assert_int_equal(herald_tail(&c, "c1", 1, collect_cb, &col), HD_ECORRUPT);
    assert_non_null(strstr(herald_errmsg(&c), "seq 1 after 1 (repeat)"));
    assert_int_equal(col.n, 0);
    herald_client_close(&c);
    responder_stop(&rs);
}

static struct action tail_404_script(int index)
{
    (void)index;
    return (struct action){"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", false};
}

static void test_tail_permanent_error(void **state)
{
    (void)state;
    static struct responder rs; /* static: a failed test must not leave its thread a dead stack */
    responder_start(&rs, tail_404_script);
    struct herald_client c;
    client_for(&c, &rs);
    struct collected col = {0};
    assert_int_equal(herald_tail(&c, "c1", 0, collect_cb, &col), HD_ENOTFOUND);
    assert_int_equal(rs.nreq, 1);
    herald_client_close(&c);
    responder_stop(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_retries_with_same_nonce),
        cmocka_unit_test(test_append_deadline_unknown),
        cmocka_unit_test(test_append_keepalive_and_binary),
        cmocka_unit_test(test_append_client_error_not_retried),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_tail_reconnects_with_last_event_id),
        cmocka_unit_test(test_tail_detects_gap),
        cmocka_unit_test(test_tail_permanent_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
