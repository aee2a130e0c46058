/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for libherald's URL, ts, nonce, base64 and channel helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client_internal.h"
#include "hd_error.h"

static int parse(const char *url, char *host, char *port, char *path)
{
    return herald__url_parse(url, host, 256, port, 8, path, 256);
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
}

static void test_url_bad(void **state)
{
    (void)state;
    char host[256], port[8], path[256];
    static const char *const bad[] = {
        "",  "127.0.0.1:7400", "https://h:1", "http://", "http://:80", "http://h:",
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

static void test_ts_roundtrip(void **state)
{
    (void)state;
    uint64_t ts;
    char buf[HERALD_TS_STR_MAX];
    assert_int_equal(herald_ts_parse("1732234567.000123", 17, &ts), 0);
    assert_true(ts == 1732234567000123ULL);
    assert_int_equal(herald_ts_format(ts, buf, sizeof buf), 17);
    assert_string_equal(buf, "1732234567.000123");
    assert_int_equal(herald_ts_format(0, buf, sizeof buf), 8);
    assert_string_equal(buf, "0.000000");
    assert_int_equal(herald_ts_format(999999, buf, sizeof buf), 8);
    assert_string_equal(buf, "0.999999");
    assert_int_equal(herald_ts_parse("1732234567", 10, &ts), 0);
    assert_true(ts == 1732234567000000ULL);
    assert_int_equal(herald_ts_parse("5.5", 3, &ts), 0);
    assert_true(ts == 5500000ULL);
    assert_int_equal(herald_ts_parse("0.000001", 8, &ts), 0);
    assert_true(ts == 1);
    /* The largest representable value round-trips without rounding. */
    uint64_t max_ts = (UINT64_MAX - 999999) / 1000000 * 1000000 + 999999;
    herald_ts_format(max_ts, buf, sizeof buf);
    assert_int_equal(herald_ts_parse(buf, strlen(buf), &ts), 0);
    assert_true(ts == max_ts);
    /* A length shorter than the string is honoured. */
    assert_int_equal(herald_ts_parse("12.3456789", 4, &ts), 0);
    assert_true(ts == 12300000ULL);
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

static void test_base64(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                        "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        struct herald__buf b = {0};
        assert_int_equal(herald__b64_encode((const uint8_t *)plain[i], strlen(plain[i]), &b), 0);
        assert_string_equal(b.data, coded[i]);
        uint8_t out[16];
        size_t n;
        assert_int_equal(herald__b64_decode(coded[i], strlen(coded[i]), out, &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
        herald__buf_free(&b);
    }
    uint8_t out[16];
    size_t n;
    assert_int_equal(herald__b64_decode("Zm9", 3, out, &n), HD_EINVAL);
    assert_int_equal(herald__b64_decode("Zm=v", 4, out, &n), HD_EINVAL);
    assert_int_equal(herald__b64_decode("Z===", 4, out, &n), HD_EINVAL);
    assert_int_equal(herald__b64_decode("Zm9v!A==", 8, out, &n), HD_EINVAL);
    assert_int_equal(herald__b64_decode("Zg==Zg==", 8, out, &n), HD_EINVAL);
}

static void test_channel_valid(void **state)
{
    (void)state;
    char max[HERALD_CHANNEL_MAX + 2];
    memset(max, 'a', HERALD_CHANNEL_MAX);
    max[HERALD_CHANNEL_MAX] = '\0';
    assert_true(herald__channel_valid("general"));
    assert_true(herald__channel_valid("team-1.room:2_x"));
    assert_true(herald__channel_valid(max));
    max[HERALD_CHANNEL_MAX] = 'a';
    max[HERALD_CHANNEL_MAX + 1] = '\0';
    assert_false(herald__channel_valid(max));
    assert_false(herald__channel_valid(""));
    assert_false(herald__channel_valid("a/b"));
    assert_false(herald__channel_valid("a b"));
    assert_false(herald__channel_valid("a?x=1"));
    assert_false(herald__channel_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),   cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_ts_roundtrip), cmocka_unit_test(test_ts_garbage),
        cmocka_unit_test(test_nonce),      cmocka_unit_test(test_base64),
        cmocka_unit_test(test_channel_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
