/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the channel state machine: seq/ts rule, dedup, re-apply, reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "entry.h"
#include "hd_error.h"
#include "log.h"
#include "test_dirs.h"

#define HOUR_US (3600ull * 1000000ull)

struct fixture {
    char dir[64];
    struct log_store *ls;
};

static void open_store(struct fixture *f)
{
    char err[256];
    struct log_options o = {.dir = f->dir, .n_shards = 1, .dedup_window_us = HOUR_US};
    assert_int_equal(log_store_open(&f->ls, &o, err, sizeof err), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_dir_make(f->dir, sizeof f->dir, "apply");
    open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    log_store_close(f->ls);
    test_dir_remove(f->dir);
    free(f);
    return 0;
}

/* Applies one entry holding the given (channel, nonce) pairs. */
static int apply(struct fixture *f, uint64_t index, uint64_t stamp,
                 const char **channels, const char **nonces, size_t n,
                 struct log_result *results)
{
    struct log_append a[16];
    for (size_t i = 0; i < n; i++) {
        a[i] = (struct log_append){channels[i], strlen(channels[i]), nonces[i],
                                   strlen(nonces[i]), (const uint8_t *)nonces[i],
                                   strlen(nonces[i])};
    }
    struct log_entry_header h = {.stamp_us = stamp, .proposer = 1, .proposal = index,
                                 .count = (uint32_t)n};
    size_t len = log_entry_size(a, n);
    uint8_t *buf = malloc(len);
    log_entry_encode(buf, &h, a, n);
    int rv = log_apply(f->ls, 0, index, buf, len, results, 16);
    free(buf);
    return rv;
}

static void test_seq_gapless_ts_strictly_increasing(void **state)
{
    struct fixture *f = *state;
    const char *ch[] = {"a", "b", "a", "a"};
    const char *no[] = {"1", "2", "3", "4"};
    struct log_result r[16];
    /* The same stamp for all: ts must still increase by 1 per message. */
    assert_int_equal(apply(f, 1, 1000, ch, no, 4, r), 0);
    assert_true(r[0].seq == 1 && r[0].ts == 1000);
    assert_true(r[1].seq == 1 && r[1].ts == 1000);
    assert_true(r[2].seq == 2 && r[2].ts == 1001);
    assert_true(r[3].seq == 3 && r[3].ts == 1002);
    /* A later entry with an older stamp (clock went back): ts still grows. */
    const char *no2[] = {"5"};
    assert_int_equal(apply(f, 2, 500, ch, no2, 1, r), 0);
    assert_true(r[0].seq == 4 && r[0].ts == 1003);
    assert_false(r[0].duplicate);
    uint64_t seq, ts;
    assert_int_equal(log_head(f->ls, "a", 1, &seq, &ts), 0);
    assert_true(seq == 4 && ts == 1003);
}

/* Ids longer than the head cache keeps inline are read from state on each
 * append: their seqs go on the same, across entries and a reopen. */
static void test_heads_of_long_channel_ids(void **state)
{
    struct fixture *f = *state;
    char c39[40], c40[41], c128[129];
    memset(c39, 'x', 39), c39[39] = '\0';
    memset(c40, 'y', 40), c40[40] = '\0';
    memset(c128, 'z', 128), c128[128] = '\0';
    const char *ch[] = {c39, c40, c128, c40};
    struct log_result r[16];
    uint64_t index = 1;
    for (uint64_t round = 0; round < 3; round++) {
        if (round == 2) { /* the cache starts empty again */
            log_store_close(f->ls);
            open_store(f);
        }
        char n[4][16];
        const char *no[4];
        for (int i = 0; i < 4; i++) {
            snprintf(n[i], sizeof n[i], "r%llu-%d", (unsigned long long)round, i);
            no[i] = n[i];
        }
        assert_int_equal(apply(f, index++, 1000 + round, ch, no, 4, r), 0);
        assert_int_equal(r[0].seq, round + 1);
        assert_int_equal(r[1].seq, 2 * round + 1);
        assert_int_equal(r[2].seq, round + 1);
        assert_int_equal(r[3].seq, 2 * round + 2);
        assert_true(r[3].ts > r[1].ts);
    }
    uint64_t seq, ts;
    assert_int_equal(log_head(f->ls, c40, 40, &seq, &ts), 0);
    assert_int_equal(seq, 6);
    assert_int_equal(log_head(f->ls, c128, 128, &seq, &ts), 0);
    assert_int_equal(seq, 3);
}

static void test_duplicate_returns_original(void **state)
{
    struct fixture *f = *state;
    const char *ch[] = {"a", "a"};
    const char *no[] = {"x", "x"};
    struct log_result r[16];
    /* The same nonce twice within one entry: the second is the duplicate. */
    assert_int_equal(apply(f, 1, 1000, ch, no, 2, r), 0);
    assert_true(r[0].seq == 1 && !r[0].duplicate);
    assert_true(r[1].seq == 1 && r[1].ts == 1000 && r[1].duplicate);
    /* And in a later entry, inside the window. */
    assert_int_equal(apply(f, 2, 1000 + HOUR_US - 1, ch, no, 1, r), 0);
    assert_true(r[0].seq == 1 && r[0].ts == 1000 && r[0].duplicate);
    uint64_t seq, ts;
    assert_int_equal(log_head(f->ls, "a", 1, &seq, &ts), 0);
    assert_true(seq == 1);
    /* The same nonce on another channel is another message. */
    const char *ch2[] = {"b"};
    assert_int_equal(apply(f, 3, 2000, ch2, no, 1, r), 0);
    assert_false(r[0].duplicate);
}

static void test_duplicate_window_expires_by_entry_stamp(void **state)
{
    struct fixture *f = *state;
    const char *ch[] = {"a"};
    const char *no[] = {"x"};
    struct log_result r[16];
    assert_int_equal(apply(f, 1, 1000, ch, no, 1, r), 0);
    assert_int_equal(apply(f, 2, 1000 + HOUR_US, ch, no, 1, r), 0);
    assert_false(r[0].duplicate);
    assert_true(r[0].seq == 2);
}

static void test_reapply_is_skipped(void **state)
{
    struct fixture *f = *state;
    const char *ch[] = {"a"};
    const char *no[] = {"x"};
    struct log_result r[16];
    assert_int_equal(apply(f, 1, 1000, ch, no, 1, r), 0);
    assert_int_equal(apply(f, 1, 1000, ch, no, 1, r), HD_EEXIST);
    const char *no2[] = {"y"};
    assert_int_equal(apply(f, 1, 1000, ch, no2, 1, r), HD_EEXIST);
    uint64_t seq, ts, applied;
    assert_int_equal(log_head(f->ls, "a", 1, &seq, &ts), 0);
    assert_true(seq == 1);
    assert_int_equal(log_applied_index(f->ls, 0, &applied), 0);
    assert_true(applied == 1);
}

/* The applied index an apply remembers (log/state_write.c) gives way to
 * any other write of it: a rebase forward, then back, is what the next
 * apply checks against, as a read of state would. */
static void test_applied_index_follows_other_writes(void **state)
{
    struct fixture *f = *state;
    const char *ch[] = {"a"};
    const char *no[] = {"x"}, *no2[] = {"y"}, *no3[] = {"z"};
    struct log_result r[16];
    assert_int_equal(apply(f, 1, 1000, ch, no, 1, r), 0);
    assert_int_equal(log_state_rebase(f->ls, 0, 10), 0);
    assert_int_equal(apply(f, 2, 1000, ch, no2, 1, r), HD_EEXIST);
    assert_int_equal(apply(f, 10, 1000, ch, no2, 1, r), HD_EEXIST);
    assert_int_equal(apply(f, 11, 1000, ch, no2, 1, r), 0);
    assert_int_equal(log_state_rebase(f->ls, 0, 5), 0);
    assert_int_equal(apply(f, 6, 1000, ch, no3, 1, r), 0);
    uint64_t applied;
    assert_int_equal(log_applied_index(f->ls, 0, &applied), 0);
    assert_true(applied == 6);
    assert_int_equal(apply(f, 6, 1000, ch, no3, 1, r), HD_EEXIST);
}

static void test_corrupt_entry_changes_nothing(void **state)
{
    struct fixture *f = *state;
    uint8_t junk[64] = {1, 1, 0, 0, 1};
    struct log_result r[4];
    assert_int_equal(log_apply(f->ls, 0, 1, junk, sizeof junk, r, 4), HD_ECORRUPT);
    uint64_t applied;
    assert_int_equal(log_applied_index(f->ls, 0, &applied), 0);
    assert_true(applied == 0);
}

static void test_entry_of_another_shard_is_corrupt(void **state)
{
    struct fixture *f = *state;
    struct log_append a = {"a", 1, "x", 1, (const uint8_t *)"p", 1};
    struct log_entry_header h = {.stamp_us = 1, .proposer = 1, .proposal = 1, .count = 1};
    uint8_t buf[128];
    log_entry_encode(buf, &h, &a, 1);
    struct log_result r[1];
    /* With one shard every channel is in shard 0, never in shard 1. */
    assert_int_equal(log_apply(f->ls, 1, 1, buf, log_entry_size(&a, 1), r, 1), HD_ECORRUPT);
    uint64_t seq, ts;
    assert_int_equal(log_head(f->ls, "a", 1, &seq, &ts), 0);
    assert_true(seq == 0);
}

struct collected {
    uint64_t seqs[64];
    uint64_t ts[64];
    size_t n;
};

static int collect(void *arg, const struct log_message *m)
{
    struct collected *c = arg;
    c->seqs[c->n] = m->seq;
    c->ts[c->n] = m->ts;
    c->n++;
    return 0;
}

static void test_read_range_and_ts_lookup(void **state)
{
    struct fixture *f = *state;
    const char *ch[] = {"a"};
    char nonce[8];
    const char *no[] = {nonce};
    struct log_result r[16];
    for (uint64_t i = 1; i <= 10; i++) {
        snprintf(nonce, sizeof nonce, "n%llu", (unsigned long long)i);
        assert_int_equal(apply(f, i, i * 100, ch, no, 1, r), 0);
    }
    struct collected c = {0};
    uint64_t next;
    assert_int_equal(log_read(f->ls, "a", 1, 3, 4, collect, &c, &next), 0);
    assert_int_equal(c.n, 4);
    assert_true(c.seqs[0] == 4 && c.seqs[3] == 7 && next == 8);
    assert_true(c.ts[0] == 400);
    uint64_t seq;
    assert_int_equal(log_seq_at_ts(f->ls, "a", 1, 450, &seq), 0);
    assert_true(seq == 4);
    assert_int_equal(log_seq_at_ts(f->ls, "a", 1, 50, &seq), 0);
    assert_true(seq == 0);
    assert_int_equal(log_seq_at_ts(f->ls, "a", 1, 5000, &seq), 0);
    assert_true(seq == 10);
    c.n = 0;
    assert_int_equal(log_read(f->ls, "b", 1, 0, 10, collect, &c, &next), 0);
    assert_int_equal(c.n, 0);
}

static void test_flushed_state_survives_reopen(void **state)
{
    struct fixture *f = *state;
    const char *ch[] = {"a"};
    const char *no[] = {"x"};
    struct log_result r[16];
    assert_int_equal(apply(f, 1, 1000, ch, no, 1, r), 0);
    assert_int_equal(log_flush(f->ls), 0);
    log_store_close(f->ls);
    open_store(f);
    uint64_t applied, seq, ts;
    assert_int_equal(log_applied_index(f->ls, 0, &applied), 0);
    assert_true(applied == 1);
    assert_int_equal(log_head(f->ls, "a", 1, &seq, &ts), 0);
    assert_true(seq == 1 && ts == 1000);
    assert_int_equal(apply(f, 2, 1000, ch, no, 1, r), 0);
    assert_true(r[0].duplicate && r[0].seq == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq_gapless_ts_strictly_increasing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heads_of_long_channel_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_returns_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_window_expires_by_entry_stamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reapply_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applied_index_follows_other_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_entry_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_of_another_shard_is_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_range_and_ts_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flushed_state_survives_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
