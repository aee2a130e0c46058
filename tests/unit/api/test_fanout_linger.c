/* SPDX-License-Identifier: Apache-2.0 */
/* The delivery linger's policy (api/v1/fanout.c): it rises with the share
 * of the loop in write rounds up to 4 ms, past that only while the loop has
 * no idle time left (up to 16 ms), comes back down once the loop idles
 * again, and falls to none once write rounds are light. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fanout_internal.h"

#define MS 1000000u

/* The linger after n windows of the same load, from start. */
static uint64_t after(uint64_t start, int n, double busy, double idle)
{
    uint64_t l = start;
    for (int i = 0; i < n; i++) {
        l = fan__linger_next(l, busy, idle);
    }
    return l;
}

static void test_busy_rounds_raise_it_to_4_ms_while_the_loop_idles(void **state)
{
    (void)state;
    assert_int_equal(fan__linger_next(0, 0.6, 0.3), 1 * MS);
    assert_int_equal(fan__linger_next(1 * MS, 0.6, 0.3), 2 * MS);
    assert_int_equal(after(0, 10, 0.6, 0.3), 4 * MS);
    /* Between the two thresholds it holds. */
    assert_int_equal(fan__linger_next(2 * MS, 0.1, 0.3), 2 * MS);
}

static void test_a_saturated_loop_lets_it_rise_to_16_ms(void **state)
{
    (void)state;
    assert_int_equal(fan__linger_next(4 * MS, 0.6, 0.01), 8 * MS);
    assert_int_equal(after(0, 10, 0.6, 0.0), 16 * MS);
    /* Saturated by appends alone, with light write rounds: nothing waits. */
    assert_int_equal(after(0, 10, 0.01, 0.0), 0);
}

static void test_it_comes_back_down_once_the_loop_idles(void **state)
{
    (void)state;
    assert_int_equal(fan__linger_next(16 * MS, 0.6, 0.3), 8 * MS);
    assert_int_equal(after(16 * MS, 10, 0.6, 0.3), 4 * MS);
    assert_int_equal(after(16 * MS, 10, 0.01, 0.5), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_rounds_raise_it_to_4_ms_while_the_loop_idles),
        cmocka_unit_test(test_a_saturated_loop_lets_it_rise_to_16_ms),
        cmocka_unit_test(test_it_comes_back_down_once_the_loop_idles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
