/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for herald bench's statistics and answer verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bench_internal.h"

static void test_percentile(void **state)
{
    (void)state;
    uint64_t v[1000];
    for (int i = 0; i < 1000; i++) v[i] = (uint64_t)i + 1; /* 1..1000 */
    assert_int_equal(bench_percentile(v, 1000, 0.50), 500);
    assert_int_equal(bench_percentile(v, 1000, 0.90), 900);
    assert_int_equal(bench_percentile(v, 1000, 0.99), 990);
    assert_int_equal(bench_percentile(v, 1000, 0.999), 999);
    assert_int_equal(bench_percentile(v, 1000, 1.0), 1000);
    assert_int_equal(bench_percentile(v, 1000, 0.0), 1);
    assert_int_equal(bench_percentile(v, 1, 0.999), 1);
    assert_int_equal(bench_percentile(v, 0, 0.5), 0);
    uint64_t two[2] = {10, 20};
    assert_int_equal(bench_percentile(two, 2, 0.5), 10);
    assert_int_equal(bench_percentile(two, 2, 0.51), 20);
}

static void test_check_answer(void **state)
{
    (void)state;
    char buf[16];
    static const char good[] =
        "{\"channel\":\"c\",\"seq\":3,\"ts\":\"1732234567.000123\",\"duplicate\":false}";
    assert_null(bench_check_answer(201, good, strlen(good), buf, sizeof buf));
    assert_string_equal(bench_check_answer(200, good, strlen(good), buf, sizeof buf),
                        "duplicate");
    assert_string_equal(bench_check_answer(503, "", 0, buf, sizeof buf), "503");
    static const char *const bad[] = {
        "", "{}", "not json", "{\"seq\":0,\"ts\":\"1.000000\"}", "{\"seq\":\"3\",\"ts\":\"1.0\"}",
        "{\"seq\":3}", "{\"seq\":3,\"ts\":\"1.0\",\"duplicate\":true}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *kind = bench_check_answer(201, bad[i], strlen(bad[i]), buf, sizeof buf);
        if (kind == NULL || strcmp(kind, "bad_answer") != 0) fail_msg("accepted %s", bad[i]);
    }
}

static void test_error_table(void **state)
{
    (void)state;
    struct bench_result res;
    memset(&res, 0, sizeof res);
    bench_count_error(&res, "503");
    bench_count_error(&res, "io");
    bench_count_error(&res, "503");
    assert_int_equal(res.error_kinds, 2);
    assert_string_equal(res.errors[0].kind, "503");
    assert_int_equal(res.errors[0].count, 2);
    char kind[16];
    for (int i = 0; i < 100; i++) {
        snprintf(kind, sizeof kind, "k%d", i);
        bench_count_error(&res, kind);
    }
    assert_int_equal(res.error_kinds, BENCH_ERROR_KINDS_MAX);
    assert_string_equal(res.errors[BENCH_ERROR_KINDS_MAX - 1].kind, "other");
    uint64_t total = 0;
    for (int i = 0; i < res.error_kinds; i++) total += res.errors[i].count;
    assert_int_equal(total, 103);
    for (uint64_t i = 0; i < 100000; i++) assert_true(bench_record_latency(&res, i));
    assert_int_equal(res.lat_len, 100000);
    assert_int_equal(res.lat_us[99999], 99999);
    bench_result_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile),
        cmocka_unit_test(test_check_answer),
        cmocka_unit_test(test_error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
