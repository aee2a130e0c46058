/* SPDX-License-Identifier: Apache-2.0 */
/* The head cache (log/head_cache.c): a hit only for the very channel, a set
 * keeps its four newest channels, long ids are never cached, drop and
 * clear. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "hd_alloc.h"
#include "log_internal.h"

/* A hash of the same set as h: the set is chosen by the bits above the
 * lowest, modulo the count of sets. */
static uint64_t same_set(uint64_t h, unsigned k)
{
    return h + 2ull * k * (LOG_HEAD_CACHE_SLOTS / LOG_HEAD_CACHE_WAYS);
}

static void test_hits_only_its_channel(void **state)
{
    (void)state;
    struct log_store ls;
    memset(&ls, 0, sizeof ls);
    assert_int_equal(log__head_cache_init(&ls), 0);
    assert_true((uintptr_t)ls.heads % 64 == 0);
    uint64_t seq = 0, ts = 0;
    uint64_t h = 12345 | 1;
    assert_false(log__head_cache_get(&ls, h, "room-1", 6, &seq, &ts));
    log__head_cache_put(&ls, h, "room-1", 6, 7, 700);
    assert_true(log__head_cache_get(&ls, h, "room-1", 6, &seq, &ts));
    assert_true(seq == 7 && ts == 700);
    /* Same hash, another id (a hash collision): a miss. */
    assert_false(log__head_cache_get(&ls, h, "room-2", 6, &seq, &ts));
    assert_false(log__head_cache_get(&ls, h, "room-10", 7, &seq, &ts));
    /* Both can be held: the colliding id takes another way. */
    log__head_cache_put(&ls, h, "room-2", 6, 3, 300);
    assert_true(log__head_cache_get(&ls, h, "room-1", 6, &seq, &ts));
    assert_true(seq == 7 && ts == 700);
    assert_true(log__head_cache_get(&ls, h, "room-2", 6, &seq, &ts));
    assert_true(seq == 3 && ts == 300);
    /* Drop forgets the hash it names, and nothing of another. */
    uint64_t h2 = same_set(h, 1);
    log__head_cache_put(&ls, h2, "room-3", 6, 9, 900);
    log__head_cache_drop(&ls, h);
    assert_false(log__head_cache_get(&ls, h, "room-1", 6, &seq, &ts));
    assert_false(log__head_cache_get(&ls, h, "room-2", 6, &seq, &ts));
    assert_true(log__head_cache_get(&ls, h2, "room-3", 6, &seq, &ts));
    assert_true(seq == 9 && ts == 900);
    log__head_cache_free(&ls);
}

static void test_set_keeps_its_newest_channels(void **state)
{
    (void)state;
    struct log_store ls;
    memset(&ls, 0, sizeof ls);
    assert_int_equal(log__head_cache_init(&ls), 0);
    uint64_t seq = 0, ts = 0;
    uint64_t h = 777 | 1;
    char id[8];
    for (unsigned k = 0; k < LOG_HEAD_CACHE_WAYS; k++) {
        snprintf(id, sizeof id, "ch-%u", k);
        log__head_cache_put(&ls, same_set(h, k), id, strlen(id), k + 1, 100 + k);
    }
    for (unsigned k = 0; k < LOG_HEAD_CACHE_WAYS; k++) {
        snprintf(id, sizeof id, "ch-%u", k);
        assert_true(log__head_cache_get(&ls, same_set(h, k), id, strlen(id), &seq, &ts));
        assert_true(seq == k + 1 && ts == 100 + k);
    }
    /* A new head of a held channel changes it in place: nothing leaves. */
    log__head_cache_put(&ls, same_set(h, 0), "ch-0", 4, 50, 500);
    assert_true(log__head_cache_get(&ls, same_set(h, 0), "ch-0", 4, &seq, &ts));
    assert_true(seq == 50 && ts == 500);
    assert_true(log__head_cache_get(&ls, same_set(h, 1), "ch-1", 4, &seq, &ts));
    /* One channel more: the oldest put leaves, the others stay. */
    log__head_cache_put(&ls, same_set(h, 9), "ch-9", 4, 10, 1000);
    assert_false(log__head_cache_get(&ls, same_set(h, 0), "ch-0", 4, &seq, &ts));
    for (unsigned k = 1; k < LOG_HEAD_CACHE_WAYS; k++) {
        snprintf(id, sizeof id, "ch-%u", k);
        assert_true(log__head_cache_get(&ls, same_set(h, k), id, strlen(id), &seq, &ts));
        assert_true(seq == k + 1);
    }
    assert_true(log__head_cache_get(&ls, same_set(h, 9), "ch-9", 4, &seq, &ts));
    /* A dropped way is taken before any held channel leaves. */
    log__head_cache_drop(&ls, same_set(h, 2));
    log__head_cache_put(&ls, same_set(h, 8), "ch-8", 4, 11, 1100);
    assert_true(log__head_cache_get(&ls, same_set(h, 1), "ch-1", 4, &seq, &ts));
    assert_true(log__head_cache_get(&ls, same_set(h, 3), "ch-3", 4, &seq, &ts));
    assert_true(log__head_cache_get(&ls, same_set(h, 9), "ch-9", 4, &seq, &ts));
    assert_true(log__head_cache_get(&ls, same_set(h, 8), "ch-8", 4, &seq, &ts));
    assert_true(seq == 11 && ts == 1100);
    /* Another set is untouched by all this. */
    assert_false(log__head_cache_get(&ls, h + 2, "ch-0", 4, &seq, &ts));
    log__head_cache_free(&ls);
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
    log__head_cache_free(&ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hits_only_its_channel),
        cmocka_unit_test(test_set_keeps_its_newest_channels),
        cmocka_unit_test(test_long_ids_and_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
