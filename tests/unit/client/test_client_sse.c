/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for libherald's incremental text/event-stream parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client_internal.h"
#include "hd_error.h"

/* Events are rendered as "type|id|id_set|data\n" into one string, which
 * makes expected outcomes easy to write and compare. */
struct seen {
    struct herald__buf log;
    int count;
    int stop_after; /* > 0: return non-zero at this event */
};

static int record_cb(void *arg, const struct herald__sse_event *ev)
{
    struct seen *s = arg;
    herald__buf_printf(&s->log, "%s|%s|%d|", ev->type, ev->id, ev->id_set);
    herald__buf_append(&s->log, ev->data, ev->data_len);
    herald__buf_append(&s->log, "\n", 1);
    s->count++;
    return s->stop_after > 0 && s->count == s->stop_after ? 7 : 0;
}

/* Feeds text in slices of `step` bytes (0: all at once). */
static void run(const char *text, size_t step, struct seen *s)
{
    struct herald__sse p;
    herald__sse_init(&p, record_cb, s);
    size_t len = strlen(text);
    if (step == 0) step = len ? len : 1;
    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        assert_int_equal(herald__sse_feed(&p, text + i, n), 0);
    }
    herald__sse_close(&p);
}

static const char stream[] =
    ": keep-alive\n"
    "\n"
    "id: 1\n"
    "event: message\n"
    "data: {\"seq\":1}\n"
    "\n"
    "id: 2\r\n"
    "data: line one\r\n"
    "data: line two\r\n"
    "data\r\n"
    "\r\n"
    ": comment between\r"
    "data:no-space\r"
    "event: other\r"
    "\r"
    "id: 3\n"
    "\n" /* id only: not dispatched, but remembered */
    "retry: 100\n"
    "unknown: x\n"
    "data:  two spaces\n"
    "\n"
    "data: unterminated";

static const char expected[] =
    "message|1|1|{\"seq\":1}\n"
    "message|2|1|line one\nline two\n\n"
    "other|2|0|no-space\n"
    "message|3|0| two spaces\n";

static void test_sse_whole(void **state)
{
    (void)state;
    struct seen s = {0};
    run(stream, 0, &s);
    assert_string_equal(s.log.data, expected);
    herald__buf_free(&s.log);
}

/* Every slice size, including one byte at a time (which splits "\r\n"). */
static void test_sse_every_split(void **state)
{
    (void)state;
    for (size_t step = 1; step <= sizeof stream; step++) {
        struct seen s = {0};
        run(stream, step, &s);
        if (s.log.data == NULL || strcmp(s.log.data, expected) != 0) {
            fail_msg("step %zu gave:\n%s", step, s.log.data ? s.log.data : "(nothing)");
        }
        herald__buf_free(&s.log);
    }
}

/* Two-piece splits at every position exercise each boundary once. */
static void test_sse_split_points(void **state)
{
    (void)state;
    size_t len = strlen(stream);
    for (size_t cut = 0; cut <= len; cut++) {
        struct seen s = {0};
        struct herald__sse p;
        herald__sse_init(&p, record_cb, &s);
        assert_int_equal(herald__sse_feed(&p, stream, cut), 0);
        assert_int_equal(herald__sse_feed(&p, stream + cut, len - cut), 0);
        herald__sse_close(&p);
        if (strcmp(s.log.data ? s.log.data : "", expected) != 0) fail_msg("cut at %zu", cut);
        herald__buf_free(&s.log);
    }
}

static void test_sse_callback_stops(void **state)
{
    (void)state;
    struct seen s = {.stop_after = 1};
    struct herald__sse p;
    herald__sse_init(&p, record_cb, &s);
    assert_int_equal(herald__sse_feed(&p, "data: a\n\ndata: b\n\n", 18), 7);
    assert_int_equal(s.count, 1);
    herald__sse_close(&p);
    herald__buf_free(&s.log);
}

static void test_sse_line_limit(void **state)
{
    (void)state;
    struct seen s = {0};
    struct herald__sse p;
    herald__sse_init(&p, record_cb, &s);
    p.line_max = 16;
    assert_int_equal(herald__sse_feed(&p, "data: 0123456789", 16), 0);
    assert_int_equal(herald__sse_feed(&p, "x", 1), HD_ETOOBIG);
    herald__sse_close(&p);
    herald__buf_free(&s.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_whole),
        cmocka_unit_test(test_sse_every_split),
        cmocka_unit_test(test_sse_split_points),
        cmocka_unit_test(test_sse_callback_stops),
        cmocka_unit_test(test_sse_line_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
