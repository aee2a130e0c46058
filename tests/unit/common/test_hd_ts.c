/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the API's decimal texts: u64 numbers and "SECONDS.MICROS" ts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_error.h"
#include "hd_ts.h"

static void test_u64_parse(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(hd_u64_parse("0", 1, &v), 0);
    assert_true(v == 0);
    assert_int_equal(hd_u64_parse("12", 2, &v), 0);
    assert_true(v == 12);
    assert_int_equal(hd_u64_parse("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(hd_u64_parse("00000000000000000007", 20, &v), 0);
    assert_true(v == 7);
    /* Only len bytes are read: no NUL needed. */
    assert_int_equal(hd_u64_parse("123x", 3, &v), 0);
    assert_true(v == 123);
    static const char *const bad[] = {"",   "-1", "+1", " 1", "1 ", "1a", "0x10", "1.0",
                                      "18446744073709551616", "99999999999999999999",
                                      "000000000000000000001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        if (hd_u64_parse(bad[i], strlen(bad[i]), &v) != HD_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_true(v == 42);
    }
    assert_int_equal(hd_u64_parse(NULL, 0, &v), HD_EINVAL);
}

static void test_ts_roundtrip(void **state)
{
    (void)state;
    uint64_t ts;
    char buf[HD_TS_STR_MAX];
    assert_int_equal(hd_ts_parse("1732234567.000123", 17, &ts), 0);
    assert_true(ts == 1732234567000123ULL);
    assert_int_equal(hd_ts_format(ts, buf, sizeof buf), 17);
    assert_string_equal(buf, "1732234567.000123");
    assert_int_equal(hd_ts_format(0, buf, sizeof buf), 8);
    assert_string_equal(buf, "0.000000");
    assert_int_equal(hd_ts_format(999999, buf, sizeof buf), 8);
    assert_string_equal(buf, "0.999999");
    assert_int_equal(hd_ts_parse("1732234567", 10, &ts), 0);
    assert_true(ts == 1732234567000000ULL);
    assert_int_equal(hd_ts_parse("5.5", 3, &ts), 0);
    assert_true(ts == 5500000ULL);
    assert_int_equal(hd_ts_parse("0.000001", 8, &ts), 0);
    assert_true(ts == 1);
    assert_int_equal(hd_ts_parse("007.25", 6, &ts), 0);
    assert_true(ts == 7250000ULL);
    /* The largest representable value round-trips without rounding. */
    uint64_t max_ts = (UINT64_MAX - 999999) / 1000000 * 1000000 + 999999;
    assert_int_equal(hd_ts_format(max_ts, buf, sizeof buf), 21);
    assert_string_equal(buf, "18446744073708.999999");
    assert_int_equal(hd_ts_parse(buf, strlen(buf), &ts), 0);
    assert_true(ts == max_ts);
    /* UINT64_MAX itself formats, and fits HD_TS_STR_MAX. */
    assert_int_equal(hd_ts_format(UINT64_MAX, buf, sizeof buf), 21);
    assert_string_equal(buf, "18446744073709.551615");
    /* A length shorter than the string is honoured. */
    assert_int_equal(hd_ts_parse("12.3456789", 4, &ts), 0);
    assert_true(ts == 12300000ULL);
}

static void test_ts_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", ".", "1.", ".5", "-1.000000", "+1.0", " 1.0", "1.0 ", "1.0000001", "1,000000",
        "1e6", "0x10", "1.00000a", "1..0", "abc", "18446744073709.551616",
        "99999999999999999999.000000", "1732234567.000123\n",
        /* Seconds past the limit even with a fraction that would fit. */
        "18446744073709", "18446744073709.000000", "1.-1", "1.+1", "1.0.0",
        "000000000000000000001.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ts = 42;
        if (hd_ts_parse(bad[i], strlen(bad[i]), &ts) != HD_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_true(ts == 42);
    }
    uint64_t ts = 42;
    assert_int_equal(hd_ts_parse(NULL, 0, &ts), HD_EINVAL);
    assert_int_equal(hd_ts_parse("1\0.5", 4, &ts), HD_EINVAL);
    assert_true(ts == 42);
    char small[8];
    assert_int_equal(hd_ts_format(1732234567000123ULL, small, sizeof small), HD_EINVAL);
    assert_string_equal(small, ""); /* never a cut ts that reads as another */
    char exact[18];
    assert_int_equal(hd_ts_format(1732234567000123ULL, exact, 17), HD_EINVAL);
    assert_int_equal(hd_ts_format(1732234567000123ULL, exact, 18), 17);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_parse),
        cmocka_unit_test(test_ts_roundtrip),
        cmocka_unit_test(test_ts_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
