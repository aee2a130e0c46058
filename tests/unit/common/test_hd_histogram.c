/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the /metrics histogram: bucket edges, cumulative counts, sum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_histogram.h"

/* Every value lands in the first bucket whose bound is at least the value. */
static void test_bucket_edges(void **state)
{
    (void)state;
    assert_int_equal(hd_histogram_bucket(0), 0);
    assert_int_equal(hd_histogram_bucket(1), 0);
    assert_int_equal(hd_histogram_bucket(2), 1);
    assert_int_equal(hd_histogram_bucket(3), 2);
    assert_int_equal(hd_histogram_bucket(4), 2);
    assert_int_equal(hd_histogram_bucket(5), 3);
    for (unsigned i = 1; i < HD_HISTOGRAM_BOUNDS; i++) {
        uint64_t b = hd_histogram_bound(i);
        assert_true(b == hd_histogram_bound(i - 1) * 2);
        assert_int_equal(hd_histogram_bucket(b), i);                  /* the bound itself */
        assert_int_equal(hd_histogram_bucket(b / 2 + 1), i);          /* just above the last */
        assert_int_equal(hd_histogram_bucket(b / 2), i - 1);
    }
    uint64_t top = hd_histogram_bound(HD_HISTOGRAM_BOUNDS - 1);
    assert_int_equal(hd_histogram_bucket(top), HD_HISTOGRAM_BOUNDS - 1);
    assert_int_equal(hd_histogram_bucket(top + 1), HD_HISTOGRAM_BOUNDS);
    assert_int_equal(hd_histogram_bucket(UINT64_MAX), HD_HISTOGRAM_BOUNDS);
}

/* A zeroed histogram is empty; observations give count, sum and the
 * cumulative counts Prometheus wants, monotone up to +Inf == count. */
static void test_observe_and_cumulative(void **state)
{
    (void)state;
    struct hd_histogram h;
    memset(&h, 0, sizeof h);
    for (unsigned i = 0; i <= HD_HISTOGRAM_BOUNDS; i++) {
        assert_true(hd_histogram_cumulative(&h, i) == 0);
    }
    static const uint64_t values[] = {0, 1, 2, 3, 100, 128, 129, 1000000, UINT64_C(1) << 40};
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        hd_histogram_observe(&h, values[i]);
        sum += values[i];
    }
    assert_true(h.count == 9);
    assert_true(h.sum == sum);
    assert_true(hd_histogram_cumulative(&h, 0) == 2); /* 0, 1 */
    assert_true(hd_histogram_cumulative(&h, 1) == 3); /* 2 */
    assert_true(hd_histogram_cumulative(&h, 2) == 4); /* 3 */
    assert_true(hd_histogram_cumulative(&h, 6) == 4); /* nothing in 5..64 */
    assert_true(hd_histogram_cumulative(&h, 7) == 6); /* 100, 128 */
    assert_true(hd_histogram_cumulative(&h, 8) == 7); /* 129 */
    assert_true(hd_histogram_cumulative(&h, 20) == 8); /* 1000000 <= 2^20 */
    assert_true(hd_histogram_cumulative(&h, HD_HISTOGRAM_BOUNDS - 1) == 8);
    assert_true(hd_histogram_cumulative(&h, HD_HISTOGRAM_BOUNDS) == 9); /* 2^40: +Inf */
    uint64_t prev = 0;
    for (unsigned i = 0; i <= HD_HISTOGRAM_BOUNDS; i++) {
        uint64_t c = hd_histogram_cumulative(&h, i);
        assert_true(c >= prev);
        prev = c;
    }
    assert_true(prev == h.count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_observe_and_cumulative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
