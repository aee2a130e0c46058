/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of moving one shard's state between stores (catch-up). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "entry.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "log.h"
#include "test_dirs.h"

#define SHARDS 4

struct fixture {
    char dir[2][64];
    struct log_store *ls[2];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    for (int i = 0; i < 2; i++) {
        test_dir_make(f->dir[i], sizeof f->dir[i], "xfer");
        char err[256];
        struct log_options o = {.dir = f->dir[i], .n_shards = SHARDS};
        assert_int_equal(log_store_open(&f->ls[i], &o, err, sizeof err), 0);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 2; i++) {
        log_store_close(f->ls[i]);
        test_dir_remove(f->dir[i]);
    }
    free(f);
    return 0;
}

/* A channel name that maps to `shard`. */
static void channel_in(unsigned shard, int k, char *out, size_t cap)
{
    for (int i = 0;; i++) {
        snprintf(out, cap, "c%d-%d", k, i);
        if (log_shard_of(SHARDS, out, strlen(out)) == shard) return;
    }
}

/* Appends n messages to a channel of `shard` in store `ls` at raft `index`. */
static void fill(struct log_store *ls, unsigned shard, int k, uint64_t index, int n, size_t size)
{
    char ch[32];
    channel_in(shard, k, ch, sizeof ch);
    struct log_append a[64];
    char nonces[64][16];
    uint8_t *payload = calloc(1, size + 1);
    memset(payload, 'p', size);
    for (int i = 0; i < n; i++) {
        snprintf(nonces[i], sizeof nonces[i], "n%llu-%d", (unsigned long long)index, i);
        a[i] = (struct log_append){ch, strlen(ch), nonces[i], strlen(nonces[i]), payload, size};
    }
    struct log_entry_header h = {.stamp_us = index * 1000, .proposer = 1, .proposal = index,
                                 .count = (uint32_t)n};
    uint8_t *buf = malloc(log_entry_size(a, (size_t)n));
    log_entry_encode(buf, &h, a, (size_t)n);
    struct log_result r[64];
    assert_int_equal(log_apply(ls, (uint16_t)shard, index, buf, log_entry_size(a, (size_t)n), r, 64), 0);
    free(buf);
    free(payload);
}

struct dump {
    char text[1 << 16];
    size_t len;
};

static int dump_one(void *arg, const struct log_message *m)
{
    struct dump *d = arg;
    d->len += (size_t)snprintf(d->text + d->len, sizeof d->text - d->len, "%llu/%llu/%.*s/%zu;",
                               (unsigned long long)m->seq, (unsigned long long)m->ts,
                               (int)m->nonce_len, m->nonce, m->payload_len);
    return 0;
}

static void dump_channel(struct log_store *ls, unsigned shard, int k, struct dump *d)
{
    char ch[32];
    channel_in(shard, k, ch, sizeof ch);
    d->len = 0;
    uint64_t next;
    assert_int_equal(log_read(ls, ch, strlen(ch), 0, 100000, dump_one, d, &next), 0);
}

static void copy_shard(struct log_store *from, struct log_store *to, uint16_t shard)
{
    struct log_state_reader *r;
    assert_int_equal(log_state_reader_open(from, shard, &r), 0);
    assert_int_equal(log_state_replace_begin(to, shard), 0);
    assert_true(log_state_incomplete(to, shard));
    bool last = false;
    int chunks = 0;
    while (!last) {
        uint8_t *chunk;
        size_t len;
        assert_int_equal(log_state_reader_next(r, &chunk, &len, &last), 0);
        assert_int_equal(log_state_replace_chunk(to, shard, chunk, len), 0);
        hd_free(chunk);
        chunks++;
    }
    assert_true(chunks >= 1);
    log_state_reader_close(r);
    assert_int_equal(log_state_replace_end(to, shard), 0);
    assert_false(log_state_incomplete(to, shard));
}

static void test_copy_replaces_one_shard_only(void **state)
{
    struct fixture *f = *state;
    /* Source: shard 1 has two channels, 3 MiB in all (several chunks). */
    for (uint64_t i = 1; i <= 6; i++) fill(f->ls[0], 1, (int)(i % 2), i, 32, 16 * 1024);
    /* Destination: stale shard 1 data, and shard 2 data that must survive. */
    fill(f->ls[1], 1, 0, 1, 5, 10);
    fill(f->ls[1], 1, 7, 2, 5, 10);
    fill(f->ls[1], 2, 0, 1, 3, 10);
    struct dump a, b, keep_before, keep_after;
    dump_channel(f->ls[1], 2, 0, &keep_before);
    copy_shard(f->ls[0], f->ls[1], 1);
    for (int k = 0; k < 2; k++) {
        dump_channel(f->ls[0], 1, k, &a);
        dump_channel(f->ls[1], 1, k, &b);
        assert_true(a.len > 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.text, b.text, a.len);
    }
    dump_channel(f->ls[1], 1, 7, &b); /* only the destination had it */
    assert_int_equal(b.len, 0);
    dump_channel(f->ls[1], 2, 0, &keep_after);
    assert_int_equal(keep_before.len, keep_after.len);
    uint64_t applied;
    assert_int_equal(log_applied_index(f->ls[1], 1, &applied), 0);
    assert_true(applied == 6);
    assert_int_equal(log_applied_index(f->ls[1], 2, &applied), 0);
    assert_true(applied == 1);
    /* The copy keeps dedup: a retry of a copied nonce is a duplicate. */
    char ch[32];
    channel_in(1, 0, ch, sizeof ch);
    uint64_t seq, ts;
    assert_int_equal(log_head(f->ls[1], ch, strlen(ch), &seq, &ts), 0);
    assert_true(seq == 3 * 32);
}

static void test_bad_chunks_are_refused(void **state)
{
    struct fixture *f = *state;
    fill(f->ls[0], 1, 0, 1, 4, 10);
    fill(f->ls[0], 2, 0, 1, 4, 10);
    struct log_state_reader *r;
    assert_int_equal(log_state_reader_open(f->ls[0], 2, &r), 0);
    uint8_t *chunk;
    size_t len;
    bool last;
    assert_int_equal(log_state_reader_next(r, &chunk, &len, &last), 0);
    log_state_reader_close(r);
    /* Shard 2's keys offered as shard 1's state. */
    assert_int_equal(log_state_replace_chunk(f->ls[1], 1, chunk, len), HD_ECORRUPT);
    chunk[len / 2] ^= 0x55;
    assert_int_equal(log_state_replace_chunk(f->ls[1], 2, chunk, len), HD_ECORRUPT);
    assert_int_equal(log_state_replace_chunk(f->ls[1], 2, chunk, 3), HD_ECORRUPT);
    hd_free(chunk);
    uint64_t applied;
    assert_int_equal(log_applied_index(f->ls[1], 2, &applied), 0);
    assert_true(applied == 0);
}

static void test_discard_clears_an_interrupted_copy(void **state)
{
    struct fixture *f = *state;
    fill(f->ls[1], 3, 0, 1, 4, 10);
    assert_int_equal(log_state_replace_begin(f->ls[1], 3), 0);
    assert_true(log_state_incomplete(f->ls[1], 3));
    assert_int_equal(log_state_discard(f->ls[1], 3), 0);
    assert_false(log_state_incomplete(f->ls[1], 3));
    uint64_t applied;
    assert_int_equal(log_applied_index(f->ls[1], 3, &applied), 0);
    assert_true(applied == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_replaces_one_shard_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_chunks_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_clears_an_interrupted_copy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
