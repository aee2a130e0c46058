/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the Raft record codec kept in the WAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_error.h"
#include "wal_record.h"

static size_t encode_two(uint8_t *buf)
{
    struct raft_entry e[2] = {{.term = 3, .type = RAFT_COMMAND, .buf = {(void *)"abc", 3}},
                              {.term = 4, .type = RAFT_BARRIER, .buf = {(void *)"", 0}}};
    size_t n = cons_rec_encode_entries_head(buf, 7, 42, 2);
    for (int i = 0; i < 2; i++) {
        cons_rec_encode_entry_head(buf + n, &e[i]);
        n += CONS_REC_ENTRY_HEADER_SIZE;
        memcpy(buf + n, e[i].buf.base, e[i].buf.len);
        n += e[i].buf.len;
    }
    return n;
}

static void test_entries_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode_two(buf);
    struct cons_rec r;
    assert_int_equal(cons_rec_decode(buf, len, &r), 0);
    assert_int_equal(r.kind, CONS_REC_ENTRIES);
    assert_int_equal(r.shard, 7);
    assert_true(r.index == 42 && r.n == 2);
    struct cons_rec_iter it;
    cons_rec_iter_init(&it, &r);
    struct raft_entry e;
    assert_int_equal(cons_rec_iter_next(&it, &e), 1);
    assert_true(e.term == 3 && e.type == RAFT_COMMAND && e.buf.len == 3);
    assert_memory_equal(e.buf.base, "abc", 3);
    assert_int_equal(cons_rec_iter_next(&it, &e), 1);
    assert_true(e.term == 4 && e.type == RAFT_BARRIER && e.buf.len == 0);
    assert_int_equal(cons_rec_iter_next(&it, &e), 0);
}

static void test_truncations_are_rejected(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode_two(buf);
    struct cons_rec r;
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(cons_rec_decode(buf, cut, &r), HD_ECORRUPT);
    }
    buf[len] = 0;
    assert_int_equal(cons_rec_decode(buf, len + 1, &r), HD_ECORRUPT);
}

static void test_truncate_and_reset(void **state)
{
    (void)state;
    uint8_t buf[32];
    struct cons_rec r;
    size_t len = cons_rec_encode_truncate(buf, 3, 9);
    assert_int_equal(cons_rec_decode(buf, len, &r), 0);
    assert_true(r.kind == CONS_REC_TRUNCATE && r.shard == 3 && r.index == 9);
    len = cons_rec_encode_reset(buf, 5, 100, 7);
    assert_int_equal(cons_rec_decode(buf, len, &r), 0);
    assert_true(r.kind == CONS_REC_RESET && r.shard == 5 && r.index == 100 && r.term == 7);
    buf[0] = 9; /* unknown kind */
    assert_int_equal(cons_rec_decode(buf, len, &r), HD_ECORRUPT);
    buf[0] = CONS_REC_RESET;
    buf[1] = 2; /* unknown version */
    assert_int_equal(cons_rec_decode(buf, len, &r), HD_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_roundtrip),
        cmocka_unit_test(test_truncations_are_rejected),
        cmocka_unit_test(test_truncate_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
