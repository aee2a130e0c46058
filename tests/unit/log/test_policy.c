/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the cluster's retention policy: codec, apply, effective policy, reopen, transfer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "command.h"
#include "entry.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_retention.h"
#include "hd_util.h"
#include "log.h"
#include "test_dirs.h"

#define N_SHARDS 2

struct fixture {
    char dir[2][64];
    struct log_store *ls[2];
    struct hd_retention config;   /* the node's own --retention */
    uint64_t index;               /* last raft index applied on shard 0 of ls[0] */
};

static void open_store(struct fixture *f, int i)
{
    char err[256];
    struct log_options o = {.dir = f->dir[i], .n_shards = N_SHARDS, .retention = &f->config};
    assert_int_equal(log_store_open(&f->ls[i], &o, err, sizeof err), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    const char *own = "own:*=messages:9";
    assert_int_equal(hd_retention_parse(&f->config, own, strlen(own), err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        test_dir_make(f->dir[i], sizeof f->dir[i], "policy");
        open_store(f, i);
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

/* A policy command's entry: set `text`, or clear if text is NULL. */
static size_t encode(uint8_t *buf, const char *text)
{
    struct log_command c = {.kind = LOG_ENTRY_KIND_POLICY, .text = text,
                            .text_len = text != NULL ? strlen(text) : 0,
                            .flags = text != NULL ? 0 : LOG_POLICY_CLEAR, .stamp_us = 5,
                            .proposer = 2, .proposal = 9};
    assert_true(log_command_valid(&c));
    size_t len = log_command_encode(buf, &c);
    assert_int_equal(len, log_command_size(&c));
    return len;
}

static int apply(struct fixture *f, uint16_t shard, const char *text)
{
    uint8_t buf[512];
    size_t len = encode(buf, text);
    return log_apply(f->ls[0], shard, ++f->index, buf, len, NULL, 0);
}

/* The effective policy's canonical text and whether it is the cluster's. */
static const char *effective(struct log_store *ls, bool *cluster)
{
    static char text[HD_RETENTION_TEXT_MAX];
    hd_retention_format(log_retention_effective(ls, cluster), text, sizeof text);
    return text;
}

static void test_codec_round_trip_and_defects(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t len = encode(buf, "chat:*=age:7d;*=none");
    struct log_command c;
    assert_int_equal(log_command_decode(buf, len, &c), 0);
    assert_true(c.kind == LOG_ENTRY_KIND_POLICY && c.flags == 0 && c.text_len == 20 &&
                memcmp(c.text, "chat:*=age:7d;*=none", 20) == 0 && c.proposer == 2 &&
                c.proposal == 9 && c.stamp_us == 5);
    assert_true(log_entry_is_command(buf, len));
    struct log_entry_header h;
    assert_int_equal(log_entry_decode(buf, len, &h), HD_ECORRUPT); /* not an append batch */
    for (size_t i = 0; i < len; i++) { /* every flipped byte is refused */
        buf[i] ^= 0x40;
        assert_int_equal(log_command_decode(buf, len, &c), HD_ECORRUPT);
        buf[i] ^= 0x40;
    }
    assert_int_equal(log_command_decode(buf, len - 1, &c), HD_ECORRUPT);
    assert_int_equal(log_command_decode(buf, 8, &c), HD_ECORRUPT);
    /* A clear carries no text. */
    len = encode(buf, NULL);
    assert_int_equal(log_command_decode(buf, len, &c), 0);
    assert_true(c.kind == LOG_ENTRY_KIND_POLICY && c.flags == LOG_POLICY_CLEAR && c.text_len == 0);
    /* What the codec refuses to carry: a clear with text, unknown flags,
     * bytes that are not printable ASCII, a text over the limit. */
    struct log_command bad = {.kind = LOG_ENTRY_KIND_POLICY, .flags = LOG_POLICY_CLEAR,
                              .text = "a=none", .text_len = 6};
    assert_false(log_command_valid(&bad));
    bad.flags = 2;
    assert_false(log_command_valid(&bad));
    bad = (struct log_command){.kind = LOG_ENTRY_KIND_POLICY, .text = "a=none\n", .text_len = 7};
    assert_false(log_command_valid(&bad));
    bad.text_len = LOG_POLICY_TEXT_MAX + 1;
    assert_false(log_command_valid(&bad));
    /* The same refusals on decode, with a valid checksum around them. */
    len = encode(buf, "a=none");
    buf[LOG_ENTRY_HEADER_SIZE + 4] = '\n';
    uint32_t crc = hd_crc32c(0, buf, len - 4);
    hd_put_u32(buf + len - 4, crc);
    assert_int_equal(log_command_decode(buf, len, &c), HD_ECORRUPT);
    len = encode(buf, "a=none");
    hd_put_u16(buf + 2, LOG_POLICY_CLEAR);
    hd_put_u32(buf + len - 4, hd_crc32c(0, buf, len - 4));
    assert_int_equal(log_command_decode(buf, len, &c), HD_ECORRUPT);
}

static void test_set_and_clear_change_the_effective_policy(void **state)
{
    struct fixture *f = *state;
    bool cluster = true;
    assert_string_equal(effective(f->ls[0], &cluster), "own:*=messages:9");
    assert_false(cluster);
    assert_int_equal(apply(f, 0, "chat:*=messages:5;*=none"), 0);
    assert_string_equal(effective(f->ls[0], &cluster), "chat:*=messages:5;*=none");
    assert_true(cluster);
    const struct hd_retention *p = log_retention_effective(f->ls[0], NULL);
    assert_true(p->n == 2 && hd_retention_match(p, "chat:a", 6)->max_messages == 5);
    uint64_t applied;
    assert_int_equal(log_applied_index(f->ls[0], 0, &applied), 0);
    assert_int_equal(applied, f->index);
    /* A policy names no channel: only shard 0 carries it. */
    uint8_t buf[512];
    size_t len = encode(buf, "x=none");
    assert_int_equal(log_apply(f->ls[0], 1, 1, buf, len, NULL, 0), HD_ECORRUPT);
    assert_string_equal(effective(f->ls[0], NULL), "chat:*=messages:5;*=none");
    /* An index applied already changes nothing. */
    assert_int_equal(log_apply(f->ls[0], 0, f->index, buf, len, NULL, 0), HD_EEXIST);
    assert_string_equal(effective(f->ls[0], NULL), "chat:*=messages:5;*=none");
    /* Clear: back to the node's own. */
    assert_int_equal(apply(f, 0, NULL), 0);
    assert_string_equal(effective(f->ls[0], &cluster), "own:*=messages:9");
    assert_false(cluster);
    /* A text this build cannot parse (a newer one's limit) keeps everything. */
    assert_int_equal(apply(f, 0, "chat:*=items:5"), 0);
    p = log_retention_effective(f->ls[0], &cluster);
    assert_true(cluster && p->n == 0);
}

static void test_policy_survives_reopen(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(apply(f, 0, "a:*=age:1h"), 0);
    log_store_close(f->ls[0]);
    open_store(f, 0);
    bool cluster = false;
    assert_string_equal(effective(f->ls[0], &cluster), "a:*=age:1h");
    assert_true(cluster);
    assert_int_equal(apply(f, 0, NULL), 0);
    log_store_close(f->ls[0]);
    open_store(f, 0);
    assert_string_equal(effective(f->ls[0], &cluster), "own:*=messages:9");
    assert_false(cluster);
}

/* Copies shard's state from one store to the other (log/transfer.c). */
static void copy_shard(struct log_store *from, struct log_store *to, uint16_t shard)
{
    struct log_state_reader *r;
    assert_int_equal(log_state_reader_open(from, shard, &r), 0);
    assert_int_equal(log_state_replace_begin(to, shard), 0);
    for (bool last = false; !last;) {
        uint8_t *chunk;
        size_t len;
        assert_int_equal(log_state_reader_next(r, &chunk, &len, &last), 0);
        assert_int_equal(log_state_replace_chunk(to, shard, chunk, len), 0);
        hd_free(chunk);
    }
    log_state_reader_close(r);
    assert_int_equal(log_state_replace_end(to, shard), 0);
}

static void test_transfer_of_shard_0_carries_it(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(apply(f, 0, "b:*=bytes:1MiB"), 0);
    bool cluster = true;
    copy_shard(f->ls[0], f->ls[1], 1); /* another shard: nothing changes */
    assert_string_equal(effective(f->ls[1], &cluster), "own:*=messages:9");
    assert_false(cluster);
    copy_shard(f->ls[0], f->ls[1], 0);
    assert_string_equal(effective(f->ls[1], &cluster), "b:*=bytes:1MiB");
    assert_true(cluster);
    /* A copy without a policy drops the one there was. */
    assert_int_equal(apply(f, 0, NULL), 0);
    copy_shard(f->ls[0], f->ls[1], 0);
    assert_string_equal(effective(f->ls[1], &cluster), "own:*=messages:9");
    assert_false(cluster);
    /* So does discarding shard 0's state (a copy cut by a crash). */
    assert_int_equal(apply(f, 0, "c=none"), 0);
    copy_shard(f->ls[0], f->ls[1], 0);
    assert_true(log_retention_effective(f->ls[1], &cluster) != NULL && cluster);
    assert_int_equal(log_state_discard(f->ls[1], 0), 0);
    assert_string_equal(effective(f->ls[1], &cluster), "own:*=messages:9");
    assert_false(cluster);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trip_and_defects),
        cmocka_unit_test_setup_teardown(test_set_and_clear_change_the_effective_policy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_of_shard_0_carries_it, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
