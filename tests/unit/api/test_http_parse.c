/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of HTTP request assembly: framing, limits, errors, query and path decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http_parse.h"
#include "hd_error.h"

/* Feeds everything, stepping over 100-continue stops. Returns the last
 * result; *used gets the bytes consumed up to it. */
static int feed_all(struct api_http_parse *p, const char *data, size_t len, size_t *used)
{
    size_t off = 0;
    for (;;) {
        size_t n = 0;
        int rv = api_http_parse_feed(p, data + off, len - off, &n);
        off += n;
        if (rv != API_HTTP_PARSE_CONTINUE || off == len) {
            *used = off;
            return rv;
        }
    }
}

static bool mem_is(const char *p, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

static void test_simple_get(void **state)
{
    (void)state;
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    const char *in = "GET /v1/channels/a%20b/messages?after_seq=5&limit=10 HTTP/1.1\r\n"
                     "Host: x\r\nX-Thing:  spaced value  \r\n\r\n";
    size_t used;
    assert_int_equal(feed_all(&p, in, strlen(in), &used), API_HTTP_PARSE_REQUEST);
    assert_int_equal(used, strlen(in));
    const struct api_http_request *r = api_http_parse_request(&p);
    assert_non_null(r);
    assert_int_equal(r->method, HTTP_GET);
    assert_true(mem_is(r->path, r->path_len, "/v1/channels/a%20b/messages"));
    assert_true(mem_is(r->query, r->query_len, "after_seq=5&limit=10"));
    assert_int_equal(r->n_headers, 2);
    size_t len = 0;
    const char *v = api_http_header(r, "x-THING", &len);
    assert_non_null(v);
    assert_true(mem_is(v, len, "spaced value"));
    assert_null(api_http_header(r, "absent", NULL));
    assert_int_equal(r->body_len, 0);
    assert_true(r->keep_alive);
    api_http_parse_close(&p);
}

static void test_post_with_body(void **state)
{
    (void)state;
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    const char *in = "POST /v1/x HTTP/1.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: 17\r\nConnection: close\r\n\r\n{\"payload\":\"hi\"}\n";
    size_t used;
    assert_int_equal(feed_all(&p, in, strlen(in), &used), API_HTTP_PARSE_REQUEST);
    const struct api_http_request *r = api_http_parse_request(&p);
    assert_int_equal(r->method, HTTP_POST);
    assert_true(mem_is(r->body, r->body_len, "{\"payload\":\"hi\"}\n"));
    assert_int_equal(r->query_len, 0);
    assert_false(r->keep_alive);
    api_http_parse_close(&p);
}

static void test_chunked_body(void **state)
{
    (void)state;
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    const char *in = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nTrailer-X: t\r\n\r\n";
    size_t used;
    assert_int_equal(feed_all(&p, in, strlen(in), &used), API_HTTP_PARSE_REQUEST);
    assert_int_equal(used, strlen(in));
    const struct api_http_request *r = api_http_parse_request(&p);
    assert_true(mem_is(r->body, r->body_len, "hello, world"));
    assert_int_equal(r->n_headers, 1); /* the trailer is dropped */
    api_http_parse_close(&p);
}

static void test_pipelined_two_requests(void **state)
{
    (void)state;
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    const char *in = "POST /one HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                     "GET /two?x=1 HTTP/1.1\r\n\r\n";
    size_t len = strlen(in);
    size_t used;
    assert_int_equal(api_http_parse_feed(&p, in, len, &used), API_HTTP_PARSE_REQUEST);
    const struct api_http_request *r = api_http_parse_request(&p);
    assert_true(mem_is(r->path, r->path_len, "/one"));
    assert_true(mem_is(r->body, r->body_len, "abc"));
    assert_true(used < len);
    api_http_parse_next(&p);
    assert_null(api_http_parse_request(&p));
    size_t used2;
    assert_int_equal(api_http_parse_feed(&p, in + used, len - used, &used2),
                     API_HTTP_PARSE_REQUEST);
    assert_int_equal(used + used2, len);
    r = api_http_parse_request(&p);
    assert_true(mem_is(r->path, r->path_len, "/two"));
    assert_true(mem_is(r->query, r->query_len, "x=1"));
    assert_int_equal(r->body_len, 0);
    api_http_parse_close(&p);
}

/* Feeds in two pieces split at `cut` and checks the same request comes out. */
static void check_split(const char *in, size_t cut, const char *path, const char *body)
{
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    size_t len = strlen(in);
    size_t used;
    int rv = feed_all(&p, in, cut, &used);
    if (rv == API_HTTP_PARSE_CONTINUE || rv == API_HTTP_PARSE_MORE) {
        assert_int_equal(used, cut);
        rv = feed_all(&p, in + cut, len - cut, &used);
    }
    assert_int_equal(rv, API_HTTP_PARSE_REQUEST);
    const struct api_http_request *r = api_http_parse_request(&p);
    assert_true(mem_is(r->path, r->path_len, path));
    assert_true(mem_is(r->body, r->body_len, body));
    assert_non_null(api_http_header(r, "Host", NULL));
    api_http_parse_close(&p);
}

static void test_split_at_every_byte(void **state)
{
    (void)state;
    const char *plain = "POST /p/q?r=s HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody";
    const char *chunked = "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                          "Expect: 100-continue\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n";
    for (size_t cut = 1; cut < strlen(plain); cut++) {
        check_split(plain, cut, "/p/q", "body");
    }
    for (size_t cut = 1; cut < strlen(chunked); cut++) {
        check_split(chunked, cut, "/c", "abcde");
    }
    /* One byte at a time, too. */
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    int rv = API_HTTP_PARSE_MORE;
    int continues = 0;
    for (size_t i = 0; i < strlen(chunked); i++) {
        size_t used = 0;
        assert_int_not_equal(rv, API_HTTP_PARSE_REQUEST);
        rv = api_http_parse_feed(&p, chunked + i, 1, &used);
        if (rv == API_HTTP_PARSE_CONTINUE) {
            continues++;
            if (used == 0) {
                rv = api_http_parse_feed(&p, chunked + i, 1, &used);
            }
        }
        assert_int_equal(used, 1);
    }
    assert_int_equal(rv, API_HTTP_PARSE_REQUEST);
    assert_int_equal(continues, 1);
    assert_true(mem_is(api_http_parse_request(&p)->body, api_http_parse_request(&p)->body_len,
                       "abcde"));
    api_http_parse_close(&p);
}

static void test_expect_continue(void **state)
{
    (void)state;
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    const char *head = "POST /e HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
    size_t used;
    assert_int_equal(api_http_parse_feed(&p, head, strlen(head), &used),
                     API_HTTP_PARSE_CONTINUE);
    assert_int_equal(used, strlen(head) - 1); /* paused before the final LF */
    assert_int_equal(api_http_parse_feed(&p, head + used, strlen(head) - used, &used),
                     API_HTTP_PARSE_MORE);
    assert_int_equal(api_http_parse_feed(&p, "ok", 2, &used), API_HTTP_PARSE_REQUEST);
    api_http_parse_close(&p);

    api_http_parse_init(&p, NULL);
    const char *bad = "POST /e HTTP/1.1\r\nExpect: magic\r\nContent-Length: 2\r\n\r\nok";
    assert_int_equal(api_http_parse_feed(&p, bad, strlen(bad), &used), HD_EINVAL);
    assert_int_equal(api_http_parse_error(&p)->status, 417);
    api_http_parse_close(&p);
}

static void expect_error(const struct api_http_limits *lim, const char *in, size_t len, int rv,
                         int status)
{
    struct api_http_parse p;
    api_http_parse_init(&p, lim);
    size_t used;
    assert_int_equal(feed_all(&p, in, len, &used), rv);
    const struct api_http_error *e = api_http_parse_error(&p);
    assert_non_null(e);
    assert_int_equal(e->status, status);
    assert_non_null(e->code);
    assert_non_null(e->message);
    /* Sticky: more input gets the same answer. */
    assert_int_equal(api_http_parse_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18, &used), rv);
    api_http_parse_close(&p);
}

static void test_header_limits_431(void **state)
{
    (void)state;
    struct api_http_limits lim = {.header_bytes_max = 256, .headers_max = 4};
    char in[2048];
    int n = snprintf(in, sizeof in,
                     "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    expect_error(&lim, in, (size_t)n, HD_ETOOBIG, 431);

    n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nBig: %0300d\r\n\r\n", 7);
    expect_error(&lim, in, (size_t)n, HD_ETOOBIG, 431);

    /* Whitespace counts too: it is raw header bytes. */
    n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nA:%300s1\r\n\r\n", "");
    expect_error(&lim, in, (size_t)n, HD_ETOOBIG, 431);

    /* Exactly four headers within the byte limit pass. */
    struct api_http_parse p;
    api_http_parse_init(&p, &lim);
    n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    size_t used;
    assert_int_equal(feed_all(&p, in, (size_t)n, &used), API_HTTP_PARSE_REQUEST);
    api_http_parse_close(&p);

    n = snprintf(in, sizeof in, "GET /%0300d HTTP/1.1\r\n\r\n", 1);
    expect_error(&lim, in, (size_t)n, HD_ETOOBIG, 414);
}

/* The answer to a bad request must not depend on how it was split into
 * reads: here a limit is crossed before a syntax error further on. */
static void test_error_independent_of_split(void **state)
{
    (void)state;
    struct api_http_limits lim = {.header_bytes_max = 256, .headers_max = 4};
    char in[2048];
    int n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nA: %0300d\x7f\r\n\r\n", 1);
    int m = snprintf(in + n + 1, sizeof in - (size_t)n - 1,
                     "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE\x01: 5\r\n\r\n");
    const char *inputs[2] = {in, in + n + 1};
    size_t lens[2] = {(size_t)n, (size_t)m};
    /* The second: the count is checked at the end of the headers, which the
     * bad byte in the fifth name never reaches. */
    int rvs[2] = {HD_ETOOBIG, HD_EINVAL};
    int statuses[2] = {431, 400};
    for (int k = 0; k < 2; k++) {
        expect_error(&lim, inputs[k], lens[k], rvs[k], statuses[k]);
        struct api_http_parse p;
        api_http_parse_init(&p, &lim);
        int rv = API_HTTP_PARSE_MORE;
        for (size_t i = 0; i < lens[k] && rv >= 0; i++) {
            size_t used;
            rv = api_http_parse_feed(&p, inputs[k] + i, 1, &used);
        }
        assert_int_equal(rv, rvs[k]);
        assert_int_equal(api_http_parse_error(&p)->status, statuses[k]);
        api_http_parse_close(&p);
    }
}

static void test_body_over_limit_413(void **state)
{
    (void)state;
    struct api_http_limits lim = {.body_bytes_max = 8};
    /* Content-Length is refused as soon as the headers end, before any body. */
    const char *cl = "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n";
    expect_error(&lim, cl, strlen(cl), HD_ETOOBIG, 413);
    const char *ch = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    expect_error(&lim, ch, strlen(ch), HD_ETOOBIG, 413);
    const char *huge = "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n";
    expect_error(&lim, huge, strlen(huge), HD_EINVAL, 400);
}

static void test_garbage_400(void **state)
{
    (void)state;
    expect_error(NULL, "hello world\r\n\r\n", 15, HD_EINVAL, 400);
    expect_error(NULL, "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 30, HD_EINVAL, 400);
    const char nul[] = "GET /\0 HTTP/1.1\r\n\r\n";
    expect_error(NULL, nul, sizeof nul - 1, HD_EINVAL, 400);
    /* Request smuggling shapes. */
    const char *both = "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n0\r\n\r\n";
    expect_error(NULL, both, strlen(both), HD_EINVAL, 400);
    const char *two = "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
    expect_error(NULL, two, strlen(two), HD_EINVAL, 400);
    const char *v2 = "GET / HTTP/2.0\r\n\r\n";
    expect_error(NULL, v2, strlen(v2), HD_EINVAL, 505);
}

static void test_keep_alive_rules(void **state)
{
    (void)state;
    struct api_http_parse p;
    size_t used;
    api_http_parse_init(&p, NULL);
    const char *h10 = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(api_http_parse_feed(&p, h10, strlen(h10), &used), API_HTTP_PARSE_REQUEST);
    assert_false(api_http_parse_request(&p)->keep_alive);
    api_http_parse_next(&p);
    const char *h10ka = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_int_equal(api_http_parse_feed(&p, h10ka, strlen(h10ka), &used),
                     API_HTTP_PARSE_REQUEST);
    assert_true(api_http_parse_request(&p)->keep_alive);
    api_http_parse_next(&p);
    const char *abs = "OPTIONS http://h:1/abs/p?q=1 HTTP/1.1\r\n\r\n";
    assert_int_equal(api_http_parse_feed(&p, abs, strlen(abs), &used), API_HTTP_PARSE_REQUEST);
    const struct api_http_request *r = api_http_parse_request(&p);
    assert_int_equal(r->method, HTTP_OPTIONS);
    assert_true(mem_is(r->path, r->path_len, "/abs/p"));
    assert_true(mem_is(r->query, r->query_len, "q=1"));
    api_http_parse_next(&p);
    const char *up = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxx";
    assert_int_equal(api_http_parse_feed(&p, up, strlen(up), &used), API_HTTP_PARSE_REQUEST);
    assert_true(api_http_parse_request(&p)->upgrade);
    assert_false(api_http_parse_request(&p)->keep_alive);
    api_http_parse_close(&p);
}

static void test_query_param(void **state)
{
    (void)state;
    struct api_http_parse p;
    api_http_parse_init(&p, NULL);
    const char *in = "GET /q?a=1&b=hello+w%6Frld&c&%64=x%2By&bad=%zz&nul=%00&e= HTTP/1.1\r\n\r\n";
    size_t used;
    assert_int_equal(api_http_parse_feed(&p, in, strlen(in), &used), API_HTTP_PARSE_REQUEST);
    const struct api_http_request *r = api_http_parse_request(&p);
    char out[16];
    assert_int_equal(api_http_query_param(r, "a", out, sizeof out), 0);
    assert_string_equal(out, "1");
    assert_int_equal(api_http_query_param(r, "b", out, sizeof out), 0);
    assert_string_equal(out, "hello world");
    assert_int_equal(api_http_query_param(r, "c", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(api_http_query_param(r, "d", out, sizeof out), 0);
    assert_string_equal(out, "x+y");
    assert_int_equal(api_http_query_param(r, "e", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(api_http_query_param(r, "bad", out, sizeof out), HD_EINVAL);
    assert_int_equal(api_http_query_param(r, "nul", out, sizeof out), HD_EINVAL);
    assert_int_equal(api_http_query_param(r, "zzz", out, sizeof out), HD_ENOTFOUND);
    char tiny[11];
    assert_int_equal(api_http_query_param(r, "b", tiny, sizeof tiny), HD_ETOOBIG);
    char fits[12];
    assert_int_equal(api_http_query_param(r, "b", fits, sizeof fits), 0);
    api_http_parse_close(&p);
}

static void test_path_decode(void **state)
{
    (void)state;
    char out[8];
    size_t n = 99;
    assert_int_equal(api_http_path_decode("a%20b+c", 7, out, sizeof out, &n), 0);
    assert_string_equal(out, "a b+c");
    assert_int_equal(n, 5);
    assert_int_equal(api_http_path_decode("%E2%82%AC", 9, out, sizeof out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xe2\x82\xac", 3);
    assert_int_equal(api_http_path_decode("%zz", 3, out, sizeof out, &n), HD_EINVAL);
    assert_int_equal(api_http_path_decode("ab%2", 4, out, sizeof out, &n), HD_EINVAL);
    assert_int_equal(api_http_path_decode("%", 1, out, sizeof out, &n), HD_EINVAL);
    assert_int_equal(api_http_path_decode("%00", 3, out, sizeof out, &n), HD_EINVAL);
    assert_int_equal(api_http_path_decode("12345678", 8, out, sizeof out, &n), HD_ETOOBIG);
    assert_int_equal(api_http_path_decode("1234567", 7, out, sizeof out, &n), 0);
    assert_int_equal(api_http_path_decode("", 0, out, sizeof out, &n), 0);
    assert_int_equal(n, 0);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(api_http_status_text(404), "Not Found");
    assert_string_equal(api_http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(api_http_status_text(299), "Unknown");
    assert_string_equal(api_http_status_text(-1), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_post_with_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_pipelined_two_requests),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_header_limits_431),
        cmocka_unit_test(test_error_independent_of_split),
        cmocka_unit_test(test_body_over_limit_413),
        cmocka_unit_test(test_garbage_400),
        cmocka_unit_test(test_keep_alive_rules),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_path_decode),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
