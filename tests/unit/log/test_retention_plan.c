/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of retention in the state machine: what a rule drops (log/retention.c), trims that empty a channel, walking a shard's channels. */
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
#include "hd_retention.h"
#include "log.h"
#include "retention.h"
#include "test_dirs.h"

#define S 1000000ull /* a second in microseconds */

struct fixture {
    char dir[64];
    struct log_store *ls;
    uint64_t index;
    uint64_t now;              /* the clock stamps and plans use */
};

static void open_store(struct fixture *f)
{
    char err[256];
    struct log_options o = {.dir = f->dir, .n_shards = 1, .dedup_window_us = 3600 * S};
    assert_int_equal(log_store_open(&f->ls, &o, err, sizeof err), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_dir_make(f->dir, sizeof f->dir, "retention");
    open_store(f);
    /* Near the real clock: the dedup filter judges keys by it. */
    f->now = (uint64_t)time(NULL) * S;
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

/* Appends a message of `size` payload bytes to ch, stamped f->now. */
static uint64_t append(struct fixture *f, const char *ch, size_t size)
{
    static uint8_t payload[4096];
    char nonce[32];
    snprintf(nonce, sizeof nonce, "n-%llu", (unsigned long long)f->index);
    struct log_append a = {ch, strlen(ch), nonce, strlen(nonce), payload, size};
    struct log_entry_header h = {.stamp_us = f->now, .proposer = 1, .proposal = f->index + 1,
                                 .count = 1};
    uint8_t buf[8192];
    log_entry_encode(buf, &h, &a, 1);
    struct log_result r[1];
    assert_int_equal(log_apply(f->ls, 0, ++f->index, buf, log_entry_size(&a, 1), r, 1), 0);
    return r[0].seq;
}

static void trim(struct fixture *f, const char *ch, uint64_t before, bool may_empty)
{
    struct log_command c = {.kind = LOG_ENTRY_KIND_TRIM, .channel = ch,
                            .channel_len = strlen(ch), .before_seq = before,
                            .flags = may_empty ? LOG_COMMAND_MAY_EMPTY : 0,
                            .stamp_us = f->now, .proposer = 1, .proposal = f->index + 1};
    uint8_t buf[256];
    size_t len = log_command_encode(buf, &c);
    assert_int_equal(log_apply(f->ls, 0, ++f->index, buf, len, NULL, 0), 0);
}

static struct log_channel_info info(struct fixture *f, const char *ch)
{
    struct log_channel_info i;
    assert_int_equal(log_channel_info(f->ls, ch, strlen(ch), &i), 0);
    return i;
}

static struct hd_retention_rule rule(const char *text)
{
    struct hd_retention set = {0};
    char err[256];
    assert_int_equal(hd_retention_parse(&set, text, strlen(text), err, sizeof err), 0);
    return set.rules[0];
}

static struct log_retention_plan plan(struct fixture *f, const char *ch, const char *rule_text,
                                      struct log_bytes_window *w)
{
    struct hd_retention_rule r = rule(rule_text);
    struct log_retention_plan p;
    size_t budget = 100000;
    assert_int_equal(log_retention_plan(f->ls, ch, strlen(ch), &r, f->now, w, &budget, &p), 0);
    return p;
}

static void test_messages(void **state)
{
    struct fixture *f = *state;
    struct log_retention_plan p = plan(f, "c", "*=messages:3", NULL);
    assert_int_equal(p.before_seq, 0); /* a channel never written */
    for (int i = 0; i < 10; i++) {
        append(f, "c", 10);
    }
    p = plan(f, "c", "*=messages:10", NULL);
    assert_int_equal(p.before_seq, 0); /* exactly at the limit */
    p = plan(f, "c", "*=messages:3", NULL);
    assert_int_equal(p.before_seq, 8);
    assert_false(p.may_empty);
    assert_int_equal(p.reason, LOG_RETENTION_MESSAGES);
    trim(f, "c", p.before_seq, p.may_empty);
    assert_int_equal(info(f, "c").first_seq, 8);
    assert_int_equal(plan(f, "c", "*=messages:3", NULL).before_seq, 0); /* done */
    p = plan(f, "c", "*=messages:1", NULL);
    assert_int_equal(p.before_seq, 10); /* the last message stays */
    /* messages:0 keeps none: the trim empties the channel, its seq goes on. */
    p = plan(f, "c", "*=messages:0", NULL);
    assert_int_equal(p.before_seq, 11);
    assert_true(p.may_empty);
    trim(f, "c", p.before_seq, p.may_empty);
    struct log_channel_info i = info(f, "c");
    assert_int_equal(i.first_seq, 11);
    assert_int_equal(i.last_seq, 10);
    assert_int_equal(plan(f, "c", "*=messages:0", NULL).before_seq, 0);
    assert_int_equal(append(f, "c", 1), 11);
}

static void test_age(void **state)
{
    struct fixture *f = *state;
    uint64_t start = f->now;
    for (int i = 0; i < 6; i++) {
        append(f, "c", 10); /* ts start + 0..5 s */
        f->now += S;
    }
    f->now = start + 5 * S;
    assert_int_equal(plan(f, "c", "*=age:10s", NULL).before_seq, 0);
    /* At now = start + 5 s with age 3 s, ts < start + 2 s goes: seqs 1, 2. */
    struct log_retention_plan p = plan(f, "c", "*=age:3s", NULL);
    assert_int_equal(p.before_seq, 3);
    assert_int_equal(p.reason, LOG_RETENTION_AGE);
    trim(f, "c", p.before_seq, p.may_empty);
    /* Seq 3 was exactly the age old (ts = now - age) and stayed; a
     * microsecond later it goes. */
    f->now = start + 5 * S + 1;
    assert_int_equal(plan(f, "c", "*=age:3s", NULL).before_seq, 4);
    /* All old: the last message goes too, the head stays. */
    f->now = start + 60 * S;
    p = plan(f, "c", "*=age:3s", NULL);
    assert_int_equal(p.before_seq, 7);
    assert_true(p.may_empty);
    trim(f, "c", p.before_seq, p.may_empty);
    struct log_channel_info i = info(f, "c");
    assert_true(i.first_seq == 7 && i.last_seq == 6 && i.epoch == 0);
    uint64_t seq_ts;
    assert_int_equal(log_seq_at_ts(f->ls, "c", 1, f->now, &seq_ts), 0);
    assert_int_equal(seq_ts, 6);
    /* The head outlives a restart (it is in the 'f' key, not a message),
     * and its ts keeps the next ts above it even with a clock behind it. */
    log_store_close(f->ls);
    open_store(f);
    i = info(f, "c");
    assert_true(i.first_seq == 7 && i.last_seq == 6 && i.last_ts == start + 5 * S);
    f->now = start; /* a leader whose clock is behind */
    assert_int_equal(append(f, "c", 1), 7);
    uint64_t last_seq, last_ts;
    assert_int_equal(log_head(f->ls, "c", 1, &last_seq, &last_ts), 0);
    assert_true(last_seq == 7 && last_ts == start + 5 * S + 1);
    assert_int_equal(info(f, "c").first_seq, 7);
}

static void test_bytes(void **state)
{
    struct fixture *f = *state;
    struct log_bytes_window w = {0};
    for (int i = 0; i < 10; i++) {
        append(f, "c", 100);
    }
    assert_int_equal(plan(f, "c", "*=bytes:1000", &w).before_seq, 0);
    assert_int_equal(w.bytes, 1000);
    struct log_retention_plan p = plan(f, "c", "*=bytes:350", &w);
    assert_int_equal(p.before_seq, 8); /* 8, 9, 10: 300 bytes */
    assert_int_equal(p.reason, LOG_RETENTION_BYTES);
    trim(f, "c", p.before_seq, false);
    /* New messages: only those are read; the window follows. */
    append(f, "c", 200);
    p = plan(f, "c", "*=bytes:350", &w);
    assert_int_equal(p.before_seq, 10); /* 10 (100) + 11 (200) */
    assert_int_equal(w.lo, 10);
    assert_int_equal(w.bytes, 300);
    trim(f, "c", p.before_seq, false);
    /* The last message stays even alone over the limit, unless bytes:0. */
    append(f, "c", 1000);
    p = plan(f, "c", "*=bytes:500", &w);
    assert_int_equal(p.before_seq, 12);
    trim(f, "c", p.before_seq, false);
    assert_int_equal(plan(f, "c", "*=bytes:500", &w).before_seq, 0);
    p = plan(f, "c", "*=bytes:0", &w);
    assert_true(p.before_seq == 13 && p.may_empty);
    /* A trim by someone else above the window's start, or a delete, resets it. */
    struct log_bytes_window w2 = {0};
    for (int i = 0; i < 5; i++) {
        append(f, "d", 10);
    }
    assert_int_equal(plan(f, "d", "*=bytes:100", &w2).before_seq, 0);
    trim(f, "d", 4, false);
    p = plan(f, "d", "*=bytes:15", &w2);
    assert_int_equal(p.before_seq, 5);
    assert_int_equal(w2.bytes, 10);
}

static void test_bytes_budget_carries_on(void **state)
{
    struct fixture *f = *state;
    struct log_bytes_window w = {0};
    for (int i = 0; i < 50; i++) {
        append(f, "c", 10);
    }
    struct hd_retention_rule r = rule("*=bytes:100");
    struct log_retention_plan p;
    size_t budget = 20;
    assert_int_equal(log_retention_plan(f->ls, "c", 1, &r, f->now, &w, &budget, &p), 0);
    assert_int_equal(p.before_seq, 0); /* not all summed yet */
    assert_int_equal(budget, 0);
    assert_int_equal(w.hi, 20);
    int calls = 1;
    do {
        budget = 20;
        assert_int_equal(log_retention_plan(f->ls, "c", 1, &r, f->now, &w, &budget, &p), 0);
        calls++;
    } while (p.before_seq < 41 && calls < 20);
    assert_int_equal(p.before_seq, 41); /* 41..50: 100 bytes */
    assert_true(calls >= 3);
}

static void test_limits_combine(void **state)
{
    struct fixture *f = *state;
    struct log_bytes_window w = {0};
    uint64_t start = f->now;
    for (int i = 0; i < 10; i++) {
        append(f, "c", 10);
        f->now += S;
    }
    f->now = start + 10 * S;
    /* age drops 1..4 (ts < start + 4 s), messages drops 1..2, bytes 1..7. */
    struct log_retention_plan p = plan(f, "c", "*=age:6s,messages:8,bytes:30", &w);
    assert_int_equal(p.before_seq, 8);
    assert_int_equal(p.reason, LOG_RETENTION_BYTES);
    p = plan(f, "c", "*=age:6s,messages:8", NULL);
    assert_int_equal(p.before_seq, 5);
    assert_int_equal(p.reason, LOG_RETENTION_AGE);
}

static int count_cb(void *arg, const struct log_message *m)
{
    uint64_t *c = arg;
    c[c[0] == 0 ? 1 : 2] = m->seq; /* first and last seen */
    c[0]++;
    return 0;
}

/* Small trims delete message by message, large ones by range: the same
 * state either way, lazy or not. */
static void test_point_and_range_trims(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 200; i++) {
        append(f, "c", 10);
    }
    uint64_t c[3] = {0}, next;
    trim(f, "c", 65, false);   /* 64 messages: point deletes */
    assert_int_equal(log_read(f->ls, "c", 1, 64, 1000, count_cb, c, &next), 0);
    assert_true(c[0] == 136 && c[1] == 65 && c[2] == 200);
    assert_int_equal(log_read(f->ls, "c", 1, 63, 1000, count_cb, c, &next), HD_EGONE);
    struct log_command cmd = {.kind = LOG_ENTRY_KIND_TRIM, .channel = "c", .channel_len = 1,
                              .before_seq = 190, .flags = LOG_COMMAND_LAZY,
                              .stamp_us = f->now, .proposer = 1, .proposal = 99};
    uint8_t buf[256];
    size_t len = log_command_encode(buf, &cmd);
    assert_int_equal(log_apply(f->ls, 0, ++f->index, buf, len, NULL, 0), 0); /* a range */
    memset(c, 0, sizeof c);
    assert_int_equal(log_read(f->ls, "c", 1, 189, 1000, count_cb, c, &next), 0);
    assert_true(c[0] == 11 && c[1] == 190 && c[2] == 200);
    assert_int_equal(info(f, "c").first_seq, 190);
}

struct walk {
    char seen[256];
    size_t n;
    unsigned calls;
    unsigned stop_after;          /* 0: never */
};

static int walk_cb(void *arg, const char *ch, size_t len)
{
    struct walk *w = arg;
    w->n += (size_t)snprintf(w->seen + w->n, sizeof w->seen - w->n, "%.*s,", (int)len, ch);
    return ++w->calls == w->stop_after;
}

static void test_channel_walk(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"b", "a", "abc", "ab", "zz"};
    for (size_t i = 0; i < 5; i++) {
        append(f, names[i], 1);
    }
    trim(f, "zz", 2, true); /* emptied: no messages, not walked */
    struct walk w = {.seen = ""};
    assert_int_equal(log_channel_walk(f->ls, 0, NULL, 0, walk_cb, &w), 0);
    /* By the length byte, then the bytes. */
    assert_string_equal(w.seen, "a,b,ab,abc,");
    /* From after a channel, and stopping when the callback says so. */
    w = (struct walk){.seen = "", .stop_after = 2};
    assert_int_equal(log_channel_walk(f->ls, 0, "a", 1, walk_cb, &w), 0);
    assert_string_equal(w.seen, "b,ab,");
    w = (struct walk){.seen = ""};
    assert_int_equal(log_channel_walk(f->ls, 0, "abc", 3, walk_cb, &w), 0);
    assert_string_equal(w.seen, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_budget_carries_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_combine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point_and_range_trims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_walk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
