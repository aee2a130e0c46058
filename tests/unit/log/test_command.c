/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of trim and delete: codec, apply, the keys they remove, the epoch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "command.h"
#include "entry.h"
#include "hd_error.h"
#include "log.h"
#include "test_dirs.h"

struct fixture {
    char dir[64];
    struct log_store *ls;
    uint64_t index;            /* last raft index applied */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_dir_make(f->dir, sizeof f->dir, "command");
    char err[256];
    struct log_options o = {.dir = f->dir, .n_shards = 1, .dedup_window_us = 3600000000ull};
    assert_int_equal(log_store_open(&f->ls, &o, err, sizeof err), 0);
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

/* Appends one message with this nonce to channel "c"; returns its result. */
static struct log_result append(struct fixture *f, const char *nonce)
{
    struct log_append a = {"c", 1, nonce, strlen(nonce), (const uint8_t *)"payload", 7};
    /* Stamps near the real clock: the dedup filter (log/store.c) reclaims
     * keys by the local clock when the trim's compaction runs. */
    uint64_t stamp = (uint64_t)time(NULL) * 1000000ull + f->index;
    struct log_entry_header h = {.stamp_us = stamp, .proposer = 1,
                                 .proposal = f->index + 1, .count = 1};
    uint8_t buf[256];
    log_entry_encode(buf, &h, &a, 1);
    struct log_result r[1];
    assert_int_equal(log_apply(f->ls, 0, ++f->index, buf, log_entry_size(&a, 1), r, 1), 0);
    return r[0];
}

static size_t encode(uint8_t *buf, uint8_t kind, uint64_t before_seq)
{
    struct log_command c = {.kind = kind, .channel = "c", .channel_len = 1,
                            .before_seq = before_seq, .stamp_us = 5, .proposer = 2,
                            .proposal = 9};
    return log_command_encode(buf, &c);
}

static int command_flags(struct fixture *f, uint8_t kind, uint64_t before_seq,
                         uint16_t flags)
{
    struct log_command c = {.kind = kind, .flags = flags, .channel = "c", .channel_len = 1,
                            .before_seq = before_seq, .stamp_us = 5, .proposer = 2,
                            .proposal = 9};
    uint8_t buf[128];
    size_t len = log_command_encode(buf, &c);
    return log_apply(f->ls, 0, ++f->index, buf, len, NULL, 0);
}

static int command(struct fixture *f, uint8_t kind, uint64_t before_seq)
{
    return command_flags(f, kind, before_seq, 0);
}

/* Flushes, closes and opens the store again: every head is then read from
 * the table files, none from the cache or a memtable. */
static void reopen(struct fixture *f)
{
    assert_int_equal(log_flush(f->ls), 0);
    log_store_close(f->ls);
    char err[256];
    struct log_options o = {.dir = f->dir, .n_shards = 1, .dedup_window_us = 3600000000ull};
    assert_int_equal(log_store_open(&f->ls, &o, err, sizeof err), 0);
}

static int count_cb(void *arg, const struct log_message *m)
{
    uint64_t *seqs = arg;
    seqs[++seqs[0]] = m->seq;
    return 0;
}

/* The seqs a read after `after` returns (seqs[0] is how many). */
static int read_after(struct fixture *f, uint64_t after, uint64_t *seqs)
{
    uint64_t next;
    seqs[0] = 0;
    return log_read(f->ls, "c", 1, after, 100, count_cb, seqs, &next);
}

static struct log_channel_info info(struct fixture *f)
{
    struct log_channel_info i;
    assert_int_equal(log_channel_info(f->ls, "c", 1, &i), 0);
    return i;
}

static void test_codec_round_trip_and_defects(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode(buf, LOG_ENTRY_KIND_TRIM, 7);
    struct log_command c;
    assert_int_equal(log_command_decode(buf, len, &c), 0);
    assert_true(c.kind == LOG_ENTRY_KIND_TRIM && c.before_seq == 7 && c.channel_len == 1 &&
                c.proposer == 2 && c.proposal == 9 && c.stamp_us == 5);
    assert_true(log_entry_is_command(buf, len));
    /* An append decoder refuses a command. */
    struct log_entry_header h;
    assert_int_equal(log_entry_decode(buf, len, &h), HD_ECORRUPT);
    /* Any flipped byte is refused (the checksum or a field check). */
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x40;
        assert_int_equal(log_command_decode(buf, len, &c), HD_ECORRUPT);
        buf[i] ^= 0x40;
    }
    assert_int_equal(log_command_decode(buf, len - 1, &c), HD_ECORRUPT);
    /* A delete carries no argument. */
    len = encode(buf, LOG_ENTRY_KIND_DELETE, 0);
    assert_int_equal(log_command_decode(buf, len, &c), 0);
    assert_int_equal(c.kind, LOG_ENTRY_KIND_DELETE);
}

static void test_trim_removes_older_messages_keeps_last(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        char nonce[8];
        snprintf(nonce, sizeof nonce, "n%d", i);
        assert_int_equal(append(f, nonce).seq, (uint64_t)i + 1);
    }
    assert_int_equal(command(f, LOG_ENTRY_KIND_TRIM, 3), 0);
    uint64_t seqs[16];
    /* Reads below the trim are refused, delivering nothing. */
    assert_int_equal(read_after(f, 0, seqs), HD_EGONE);
    assert_int_equal(read_after(f, 1, seqs), HD_EGONE);
    assert_int_equal(seqs[0], 0);
    assert_int_equal(read_after(f, 2, seqs), 0);
    assert_int_equal(seqs[0], 3);
    assert_true(seqs[1] == 3 && seqs[2] == 4 && seqs[3] == 5);
    struct log_channel_info i = info(f);
    assert_true(i.first_seq == 3 && i.last_seq == 5 && i.epoch == 0);
    assert_true(log_position_gone(&i, 1));
    assert_false(log_position_gone(&i, 2));
    assert_false(log_position_gone(&i, 5));
    /* A trim below the first seq changes nothing; one past the end keeps
     * the last message (the head), so the next seq still follows it. */
    assert_int_equal(command(f, LOG_ENTRY_KIND_TRIM, 2), 0);
    assert_int_equal(info(f).first_seq, 3);
    assert_int_equal(command(f, LOG_ENTRY_KIND_TRIM, 100), 0);
    assert_int_equal(read_after(f, 3, seqs), HD_EGONE);
    assert_int_equal(read_after(f, 4, seqs), 0);
    assert_true(seqs[0] == 1 && seqs[1] == 5);
    assert_int_equal(info(f).first_seq, 5);
    assert_int_equal(append(f, "n5").seq, 6);
    /* A time before every message left finds the oldest left. */
    uint64_t seq;
    assert_int_equal(log_seq_at_ts(f->ls, "c", 1, 0, &seq), 0);
    assert_int_equal(seq, 4);
    /* A retry of a trimmed message still answers its original seq. */
    struct log_result r = append(f, "n0");
    assert_true(r.duplicate && r.seq == 1);
}

static void test_delete_restarts_seq_with_new_epoch_and_forgets_nonces(void **state)
{
    struct fixture *f = *state;
    append(f, "a");
    append(f, "b");
    assert_int_equal(command(f, LOG_ENTRY_KIND_TRIM, 2), 0);
    assert_int_equal(command(f, LOG_ENTRY_KIND_DELETE, 0), 0);
    uint64_t seqs[16];
    assert_int_equal(read_after(f, 0, seqs), 0);
    assert_int_equal(seqs[0], 0);
    struct log_channel_info i = info(f);
    assert_true(i.first_seq == 1 && i.last_seq == 0 && i.epoch == 1);
    assert_false(log_position_gone(&i, 0));
    /* The dedup key of "a" went with the channel: it is a new message. */
    struct log_result r = append(f, "a");
    assert_true(!r.duplicate && r.seq == 1);
    assert_int_equal(append(f, "c").seq, 2);
    assert_int_equal(command(f, LOG_ENTRY_KIND_DELETE, 0), 0);
    assert_int_equal(info(f).epoch, 2);
    assert_int_equal(append(f, "a").seq, 1);
}

/* Heads read from state, not the cache, in every state a channel can be
 * in: the lookup starts at the channel's first seq (keys.h), so each way
 * that seq moves is here. */
static void test_heads_from_state_after_trims_and_deletes(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    assert_int_equal(info(f).last_seq, 0); /* never written */
    uint64_t ts5 = 0;
    for (int i = 0; i < 5; i++) {
        char nonce[8];
        snprintf(nonce, sizeof nonce, "n%d", i);
        ts5 = append(f, nonce).ts;
    }
    assert_int_equal(command(f, LOG_ENTRY_KIND_TRIM, 3), 0);
    reopen(f);
    struct log_channel_info i = info(f);
    assert_true(i.first_seq == 3 && i.last_seq == 5);
    /* A trim that empties the channel: the head outlives its message. */
    assert_int_equal(command_flags(f, LOG_ENTRY_KIND_TRIM, 100, LOG_COMMAND_MAY_EMPTY), 0);
    reopen(f);
    uint64_t seq, ts;
    assert_int_equal(log_head(f->ls, "c", 1, &seq, &ts), 0);
    assert_true(seq == 5 && ts == ts5);
    /* Its nonces are still known: a retry answers the original. */
    struct log_result r = append(f, "n4");
    assert_true(r.duplicate && r.seq == 5 && r.ts == ts5);
    assert_int_equal(append(f, "n5").seq, 6);
    reopen(f);
    assert_int_equal(append(f, "n6").seq, 7);
    /* More than the point-delete limit: a range tombstone. */
    for (int k = 8; k <= 200; k++) {
        char nonce[8];
        snprintf(nonce, sizeof nonce, "n%d", k);
        append(f, nonce);
    }
    assert_int_equal(command(f, LOG_ENTRY_KIND_TRIM, 150), 0);
    reopen(f);
    i = info(f);
    assert_true(i.first_seq == 150 && i.last_seq == 200);
    assert_int_equal(append(f, "n201").seq, 201);
    assert_int_equal(command(f, LOG_ENTRY_KIND_DELETE, 0), 0);
    reopen(f);
    i = info(f);
    assert_true(i.first_seq == 1 && i.last_seq == 0 && i.epoch == 1);
    assert_int_equal(append(f, "x").seq, 1);
    reopen(f);
    assert_int_equal(info(f).last_seq, 1);
}

static void test_reapplied_index_changes_nothing(void **state)
{
    struct fixture *f = *state;
    append(f, "a");
    append(f, "b");
    uint8_t buf[128];
    size_t len = encode(buf, LOG_ENTRY_KIND_DELETE, 0);
    /* Index 2 was applied (an append): the delete at it is skipped. */
    assert_int_equal(log_apply(f->ls, 0, 2, buf, len, NULL, 0), HD_EEXIST);
    assert_int_equal(info(f).epoch, 0);
    assert_int_equal(info(f).last_seq, 2);
    buf[len - 1] ^= 1;
    assert_int_equal(log_apply(f->ls, 0, 3, buf, len, NULL, 0), HD_ECORRUPT);
    assert_int_equal(info(f).last_seq, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trip_and_defects),
        cmocka_unit_test_setup_teardown(test_trim_removes_older_messages_keeps_last, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_delete_restarts_seq_with_new_epoch_and_forgets_nonces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heads_from_state_after_trims_and_deletes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reapplied_index_changes_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
