/* SPDX-License-Identifier: Apache-2.0 */
/* Memtable insert hints (st_rocks_options.insert_hint): keys put in order
 * within their hint prefix, interleaved across prefixes, out of order, and
 * after range deletions read back exactly, in order, from the memtable and
 * from files; and a range deletion that begins at a key with a hint, which
 * would break RocksDB 7.8's memtable, stops the process before RocksDB
 * sees it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hd_util.h"
#include "rocks.h"
#include "rocks_open.h"
#include "test_child.h"
#include "test_dirs.h"

#define CHANNELS 50u
#define SEQS 300u
#define BACKWARDS 7u      /* this channel's seqs are put last to first */
#define TRIMMED 3u        /* seqs below TRIM_UNTIL of this channel go */
#define TRIM_UNTIL 100u
#define DELETED 4u        /* every key of this channel goes */

/* Keys "c<n>/<be64 seq>". The hint prefix is the channel, "c<n>/", and only
 * keys longer than it have one, as herald's own (log/keys.h). */
static size_t channel_part(const void *key, size_t len)
{
    const char *slash = memchr(key, '/', len);
    return slash != NULL ? (size_t)(slash - (const char *)key) + 1 : 0;
}

static size_t channel_hint(const void *key, size_t len)
{
    size_t n = channel_part(key, len);
    return n > 0 && len > n ? n : 0;
}

static struct st_rocks *open_at(const char *dir)
{
    struct st_rocks_options o = {.dir = dir, .insert_hint = channel_hint};
    return test_rocks_open(&o);
}

static size_t key_of(uint8_t *k, unsigned channel, uint64_t seq)
{
    int n = snprintf((char *)k, 16, "c%u/", channel);
    hd_put_be64(k + n, seq);
    return (size_t)n + 8;
}

/* Puts seqs (from, to] of every channel in one batch per seq: each batch
 * goes once across every channel, so consecutive inserts alternate hint
 * prefixes; channel BACKWARDS gets its seqs from the top down. */
static void put_seqs(struct st_rocks *r, uint64_t from, uint64_t to)
{
    struct st_batch *b = NULL;
    assert_int_equal(st_batch_init(&b), 0);
    for (uint64_t s = from + 1; s <= to; s++) {
        for (unsigned c = 0; c < CHANNELS; c++) {
            uint8_t k[32];
            uint64_t seq = c == BACKWARDS ? to - (s - from - 1) : s;
            size_t n = key_of(k, c, seq);
            st_batch_put(b, k, n, k, n); /* the value is the key */
        }
        assert_int_equal(st_rocks_write(r, b), 0);
        st_batch_clear(b);
    }
    st_batch_close(b);
}

/* Channel TRIMMED loses seqs below TRIM_UNTIL and channel DELETED all, each
 * by a range deletion that begins at the channel part: a key without a hint. */
static void delete_ranges(struct st_rocks *r)
{
    struct st_batch *b = NULL;
    assert_int_equal(st_batch_init(&b), 0);
    uint8_t lower[32], upper[32];
    size_t lower_len = (size_t)snprintf((char *)lower, sizeof lower, "c%u/", TRIMMED);
    size_t upper_len = key_of(upper, TRIMMED, TRIM_UNTIL);
    st_batch_delete_range(b, lower, lower_len, upper, upper_len);
    lower_len = (size_t)snprintf((char *)lower, sizeof lower, "c%u/", DELETED);
    upper_len = (size_t)snprintf((char *)upper, sizeof upper, "c%u0", DELETED); /* '0' follows '/' */
    st_batch_delete_range(b, lower, lower_len, upper, upper_len);
    assert_int_equal(st_rocks_write(r, b), 0);
    st_batch_close(b);
}

/* Every key there should be, once each, in key order, and nothing else:
 * seqs 1..SEQS of each channel, but of TRIMMED only those from TRIM_UNTIL
 * and of DELETED only those put after the deletions (above after_delete). */
static void check_all(struct st_rocks *r, uint64_t after_delete)
{
    struct st_iter *it = NULL;
    assert_int_equal(st_iter_open(&it, r, "c", 1, "d", 1), 0);
    uint8_t want[32];
    unsigned found = 0;
    uint8_t prev[32];
    size_t prev_len = 0;
    for (; st_iter_valid(it); st_iter_next(it)) {
        size_t len = 0, vlen = 0;
        const uint8_t *k = st_iter_key(it, &len);
        const uint8_t *v = st_iter_value(it, &vlen);
        assert_true(len == vlen && memcmp(k, v, len) == 0);
        if (prev_len > 0) {
            size_t m = prev_len < len ? prev_len : len;
            int cmp = memcmp(prev, k, m);
            assert_true(cmp < 0 || (cmp == 0 && prev_len < len));
        }
        memcpy(prev, k, len);
        prev_len = len;
        unsigned c = (unsigned)strtoul((const char *)k + 1, NULL, 10);
        uint64_t seq = hd_get_be64(k + channel_part(k, len));
        assert_int_equal(key_of(want, c, seq), len);
        if (c == TRIMMED) {
            assert_true(seq >= TRIM_UNTIL || seq > after_delete);
        }
        if (c == DELETED) {
            assert_true(seq > after_delete);
        }
        found++;
    }
    assert_int_equal(st_iter_status(it), 0);
    st_iter_close(it);
    /* TRIMMED lost seqs 1..TRIM_UNTIL-1 (all put before the deletion),
     * DELETED every seq put before it. */
    assert_int_equal(found, CHANNELS * SEQS - (TRIM_UNTIL - 1) - (unsigned)after_delete);
}

static void test_hinted_inserts_read_back_in_order(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "rocks-hint");
    struct st_rocks *r = open_at(dir);
    put_seqs(r, 0, 200);
    delete_ranges(r);
    put_seqs(r, 200, SEQS); /* puts after range deletions (RocksDB #5118) */
    check_all(r, 200);
    assert_int_equal(st_rocks_flush(r), 0);
    check_all(r, 200);
    st_rocks_close(r);
    r = open_at(dir);
    check_all(r, 200);
    st_rocks_close(r);
    test_dir_remove(dir);
}

/* The child's part: a range deletion from a key with a hint. */
static void range_from_hinted_key(const char *dir)
{
    struct st_rocks *r = open_at(dir);
    struct st_batch *b = NULL;
    if (st_batch_init(&b) != 0) {
        _exit(102);
    }
    uint8_t lower[32], upper[32];
    size_t lower_len = key_of(lower, 1, 0);
    size_t upper_len = key_of(upper, 1, 10);
    st_batch_delete_range(b, lower, lower_len, upper, upper_len);
    st_rocks_write(r, b); /* must not return */
    _exit(103);
}

static void test_range_deletion_from_a_hinted_key_stops(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "rocks-hint");
    char log[4096];
    int status = test_child_run("range", dir, log, sizeof log);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    assert_non_null(strstr(log, "assertion failed: hint_(begin.data(), begin.size()) == 0"));
    test_dir_remove(dir);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "range") == 0) {
        range_from_hinted_key(argv[2]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hinted_inserts_read_back_in_order),
        cmocka_unit_test(test_range_deletion_from_a_hinted_key_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
