/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for libherald's URL, ts and nonce functions and its channel check. The
 * rules underneath (hd_ts, hd_base64, hd_ids) are tested in tests/unit/common. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client_internal.h"
#include "hd_error.h"

static int parse(const char *url, char *host, char *port, char *path)
{
    return herald_url_parse(url, host, 256, port, 8, path, 256);
}

static void test_url_good(void **state)
{
    (void)state;
    char host[256], port[8], path[256];
    assert_int_equal(parse("http://127.0.0.1:7400", host, port, path), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "7400");
    assert_string_equal(path, "");
    assert_int_equal(parse("http://example.com", host, port, path), 0);
    assert_string_equal(host, "example.com");
    assert_string_equal(port, "7400");
    assert_int_equal(parse("http://h:1/", host, port, path), 0);
    assert_string_equal(port, "1");
    assert_string_equal(path, "");
    assert_int_equal(parse("http://[::1]:65535/herald/", host, port, path), 0);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "65535");
    assert_string_equal(path, "/herald");
    assert_int_equal(parse("http://[fe80::1]", host, port, path), 0);
    assert_string_equal(host, "fe80::1");
    /* https: the same parts; herald_url_tls tells the scheme */
    assert_int_equal(parse("https://node1.example:7443/p", host, port, path), 0);
    assert_string_equal(host, "node1.example");
    assert_string_equal(port, "7443");
    assert_string_equal(path, "/p");
    assert_true(herald_url_tls("https://node1.example:7443/p"));
    assert_false(herald_url_tls("http://node1.example"));
    struct herald_client c;
    assert_int_equal(herald_client_init(&c, "https://localhost:7443"), 0);
    assert_true(c.tls);
    herald_client_close(&c);
    assert_int_equal(herald_client_init(&c, "http://localhost:7443"), 0);
    assert_false(c.tls);
    herald_client_close(&c);
}

static void test_url_bad(void **state)
{
    (void)state;
    char host[256], port[8], path[256];
    static const char *const bad[] = {
        "",  "127.0.0.1:7400", "https//h:1", "https://", "http://", "http://:80", "http://h:",
        "http://h:0", "http://h:65536", "http://h:12a", "http://h:123456", "http://u@h:1",
        "http://h:1?x=1", "http://h h", "http://[::1", "http://[]:1", "http://[::1]x",
        "http://h:1#f", "HTTP//h", "http://h/\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], host, port, path) != HD_EINVAL) fail_msg("accepted \"%s\"", bad[i]);
    }
    char longhost[400] = "http://";
    memset(longhost + 7, 'a', 300);
    assert_int_equal(parse(longhost, host, port, path), HD_EINVAL);
    struct herald_client c;
    assert_int_equal(herald_client_init(&c, "ftp://x"), HD_EINVAL);
    assert_non_null(strstr(herald_errmsg(&c), "ftp://x"));
    assert_int_equal(herald_client_init(&c, NULL), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_string_equal(c.port, "7400");
    herald_client_close(&c);
}

/* herald_ts_* are libherald's names for common/hd_ts.h, whose rules
 * test_hd_ts covers; here only that the public calls reach them, including
 * the buffer size the public header promises. */
static void test_ts_roundtrip(void **state)
{
    (void)state;
    uint64_t ts;
    char buf[HERALD_TS_STR_MAX];
    assert_int_equal(herald_ts_parse("1732234567.000123", 17, &ts), 0);
    assert_true(ts == 1732234567000123ULL);
    uint64_t max_ts = (UINT64_MAX - 999999) / 1000000 * 1000000 + 999999;
    assert_true(herald_ts_format(max_ts, buf, sizeof buf) > 0);
    assert_int_equal(herald_ts_parse(buf, strlen(buf), &ts), 0);
    assert_true(ts == max_ts);
    assert_int_not_equal(herald_ts_parse("1.2.3", 5, &ts), 0);
}

static void test_ts_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", ".", "1.", ".5", "-1.000000", "+1.0", " 1.0", "1.0 ", "1.0000001", "1,000000",
        "1e6", "0x10", "1.00000a", "1..0", "abc", "18446744073709.551616",
        "99999999999999999999.000000", "1732234567.000123\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ts = 42;
        if (herald_ts_parse(bad[i], strlen(bad[i]), &ts) != HD_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_true(ts == 42);
    }
    char small[8];
    assert_int_equal(herald_ts_format(1732234567000123ULL, small, sizeof small), HD_EINVAL);
}

static void test_nonce(void **state)
{
    (void)state;
    enum { N = 64 };
    char nonces[N][HERALD_NONCE_HEX_LEN + 1];
    for (int i = 0; i < N; i++) {
        assert_int_equal(herald_nonce_generate(nonces[i], sizeof nonces[i]), 0);
        assert_int_equal(strlen(nonces[i]), HERALD_NONCE_HEX_LEN);
        assert_int_equal(strspn(nonces[i], "0123456789abcdef"), HERALD_NONCE_HEX_LEN);
        for (int j = 0; j < i; j++) assert_string_not_equal(nonces[i], nonces[j]);
    }
    char small[HERALD_NONCE_HEX_LEN];
    assert_int_equal(herald_nonce_generate(small, sizeof small), HD_EINVAL);
}

/* A nonce opens with the Unix time in milliseconds (12 hex digits), so one
 * made a few milliseconds later sorts after it, whatever its random part. */
static void test_nonce_grows_with_time(void **state)
{
    (void)state;
    for (int round = 0; round < 8; round++) {
        struct timespec before, pause = {0, 3 * 1000000};
        clock_gettime(CLOCK_REALTIME, &before);
        char first[HERALD_NONCE_HEX_LEN + 1], later[HERALD_NONCE_HEX_LEN + 1];
        assert_int_equal(herald_nonce_generate(first, sizeof first), 0);
        nanosleep(&pause, NULL);
        assert_int_equal(herald_nonce_generate(later, sizeof later), 0);
        assert_true(strcmp(first, later) < 0);
        char time_hex[13];
        memcpy(time_hex, first, 12);
        time_hex[12] = '\0';
        uint64_t ms = strtoull(time_hex, NULL, 16);
        uint64_t before_ms = (uint64_t)before.tv_sec * 1000u + (uint64_t)before.tv_nsec / 1000000u;
        assert_true(ms >= before_ms && ms < before_ms + 1000);
        /* the random part differs between the two */
        assert_memory_not_equal(first + 12, later + 12, HERALD_NONCE_HEX_LEN - 12);
    }
}

/* The check libherald runs before every request names the rule's failure
 * without a round trip; the rule itself is hd_channel_valid(). */
static void test_channel_check(void **state)
{
    (void)state;
    struct herald_client c;
    assert_int_equal(herald_client_init(&c, "http://127.0.0.1:1"), 0);
    char max[HERALD_CHANNEL_MAX + 2];
    memset(max, 'a', HERALD_CHANNEL_MAX);
    max[HERALD_CHANNEL_MAX] = '\0';
    assert_int_equal(herald__channel_check(&c, "general"), 0);
    assert_int_equal(herald__channel_check(&c, "team-1.room:2_x"), 0);
    assert_int_equal(herald__channel_check(&c, max), 0);
    max[HERALD_CHANNEL_MAX] = 'a';
    max[HERALD_CHANNEL_MAX + 1] = '\0';
    assert_int_equal(herald__channel_check(&c, max), HD_EINVAL);
    assert_int_equal(herald__channel_check(&c, ""), HD_EINVAL);
    assert_int_equal(herald__channel_check(&c, "a/b"), HD_EINVAL);
    assert_int_equal(herald__channel_check(&c, "a b"), HD_EINVAL);
    assert_int_equal(herald__channel_check(&c, "a?x=1"), HD_EINVAL);
    assert_int_equal(herald__channel_check(&c, NULL), HD_EINVAL);
    assert_non_null(strstr(herald_errmsg(&c), "bad channel id"));
    /* Every request refuses a bad channel before it connects. */
    struct herald_append_result res;
    assert_int_equal(herald_append(&c, "a/b", "x", 1, NULL, &res), HD_EINVAL);
    assert_int_equal(herald_append(&c, NULL, "x", 1, NULL, &res), HD_EINVAL);
    assert_int_equal(herald_read(&c, "a b", 0, 0, NULL, NULL, NULL), HD_EINVAL);
    assert_int_equal(herald_tail(&c, "", 0, NULL, NULL), HD_EINVAL);
    assert_int_equal(c.http_status, 0);
    herald_client_close(&c);
}

static int to_json(const struct herald_message *m, const char *want)
{
    char *text = NULL;
    int rv = herald_message_to_json(m, &text);
    if (rv == 0) {
        assert_string_equal(text, want);
        herald_free(text);
    }
    return rv;
}

static void test_message_to_json(void **state)
{
    (void)state;
    struct herald_message m = {.channel = "general", .seq = 7, .ts_us = 1732234567000123ULL,
                               .nonce = "n-1", .payload = (const uint8_t *)"hi",
                               .payload_len = 2};
    assert_int_equal(to_json(&m, "{\"channel\":\"general\",\"seq\":7,\"ts\":"
                                 "\"1732234567.000123\",\"nonce\":\"n-1\",\"payload\":\"hi\"}"),
                     0);
    static const uint8_t bin[] = {0xff, 0x00, 'f'};
    m = (struct herald_message){.seq = 1, .payload = bin, .payload_len = 3, .payload_binary = true};
    assert_int_equal(to_json(&m, "{\"seq\":1,\"ts\":\"0.000000\",\"nonce\":\"\","
                                 "\"payload_b64\":\"/wBm\"}"),
                     0);
    m.payload_len = 0;
    assert_int_equal(to_json(&m, "{\"seq\":1,\"ts\":\"0.000000\",\"nonce\":\"\","
                                 "\"payload_b64\":\"\"}"),
                     0);
    /* A text payload must be UTF-8: jansson refuses it otherwise. */
    m.payload_binary = false;
    m.payload_len = 3;
    char *text = (char *)"unset";
    assert_int_equal(herald_message_to_json(&m, &text), HD_ENOMEM);
    assert_null(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),   cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_ts_roundtrip), cmocka_unit_test(test_ts_garbage),
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_nonce_grows_with_time),
        cmocka_unit_test(test_channel_check),
        cmocka_unit_test(test_message_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
