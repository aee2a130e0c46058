/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of a node's consensus end to end: real raft, WAL and RocksDB on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hd_error.h"
#include "log.h"
#include "node.h"
#include "test_dirs.h"

struct fixture {
    char dir[64];
    uv_loop_t loop;
    struct log_store *log;
    struct cons_node *node;
    unsigned snapshot_threshold;
    uint64_t commits;           /* on_commit calls */
    unsigned member_reports;    /* on_members calls */
    int member_answer;          /* what on_members returns */
    uint64_t member_id;         /* the single member of the last report */
    char member_address[64];
};

struct pending {
    struct cons_append_req req;
    char nonce[48];
    int status;
    bool done;
    struct log_result result;
};

static void on_commit(void *arg, const char *channel, size_t len, const struct log_message *m)
{
    struct fixture *f = arg;
    (void)channel;
    (void)len;
    assert_true(m->seq > 0 && m->ts > 0);
    f->commits++;
}

static int on_members(void *arg, const struct cons_member *members, unsigned n)
{
    struct fixture *f = arg;
    f->member_reports++;
    assert_int_equal(n, 1); /* a one-node cluster */
    f->member_id = members[0].id;
    snprintf(f->member_address, sizeof f->member_address, "%s", members[0].address);
    return f->member_answer;
}

static void start(struct fixture *f)
{
    char err[512] = "", state[128];
    snprintf(state, sizeof state, "%s/state", f->dir);
    struct log_options lo = {.dir = state, .n_shards = 4};
    assert_int_equal(log_store_open(&f->log, &lo, err, sizeof err), 0);
    struct cons_node_options o = {.loop = &f->loop, .data_dir = f->dir, .node_id = 1,
                                  .address = "127.0.0.1:1", .n_shards = 4, .log = f->log,
                                  .snapshot_threshold = f->snapshot_threshold,
                                  .snapshot_trailing = f->snapshot_threshold ? 2 : 0,
                                  .wal_segment_size = 256 * 1024,
                                  .compact_every_ms = 20,
                                  .on_commit = on_commit, .on_commit_arg = f,
                                  .on_members = on_members, .on_members_arg = f};
    int rv = cons_node_start(&f->node, &o, err, sizeof err);
    if (rv != 0) fprintf(stderr, "start: %s\n", err);
    assert_int_equal(rv, 0);
}

static void stopped(void *arg) { *(bool *)arg = true; }

static void stop(struct fixture *f)
{
    bool done = false;
    cons_node_stop(f->node, stopped, &done);
    while (!done) uv_run(&f->loop, UV_RUN_ONCE);
    log_store_close(f->log);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_dir_make(f->dir, sizeof f->dir, "node");
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* closing handles */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_dir_remove(f->dir);
    free(f);
    return 0;
}

static void tick_noop(uv_timer_t *t) { (void)t; }

static void tick_closed(uv_handle_t *h) { *(bool *)h->data = true; }

/* Runs the loop for about ms milliseconds. */
static void run_for(struct fixture *f, uint64_t ms)
{
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, tick_noop, 10, 10);
    uint64_t until = uv_now(&f->loop) + ms;
    while (uv_now(&f->loop) < until) uv_run(&f->loop, UV_RUN_ONCE);
    /* The timer lives in this frame: its close must finish before it goes. */
    bool closed = false;
    tick.data = &closed;
    uv_close((uv_handle_t *)&tick, tick_closed);
    while (!closed) uv_run(&f->loop, UV_RUN_ONCE);
}

static void append_cb(struct cons_append_req *req, int status, const struct log_result *r)
{
    struct pending *p = req->data;
    p->status = status;
    p->done = true;
    if (r != NULL) p->result = *r;
}

/* Appends n messages to `channel` with nonces prefix-i and waits for all. */
static void append_many(struct fixture *f, const char *channel, const char *prefix, int n,
                        struct pending *out)
{
    for (int i = 0; i < n; i++) {
        struct pending *p = &out[i];
        memset(p, 0, sizeof *p);
        snprintf(p->nonce, sizeof p->nonce, "%s-%d", prefix, i);
        p->req = (struct cons_append_req){.a = {channel, strlen(channel), p->nonce,
                                                strlen(p->nonce), (const uint8_t *)p->nonce,
                                                strlen(p->nonce)},
                                          .data = p};
        assert_int_equal(cons_node_append(f->node, &p->req, append_cb), 0);
    }
    for (int i = 0; i < n; i++) {
        while (!out[i].done) uv_run(&f->loop, UV_RUN_ONCE);
        assert_int_equal(out[i].status, 0);
    }
}

static void test_appends_get_gapless_seq(void **state)
{
    struct fixture *f = *state;
    start(f);
    static struct pending p[300];
    append_many(f, "chan-a", "n", 300, p);
    for (int i = 0; i < 300; i++) {
        assert_true(p[i].result.seq == (uint64_t)i + 1);
        assert_false(p[i].result.duplicate);
        if (i > 0) assert_true(p[i].result.ts > p[i - 1].result.ts);
    }
    assert_true(f->commits == 300);
    stop(f);
}

static void test_state_and_dedup_survive_restart(void **state)
{
    struct fixture *f = *state;
    start(f);
    static struct pending p[50], again[50];
    append_many(f, "chan-b", "x", 50, p);
    stop(f);
    start(f); /* re-applies what state had not flushed; must not double */
    append_many(f, "chan-b", "x", 50, again);
    for (int i = 0; i < 50; i++) {
        assert_true(again[i].result.duplicate);
        assert_true(again[i].result.seq == p[i].result.seq);
        assert_true(again[i].result.ts == p[i].result.ts);
    }
    uint64_t seq, ts;
    assert_int_equal(log_head(f->log, "chan-b", 6, &seq, &ts), 0);
    assert_true(seq == 50);
    stop(f);
}

static void test_snapshots_compact_and_restart(void **state)
{
    struct fixture *f = *state;
    f->snapshot_threshold = 8; /* snapshot (and flush state) every 8 entries */
    start(f);
    static struct pending p[400], again[400];
    /* One at a time so that each is its own entry and snapshots happen. */
    for (int i = 0; i < 400; i += 1) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "s%d", i);
        append_many(f, "chan-c", prefix, 1, &p[i]);
    }
    for (int i = 0; i < 400; i++) assert_true(p[i].result.seq == (uint64_t)i + 1);
    /* Give the compactor time to snapshot the quiet shards, whose
     * bootstrap entries pin the first segment. */
    run_for(f, 500);
    stop(f);
    /* 400 group commits of 4 KiB fill several 256 KiB segments; snapshots
     * must have let the WAL drop the old ones, and left a snapshot file. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls %s/wal | grep -c '\\.seg$') -le 4", f->dir);
    assert_int_equal(system(cmd), 0);
    unsigned shard = cons_shard_of(4, "chan-c", 6);
    snprintf(cmd, sizeof cmd, "ls %s/snapshots/shard-%u.* >/dev/null", f->dir, shard);
    assert_int_equal(system(cmd), 0);
    start(f);
    uint64_t seq, ts;
    assert_int_equal(log_head(f->log, "chan-c", 6, &seq, &ts), 0);
    assert_true(seq == 400);
    append_many(f, "chan-c", "more", 10, again);
    assert_true(again[9].result.seq == 410);
    stop(f);
}

/* Shards that reach their snapshot threshold together share a state flush
 * (snapshot_flush.h) instead of one each, and what they snapshotted is
 * there after a restart that replays only the log after the snapshots. */
static void test_snapshots_share_flushes(void **state)
{
    struct fixture *f = *state;
    f->snapshot_threshold = 8;
    start(f);
    /* A channel on each of the four shards. */
    char names[4][32];
    bool have[4] = {false};
    for (int i = 0, found = 0; found < 4; i++) {
        char name[24];
        snprintf(name, sizeof name, "share-%d", i);
        unsigned shard = cons_shard_of(4, name, strlen(name));
        if (!have[shard]) {
            have[shard] = true;
            snprintf(names[shard], sizeof names[shard], "%s", name);
            found++;
        }
    }
    /* Each round one entry per shard, so all four reach 8 together. */
    static struct pending p[4];
    enum { ROUNDS = 200 };
    for (int r = 0; r < ROUNDS; r++) {
        for (int s = 0; s < 4; s++) {
            struct pending *q = &p[s];
            memset(q, 0, sizeof *q);
            snprintf(q->nonce, sizeof q->nonce, "r%d-s%d", r, s);
            q->req = (struct cons_append_req){.a = {names[s], strlen(names[s]), q->nonce,
                                                    strlen(q->nonce),
                                                    (const uint8_t *)q->nonce, strlen(q->nonce)},
                                              .data = q};
            assert_int_equal(cons_node_append(f->node, &q->req, append_cb), 0);
        }
        for (int s = 0; s < 4; s++) {
            while (!p[s].done) uv_run(&f->loop, UV_RUN_ONCE);
            assert_int_equal(p[s].status, 0);
            assert_true(p[s].result.seq == (uint64_t)r + 1);
        }
    }
    run_for(f, 200); /* the last snapshots finish */
    struct cons_node_stats st;
    cons_node_stats(f->node, &st);
    fprintf(stderr, "  %llu snapshots, %llu flushes\n", (unsigned long long)st.snapshots,
            (unsigned long long)st.snapshot_flushes);
    /* 4 shards x 200 entries / 8: about 100 snapshots. A flush each would
     * be as many flushes; shared, a round of four takes one or two. */
    assert_true(st.snapshots >= 60);
    assert_true(st.snapshot_flushes > 0);
    assert_true(st.snapshot_flushes * 2 <= st.snapshots);
    stop(f);
    start(f);
    for (int s = 0; s < 4; s++) {
        uint64_t seq, ts;
        assert_int_equal(log_head(f->log, names[s], strlen(names[s]), &seq, &ts), 0);
        assert_true(seq == ROUNDS);
    }
    static struct pending again[1];
    append_many(f, names[0], "again", 1, again);
    assert_true(again[0].result.seq == ROUNDS + 1);
    stop(f);
}

/* on_members: the configuration's members at start, then only on a change
 * (none here), or again after a report that failed. */
static void test_members_reported(void **state)
{
    struct fixture *f = *state;
    f->member_answer = HD_EIO; /* not kept: the node must call again */
    start(f);
    assert_int_equal(f->member_reports, 1);
    assert_int_equal(f->member_id, 1);
    assert_string_equal(f->member_address, "127.0.0.1:1");
    run_for(f, 200); /* ten ticks: inside the retry delay, not again */
    assert_int_equal(f->member_reports, 1);
    f->member_answer = 0;
    run_for(f, 10500); /* past it */
    assert_int_equal(f->member_reports, 2);
    run_for(f, 200); /* kept, unchanged: silent */
    assert_int_equal(f->member_reports, 2);
    stop(f);
    start(f); /* every start reports */
    assert_int_equal(f->member_reports, 3);
    stop(f);
}

static void test_shard_of_is_stable(void **state)
{
    (void)state;
    /* These values are part of the on-disk format: a channel must map to
     * the same shard on every node and every version. */
    unsigned a = cons_shard_of(16, "general", 7);
    assert_true(a < 16);
    assert_int_equal(cons_shard_of(16, "general", 7), a);
    unsigned seen[16] = {0};
    char name[16];
    for (int i = 0; i < 1600; i++) {
        snprintf(name, sizeof name, "c%d", i);
        seen[cons_shard_of(16, name, strlen(name))]++;
    }
    for (int i = 0; i < 16; i++) assert_true(seen[i] > 50); /* spread */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_appends_get_gapless_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_and_dedup_survive_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots_compact_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots_share_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_reported, setup, teardown),
        cmocka_unit_test(test_shard_of_is_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
