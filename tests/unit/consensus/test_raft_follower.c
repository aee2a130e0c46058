/* SPDX-License-Identifier: Apache-2.0 */
/* canonical/raft 0.15 as a follower over herald's raft_io (a real WAL and
 * snapshot files), and what herald mends of it: a follower concludes no
 * more from an AppendEntries than the request covered (its entries of an
 * older term past that point are not the leader's, so its answer does not
 * claim them and it does not apply them as committed); an installed
 * snapshot leaves no configuration pending below it; and a configuration
 * loaded at a restart is pending until it commits, so that a truncation of
 * it rolls back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <raft.h>
#include <uv.h>

#include "raft_io.h"
#include "test_dirs.h"

struct fixture {
    char dir[64];
    uv_loop_t loop;
    struct cons_store *store;
    struct raft raft;
    struct raft_fsm fsm;
    unsigned answers;                      /* AppendEntries results sent */
    uint8_t applied[8];                    /* first byte of each entry applied */
    unsigned n_applied;
    struct raft_append_entries_result last; /* the last of them */
    bool raft_closed;
    bool store_closed;
};

static int capture(void *arg, unsigned shard, raft_id to, const struct raft_message *m)
{
    struct fixture *f = arg;
    (void)shard;
    (void)to;
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT) {
        f->answers++;
        f->last = m->append_entries_result;
    }
    return 0;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct fixture *f = fsm->data;
    assert_true(f->n_applied < sizeof f->applied);
    f->applied[f->n_applied++] = ((const uint8_t *)buf->base)[0];
    *result = NULL;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

static void raft_closed(struct raft *r)
{
    struct fixture *f = r->data;
    f->raft_closed = true;
}

static void store_closed(void *arg) { *(bool *)arg = true; }

/* `n` entries of `term` after prev_log_index, from leader `from`, in one
 * batch allocated as raft frees it; entry i's bytes are all i. */
static struct raft_message append_entries(raft_id from, raft_term term, raft_index prev,
                                          raft_term prev_term, unsigned n, raft_index commit)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = from,
                             .server_address = "127.0.0.1:2"};
    m.append_entries = (struct raft_append_entries){
        .term = term, .prev_log_index = prev, .prev_log_term = prev_term,
        .leader_commit = commit, .n_entries = n};
    if (n > 0) {
        struct raft_entry *e = raft_malloc(n * sizeof *e);
        uint8_t *batch = raft_malloc(n * 8);
        assert_non_null(e);
        assert_non_null(batch);
        for (unsigned i = 0; i < n; i++) {
            memset(batch + 8 * i, (int)(prev + 1 + i), 8);
            e[i] = (struct raft_entry){.term = term, .type = RAFT_COMMAND,
                                       .buf = {batch + 8 * i, 8}, .batch = batch};
        }
        m.append_entries.entries = e;
    }
    return m;
}

/* Members 1..n, all voters but `spare`. */
static void members(struct raft_configuration *c, raft_id n, raft_id spare)
{
    raft_configuration_init(c);
    for (raft_id id = 1; id <= n; id++) {
        char address[32];
        snprintf(address, sizeof address, "127.0.0.1:%llu", (unsigned long long)id);
        assert_int_equal(raft_configuration_add(c, id, address,
                                                id == spare ? RAFT_SPARE : RAFT_VOTER), 0);
    }
}

static void deliver_and_wait(struct fixture *f, struct raft_message m)
{
    unsigned before = f->answers;
    assert_true(cons_store_deliver(f->store, 0, &m));
    while (f->answers == before) uv_run(&f->loop, UV_RUN_ONCE);
}

/* Opens the store in f->dir and starts node 1's raft on it, as
 * consensus/node/shard.c does (a first start bootstraps members 1..3). */
static void start_node(struct fixture *f, bool bootstrap)
{
    char wal[128], snap[128], err[512] = "";
    snprintf(wal, sizeof wal, "%s/wal", f->dir);
    snprintf(snap, sizeof snap, "%s/snapshots", f->dir);
    struct cons_store_options o = {.loop = &f->loop, .wal_dir = wal, .snap_dir = snap,
                                   .n_shards = 1, .segment_size = 256 * 1024};
    assert_int_equal(cons_store_open(&f->store, &o, err, sizeof err), 0);
    cons_store_set_sender(f->store, capture, f);
    f->fsm = (struct raft_fsm){.version = 1, .data = f, .apply = fsm_apply,
                                .restore = fsm_restore};
    assert_int_equal(raft_init(&f->raft, cons_store_io(f->store, 0), &f->fsm, 1, "127.0.0.1:1"), 0);
    f->raft.data = f;
    if (bootstrap) {
        struct raft_configuration conf;
        members(&conf, 3, 0);
        assert_int_equal(raft_bootstrap(&f->raft, &conf), 0);
        raft_configuration_close(&conf);
    }
    raft_set_election_timeout(&f->raft, 60000); /* the test's leaders speak first */
    assert_int_equal(raft_start(&f->raft), 0);
    cons_store_mend_loaded_conf(f->store, 0, &f->raft);
}

static void stop_node(struct fixture *f)
{
    f->raft_closed = f->store_closed = false;
    raft_close(&f->raft, raft_closed);
    while (!f->raft_closed) uv_run(&f->loop, UV_RUN_ONCE);
    cons_store_close(f->store, store_closed, &f->store_closed);
    while (!f->store_closed) uv_run(&f->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_dir_make(f->dir, sizeof f->dir, "follower");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    start_node(f, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    stop_node(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_dir_remove(f->dir);
    free(f);
    return 0;
}

/* Leader 2 of term 1 sends entries 2..5, which are stored; leader 3 of
 * term 2, whose log differs after index 2, has committed its own entries
 * up to 5 and sends a heartbeat from index 2. Entries 3..5 of term 1 are
 * not leader 3's: the answer must not claim them (leader 3 would count
 * this follower in the quorum of its own 3..5 and never send them), and
 * the follower must not apply them as committed. */
static void test_heartbeat_concludes_what_it_covered(void **state)
{
    struct fixture *f = *state;
    deliver_and_wait(f, append_entries(2, 1, 1, 1, 4, 1));
    assert_int_equal(f->last.rejected, 0);
    assert_int_equal(f->last.last_log_index, 5);
    assert_int_equal(raft_last_index(&f->raft), 5);
    assert_int_equal(f->n_applied, 0);

    deliver_and_wait(f, append_entries(3, 2, 2, 1, 0, 5));
    assert_int_equal(f->last.term, 2);
    assert_int_equal(f->last.rejected, 0);
    assert_int_equal(f->last.last_log_index, 2);
    assert_int_equal(raft_last_index(&f->raft), 5); /* the stale entries stay, unclaimed */
    assert_int_equal(f->n_applied, 1);               /* entry 2 only */
    assert_int_equal(f->applied[0], 2);

    /* Entries 3..4 of term 2: the stale ones are replaced, and the answer
     * claims the new ones, which are applied. */
    deliver_and_wait(f, append_entries(3, 2, 2, 1, 2, 5));
    assert_int_equal(f->last.rejected, 0);
    assert_int_equal(f->last.last_log_index, 4);
    assert_int_equal(raft_last_index(&f->raft), 4);
    assert_int_equal(f->n_applied, 3);
    assert_int_equal(f->applied[1], 3);
    assert_int_equal(f->applied[2], 4);
}

/* A request whose prev_log_index does not match is refused as raft
 * refuses it; the bound applies only to accepted ones. */
static void test_refusal_is_raft_own(void **state)
{
    struct fixture *f = *state;
    deliver_and_wait(f, append_entries(2, 1, 1, 1, 2, 1));
    deliver_and_wait(f, append_entries(3, 2, 7, 2, 0, 1));
    assert_int_equal(f->last.rejected, 7);
    assert_int_equal(f->last.last_log_index, 3);
}

/* Leader 2 sends a configuration adding node 4 (a spare) at index 2, not
 * committed yet, and then, the follower being far behind, a snapshot up to
 * index 10 whose configuration has node 4. The configuration is then the
 * snapshot's, committed: raft 0.15 kept index 2 as pending, which nothing
 * would apply again, and refused every membership change from then on. */
static void test_snapshot_leaves_no_configuration_pending(void **state)
{
    struct fixture *f = *state;
    struct raft_configuration conf;
    members(&conf, 4, 4);
    struct raft_buffer encoded;
    assert_int_equal(raft_configuration_encode(&conf, &encoded), 0);
    struct raft_message m = append_entries(2, 1, 1, 1, 0, 1);
    m.append_entries.n_entries = 1;
    m.append_entries.entries = raft_malloc(sizeof *m.append_entries.entries);
    assert_non_null(m.append_entries.entries);
    m.append_entries.entries[0] = (struct raft_entry){.term = 1, .type = RAFT_CHANGE,
                                                      .buf = encoded, .batch = encoded.base};
    deliver_and_wait(f, m);
    assert_int_equal(f->last.last_log_index, 2);
    assert_int_equal(f->raft.configuration_uncommitted_index, 2);
    assert_int_equal(f->raft.configuration.n, 4);

    struct raft_message snap = {.type = RAFT_IO_INSTALL_SNAPSHOT, .server_id = 2,
                                .server_address = "127.0.0.1:2"};
    snap.install_snapshot = (struct raft_install_snapshot){
        .term = 1, .last_index = 10, .last_term = 1, .conf = conf, .conf_index = 2,
        .data = {raft_malloc(8), 8}};
    assert_non_null(snap.install_snapshot.data.base);
    memset(snap.install_snapshot.data.base, 0, 8);
    deliver_and_wait(f, snap);
    assert_int_equal(f->last.rejected, 0);
    assert_int_equal(f->last.last_log_index, 10);
    assert_int_equal(raft_last_applied(&f->raft), 10);
    assert_int_equal(f->raft.configuration.n, 4);
    assert_int_equal(f->raft.configuration_uncommitted_index, 0);
}

/* One entry of `term` at the next index: a message (conf NULL) or a
 * configuration, in a batch of its own as raft frees it. */
static struct raft_entry entry(raft_term term, const struct raft_configuration *conf)
{
    struct raft_entry e = {.term = term, .type = conf != NULL ? RAFT_CHANGE : RAFT_COMMAND};
    if (conf != NULL) {
        assert_int_equal(raft_configuration_encode(conf, &e.buf), 0);
    } else {
        e.buf = (struct raft_buffer){raft_malloc(8), 8};
        assert_non_null(e.buf.base);
        memset(e.buf.base, 0, 8);
    }
    e.batch = e.buf.base;
    return e;
}

/* Leader 2 of term 1 sends a message at index 2 and a configuration adding
 * node 4 at index 3, and commits the message only; the node restarts.
 * Leader 3 of term 2, whose log has a message at index 3, sends it: the
 * configuration went with the entry. raft 0.15 took the last loaded
 * configuration as committed and kept it when it truncated the entry. */
static void test_truncated_loaded_configuration_is_rolled_back(void **state)
{
    struct fixture *f = *state;
    struct raft_configuration four;
    members(&four, 4, 4);
    struct raft_message m = append_entries(2, 1, 1, 1, 0, 2);
    m.append_entries.n_entries = 2;
    m.append_entries.entries = raft_malloc(2 * sizeof *m.append_entries.entries);
    assert_non_null(m.append_entries.entries);
    m.append_entries.entries[0] = entry(1, NULL);
    m.append_entries.entries[1] = entry(1, &four);
    raft_configuration_close(&four);
    deliver_and_wait(f, m);
    assert_int_equal(f->last.last_log_index, 3);
    assert_int_equal(f->raft.configuration.n, 4);

    stop_node(f);
    start_node(f, false);
    assert_int_equal(f->raft.configuration.n, 4);
    assert_int_equal(f->raft.configuration_uncommitted_index, 3);
    assert_int_equal(f->raft.configuration_index, 1);

    m = append_entries(3, 2, 2, 1, 0, 2);
    m.append_entries.n_entries = 1;
    m.append_entries.entries = raft_malloc(sizeof *m.append_entries.entries);
    assert_non_null(m.append_entries.entries);
    m.append_entries.entries[0] = entry(2, NULL);
    deliver_and_wait(f, m);
    assert_int_equal(f->last.rejected, 0);
    assert_int_equal(f->last.last_log_index, 3);
    assert_int_equal(f->raft.configuration.n, 3);
    assert_int_equal(f->raft.configuration_uncommitted_index, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_heartbeat_concludes_what_it_covered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusal_is_raft_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_leaves_no_configuration_pending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncated_loaded_configuration_is_rolled_back,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
