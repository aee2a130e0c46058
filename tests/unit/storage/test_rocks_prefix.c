/* SPDX-License-Identifier: Apache-2.0 */
/* st_iter_open_last under prefix filters: the last key of a prefix is found
 * wherever it lies (memtable, level-0 file, a compacted level), a prefix
 * never written finds nothing, and files written without the prefix
 * function, or under another prefix name, are still searched: their filters
 * hold no prefixes, and trusting them would lose a channel's head. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_util.h"
#include "rocks.h"
#include "rocks_open.h"
#include "test_dirs.h"

#define CHANNELS 300u
#define NEVER 100u /* channels CHANNELS .. CHANNELS + NEVER are never written */

/* The prefix of "c<n>/<be64 seq>" is "c<n>/"; keys without '/' have none. */
static size_t slash_prefix(const void *key, size_t len)
{
    const char *slash = memchr(key, '/', len);
    return slash != NULL ? (size_t)(slash - (const char *)key) + 1 : 0;
}

static struct st_rocks *open_at(const char *dir, const char *prefix_name)
{
    struct st_rocks_options o = {.dir = dir};
    if (prefix_name != NULL) {
        o.prefix = slash_prefix;
        o.prefix_name = prefix_name;
    }
    return test_rocks_open(&o);
}

static size_t key_of(uint8_t *k, unsigned channel, uint64_t seq)
{
    int n = snprintf((char *)k, 16, "c%u/", channel);
    hd_put_be64(k + n, seq);
    return (size_t)n + 8;
}

/* Puts seqs (from, to] of every channel whose number is 1 mod step. */
static void put_range(struct st_rocks *r, unsigned step, uint64_t from, uint64_t to)
{
    struct st_batch *b = NULL;
    assert_int_equal(st_batch_init(&b), 0);
    for (unsigned c = 0; c < CHANNELS; c++) {
        if (c % step != 1 % step) {
            continue;
        }
        for (uint64_t s = from + 1; s <= to; s++) {
            uint8_t k[32];
            char v[32];
            int n = snprintf(v, sizeof v, "v%u.%llu", c, (unsigned long long)s);
            st_batch_put(b, k, key_of(k, c, s), v, (size_t)n);
        }
    }
    assert_int_equal(st_rocks_write(r, b), 0);
    st_batch_close(b);
}

/* The last seq of channel c (0 if none), through st_iter_open_last. */
static uint64_t last_seq(struct st_rocks *r, unsigned c)
{
    uint8_t lower[32], upper[32];
    size_t lower_len = key_of(lower, c, 0);
    size_t upper_len = key_of(upper, c, UINT64_MAX);
    struct st_iter *it = NULL;
    assert_int_equal(st_iter_open_last(&it, r, lower, lower_len, upper, upper_len), 0);
    uint64_t seq = 0;
    if (st_iter_valid(it)) {
        size_t klen, vlen;
        const uint8_t *k = st_iter_key(it, &klen);
        const char *v = st_iter_value(it, &vlen);
        assert_int_equal(klen, lower_len);
        assert_memory_equal(k, lower, lower_len - 8);
        seq = hd_get_be64(k + klen - 8);
        char want[32];
        int n = snprintf(want, sizeof want, "v%u.%llu", c, (unsigned long long)seq);
        assert_int_equal(vlen, (size_t)n);
        assert_memory_equal(v, want, vlen);
    } else {
        assert_int_equal(st_iter_status(it), 0);
    }
    st_iter_close(it);
    return seq;
}

/* Every channel's last seq: 9 if c is 1 mod 3 (last written in the
 * memtable), else 6 if c is odd (a level-0 file), else 3 (compacted down),
 * 0 for the channels never written. */
static void check_heads(struct st_rocks *r)
{
    for (unsigned c = 0; c < CHANNELS + NEVER; c++) {
        uint64_t want = c >= CHANNELS ? 0 : c % 3 == 1 ? 9 : c % 2 == 1 ? 6 : 3;
        uint64_t got = last_seq(r, c);
        if (got != want) {
            fail_msg("channel c%u: last seq %llu, want %llu", c, (unsigned long long)got,
                     (unsigned long long)want);
        }
    }
}

/* Writes the three layers: seqs 1-3 of every channel compacted to a lower
 * level, 4-6 of odd channels in a level-0 file, 7-9 of channels 1 mod 3
 * in the memtable. */
static void write_layers(struct st_rocks *r)
{
    put_range(r, 1, 0, 3);
    assert_int_equal(st_rocks_flush(r), 0);
    st_rocks_compact_range(r, NULL, 0, NULL, 0);
    put_range(r, 2, 3, 6);
    assert_int_equal(st_rocks_flush(r), 0);
    put_range(r, 3, 6, 9);
}

static void test_last_key_in_every_layer(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "rocks-prefix");
    struct st_rocks *r = open_at(dir, "test.slash");
    write_layers(r);
    check_heads(r);
    /* And once all of it is in files, reopened with empty memtables. */
    assert_int_equal(st_rocks_flush(r), 0);
    st_rocks_close(r);
    r = open_at(dir, "test.slash");
    check_heads(r);
    st_rocks_close(r);
    test_dir_remove(dir);
}

static void test_files_of_another_layout_are_searched(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "rocks-prefix");
    /* Written by a build without prefix filters: whole-key filters only. */
    struct st_rocks *r = open_at(dir, NULL);
    write_layers(r);
    assert_int_equal(st_rocks_flush(r), 0);
    st_rocks_close(r);
    r = open_at(dir, "test.slash");
    check_heads(r);
    /* The same prefixes under another name: searched in full too. */
    put_range(r, 1, 9, 10);
    assert_int_equal(st_rocks_flush(r), 0);
    st_rocks_close(r);
    r = open_at(dir, "test.slash-renamed");
    for (unsigned c = 0; c < CHANNELS + NEVER; c++) {
        assert_int_equal(last_seq(r, c), c < CHANNELS ? 10 : 0);
    }
    st_rocks_close(r);
    test_dir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_key_in_every_layer),
        cmocka_unit_test(test_files_of_another_layout_are_searched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
