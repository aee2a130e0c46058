/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for libherald's HTTP response parser: identity, chunked, EOF bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client_internal.h"
#include "hd_error.h"

static const char chunked[] =
    "HTTP/1.1 201 Created\r\n"
    "Content-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5\r\n{\"seq\r\n"
    "a;ext=1\r\n\":7,\"ts\":\"\r\n"
    "13\r\n1732234567.000123\"}\r\n"
    "0\r\n"
    "X-Trailer: y\r\n"
    "\r\n";
static const char chunked_body[] = "{\"seq\":7,\"ts\":\"1732234567.000123\"}";

/* Feeds text in slices of step bytes; returns total bytes consumed. */
static size_t feed_sliced(struct herald__resp *r, const char *text, size_t len, size_t step)
{
    size_t used = 0;
    for (size_t i = 0; i < len && !r->done; i += step) {
        size_t n = len - i < step ? len - i : step;
        long got = herald__resp_feed(r, text + i, n);
        assert_true(got >= 0);
        used += (size_t)got;
    }
    return used;
}

static void test_resp_chunked_every_split(void **state)
{
    (void)state;
    size_t len = strlen(chunked);
    for (size_t step = 1; step <= len; step++) {
        struct herald__resp r;
        herald__resp_init(&r, NULL, NULL);
        assert_int_equal(feed_sliced(&r, chunked, len, step), len);
        assert_true(r.done);
        assert_int_equal(r.status, 201);
        assert_true(r.keep_alive);
        assert_string_equal(r.body.data, chunked_body);
        assert_string_equal(r.content_type.data, "application/json");
        herald__resp_close(&r);
    }
}

static void test_resp_content_length_and_headers(void **state)
{
    (void)state;
    static const char text[] =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "retry-after: 2\r\n"
        "Content-Length: 52\r\n"
        "Connection: close\r\n"
        "\r\n"
        "{\"error\":{\"code\":\"unavailable\",\"message\":\"no lead\"}}"
        "HTTP/1.1 200 OK\r\n"; /* bytes after the message are not consumed */
    struct herald__resp r;
    herald__resp_init(&r, NULL, NULL);
    long used = herald__resp_feed(&r, text, strlen(text));
    assert_true(r.done);
    assert_int_equal(used, (long)(strlen(text) - strlen("HTTP/1.1 200 OK\r\n")));
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after_s, 2);
    assert_false(r.keep_alive);
    assert_int_equal(r.body.len, 52);
    struct herald_client c;
    herald_client_init(&c, NULL);
    assert_int_equal(herald__http_error(&c, &r, "append"), HD_EUNAVAIL);
    assert_string_equal(herald_errmsg(&c), "append: HTTP 503 unavailable: no lead");
    herald__resp_close(&r);
}

static void test_resp_eof_body(void **state)
{
    (void)state;
    static const char text[] = "HTTP/1.0 200 OK\r\n\r\nhello";
    struct herald__resp r;
    herald__resp_init(&r, NULL, NULL);
    assert_int_equal(herald__resp_feed(&r, text, strlen(text)), (long)strlen(text));
    assert_false(r.done);
    assert_int_equal(herald__resp_feed(&r, NULL, 0), 0); /* EOF ends the body */
    assert_true(r.done);
    assert_false(r.keep_alive);
    assert_string_equal(r.body.data, "hello");
    herald__resp_close(&r);
}

static void test_resp_truncated_and_bad(void **state)
{
    (void)state;
    struct herald__resp r;
    herald__resp_init(&r, NULL, NULL);
    static const char partial[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    assert_int_equal(herald__resp_feed(&r, partial, strlen(partial)), (long)strlen(partial));
    assert_int_equal(herald__resp_feed(&r, NULL, 0), HD_ECORRUPT);
    herald__resp_close(&r);

    herald__resp_init(&r, NULL, NULL);
    assert_int_equal(herald__resp_feed(&r, "SMTP ready\r\n", 12), HD_ECORRUPT);
    herald__resp_close(&r);

    herald__resp_init(&r, NULL, NULL);
    static const char badchunk[] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert_int_equal(herald__resp_feed(&r, badchunk, strlen(badchunk)), HD_ECORRUPT);
    herald__resp_close(&r);

    herald__resp_init(&r, NULL, NULL);
    r.body_max = 4;
    static const char big[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n12345";
    assert_int_equal(herald__resp_feed(&r, big, strlen(big)), HD_ETOOBIG);
    herald__resp_close(&r);
}

static int stream_cb(void *arg, const char *data, size_t len)
{
    struct herald__buf *b = arg;
    herald__buf_append(b, data, len);
    return b->len >= 6 ? HD_ESHUTDOWN : 0;
}

static void test_resp_streamed_body(void **state)
{
    (void)state;
    static const char text[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n3\r\ndef\r\n3\r\nghi\r\n";
    struct herald__buf got = {0};
    struct herald__resp r;
    herald__resp_init(&r, stream_cb, &got);
    assert_int_equal(herald__resp_feed(&r, text, strlen(text)), HD_ESHUTDOWN);
    assert_string_equal(got.data, "abcdef");
    assert_int_equal(r.body.len, 0);
    herald__resp_close(&r);
    herald__buf_free(&got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resp_chunked_every_split),
        cmocka_unit_test(test_resp_content_length_and_headers),
        cmocka_unit_test(test_resp_eof_body),
        cmocka_unit_test(test_resp_truncated_and_bad),
        cmocka_unit_test(test_resp_streamed_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
