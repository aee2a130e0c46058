/* SPDX-License-Identifier: Apache-2.0 */
/* The head cache (log/head_cache.c): a hit only for the very channel, a
 * colliding channel replaces it, long ids are never cached, drop and clear. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_alloc.h"
#include "log_internal.h"

static void test_hits_only_its_channel(void **state)
{
    (void)state;
    struct log_store ls;
    memset(&ls, 0, sizeof ls);
    assert_int_equal(log__head_cache_init(&ls), 0);
    uint64_t seq = 0, ts = 0;
    uint64_t h = 12345 | 1;
    assert_false(log__head_cache_get(&ls, h, "room-1", 6, &seq, &ts));
    log__head_cache_put(&ls, h, "room-1", 6, 7, 700);
    assert_true(log__head_cache_get(&ls, h, "room-1", 6, &seq, &ts));
    assert_true(seq == 7 && ts == 700);
    /* Same slot and hash, another id (a hash collision): a miss. */
    assert_false(log__head_cache_get(&ls, h, "room-2", 6, &seq, &ts));
    assert_false(log__head_cache_get(&ls, h, "room-10", 7, &seq, &ts));
    /* Another hash on the same slot replaces it. */
    uint64_t h2 = h + LOG_HEAD_CACHE_SLOTS;
    log__head_cache_put(&ls, h2, "room-3", 6, 9, 900);
    assert_false(log__head_cache_get(&ls, h, "room-1", 6, &seq, &ts));
    assert_true(log__head_cache_get(&ls, h2, "room-3", 6, &seq, &ts));
    assert_true(seq == 9 && ts == 900);
    /* Drop forgets only the channel it names. */
    log__head_cache_drop(&ls, h);
    assert_true(log__head_cache_get(&ls, h2, "room-3", 6, &seq, &ts));
    log__head_cache_drop(&ls, h2);
    assert_false(log__head_cache_get(&ls, h2, "room-3", 6, &seq, &ts));
    hd_free(ls.heads);
}

static void test_long_ids_and_clear(void **state)
{
    (void)state;
    struct log_store ls;
    memset(&ls, 0, sizeof ls);
    assert_int_equal(log__head_cache_init(&ls), 0);
    char id[128];
    memset(id, 'a', sizeof id);
    uint64_t seq = 0, ts = 0;
    log__head_cache_put(&ls, 77, id, LOG_HEAD_CACHE_ID_MAX, 1, 10);
    assert_true(log__head_cache_get(&ls, 77, id, LOG_HEAD_CACHE_ID_MAX, &seq, &ts));
    log__head_cache_put(&ls, 79, id, LOG_HEAD_CACHE_ID_MAX + 1, 2, 20);
    assert_false(log__head_cache_get(&ls, 79, id, LOG_HEAD_CACHE_ID_MAX + 1, &seq, &ts));
    log__head_cache_put(&ls, 81, id, sizeof id, 3, 30);
    assert_false(log__head_cache_get(&ls, 81, id, sizeof id, &seq, &ts));
    log__head_cache_put(&ls, 83, "b", 1, 4, 40);
    log__head_cache_clear(&ls);
    assert_false(log__head_cache_get(&ls, 77, id, LOG_HEAD_CACHE_ID_MAX, &seq, &ts));
    assert_false(log__head_cache_get(&ls, 83, "b", 1, &seq, &ts));
    hd_free(ls.heads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hits_only_its_channel),
        cmocka_unit_test(test_long_ids_and_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
